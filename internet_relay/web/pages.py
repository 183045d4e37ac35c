"""The guest UI: ``/`` and ``/enrol`` serve index.html; ``/static/…`` serves allow-listed local files only.

Everything is served from here — no CDN, no web fonts, no external requests. The path check and
the cache policy are ``shared.static``'s (the LGWAN server serves its UI the same way).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from shared.static import StaticFiles

from ..errors import AppError

routes = web.RouteTableDef()
STATIC_ROOT = (Path(__file__).resolve().parent.parent / "static").resolve()
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
FILES = StaticFiles(STATIC_ROOT, CONTENT_TYPES)


@routes.get("/")
async def index(request: web.Request) -> web.FileResponse:
    return FILES.response(STATIC_ROOT / "index.html")


@routes.get("/enrol")
async def enrol(request: web.Request) -> web.FileResponse:
    return FILES.response(STATIC_ROOT / "index.html")


@routes.get("/static/{path:.+}")
async def static(request: web.Request) -> web.FileResponse:
    path = FILES.resolve(request.match_info["path"])
    if path is None:
        raise AppError("not_found")
    return FILES.response(path)
