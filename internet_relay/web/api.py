"""The guest and staff-phone JSON API: enrolment, login, rooms, messages, 既読."""

from __future__ import annotations

import secrets

from aiohttp import web

from shared.limits import MAX_MESSAGE_CHARS

from ..appkeys import config_key
from ..middlewares import DEVICE_COOKIE, SESSION_COOKIE
from .common import current, ip, ok, path_int, query_int, read_json, relay

routes = web.RouteTableDef()
DEVICE_COOKIE_MAX_AGE = 400 * 86400       # browsers cap cookie lifetime at 400 days
_TOKEN = {"token": (str, 200)}


def _secure(request: web.Request) -> bool:
    return request.secure or request.app[config_key].web.behind_tls_proxy


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    r = relay(request)
    return ok({"status": "ok", "tier": "relay", "link": await r.link.health(), "websockets": r.hub.connection_count})


# --- enrolment (public; the token comes from the link's #fragment) --------------------------------

@routes.post("/api/enrol/info")
async def enrol_info(request: web.Request) -> web.Response:
    body = await read_json(request, _TOKEN, {"token"})
    return ok(await relay(request).accounts.enrol_info(body["token"], ip(request)))


@routes.post("/api/enrol/totp")
async def enrol_totp(request: web.Request) -> web.Response:
    body = await read_json(request, _TOKEN, {"token"})
    return ok(await relay(request).accounts.enrol_totp(body["token"], ip(request)))


@routes.post("/api/enrol/complete")
async def enrol_complete(request: web.Request) -> web.Response:
    body = await read_json(request, {**_TOKEN, "login": (str, 64), "password": (str, 256), "totp": (str, 10),
                                     "privacy_ack": (bool, 0)}, {"token", "login", "password", "totp"})
    result = await relay(request).accounts.enrol_complete(
        body["token"], login=body["login"], password=body["password"], totp_code=body["totp"],
        privacy_ack=body.get("privacy_ack", False), ip=ip(request))
    return ok(result)


# --- login ----------------------------------------------------------------------------------------

@routes.post("/api/login")
async def login(request: web.Request) -> web.Response:
    body = await read_json(request, {"login": (str, 64), "password": (str, 256), "totp": (str, 10)},
                           {"login", "password", "totp"})
    device = request.cookies.get(DEVICE_COOKIE, "")
    if not (20 <= len(device) <= 100 and device.replace("-", "").replace("_", "").isalnum()):
        device = secrets.token_urlsafe(32)
    result = await relay(request).accounts.login(body["login"], body["password"], body["totp"], ip=ip(request),
                                                 user_agent=request.headers.get("User-Agent", ""),
                                                 device_cookie=device)
    response = ok({"status": result.status, "csrf_token": result.csrf_token,
                   "account": {"display_name": result.account.display_name, "kind": result.account.kind,
                               "status": result.account.status}})
    response.set_cookie(DEVICE_COOKIE, device, max_age=DEVICE_COOKIE_MAX_AGE, httponly=True, samesite="Strict",
                        secure=_secure(request), path="/")
    if result.token:
        response.set_cookie(SESSION_COOKIE, result.token, httponly=True, samesite="Strict", secure=_secure(request),
                            path="/")
    return response


@routes.post("/api/logout")
async def logout(request: web.Request) -> web.Response:
    await relay(request).accounts.logout(current(request), ip(request))
    response = ok({"status": "ok"})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


@routes.get("/api/me")
async def me(request: web.Request) -> web.Response:
    auth = current(request)
    a = auth.account
    return ok({"display_name": a.display_name, "affiliation": a.affiliation, "kind": a.kind, "status": a.status,
               "safety_manager": a.kind == "staff" and a.safety_manager, "csrf_token": auth.session.csrf_token})


# --- rooms and messages -----------------------------------------------------------------------------

@routes.get("/api/rooms")
async def rooms(request: web.Request) -> web.Response:
    return ok({"rooms": await relay(request).chat.rooms(current(request).account)})


@routes.get("/api/rooms/{room_id}/messages")
async def messages(request: web.Request) -> web.Response:
    limit = query_int(request, "limit", 50, maximum=200) or 50
    return ok(await relay(request).chat.messages(current(request).account, path_int(request, "room_id"),
                                                 query_int(request, "after_seq"), query_int(request, "before_seq"),
                                                 limit))


@routes.get("/api/rooms/{room_id}/members")
async def members(request: web.Request) -> web.Response:
    return ok({"members": await relay(request).chat.members(current(request).account, path_int(request, "room_id"))})


@routes.post("/api/rooms/{room_id}/messages")
async def post(request: web.Request) -> web.Response:
    body = await read_json(request, {"body": (str, MAX_MESSAGE_CHARS * 2), "client_msg_id": (str, 40),
                                     "thread_root_id": ((int, type(None)), 0)}, {"body", "client_msg_id"})
    result = await relay(request).chat.post(current(request).account, ip(request), path_int(request, "room_id"),
                                            body["body"], body["client_msg_id"], body.get("thread_root_id"))
    return ok(result, status=202)


@routes.post("/api/rooms/{room_id}/read")
async def mark_read(request: web.Request) -> web.Response:
    body = await read_json(request, {"seq": (int, 0)}, {"seq"})
    cursor = await relay(request).chat.mark_read(current(request).account, path_int(request, "room_id"), body["seq"])
    return ok({"last_read_seq": cursor})
