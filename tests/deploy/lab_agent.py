"""A small agent that runs *inside* one lab namespace and does network things on the test's behalf.

The test process stays in the host's namespace (it never gets a route into the lab), so it starts one
agent per lab host with ``ip netns exec NS python lab_agent.py`` and talks to it over stdin/stdout,
one JSON object per line. Every operation has its own time limit, so an agent always answers.

Operations: ``tcp`` (try a TCP connection), ``listen`` (accept and close TCP connections on a port),
``get`` (an HTTPS GET), ``client`` (a staff or guest browser-like client from tests/e2e/harness.py),
``staff_login``, ``guest_enrol``, ``guest_login``, ``call`` (a JSON API call), ``quit``.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from typing import Any

CLIENTS: dict[str, Any] = {}
SERVERS: list[asyncio.base_events.Server] = []


async def op_tcp(host: str, port: int, timeout: float = 2.0) -> dict[str, Any]:  # noqa: ASYNC109
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    writer.close()
    return {"ok": True}


async def op_listen(port: int, host: str = "0.0.0.0") -> dict[str, Any]:  # noqa: S104 - lab namespace only
    async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    SERVERS.append(await asyncio.start_server(close_at_once, host, port))
    return {"ok": True}


def _ssl(ca: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca)


async def op_get(url: str, ca: str, timeout: float = 10.0) -> dict[str, Any]:  # noqa: ASYNC109
    import aiohttp

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http, \
                http.get(url, ssl=_ssl(ca)) as resp:
            return {"ok": resp.status == 200, "status": resp.status, "body": await resp.json(content_type=None)}
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


async def op_client(name: str, kind: str, base: str, ca: str) -> dict[str, Any]:
    import aiohttp
    from e2e.harness import Guest, Staff

    client = (Staff if kind == "staff" else Guest)(base)
    await client.http.close()
    client.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                        timeout=aiohttp.ClientTimeout(total=30),
                                        connector=aiohttp.TCPConnector(ssl=_ssl(ca)))
    CLIENTS[name] = client
    return {"ok": True}


async def _api(coro: Any) -> dict[str, Any]:
    from e2e.harness import ApiError

    try:
        return {"ok": True, "body": await coro}
    except ApiError as exc:
        return {"ok": False, "status": exc.status, "body": exc.body}


async def handle(request: dict[str, Any]) -> dict[str, Any]:
    op = request.pop("op")
    if op == "tcp":
        return await op_tcp(**request)
    if op == "listen":
        return await op_listen(**request)
    if op == "get":
        return await op_get(**request)
    if op == "client":
        return await op_client(**request)
    client = CLIENTS[request.pop("name")]
    if op == "staff_login":
        return await _api(client.login(request["login"]))
    if op == "guest_enrol":
        return await _api(client.enrol(request["token"], request["login"]))
    if op == "guest_login":
        return await _api(client.login())
    if op == "call":
        return await _api(client.call(request["method"], request["path"], request.get("body")))
    return {"ok": False, "error": f"unknown op {op}"}


async def main() -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        request = json.loads(line)
        if request.get("op") == "quit":
            break
        try:
            reply = await asyncio.wait_for(handle(request), 60)
        except Exception as exc:  # noqa: BLE001 - report every failure to the test
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(reply, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    for client in CLIENTS.values():
        await client.close()
    for server in SERVERS:
        server.close()


if __name__ == "__main__":
    asyncio.run(main())
