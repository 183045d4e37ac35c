"""relay→LGWAN: queue an envelope in the caller's transaction (guest posts, receipts, enrolments)."""

from __future__ import annotations

import asyncio

import aiosqlite

from shared import envelope as env
from shared.limits import MAX_ENVELOPE_BYTES
from shared.timeutil import now_iso

from ..storage import link as store
from ..storage.database import Database


class Outbox:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.wake = asyncio.Event()     # set after a commit that queued something; the link's sender waits on it

    def _notify(self) -> None:
        self.wake.set()

    async def enqueue(self, conn: aiosqlite.Connection, payload: env.Payload) -> int:
        """Queue ``payload`` as the next relay→LGWAN envelope (checked now with the receiver's rules)."""
        type(payload).from_wire(payload.to_wire())      # raises EnvelopeError: the caller refuses first
        data = env.payload_json(payload)
        if len(data.encode("utf-8")) > MAX_ENVELOPE_BYTES - 1024:
            raise env.EnvelopeError("too_large")
        seq = await store.insert_outbox(conn, env.new_id(), payload.KIND, data, now_iso())
        self.db.after_commit(self._notify)
        return seq
