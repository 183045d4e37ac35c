"""The staff web UI: ``/`` serves index.html, ``/static/…`` serves the ES modules, CSS and catalogues.

Everything is local (LGWAN terminals have no internet). Only files under ``static/`` with an
allow-listed extension are served; anything else is 404. The path check and the revalidation
policy (``Cache-Control: no-cache`` with ``ETag``/``Last-Modified``) are ``shared.static``'s.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from shared.static import CACHE_CONTROL as CACHE_CONTROL
from shared.static import StaticFiles

from ..errors import AppError

routes = web.RouteTableDef()

STATIC_ROOT = (Path(__file__).resolve().parent.parent / "static").resolve()
# Extension -> Content-Type. The allow-list is also what keeps stray files (.py, dotfiles) unserved.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
FILES = StaticFiles(STATIC_ROOT, CONTENT_TYPES)


@routes.get("/")
async def index(request: web.Request) -> web.FileResponse:
    return FILES.response(STATIC_ROOT / "index.html")


@routes.get("/static/{path:.+}")
async def static(request: web.Request) -> web.FileResponse:
    path = FILES.resolve(request.match_info["path"])
    if path is None:
        raise AppError("not_found")
    return FILES.response(path)
