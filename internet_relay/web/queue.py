"""The queue port: ``/queue`` (the LGWAN server's WebSocket) and ``/healthz``. Nothing else listens here."""

from __future__ import annotations

import json

from aiohttp import web

from ..appkeys import relay_key, web_app_key
from ..services.link import HEARTBEAT_SECONDS, MAX_FRAME_BYTES

routes = web.RouteTableDef()


@routes.get("/queue")
async def queue(request: web.Request) -> web.WebSocketResponse:
    relay = request.app[web_app_key][relay_key]
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS, max_msg_size=MAX_FRAME_BYTES, compress=False)
    await ws.prepare(request)
    await relay.link.serve(ws, request.remote or "")
    return ws


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    relay = request.app[web_app_key][relay_key]
    body = {"status": "ok", "tier": "relay", "port": "queue", "link": await relay.link.health()}
    return web.json_response(body, dumps=lambda v: json.dumps(v, ensure_ascii=False))
