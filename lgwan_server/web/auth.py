"""Login, logout, who-am-I, TOTP enrolment and password change."""

from __future__ import annotations

from aiohttp import web

from ..appkeys import client_ip_key, config_key
from ..middlewares import SESSION_COOKIE
from ..services.messages import card_json
from ..storage import org as org_store
from .common import actor, current, kernel, ok
from .validation import read_json

routes = web.RouteTableDef()


def _secure(request: web.Request) -> bool:
    return request.secure or request.app[config_key].server.behind_tls_proxy


@routes.post("/api/auth/login")
async def login(request: web.Request) -> web.Response:
    body = await read_json(request, "LoginRequest")
    result = await kernel(request).auth.login(body["login"], body["password"], body.get("totp"),
                                              request[client_ip_key], request.headers.get("User-Agent", ""))
    response = ok({"status": "totp_enrolment_required" if result.mfa_pending else "ok",
                   "csrf_token": result.session.csrf_token, "staff_id": result.staff.id})
    response.set_cookie(SESSION_COOKIE, result.token, httponly=True, samesite="Strict", secure=_secure(request),
                        path="/")
    return response


@routes.post("/api/auth/logout")
async def logout(request: web.Request) -> web.Response:
    await kernel(request).auth.logout(current(request), request[client_ip_key])
    response = ok({"status": "ok"})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


@routes.get("/api/auth/me")
async def me(request: web.Request) -> web.Response:
    auth = current(request)
    cards = await org_store.get_cards(kernel(request).db, [auth.staff.id])
    return ok({"staff": card_json(cards[0]), "role": auth.staff.role, "affiliation": auth.affiliation,
               "org": {"id": auth.org.id, "code": auth.org.code, "name": auth.org.name},
               "csrf_token": auth.session.csrf_token, "mfa_pending": auth.session.mfa_pending,
               "totp_enabled": auth.staff.totp_secret is not None})


@routes.post("/api/auth/totp/begin")
async def totp_begin(request: web.Request) -> web.Response:
    return ok(await kernel(request).auth.begin_totp(current(request), request[client_ip_key]))


@routes.post("/api/auth/totp/confirm")
async def totp_confirm(request: web.Request) -> web.Response:
    body = await read_json(request, "TotpConfirmRequest")
    await kernel(request).auth.confirm_totp(current(request), body["code"], request[client_ip_key])
    return ok({"status": "ok"})


@routes.post("/api/auth/password")
async def change_password(request: web.Request) -> web.Response:
    body = await read_json(request, "PasswordChangeRequest")
    await kernel(request).auth.change_password(current(request), body["current"], body["new"], actor(request).ip)
    return ok({"status": "ok"})
