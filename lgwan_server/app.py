"""create_app(cfg): the LGWAN server's aiohttp application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from shared.timeutil import to_iso, utcnow

from .appkeys import config_key, db_key, hub_key, kernel_key, validator_key
from .bridge.context import bridge_ctx
from .config import LgwanConfig
from .hub import Hub
from .kernel import Kernel
from .middlewares import auth_middleware, error_middleware, security_headers
from .storage import events as event_store
from .storage import sessions as session_store
from .storage.database import Database
from .storage.migrate import apply_migrations
from .web import setup_routes
from .web.validation import Validator

log = logging.getLogger(__name__)
MAINTENANCE_INTERVAL = 60.0
EVENT_RETENTION = timedelta(days=7)   # a client offline longer than this reloads instead of resuming


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    cfg = app[config_key]
    db = await Database.open(cfg.storage.db_path)
    await apply_migrations(db.conn)
    app[db_key] = db
    kernel = Kernel.build(cfg, db, app[hub_key])
    app[kernel_key] = kernel
    await kernel.rooms.load_membership_index()
    yield
    await db.close()


async def _maintenance_ctx(app: web.Application) -> AsyncIterator[None]:
    """Apply 人事異動 whose date has come, expire sessions, prune old events."""
    task = asyncio.create_task(_maintenance_loop(app))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _maintenance_loop(app: web.Application) -> None:
    kernel, cfg = app[kernel_key], app[config_key]
    while True:
        try:
            await kernel.org.apply_due_transfers()
            await kernel.tasks.send_reminders()
            now = utcnow()
            async with kernel.db.transaction("maintenance", offload=True) as conn:
                await session_store.delete_expired(
                    conn, to_iso(now - timedelta(seconds=cfg.auth.session_idle_timeout)),
                    to_iso(now - timedelta(seconds=cfg.auth.session_absolute_timeout)))
                await event_store.prune_events(conn, to_iso(now - EVENT_RETENTION))
        except Exception:
            log.exception("maintenance failed")
        await asyncio.sleep(MAINTENANCE_INTERVAL)


async def _close_websockets(app: web.Application) -> None:
    await app[hub_key].close_all()


def create_app(cfg: LgwanConfig) -> web.Application:
    app = web.Application(middlewares=[error_middleware, auth_middleware],
                          client_max_size=cfg.limits.max_json_body_bytes)
    app[config_key] = cfg
    app[hub_key] = Hub()
    app[validator_key] = Validator.load()
    app.cleanup_ctx.append(_database_ctx)
    app.cleanup_ctx.append(_maintenance_ctx)
    app.cleanup_ctx.append(bridge_ctx)     # the internet relay link, when configured (issue 5)
    app.on_shutdown.append(_close_websockets)
    app.on_response_prepare.append(security_headers)
    setup_routes(app)
    return app
