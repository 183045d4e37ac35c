"""安否確認 on staff phones: list, one-tap answer, and (authorised people) start, roll-up, reminders."""

from __future__ import annotations

from aiohttp import web

from shared import envelope as env

from .common import current, ip, ok, path_int, read_json, relay

routes = web.RouteTableDef()


@routes.get("/api/safety")
async def mine(request: web.Request) -> web.Response:
    return ok(await relay(request).safety.mine(current(request).account))


@routes.post("/api/safety")
async def start(request: web.Request) -> web.Response:
    body = await read_json(request, {"template": (str, 20), "title": (str, env.MAX_SAFETY_TITLE_CHARS * 2),
                                     "message": (str, env.MAX_SAFETY_MESSAGE_CHARS * 2)}, {"template"})
    check = await relay(request).safety.start(current(request).account, ip(request), template=body["template"],
                                              title=body.get("title", ""), message=body.get("message"))
    return ok(check, status=201)


@routes.post("/api/safety/{check_id}/answer")
async def answer(request: web.Request) -> web.Response:
    body = await read_json(request, {"condition": (str, 20), "attend": (str, 20),
                                     "eta_minutes": ((int, type(None)), 0),
                                     "location": (str, env.MAX_SAFETY_LOCATION_CHARS * 2),
                                     "note": (str, env.MAX_SAFETY_NOTE_CHARS * 2), "client_id": (str, 40)},
                           {"condition"})
    result = await relay(request).safety.answer(
        current(request).account, ip(request), path_int(request, "check_id"), condition=body["condition"],
        attend=body.get("attend", "unknown"), eta_minutes=body.get("eta_minutes"), location=body.get("location", ""),
        note=body.get("note", ""), client_id=body.get("client_id"))
    return ok(result)


@routes.get("/api/safety/{check_id}/rollup")
async def rollup(request: web.Request) -> web.Response:
    return ok(await relay(request).safety.rollup(current(request).account, path_int(request, "check_id")))


@routes.post("/api/safety/{check_id}/remind")
async def remind(request: web.Request) -> web.Response:
    count = await relay(request).safety.remind(current(request).account, ip(request), path_int(request, "check_id"))
    return ok({"reminded": count})
