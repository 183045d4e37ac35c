"""安否確認: start, answer (one tap), dashboard, reminders, export."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from ..errors import AppError
from ..services.safety import TEMPLATES, Answer, check_json
from .common import actor, current, kernel, ok
from .validation import path_int, read_json

routes = web.RouteTableDef()


@routes.get("/api/safety/templates")
async def templates(request: web.Request) -> web.Response:
    return ok({"templates": TEMPLATES})


@routes.get("/api/safety")
async def my_checks(request: web.Request) -> web.Response:
    return ok({"checks": await kernel(request).safety.mine(current(request).staff.id)})


@routes.get("/api/safety/managed")
async def managed(request: web.Request) -> web.Response:
    return ok({"checks": await kernel(request).safety.list(actor(request))})


@routes.post("/api/safety")
async def start(request: web.Request) -> web.Response:
    body = await read_json(request, "SafetyStartRequest")
    check = await kernel(request).safety.start(actor(request), title=body["title"], message=body.get("message", ""),
                                               questions=body.get("questions", ["condition"]),
                                               department_ids=body.get("department_ids"),
                                               staff_ids=body.get("staff_ids"))
    return ok(check_json(check), status=201)


@routes.post("/api/safety/{check_id}/answer")
async def answer(request: web.Request) -> web.Response:
    body = await read_json(request, "SafetyAnswerRequest")
    await kernel(request).safety.answer(actor(request), path_int(request, "check_id"), Answer(
        condition=body["condition"], attend=body.get("attend", "unknown"), eta_minutes=body.get("eta_minutes"),
        location=body.get("location", ""), note=body.get("note", "")))
    return ok({"status": "ok"})


@routes.get("/api/safety/{check_id}/dashboard")
async def dashboard(request: web.Request) -> web.Response:
    return ok(await kernel(request).safety.dashboard(actor(request), path_int(request, "check_id")))


@routes.post("/api/safety/{check_id}/remind")
async def remind(request: web.Request) -> web.Response:
    return ok({"reminded": await kernel(request).safety.remind(actor(request), path_int(request, "check_id"))})


@routes.post("/api/safety/{check_id}/close")
async def close(request: web.Request) -> web.Response:
    await kernel(request).safety.close(actor(request), path_int(request, "check_id"))
    return ok({"status": "closed"})


@routes.get("/api/safety/{check_id}/export")
async def export(request: web.Request) -> web.Response:
    fmt = request.query.get("format", "xlsx")
    if fmt not in ("xlsx", "csv"):
        raise AppError("invalid_request", field="format")
    name, data, mime = await kernel(request).safety.export(actor(request), path_int(request, "check_id"), fmt)
    return web.Response(body=data, content_type=mime, headers={
        "Content-Disposition": f"attachment; filename=\"{name}\"; filename*=UTF-8''{quote(name)}"})
