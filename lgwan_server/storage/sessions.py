"""Login sessions. Only a SHA-256 of the cookie token is stored."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from shared.sqlite import Writer

from .database import Source, fetchall, fetchone


@dataclass(frozen=True)
class Session:
    id: int
    staff_id: int
    csrf_token: str
    mfa_pending: bool
    created_at: str
    last_seen_at: str
    source_ip: str
    user_agent: str


_COLS = "id, staff_id, csrf_token, mfa_pending, created_at, last_seen_at, source_ip, user_agent"


def _session(row: aiosqlite.Row) -> Session:
    return Session(row[0], row[1], row[2], bool(row[3]), row[4], row[5], row[6], row[7])


async def insert_session(conn: Writer, token_hash: str, staff_id: int, csrf_token: str,
                         mfa_pending: bool, now: str, source_ip: str, user_agent: str) -> int:
    cur = await conn.execute(
        "INSERT INTO sessions(token_hash, staff_id, csrf_token, mfa_pending, created_at, last_seen_at, source_ip,"
        " user_agent) VALUES (?,?,?,?,?,?,?,?)",
        (token_hash, staff_id, csrf_token, int(mfa_pending), now, now, source_ip, user_agent[:300]))
    return int(cur.lastrowid or 0)


async def get_session_by_token_hash(db: Source, token_hash: str) -> Session | None:
    row = await fetchone(db, f"SELECT {_COLS} FROM sessions WHERE token_hash = ?", (token_hash,))
    return _session(row) if row else None


async def touch_session(conn: Writer, session_id: int, now: str) -> None:
    await conn.execute("UPDATE sessions SET last_seen_at = ? WHERE id = ?", (now, session_id))


async def clear_mfa_pending(conn: Writer, session_id: int) -> None:
    await conn.execute("UPDATE sessions SET mfa_pending = 0 WHERE id = ?", (session_id,))


async def delete_session(conn: Writer, session_id: int) -> None:
    await conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))


async def delete_staff_sessions(conn: Writer, staff_id: int) -> int:
    cur = await conn.execute("DELETE FROM sessions WHERE staff_id = ?", (staff_id,))
    return cur.rowcount


async def list_staff_sessions(db: Source, staff_id: int) -> list[Session]:
    rows = await fetchall(db, f"SELECT {_COLS} FROM sessions WHERE staff_id = ? ORDER BY id", (staff_id,))
    return [_session(r) for r in rows]


async def delete_expired(conn: Writer, idle_before: str, created_before: str) -> int:
    cur = await conn.execute("DELETE FROM sessions WHERE last_seen_at < ? OR created_at < ?",
                             (idle_before, created_before))
    return cur.rowcount
