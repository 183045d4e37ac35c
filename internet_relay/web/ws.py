"""The guest/phone WebSocket: live events for the caller's rooms. Client frames: ``{"type":"ping"}`` only."""

from __future__ import annotations

import json

from aiohttp import WSMsgType, web

from ..hub import Connection
from ..middlewares import check_origin
from .common import current, relay

routes = web.RouteTableDef()
MAX_CLIENT_FRAME = 4096


@routes.get("/api/ws")
async def websocket(request: web.Request) -> web.WebSocketResponse:
    check_origin(request)     # a cross-site page must not ride the guest's cookie
    auth = current(request)
    hub = relay(request).hub
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=MAX_CLIENT_FRAME)
    await ws.prepare(request)
    conn = Connection(auth.account.member, auth.session.id, auth.session.device_id, ws)
    hub.register(conn)
    try:
        await ws.send_str(json.dumps({"type": "hello", "status": auth.account.status}))
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and msg.data == '{"type":"ping"}':
                await ws.send_str('{"type":"pong"}')
            elif msg.type == WSMsgType.ERROR:
                break
    finally:
        hub.unregister(conn)
    return ws
