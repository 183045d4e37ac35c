"""Organisation administration: organisations, staff accounts, HR imports, 人事異動, suspension and
retirement. Every change is audited in its own transaction; imports apply whole or not at all."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared import limits
from shared.sqlite import Writer
from shared.textsafe import clean_line
from shared.timeutil import JST, now_iso

from ..errors import AppError
from ..hub import Hub
from ..storage import org as store
from ..storage import sessions as session_store
from ..storage.database import Database
from ..storage.org import Staff
from . import hr_csv
from .actor import Actor
from .audit import AuditService
from .auth import validate_cidrs
from .events import EventService
from .passwords import Passwords
from .rooms import RoomService

STATUSES = ("active", "suspended", "retired")
ROLES = ("staff", "org_admin", "auditor", "records_officer", "safety_manager")


def today_jst() -> str:
    return datetime.now(JST).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class TransferItem:
    staff_id: int
    department_id: int | None
    rank_id: int | None
    title: str | None
    effective_date: str


class OrgService:
    def __init__(self, db: Database, hub: Hub, rooms: RoomService, events: EventService, audit: AuditService,
                 passwords: Passwords) -> None:
        self.db = db
        self.hub = hub
        self.rooms = rooms
        self.events = events
        self.audit = audit
        self.passwords = passwords

    # --- guards --------------------------------------------------------------------------------

    def require_admin(self, actor: Actor, org_id: int) -> None:
        if actor.is_server_admin:
            return
        if not actor.is_org_admin or actor.org_id != org_id:
            raise AppError("forbidden")

    async def admin_staff(self, actor: Actor, staff_id: int) -> Staff:
        """A staff member the admin may manage (same organisation), else ``staff_not_found``."""
        staff = await store.get_staff(self.db, staff_id)
        if staff is None or staff.role == "guest":   # guests are managed per room (services/guests.py)
            raise AppError("staff_not_found")
        if not (actor.is_server_admin or (actor.is_org_admin and actor.org_id == staff.org_id)):
            raise AppError("staff_not_found")
        return staff

    # --- organisations -------------------------------------------------------------------------

    async def create_org(self, actor: Actor, code: str, name: str) -> int:
        if actor.role not in ("server_admin", "system"):
            raise AppError("forbidden")
        async with self.db.transaction("create_org") as conn:
            org_id = await store.insert_org(conn, clean_line(code), clean_line(name), now_iso())
            await self.audit.record(conn, actor, "org.create", target_type="org", target_id=org_id, detail={"code": code})
        return org_id

    async def update_policy(self, actor: Actor, org_id: int, ip_allowlist: list[str] | None,
                            mfa_policy: str | None) -> None:
        self.require_admin(actor, org_id)
        cidrs = validate_cidrs(ip_allowlist) if ip_allowlist is not None else None
        if mfa_policy is not None and mfa_policy not in ("admins", "all"):
            raise AppError("invalid_request", field="mfa_policy")
        async with self.db.transaction("org_policy") as conn:
            await store.update_org_policy(conn, org_id, cidrs, mfa_policy)
            await self.audit.record(conn, actor, "org.policy", target_type="org", target_id=org_id,
                                    detail={"ip_allowlist": cidrs, "mfa_policy": mfa_policy})

    # --- staff accounts ------------------------------------------------------------------------

    async def create_staff(self, actor: Actor, org_id: int, *, login: str, display_name: str, kana: str,
                           employee_no: str | None, department_id: int | None, rank_id: int | None, title: str,
                           role: str, password: str | None) -> int:
        self.require_admin(actor, org_id)
        if role not in ROLES and not (role == "server_admin" and actor.is_server_admin):
            raise AppError("invalid_request", field="role")
        name = clean_line(display_name)[: limits.MAX_DISPLAY_NAME_CHARS]
        if not name:
            raise AppError("invalid_request", field="display_name")
        await self._check_placement(org_id, department_id, rank_id)
        digest = None
        if password is not None:
            self.passwords.check_policy(password, login)
            digest = await self.passwords.hash(password)
        if await store.get_staff_by_login(self.db, login) is not None:
            raise AppError("login_taken")
        now = now_iso()
        async with self.db.transaction("create_staff") as conn:
            staff_id = await store.insert_staff(conn, org_id=org_id, login=login, employee_no=employee_no,
                                                display_name=name, kana=clean_line(kana), department_id=department_id,
                                                rank_id=rank_id, title=clean_line(title), role=role,
                                                password_hash=digest, now=now)
            await store.insert_assignment(conn, staff_id, department_id, rank_id, clean_line(title), today_jst(), now,
                                          actor.staff_id, now)
            await self.rooms.sync_generated_rooms(conn, org_id)
            await self.audit.record(conn, actor, "staff.create", target_type="staff", target_id=staff_id,
                                    detail={"login": login, "role": role})
        return staff_id

    async def _check_placement(self, org_id: int, department_id: int | None, rank_id: int | None) -> None:
        if department_id is not None:
            dept = await store.get_department(self.db, department_id)
            if dept is None or dept.org_id != org_id:
                raise AppError("department_not_found")
        if rank_id is not None:
            rank = await store.get_rank(self.db, rank_id)
            if rank is None or rank.org_id != org_id:
                raise AppError("invalid_request", field="rank_id")

    async def set_password(self, actor: Actor, staff_id: int, password: str) -> None:
        staff = await self.admin_staff(actor, staff_id)
        self.passwords.check_policy(password, staff.login)
        digest = await self.passwords.hash(password)
        async with self.db.transaction("admin_set_password") as conn:
            await store.set_password_hash(conn, staff_id, digest, now_iso())
            await store.reset_login_failures(conn, staff_id)
            await self.audit.record(conn, actor, "staff.password_reset", target_type="staff", target_id=staff_id)

    async def reset_totp(self, actor: Actor, staff_id: int) -> None:
        await self.admin_staff(actor, staff_id)
        async with self.db.transaction("admin_reset_totp") as conn:
            await store.clear_totp(conn, staff_id)
            await self._end_sessions(conn, staff_id, "totp reset")
            await self.audit.record(conn, actor, "staff.totp_reset", target_type="staff", target_id=staff_id)

    async def set_role(self, actor: Actor, staff_id: int, role: str) -> None:
        staff = await self.admin_staff(actor, staff_id)
        if role not in ROLES:
            raise AppError("invalid_request", field="role")
        async with self.db.transaction("set_role") as conn:
            await store.update_staff_role(conn, staff_id, role)
            # A role change alters what the sessions may do: make the person log in again.
            await self._end_sessions(conn, staff_id, "role changed")
            await self.audit.record(conn, actor, "staff.role", target_type="staff", target_id=staff_id,
                                    detail={"from": staff.role, "to": role})

    async def set_status(self, actor: Actor, staff_id: int, status: str, reason: str = "") -> None:
        """Suspend, retire or reactivate. Suspension and retirement cut the person off at once."""
        staff = await self.admin_staff(actor, staff_id)
        if status not in STATUSES:
            raise AppError("invalid_request", field="status")
        if staff.id == actor.staff_id and status != "active":
            raise AppError("invalid_transition", reason="cannot_disable_self")
        if staff.status == "retired" and status != "retired":
            raise AppError("invalid_transition", reason="retired_is_final")
        async with self.db.transaction("set_status") as conn:
            await self._apply_status(conn, actor, staff, status, reason)

    async def _apply_status(self, conn: Writer, actor: Actor, staff: Staff, status: str,
                            reason: str) -> None:
        if staff.status == status:
            return
        await store.update_staff_status(conn, staff.id, status, now_iso())
        ended = 0
        if status != "active":
            ended = await self._end_sessions(conn, staff.id, f"account {status}")
        if status == "retired":
            # Their messages stay; they leave every room so receipts stop counting them.
            await self.rooms.remove_from_all_rooms(conn, staff.id)
        await self.rooms.sync_generated_rooms(conn, staff.org_id)
        await self.audit.record(conn, actor, f"staff.{ 'reactivate' if status == 'active' else status }",
                                target_type="staff", target_id=staff.id,
                                detail={"from": staff.status, "sessions_ended": ended, "reason": reason[:200]})

    async def _profile_changed(self, conn: Writer, staff_id: int) -> None:
        """Name, 所属 or role changed (CSV import, 人事異動): the person's own sockets hear it, and the
        relay bridge sends the new card to the crossing rooms they are in and their phone account."""
        await self.events.emit(conn, "staff.profile", {"staff_id": staff_id}, staff_id=staff_id)

    async def _end_sessions(self, conn: Writer, staff_id: int, reason: str) -> int:
        count = await session_store.delete_staff_sessions(conn, staff_id)
        await self.events.emit(conn, "session.ended", {"reason": reason}, staff_id=staff_id)
        # After commit the event is queued first, then the sockets are closed.
        self.db.after_commit(lambda: self.hub.close_staff(staff_id, reason))
        return count

    async def end_sessions(self, actor: Actor, staff_id: int) -> int:
        await self.admin_staff(actor, staff_id)
        async with self.db.transaction("end_sessions") as conn:
            count = await self._end_sessions(conn, staff_id, "ended by admin")
            await self.audit.record(conn, actor, "staff.sessions_end", target_type="staff", target_id=staff_id,
                                    detail={"sessions": count})
        return count

    # --- imports -------------------------------------------------------------------------------

    async def import_departments(self, actor: Actor, org_id: int, data: bytes) -> dict[str, Any]:
        self.require_admin(actor, org_id)
        rows = self._parse(hr_csv.parse_departments, data)
        created = updated = 0
        async with self.db.transaction("import_departments", offload=True) as conn:
            ids: dict[str, int] = {}
            for dept in await store.list_departments(self.db, org_id):
                ids[dept.code] = dept.id
            for row in rows:
                parent_id = ids.get(row.parent_code) if row.parent_code else None
                existed = row.code in ids
                dept_id, changed = await store.upsert_department(conn, org_id, row.code, row.name, row.kind, parent_id,
                                                                 row.sort_order)
                ids[row.code] = dept_id
                created += not existed
                updated += existed and changed
            room_stats = await self.rooms.sync_generated_rooms(conn, org_id)
            result = {"rows": len(rows), "created": created, "updated": updated,
                      "unchanged": len(rows) - created - updated, **room_stats}
            await self.audit.record(conn, actor, "org.import_departments", target_type="org", target_id=org_id,
                                    detail=result)
        return result

    async def import_staff(self, actor: Actor, org_id: int, data: bytes) -> dict[str, Any]:
        """Create or update staff by 職員番号. Department/rank/title changes are 人事異動: applied now, or
        scheduled when the row's 発令日 is in the future."""
        self.require_admin(actor, org_id)
        rows = self._parse(hr_csv.parse_staff, data)
        today, now = today_jst(), now_iso()
        counts = {"rows": len(rows), "created": 0, "updated": 0, "unchanged": 0, "scheduled": 0, "status_changed": 0}
        errors: list[hr_csv.CsvError] = []
        async with self.db.transaction("import_staff", offload=True) as conn:
            depts = {d.code: d.id for d in await store.list_departments(conn, org_id)}
            for row in rows:
                dept_id = depts.get(row.department_code)
                if dept_id is None:
                    errors.append(hr_csv.CsvError(row.line, "department_code", "unknown department code"))
                    continue
                rank_id = None
                if row.rank_code:
                    rank_id, _ = await store.upsert_rank(conn, org_id, row.rank_code, row.rank_name or row.rank_code,
                                                         row.rank_level)
                existing = await store.get_staff_by_employee_no(conn, org_id, row.employee_no)
                by_login = await store.get_staff_by_login(conn, row.login)
                if by_login is not None and (existing is None or by_login.id != existing.id):
                    errors.append(hr_csv.CsvError(row.line, "login", "already used by another person"))
                    continue
                if existing is None:
                    staff_id = await store.insert_staff(
                        conn, org_id=org_id, login=row.login, employee_no=row.employee_no,
                        display_name=row.display_name, kana=row.kana, department_id=dept_id, rank_id=rank_id,
                        title=row.title, role=row.role, password_hash=None, now=now)
                    await store.insert_assignment(conn, staff_id, dept_id, rank_id, row.title,
                                                  row.effective_date or today, now, actor.staff_id, now)
                    if row.status != "active":
                        await store.update_staff_status(conn, staff_id, row.status, now)
                    counts["created"] += 1
                    continue
                changed = False
                if (existing.display_name, existing.kana) != (row.display_name, row.kana):
                    await store.update_staff_profile(conn, existing.id, display_name=row.display_name, kana=row.kana)
                    changed = True
                if existing.role != row.role and existing.role != "server_admin":
                    await store.update_staff_role(conn, existing.id, row.role)
                    changed = True
                if (existing.department_id, existing.rank_id, existing.title) != (dept_id, rank_id, row.title):
                    if row.effective_date and row.effective_date > today:
                        await store.insert_assignment(conn, existing.id, dept_id, rank_id, row.title,
                                                      row.effective_date, None, actor.staff_id, now)
                        counts["scheduled"] += 1
                    else:
                        await store.update_staff_assignment(conn, existing.id, dept_id, rank_id, row.title)
                        await store.insert_assignment(conn, existing.id, dept_id, rank_id, row.title,
                                                      row.effective_date or today, now, actor.staff_id, now)
                        changed = True
                if existing.status != row.status and existing.status != "retired":
                    await self._apply_status(conn, actor, existing, row.status, "import")
                    counts["status_changed"] += 1
                    changed = True
                if changed:
                    await self._profile_changed(conn, existing.id)
                counts["updated" if changed else "unchanged"] += 1
            if errors:
                raise AppError("csv_invalid", errors=[e.__dict__ for e in errors[:100]])
            counts.update(await self.rooms.sync_generated_rooms(conn, org_id))
            await self.audit.record(conn, actor, "org.import_staff", target_type="org", target_id=org_id, detail=counts)
        return counts

    @staticmethod
    def _parse(parser: Any, data: bytes) -> Any:
        if len(data) > limits.MAX_CSV_IMPORT_BYTES:
            raise AppError("body_too_large")
        try:
            return parser(data)
        except hr_csv.CsvRejected as exc:
            raise AppError("csv_invalid", errors=[e.__dict__ for e in exc.errors[:100]]) from exc

    # --- 人事異動 -------------------------------------------------------------------------------

    async def schedule_transfers(self, actor: Actor, org_id: int, items: list[TransferItem]) -> dict[str, int]:
        """Record transfers; those effective today or earlier are applied at once (all or none)."""
        self.require_admin(actor, org_id)
        for item in items:
            if (await self.admin_staff(actor, item.staff_id)).org_id != org_id:
                raise AppError("staff_not_found")
            await self._check_placement(org_id, item.department_id, item.rank_id)
        now = now_iso()
        async with self.db.transaction("schedule_transfers", offload=True) as conn:
            for item in items:
                staff = await store.get_staff(conn, item.staff_id)
                assert staff is not None
                # Omitted fields keep their current value: a promotion alone must not empty the 所属.
                await store.insert_assignment(conn, item.staff_id,
                                              item.department_id if item.department_id is not None
                                              else staff.department_id,
                                              item.rank_id if item.rank_id is not None else staff.rank_id,
                                              item.title if item.title is not None else staff.title,
                                              item.effective_date, None, actor.staff_id, now)
            await self.audit.record(conn, actor, "org.transfers_schedule", target_type="org", target_id=org_id,
                                    detail={"count": len(items)})
        applied = await self.apply_due_transfers(actor)
        return {"scheduled": len(items), "applied": applied}

    async def apply_due_transfers(self, actor: Actor | None = None) -> int:
        """Apply every assignment whose 発令日 (JST) has come. Run at start-up and every minute."""
        actor = actor or Actor.system()
        now = now_iso()
        async with self.db.transaction("apply_transfers", offload=True) as conn:
            due = await store.due_assignments(conn, today_jst())
            orgs: set[int] = set()
            for item in due:
                staff = await store.get_staff(conn, item.staff_id)
                if staff is None:
                    continue
                await store.update_staff_assignment(conn, staff.id, item.department_id, item.rank_id, item.title)
                await store.mark_assignment_applied(conn, item.id, now)
                await self._profile_changed(conn, staff.id)
                await self.audit.record(conn, actor, "staff.transfer", target_type="staff", target_id=staff.id,
                                        detail={"from_department_id": staff.department_id,
                                                "to_department_id": item.department_id,
                                                "from_rank_id": staff.rank_id, "to_rank_id": item.rank_id,
                                                "effective_date": item.effective_date})
                orgs.add(staff.org_id)
            for org_id in sorted(orgs):
                await self.rooms.sync_generated_rooms(conn, org_id)
        return len(due)
