"""Guest and staff-phone accounts, their devices and sessions."""
# ruff: noqa: S608 — f-strings here interpolate only module-constant column lists; values are bound "?" parameters.

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from shared.sqlite import Writer

from .database import Source, fetchall, fetchone


@dataclass(frozen=True)
class Account:
    member: str
    kind: str
    display_name: str
    affiliation: str
    status: str
    login: str | None
    password_hash: str | None
    totp_secret: str | None
    totp_pending: str | None
    totp_last_step: int
    enrol_token_sha256: str | None
    enrol_expires_at: str | None
    expires_at: str | None
    device_approval: bool
    privacy_ack_at: str | None
    failed_logins: int
    locked_until: str | None
    safety_manager: bool = False     # may start a 安否確認 on the relay (LGWAN role, issue 6)

    @property
    def enrolled(self) -> bool:
        return self.password_hash is not None and self.totp_secret is not None


_COLS = ("member, kind, display_name, affiliation, status, login, password_hash, totp_secret, totp_pending,"
         " totp_last_step, enrol_token_sha256, enrol_expires_at, expires_at, device_approval, privacy_ack_at,"
         " failed_logins, locked_until, safety_manager")


def _account(row: aiosqlite.Row | tuple[object, ...]) -> Account:
    v = list(tuple(row))
    v[13] = bool(v[13])
    v[17] = bool(v[17])
    return Account(*v)


async def upsert_account(conn: Writer, *, member: str, kind: str, display_name: str, affiliation: str,
                         status: str, enrol_token_sha256: str | None, enrol_expires_at: str | None,
                         expires_at: str | None, device_approval: bool, now: str, safety_manager: bool = False) -> None:
    """What LGWAN says about an account. Credentials set here are kept; a new enrolment token
    (re-invitation) replaces the old one, and no token leaves the open one alone."""
    await conn.execute(
        "INSERT INTO accounts(member, kind, display_name, affiliation, status, enrol_token_sha256, enrol_expires_at,"
        " expires_at, device_approval, updated_at, safety_manager) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT(member) DO UPDATE SET"
        " kind = excluded.kind, display_name = excluded.display_name, affiliation = excluded.affiliation,"
        " status = excluded.status, expires_at = excluded.expires_at, device_approval = excluded.device_approval,"
        " safety_manager = excluded.safety_manager,"
        " enrol_token_sha256 = COALESCE(excluded.enrol_token_sha256, CASE WHEN excluded.status = 'suspended'"
        "   THEN NULL ELSE accounts.enrol_token_sha256 END),"
        " enrol_expires_at = COALESCE(excluded.enrol_expires_at, accounts.enrol_expires_at),"
        " updated_at = excluded.updated_at",
        (member, kind, display_name, affiliation, status, enrol_token_sha256, enrol_expires_at, expires_at,
         int(device_approval), now, int(safety_manager)))


async def delete_account(conn: Writer, member: str) -> None:
    await conn.execute("DELETE FROM sessions WHERE member = ?", (member,))
    await conn.execute("DELETE FROM devices WHERE member = ?", (member,))
    await conn.execute("DELETE FROM accounts WHERE member = ?", (member,))


async def get_account(db: Source, member: str) -> Account | None:
    row = await fetchone(db, f"SELECT {_COLS} FROM accounts WHERE member = ?", (member,))
    return _account(row) if row else None


async def get_by_login(db: Source, login: str) -> Account | None:
    row = await fetchone(db, f"SELECT {_COLS} FROM accounts WHERE login = ?", (login,))
    return _account(row) if row else None


async def get_by_enrol_token(db: Source, token_sha256: str) -> Account | None:
    row = await fetchone(db, f"SELECT {_COLS} FROM accounts WHERE enrol_token_sha256 = ?", (token_sha256,))
    return _account(row) if row else None


async def set_totp_pending(conn: Writer, member: str, secret: str, now: str) -> None:
    await conn.execute("UPDATE accounts SET totp_pending = ?, updated_at = ? WHERE member = ?", (secret, now, member))


async def complete_enrolment(conn: Writer, member: str, *, login: str, password_hash: str,
                             totp_secret: str, totp_step: int, notice_sha256: str | None, ack_at: str | None,
                             now: str) -> None:
    """Credentials set; the enrolment link is used up."""
    await conn.execute(
        "UPDATE accounts SET login = ?, password_hash = ?, totp_secret = ?, totp_pending = NULL, totp_last_step = ?,"
        " enrol_token_sha256 = NULL, enrol_expires_at = NULL, privacy_notice_sha256 = ?, privacy_ack_at = ?,"
        " failed_logins = 0, locked_until = NULL, updated_at = ? WHERE member = ?",
        (login, password_hash, totp_secret, totp_step, notice_sha256, ack_at, now, member))


async def record_login_failure(conn: Writer, member: str, locked_until: str | None) -> None:
    await conn.execute("UPDATE accounts SET failed_logins = failed_logins + 1,"
                       " locked_until = COALESCE(?, locked_until) WHERE member = ?", (locked_until, member))


async def record_login_success(conn: Writer, member: str, totp_step: int) -> None:
    await conn.execute("UPDATE accounts SET failed_logins = 0, locked_until = NULL, totp_last_step = ?"
                       " WHERE member = ?", (totp_step, member))


# --- devices --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Device:
    device_id: str
    member: str
    status: str


async def get_device_by_cookie(db: Source, member: str, cookie_sha256: str) -> Device | None:
    row = await fetchone(db, "SELECT device_id, member, status FROM devices WHERE member = ? AND cookie_sha256 = ?",
                         (member, cookie_sha256))
    return Device(*tuple(row)) if row else None


async def get_device(db: Source, device_id: str) -> Device | None:
    row = await fetchone(db, "SELECT device_id, member, status FROM devices WHERE device_id = ?", (device_id,))
    return Device(*tuple(row)) if row else None


async def insert_device(conn: Writer, device_id: str, member: str, cookie_sha256: str, label: str,
                        now: str) -> None:
    await conn.execute("INSERT INTO devices(device_id, member, cookie_sha256, label, status, created_at)"
                       " VALUES (?,?,?,?,'pending',?)", (device_id, member, cookie_sha256, label, now))


async def decide_device(conn: Writer, device_id: str, member: str, status: str, now: str) -> bool:
    cur = await conn.execute("UPDATE devices SET status = ?, decided_at = ? WHERE device_id = ? AND member = ?",
                             (status, now, device_id, member))
    return cur.rowcount == 1


# --- sessions -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Session:
    id: int
    member: str
    device_id: str | None
    csrf_token: str
    created_at: str
    last_seen_at: str


async def insert_session(conn: Writer, token_sha256: str, member: str, device_id: str | None,
                         csrf_token: str, now: str, ip: str, user_agent: str) -> int:
    cur = await conn.execute(
        "INSERT INTO sessions(token_sha256, member, device_id, csrf_token, created_at, last_seen_at, source_ip,"
        " user_agent) VALUES (?,?,?,?,?,?,?,?)", (token_sha256, member, device_id, csrf_token, now, now, ip,
                                                  user_agent[:300]))
    return int(cur.lastrowid or 0)


async def get_session_and_account(db: Source, token_sha256: str) -> tuple[Session, Account | None] | None:
    """A session and its account (None when the account is gone) in one read: every API request asks."""
    cols = ", ".join("a." + c.strip() for c in _COLS.split(","))
    row = await fetchone(db, "SELECT s.id, s.member, s.device_id, s.csrf_token, s.created_at, s.last_seen_at,"
                             f" a.member IS NOT NULL, {cols} FROM sessions s LEFT JOIN accounts a ON a.member = s.member"
                             " WHERE s.token_sha256 = ?", (token_sha256,))
    if row is None:
        return None
    values = tuple(row)
    return Session(*values[:6]), _account(values[7:]) if values[6] else None


async def touch_session(conn: Writer, session_id: int, now: str) -> None:
    await conn.execute("UPDATE sessions SET last_seen_at = ? WHERE id = ?", (now, session_id))


async def delete_session(conn: Writer, session_id: int) -> None:
    await conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))


async def delete_sessions_of(conn: Writer, member: str, device_id: str | None = None) -> int:
    if device_id is None:
        cur = await conn.execute("DELETE FROM sessions WHERE member = ?", (member,))
    else:
        cur = await conn.execute("DELETE FROM sessions WHERE member = ? AND device_id = ?", (member, device_id))
    return cur.rowcount


async def delete_expired_sessions(conn: Writer, idle_before: str, created_before: str) -> None:
    await conn.execute("DELETE FROM sessions WHERE last_seen_at < ? OR created_at < ?", (idle_before, created_before))


async def list_accounts(db: Source) -> list[Account]:
    return [_account(r) for r in await fetchall(db, f"SELECT {_COLS} FROM accounts ORDER BY member")]
