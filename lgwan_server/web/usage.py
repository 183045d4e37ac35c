"""GET /api/admin/usage: 利用状況 (active staff and messages per 所属 per JST day) for org admins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web

from shared.timeutil import JST, to_iso

from ..errors import AppError
from ..storage import usage as usage_store
from .common import actor, kernel, ok
from .validation import query_int

routes = web.RouteTableDef()
MAX_DAYS = 366


@routes.get("/api/admin/usage")
async def usage(request: web.Request) -> web.Response:
    a = actor(request)
    if not a.is_org_admin or a.org_id is None:
        raise AppError("forbidden")
    days = query_int(request, "days", 30, minimum=1, maximum=MAX_DAYS) or 30
    today = datetime.now(JST).date()
    first = today - timedelta(days=days - 1)
    since_utc = to_iso(datetime(first.year, first.month, first.day, tzinfo=JST).astimezone(UTC))
    db = kernel(request).db
    active = {d.day: d.count for d in await usage_store.active_staff_per_day(db, a.org_id, since_utc)}
    per_aff: dict[str, dict[str, int]] = {}
    for row in await usage_store.messages_per_affiliation_day(db, a.org_id, since_utc):
        per_aff.setdefault(row.affiliation, {})[row.day] = row.count
    day_list = [(first + timedelta(days=i)).isoformat() for i in range(days)]
    rows = sorted(((name, [counts.get(d, 0) for d in day_list]) for name, counts in per_aff.items()),
                  key=lambda item: (-sum(item[1]), item[0]))
    return ok({"from": first.isoformat(), "to": today.isoformat(), "days": day_list,
               "active_users": [active.get(d, 0) for d in day_list],
               "messages": [sum(counts[i] for _, counts in rows) for i in range(days)],
               "departments": [{"affiliation": name, "counts": counts, "total": sum(counts)} for name, counts in rows],
               "active_accounts": await usage_store.count_active_accounts(db, a.org_id)})

