"""Messages: timeline, post, thread, edit, delete, receipts, reactions, pins, search."""

from __future__ import annotations

from aiohttp import web

from shared.limits import MAX_PAGE_SIZE

from ..services.messages import NewMessage
from .common import actor, current, kernel, ok
from .validation import path_int, query_int, read_json

routes = web.RouteTableDef()


def new_message(body: dict) -> NewMessage:  # type: ignore[type-arg]
    return NewMessage(body=body.get("body", ""), thread_root_id=body.get("thread_root_id"),
                      mentions=tuple(body.get("mentions", ())), mention_room=body.get("mention_room", False),
                      important=body.get("important", False), client_msg_id=body.get("client_msg_id"))


@routes.get("/api/rooms/{room_id}/messages")
async def list_messages(request: web.Request) -> web.Response:
    items = await kernel(request).messages.list_room(
        current(request).staff.id, path_int(request, "room_id"), query_int(request, "before_seq"),
        query_int(request, "after_seq"), query_int(request, "limit", 50, minimum=1, maximum=MAX_PAGE_SIZE) or 50)
    return ok({"messages": items})


@routes.post("/api/rooms/{room_id}/messages")
async def post_message(request: web.Request) -> web.Response:
    body = await read_json(request, "PostMessageRequest")
    data = await kernel(request).messages.post(actor(request), current(request).staff, path_int(request, "room_id"),
                                               new_message(body))
    return ok(data, status=201)


@routes.get("/api/rooms/{room_id}/pins")
async def pins(request: web.Request) -> web.Response:
    return ok({"messages": await kernel(request).messages.pinned(current(request).staff.id,
                                                                 path_int(request, "room_id"))})


@routes.get("/api/messages/{message_id}")
async def get_message(request: web.Request) -> web.Response:
    return ok(await kernel(request).messages.get(current(request).staff.id, path_int(request, "message_id")))


@routes.patch("/api/messages/{message_id}")
async def edit_message(request: web.Request) -> web.Response:
    body = await read_json(request, "EditMessageRequest")
    return ok(await kernel(request).messages.edit(actor(request), path_int(request, "message_id"), body["body"]))


@routes.delete("/api/messages/{message_id}")
async def delete_message(request: web.Request) -> web.Response:
    await kernel(request).messages.delete(actor(request), path_int(request, "message_id"))
    return ok({"status": "ok"})


@routes.get("/api/messages/{message_id}/thread")
async def thread(request: web.Request) -> web.Response:
    return ok(await kernel(request).messages.thread(current(request).staff.id, path_int(request, "message_id"),
                                                    query_int(request, "limit", 200, minimum=1, maximum=1000) or 200))


@routes.get("/api/messages/{message_id}/history")
async def history(request: web.Request) -> web.Response:
    return ok({"versions": await kernel(request).messages.history(current(request).staff.id,
                                                                  path_int(request, "message_id"))})


@routes.get("/api/messages/{message_id}/receipts")
async def receipts(request: web.Request) -> web.Response:
    return ok(await kernel(request).messages.receipts(current(request).staff.id, path_int(request, "message_id")))


@routes.put("/api/messages/{message_id}/reactions/{code}")
async def add_reaction(request: web.Request) -> web.Response:
    await kernel(request).messages.react(actor(request), path_int(request, "message_id"),
                                         request.match_info["code"], add=True)
    return ok({"status": "ok"})


@routes.delete("/api/messages/{message_id}/reactions/{code}")
async def remove_reaction(request: web.Request) -> web.Response:
    await kernel(request).messages.react(actor(request), path_int(request, "message_id"),
                                         request.match_info["code"], add=False)
    return ok({"status": "ok"})


@routes.put("/api/messages/{message_id}/pin")
async def pin(request: web.Request) -> web.Response:
    await kernel(request).messages.pin(actor(request), path_int(request, "message_id"), True)
    return ok({"status": "ok"})


@routes.delete("/api/messages/{message_id}/pin")
async def unpin(request: web.Request) -> web.Response:
    await kernel(request).messages.pin(actor(request), path_int(request, "message_id"), False)
    return ok({"status": "ok"})


@routes.get("/api/search")
async def search(request: web.Request) -> web.Response:
    results = await kernel(request).messages.search(
        actor(request), request.query.get("q", ""), query_int(request, "room_id"),
        query_int(request, "limit", 50, minimum=1, maximum=MAX_PAGE_SIZE) or 50)
    return ok({"results": results})
