"""Rooms, DMs, membership, read cursors."""

from __future__ import annotations

from aiohttp import web

from shared.limits import MAX_PAGE_SIZE

from ..services.messages import card_json
from ..services.rooms import room_json
from ..storage import org as org_store
from ..storage import rooms as room_store
from .common import actor, current, kernel, ok
from .validation import path_int, query_int, read_json

routes = web.RouteTableDef()


@routes.get("/api/rooms")
async def list_rooms(request: web.Request) -> web.Response:
    summaries = await room_store.list_room_summaries(kernel(request).db, current(request).staff.id)
    return ok({"rooms": [{**room_json(s.room), "role": s.role, "last_read_seq": s.last_read_seq, "unread": s.unread,
                          "unread_mentions": s.unread_mentions, "member_count": s.member_count} for s in summaries]})


@routes.post("/api/rooms")
async def create_room(request: web.Request) -> web.Response:
    body = await read_json(request, "CreateRoomRequest")
    room = await kernel(request).rooms.create_room(
        actor(request), kind=body["kind"], name=body["name"], topic=body.get("topic", ""),
        member_ids=body.get("member_ids", []), crossing_policy=body.get("crossing_policy", "lgwan_only"))
    return ok(room_json(room), status=201)


@routes.post("/api/dms")
async def open_dm(request: web.Request) -> web.Response:
    body = await read_json(request, "OpenDmRequest")
    room = await kernel(request).rooms.open_dm(actor(request), body["member_ids"])
    return ok(room_json(room))


@routes.get("/api/rooms/{room_id}")
async def get_room(request: web.Request) -> web.Response:
    access = await kernel(request).rooms.access_room(current(request).staff.id, path_int(request, "room_id"))
    count = await room_store.count_members(kernel(request).db, access.room.id)
    return ok({**room_json(access.room), "role": access.membership.role,
               "last_read_seq": access.membership.last_read_seq, "member_count": count,
               "can_post": access.can_post})


@routes.patch("/api/rooms/{room_id}")
async def update_room(request: web.Request) -> web.Response:
    body = await read_json(request, "UpdateRoomRequest")
    room = await kernel(request).rooms.update_room(actor(request), path_int(request, "room_id"),
                                                   name=body.get("name"), topic=body.get("topic"),
                                                   crossing_policy=body.get("crossing_policy"),
                                                   archived=body.get("archived"))
    return ok(room_json(room))


@routes.get("/api/rooms/{room_id}/members")
async def list_members(request: web.Request) -> web.Response:
    k = kernel(request)
    access = await k.rooms.access_room(current(request).staff.id, path_int(request, "room_id"))
    members = await room_store.list_members(k.db, access.room.id,
                                            query_int(request, "limit", 100, minimum=1, maximum=MAX_PAGE_SIZE) or 100,
                                            query_int(request, "offset", 0) or 0)
    cards = {c.id: c for c in await org_store.get_cards(k.db, [m.staff_id for m in members])}
    return ok({"members": [{**card_json(cards[m.staff_id]), "role": m.role, "auto": m.auto,
                            "last_read_seq": m.last_read_seq} for m in members if m.staff_id in cards]})


@routes.post("/api/rooms/{room_id}/members")
async def add_members(request: web.Request) -> web.Response:
    body = await read_json(request, "AddMembersRequest")
    added = await kernel(request).rooms.add_members(actor(request), path_int(request, "room_id"), body["staff_ids"],
                                                    body.get("role", "member"))
    return ok({"added": added})


@routes.delete("/api/rooms/{room_id}/members/{staff_id}")
async def remove_member(request: web.Request) -> web.Response:
    await kernel(request).rooms.remove_member(actor(request), path_int(request, "room_id"),
                                              path_int(request, "staff_id"))
    return ok({"status": "ok"})


@routes.put("/api/rooms/{room_id}/members/{staff_id}/role")
async def set_role(request: web.Request) -> web.Response:
    body = await read_json(request, "MemberRoleRequest")
    await kernel(request).rooms.set_member_role(actor(request), path_int(request, "room_id"),
                                                path_int(request, "staff_id"), body["role"])
    return ok({"status": "ok"})


@routes.post("/api/rooms/{room_id}/org-approval")
async def approve_org(request: web.Request) -> web.Response:
    await kernel(request).rooms.approve_org(actor(request), path_int(request, "room_id"))
    return ok({"status": "ok"})


@routes.post("/api/rooms/{room_id}/read")
async def mark_read(request: web.Request) -> web.Response:
    body = await read_json(request, "MarkReadRequest")
    cursor = await kernel(request).messages.mark_read(actor(request), path_int(request, "room_id"), body["seq"])
    return ok({"last_read_seq": cursor})
