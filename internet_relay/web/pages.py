"""The guest UI: ``/`` and ``/enrol`` serve index.html; ``/static/…`` serves allow-listed local files only.

Everything is served from here — no CDN, no web fonts, no external requests.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from ..errors import AppError

routes = web.RouteTableDef()
STATIC_ROOT = (Path(__file__).resolve().parent.parent / "static").resolve()
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


def _file(path: Path) -> web.FileResponse:
    return web.FileResponse(path, headers={"Content-Type": CONTENT_TYPES[path.suffix], "Cache-Control": "no-cache"})


@routes.get("/")
async def index(request: web.Request) -> web.FileResponse:
    return _file(STATIC_ROOT / "index.html")


@routes.get("/enrol")
async def enrol(request: web.Request) -> web.FileResponse:
    return _file(STATIC_ROOT / "index.html")


@routes.get("/static/{path:.+}")
async def static(request: web.Request) -> web.FileResponse:
    relative = request.match_info["path"]
    if "\\" in relative or "\x00" in relative or any(p in ("", ".", "..") or p.startswith(".")
                                                      for p in relative.split("/")):
        raise AppError("not_found")
    path = (STATIC_ROOT / relative).resolve()
    if not path.is_relative_to(STATIC_ROOT) or path.suffix not in CONTENT_TYPES or not path.is_file():
        raise AppError("not_found")
    return _file(path)
