"""The staff WebSocket: one per browser session; resumes from the last event id it saw.

Client → server frames: ``{"type": "ping"}`` only. Server → client: events
``{"id", "type", "room_id", "data"}`` and control frames ``hello``, ``resync_required``, ``pong``.
"""

from __future__ import annotations

import json

from aiohttp import WSMsgType, web

from shared.limits import MAX_WS_MESSAGE_BYTES, WS_HEARTBEAT_SECONDS

from ..errors import AppError
from ..hub import Connection
from ..middlewares import check_origin
from ..services.events import frame
from ..storage import events as event_store
from ..storage import rooms as room_store
from .common import current, kernel
from .validation import query_int

routes = web.RouteTableDef()
MAX_REPLAY = 5_000


@routes.get("/api/ws")
async def websocket(request: web.Request) -> web.WebSocketResponse:
    check_origin(request)   # a cross-site page must not ride the staff cookie (CSWSH)
    auth = current(request)
    since = query_int(request, "since")
    k = kernel(request)
    # No permessage-deflate: on the LGWAN LAN bandwidth is cheap, while a zlib state per socket costs
    # ~90 KiB of memory (10,000 sockets: 1.2 GiB against 0.35 GiB) and CPU for every frame of every
    # fan-out. Uncompressed frames are also identical for every member, so they are encoded once.
    ws = web.WebSocketResponse(heartbeat=WS_HEARTBEAT_SECONDS, max_msg_size=MAX_WS_MESSAGE_BYTES, compress=False)
    await ws.prepare(request)
    conn = Connection(auth.staff.id, auth.session.id, ws, request.transport)
    k.hub.register(conn)    # queue live events from now on; the replay below covers everything before
    try:
        try:
            last = await _replay(request, conn, since)
        except ConnectionResetError:   # the terminal vanished mid-replay; it resumes from its own last id
            last = None
        if last is None:
            return ws
        k.hub.start_writer(conn, last)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                try:
                    frame = json.loads(msg.data)
                except ValueError:
                    frame = None
                if isinstance(frame, dict) and frame.get("type") == "ping":
                    await ws.send_str('{"type":"pong"}')
            elif msg.type == WSMsgType.ERROR:
                break
    finally:
        k.hub.unregister(conn)
    return ws


async def _replay(request: web.Request, conn: Connection, since: int | None) -> int | None:
    """Send what the client missed; return the last event id sent (None if the socket closed)."""
    k = kernel(request)
    latest = await event_store.latest_event_id(k.db)
    if since is None:
        await conn.ws.send_str(json.dumps({"type": "hello", "last_event_id": latest}))
        return latest
    oldest = await event_store.oldest_event_id(k.db)
    if since > latest or (oldest and since < oldest - 1):
        await conn.ws.send_json({"type": "resync_required", "last_event_id": latest, **AppError("resync_required").to_json()})
        return latest
    room_ids = await room_store.room_ids_of_staff(k.db, conn.staff_id)
    events = await event_store.events_since(k.db, since, room_ids, conn.staff_id, MAX_REPLAY + 1)
    if len(events) > MAX_REPLAY:
        await conn.ws.send_json({"type": "resync_required", "last_event_id": latest, **AppError("resync_required").to_json()})
        return latest
    last = since
    for event in events:
        await conn.ws.send_str(frame(event.id, event.type, event.room_id, event.payload))
        last = event.id
    await conn.ws.send_str(json.dumps({"type": "hello", "last_event_id": max(last, latest), "replayed": len(events)}))
    return last
