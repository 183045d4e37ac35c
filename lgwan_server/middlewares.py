"""Middlewares: JSON errors, client address, session auth, CSRF/Origin; and security headers."""

from __future__ import annotations

import secrets

from aiohttp import web
from aiohttp.typedefs import Handler

from shared import webedge
from shared.webedge import error_response as error_response

from .appkeys import client_ip_key, config_key, current_auth_key, kernel_key
from .errors import AppError

SESSION_COOKIE = "kk_session"
CSRF_HEADER = "X-CSRF-Token"
# Paths anyone may call. Everything else under /api/ needs a session.
PUBLIC_PATHS = frozenset({"/healthz", "/api/auth/login", "/api/openapi.yaml"})
# What a session still waiting for TOTP enrolment may do.
MFA_PENDING_PATHS = frozenset({"/api/auth/me", "/api/auth/logout", "/api/auth/totp/begin", "/api/auth/totp/confirm"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; font-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
_HTTP_CODES = {400: "invalid_request", 401: "not_authenticated", 403: "forbidden", 404: "not_found",
               405: "invalid_request", 413: "body_too_large", 415: "unsupported_media_type", 429: "rate_limited"}

# Every failure becomes ``{"error": {"code", "message", "message_en"}}``; never a stack trace.
error_middleware = webedge.error_middleware(AppError, _HTTP_CODES)


def _client_ip(request: web.Request) -> str:
    return webedge.client_ip(request, request.app[config_key].server.trusted_proxies)


def allowed_origins(request: web.Request) -> set[str]:
    return webedge.allowed_origins(request, request.app[config_key].server.public_origin)


def check_origin(request: web.Request) -> None:
    """Browsers send Origin on cross-site POSTs and on every WebSocket handshake."""
    if not webedge.origin_allowed(request, request.app[config_key].server.public_origin):
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
    auth = await request.app[kernel_key].auth.authenticate(token, request[client_ip_key])
    if auth.session.mfa_pending and path not in MFA_PENDING_PATHS:
        raise AppError("totp_enrolment_required")
    if request.method in UNSAFE_METHODS:
        check_origin(request)
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not secrets.compare_digest(sent, auth.session.csrf_token):
            raise AppError("csrf_failed")
    request[current_auth_key] = auth
    return await handler(request)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: applies to every response, static files and WebSocket upgrades included."""
    webedge.set_security_headers(request, response, csp=CSP, no_store=request.path.startswith("/api/"))
