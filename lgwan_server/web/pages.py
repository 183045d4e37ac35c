"""The staff web UI: ``/`` serves index.html, ``/static/…`` serves the ES modules, CSS and catalogues.

Everything is local (LGWAN terminals have no internet). There is no build step, so asset URLs carry
no content hash: responses say ``Cache-Control: no-cache`` and carry ``ETag``/``Last-Modified``, so a
browser revalidates each asset with a cheap 304 and an upgrade is picked up at the next reload.
Only files under ``static/`` with an allow-listed extension are served; anything else is 404.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

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
CACHE_CONTROL = "no-cache"


def _file_response(path: Path) -> web.FileResponse:
    return web.FileResponse(path, headers={"Content-Type": CONTENT_TYPES[path.suffix],
                                           "Cache-Control": CACHE_CONTROL})


@routes.get("/")
async def index(request: web.Request) -> web.FileResponse:
    return _file_response(STATIC_ROOT / "index.html")


@routes.get("/static/{path:.+}")
async def static(request: web.Request) -> web.FileResponse:
    relative = request.match_info["path"]
    if "\\" in relative or "\x00" in relative or any(p in ("", ".", "..") or p.startswith(".")
                                                      for p in relative.split("/")):
        raise AppError("not_found")
    path = (STATIC_ROOT / relative).resolve()
    if not path.is_relative_to(STATIC_ROOT) or path.suffix not in CONTENT_TYPES or not path.is_file():
        raise AppError("not_found")
    return _file_response(path)
