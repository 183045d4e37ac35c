"""``python -m internet_relay --config FILE``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from aiohttp import web

from shared.config import ConfigError
from shared.logsetup import setup_logging

from .app import create_app
from .config import RelayConfig, load_config

log = logging.getLogger("internet_relay")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kakehashi-relay", description="Kakehashi internet relay")
    parser.add_argument("--config", required=True, type=Path)
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    setup_logging(cfg.log_level, cfg.log_format)
    asyncio.run(_serve(cfg))
    return 0


async def _serve(cfg: RelayConfig) -> None:
    runner = web.AppRunner(create_app(cfg), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, cfg.host, cfg.port).start()
    port = runner.addresses[0][1]
    if cfg.port_file:
        tmp = cfg.port_file.with_suffix(".tmp")
        tmp.write_text(str(port))
        os.replace(tmp, cfg.port_file)
    log.info("listening", extra={"host": cfg.host, "port": port})
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    sys.exit(main())
