"""Guests, staff-phone grants and devices registered on the relay."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from shared.sqlite import Writer

from .bridge import fetchall, fetchone  # one aiosqlite round trip per query
from .database import Source


@dataclass(frozen=True)
class Guest:
    staff_id: int
    display_name: str
    affiliation: str
    invited_by: int
    invited_room_id: int | None
    status: str
    invite_token_sha256: str | None
    invite_expires_at: str | None
    expires_at: str
    privacy_ack_at: str | None
    enrolled_at: str | None
    approved_by: int | None
    approved_at: str | None
    created_at: str


_GUEST_COLS = ("g.staff_id, s.display_name, g.affiliation, g.invited_by, g.invited_room_id, g.status,"
               " g.invite_token_sha256, g.invite_expires_at, g.expires_at, g.privacy_ack_at, g.enrolled_at,"
               " g.approved_by, g.approved_at, g.created_at")
_GUEST_FROM = "FROM guests g JOIN staff s ON s.id = g.staff_id"


def _guest(row: aiosqlite.Row) -> Guest:
    return Guest(*tuple(row))


async def insert_guest(conn: Writer, *, staff_id: int, affiliation: str, invited_by: int,
                       room_id: int, token_sha256: str, invite_expires_at: str, expires_at: str, now: str) -> None:
    await conn.execute(
        "INSERT INTO guests(staff_id, affiliation, invited_by, invited_room_id, status, invite_token_sha256,"
        " invite_expires_at, expires_at, created_at) VALUES (?,?,?,?,'invited',?,?,?,?)",
        (staff_id, affiliation, invited_by, room_id, token_sha256, invite_expires_at, expires_at, now))


async def get_guest(db: Source, staff_id: int) -> Guest | None:
    row = await fetchone(db, f"SELECT {_GUEST_COLS} {_GUEST_FROM} WHERE g.staff_id = ?", (staff_id,))
    return _guest(row) if row else None


async def list_guests_in_room(db: Source, room_id: int) -> list[Guest]:
    """The room's guests, and the ended ones (removed, expired) first invited to it: ending a guest
    takes them out of every room, and the owner still sees who had access and how it ended."""
    rows = await fetchall(db, f"SELECT {_GUEST_COLS} {_GUEST_FROM}"
                              " WHERE g.staff_id IN (SELECT staff_id FROM room_members WHERE room_id = ?)"
                              " OR (g.invited_room_id = ? AND g.status IN ('removed', 'expired'))"
                              " ORDER BY g.created_at", (room_id, room_id))
    return [_guest(r) for r in rows]


async def list_open_guests(db: Source) -> list[Guest]:
    """Guests whose account has not ended (for a full resync of the relay)."""
    rows = await fetchall(db, f"SELECT {_GUEST_COLS} {_GUEST_FROM} WHERE g.status IN ('invited', 'enrolled', 'active')"
                              " ORDER BY g.staff_id")
    return [_guest(r) for r in rows]


async def due_guests(conn: Writer, now: str) -> list[Guest]:
    """Open guests whose account, or whose unused invitation, has expired."""
    rows = await fetchall(conn, f"SELECT {_GUEST_COLS} {_GUEST_FROM} WHERE (g.status IN ('invited', 'enrolled', 'active')"
                                " AND g.expires_at < ?) OR (g.status = 'invited' AND g.invite_expires_at < ?)",
                          (now, now))
    return [_guest(r) for r in rows]


async def guest_member_ids(conn: Writer, room_id: int) -> list[int]:
    """Members of a room who are guests."""
    rows = await fetchall(conn, "SELECT m.staff_id FROM room_members m JOIN staff s ON s.id = m.staff_id"
                                " WHERE m.room_id = ? AND s.role = 'guest'", (room_id,))
    return [r[0] for r in rows]


async def set_guest_invite(conn: Writer, staff_id: int, token_sha256: str | None,
                           invite_expires_at: str | None) -> None:
    await conn.execute("UPDATE guests SET invite_token_sha256 = ?, invite_expires_at = ? WHERE staff_id = ?",
                       (token_sha256, invite_expires_at, staff_id))


async def mark_guest_enrolled(conn: Writer, staff_id: int, notice_sha256: str | None, ack_at: str,
                              now: str) -> None:
    await conn.execute(
        "UPDATE guests SET status = CASE status WHEN 'invited' THEN 'enrolled' ELSE status END,"
        " privacy_notice_sha256 = ?, privacy_ack_at = ?, enrolled_at = ?, invite_token_sha256 = NULL,"
        " invite_expires_at = NULL WHERE staff_id = ?", (notice_sha256, ack_at, now, staff_id))


async def mark_guest_approved(conn: Writer, staff_id: int, approved_by: int, now: str) -> None:
    await conn.execute("UPDATE guests SET status = 'active', approved_by = ?, approved_at = ? WHERE staff_id = ?",
                       (approved_by, now, staff_id))


async def end_guest(conn: Writer, staff_id: int, status: str, now: str) -> None:
    """``status`` is 'removed' or 'expired'."""
    await conn.execute("UPDATE guests SET status = ?, ended_at = ?, invite_token_sha256 = NULL WHERE staff_id = ?",
                       (status, now, staff_id))


# --- staff phones ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class MobileGrant:
    staff_id: int
    status: str
    enrol_token_sha256: str | None
    enrol_expires_at: str | None
    granted_by: int
    granted_at: str
    enrolled_at: str | None
    revoked_at: str | None


_GRANT_COLS = "staff_id, status, enrol_token_sha256, enrol_expires_at, granted_by, granted_at, enrolled_at, revoked_at"


async def get_grant(db: Source, staff_id: int) -> MobileGrant | None:
    row = await fetchone(db, f"SELECT {_GRANT_COLS} FROM mobile_grants WHERE staff_id = ?", (staff_id,))
    return MobileGrant(*tuple(row)) if row else None


async def upsert_grant(conn: Writer, staff_id: int, token_sha256: str, enrol_expires_at: str,
                       granted_by: int, now: str) -> None:
    await conn.execute(
        "INSERT INTO mobile_grants(staff_id, status, enrol_token_sha256, enrol_expires_at, granted_by, granted_at)"
        " VALUES (?, 'granted', ?, ?, ?, ?) ON CONFLICT(staff_id) DO UPDATE SET"
        " status = CASE WHEN mobile_grants.status = 'active' THEN 'active' ELSE 'granted' END,"
        " enrol_token_sha256 = excluded.enrol_token_sha256, enrol_expires_at = excluded.enrol_expires_at,"
        " granted_by = excluded.granted_by, granted_at = excluded.granted_at, revoked_at = NULL",
        (staff_id, token_sha256, enrol_expires_at, granted_by, now))


async def mark_grant_enrolled(conn: Writer, staff_id: int, now: str) -> None:
    await conn.execute("UPDATE mobile_grants SET status = 'active', enrolled_at = ?, enrol_token_sha256 = NULL,"
                       " enrol_expires_at = NULL WHERE staff_id = ? AND status IN ('granted', 'active')",
                       (now, staff_id))


async def revoke_grant(conn: Writer, staff_id: int, now: str) -> None:
    await conn.execute("UPDATE mobile_grants SET status = 'revoked', revoked_at = ?, enrol_token_sha256 = NULL"
                       " WHERE staff_id = ?", (now, staff_id))


async def list_grants(db: Source, org_id: int) -> list[MobileGrant]:
    rows = await fetchall(db, f"SELECT {', '.join('g.' + c.strip() for c in _GRANT_COLS.split(','))}"
                              " FROM mobile_grants g JOIN staff s ON s.id = g.staff_id WHERE s.org_id = ?"
                              " ORDER BY g.staff_id", (org_id,))
    return [MobileGrant(*tuple(r)) for r in rows]


async def list_open_grants(db: Source) -> list[MobileGrant]:
    rows = await fetchall(db, f"SELECT {_GRANT_COLS} FROM mobile_grants WHERE status IN ('granted', 'active')"
                              " ORDER BY staff_id")
    return [MobileGrant(*tuple(r)) for r in rows]


# --- devices --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Device:
    device_id: str
    staff_id: int
    label: str
    status: str
    requested_at: str
    decided_by: int | None
    decided_at: str | None


_DEVICE_COLS = "d.device_id, d.staff_id, d.label, d.status, d.requested_at, d.decided_by, d.decided_at"


async def insert_device(conn: Writer, device_id: str, staff_id: int, label: str, now: str) -> bool:
    """Record a pending device; False when the id is already known."""
    cur = await conn.execute("INSERT OR IGNORE INTO relay_devices(device_id, staff_id, label, status, requested_at)"
                             " VALUES (?,?,?,'pending',?)", (device_id, staff_id, label, now))
    return cur.rowcount == 1


async def get_device(db: Source, device_id: str) -> Device | None:
    row = await fetchone(db, f"SELECT {_DEVICE_COLS} FROM relay_devices d WHERE d.device_id = ?", (device_id,))
    return Device(*tuple(row)) if row else None


async def decide_device(conn: Writer, device_id: str, status: str, decided_by: int | None,
                        now: str) -> None:
    await conn.execute("UPDATE relay_devices SET status = ?, decided_by = ?, decided_at = ? WHERE device_id = ?",
                       (status, decided_by, now, device_id))


async def revoke_devices_of(conn: Writer, staff_id: int, now: str) -> list[str]:
    rows = await fetchall(conn, "SELECT device_id FROM relay_devices WHERE staff_id = ? AND status != 'revoked'",
                          (staff_id,))
    await conn.execute("UPDATE relay_devices SET status = 'revoked', decided_at = ? WHERE staff_id = ?"
                       " AND status != 'revoked'", (now, staff_id))
    return [r[0] for r in rows]


async def list_devices(db: Source, org_id: int, status: str | None, limit: int) -> list[Device]:
    sql = (f"SELECT {_DEVICE_COLS} FROM relay_devices d JOIN staff s ON s.id = d.staff_id WHERE s.org_id = ?")
    params: list[object] = [org_id]
    if status is not None:
        sql += " AND d.status = ?"
        params.append(status)
    rows = await fetchall(db, sql + " ORDER BY d.requested_at DESC LIMIT ?", [*params, limit])
    return [Device(*tuple(r)) for r in rows]


async def list_decided_devices(db: Source) -> list[Device]:
    rows = await fetchall(db, f"SELECT {_DEVICE_COLS} FROM relay_devices d WHERE d.status IN ('approved', 'revoked')"
                              " ORDER BY d.requested_at")
    return [Device(*tuple(r)) for r in rows]
