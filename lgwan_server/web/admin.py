"""Organisation administration: accounts, imports, 人事異動, policies, audit log."""

from __future__ import annotations

from aiohttp import web

from shared.limits import MAX_CSV_IMPORT_BYTES, MAX_PAGE_SIZE

from ..errors import AppError
from ..services.org import TransferItem
from ..storage import audit as audit_store
from ..storage import org as org_store
from ..storage import sessions as session_store
from .common import actor, kernel, ok
from .validation import path_int, query_int, read_json

routes = web.RouteTableDef()


def _require_admin(request: web.Request) -> int:
    """The organisation the caller administers."""
    a = actor(request)
    if not a.is_org_admin or a.org_id is None:
        raise AppError("forbidden")
    return a.org_id


def _staff_admin_json(s: org_store.Staff) -> dict[str, object]:
    return {"id": s.id, "login": s.login, "employee_no": s.employee_no, "display_name": s.display_name,
            "kana": s.kana, "department_id": s.department_id, "rank_id": s.rank_id, "title": s.title, "role": s.role,
            "status": s.status, "totp_enabled": s.totp_secret is not None, "failed_logins": s.failed_logins,
            "locked_until": s.locked_until}


@routes.get("/api/admin/org")
async def get_org(request: web.Request) -> web.Response:
    org_id = _require_admin(request)
    org = await org_store.get_org(kernel(request).db, org_id)
    assert org is not None
    return ok({"id": org.id, "code": org.code, "name": org.name, "ip_allowlist": list(org.ip_allowlist),
               "mfa_policy": org.mfa_policy})


@routes.patch("/api/admin/org")
async def update_org(request: web.Request) -> web.StreamResponse:
    org_id = _require_admin(request)
    body = await read_json(request, "UpdateOrgRequest")
    await kernel(request).org.update_policy(actor(request), org_id, body.get("ip_allowlist"), body.get("mfa_policy"))
    return await get_org(request)   # @routes.get types get_org as returning a StreamResponse


@routes.get("/api/admin/staff")
async def list_staff(request: web.Request) -> web.Response:
    org_id = _require_admin(request)
    status = request.query.get("status")
    if status not in (None, "active", "suspended", "retired"):
        raise AppError("invalid_request", field="status")
    staff = await org_store.list_staff_admin(kernel(request).db, org_id, status,
                                             query_int(request, "limit", 100, minimum=1, maximum=MAX_PAGE_SIZE) or 100,
                                             query_int(request, "offset", 0) or 0)
    return ok({"staff": [_staff_admin_json(s) for s in staff]})


@routes.post("/api/admin/staff")
async def create_staff(request: web.Request) -> web.Response:
    org_id = _require_admin(request)
    body = await read_json(request, "CreateStaffRequest")
    staff_id = await kernel(request).org.create_staff(
        actor(request), org_id, login=body["login"], display_name=body["display_name"], kana=body.get("kana", ""),
        employee_no=body.get("employee_no"), department_id=body.get("department_id"), rank_id=body.get("rank_id"),
        title=body.get("title", ""), role=body.get("role", "staff"), password=body.get("password"))
    staff = await org_store.get_staff(kernel(request).db, staff_id)
    assert staff is not None
    return ok(_staff_admin_json(staff), status=201)


@routes.put("/api/admin/staff/{staff_id}/status")
async def set_status(request: web.Request) -> web.Response:
    _require_admin(request)
    body = await read_json(request, "SetStatusRequest")
    await kernel(request).org.set_status(actor(request), path_int(request, "staff_id"), body["status"],
                                         body.get("reason", ""))
    return ok({"status": "ok"})


@routes.put("/api/admin/staff/{staff_id}/role")
async def set_role(request: web.Request) -> web.Response:
    _require_admin(request)
    body = await read_json(request, "SetRoleRequest")
    await kernel(request).org.set_role(actor(request), path_int(request, "staff_id"), body["role"])
    return ok({"status": "ok"})


@routes.put("/api/admin/staff/{staff_id}/password")
async def set_password(request: web.Request) -> web.Response:
    _require_admin(request)
    body = await read_json(request, "SetPasswordRequest")
    await kernel(request).org.set_password(actor(request), path_int(request, "staff_id"), body["password"])
    return ok({"status": "ok"})


@routes.post("/api/admin/staff/{staff_id}/totp-reset")
async def reset_totp(request: web.Request) -> web.Response:
    _require_admin(request)
    await kernel(request).org.reset_totp(actor(request), path_int(request, "staff_id"))
    return ok({"status": "ok"})


@routes.get("/api/admin/staff/{staff_id}/sessions")
async def list_sessions(request: web.Request) -> web.Response:
    _require_admin(request)
    staff = await kernel(request).org.admin_staff(actor(request), path_int(request, "staff_id"))
    sessions = await session_store.list_staff_sessions(kernel(request).db, staff.id)
    return ok({"sessions": [{"id": s.id, "created_at": s.created_at, "last_seen_at": s.last_seen_at,
                             "source_ip": s.source_ip, "user_agent": s.user_agent} for s in sessions]})


@routes.delete("/api/admin/staff/{staff_id}/sessions")
async def end_sessions(request: web.Request) -> web.Response:
    _require_admin(request)
    count = await kernel(request).org.end_sessions(actor(request), path_int(request, "staff_id"))
    return ok({"ended": count})


@routes.get("/api/admin/staff/{staff_id}/assignments")
async def assignments(request: web.Request) -> web.Response:
    _require_admin(request)
    staff = await kernel(request).org.admin_staff(actor(request), path_int(request, "staff_id"))
    items = await org_store.list_assignments(kernel(request).db, staff.id)
    return ok({"assignments": [a.__dict__ for a in items]})


async def _csv_body(request: web.Request) -> bytes:
    if request.content_type not in ("text/csv", "application/octet-stream"):
        raise AppError("unsupported_media_type", expected="text/csv")
    if request.content_length is not None and request.content_length > MAX_CSV_IMPORT_BYTES:
        raise AppError("body_too_large")
    # Not request.read(): that stops at client_max_size (the 256 KiB JSON limit), and an HR export of a
    # few thousand staff is larger than that. Stream it under the CSV limit instead.
    body = bytearray()
    while chunk := await request.content.read(256 * 1024):
        body += chunk
        if len(body) > MAX_CSV_IMPORT_BYTES:
            raise AppError("body_too_large")
    return bytes(body)


@routes.post("/api/admin/import/departments")
async def import_departments(request: web.Request) -> web.Response:
    org_id = _require_admin(request)
    return ok(await kernel(request).org.import_departments(actor(request), org_id, await _csv_body(request)))


@routes.post("/api/admin/import/staff")
async def import_staff(request: web.Request) -> web.Response:
    org_id = _require_admin(request)
    return ok(await kernel(request).org.import_staff(actor(request), org_id, await _csv_body(request)))


@routes.post("/api/admin/transfers")
async def transfers(request: web.Request) -> web.Response:
    org_id = _require_admin(request)
    body = await read_json(request, "TransfersRequest")
    items = [TransferItem(i["staff_id"], i.get("department_id"), i.get("rank_id"), i.get("title"),
                          i["effective_date"]) for i in body["items"]]
    return ok(await kernel(request).org.schedule_transfers(actor(request), org_id, items))


@routes.get("/api/admin/audit")
async def audit_log(request: web.Request) -> web.Response:
    a = actor(request)
    if a.role not in ("org_admin", "server_admin", "auditor"):
        raise AppError("forbidden")
    entries = await audit_store.query_entries(
        kernel(request).db, org_id=None if a.is_server_admin else a.org_id,
        actor_id=query_int(request, "actor_id"), action=request.query.get("action") or None,
        since=request.query.get("since") or None, until=request.query.get("until") or None,
        before_id=query_int(request, "before_id"),
        limit=query_int(request, "limit", 100, minimum=1, maximum=MAX_PAGE_SIZE) or 100)
    return ok({"entries": [e.__dict__ for e in entries]})


@routes.post("/api/admin/audit/verify")
async def audit_verify(request: web.Request) -> web.Response:
    a = actor(request)
    if a.role not in ("org_admin", "server_admin", "auditor"):
        raise AppError("forbidden")
    result = await kernel(request).audit.verify_chain()
    await kernel(request).audit.record_alone(a, "audit.verify", outcome="ok" if result.ok else "failed",
                                             detail={"checked": result.checked, "first_bad_id": result.first_bad_id})
    return ok(result.__dict__)
