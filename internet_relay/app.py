"""create_app(cfg): the relay's aiohttp application (guest web port).

Issue 5 builds the guest UI, staff phones and the queue endpoint; today the tier answers
/healthz so that deployment and the run command can start it on its own segment.
"""

from __future__ import annotations

from aiohttp import web

from .config import RelayConfig

config_key = web.AppKey[RelayConfig]("config")
routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "tier": "relay"})


def create_app(cfg: RelayConfig) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[config_key] = cfg
    app.add_routes(routes)
    return app
