"""Tasks (誰が・何を・いつまでに) and polls (庁内アンケート)."""

from __future__ import annotations

from aiohttp import web

from .common import actor, current, kernel, ok
from .validation import path_int, read_json

routes = web.RouteTableDef()


@routes.post("/api/tasks")
async def create(request: web.Request) -> web.Response:
    body = await read_json(request, "TaskRequest")
    task = await kernel(request).tasks.create(actor(request), title=body["title"], due_date=body.get("due_date"),
                                              assignee_ids=body.get("assignee_ids", []),
                                              message_id=body.get("message_id"))
    return ok(task, status=201)


@routes.get("/api/tasks")
async def mine(request: web.Request) -> web.Response:
    return ok({"tasks": await kernel(request).tasks.mine(actor(request), request.query.get("done") == "1")})


@routes.get("/api/tasks/{task_id}")
async def get(request: web.Request) -> web.Response:
    return ok(await kernel(request).tasks.get(actor(request), path_int(request, "task_id")))


@routes.patch("/api/tasks/{task_id}")
async def update(request: web.Request) -> web.Response:
    body = await read_json(request, "TaskUpdateRequest")
    return ok(await kernel(request).tasks.update(actor(request), path_int(request, "task_id"), body))


@routes.get("/api/rooms/{room_id}/tasks")
async def room_tasks(request: web.Request) -> web.Response:
    return ok({"tasks": await kernel(request).tasks.in_room(actor(request), path_int(request, "room_id"))})


@routes.post("/api/rooms/{room_id}/polls")
async def create_poll(request: web.Request) -> web.Response:
    body = await read_json(request, "PollRequest")
    poll = await kernel(request).polls.create(actor(request), path_int(request, "room_id"),
                                              question=body["question"], options=body["options"],
                                              multiple=body.get("multiple", False),
                                              anonymous=body.get("anonymous", False), closes_at=body.get("closes_at"))
    return ok(poll, status=201)


@routes.get("/api/rooms/{room_id}/polls")
async def room_polls(request: web.Request) -> web.Response:
    return ok({"polls": await kernel(request).polls.in_room(actor(request), path_int(request, "room_id"))})


@routes.get("/api/polls/{poll_id}")
async def results(request: web.Request) -> web.Response:
    return ok(await kernel(request).polls.results(actor(request), path_int(request, "poll_id")))


@routes.post("/api/polls/{poll_id}/vote")
async def vote(request: web.Request) -> web.Response:
    body = await read_json(request, "VoteRequest")
    await kernel(request).polls.vote(actor(request), current(request).staff, path_int(request, "poll_id"),
                                     body["options"])
    return ok({"status": "ok"})


@routes.post("/api/polls/{poll_id}/close")
async def close_poll(request: web.Request) -> web.Response:
    await kernel(request).polls.close(actor(request), path_int(request, "poll_id"))
    return ok({"status": "closed"})
