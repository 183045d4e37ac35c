"""お知らせ / 掲示板."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import BodyPartReader, web

from ..errors import AppError
from ..services.notices import notice_json
from .common import actor, current, kernel, ok
from .files import _chunks
from .validation import path_int, read_json

routes = web.RouteTableDef()


@routes.get("/api/notices")
async def list_notices(request: web.Request) -> web.Response:
    return ok({"notices": await kernel(request).notices.list(current(request).staff)})


@routes.post("/api/notices")
async def post(request: web.Request) -> web.Response:
    body = await read_json(request, "NoticeRequest")
    notice = await kernel(request).notices.post(actor(request), current(request).staff, title=body["title"],
                                                body=body["body"], department_ids=body.get("department_ids"),
                                                read_confirmation=body.get("read_confirmation", True),
                                                expires_at=body.get("expires_at"))
    return ok(notice_json(notice), status=201)


@routes.get("/api/notices/{notice_id}")
async def get(request: web.Request) -> web.Response:
    return ok(await kernel(request).notices.get(current(request).staff, path_int(request, "notice_id")))


@routes.post("/api/notices/{notice_id}/read")
async def read(request: web.Request) -> web.Response:
    await kernel(request).notices.mark_read(current(request).staff, path_int(request, "notice_id"))
    return ok({"status": "ok"})


@routes.get("/api/notices/{notice_id}/reads")
async def reads(request: web.Request) -> web.Response:
    return ok(await kernel(request).notices.reads(actor(request), path_int(request, "notice_id")))


@routes.post("/api/notices/{notice_id}/attachments")
async def attach(request: web.Request) -> web.Response:
    if request.content_type != "multipart/form-data":
        raise AppError("unsupported_media_type", expected="multipart/form-data")
    reader = await request.multipart()
    part = await reader.next()
    if not isinstance(part, BodyPartReader) or part.name != "file":
        raise AppError("invalid_request", field="file", reason="missing_field")
    attachment_id = await kernel(request).notices.attach(actor(request), path_int(request, "notice_id"),
                                                         part.filename or "file", _chunks(part))
    return ok({"id": attachment_id}, status=201)


@routes.get("/api/notices/{notice_id}/attachments/{attachment_id}")
async def download(request: web.Request) -> web.StreamResponse:
    path, filename = await kernel(request).notices.download(actor(request), current(request).staff,
                                                            path_int(request, "notice_id"),
                                                            path_int(request, "attachment_id"))
    ascii_name = filename.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return web.FileResponse(path, headers={
        "Content-Type": "application/octet-stream",
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}",
        "Content-Security-Policy": "default-src 'none'; sandbox"})
