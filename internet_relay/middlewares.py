"""Middlewares of the guest web port: JSON errors, client address, session auth, CSRF/Origin, headers."""

from __future__ import annotations

import secrets

from aiohttp import web
from aiohttp.typedefs import Handler

from shared import webedge
from shared.webedge import error_response as error_response

from .appkeys import client_ip_key, config_key, current_auth_key, relay_key
from .errors import AppError

SESSION_COOKIE = "kr_session"
DEVICE_COOKIE = "kr_device"
CSRF_HEADER = "X-CSRF-Token"
# Paths anyone may call; everything else under /api/ needs a session.
PUBLIC_PATHS = frozenset({"/healthz", "/api/login", "/api/enrol/info", "/api/enrol/totp", "/api/enrol/complete"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
_HTTP_CODES = {400: "invalid_request", 401: "not_authenticated", 403: "csrf_failed", 404: "not_found",
               405: "invalid_request", 413: "body_too_large", 415: "unsupported_media_type", 429: "rate_limited"}

# Every failure becomes ``{"error": {"code", "message", "message_en"}}`` from this tier's catalogue (403 maps
# to csrf_failed: the guest catalogue has no generic "forbidden"). shared.webedge keeps the JSON valid when a
# detail holds a lone surrogate and logs a client that hung up at info level instead of answering a 500.
error_middleware = webedge.error_middleware(AppError, _HTTP_CODES)


def _client_ip(request: web.Request) -> str:
    return webedge.client_ip(request, request.app[config_key].web.trusted_proxies)


def check_origin(request: web.Request) -> None:
    """Browsers send Origin on cross-site POSTs and on every WebSocket handshake."""
    if not webedge.origin_allowed(request, request.app[config_key].web.public_origin):
        raise AppError("origin_mismatch")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[client_ip_key] = _client_ip(request)
    path = request.path
    if not path.startswith("/api/") or path in PUBLIC_PATHS:
        if request.method in UNSAFE_METHODS:
            check_origin(request)
        return await handler(request)
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise AppError("not_authenticated")
    auth = await request.app[relay_key].accounts.authenticate(token)
    if request.method in UNSAFE_METHODS:
        check_origin(request)
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not secrets.compare_digest(sent, auth.session.csrf_token):
            raise AppError("csrf_failed")
    request[current_auth_key] = auth
    return await handler(request)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, static files and WebSocket upgrades included."""
    webedge.set_security_headers(request, response, csp=CSP,
                                 no_store=request.path.startswith("/api/") or request.path in ("/", "/enrol"))
