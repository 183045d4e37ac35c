"""``bridge_ctx``: the cleanup context that runs the relay link and its housekeeping (issue 5)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from shared.signing import load_key_ring, load_signer
from shared.timeutil import to_iso, utcnow

from ..appkeys import config_key, dialler_key, kernel_key
from ..kernel import Kernel
from ..storage import bridge as store
from .dialler import Dialler
from .files import SanitizedFileInbox
from .inbox import BridgeInbox

log = logging.getLogger(__name__)
HOUSEKEEPING_INTERVAL = 60.0


async def bridge_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the dialler when ``[bridge] enabled``; stop it before the database closes."""
    cfg = app[config_key].bridge
    if not cfg.enabled:
        yield
        return
    kernel = app[kernel_key]
    assert cfg.keys_dir is not None and kernel.bridge is not None
    signer = load_signer(cfg.keys_dir)
    keyring = load_key_ring(cfg.keys_dir)
    if len(keyring) == 0:
        raise RuntimeError(f"no relay public key in {cfg.keys_dir / 'peers.json'}: run kakehashi-keys install-peer")
    inbox = BridgeInbox(kernel.db, kernel.bridge, kernel.messages, kernel.events, kernel.audit, kernel.safety)
    # Files from guests and phones (issue 3): staged by the inbox, re-checked and posted by their own task.
    files = SanitizedFileInbox(cfg, kernel.db, inbox, kernel.bridge, kernel.messages, kernel.files.blobs,
                               kernel.audit, kernel.files.max_bytes)
    inbox.files = files
    dialler = Dialler(cfg, kernel.db, kernel.bridge, inbox, kernel.audit, signer, keyring)
    app[dialler_key] = dialler
    tasks = [asyncio.create_task(dialler.run(), name="bridge-dialler"),
             asyncio.create_task(_housekeeping(kernel, cfg.keep_acked), name="bridge-housekeeping"),
             asyncio.create_task(files.run(), name="bridge-files")]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await files.verifier.close()


async def _housekeeping(kernel: Kernel, keep_acked: float) -> None:
    """Expire guests and invitations; prune acknowledged outbox rows and old inbox records."""
    while True:
        try:
            await kernel.guests.expire_due()
            async with kernel.db.transaction("bridge_prune", offload=True) as conn:
                await store.prune(conn, to_iso(utcnow() - timedelta(seconds=keep_acked)))
        except Exception:
            log.exception("bridge housekeeping failed")
        await asyncio.sleep(HOUSEKEEPING_INTERVAL)
