"""The relay's two aiohttp applications, on two ports.

``create_app(cfg)`` is the guest web port (UI, JSON API, WebSocket for guests and staff phones);
its cleanup context opens the database, loads the keys, builds the services and runs the
retention purge. ``create_queue_app(web_app)`` is the queue port the LGWAN server dials into;
it serves only ``/queue`` and ``/healthz`` and uses the web app's services. The relay never
opens a connection: both apps only listen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from shared import link as link_protocol
from shared.signing import load_key_ring, load_signer
from shared.timeutil import to_iso, utcnow

from .appkeys import config_key, relay_key, web_app_key
from .config import RelayConfig
from .hub import Hub
from .kernel import Relay
from .middlewares import auth_middleware, error_middleware, security_headers
from .storage import accounts as account_store
from .storage import audit as audit_store
from .storage import link as link_store
from .storage import mirror as mirror_store
from .storage import safety as safety_store
from .storage.database import Database, apply_migrations
from .web import queue as queue_routes
from .web import setup_routes

log = logging.getLogger(__name__)


async def _relay_ctx(app: web.Application) -> AsyncIterator[None]:
    cfg = app[config_key]
    signer = load_signer(cfg.queue.keys_dir)
    keyring = load_key_ring(cfg.queue.keys_dir)
    if len(keyring) == 0:
        raise RuntimeError(f"no LGWAN public key in {cfg.queue.keys_dir / 'peers.json'}: run kakehashi-keys install-peer")
    db = await Database.open(cfg.db_path)
    await apply_migrations(db.conn)
    async with db.transaction("epoch") as conn:
        # A new database gets a new epoch: LGWAN sees it at the next handshake and rebuilds our copy.
        await link_store.set_epoch(conn, link_protocol.new_epoch())
    app[relay_key] = Relay.build(cfg, db, Hub(), signer, keyring)
    yield
    await db.close()


async def _purge_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(_purge_loop(app[relay_key]))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def purge_once(relay: Relay) -> dict[str, int]:
    """Keep the minimum: text older than retention.messages, audit older than retention.audit,
    acknowledged queue rows after queue.keep_acked, and expired sessions go."""
    cfg, now = relay.cfg, utcnow()
    async with relay.db.transaction("purge", offload=True) as conn:
        messages = await mirror_store.purge_messages(conn, to_iso(now - timedelta(seconds=cfg.retention.messages)))
        # 安否確認 answers are personal data like text: same window (what LGWAN is owed stays in the outbox).
        checks = await safety_store.purge_before(conn, to_iso(now - timedelta(seconds=cfg.retention.messages)))
        audit = await audit_store.prune(conn, to_iso(now - timedelta(seconds=cfg.retention.audit)))
        await link_store.prune(conn, to_iso(now - timedelta(seconds=cfg.queue.keep_acked)))
        await account_store.delete_expired_sessions(
            conn, to_iso(now - timedelta(seconds=cfg.auth.session_idle_timeout)),
            to_iso(now - timedelta(seconds=cfg.auth.session_absolute_timeout)))
        if messages or audit or checks:
            await relay.audit.record(conn, "retention.purge", detail={"messages": messages, "audit": audit,
                                                                      "safety_checks": checks})
    return {"messages": messages, "audit": audit, "safety_checks": checks}


async def _purge_loop(relay: Relay) -> None:
    while True:
        try:
            await purge_once(relay)
        except Exception:
            log.exception("purge failed")
        await asyncio.sleep(relay.cfg.retention.purge_interval)


async def _close_websockets(app: web.Application) -> None:
    await app[relay_key].hub.close_all()


def create_app(cfg: RelayConfig) -> web.Application:
    """The guest web port."""
    app = web.Application(middlewares=[error_middleware, auth_middleware], client_max_size=64 * 1024)
    app[config_key] = cfg
    app.cleanup_ctx.append(_relay_ctx)
    app.cleanup_ctx.append(_purge_ctx)
    app.on_shutdown.append(_close_websockets)
    app.on_response_prepare.append(security_headers)
    setup_routes(app)
    return app


def create_queue_app(web_app: web.Application) -> web.Application:
    """The queue port; start it after ``web_app`` (whose startup builds the services)."""
    app = web.Application(client_max_size=4 * 1024)
    app[web_app_key] = web_app
    app.add_routes(queue_routes.routes)
    return app
