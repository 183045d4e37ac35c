"""The staff directory of the caller's organisation: people, departments, ranks."""

from __future__ import annotations

from aiohttp import web

from shared.limits import MAX_PAGE_SIZE
from shared.textsafe import clean_line

from ..errors import AppError
from ..services.messages import card_json
from ..storage import org as org_store
from ..storage import rooms as room_store
from .common import current, kernel, ok
from .validation import path_int, query_int

routes = web.RouteTableDef()


@routes.get("/api/staff")
async def list_staff(request: web.Request) -> web.Response:
    auth = current(request)
    query = clean_line(request.query.get("q", ""))[:100]
    cards = await org_store.search_cards(kernel(request).db, [auth.org.id], query,
                                         query_int(request, "department_id"),
                                         query_int(request, "limit", 50, minimum=1, maximum=MAX_PAGE_SIZE) or 50,
                                         query_int(request, "offset", 0) or 0)
    return ok({"staff": [card_json(c) for c in cards]})


@routes.get("/api/staff/{staff_id}")
async def get_staff(request: web.Request) -> web.Response:
    auth = current(request)
    staff_id = path_int(request, "staff_id")
    cards = await org_store.get_cards(kernel(request).db, [staff_id])
    if not cards:
        raise AppError("staff_not_found")
    card = cards[0]
    # Colleagues of another organisation are visible only when a shared room connects them.
    if card.org_id != auth.org.id:
        shared = set(await _room_ids(request, auth.staff.id)) & set(await _room_ids(request, staff_id))
        if not shared:
            raise AppError("staff_not_found")
    return ok(card_json(card))


async def _room_ids(request: web.Request, staff_id: int) -> list[int]:
    return await room_store.room_ids_of_staff(kernel(request).db, staff_id)


@routes.get("/api/departments")
async def departments(request: web.Request) -> web.Response:
    auth = current(request)
    depts = await org_store.list_departments(kernel(request).db, auth.org.id)
    return ok({"departments": [{"id": d.id, "code": d.code, "name": d.name, "parent_id": d.parent_id, "kind": d.kind,
                                "sort_order": d.sort_order, "active": d.active} for d in depts]})


@routes.get("/api/ranks")
async def ranks(request: web.Request) -> web.Response:
    auth = current(request)
    items = await org_store.list_ranks(kernel(request).db, auth.org.id)
    return ok({"ranks": [{"id": r.id, "code": r.code, "name": r.name, "level": r.level} for r in items]})
