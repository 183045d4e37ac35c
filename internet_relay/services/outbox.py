"""relay→LGWAN: queue an envelope in the caller's transaction (guest posts, receipts, enrolments)."""

from __future__ import annotations

from shared import envelope as env
from shared.limits import MAX_ENVELOPE_BYTES
from shared.linkstream import OutboxFeed, Queued
from shared.sqlite import Writer
from shared.timeutil import now_iso

from ..storage import link as store
from ..storage.database import Database


class Outbox:
    def __init__(self, db: Database) -> None:
        self.db = db
        # Rows committed here reach the link's sender in memory (and wake it); it reads the table otherwise.
        self.feed = OutboxFeed()

    async def enqueue(self, conn: Writer, payload: env.Payload) -> int:
        """Queue ``payload`` as the next relay→LGWAN envelope (checked now with the receiver's rules)."""
        type(payload).from_wire(payload.to_wire())      # raises EnvelopeError: the caller refuses first
        data = env.payload_json(payload)
        size = len(data.encode("utf-8"))
        if size > MAX_ENVELOPE_BYTES - 1024:
            raise env.EnvelopeError("too_large")
        envelope_id = env.new_id()
        seq = await store.insert_outbox(conn, envelope_id, payload.KIND, data, now_iso())
        row = Queued(seq, envelope_id, payload, size)
        self.db.after_commit(lambda: self.feed.committed(row))
        return seq
