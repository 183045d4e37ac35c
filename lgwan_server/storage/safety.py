"""安否確認: checks, their target snapshot, answers, and the per-department roll-up."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiosqlite

from shared.sqlite import Writer

from .database import Source, fetchall, fetchone


@dataclass(frozen=True)
class SafetyCheck:
    id: int
    org_id: int
    title: str
    message: str
    questions: tuple[str, ...]
    target: dict[str, Any]
    started_by: int | None
    started_at: str
    closed_at: str | None
    origin: str
    origin_id: str | None


@dataclass(frozen=True)
class DepartmentTally:
    department_id: int | None
    targets: int
    answered: int
    safe: int
    minor: int
    serious: int
    need_help: int
    attend_yes: int


def _check(row: aiosqlite.Row) -> SafetyCheck:
    v = tuple(row)
    return SafetyCheck(v[0], v[1], v[2], v[3], tuple(json.loads(v[4])), json.loads(v[5]), v[6], v[7], v[8], v[9],
                       v[10])


async def insert_check(conn: Writer, *, org_id: int, title: str, message: str, questions: list[str],
                       target: dict[str, Any], started_by: int | None, now: str, origin: str,
                       origin_id: str | None) -> int:
    cur = await conn.execute(
        "INSERT INTO safety_checks(org_id, title, message, questions, target, started_by, started_at, origin,"
        " origin_id) VALUES (?,?,?,?,?,?,?,?,?)",
        (org_id, title, message, json.dumps(questions), json.dumps(target, ensure_ascii=False), started_by, now,
         origin, origin_id))
    return int(cur.lastrowid or 0)


async def insert_targets(conn: Writer, check_id: int, targets: list[tuple[int, int | None]]) -> None:
    await conn.executemany("INSERT OR IGNORE INTO safety_targets(check_id, staff_id, department_id) VALUES (?,?,?)",
                           [(check_id, s, d) for s, d in targets])


async def get_check(db: Source, check_id: int) -> SafetyCheck | None:
    row = await fetchone(db, "SELECT * FROM safety_checks WHERE id = ?", (check_id,))
    return _check(row) if row else None


async def get_check_by_origin(db: Source, origin_id: str) -> SafetyCheck | None:
    row = await fetchone(db, "SELECT * FROM safety_checks WHERE origin_id = ?", (origin_id,))
    return _check(row) if row else None


async def list_checks(db: Source, org_id: int, limit: int) -> list[SafetyCheck]:
    rows = await fetchall(db, "SELECT * FROM safety_checks WHERE org_id = ? ORDER BY id DESC LIMIT ?", (org_id, limit))
    return [_check(r) for r in rows]


async def checks_for_staff(db: Source, staff_id: int, limit: int) -> list[tuple[SafetyCheck, bool]]:
    """Checks this person was asked in, newest first, with whether they have answered."""
    rows = await fetchall(
        db, "SELECT c.*, (a.staff_id IS NOT NULL) FROM safety_targets t JOIN safety_checks c ON c.id = t.check_id"
            " LEFT JOIN safety_answers a ON a.check_id = t.check_id AND a.staff_id = t.staff_id"
            " WHERE t.staff_id = ? ORDER BY c.id DESC LIMIT ?", (staff_id, limit))
    return [(_check(r), bool(r[11])) for r in rows]


async def target_ids(db: Source, check_id: int) -> list[int]:
    """Everyone asked in a check."""
    rows = await fetchall(db, "SELECT staff_id FROM safety_targets WHERE check_id = ?", (check_id,))
    return [int(r[0]) for r in rows]


async def is_target(db: Source, check_id: int, staff_id: int) -> bool:
    return await fetchone(db, "SELECT 1 FROM safety_targets WHERE check_id = ? AND staff_id = ?",
                          (check_id, staff_id)) is not None


async def upsert_answer(conn: Writer, *, check_id: int, staff_id: int, condition: str, attend: str,
                        eta_minutes: int | None, location: str, note: str, via: str, now: str,
                        origin_id: str | None) -> None:
    await conn.execute(
        "INSERT INTO safety_answers(check_id, staff_id, condition, attend, eta_minutes, location, note, via,"
        " answered_at, origin_id) VALUES (?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT(check_id, staff_id) DO UPDATE SET condition = excluded.condition, attend = excluded.attend,"
        " eta_minutes = excluded.eta_minutes, location = excluded.location, note = excluded.note,"
        " via = excluded.via, answered_at = excluded.answered_at, origin_id = excluded.origin_id"
        " WHERE excluded.answered_at >= safety_answers.answered_at",
        (check_id, staff_id, condition, attend, eta_minutes, location, note, via, now, origin_id))


async def answer_by_origin(db: Source, origin_id: str) -> bool:
    return await fetchone(db, "SELECT 1 FROM safety_answers WHERE origin_id = ?", (origin_id,)) is not None


async def tally(db: Source, check_id: int) -> list[DepartmentTally]:
    rows = await fetchall(
        db, "SELECT t.department_id, count(*), count(a.staff_id),"
            " sum(a.condition = 'safe'), sum(a.condition = 'minor'), sum(a.condition = 'serious'),"
            " sum(a.condition = 'need_help'), sum(a.attend = 'yes')"
            " FROM safety_targets t LEFT JOIN safety_answers a ON a.check_id = t.check_id AND a.staff_id = t.staff_id"
            " WHERE t.check_id = ? GROUP BY t.department_id ORDER BY t.department_id", (check_id,))
    return [DepartmentTally(r[0], r[1], r[2], r[3] or 0, r[4] or 0, r[5] or 0, r[6] or 0, r[7] or 0) for r in rows]


async def unanswered(db: Source, check_id: int) -> list[int]:
    rows = await fetchall(db, "SELECT t.staff_id FROM safety_targets t LEFT JOIN safety_answers a"
                              " ON a.check_id = t.check_id AND a.staff_id = t.staff_id"
                              " WHERE t.check_id = ? AND a.staff_id IS NULL ORDER BY t.staff_id", (check_id,))
    return [int(r[0]) for r in rows]


async def mark_reminded(conn: Writer, check_id: int, staff_ids: list[int], now: str) -> None:
    await conn.executemany("UPDATE safety_targets SET reminded_at = ? WHERE check_id = ? AND staff_id = ?",
                           [(now, check_id, s) for s in staff_ids])


async def close_check(conn: Writer, check_id: int, now: str) -> bool:
    cur = await conn.execute("UPDATE safety_checks SET closed_at = ? WHERE id = ? AND closed_at IS NULL",
                             (now, check_id))
    return cur.rowcount == 1


async def detail_rows(db: Source, check_id: int) -> list[aiosqlite.Row]:
    """Every target with their answer, for the export (names and 所属 as at the start)."""
    return await fetchall(
        db, "SELECT s.display_name, COALESCE(d.name, ''), a.condition, a.attend, a.eta_minutes, a.location, a.note,"
            " a.via, a.answered_at, s.employee_no FROM safety_targets t JOIN staff s ON s.id = t.staff_id"
            " LEFT JOIN departments d ON d.id = t.department_id"
            " LEFT JOIN safety_answers a ON a.check_id = t.check_id AND a.staff_id = t.staff_id"
            " WHERE t.check_id = ? ORDER BY d.sort_order, d.id, s.kana, s.id", (check_id,))
