"""安否確認 on the relay: checks, their phone targets, the answers given here, and the roll-up."""
# ruff: noqa: S608 — f-strings here interpolate only module-constant column lists; values are bound "?" parameters.

from __future__ import annotations

import json
from dataclasses import dataclass

import aiosqlite

from shared.sqlite import Writer

from .database import Source, fetchall, fetchone, fetchval


@dataclass(frozen=True)
class SafetyCheck:
    id: int
    origin: str
    lgwan_check_id: int | None
    origin_id: str | None
    title: str
    message: str
    questions: tuple[str, ...]
    started_by: str | None
    started_at: str
    closed_at: str | None


@dataclass(frozen=True)
class SafetyAnswer:
    check_id: int
    member: str
    condition: str
    attend: str
    eta_minutes: int | None
    location: str
    note: str
    answered_at: str
    origin_id: str


@dataclass(frozen=True)
class Tally:
    affiliation: str
    targets: int
    answered: int
    safe: int
    minor: int
    serious: int
    need_help: int
    attend_yes: int


@dataclass(frozen=True)
class Attention:
    """A target who answered 重傷 or 要支援 (the starter's follow-up list)."""

    display_name: str
    affiliation: str
    condition: str
    attend: str
    location: str
    note: str
    answered_at: str


_CHECK_COLS = ("id, origin, lgwan_check_id, origin_id, title, message, questions, started_by, started_at,"
               " closed_at")
_ANSWER_COLS = "check_id, member, condition, attend, eta_minutes, location, note, answered_at, origin_id"


def _check(row: aiosqlite.Row) -> SafetyCheck:
    v = list(tuple(row))
    v[6] = tuple(json.loads(v[6]))
    return SafetyCheck(*v)


async def get_check(db: Source, check_id: int) -> SafetyCheck | None:
    row = await fetchone(db, f"SELECT {_CHECK_COLS} FROM safety_checks WHERE id = ?", (check_id,))
    return _check(row) if row else None


async def get_by_lgwan_id(db: Source, lgwan_check_id: int) -> SafetyCheck | None:
    row = await fetchone(db, f"SELECT {_CHECK_COLS} FROM safety_checks WHERE lgwan_check_id = ?", (lgwan_check_id,))
    return _check(row) if row else None


async def get_by_origin(db: Source, origin_id: str) -> SafetyCheck | None:
    row = await fetchone(db, f"SELECT {_CHECK_COLS} FROM safety_checks WHERE origin_id = ?", (origin_id,))
    return _check(row) if row else None


async def insert_check(conn: Writer, *, origin: str, lgwan_check_id: int | None, origin_id: str | None,
                       title: str, message: str, questions: tuple[str, ...], started_by: str | None,
                       started_at: str, now: str) -> int:
    rows = await conn.execute_fetchall(
        "INSERT INTO safety_checks(origin, lgwan_check_id, origin_id, title, message, questions, started_by,"
        " started_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?) RETURNING id",
        (origin, lgwan_check_id, origin_id, title, message, json.dumps(list(questions)), started_by, started_at, now))
    return int(next(iter(rows))[0])


async def update_check(conn: Writer, check_id: int, *, lgwan_check_id: int, title: str, message: str,
                       questions: tuple[str, ...], now: str) -> None:
    """LGWAN's word on a check it sent again (a resync) or named (a relay check it now holds)."""
    await conn.execute("UPDATE safety_checks SET lgwan_check_id = ?, title = ?, message = ?, questions = ?,"
                       " updated_at = ? WHERE id = ?",
                       (lgwan_check_id, title, message, json.dumps(list(questions)), now, check_id))


async def close_check(conn: Writer, check_id: int, closed_at: str, now: str) -> bool:
    cur = await conn.execute("UPDATE safety_checks SET closed_at = ?, updated_at = ? WHERE id = ? AND closed_at IS NULL",
                             (closed_at, now, check_id))
    return cur.rowcount == 1


async def add_targets(conn: Writer, check_id: int, members: list[str]) -> list[str]:
    """Add targets with their name and 所属 as the relay knows them now; returns those newly added."""
    existing = {r[0] for r in await fetchall(conn, "SELECT member FROM safety_targets WHERE check_id = ?", (check_id,))}
    new = [m for m in dict.fromkeys(members) if m not in existing]
    known = {r[0]: (r[1], r[2]) for r in await fetchall(
        conn, "SELECT member, display_name, affiliation FROM accounts WHERE kind = 'staff'")} if new else {}
    await conn.executemany("INSERT OR IGNORE INTO safety_targets(check_id, member, display_name, affiliation)"
                           " VALUES (?,?,?,?)", [(check_id, m, *known.get(m, ("", ""))) for m in new])
    return new


async def target_members(db: Source, check_id: int) -> list[str]:
    rows = await fetchall(db, "SELECT member FROM safety_targets WHERE check_id = ? ORDER BY member", (check_id,))
    return [r[0] for r in rows]


async def phone_staff(db: Source) -> list[str]:
    """Every staff phone that may log in now (the audience of a check started here)."""
    rows = await fetchall(db, "SELECT member FROM accounts WHERE kind = 'staff' AND status = 'active'"
                              " AND password_hash IS NOT NULL ORDER BY member")
    return [r[0] for r in rows]


async def is_target(db: Source, check_id: int, member: str) -> bool:
    return await fetchone(db, "SELECT 1 FROM safety_targets WHERE check_id = ? AND member = ?",
                          (check_id, member)) is not None


async def checks_of(db: Source, member: str, limit: int) -> list[tuple[SafetyCheck, SafetyAnswer | None, bool]]:
    """Checks this phone is asked in or started, newest first: (check, own answer, asked)."""
    cols = ", ".join(f"c.{c.strip()}" for c in _CHECK_COLS.split(","))
    answer_cols = ", ".join(f"a.{c.strip()}" for c in _ANSWER_COLS.split(","))
    rows = await fetchall(
        db, f"SELECT {cols}, {answer_cols}, t.member IS NOT NULL FROM safety_checks c"
            " LEFT JOIN safety_targets t ON t.check_id = c.id AND t.member = ?"
            " LEFT JOIN safety_answers a ON a.check_id = c.id AND a.member = ?"
            " WHERE t.member IS NOT NULL OR c.started_by = ? ORDER BY c.id DESC LIMIT ?",
        (member, member, member, limit))
    out = []
    for r in rows:
        v = tuple(r)
        answer = SafetyAnswer(*v[10:19]) if v[10] is not None else None
        out.append((_check(v[:10]), answer, bool(v[19])))   # type: ignore[arg-type]
    return out


async def get_answer(db: Source, check_id: int, member: str) -> SafetyAnswer | None:
    row = await fetchone(db, f"SELECT {_ANSWER_COLS} FROM safety_answers WHERE check_id = ? AND member = ?",
                         (check_id, member))
    return SafetyAnswer(*tuple(row)) if row else None


async def upsert_answer(conn: Writer, a: SafetyAnswer) -> None:
    """The latest answer of a person counts."""
    await conn.execute(
        f"INSERT INTO safety_answers({_ANSWER_COLS}) VALUES (?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT(check_id, member) DO UPDATE SET condition = excluded.condition, attend = excluded.attend,"
        " eta_minutes = excluded.eta_minutes, location = excluded.location, note = excluded.note,"
        " answered_at = excluded.answered_at, origin_id = excluded.origin_id",
        (a.check_id, a.member, a.condition, a.attend, a.eta_minutes, a.location, a.note, a.answered_at, a.origin_id))


async def tally(db: Source, check_id: int) -> list[Tally]:
    """Per 所属 (as the relay knew it when asked)."""
    rows = await fetchall(
        db, "SELECT t.affiliation, count(*), count(a.member), sum(a.condition = 'safe'), sum(a.condition = 'minor'),"
            " sum(a.condition = 'serious'), sum(a.condition = 'need_help'), sum(a.attend = 'yes')"
            " FROM safety_targets t LEFT JOIN safety_answers a ON a.check_id = t.check_id AND a.member = t.member"
            " WHERE t.check_id = ? GROUP BY t.affiliation ORDER BY t.affiliation", (check_id,))
    return [Tally(r[0], r[1], r[2], r[3] or 0, r[4] or 0, r[5] or 0, r[6] or 0, r[7] or 0) for r in rows]


async def needing_attention(db: Source, check_id: int, limit: int) -> list[Attention]:
    rows = await fetchall(
        db, "SELECT t.display_name, t.affiliation, a.condition, a.attend, a.location, a.note, a.answered_at"
            " FROM safety_answers a JOIN safety_targets t ON t.check_id = a.check_id AND t.member = a.member"
            " WHERE a.check_id = ? AND a.condition IN ('serious', 'need_help')"
            " ORDER BY a.condition = 'serious' DESC, a.answered_at LIMIT ?", (check_id, limit))
    return [Attention(*tuple(r)) for r in rows]


async def unanswered(db: Source, check_id: int, members: list[str] | None = None) -> list[str]:
    """Targets with no answer here (of ``members`` when given)."""
    rows = await fetchall(db, "SELECT t.member FROM safety_targets t LEFT JOIN safety_answers a"
                              " ON a.check_id = t.check_id AND a.member = t.member"
                              " WHERE t.check_id = ? AND a.member IS NULL ORDER BY t.member", (check_id,))
    found = [r[0] for r in rows]
    if members is not None:
        wanted = set(members)
        found = [m for m in found if m in wanted]
    return found


async def mark_reminded(conn: Writer, check_id: int, members: list[str], now: str) -> None:
    await conn.executemany("UPDATE safety_targets SET reminded_at = ? WHERE check_id = ? AND member = ?",
                           [(now, check_id, m) for m in members])


async def count_checks_started_by(db: Source, member: str, since: str) -> int:
    return int(await fetchval(db, "SELECT count(*) FROM safety_checks WHERE started_by = ? AND started_at >= ?",
                              (member, since)) or 0)


async def purge_before(conn: Writer, before: str) -> int:
    """Drop checks started before ``before`` with their targets and answers (retention.messages).

    What a phone answered here is already in the outbox for LGWAN, so nothing still owed is lost.
    """
    cur = await conn.execute("DELETE FROM safety_checks WHERE started_at < ?", (before,))
    return cur.rowcount
