"""Tasks (誰が・何を・いつまでに) made from messages."""

from __future__ import annotations

from dataclasses import dataclass

from shared.sqlite import Writer

from .database import Source, fetchall, fetchone


@dataclass(frozen=True)
class Task:
    id: int
    org_id: int
    room_id: int | None
    message_id: int | None
    title: str
    due_date: str | None
    status: str
    created_by: int
    created_at: str
    updated_at: str
    reminded_on: str | None


async def insert_task(conn: Writer, *, org_id: int, room_id: int | None, message_id: int | None,
                      title: str, due_date: str | None, created_by: int, now: str) -> int:
    cur = await conn.execute(
        "INSERT INTO tasks(org_id, room_id, message_id, title, due_date, created_by, created_at, updated_at)"
        " VALUES (?,?,?,?,?,?,?,?)", (org_id, room_id, message_id, title, due_date, created_by, now, now))
    return int(cur.lastrowid or 0)


async def set_assignees(conn: Writer, task_id: int, staff_ids: list[int]) -> None:
    await conn.execute("DELETE FROM task_assignees WHERE task_id = ?", (task_id,))
    await conn.executemany("INSERT INTO task_assignees(task_id, staff_id) VALUES (?, ?)",
                           [(task_id, s) for s in sorted(set(staff_ids))])


async def assignees(db: Source, task_id: int) -> list[int]:
    return [int(r[0]) for r in await fetchall(db, "SELECT staff_id FROM task_assignees WHERE task_id = ?"
                                                  " ORDER BY staff_id", (task_id,))]


async def get_task(db: Source, task_id: int) -> Task | None:
    row = await fetchone(db, "SELECT * FROM tasks WHERE id = ?", (task_id,))
    return Task(*tuple(row)) if row else None


async def update_task(conn: Writer, task_id: int, *, title: str | None, due_date: str | None,
                      clear_due: bool, status: str | None, now: str) -> None:
    if title is not None:
        await conn.execute("UPDATE tasks SET title = ? WHERE id = ?", (title, task_id))
    if due_date is not None or clear_due:
        await conn.execute("UPDATE tasks SET due_date = ?, reminded_on = NULL WHERE id = ?", (due_date, task_id))
    if status is not None:
        await conn.execute("UPDATE tasks SET status = ? WHERE id = ?", (status, task_id))
    await conn.execute("UPDATE tasks SET updated_at = ? WHERE id = ?", (now, task_id))


async def tasks_of(db: Source, staff_id: int, include_done: bool) -> list[Task]:
    sql = ("SELECT t.* FROM tasks t WHERE (t.created_by = ? OR t.id IN (SELECT task_id FROM task_assignees"
           " WHERE staff_id = ?))")
    if not include_done:
        sql += " AND t.status != 'done'"
    rows = await fetchall(db, sql + " ORDER BY t.due_date IS NULL, t.due_date, t.id LIMIT 500", (staff_id, staff_id))
    return [Task(*tuple(r)) for r in rows]


async def room_tasks(db: Source, room_id: int) -> list[Task]:
    rows = await fetchall(db, "SELECT * FROM tasks WHERE room_id = ? ORDER BY status = 'done', due_date, id LIMIT 500",
                          (room_id,))
    return [Task(*tuple(r)) for r in rows]


async def due_for_reminder(conn: Writer, today: str, tomorrow: str) -> list[Task]:
    rows = await fetchall(conn, "SELECT * FROM tasks WHERE status != 'done' AND due_date IS NOT NULL"
                                " AND due_date <= ? AND (reminded_on IS NULL OR reminded_on < ?)",
                          (tomorrow, today))
    return [Task(*tuple(r)) for r in rows]


async def mark_reminded(conn: Writer, task_id: int, today: str) -> None:
    await conn.execute("UPDATE tasks SET reminded_on = ? WHERE id = ?", (today, task_id))
