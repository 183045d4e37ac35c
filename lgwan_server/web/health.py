"""Liveness/readiness and the API contract."""

from __future__ import annotations

from aiohttp import web

from ..appkeys import db_key, dialler_key, hub_key, validator_key
from .common import ok

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    db = request.app[db_key]
    await db.fetchval("SELECT 1")
    version = await db.fetchval("SELECT max(version) FROM schema_migrations")
    body = {"status": "ok", "tier": "lgwan", "schema_version": version,
            "websockets": request.app[hub_key].connection_count}
    if dialler_key in request.app:   # queue depth and lag of the relay link (issue 5)
        body["bridge"] = await request.app[dialler_key].health()
    return ok(body)


@routes.get("/api/openapi.yaml")
async def openapi(request: web.Request) -> web.Response:
    return web.Response(text=request.app[validator_key].spec_text, content_type="application/yaml", charset="utf-8")
