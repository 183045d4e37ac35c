"""What the relay holds of crossing rooms: rooms, members (名前と所属), messages and pending posts."""
# ruff: noqa: S608 — f-strings here interpolate only module-constant column lists; values are bound "?" parameters.

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from shared.sqlite import Writer

from .database import Source, fetchall, fetchone, fetchval


@dataclass(frozen=True)
class Room:
    id: int
    name: str
    policy: str


@dataclass(frozen=True)
class Member:
    room_id: int
    member: str
    display_name: str
    affiliation: str
    last_read_seq: int


@dataclass(frozen=True)
class Message:
    id: int
    room_id: int
    seq: int
    thread_root_id: int | None
    sender: str
    sender_name: str
    sender_affiliation: str
    body: str
    attachments: int
    origin_id: str | None
    created_at: str
    edited_at: str | None
    deleted: bool


@dataclass(frozen=True)
class Pending:
    origin_id: str
    room_id: int
    author: str
    body: str
    thread_root_id: int | None
    posted_at: str
    status: str
    refused_code: str | None


_MSG_COLS = ("id, room_id, seq, thread_root_id, sender, sender_name, sender_affiliation, body, attachments,"
             " origin_id, created_at, edited_at, deleted")
_PENDING_COLS = "origin_id, room_id, author, body, thread_root_id, posted_at, status, refused_code"


def _message(row: aiosqlite.Row | tuple[object, ...]) -> Message:
    v = tuple(row)
    return Message(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], bool(v[12]))


# --- rooms and members ----------------------------------------------------------------------------

async def upsert_room(conn: Writer, room_id: int, name: str, policy: str, now: str) -> None:
    await conn.execute("INSERT INTO rooms(id, name, policy, updated_at) VALUES (?,?,?,?) ON CONFLICT(id) DO UPDATE"
                       " SET name = excluded.name, policy = excluded.policy, updated_at = excluded.updated_at",
                       (room_id, name, policy, now))


async def delete_room(conn: Writer, room_id: int) -> None:
    await conn.execute("DELETE FROM pending WHERE room_id = ?", (room_id,))
    await conn.execute("DELETE FROM rooms WHERE id = ?", (room_id,))   # members and messages cascade


async def rooms_of(db: Source, member: str, policies: tuple[str, ...]) -> list[tuple[Room, int, int]]:
    """(room, my read cursor, newest seq) for each room ``member`` is in whose policy is allowed."""
    marks = ",".join("?" * len(policies))
    rows = await fetchall(db, "SELECT r.id, r.name, r.policy, m.last_read_seq,"
                              " (SELECT COALESCE(max(seq), 0) FROM messages x WHERE x.room_id = r.id)"
                              f" FROM members m JOIN rooms r ON r.id = m.room_id WHERE m.member = ? AND r.policy IN ({marks})"
                              " ORDER BY r.name, r.id", (member, *policies))
    return [(Room(r[0], r[1], r[2]), r[3], r[4]) for r in rows]


async def upsert_member(conn: Writer, room_id: int, member: str, display_name: str,
                        affiliation: str) -> bool:
    """False when the room is unknown here (it does not cross)."""
    cur = await conn.execute(
        "INSERT INTO members(room_id, member, display_name, affiliation) SELECT ?, ?, ?, ? WHERE EXISTS"
        " (SELECT 1 FROM rooms WHERE id = ?) ON CONFLICT(room_id, member) DO UPDATE SET"
        " display_name = excluded.display_name, affiliation = excluded.affiliation",
        (room_id, member, display_name, affiliation, room_id))
    return cur.rowcount == 1


async def delete_member(conn: Writer, room_id: int, member: str) -> None:
    await conn.execute("DELETE FROM members WHERE room_id = ? AND member = ?", (room_id, member))


async def get_room_of_member(db: Source, room_id: int, member: str) -> Room | None:
    """The room, if ``member`` is in it (one read for the access check of every request)."""
    row = await fetchone(db, "SELECT r.id, r.name, r.policy FROM rooms r JOIN members m ON m.room_id = r.id"
                             " AND m.member = ? WHERE r.id = ?", (member, room_id))
    return Room(*tuple(row)) if row else None


async def get_member(db: Source, room_id: int, member: str) -> Member | None:
    row = await fetchone(db, "SELECT room_id, member, display_name, affiliation, last_read_seq FROM members"
                             " WHERE room_id = ? AND member = ?", (room_id, member))
    return Member(*tuple(row)) if row else None


async def list_members(db: Source, room_id: int) -> list[Member]:
    rows = await fetchall(db, "SELECT room_id, member, display_name, affiliation, last_read_seq FROM members"
                              " WHERE room_id = ? ORDER BY display_name, member", (room_id,))
    return [Member(*tuple(r)) for r in rows]


async def member_tokens(db: Source, room_id: int) -> list[str]:
    return [r[0] for r in await fetchall(db, "SELECT member FROM members WHERE room_id = ?", (room_id,))]


async def advance_cursor(conn: Writer, room_id: int, member: str, seq: int) -> bool:
    cur = await conn.execute("UPDATE members SET last_read_seq = ? WHERE room_id = ? AND member = ?"
                             " AND last_read_seq < ?", (seq, room_id, member, seq))
    return cur.rowcount == 1


async def advance_cursors(conn: Writer, cursors: list[tuple[int, str, int]]) -> None:
    """``advance_cursor`` for many (room, member, seq) at once."""
    await conn.executemany("UPDATE members SET last_read_seq = ? WHERE room_id = ? AND member = ?"
                           " AND last_read_seq < ?", [(seq, room, member, seq) for room, member, seq in cursors])


async def room_cursors(db: Source, room_id: int) -> dict[str, int] | None:
    """Every member's read cursor in a room; None when the room is not held here."""
    rows = await fetchall(db, "SELECT m.member, m.last_read_seq FROM rooms r LEFT JOIN members m ON m.room_id = r.id"
                              " WHERE r.id = ?", (room_id,))
    if not rows:
        return None
    return {r[0]: r[1] for r in rows if r[0] is not None}


async def purge_mirror(conn: Writer) -> None:
    """Forget every room (before LGWAN rebuilds the copy). Accounts and queued posts stay."""
    await conn.execute("DELETE FROM messages")
    await conn.execute("DELETE FROM members")
    await conn.execute("DELETE FROM rooms")


# --- messages -------------------------------------------------------------------------------------

_UPSERT_MESSAGE = (
    f"INSERT INTO messages({_MSG_COLS}) SELECT ?,?,?,?,?,?,?,?,?,?,?,?,? WHERE EXISTS"
    " (SELECT 1 FROM rooms WHERE id = ?) ON CONFLICT(id) DO UPDATE SET body = excluded.body,"
    " edited_at = excluded.edited_at, deleted = excluded.deleted")


def _message_params(m: Message) -> tuple[object, ...]:
    return (m.id, m.room_id, m.seq, m.thread_root_id, m.sender, m.sender_name, m.sender_affiliation, m.body,
            m.attachments, m.origin_id, m.created_at, m.edited_at, int(m.deleted), m.room_id)


async def upsert_messages(conn: Writer, messages: list[Message]) -> None:
    """Insert or update messages, in order; a message of a room not held here is skipped."""
    await conn.executemany(_UPSERT_MESSAGE, [_message_params(m) for m in messages])


async def get_message(db: Source, message_id: int) -> Message | None:
    row = await fetchone(db, f"SELECT {_MSG_COLS} FROM messages WHERE id = ?", (message_id,))
    return _message(row) if row else None


async def edit_message(conn: Writer, message_id: int, body: str, edited_at: str) -> bool:
    cur = await conn.execute("UPDATE messages SET body = ?, edited_at = ? WHERE id = ? AND deleted = 0",
                             (body, edited_at, message_id))
    return cur.rowcount == 1


async def delete_message(conn: Writer, message_id: int) -> bool:
    cur = await conn.execute("UPDATE messages SET body = '', deleted = 1 WHERE id = ?", (message_id,))
    return cur.rowcount == 1


async def list_messages(db: Source, room_id: int, after_seq: int | None, before_seq: int | None,
                        limit: int) -> list[Message]:
    """Messages of a room, oldest first: the newest page, or forwards from ``after_seq``."""
    if after_seq is not None:
        rows = await fetchall(db, f"SELECT {_MSG_COLS} FROM messages WHERE room_id = ? AND seq > ?"
                                  " ORDER BY seq LIMIT ?", (room_id, after_seq, limit))
        return [_message(r) for r in rows]
    rows = await fetchall(db, f"SELECT {_MSG_COLS} FROM messages WHERE room_id = ? AND seq < ?"
                              " ORDER BY seq DESC LIMIT ?", (room_id, before_seq or 2**62, limit))
    return [_message(r) for r in reversed(rows)]


async def newest_seq(db: Source, room_id: int) -> int:
    return int(await fetchval(db, "SELECT COALESCE(max(seq), 0) FROM messages WHERE room_id = ?", (room_id,)) or 0)


async def read_cursors(db: Source, room_id: int) -> list[tuple[str, int]]:
    rows = await fetchall(db, "SELECT member, last_read_seq FROM members WHERE room_id = ?", (room_id,))
    return [(r[0], r[1]) for r in rows]


async def purge_messages(conn: Writer, before: str) -> int:
    """Drop text older than the retention window."""
    cur = await conn.execute("DELETE FROM messages WHERE created_at < ?", (before,))
    await conn.execute("DELETE FROM pending WHERE status = 'refused' AND posted_at < ?", (before,))
    return cur.rowcount


# --- pending posts --------------------------------------------------------------------------------

async def insert_pending(conn: Writer, p: Pending) -> None:
    await conn.execute(f"INSERT INTO pending({_PENDING_COLS}) VALUES (?,?,?,?,?,?,?,?)",
                       (p.origin_id, p.room_id, p.author, p.body, p.thread_root_id, p.posted_at, p.status,
                        p.refused_code))


async def insert_pending_new(conn: Writer, p: Pending) -> bool:
    """Insert a pending post unless its origin id is already pending; False when it was."""
    cur = await conn.execute(f"INSERT INTO pending({_PENDING_COLS}) VALUES (?,?,?,?,?,?,?,?)"
                             " ON CONFLICT(origin_id) DO NOTHING",
                             (p.origin_id, p.room_id, p.author, p.body, p.thread_root_id, p.posted_at, p.status,
                              p.refused_code))
    return cur.rowcount == 1


async def get_pending(db: Source, origin_id: str) -> Pending | None:
    row = await fetchone(db, f"SELECT {_PENDING_COLS} FROM pending WHERE origin_id = ?", (origin_id,))
    return Pending(*tuple(row)) if row else None


async def delete_pending_many(conn: Writer, origin_ids: list[str]) -> None:
    await conn.executemany("DELETE FROM pending WHERE origin_id = ?", [(o,) for o in origin_ids])


async def refuse_pending(conn: Writer, origin_id: str, code: str) -> bool:
    cur = await conn.execute("UPDATE pending SET status = 'refused', refused_code = ? WHERE origin_id = ?",
                             (code, origin_id))
    return cur.rowcount == 1


async def list_pending(db: Source, room_id: int, author: str) -> list[Pending]:
    rows = await fetchall(db, f"SELECT {_PENDING_COLS} FROM pending WHERE room_id = ? AND author = ?"
                              " ORDER BY posted_at", (room_id, author))
    return [Pending(*tuple(r)) for r in rows]


async def message_by_origin(db: Source, origin_id: str) -> Message | None:
    row = await fetchone(db, f"SELECT {_MSG_COLS} FROM messages WHERE origin_id = ?", (origin_id,))
    return _message(row) if row else None


async def find_origin(db: Source, origin_id: str) -> tuple[Pending | None, Message | None]:
    """The pending post and the confirmed message with this origin id (either, both or neither), in one read."""
    pending_cols = ", ".join("p." + c.strip() for c in _PENDING_COLS.split(","))
    message_cols = ", ".join("m." + c.strip() for c in _MSG_COLS.split(","))
    row = await fetchone(db, f"SELECT p.origin_id IS NOT NULL, {pending_cols}, m.id IS NOT NULL, {message_cols}"
                             " FROM (SELECT ? AS origin_id) o LEFT JOIN pending p ON p.origin_id = o.origin_id"
                             " LEFT JOIN messages m ON m.origin_id = o.origin_id LIMIT 1", (origin_id,))
    assert row is not None
    values = tuple(row)
    split = 1 + len(_PENDING_COLS.split(","))
    pending = Pending(*values[1:split]) if values[0] else None
    message = _message(values[split + 1:]) if values[split] else None
    return pending, message


async def count_rows(db: Source, table: str) -> int:
    assert table in ("rooms", "members", "messages", "pending", "accounts", "sessions")
    return int(await fetchval(db, f"SELECT count(*) FROM {table}") or 0)
