"""Middlewares of the guest web port: JSON errors, client address, session auth, CSRF/Origin, headers."""

from __future__ import annotations

import ipaddress
import logging
import secrets

from aiohttp import web
from aiohttp.typedefs import Handler

from .appkeys import client_ip_key, config_key, current_auth_key, relay_key
from .errors import AppError

log = logging.getLogger(__name__)

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


def error_response(error: AppError) -> web.Response:
    import json
    return web.json_response(error.to_json(), status=error.status, dumps=lambda v: json.dumps(v, ensure_ascii=False))


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except AppError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(AppError(_HTTP_CODES.get(exc.status, "internal_error" if exc.status >= 500
                                                              else "invalid_request")))
        response.set_status(exc.status)
        return response
    except Exception:
        log.exception("unhandled error", extra={"path": request.path, "method": request.method})
        return error_response(AppError("internal_error"))


def _client_ip(request: web.Request) -> str:
    remote = request.remote or ""
    proxies = request.app[config_key].web.trusted_proxies
    if proxies and remote in proxies:
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded:
            candidate = forwarded.split(",")[-1].strip()
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                pass
    return remote


def check_origin(request: web.Request) -> None:
    """Browsers send Origin on cross-site POSTs and on every WebSocket handshake."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    allowed = {f"{request.scheme}://{request.host}"}
    public = request.app[config_key].web.public_origin
    if public:
        allowed.add(public)
    if origin not in allowed:
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
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if request.path.startswith("/api/") or request.path in ("/", "/enrol"):
        headers.setdefault("Cache-Control", "no-store")
    if request.secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
