"""Messages, their edit history, mentions, reactions, pins and full-text search."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from shared.sqlite import Writer

from .database import Source, fetchall, fetchone


@dataclass(frozen=True)
class Message:
    id: int
    room_id: int
    seq: int
    thread_root_id: int | None
    sender_id: int
    sender_affiliation: str
    body: str
    important: bool
    mention_room: bool
    client_msg_id: str | None
    created_at: str
    edited_at: str | None
    deleted_at: str | None
    reply_count: int

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


_COLS = ("id, room_id, seq, thread_root_id, sender_id, sender_affiliation, body, important, mention_room,"
         " client_msg_id, created_at, edited_at, deleted_at, reply_count")


def _msg(row: aiosqlite.Row) -> Message:
    v = tuple(row)
    return Message(v[0], v[1], v[2], v[3], v[4], v[5], v[6], bool(v[7]), bool(v[8]), v[9], v[10], v[11], v[12], v[13])


async def insert_message(conn: Writer, *, room_id: int, seq: int, thread_root_id: int | None,
                         sender_id: int, sender_affiliation: str, body: str, important: bool, mention_room: bool,
                         client_msg_id: str | None, now: str) -> int:
    cur = await conn.execute(
        "INSERT INTO messages(room_id, seq, thread_root_id, sender_id, sender_affiliation, body, important,"
        " mention_room, client_msg_id, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (room_id, seq, thread_root_id, sender_id, sender_affiliation, body, int(important), int(mention_room),
         client_msg_id, now))
    return int(cur.lastrowid or 0)


async def get_message(db: Source, message_id: int) -> Message | None:
    row = await fetchone(db, f"SELECT {_COLS} FROM messages WHERE id = ?", (message_id,))
    return _msg(row) if row else None


async def get_by_client_id(conn: Writer, sender_id: int, client_msg_id: str) -> Message | None:
    row = await fetchone(conn, f"SELECT {_COLS} FROM messages WHERE sender_id = ? AND client_msg_id = ?",
                         (sender_id, client_msg_id))
    return _msg(row) if row else None


async def list_room_messages(db: Source, room_id: int, before_seq: int | None, after_seq: int | None,
                             limit: int) -> list[Message]:
    """Top-level messages of a room, oldest first, paging backwards (before_seq) or forwards (after_seq)."""
    if after_seq is not None:
        rows = await fetchall(db, f"SELECT {_COLS} FROM messages WHERE room_id = ? AND thread_root_id IS NULL"
                                  " AND seq > ? ORDER BY seq LIMIT ?", (room_id, after_seq, limit))
        return [_msg(r) for r in rows]
    rows = await fetchall(db, f"SELECT {_COLS} FROM messages WHERE room_id = ? AND thread_root_id IS NULL"
                              " AND seq < ? ORDER BY seq DESC LIMIT ?",
                          (room_id, before_seq if before_seq is not None else 2**62, limit))
    return [_msg(r) for r in reversed(rows)]


async def list_thread(db: Source, root_id: int, limit: int) -> list[Message]:
    rows = await fetchall(db, f"SELECT {_COLS} FROM messages WHERE thread_root_id = ? ORDER BY id LIMIT ?",
                          (root_id, limit))
    return [_msg(r) for r in rows]


async def increment_reply_count(conn: Writer, root_id: int) -> None:
    await conn.execute("UPDATE messages SET reply_count = reply_count + 1 WHERE id = ?", (root_id,))


async def update_body(conn: Writer, message_id: int, body: str, now: str) -> None:
    await conn.execute("UPDATE messages SET body = ?, edited_at = ? WHERE id = ?", (body, now, message_id))


async def mark_deleted(conn: Writer, message_id: int, deleted_by: int, now: str) -> None:
    await conn.execute("UPDATE messages SET body = '', deleted_at = ?, deleted_by = ? WHERE id = ?",
                       (now, deleted_by, message_id))


async def count_edits(conn: Writer, message_id: int) -> int:
    row = await fetchone(conn, "SELECT count(*) FROM message_edits WHERE message_id = ?", (message_id,))
    return int(row[0]) if row else 0


async def insert_edit(conn: Writer, message_id: int, version: int, body: str, edited_by: int,
                      created_at: str) -> None:
    await conn.execute("INSERT INTO message_edits(message_id, version, body, edited_by, created_at)"
                       " VALUES (?,?,?,?,?)", (message_id, version, body, edited_by, created_at))


@dataclass(frozen=True)
class Edit:
    version: int
    body: str
    edited_by: int
    created_at: str


async def list_edits(db: Source, message_id: int) -> list[Edit]:
    rows = await fetchall(db, "SELECT version, body, edited_by, created_at FROM message_edits WHERE message_id = ?"
                              " ORDER BY version", (message_id,))
    return [Edit(*tuple(r)) for r in rows]


async def insert_mentions(conn: Writer, message_id: int, staff_ids: list[int]) -> None:
    await conn.executemany("INSERT OR IGNORE INTO mentions(message_id, staff_id) VALUES (?, ?)",
                           [(message_id, s) for s in staff_ids])


async def mentions_of(db: Source, message_ids: list[int]) -> dict[int, list[int]]:
    if not message_ids:
        return {}
    marks = ",".join("?" * len(message_ids))
    out: dict[int, list[int]] = {}
    for row in await fetchall(db, f"SELECT message_id, staff_id FROM mentions WHERE message_id IN ({marks})",
                              message_ids):
        out.setdefault(row[0], []).append(row[1])
    return out


async def add_reaction(conn: Writer, message_id: int, staff_id: int, code: str, now: str) -> bool:
    cur = await conn.execute("INSERT OR IGNORE INTO reactions(message_id, staff_id, code, created_at) VALUES (?,?,?,?)",
                             (message_id, staff_id, code, now))
    return cur.rowcount == 1


async def remove_reaction(conn: Writer, message_id: int, staff_id: int, code: str) -> bool:
    cur = await conn.execute("DELETE FROM reactions WHERE message_id = ? AND staff_id = ? AND code = ?",
                             (message_id, staff_id, code))
    return cur.rowcount == 1


async def reactions_of(db: Source, message_ids: list[int]) -> dict[int, dict[str, list[int]]]:
    """{message_id: {code: [staff ids in reaction order]}}."""
    if not message_ids:
        return {}
    marks = ",".join("?" * len(message_ids))
    out: dict[int, dict[str, list[int]]] = {}
    for row in await fetchall(db, f"SELECT message_id, code, staff_id FROM reactions WHERE message_id IN ({marks})"
                                  " ORDER BY created_at", message_ids):
        out.setdefault(row[0], {}).setdefault(row[1], []).append(row[2])
    return out


async def pin(conn: Writer, room_id: int, message_id: int, staff_id: int, now: str) -> bool:
    cur = await conn.execute("INSERT OR IGNORE INTO pins(room_id, message_id, pinned_by, pinned_at) VALUES (?,?,?,?)",
                             (room_id, message_id, staff_id, now))
    return cur.rowcount == 1


async def unpin(conn: Writer, room_id: int, message_id: int) -> bool:
    cur = await conn.execute("DELETE FROM pins WHERE room_id = ? AND message_id = ?", (room_id, message_id))
    return cur.rowcount == 1


async def pinned_ids(db: Source, room_id: int) -> list[int]:
    return [r[0] for r in await fetchall(db, "SELECT message_id FROM pins WHERE room_id = ? ORDER BY pinned_at",
                                         (room_id,))]


async def search(db: Source, room_ids: list[int], query: str, limit: int) -> list[Message]:
    """Messages in ``room_ids`` whose body contains ``query``, newest first.

    3+ characters use the FTS5 trigram index; shorter queries (common in Japanese: 会議, 防災)
    use LIKE restricted to the caller's rooms.
    """
    if not room_ids:
        return []
    marks = ",".join("?" * len(room_ids))
    if len(query) >= 3:
        phrase = '"' + query.replace('"', '""') + '"'
        rows = await fetchall(
            db, f"SELECT {', '.join('m.' + c.strip() for c in _COLS.split(','))} FROM messages_fts f"
                " JOIN messages m ON m.id = f.rowid"
                f" WHERE messages_fts MATCH ? AND m.room_id IN ({marks}) AND m.deleted_at IS NULL"
                " ORDER BY m.id DESC LIMIT ?", [phrase, *room_ids, limit])
    else:
        like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = await fetchall(
            db, f"SELECT {_COLS} FROM messages WHERE room_id IN ({marks}) AND deleted_at IS NULL"
                " AND body LIKE ? ESCAPE '\\' ORDER BY id DESC LIMIT ?", [*room_ids, like, limit])
    return [_msg(r) for r in rows]


async def annotations_of(db: Source, ids: list[int]) -> dict[int, dict[str, object]]:
    """Per message: pinned, 確認必須 requested, and the 行政文書 mark covering it (its own, or its thread
    root's when the whole thread was marked), for the staff timeline's badges."""
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    out: dict[int, dict[str, object]] = {}
    for (message_id,) in await fetchall(db, f"SELECT message_id FROM pins WHERE message_id IN ({marks})", ids):
        out.setdefault(message_id, {})["pinned"] = True
    for (message_id,) in await fetchall(db, f"SELECT message_id FROM ack_requests WHERE message_id IN ({marks})", ids):
        out.setdefault(message_id, {})["ack_requested"] = True
    rows = await fetchall(
        db, "SELECT m.id, r.id, r.scope, r.title, r.retain_until, c.label, c.years FROM messages m"
            " JOIN record_marks r ON r.disposed_at IS NULL AND (r.message_id = m.id OR"
            " (r.scope = 'thread' AND r.message_id = m.thread_root_id))"
            f" JOIN retention_classes c ON c.id = r.class_id WHERE m.id IN ({marks})", ids)
    for message_id, mark_id, scope, title, until, label, years in rows:
        out.setdefault(message_id, {})["record"] = {"mark_id": mark_id, "scope": scope, "title": title,
                                                   "retain_until": until, "class_label": label, "years": years}
    return out
