"""The sanitizer's report for a file that came from a guest or a staff phone (issue 3, item 9)."""

from __future__ import annotations

from aiohttp import web

from ..services.sanitized import SanitizedFileService
from .common import actor, kernel, ok
from .validation import path_int

routes = web.RouteTableDef()


@routes.get("/api/files/{attachment_id}/report")
async def report(request: web.Request) -> web.Response:
    k = kernel(request)
    service = SanitizedFileService(k.db, k.rooms)     # stateless: built per request, no kernel wiring
    return ok(await service.report(actor(request), path_int(request, "attachment_id")))
