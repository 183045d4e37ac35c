"""The baseline: the least an aiohttp server can do to fan a post out to WebSockets.

* ``GET /ws`` accepts a WebSocket (``?sub=1`` subscribes it to the broadcast), sends a ``hello``
  text frame, and then only reads (pings/pongs are handled by aiohttp, heartbeat as Kakehashi's).
* ``POST /broadcast`` sends the request body verbatim as one text frame to every subscribed
  socket, in a plain loop, then answers 201 ``{"sent": n}``. No auth, no database, no queue.
* ``GET /healthz`` answers ``{"websockets": n, "subscribers": n, "errors": n}``.

Same event loop (asyncio's default), same aiohttp, same heartbeat as the LGWAN server, so the
ratio Kakehashi / bare isolates what Kakehashi adds: auth, SQLite, event storage, the hub's
queues and writer tasks. Listens on 127.0.0.1 only.

    python benchmarks/bare_broadcast.py --port 0 --port-file /tmp/bare.port
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from aiohttp import WSMsgType, web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import HOST, raise_nofile  # noqa: E402

HEARTBEAT = 30.0            # the LGWAN server's WS_HEARTBEAT_SECONDS
subs_key = web.AppKey("subs", set)
all_key = web.AppKey("all", set)
errors_key = web.AppKey("errors", list)


async def ws_handler(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT, max_msg_size=64 * 1024)
    await ws.prepare(request)
    sub = request.query.get("sub") == "1"
    everyone, subs = request.app[all_key], request.app[subs_key]
    everyone.add(ws)
    if sub:
        subs.add(ws)
    try:
        await ws.send_str('{"type":"hello","last_event_id":0}')
        async for msg in ws:
            if msg.type == WSMsgType.ERROR:
                break
    finally:
        subs.discard(ws)
        everyone.discard(ws)
    return ws


async def broadcast(request: web.Request) -> web.Response:
    text = await request.text()
    sent = 0
    for ws in list(request.app[subs_key]):
        try:
            await ws.send_str(text)
            sent += 1
        except (ConnectionResetError, RuntimeError):
            request.app[errors_key][0] += 1
    return web.json_response({"sent": sent}, status=201)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "websockets": len(request.app[all_key]),
                              "subscribers": len(request.app[subs_key]), "errors": request.app[errors_key][0]})


def make_app() -> web.Application:
    app = web.Application()
    app[subs_key] = set()
    app[all_key] = set()
    app[errors_key] = [0]
    app.router.add_get("/ws", ws_handler)
    app.router.add_post("/broadcast", broadcast)
    app.router.add_get("/healthz", healthz)

    async def close_all(app: web.Application) -> None:
        await asyncio.gather(*(ws.close() for ws in list(app[all_key])), return_exceptions=True)

    app.on_shutdown.append(close_all)
    return app


async def serve(port: int, port_file: Path | None) -> None:
    raise_nofile()
    runner = web.AppRunner(make_app(), access_log=None, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, HOST, port)
    await site.start()
    bound = runner.addresses[0][1]
    if port_file is not None:
        tmp = port_file.with_suffix(".tmp")
        tmp.write_text(str(bound))
        os.replace(tmp, port_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await runner.cleanup()


def main() -> int:
    p = argparse.ArgumentParser(description="bare aiohttp WebSocket broadcast server (benchmark baseline)")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file", type=Path, default=None)
    args = p.parse_args()
    asyncio.run(serve(args.port, args.port_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
