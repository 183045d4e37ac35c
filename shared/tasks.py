"""Finish what must not be cut in half, even when the task awaiting it is cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def finish(aw: Awaitable[T]) -> T:
    """Await ``aw`` to its end even if the caller is cancelled meanwhile; then re-raise the cancellation.

    A write transaction must end in COMMIT or ROLLBACK. The queue link cancels its tasks the moment
    the peer goes away (a SIGKILLed relay, a cut cable). A task cancelled while its ``BEGIN
    IMMEDIATE`` waits on aiosqlite's worker thread still gets the transaction opened by that thread,
    but the ``transaction()`` context never reaches its ROLLBACK — and every later write on that
    connection fails with "cannot start a transaction within a transaction". So both ends of the
    link run each of their transactions through this (issue 6: found by the SIGKILL-mid-hand-over
    test in tests/e2e/test_safety_relay.py).
    """
    task = asyncio.ensure_future(aw)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            # Either the caller was cancelled (keep waiting, then pass it on) or ``aw`` itself was.
            cancelled = cancelled or not (task.done() and task.cancelled())
    if cancelled:
        if not task.cancelled():
            task.exception()        # retrieved: the caller is going away; its own error is the cancellation
        raise asyncio.CancelledError
    return task.result()
