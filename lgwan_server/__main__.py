"""``python -m lgwan_server --config FILE [command]``.

Commands: ``serve`` (default), ``migrate``, ``create-org``, ``create-admin``, ``load-demo``,
``import-departments``, ``import-staff``, ``apply-transfers``, ``verify-audit``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import logging
import os
import resource
import signal
import sys
from pathlib import Path

from aiohttp import web

from shared.config import ConfigError
from shared.gcpolicy import configure_for_server
from shared.logsetup import setup_logging
from shared.segment import refuse_wrong_segment
from shared.tlsctx import server_context

from .app import create_app
from .config import LgwanConfig, load_config

log = logging.getLogger("lgwan_server")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kakehashi-lgwan", description="Kakehashi LGWAN server")
    parser.add_argument("--config", required=True, type=Path, help="TOML config file")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the server (default)")
    sub.add_parser("migrate", help="apply database migrations and exit")
    p = sub.add_parser("create-org", help="create an organisation")
    p.add_argument("--code", required=True)
    p.add_argument("--name", required=True)
    p = sub.add_parser("create-admin", help="create an organisation admin (password from KAKEHASHI_PASSWORD or prompt)")
    p.add_argument("--org", required=True, help="organisation code")
    p.add_argument("--login", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--server-admin", action="store_true")
    p = sub.add_parser("load-demo", help="load the sample city (idempotent)")
    p.add_argument("--staff", type=int, default=200)
    p.add_argument("--password", default=None, help="demo password (default: printed)")
    for name in ("import-departments", "import-staff"):
        p = sub.add_parser(name, help=f"{name.replace('-', ' ')} from an HR CSV (UTF-8 or Shift_JIS)")
        p.add_argument("--org", required=True, help="organisation code")
        p.add_argument("csv", type=Path)
    sub.add_parser("apply-transfers", help="apply 人事異動 whose date has come")
    p = sub.add_parser("backup", help="online backup of database, files and keys into a new folder under --to")
    p.add_argument("--to", required=True, type=Path)
    p = sub.add_parser("restore", help="restore a backup folder (server stopped), then verify integrity and audit chain")
    p.add_argument("--from", dest="source", required=True, type=Path)
    p.add_argument("--force", action="store_true", help="replace an existing database")
    sub.add_parser("verify-audit", help="verify the audit hash chain; exit 1 naming the first broken entry")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    setup_logging(cfg.logging.level, cfg.logging.format)
    command = args.command or "serve"
    if command in ("serve", "migrate") and (refused := refuse_wrong_segment("lgwan_server", "kakehashi-lgwan")):
        return refused      # 三層分離: this tier runs on LGWAN接続系 only
    if command == "serve":
        serve(cfg)
        return 0
    from . import cli
    return asyncio.run(cli.run(cfg, command, args))


def serve(cfg: LgwanConfig) -> None:
    asyncio.run(_serve(cfg))


def raise_fd_limit() -> int:
    """Lift the soft open-files limit to the hard one: each WebSocket is a descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1_048_576 if hard == resource.RLIM_INFINITY else hard
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def _serve(cfg: LgwanConfig) -> None:
    fd_limit = raise_fd_limit()
    app = create_app(cfg)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
    await runner.setup()
    ssl_ctx = None
    if cfg.server.tls_cert and cfg.server.tls_key:
        ssl_ctx = server_context(cfg.server.tls_cert, cfg.server.tls_key)
    site = web.TCPSite(runner, cfg.server.host, cfg.server.port, ssl_context=ssl_ctx)
    await site.start()
    configure_for_server()     # rare full GC pauses with thousands of sockets (see shared/gcpolicy.py)
    port = runner.addresses[0][1]
    if cfg.server.port_file:
        tmp = cfg.server.port_file.with_suffix(".tmp")
        tmp.write_text(str(port))
        os.replace(tmp, cfg.server.port_file)
    log.info("listening", extra={"host": cfg.server.host, "port": port, "tls": ssl_ctx is not None,
                                 "fd_limit": fd_limit})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await runner.cleanup()


def read_password() -> str:
    return os.environ.get("KAKEHASHI_PASSWORD") or getpass.getpass("password: ")


def dump(data: object) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    sys.exit(main())
