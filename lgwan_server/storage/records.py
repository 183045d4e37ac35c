"""公文書管理 storage: retention classes, marks, legal holds, disposals, tombstones, record queries."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from shared.sqlite import Writer

from .database import Source, fetchall, fetchone, fetchval

DEFAULT_CLASSES = (("lt1y", "1年未満", 0), ("1y", "1年", 1), ("3y", "3年", 3), ("5y", "5年", 5),
                   ("10y", "10年", 10), ("30y", "30年", 30))


@dataclass(frozen=True)
class RetentionClass:
    id: int
    org_id: int
    code: str
    label: str
    years: int
    sort_order: int
    active: bool


@dataclass(frozen=True)
class Mark:
    id: int
    message_id: int
    room_id: int
    scope: str
    class_id: int
    retain_until: str
    title: str
    marked_by: int
    marked_at: str
    disposed_at: str | None


@dataclass(frozen=True)
class Hold:
    id: int
    org_id: int
    room_id: int | None
    message_id: int | None
    reason: str
    placed_by: int
    placed_at: str
    released_by: int | None
    released_at: str | None


@dataclass(frozen=True)
class Disposal:
    id: int
    org_id: int
    state: str
    proposed_by: int
    proposed_at: str
    approved_by: int | None
    approved_at: str | None
    executed_at: str | None


_MARK_COLS = "id, message_id, room_id, scope, class_id, retain_until, title, marked_by, marked_at, disposed_at"


def _cls(row: aiosqlite.Row) -> RetentionClass:
    return RetentionClass(row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6]))


# --- classes --------------------------------------------------------------------------------------

async def ensure_default_classes(conn: Writer, org_id: int) -> None:
    if await fetchval(conn, "SELECT count(*) FROM retention_classes WHERE org_id = ?", (org_id,)):
        return
    await conn.executemany(
        "INSERT INTO retention_classes(org_id, code, label, years, sort_order) VALUES (?,?,?,?,?)",
        [(org_id, code, label, years, i) for i, (code, label, years) in enumerate(DEFAULT_CLASSES)])


async def list_classes(db: Source, org_id: int) -> list[RetentionClass]:
    rows = await fetchall(db, "SELECT id, org_id, code, label, years, sort_order, active FROM retention_classes"
                              " WHERE org_id = ? ORDER BY sort_order, id", (org_id,))
    return [_cls(r) for r in rows]


async def get_class(db: Source, class_id: int) -> RetentionClass | None:
    row = await fetchone(db, "SELECT id, org_id, code, label, years, sort_order, active FROM retention_classes"
                             " WHERE id = ?", (class_id,))
    return _cls(row) if row else None


async def upsert_class(conn: Writer, org_id: int, code: str, label: str, years: int,
                       sort_order: int, active: bool) -> None:
    await conn.execute(
        "INSERT INTO retention_classes(org_id, code, label, years, sort_order, active) VALUES (?,?,?,?,?,?)"
        " ON CONFLICT(org_id, code) DO UPDATE SET label = excluded.label, years = excluded.years,"
        " sort_order = excluded.sort_order, active = excluded.active",
        (org_id, code, label, years, sort_order, int(active)))


# --- room records officer -------------------------------------------------------------------------

async def set_room_officer(conn: Writer, room_id: int, staff_id: int, by: int, now: str) -> None:
    await conn.execute(
        "INSERT INTO room_records_officers(room_id, staff_id, assigned_by, assigned_at) VALUES (?,?,?,?)"
        " ON CONFLICT(room_id) DO UPDATE SET staff_id = excluded.staff_id, assigned_by = excluded.assigned_by,"
        " assigned_at = excluded.assigned_at", (room_id, staff_id, by, now))


async def get_room_officer(db: Source, room_id: int) -> int | None:
    value = await fetchval(db, "SELECT staff_id FROM room_records_officers WHERE room_id = ?", (room_id,))
    return int(value) if value is not None else None


# --- marks ----------------------------------------------------------------------------------------

async def insert_mark(conn: Writer, *, message_id: int, room_id: int, scope: str, class_id: int,
                      retain_until: str, title: str, marked_by: int, now: str) -> int:
    cur = await conn.execute(
        "INSERT INTO record_marks(message_id, room_id, scope, class_id, retain_until, title, marked_by, marked_at)"
        " VALUES (?,?,?,?,?,?,?,?)", (message_id, room_id, scope, class_id, retain_until, title, marked_by, now))
    return int(cur.lastrowid or 0)


async def get_mark(db: Source, mark_id: int) -> Mark | None:
    row = await fetchone(db, f"SELECT {_MARK_COLS} FROM record_marks WHERE id = ?", (mark_id,))
    return Mark(*tuple(row)) if row else None


async def get_mark_for_message(db: Source, message_id: int) -> Mark | None:
    row = await fetchone(db, f"SELECT {_MARK_COLS} FROM record_marks WHERE message_id = ?", (message_id,))
    return Mark(*tuple(row)) if row else None


async def marks_covering(db: Source, message_id: int, thread_root_id: int | None) -> list[Mark]:
    """Marks that cover a message: its own, or a thread mark on its root."""
    rows = await fetchall(
        db, f"SELECT {_MARK_COLS} FROM record_marks WHERE disposed_at IS NULL AND"
            " (message_id = ? OR (scope = 'thread' AND message_id = ?))", (message_id, thread_root_id or -1))
    return [Mark(*tuple(r)) for r in rows]


async def list_marks(db: Source, org_id: int, room_id: int | None, due_before: str | None,
                     limit: int) -> list[Mark]:
    sql = (f"SELECT {', '.join('k.' + c.strip() for c in _MARK_COLS.split(','))} FROM record_marks k"
           " JOIN rooms r ON r.id = k.room_id WHERE r.org_id = ? AND k.disposed_at IS NULL")
    params: list[object] = [org_id]
    if room_id is not None:
        sql += " AND k.room_id = ?"
        params.append(room_id)
    if due_before is not None:
        sql += " AND k.retain_until < ?"
        params.append(due_before)
    sql += " ORDER BY k.retain_until, k.id LIMIT ?"
    return [Mark(*tuple(r)) for r in await fetchall(db, sql, params + [limit])]


# --- legal holds ----------------------------------------------------------------------------------

async def insert_hold(conn: Writer, org_id: int, room_id: int | None, message_id: int | None,
                      reason: str, by: int, now: str) -> int:
    cur = await conn.execute("INSERT INTO legal_holds(org_id, room_id, message_id, reason, placed_by, placed_at)"
                             " VALUES (?,?,?,?,?,?)", (org_id, room_id, message_id, reason, by, now))
    return int(cur.lastrowid or 0)


async def release_hold(conn: Writer, hold_id: int, by: int, now: str) -> bool:
    cur = await conn.execute("UPDATE legal_holds SET released_by = ?, released_at = ? WHERE id = ?"
                             " AND released_at IS NULL", (by, now, hold_id))
    return cur.rowcount == 1


async def get_hold(db: Source, hold_id: int) -> Hold | None:
    row = await fetchone(db, "SELECT * FROM legal_holds WHERE id = ?", (hold_id,))
    return Hold(*tuple(row)) if row else None


async def list_holds(db: Source, org_id: int, active_only: bool) -> list[Hold]:
    sql = "SELECT * FROM legal_holds WHERE org_id = ?" + (" AND released_at IS NULL" if active_only else "")
    return [Hold(*tuple(r)) for r in await fetchall(db, sql + " ORDER BY id", (org_id,))]


async def held(db: Source, room_id: int, message_id: int, thread_root_id: int | None) -> bool:
    """True if an active hold covers the room, the message, or the message's thread root."""
    value = await fetchval(
        db, "SELECT count(*) FROM legal_holds WHERE released_at IS NULL AND"
            " ((room_id = ? AND message_id IS NULL) OR message_id = ? OR message_id = ?)",
        (room_id, message_id, thread_root_id or -1))
    return bool(value)


# --- disposals ------------------------------------------------------------------------------------

async def insert_disposal(conn: Writer, org_id: int, by: int, now: str, mark_ids: list[int]) -> int:
    cur = await conn.execute("INSERT INTO disposals(org_id, state, proposed_by, proposed_at) VALUES (?,?,?,?)",
                             (org_id, "proposed", by, now))
    disposal_id = int(cur.lastrowid or 0)
    await conn.executemany("INSERT INTO disposal_items(disposal_id, mark_id) VALUES (?, ?)",
                           [(disposal_id, m) for m in mark_ids])
    return disposal_id


async def get_disposal(db: Source, disposal_id: int) -> Disposal | None:
    row = await fetchone(db, "SELECT * FROM disposals WHERE id = ?", (disposal_id,))
    return Disposal(*tuple(row)) if row else None


async def list_disposals(db: Source, org_id: int) -> list[Disposal]:
    return [Disposal(*tuple(r)) for r in await fetchall(db, "SELECT * FROM disposals WHERE org_id = ?"
                                                            " ORDER BY id DESC LIMIT 200", (org_id,))]


async def disposal_mark_ids(db: Source, disposal_id: int) -> list[int]:
    return [r[0] for r in await fetchall(db, "SELECT mark_id FROM disposal_items WHERE disposal_id = ?"
                                             " ORDER BY mark_id", (disposal_id,))]


async def set_disposal_state(conn: Writer, disposal_id: int, state: str, *, by: int | None = None,
                             now: str) -> None:
    if state == "approved":
        await conn.execute("UPDATE disposals SET state = ?, approved_by = ?, approved_at = ? WHERE id = ?",
                           (state, by, now, disposal_id))
    elif state == "executed":
        await conn.execute("UPDATE disposals SET state = ?, executed_at = ? WHERE id = ?", (state, now, disposal_id))
    else:
        await conn.execute("UPDATE disposals SET state = ? WHERE id = ?", (state, disposal_id))


async def covered_message_ids(conn: Writer, mark: Mark) -> list[int]:
    if mark.scope == "thread":
        rows = await fetchall(conn, "SELECT id FROM messages WHERE id = ? OR thread_root_id = ? ORDER BY id",
                              (mark.message_id, mark.message_id))
        return [r[0] for r in rows]
    return [mark.message_id]


async def remove_message_content(conn: Writer, message_id: int, now: str) -> None:
    """Disposal: the text, its edit history and attachment links go; the row stays as a tombstone."""
    await conn.execute("UPDATE messages SET body = '', deleted_at = COALESCE(deleted_at, ?) WHERE id = ?",
                       (now, message_id))
    await conn.execute("DELETE FROM message_edits WHERE message_id = ?", (message_id,))
    await conn.execute("DELETE FROM attachments WHERE message_id = ?", (message_id,))


async def insert_tombstone(conn: Writer, *, disposal_id: int, message_id: int, room_id: int,
                           sender_id: int, sender_affiliation: str, created_at: str, body_sha256: str,
                           class_code: str, retain_until: str, approved_by: int, now: str) -> None:
    await conn.execute(
        "INSERT INTO record_tombstones(disposal_id, message_id, room_id, sender_id, sender_affiliation, created_at,"
        " body_sha256, class_code, retain_until, approved_by, disposed_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (disposal_id, message_id, room_id, sender_id, sender_affiliation, created_at, body_sha256, class_code,
         retain_until, approved_by, now))


async def mark_disposed(conn: Writer, mark_id: int, now: str) -> None:
    await conn.execute("UPDATE record_marks SET disposed_at = ? WHERE id = ?", (now, mark_id))


async def tombstones_of(db: Source, disposal_id: int) -> list[aiosqlite.Row]:
    return await fetchall(db, "SELECT * FROM record_tombstones WHERE disposal_id = ? ORDER BY id", (disposal_id,))


# --- record queries (export, disclosure search) ---------------------------------------------------

@dataclass(frozen=True)
class RecordRow:
    message_id: int
    room_id: int
    room_name: str
    seq: int
    thread_root_id: int | None
    sender_id: int
    sender_name: str
    sender_affiliation: str
    body: str
    important: bool
    created_at: str
    edited_at: str | None
    deleted_at: str | None
    mark_class: str | None
    retain_until: str | None


_RECORD_SQL = (
    "SELECT m.id, m.room_id, r.name, m.seq, m.thread_root_id, m.sender_id, COALESCE(s.display_name, ''),"
    " m.sender_affiliation, m.body, m.important, m.created_at, m.edited_at, m.deleted_at,"
    " COALESCE(c1.label, c2.label), COALESCE(k1.retain_until, k2.retain_until)"
    " FROM messages m JOIN rooms r ON r.id = m.room_id LEFT JOIN staff s ON s.id = m.sender_id"
    " LEFT JOIN record_marks k1 ON k1.message_id = m.id AND k1.disposed_at IS NULL"
    " LEFT JOIN retention_classes c1 ON c1.id = k1.class_id"
    " LEFT JOIN record_marks k2 ON k2.message_id = m.thread_root_id AND k2.scope = 'thread' AND k2.disposed_at IS NULL"
    " LEFT JOIN retention_classes c2 ON c2.id = k2.class_id"
)


def _record(row: aiosqlite.Row) -> RecordRow:
    v = tuple(row)
    return RecordRow(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], bool(v[9]), v[10], v[11], v[12], v[13],
                     v[14])


async def record_rows(db: Source, *, room_id: int, thread_root_id: int | None, since: str | None, until: str | None,
                      marked_only: bool, limit: int) -> list[RecordRow]:
    sql = _RECORD_SQL + " WHERE m.room_id = ?"
    params: list[object] = [room_id]
    if thread_root_id is not None:
        sql += " AND (m.id = ? OR m.thread_root_id = ?)"
        params += [thread_root_id, thread_root_id]
    if since:
        sql += " AND m.created_at >= ?"
        params.append(since)
    if until:
        sql += " AND m.created_at < ?"
        params.append(until)
    if marked_only:
        sql += " AND (k1.id IS NOT NULL OR k2.id IS NOT NULL)"
    sql += " ORDER BY m.seq LIMIT ?"
    return [_record(r) for r in await fetchall(db, sql, params + [limit])]


async def disclosure_rows(db: Source, *, org_id: int, text: str, since: str | None, until: str | None,
                          sender_id: int | None, affiliation: str, limit: int) -> list[RecordRow]:
    """Across every room of the organisation: for 情報公開請求 (records officers only)."""
    sql = _RECORD_SQL + " WHERE r.org_id = ? AND m.deleted_at IS NULL"
    params: list[object] = [org_id]
    if text:
        if len(text) >= 3:
            sql += " AND m.id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?)"
            params.append('"' + text.replace('"', '""') + '"')
        else:
            sql += " AND m.body LIKE ? ESCAPE '\\'"
            params.append("%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    if since:
        sql += " AND m.created_at >= ?"
        params.append(since)
    if until:
        sql += " AND m.created_at < ?"
        params.append(until)
    if sender_id is not None:
        sql += " AND m.sender_id = ?"
        params.append(sender_id)
    if affiliation:
        sql += " AND m.sender_affiliation LIKE ? ESCAPE '\\'"
        params.append("%" + affiliation.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    sql += " ORDER BY m.id LIMIT ?"
    return [_record(r) for r in await fetchall(db, sql, params + [limit])]


async def edit_versions(db: Source, message_ids: list[int]) -> dict[int, list[tuple[int, str, str]]]:
    if not message_ids:
        return {}
    marks = ",".join("?" * len(message_ids))
    out: dict[int, list[tuple[int, str, str]]] = {}
    for row in await fetchall(db, f"SELECT message_id, version, body, created_at FROM message_edits"
                                  f" WHERE message_id IN ({marks}) ORDER BY message_id, version", message_ids):
        out.setdefault(row[0], []).append((row[1], row[2], row[3]))
    return out


async def room_member_lines(db: Source, room_id: int) -> list[tuple[str, str]]:
    rows = await fetchall(db, "SELECT s.display_name, COALESCE(d.name, '') FROM room_members m"
                              " JOIN staff s ON s.id = m.staff_id LEFT JOIN departments d ON d.id = s.department_id"
                              " WHERE m.room_id = ? ORDER BY s.kana, s.id", (room_id,))
    return [(r[0], r[1]) for r in rows]
