"""公文書管理: retention classes, marking, legal holds, disposal, exports, disclosure search."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from shared.limits import MAX_PAGE_SIZE
from shared.timeutil import to_jst_display

from ..errors import AppError
from ..services.records import ExportRequest
from ..storage import records as store
from ..storage.records import Mark, RecordRow
from .common import actor, kernel, ok
from .validation import path_int, query_int, read_json

routes = web.RouteTableDef()


def _mark_json(mark: Mark) -> dict[str, Any]:
    return {"id": mark.id, "message_id": mark.message_id, "room_id": mark.room_id, "scope": mark.scope,
            "class_id": mark.class_id, "retain_until": mark.retain_until, "title": mark.title,
            "marked_by": mark.marked_by, "marked_at": mark.marked_at}


def _row_json(row: RecordRow) -> dict[str, Any]:
    return {"message_id": row.message_id, "room_id": row.room_id, "room": row.room_name,
            "thread_root_id": row.thread_root_id, "sender_id": row.sender_id, "sender": row.sender_name,
            "affiliation": row.sender_affiliation, "body": row.body, "created_at": row.created_at,
            "created_at_jst": to_jst_display(row.created_at), "record_class": row.mark_class,
            "retain_until": row.retain_until}


def _zip(name: str, data: bytes) -> web.Response:
    return web.Response(body=data, content_type="application/zip", headers={
        "Content-Disposition": f"attachment; filename=\"{name}\"; filename*=UTF-8''{quote(name)}"})


@routes.get("/api/records/classes")
async def classes(request: web.Request) -> web.Response:
    a = actor(request)
    assert a.org_id is not None
    items = await kernel(request).records.classes(a.org_id)
    return ok({"classes": [c.__dict__ for c in items]})


@routes.put("/api/records/classes")
async def set_classes(request: web.Request) -> web.Response:
    body = await read_json(request, "RetentionClassesRequest")
    items = await kernel(request).records.set_classes(actor(request), body["classes"])
    return ok({"classes": [c.__dict__ for c in items]})


@routes.get("/api/records/key")
async def records_key(request: web.Request) -> web.Response:
    return ok({"fingerprint": kernel(request).records.key_fingerprint(), "purpose": "kakehashi/records-export/v1"})


@routes.put("/api/rooms/{room_id}/records-officer")
async def set_officer(request: web.Request) -> web.Response:
    body = await read_json(request, "RecordsOfficerRequest")
    await kernel(request).records.set_room_officer(actor(request), path_int(request, "room_id"), body["staff_id"])
    return ok({"status": "ok"})


@routes.post("/api/messages/{message_id}/record")
async def mark(request: web.Request) -> web.Response:
    body = await read_json(request, "MarkRecordRequest")
    result = await kernel(request).records.mark(actor(request), path_int(request, "message_id"), body["class_id"],
                                                body.get("scope", "message"), body.get("title", ""))
    return ok(_mark_json(result), status=201)


@routes.post("/api/records/holds")
async def place_hold(request: web.Request) -> web.Response:
    body = await read_json(request, "LegalHoldRequest")
    hold_id = await kernel(request).records.place_hold(actor(request), body.get("room_id"), body.get("message_id"),
                                                       body["reason"])
    return ok({"id": hold_id}, status=201)


@routes.get("/api/records/holds")
async def list_holds(request: web.Request) -> web.Response:
    a = actor(request)
    kernel(request).records.require_records_role(a)
    assert a.org_id is not None
    holds = await store.list_holds(kernel(request).db, a.org_id, request.query.get("all") != "1")
    return ok({"holds": [h.__dict__ for h in holds]})


@routes.delete("/api/records/holds/{hold_id}")
async def release_hold(request: web.Request) -> web.Response:
    await kernel(request).records.release_hold(actor(request), path_int(request, "hold_id"))
    return ok({"status": "ok"})


@routes.get("/api/records/disposal-candidates")
async def candidates(request: web.Request) -> web.Response:
    items = await kernel(request).records.disposal_candidates(actor(request))
    return ok({"candidates": [{**_mark_json(m), "held": held} for m, held in items]})


@routes.post("/api/records/disposals")
async def propose(request: web.Request) -> web.Response:
    body = await read_json(request, "ProposeDisposalRequest")
    return ok({"id": await kernel(request).records.propose_disposal(actor(request), body["mark_ids"])}, status=201)


@routes.get("/api/records/disposals")
async def list_disposals(request: web.Request) -> web.Response:
    """Disposal proposals of the organisation, newest first, so a second person can find one to approve."""
    a = actor(request)
    kernel(request).records.require_records_role(a)
    assert a.org_id is not None
    db = kernel(request).db
    return ok({"disposals": [{**d.__dict__, "mark_ids": await store.disposal_mark_ids(db, d.id)}
                             for d in await store.list_disposals(db, a.org_id)]})


@routes.post("/api/records/disposals/{disposal_id}/approve")
async def approve(request: web.Request) -> web.Response:
    await kernel(request).records.approve_disposal(actor(request), path_int(request, "disposal_id"))
    return ok({"status": "approved"})


@routes.post("/api/records/disposals/{disposal_id}/execute")
async def execute(request: web.Request) -> web.Response:
    removed = await kernel(request).records.execute_disposal(actor(request), path_int(request, "disposal_id"))
    return ok({"status": "executed", "messages_removed": removed})


@routes.post("/api/records/exports")
async def export_room(request: web.Request) -> web.Response:
    body = await read_json(request, "RecordsExportRequest")
    name, data = await kernel(request).records.export_room(actor(request), ExportRequest(
        room_id=body["room_id"], thread_root_id=body.get("thread_root_id"), since=body.get("since"),
        until=body.get("until"), marked_only=body.get("marked_only", False), wareki=body.get("wareki", False)))
    return _zip(name, data)


def _search_args(request: web.Request) -> dict[str, Any]:
    if "q" not in request.query and "sender_id" not in request.query and "affiliation" not in request.query:
        raise AppError("invalid_request", field="q")
    return {"text": request.query.get("q", ""), "since": request.query.get("since") or None,
            "until": request.query.get("until") or None, "sender_id": query_int(request, "sender_id"),
            "affiliation": request.query.get("affiliation", "")}


@routes.get("/api/records/search")
async def disclosure_search(request: web.Request) -> web.Response:
    rows = await kernel(request).records.disclosure_search(
        actor(request), **_search_args(request),
        limit=query_int(request, "limit", 100, minimum=1, maximum=MAX_PAGE_SIZE) or 100)
    return ok({"results": [_row_json(r) for r in rows]})


@routes.get("/api/records/search/export")
async def disclosure_export(request: web.Request) -> web.Response:
    name, data = await kernel(request).records.disclosure_export(actor(request), **_search_args(request),
                                                                 wareki=request.query.get("wareki") == "1")
    return _zip(name, data)


@routes.get("/api/admin/audit/export")
async def audit_export(request: web.Request) -> web.Response:
    name, data = await kernel(request).records.export_audit(
        actor(request), actor_id=query_int(request, "actor_id"), action=request.query.get("action") or None,
        since=request.query.get("since") or None, until=request.query.get("until") or None)
    return _zip(name, data)
