"""一斉送信 and 確認必須."""

from __future__ import annotations

from aiohttp import web

from ..services.broadcasts import broadcast_json
from .common import actor, current, kernel, ok
from .validation import path_int, read_json

routes = web.RouteTableDef()


@routes.post("/api/broadcasts")
async def send(request: web.Request) -> web.Response:
    body = await read_json(request, "BroadcastRequest")
    broadcast = await kernel(request).broadcasts.send(
        actor(request), title=body["title"], body=body["body"], important=body.get("important", False),
        ack_required=body.get("ack_required", False), department_ids=body.get("department_ids"),
        staff_ids=body.get("staff_ids"), org_ids=body.get("org_ids"))
    return ok(broadcast_json(broadcast), status=201)


@routes.get("/api/broadcasts")
async def inbox(request: web.Request) -> web.Response:
    return ok({"broadcasts": await kernel(request).broadcasts.inbox(current(request).staff.id)})


@routes.get("/api/broadcasts/sent")
async def sent(request: web.Request) -> web.Response:
    return ok({"broadcasts": await kernel(request).broadcasts.sent(actor(request))})


@routes.post("/api/broadcasts/{broadcast_id}/read")
async def read(request: web.Request) -> web.Response:
    await kernel(request).broadcasts.mark(actor(request), path_int(request, "broadcast_id"), ack=False)
    return ok({"status": "ok"})


@routes.post("/api/broadcasts/{broadcast_id}/ack")
async def ack(request: web.Request) -> web.Response:
    await kernel(request).broadcasts.mark(actor(request), path_int(request, "broadcast_id"), ack=True)
    return ok({"status": "ok"})


@routes.get("/api/broadcasts/{broadcast_id}/status")
async def status(request: web.Request) -> web.Response:
    return ok(await kernel(request).broadcasts.status(actor(request), path_int(request, "broadcast_id")))


@routes.post("/api/broadcasts/{broadcast_id}/remind")
async def remind(request: web.Request) -> web.Response:
    return ok({"reminded": await kernel(request).broadcasts.remind(actor(request), path_int(request, "broadcast_id"))})


@routes.put("/api/admin/broadcast-grants/{org_code}")
async def grant(request: web.Request) -> web.Response:
    await kernel(request).broadcasts.grant(actor(request), request.match_info["org_code"], allow=True)
    return ok({"status": "ok"})


@routes.delete("/api/admin/broadcast-grants/{org_code}")
async def revoke(request: web.Request) -> web.Response:
    await kernel(request).broadcasts.grant(actor(request), request.match_info["org_code"], allow=False)
    return ok({"status": "ok"})


@routes.post("/api/messages/{message_id}/ack-request")
async def request_ack(request: web.Request) -> web.Response:
    await kernel(request).broadcasts.request_ack(actor(request), path_int(request, "message_id"))
    return ok({"status": "ok"})


@routes.post("/api/messages/{message_id}/ack")
async def message_ack(request: web.Request) -> web.Response:
    await kernel(request).broadcasts.ack(actor(request), path_int(request, "message_id"))
    return ok({"status": "ok"})


@routes.get("/api/messages/{message_id}/acks")
async def message_acks(request: web.Request) -> web.Response:
    return ok(await kernel(request).broadcasts.ack_status(actor(request), path_int(request, "message_id")))


@routes.post("/api/messages/{message_id}/ack-remind")
async def message_ack_remind(request: web.Request) -> web.Response:
    return ok({"reminded": await kernel(request).broadcasts.ack_remind(actor(request),
                                                                       path_int(request, "message_id"))})
