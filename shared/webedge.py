"""What every tier's aiohttp edge does the same way: JSON error responses and the error middleware,
the client address behind trusted proxies, the Origin check and the security headers.

Tier-specific parts stay in each tier's ``middlewares.py``: its ``AppError`` catalogue and the
status → code table, its config section, session auth and CSRF, the CSP and which paths are
``no-store``.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Collection, Mapping

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .apperror import AppError

log = logging.getLogger(__name__)


def dumps_json(value: object) -> str:
    """JSON with Japanese kept readable (``ensure_ascii=False``), still valid for any detail."""
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A detail echoed a lone surrogate (e.g. a multipart field name decoded with surrogateescape):
        # \u escapes keep the JSON valid instead of failing the error response itself.
        text = json.dumps(value)
    return text


def error_response(error: AppError) -> web.Response:
    """``error`` as its JSON body with its HTTP status."""
    return web.json_response(error.to_json(), status=error.status, dumps=dumps_json)


def error_middleware(error_cls: type[AppError], http_codes: Mapping[int, str]) -> Middleware:
    """A middleware turning every failure into ``{"error": {"code", "message", "message_en"}}``.

    Args:
        error_cls: the tier's ``AppError`` subclass (its catalogue must hold ``internal_error``,
            ``invalid_request`` and every code of ``http_codes``).
        http_codes: aiohttp's own HTTP errors (404 for an unknown route, 413 for a large body…)
            → the tier's code; other 4xx become ``invalid_request``, 5xx ``internal_error``.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except error_cls as exc:
            return error_response(exc)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = http_codes.get(exc.status, "internal_error" if exc.status >= 500 else "invalid_request")
            response = error_response(error_cls(code))
            response.set_status(exc.status)
            return response
        except ConnectionResetError:
            # The client went away mid-request (closed tab, killed process): nothing to answer, not our fault.
            log.info("client disconnected", extra={"path": request.path, "method": request.method})
            raise
        except Exception:
            log.exception("unhandled error", extra={"path": request.path, "method": request.method})
            return error_response(error_cls("internal_error"))

    return middleware


def client_ip(request: web.Request, trusted_proxies: Collection[str]) -> str:
    """The peer address, or the last ``X-Forwarded-For`` hop when the peer is a trusted proxy.

    Only the last hop counts: that is the one our proxy appended; earlier ones are client-supplied.
    """
    remote = request.remote or ""
    if trusted_proxies and remote in trusted_proxies:
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded:
            candidate = forwarded.split(",")[-1].strip()
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                pass
    return remote


def allowed_origins(request: web.Request, public_origin: str) -> set[str]:
    """This server's own origin as the request reached it, plus the configured public one."""
    origins = {f"{request.scheme}://{request.host}"}
    if public_origin:
        origins.add(public_origin)
    return origins


def origin_allowed(request: web.Request, public_origin: str) -> bool:
    """False when the request carries a foreign ``Origin``.

    Browsers send Origin on cross-site POSTs and on every WebSocket handshake; a request without
    one (curl, same-origin GET) is not a cross-site browser request.
    """
    origin = request.headers.get("Origin")
    return origin is None or origin in allowed_origins(request, public_origin)


def set_security_headers(request: web.Request, response: web.StreamResponse, *, csp: str, no_store: bool) -> None:
    """The headers every response gets (static files and WebSocket upgrades included).

    Call it from the tier's ``on_response_prepare`` hook. ``setdefault`` lets a handler that
    knows better (a download's own Cache-Control) keep its value.

    Args:
        csp: the tier's Content-Security-Policy.
        no_store: add ``Cache-Control: no-store`` (the tier decides where: its API, entry pages).
    """
    headers = response.headers
    headers.setdefault("Content-Security-Policy", csp)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if no_store:
        headers.setdefault("Cache-Control", "no-store")
    if request.secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
