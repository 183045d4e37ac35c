"""Organisations, departments (部・課・係), ranks (職層), staff and their assignment history."""

from __future__ import annotations

import json
from dataclasses import dataclass

import aiosqlite

from shared.sqlite import Writer

from .database import Source, fetchall, fetchone


@dataclass(frozen=True)
class Organisation:
    id: int
    code: str
    name: str
    ip_allowlist: tuple[str, ...]
    mfa_policy: str


@dataclass(frozen=True)
class Department:
    id: int
    org_id: int
    code: str
    parent_id: int | None
    name: str
    kind: str
    sort_order: int
    active: bool


@dataclass(frozen=True)
class Rank:
    id: int
    org_id: int
    code: str
    name: str
    level: int


@dataclass(frozen=True)
class Staff:
    id: int
    org_id: int
    login: str
    employee_no: str | None
    display_name: str
    kana: str
    department_id: int | None
    rank_id: int | None
    title: str
    role: str
    status: str
    password_hash: str | None
    totp_secret: str | None
    totp_pending: str | None
    totp_last_step: int
    failed_logins: int
    locked_until: str | None

    @property
    def is_admin(self) -> bool:
        return self.role in ("org_admin", "server_admin")


_STAFF_COLS = (
    "id, org_id, login, employee_no, display_name, kana, department_id, rank_id, title, role, status,"
    " password_hash, totp_secret, totp_pending, totp_last_step, failed_logins, locked_until"
)


def _org(row: aiosqlite.Row) -> Organisation:
    return Organisation(row["id"], row["code"], row["name"], tuple(json.loads(row["ip_allowlist"])), row["mfa_policy"])


def _dept(row: aiosqlite.Row) -> Department:
    return Department(row["id"], row["org_id"], row["code"], row["parent_id"], row["name"], row["kind"],
                      row["sort_order"], bool(row["active"]))


def _staff(row: aiosqlite.Row) -> Staff:
    return Staff(*[row[i] for i in range(17)])


# --- organisations -------------------------------------------------------------------------

async def insert_org(conn: Writer, code: str, name: str, now: str) -> int:
    cur = await conn.execute("INSERT INTO organisations(code, name, created_at) VALUES (?, ?, ?)", (code, name, now))
    return int(cur.lastrowid or 0)


async def get_org(db: Source, org_id: int) -> Organisation | None:
    row = await fetchone(db, "SELECT * FROM organisations WHERE id = ?", (org_id,))
    return _org(row) if row else None


async def get_org_by_code(db: Source, code: str) -> Organisation | None:
    row = await fetchone(db, "SELECT * FROM organisations WHERE code = ?", (code,))
    return _org(row) if row else None


async def list_orgs(db: Source) -> list[Organisation]:
    return [_org(r) for r in await fetchall(db, "SELECT * FROM organisations ORDER BY id")]


async def update_org_policy(conn: Writer, org_id: int, ip_allowlist: list[str] | None,
                            mfa_policy: str | None) -> None:
    if ip_allowlist is not None:
        await conn.execute("UPDATE organisations SET ip_allowlist = ? WHERE id = ?", (json.dumps(ip_allowlist), org_id))
    if mfa_policy is not None:
        await conn.execute("UPDATE organisations SET mfa_policy = ? WHERE id = ?", (mfa_policy, org_id))


# --- departments and ranks -------------------------------------------------------------------

async def upsert_department(conn: Writer, org_id: int, code: str, name: str, kind: str,
                            parent_id: int | None, sort_order: int) -> tuple[int, bool]:
    """Insert or update by (org, code). Returns (id, changed)."""
    row = await fetchone(conn, "SELECT id, name, kind, parent_id, sort_order, active FROM departments"
                            " WHERE org_id = ? AND code = ?", (org_id, code))
    if row is None:
        cur2 = await conn.execute(
            "INSERT INTO departments(org_id, code, parent_id, name, kind, sort_order) VALUES (?, ?, ?, ?, ?, ?)",
            (org_id, code, parent_id, name, kind, sort_order))
        return int(cur2.lastrowid or 0), True
    if (row["name"], row["kind"], row["parent_id"], row["sort_order"], row["active"]) == (name, kind, parent_id, sort_order, 1):
        return int(row["id"]), False
    await conn.execute("UPDATE departments SET name=?, kind=?, parent_id=?, sort_order=?, active=1 WHERE id=?",
                       (name, kind, parent_id, sort_order, row["id"]))
    return int(row["id"]), True


async def list_departments(db: Source, org_id: int) -> list[Department]:
    rows = await fetchall(db, "SELECT * FROM departments WHERE org_id = ? ORDER BY sort_order, id", (org_id,))
    return [_dept(r) for r in rows]


async def get_department(db: Source, dept_id: int) -> Department | None:
    row = await fetchone(db, "SELECT * FROM departments WHERE id = ?", (dept_id,))
    return _dept(row) if row else None


async def upsert_rank(conn: Writer, org_id: int, code: str, name: str, level: int) -> tuple[int, bool]:
    row = await fetchone(conn, "SELECT id, name, level FROM ranks WHERE org_id = ? AND code = ?", (org_id, code))
    if row is None:
        cur2 = await conn.execute("INSERT INTO ranks(org_id, code, name, level) VALUES (?, ?, ?, ?)",
                                  (org_id, code, name, level))
        return int(cur2.lastrowid or 0), True
    if (row["name"], row["level"]) == (name, level):
        return int(row["id"]), False
    await conn.execute("UPDATE ranks SET name = ?, level = ? WHERE id = ?", (name, level, row["id"]))
    return int(row["id"]), True


async def list_ranks(db: Source, org_id: int) -> list[Rank]:
    rows = await fetchall(db, "SELECT id, org_id, code, name, level FROM ranks WHERE org_id = ? ORDER BY level", (org_id,))
    return [Rank(*tuple(r)) for r in rows]


async def get_rank(db: Source, rank_id: int) -> Rank | None:
    row = await fetchone(db, "SELECT id, org_id, code, name, level FROM ranks WHERE id = ?", (rank_id,))
    return Rank(*tuple(row)) if row else None


# --- staff ------------------------------------------------------------------------------------

async def get_staff(db: Source, staff_id: int) -> Staff | None:
    row = await fetchone(db, f"SELECT {_STAFF_COLS} FROM staff WHERE id = ?", (staff_id,))
    return _staff(row) if row else None


async def active_admin_ids(db: Source, org_id: int) -> list[int]:
    """The organisation's active admins (who decide on phone and guest devices)."""
    rows = await fetchall(db, "SELECT id FROM staff WHERE org_id = ? AND status = 'active'"
                              " AND role IN ('org_admin', 'server_admin') ORDER BY id", (org_id,))
    return [r[0] for r in rows]


async def get_staff_by_login(db: Source, login: str) -> Staff | None:
    row = await fetchone(db, f"SELECT {_STAFF_COLS} FROM staff WHERE login = ?", (login,))
    return _staff(row) if row else None


async def get_staff_by_employee_no(conn: Writer, org_id: int, employee_no: str) -> Staff | None:
    row = await fetchone(conn, f"SELECT {_STAFF_COLS} FROM staff WHERE org_id = ? AND employee_no = ?",
                            (org_id, employee_no))
    return _staff(row) if row else None


async def get_staff_many(db: Source, staff_ids: list[int]) -> list[Staff]:
    if not staff_ids:
        return []
    marks = ",".join("?" * len(staff_ids))
    return [_staff(r) for r in await fetchall(db, f"SELECT {_STAFF_COLS} FROM staff WHERE id IN ({marks})", staff_ids)]


async def insert_staff(conn: Writer, *, org_id: int, login: str, employee_no: str | None,
                       display_name: str, kana: str, department_id: int | None, rank_id: int | None, title: str,
                       role: str, password_hash: str | None, now: str) -> int:
    cur = await conn.execute(
        "INSERT INTO staff(org_id, login, employee_no, display_name, kana, department_id, rank_id, title, role,"
        " password_hash, password_changed_at, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (org_id, login, employee_no, display_name, kana, department_id, rank_id, title, role, password_hash,
         now if password_hash else None, now))
    return int(cur.lastrowid or 0)


async def update_staff_profile(conn: Writer, staff_id: int, *, display_name: str, kana: str) -> None:
    await conn.execute("UPDATE staff SET display_name = ?, kana = ? WHERE id = ?", (display_name, kana, staff_id))


async def update_staff_assignment(conn: Writer, staff_id: int, department_id: int | None,
                                  rank_id: int | None, title: str) -> None:
    await conn.execute("UPDATE staff SET department_id = ?, rank_id = ?, title = ? WHERE id = ?",
                       (department_id, rank_id, title, staff_id))


async def update_staff_role(conn: Writer, staff_id: int, role: str) -> None:
    await conn.execute("UPDATE staff SET role = ? WHERE id = ?", (role, staff_id))


async def update_staff_status(conn: Writer, staff_id: int, status: str, now: str) -> None:
    await conn.execute("UPDATE staff SET status = ?, status_changed_at = ? WHERE id = ?", (status, now, staff_id))


async def set_password_hash(conn: Writer, staff_id: int, password_hash: str, now: str) -> None:
    await conn.execute("UPDATE staff SET password_hash = ?, password_changed_at = ? WHERE id = ?",
                       (password_hash, now, staff_id))


async def record_login_failure(conn: Writer, staff_id: int, locked_until: str | None) -> None:
    await conn.execute("UPDATE staff SET failed_logins = failed_logins + 1, locked_until = COALESCE(?, locked_until)"
                       " WHERE id = ?", (locked_until, staff_id))


async def reset_login_failures(conn: Writer, staff_id: int) -> None:
    await conn.execute("UPDATE staff SET failed_logins = 0, locked_until = NULL WHERE id = ?", (staff_id,))


async def set_totp_pending(conn: Writer, staff_id: int, secret: str | None) -> None:
    await conn.execute("UPDATE staff SET totp_pending = ? WHERE id = ?", (secret, staff_id))


async def confirm_totp(conn: Writer, staff_id: int, secret: str, step: int) -> None:
    await conn.execute("UPDATE staff SET totp_secret = ?, totp_pending = NULL, totp_last_step = ? WHERE id = ?",
                       (secret, step, staff_id))


async def set_totp_last_step(conn: Writer, staff_id: int, step: int) -> None:
    await conn.execute("UPDATE staff SET totp_last_step = ? WHERE id = ?", (step, staff_id))


async def clear_totp(conn: Writer, staff_id: int) -> None:
    await conn.execute("UPDATE staff SET totp_secret = NULL, totp_pending = NULL WHERE id = ?", (staff_id,))


@dataclass(frozen=True)
class StaffCard:
    """What any colleague may see of a staff member (profile card)."""

    id: int
    org_id: int
    login: str
    display_name: str
    kana: str
    department_id: int | None
    department_name: str
    rank_name: str
    title: str
    status: str


_CARD_SQL = (
    "SELECT s.id, s.org_id, s.login, s.display_name, s.kana, s.department_id, COALESCE(d.name, ''),"
    " COALESCE(r.name, ''), s.title, s.status FROM staff s"
    " LEFT JOIN departments d ON d.id = s.department_id LEFT JOIN ranks r ON r.id = s.rank_id"
)


async def get_cards(db: Source, staff_ids: list[int]) -> list[StaffCard]:
    if not staff_ids:
        return []
    marks = ",".join("?" * len(staff_ids))
    rows = await fetchall(db, f"{_CARD_SQL} WHERE s.id IN ({marks})", staff_ids)
    return [StaffCard(*tuple(r)) for r in rows]


async def search_cards(db: Source, org_ids: list[int], query: str, department_id: int | None, limit: int,
                       offset: int) -> list[StaffCard]:
    marks = ",".join("?" * len(org_ids))
    # Guests (issue 5) have a staff row so they can author messages, but are never in the directory.
    sql = f"{_CARD_SQL} WHERE s.org_id IN ({marks}) AND s.status = 'active' AND s.role != 'guest'"
    params: list[object] = list(org_ids)
    if query:
        sql += " AND (s.display_name LIKE ? ESCAPE '\\' OR s.kana LIKE ? ESCAPE '\\' OR s.login LIKE ? ESCAPE '\\')"
        like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        params += [like, like, like]
    if department_id is not None:
        sql += " AND s.department_id = ?"
        params.append(department_id)
    sql += " ORDER BY s.kana, s.id LIMIT ? OFFSET ?"
    params += [limit, offset]
    return [StaffCard(*tuple(r)) for r in await fetchall(db, sql, params)]


async def list_staff_admin(db: Source, org_id: int, status: str | None, limit: int, offset: int) -> list[Staff]:
    sql = f"SELECT {_STAFF_COLS} FROM staff WHERE org_id = ? AND role != 'guest'"   # guests: /api/rooms/{id}/guests
    params: list[object] = [org_id]
    if status:
        sql += " AND status = ?"
        params.append(status)
    sql += " ORDER BY id LIMIT ? OFFSET ?"
    return [_staff(r) for r in await fetchall(db, sql, params + [limit, offset])]


async def department_path(db: Source, department_id: int | None) -> str:
    """'総務部 総務課' — the 所属 string stored with each message and audit entry.

    One query walking up the tree (every request's auth needs it); the depth bound stops a
    corrupted cycle.
    """
    if department_id is None:
        return ""
    rows = await fetchall(
        db, "WITH RECURSIVE up(parent_id, name, depth) AS ("
            " SELECT parent_id, name, 0 FROM departments WHERE id = ?"
            " UNION ALL SELECT d.parent_id, d.name, up.depth + 1 FROM departments d JOIN up ON d.id = up.parent_id"
            " WHERE up.depth < 7)"
            " SELECT name FROM up ORDER BY depth DESC", (department_id,))
    return " ".join(r[0] for r in rows)


async def active_staff_ids_in_departments(conn: Writer, department_ids: list[int]) -> list[int]:
    marks = ",".join("?" * len(department_ids))
    return [r[0] for r in await fetchall(conn, f"SELECT id FROM staff WHERE status = 'active' AND department_id IN ({marks})",
                            department_ids)]


async def active_staff_ids_with_rank(conn: Writer, rank_id: int) -> list[int]:
    return [r[0] for r in await fetchall(conn, "SELECT id FROM staff WHERE status = 'active' AND rank_id = ?", (rank_id,))]


async def descendant_department_ids(conn: Source, department_id: int) -> list[int]:
    return [r[0] for r in await fetchall(conn,
        "WITH RECURSIVE sub(id) AS (SELECT ? UNION SELECT d.id FROM departments d JOIN sub ON d.parent_id = sub.id)"
        " SELECT id FROM sub", (department_id,))]


async def ancestor_department_ids(conn: Source, department_id: int) -> list[int]:
    return [r[0] for r in await fetchall(conn,
        "WITH RECURSIVE up(id, parent_id) AS (SELECT id, parent_id FROM departments WHERE id = ?"
        " UNION SELECT d.id, d.parent_id FROM departments d JOIN up ON d.id = up.parent_id) SELECT id FROM up",
        (department_id,))]


# --- assignments (人事異動) ----------------------------------------------------------------------

async def insert_assignment(conn: Writer, staff_id: int, department_id: int | None, rank_id: int | None,
                            title: str, effective_date: str, applied_at: str | None, created_by: int | None,
                            now: str) -> int:
    cur = await conn.execute(
        "INSERT INTO staff_assignments(staff_id, department_id, rank_id, title, effective_date, applied_at,"
        " created_by, created_at) VALUES (?,?,?,?,?,?,?,?)",
        (staff_id, department_id, rank_id, title, effective_date, applied_at, created_by, now))
    return int(cur.lastrowid or 0)


@dataclass(frozen=True)
class Assignment:
    id: int
    staff_id: int
    department_id: int | None
    rank_id: int | None
    title: str
    effective_date: str
    applied_at: str | None


async def due_assignments(conn: Writer, today: str) -> list[Assignment]:
    return [Assignment(*tuple(r)) for r in await fetchall(conn,
        "SELECT id, staff_id, department_id, rank_id, title, effective_date, applied_at FROM staff_assignments"
        " WHERE applied_at IS NULL AND effective_date <= ? ORDER BY effective_date, id", (today,))]


async def mark_assignment_applied(conn: Writer, assignment_id: int, now: str) -> None:
    await conn.execute("UPDATE staff_assignments SET applied_at = ? WHERE id = ?", (now, assignment_id))


async def list_assignments(db: Source, staff_id: int) -> list[Assignment]:
    rows = await fetchall(db,
        "SELECT id, staff_id, department_id, rank_id, title, effective_date, applied_at FROM staff_assignments"
        " WHERE staff_id = ? ORDER BY effective_date, id", (staff_id,))
    return [Assignment(*tuple(r)) for r in rows]
