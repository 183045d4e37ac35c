"""Guests and staff phones on the internet relay (issue 5): invite, approve, remove; grant mobile
use; approve or revoke devices; and the server admin's view and controls of the relay link."""

from __future__ import annotations

import re

from aiohttp import web

from shared.limits import MAX_PAGE_SIZE

from ..appkeys import dialler_key
from ..bridge.dialler import Dialler
from ..errors import AppError
from .common import actor, current, kernel, ok
from .validation import path_int, query_int, read_json

routes = web.RouteTableDef()
_DEVICE_ID = re.compile(r"^[0-9a-f]{32}$")


@routes.post("/api/rooms/{room_id}/guests")
async def invite_guest(request: web.Request) -> web.Response:
    body = await read_json(request, "InviteGuestRequest")
    result = await kernel(request).guests.invite(actor(request), path_int(request, "room_id"), body["display_name"],
                                                 body.get("affiliation", ""))
    return ok(result, status=201)


@routes.get("/api/rooms/{room_id}/guests")
async def room_guests(request: web.Request) -> web.Response:
    items = await kernel(request).guests.list_room(current(request).staff.id, path_int(request, "room_id"))
    return ok({"guests": items})


@routes.get("/api/guests/{guest_id}")
async def get_guest(request: web.Request) -> web.Response:
    return ok(await kernel(request).guests.get(actor(request), path_int(request, "guest_id")))


@routes.post("/api/guests/{guest_id}/approve")
async def approve_guest(request: web.Request) -> web.Response:
    return ok(await kernel(request).guests.approve(actor(request), path_int(request, "guest_id")))


@routes.post("/api/guests/{guest_id}/reinvite")
async def reinvite_guest(request: web.Request) -> web.Response:
    return ok(await kernel(request).guests.reinvite(actor(request), path_int(request, "guest_id")))


@routes.delete("/api/guests/{guest_id}")
async def remove_guest(request: web.Request) -> web.Response:
    await kernel(request).guests.remove(actor(request), path_int(request, "guest_id"))
    return ok({"status": "ok"})


@routes.get("/api/admin/mobile")
async def list_mobile(request: web.Request) -> web.Response:
    service = kernel(request).guests
    grants = await service.list_mobile(actor(request))
    # The admin screen shows these read-only: both are set in the config file ([bridge]), not through the API.
    return ok({"grants": grants, "bridge_enabled": service.outbox is not None,
               "guest_device_approval": service.cfg.guest_device_approval})


@routes.put("/api/admin/staff/{staff_id}/mobile")
async def grant_mobile(request: web.Request) -> web.Response:
    return ok(await kernel(request).guests.grant_mobile(actor(request), path_int(request, "staff_id")))


@routes.delete("/api/admin/staff/{staff_id}/mobile")
async def revoke_mobile(request: web.Request) -> web.Response:
    await kernel(request).guests.revoke_mobile(actor(request), path_int(request, "staff_id"))
    return ok({"status": "ok"})


@routes.get("/api/admin/devices")
async def list_devices(request: web.Request) -> web.Response:
    status = request.query.get("status")
    if status not in (None, "pending", "approved", "revoked"):
        raise AppError("invalid_request", field="status")
    items = await kernel(request).guests.list_devices(
        actor(request), status, query_int(request, "limit", 100, minimum=1, maximum=MAX_PAGE_SIZE) or 100)
    return ok({"devices": items})


def _device_id(request: web.Request) -> str:
    device_id = request.match_info["device_id"]
    if not _DEVICE_ID.match(device_id):
        raise AppError("device_not_found")
    return device_id


@routes.post("/api/admin/devices/{device_id}/approve")
async def approve_device(request: web.Request) -> web.Response:
    return ok(await kernel(request).guests.decide_device(actor(request), _device_id(request), approve=True))


@routes.post("/api/admin/devices/{device_id}/revoke")
async def revoke_device(request: web.Request) -> web.Response:
    return ok(await kernel(request).guests.decide_device(actor(request), _device_id(request), approve=False))


# --- the link itself (server admins) ------------------------------------------------------------

def _dialler(request: web.Request) -> Dialler:
    if not actor(request).is_server_admin:
        raise AppError("forbidden")
    if dialler_key not in request.app:
        raise AppError("bridge_disabled")
    return request.app[dialler_key]


@routes.get("/api/admin/bridge")
async def bridge_status(request: web.Request) -> web.Response:
    return ok(await _dialler(request).health())


@routes.post("/api/admin/bridge/pause")
async def bridge_pause(request: web.Request) -> web.Response:
    await _dialler(request).set_paused(actor(request), True)
    return ok({"status": "paused"})


@routes.post("/api/admin/bridge/resume")
async def bridge_resume(request: web.Request) -> web.Response:
    await _dialler(request).set_paused(actor(request), False)
    return ok({"status": "resumed"})


@routes.post("/api/admin/bridge/resync")
async def bridge_resync(request: web.Request) -> web.Response:
    await _dialler(request).request_resync(actor(request))
    return ok({"status": "resync_requested"})
