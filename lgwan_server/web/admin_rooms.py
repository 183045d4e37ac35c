"""GET /api/admin/rooms: all rooms of the caller's organisation (org admins), for setting crossing policies.

Room names only (no topics, no message content); DMs are left out.
"""

from __future__ import annotations

from aiohttp import web

from shared.limits import MAX_PAGE_SIZE

from ..errors import AppError
from ..storage import admin_rooms as store
from .common import actor, kernel, ok
from .validation import query_int

routes = web.RouteTableDef()


@routes.get("/api/admin/rooms")
async def list_org_rooms(request: web.Request) -> web.Response:
    a = actor(request)
    if not a.is_org_admin or a.org_id is None:
        raise AppError("forbidden")
    rooms = await store.org_rooms(kernel(request).db, a.org_id,
                                  query_int(request, "limit", MAX_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE)
                                  or MAX_PAGE_SIZE, query_int(request, "offset", 0) or 0)
    return ok({"rooms": [{"id": r.id, "kind": r.kind, "name": r.name, "crossing_policy": r.crossing_policy,
                          "archived": r.archived, "member_count": r.member_count} for r in rooms]})
