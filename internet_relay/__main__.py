"""``python -m internet_relay --config FILE [serve | wipe --yes]``.

``serve`` (default) listens on the guest web port and on the queue port. ``wipe`` deletes the
relay's database; the next start has a new epoch and the LGWAN server rebuilds the relay's copy
of every crossing room at the next handshake (guests then need a new enrolment link).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sqlite3
import ssl
import sys
from pathlib import Path

from aiohttp import web

from shared.config import ConfigError
from shared.gcpolicy import configure_for_server
from shared.logsetup import setup_logging
from shared.segment import refuse_wrong_segment
from shared.tlsctx import server_context

from .app import create_app, create_queue_app
from .config import RelayConfig, load_config

log = logging.getLogger("internet_relay")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kakehashi-relay", description="Kakehashi internet relay")
    parser.add_argument("--config", required=True, type=Path)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the relay (default)")
    p = sub.add_parser("wipe", help="delete the relay's database so that LGWAN rebuilds it")
    p.add_argument("--yes", action="store_true", help="really delete it")
    p.add_argument("--force", action="store_true", help="also when guest posts are still waiting for LGWAN")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    setup_logging(cfg.log_level, cfg.log_format)
    if args.command == "wipe":
        return wipe(cfg, yes=args.yes, force=args.force)
    if refused := refuse_wrong_segment("internet_relay", "kakehashi-relay"):
        return refused      # 三層分離: this tier runs on インターネット接続系 only
    asyncio.run(_serve(cfg))
    return 0


def wipe(cfg: RelayConfig, *, yes: bool, force: bool) -> int:
    """Delete the database files (run with the relay stopped)."""
    path = cfg.db_path
    if not path.exists():
        print("nothing to wipe")
        return 0
    with sqlite3.connect(path) as conn:
        waiting = conn.execute("SELECT count(*) FROM outbox WHERE acked_at IS NULL").fetchone()[0]
    if waiting and not force:
        print(f"{waiting} envelopes (guest posts, receipts) have not reached LGWAN yet; wait for the link, "
              "or use --force to lose them", file=sys.stderr)
        return 1
    if not yes:
        print("add --yes to delete the relay database", file=sys.stderr)
        return 1
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    print(f"deleted {path}; LGWAN rebuilds the relay's copy at the next link")
    return 0


def _tls(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    if not cert or not key:
        return None
    ctx = server_context(cert, key)
    return ctx


def _write_port(path: Path | None, port: int) -> None:
    if path:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(str(port))
        os.replace(tmp, path)


async def _serve(cfg: RelayConfig) -> None:
    web_app = create_app(cfg)
    web_runner = web.AppRunner(web_app, access_log=None, shutdown_timeout=5)
    await web_runner.setup()     # opens the database and builds the services
    queue_runner = web.AppRunner(create_queue_app(web_app), access_log=None, shutdown_timeout=2)
    await queue_runner.setup()
    await web.TCPSite(web_runner, cfg.web.host, cfg.web.port, ssl_context=_tls(cfg.web.tls_cert, cfg.web.tls_key)).start()
    await web.TCPSite(queue_runner, cfg.queue.host, cfg.queue.port,
                      ssl_context=_tls(cfg.queue.tls_cert, cfg.queue.tls_key)).start()
    web_port, queue_port = web_runner.addresses[0][1], queue_runner.addresses[0][1]
    configure_for_server()      # rare full GC pauses with many guest/phone sockets (shared/gcpolicy.py)
    _write_port(cfg.queue.port_file, queue_port)
    _write_port(cfg.web.port_file, web_port)
    log.info("listening", extra={"web_port": web_port, "queue_port": queue_port})
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await queue_runner.cleanup()
        await web_runner.cleanup()


if __name__ == "__main__":
    sys.exit(main())
