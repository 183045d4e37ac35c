"""Queue link state, the durable outbox (relay→LGWAN) and the inbox record (LGWAN→relay)."""
# ruff: noqa: S608 — f-strings here interpolate only module-constant column lists; values are bound "?" parameters.

from __future__ import annotations

from dataclasses import dataclass

from shared.sqlite import Writer

from .database import Source, fetchall, fetchone, fetchval


@dataclass(frozen=True)
class LinkState:
    out_last_seq: int
    out_acked_seq: int
    in_applied_seq: int


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    envelope_id: str
    kind: str
    payload: str
    created_at: str


async def get_state(db: Source) -> LinkState:
    row = await fetchone(db, "SELECT out_last_seq, out_acked_seq, in_applied_seq FROM link_state WHERE id = 1")
    assert row is not None
    return LinkState(row[0], row[1], row[2])


async def get_epoch(db: Source) -> str | None:
    return await fetchval(db, "SELECT value FROM relay_meta WHERE key = 'epoch'")  # type: ignore[no-any-return]


async def set_epoch(conn: Writer, epoch: str) -> None:
    await conn.execute("INSERT OR IGNORE INTO relay_meta(key, value) VALUES ('epoch', ?)", (epoch,))


async def insert_outbox(conn: Writer, envelope_id: str, kind: str, payload: str, now: str) -> int:
    """Queue an envelope as the next seq (a trigger advances link_state.out_last_seq). Returns the seq."""
    rows = await conn.execute_fetchall(
        "INSERT INTO outbox(seq, envelope_id, kind, payload, created_at) SELECT out_last_seq + 1, ?, ?, ?, ?"
        " FROM link_state WHERE id = 1 RETURNING seq", (envelope_id, kind, payload, now))
    return int(next(iter(rows))[0])


async def outbox_from(db: Source, first_seq: int, limit: int) -> list[OutboxRow]:
    rows = await fetchall(db, "SELECT seq, envelope_id, kind, payload, created_at FROM outbox WHERE seq >= ?"
                              " ORDER BY seq LIMIT ?", (first_seq, limit))
    return [OutboxRow(*tuple(r)) for r in rows]


async def oldest_unacked_created_at(db: Source, acked_seq: int) -> str | None:
    return await fetchval(db, "SELECT created_at FROM outbox WHERE seq > ? ORDER BY seq LIMIT 1",  # type: ignore[no-any-return]
                          (acked_seq,))


async def mark_acked(conn: Writer, previous: int, seq: int, now: str) -> None:
    await conn.execute("UPDATE link_state SET out_acked_seq = ?, updated_at = ? WHERE id = 1", (seq, now))
    await conn.execute("UPDATE outbox SET acked_at = ? WHERE seq > ? AND seq <= ? AND acked_at IS NULL",
                       (now, previous, seq))


async def align_outbox(conn: Writer, ack: int, now: str) -> int:
    """Make the outbox resume right after ``ack``, LGWAN's applied count from the handshake.

    Normally the rows after ``ack`` are simply sent. When LGWAN was restored from a backup (its
    count is behind ours and the rows it needs were pruned) or this relay was (its count is ahead
    of ours), the rows still to send are renumbered to follow ``ack`` contiguously; LGWAN's
    origin-id check absorbs any post it already had. Returns how many rows were renumbered.
    """
    state = await get_state(conn)
    if state.out_acked_seq < ack <= state.out_last_seq:
        await mark_acked(conn, state.out_acked_seq, ack, now)
    rows = await fetchall(conn, "SELECT seq FROM outbox WHERE seq > ? OR acked_at IS NULL ORDER BY seq", (ack,))
    seqs = [r[0] for r in rows]
    renumbered = 0
    if seqs != list(range(ack + 1, ack + 1 + len(seqs))):
        # Two steps through negative numbers, so the primary key never collides midway.
        for old in seqs:
            await conn.execute("UPDATE outbox SET seq = ? WHERE seq = ?", (-old, old))
        for new, old in enumerate(seqs, start=ack + 1):
            await conn.execute("UPDATE outbox SET seq = ? WHERE seq = ?", (new, -old))
        renumbered = len(seqs)
    await conn.execute("UPDATE outbox SET acked_at = NULL WHERE seq > ?", (ack,))
    await conn.execute("UPDATE link_state SET out_last_seq = ?, out_acked_seq = ?, updated_at = ? WHERE id = 1",
                       (ack + len(seqs), ack, now))
    return renumbered


async def record_inbox(conn: Writer, seq: int, envelope_id: str, kind: str, outcome: str,
                       now: str) -> None:
    """Record a taken LGWAN→relay envelope; a trigger advances the applied seq (the caller's transaction)."""
    await conn.execute("INSERT OR REPLACE INTO inbox(seq, envelope_id, kind, outcome, received_at) VALUES (?,?,?,?,?)",
                       (seq, envelope_id, kind, outcome, now))


async def record_inbox_many(conn: Writer, rows: list[tuple[int, str, str, str, str]]) -> None:
    """``record_inbox`` for consecutive envelopes: (seq, envelope_id, kind, outcome, received_at), in seq order."""
    await conn.executemany("INSERT OR REPLACE INTO inbox(seq, envelope_id, kind, outcome, received_at)"
                           " VALUES (?,?,?,?,?)", rows)


async def inbox_envelope_id(db: Source, seq: int) -> str | None:
    return await fetchval(db, "SELECT envelope_id FROM inbox WHERE seq = ?", (seq,))  # type: ignore[no-any-return]


async def reset_inbound(conn: Writer, now: str) -> None:
    await conn.execute("DELETE FROM inbox")
    await conn.execute("UPDATE link_state SET in_applied_seq = 0, updated_at = ? WHERE id = 1", (now,))


async def prune(conn: Writer, before: str) -> None:
    await conn.execute("DELETE FROM outbox WHERE acked_at IS NOT NULL AND acked_at < ?", (before,))
    await conn.execute("DELETE FROM inbox WHERE received_at < ?"
                       " AND seq < (SELECT in_applied_seq FROM link_state WHERE id = 1)", (before,))


async def count_unacked(db: Source) -> int:
    return int(await fetchval(db, "SELECT count(*) FROM outbox WHERE acked_at IS NULL") or 0)
