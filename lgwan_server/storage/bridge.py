"""The relay link's durable state: outbox, inbox, link state and the rooms mirrored to the relay."""

from __future__ import annotations

from dataclasses import dataclass

from shared.sqlite import Writer

from .database import Source, fetchall, fetchone, fetchval


@dataclass(frozen=True)
class LinkState:
    relay_epoch: str | None
    out_last_seq: int
    out_acked_seq: int
    in_applied_seq: int
    paused: bool
    resync_pending: bool


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    envelope_id: str
    kind: str
    payload: str
    created_at: str


async def get_state(db: Source) -> LinkState:
    """The single link-state row."""
    row = await fetchone(db, "SELECT relay_epoch, out_last_seq, out_acked_seq, in_applied_seq, paused,"
                             " resync_pending FROM bridge_state WHERE id = 1")
    assert row is not None
    return LinkState(row[0], row[1], row[2], row[3], bool(row[4]), bool(row[5]))


async def insert_outbox(conn: Writer, envelope_id: str, kind: str, payload: str,
                        room_id: int | None, now: str) -> int:
    """Queue an envelope as the next LGWAN→relay seq, in commit order (a trigger advances
    ``bridge_state.out_last_seq``). Returns the seq."""
    rows = await conn.execute_fetchall(
        "INSERT INTO bridge_outbox(seq, envelope_id, kind, payload, room_id, created_at)"
        " SELECT out_last_seq + 1, ?, ?, ?, ?, ? FROM bridge_state WHERE id = 1 RETURNING seq",
        (envelope_id, kind, payload, room_id, now))
    return int(next(iter(rows))[0])


async def outbox_from(db: Source, first_seq: int, limit: int) -> list[OutboxRow]:
    """Outbox rows with seq >= ``first_seq``, in order."""
    rows = await fetchall(db, "SELECT seq, envelope_id, kind, payload, created_at FROM bridge_outbox"
                              " WHERE seq >= ? ORDER BY seq LIMIT ?", (first_seq, limit))
    return [OutboxRow(*tuple(r)) for r in rows]


async def oldest_outbox_seq(db: Source) -> int | None:
    value = await fetchval(db, "SELECT min(seq) FROM bridge_outbox")
    return None if value is None else int(value)  # type: ignore[call-overload]


async def oldest_unacked_created_at(db: Source, acked_seq: int) -> str | None:
    """When the oldest envelope not yet confirmed by the relay was queued (None when none is waiting)."""
    value = await fetchval(db, "SELECT created_at FROM bridge_outbox WHERE seq > ? ORDER BY seq LIMIT 1",
                           (acked_seq,))
    return None if value is None else str(value)


async def mark_acked(conn: Writer, previous: int, seq: int, now: str) -> None:
    """The relay applied everything up to ``seq`` (``previous`` was the last recorded ack)."""
    await conn.execute("UPDATE bridge_state SET out_acked_seq = ?, updated_at = ? WHERE id = 1", (seq, now))
    await conn.execute("UPDATE bridge_outbox SET acked_at = ? WHERE seq > ? AND seq <= ? AND acked_at IS NULL",
                       (now, previous, seq))


async def reset_outbound(conn: Writer, now: str) -> None:
    """Forget every queued LGWAN→relay envelope and restart the numbering (before a full snapshot)."""
    await conn.execute("DELETE FROM bridge_outbox")
    await conn.execute("DELETE FROM bridge_rooms")
    await conn.execute("UPDATE bridge_state SET out_last_seq = 0, out_acked_seq = 0, updated_at = ? WHERE id = 1",
                       (now,))


async def reset_inbound(conn: Writer, now: str) -> None:
    """A new relay instance numbers its envelopes from 1 again."""
    await conn.execute("DELETE FROM bridge_inbox")
    await conn.execute("UPDATE bridge_state SET in_applied_seq = 0, updated_at = ? WHERE id = 1", (now,))


async def set_relay_epoch(conn: Writer, epoch: str, now: str) -> None:
    await conn.execute("UPDATE bridge_state SET relay_epoch = ?, updated_at = ? WHERE id = 1", (epoch, now))


async def set_paused(conn: Writer, paused: bool, now: str) -> None:
    await conn.execute("UPDATE bridge_state SET paused = ?, updated_at = ? WHERE id = 1", (int(paused), now))


async def set_resync_pending(conn: Writer, pending: bool, now: str) -> None:
    await conn.execute("UPDATE bridge_state SET resync_pending = ?, updated_at = ? WHERE id = 1", (int(pending), now))


async def record_inbox(conn: Writer, seq: int, envelope_id: str, kind: str, outcome: str,
                       now: str) -> None:
    """Record a taken relay→LGWAN envelope (a trigger advances ``in_applied_seq``), in the apply's transaction."""
    await conn.execute("INSERT INTO bridge_inbox(seq, envelope_id, kind, outcome, received_at) VALUES (?,?,?,?,?)",
                       (seq, envelope_id, kind, outcome, now))


async def record_inbox_many(conn: Writer, rows: list[tuple[int, str, str, str, str]]) -> None:
    """``record_inbox`` for consecutive envelopes: (seq, envelope_id, kind, outcome, received_at), in seq order."""
    await conn.executemany("INSERT INTO bridge_inbox(seq, envelope_id, kind, outcome, received_at) VALUES (?,?,?,?,?)",
                           rows)


async def inbox_envelope_id(db: Source, seq: int) -> str | None:
    value = await fetchval(db, "SELECT envelope_id FROM bridge_inbox WHERE seq = ?", (seq,))
    return None if value is None else str(value)


async def count_inbox_outcomes(db: Source) -> dict[str, int]:
    rows = await fetchall(db, "SELECT outcome, count(*) FROM bridge_inbox GROUP BY outcome")
    return {r[0]: r[1] for r in rows}


async def prune(conn: Writer, before: str) -> tuple[int, int]:
    """Drop acked outbox rows and inbox records older than ``before``. Returns (outbox, inbox) counts."""
    out = await conn.execute("DELETE FROM bridge_outbox WHERE acked_at IS NOT NULL AND acked_at < ?", (before,))
    inbox = await conn.execute("DELETE FROM bridge_inbox WHERE received_at < ?"
                               " AND seq < (SELECT in_applied_seq FROM bridge_state WHERE id = 1)", (before,))
    return out.rowcount, inbox.rowcount


# --- rooms the relay holds ----------------------------------------------------------------------

@dataclass(frozen=True)
class Route:
    """Where an event of a room goes: the room's policy now and the policy the relay last got."""

    crossing_policy: str
    mirrored_policy: str | None
    client_msg_id: str | None = None     # for message.new: the relay's origin ("relay:<origin id>")
    sender_role: str | None = None


async def route(conn: Writer, room_id: int, message_id: int | None = None) -> Route | None:
    """One round trip for the hook: the room's policy, its mirror state and, for a message, its origin."""
    if message_id is None:
        row = await fetchone(conn, "SELECT r.crossing_policy, b.policy FROM rooms r"
                                   " LEFT JOIN bridge_rooms b ON b.room_id = r.id WHERE r.id = ?", (room_id,))
        return Route(row[0], row[1]) if row else None
    row = await fetchone(conn, "SELECT r.crossing_policy, b.policy, m.client_msg_id, s.role FROM rooms r"
                               " LEFT JOIN bridge_rooms b ON b.room_id = r.id JOIN messages m ON m.id = ?"
                               " JOIN staff s ON s.id = m.sender_id WHERE r.id = ?", (message_id, room_id))
    return Route(row[0], row[1], row[2], row[3]) if row else None


async def insert_message_if_mirrored(conn: Writer, envelope_id: str, payload: str, room_id: int,
                                     message_id: int, now: str) -> tuple[int, str, str | None] | None:
    """Queue a ``message.new`` in one round trip, if its room crosses and the relay holds the room with
    its current policy; None (nothing queued) otherwise.

    ``payload`` is the payload's JSON with any ``sender`` and ``origin_id``: both are set here from the
    message row (``g:``/``s:`` by the sender's role; the relay's origin from a ``relay:`` client id).
    Returns (seq, sender, origin_id).
    """
    rows = await conn.execute_fetchall(
        "INSERT INTO bridge_outbox(seq, envelope_id, kind, payload, room_id, created_at)"
        " SELECT st.out_last_seq + 1, ?, 'message.new', json_set(?,"
        "   '$.sender', (CASE s.role WHEN 'guest' THEN 'g:' ELSE 's:' END) || s.id,"
        "   '$.origin_id', CASE WHEN substr(m.client_msg_id, 1, 6) = 'relay:' THEN substr(m.client_msg_id, 7) END),"
        "   r.id, ?"
        " FROM bridge_state st JOIN rooms r ON r.id = ?"
        " JOIN bridge_rooms b ON b.room_id = r.id AND b.policy = r.crossing_policy"
        " JOIN messages m ON m.id = ? AND m.room_id = r.id JOIN staff s ON s.id = m.sender_id"
        " WHERE st.id = 1 AND r.crossing_policy IN ('staff_mobile', 'guests')"
        " RETURNING seq, json_extract(payload, '$.sender'), json_extract(payload, '$.origin_id')",
        (envelope_id, payload, now, room_id, message_id))
    row = next(iter(rows), None)
    return None if row is None else (int(row[0]), str(row[1]), None if row[2] is None else str(row[2]))


async def mirrored_policy(conn: Writer, room_id: int) -> str | None:
    value = await fetchval(conn, "SELECT policy FROM bridge_rooms WHERE room_id = ?", (room_id,))
    return None if value is None else str(value)


async def origin_taken(conn: Writer, staff_id: int, client_msg_id: str) -> bool:
    """Whether this author already has a message with this idempotency key."""
    return await fetchone(conn, "SELECT 1 FROM messages WHERE sender_id = ? AND client_msg_id = ?",
                          (staff_id, client_msg_id)) is not None


async def origins_taken(conn: Writer, staff_id: int, client_msg_ids: list[str]) -> set[str]:
    """Those of ``client_msg_ids`` this author already has a message with (``origin_taken`` for a batch)."""
    found: set[str] = set()
    for start in range(0, len(client_msg_ids), 500):
        chunk = client_msg_ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        rows = await fetchall(conn, "SELECT client_msg_id FROM messages WHERE sender_id = ?"
                                    f" AND client_msg_id IN ({marks})", (staff_id, *chunk))  # noqa: S608 — only "?" marks
        found.update(str(r[0]) for r in rows)
    return found


async def set_mirrored(conn: Writer, room_id: int, policy: str, now: str) -> None:
    await conn.execute("INSERT INTO bridge_rooms(room_id, policy, since) VALUES (?,?,?)"
                       " ON CONFLICT(room_id) DO UPDATE SET policy = excluded.policy", (room_id, policy, now))


async def mirrored_rooms_of(conn: Writer, staff_id: int) -> list[tuple[int, str]]:
    """(room id, policy) of the rooms on the relay that ``staff_id`` is a member of."""
    rows = await fetchall(conn, "SELECT b.room_id, b.policy FROM bridge_rooms b JOIN room_members m"
                                " ON m.room_id = b.room_id AND m.staff_id = ? ORDER BY b.room_id", (staff_id,))
    return [(r[0], r[1]) for r in rows]


async def unset_mirrored(conn: Writer, room_id: int) -> None:
    await conn.execute("DELETE FROM bridge_rooms WHERE room_id = ?", (room_id,))


async def crossing_room_ids(conn: Writer) -> list[int]:
    """Rooms whose policy lets them cross, oldest first."""
    rows = await fetchall(conn, "SELECT id FROM rooms WHERE crossing_policy IN ('staff_mobile', 'guests') ORDER BY id")
    return [int(r[0]) for r in rows]


@dataclass(frozen=True)
class CrossingMessage:
    id: int
    seq: int
    thread_root_id: int | None
    sender_id: int
    sender_role: str
    sender_name: str
    sender_affiliation: str
    body: str
    created_at: str
    client_msg_id: str | None
    deleted: bool
    edited_at: str | None
    attachments: int


_CROSSING_COLS = (
    "m.id, m.seq, m.thread_root_id, m.sender_id, s.role, s.display_name, m.sender_affiliation, m.body, m.created_at,"
    " m.client_msg_id, m.deleted_at IS NOT NULL, m.edited_at,"
    " (SELECT count(*) FROM attachments a WHERE a.message_id = m.id)"
)


async def get_crossing_message(conn: Writer, message_id: int) -> CrossingMessage | None:
    row = await fetchone(conn, f"SELECT {_CROSSING_COLS} FROM messages m JOIN staff s ON s.id = m.sender_id"
                               " WHERE m.id = ?", (message_id,))
    return CrossingMessage(*tuple(row)) if row else None


async def recent_crossing_messages(conn: Writer, room_id: int, since: str,
                                   limit: int) -> list[CrossingMessage]:
    """The newest ``limit`` messages of a room created after ``since``, oldest first."""
    rows = await fetchall(conn, f"SELECT {_CROSSING_COLS} FROM messages m JOIN staff s ON s.id = m.sender_id"
                                " WHERE m.room_id = ? AND m.created_at >= ? ORDER BY m.seq DESC LIMIT ?",
                          (room_id, since, limit))
    return [CrossingMessage(*tuple(r)) for r in reversed(rows)]


@dataclass(frozen=True)
class MemberCard:
    staff_id: int
    role: str
    display_name: str
    department_id: int | None
    last_read_seq: int


async def member_cards(conn: Writer, room_id: int) -> list[MemberCard]:
    rows = await fetchall(conn, "SELECT s.id, s.role, s.display_name, s.department_id, m.last_read_seq"
                                " FROM room_members m JOIN staff s ON s.id = m.staff_id WHERE m.room_id = ?"
                                " ORDER BY s.id", (room_id,))
    return [MemberCard(*tuple(r)) for r in rows]


async def member_card(conn: Writer, staff_id: int) -> tuple[str, str, int | None] | None:
    """(role, display_name, department_id) of a staff row."""
    row = await fetchone(conn, "SELECT role, display_name, department_id FROM staff WHERE id = ?", (staff_id,))
    return (row[0], row[1], row[2]) if row else None


# --- 安否確認 for phones (issue 6) ------------------------------------------------------------------

# A person "registered for phone use": an open mobile grant (may enrol, or enrolled) and active staff.
_PHONE = ("JOIN mobile_grants g ON g.staff_id = {col} AND g.status IN ('granted', 'active')"
          " JOIN staff s ON s.id = {col} AND s.status = 'active' AND s.role != 'guest'")


async def phone_targets(conn: Source, check_id: int) -> list[int]:
    """Targets of a check who are registered for phone use, by id."""
    rows = await fetchall(conn, "SELECT t.staff_id FROM safety_targets t " + _PHONE.format(col="t.staff_id")
                                + " WHERE t.check_id = ? ORDER BY t.staff_id", (check_id,))
    return [int(r[0]) for r in rows]


async def unanswered_phone_targets(conn: Source, check_id: int) -> list[int]:
    """Phone-registered targets with no answer on LGWAN yet (who a reminder reaches on the relay)."""
    rows = await fetchall(conn, "SELECT t.staff_id FROM safety_targets t " + _PHONE.format(col="t.staff_id")
                                + " LEFT JOIN safety_answers a ON a.check_id = t.check_id AND a.staff_id = t.staff_id"
                                  " WHERE t.check_id = ? AND a.staff_id IS NULL ORDER BY t.staff_id", (check_id,))
    return [int(r[0]) for r in rows]


async def phone_staff_among(conn: Source, org_id: int, staff_ids: list[int]) -> list[int]:
    """Those of ``staff_ids`` who are active staff of ``org_id`` registered for phone use."""
    found: list[int] = []
    for start in range(0, len(staff_ids), 500):
        chunk = staff_ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        rows = await fetchall(conn, "SELECT s.id FROM staff s JOIN mobile_grants g ON g.staff_id = s.id"
                                    " AND g.status IN ('granted', 'active') WHERE s.status = 'active'"
                                    f" AND s.role != 'guest' AND s.org_id = ? AND s.id IN ({marks})", (org_id, *chunk))
        found.extend(int(r[0]) for r in rows)
    return sorted(found)


async def open_safety_check_ids(conn: Source, limit: int) -> list[int]:
    """The newest open checks (for a full resync of the relay), oldest first."""
    rows = await fetchall(conn, "SELECT id FROM safety_checks WHERE closed_at IS NULL ORDER BY id DESC LIMIT ?",
                          (limit,))
    return sorted(int(r[0]) for r in rows)
