"""Scripted peers for the hostile-queue tests: a fake LGWAN dialler and a fake relay queue port.

Each holds the real key of the tier it impersonates (the test generated both), so it gets through
the handshake and can then send exactly the bytes a test wants — valid, forged, replayed, out of
sequence, oversized — over the real WebSocket link to the real other tier.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from shared import envelope as env
from shared import link
from shared.signing import Signer, canonical_json

from .harness import HOST


def reseal(raw: bytes, signer: Signer, **changes: Any) -> bytes:
    """Change fields of a sealed envelope and sign it again (so the check after the signature is hit)."""
    obj = json.loads(raw)
    payload_changes = changes.pop("payload", None)
    obj.update(changes)
    if payload_changes is not None:
        obj["payload"] = {**obj["payload"], **payload_changes}
    obj.pop("sig")
    obj["sig"] = signer.sign(env.PURPOSE, obj)
    return canonical_json(obj)


@dataclass
class Outcome:
    acks: list[int]
    rejects: list[dict[str, Any]]
    close_code: int | None


async def drain(ws: aiohttp.ClientWebSocketResponse | web.WebSocketResponse, quiet: float,
                until_ack: int | None = None) -> Outcome:
    """Read control frames until the link closes, ``until_ack`` is acknowledged, or ``quiet`` passes."""
    acks, rejects = [], []
    while True:
        if until_ack is not None and acks and max(acks) >= until_ack:
            return Outcome(acks, rejects, None)
        try:
            msg = await ws.receive(timeout=quiet)
        except TimeoutError:
            return Outcome(acks, rejects, None)
        if msg.type == WSMsgType.TEXT:
            frame = json.loads(msg.data)
            if frame.get("type") == "ack":
                acks.append(frame["seq"])
            elif frame.get("type") == "reject":
                rejects.append(frame)
        elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return Outcome(acks, rejects, ws.close_code)


class FakeLgwan:
    """Dials the real relay's queue port as if it were the LGWAN server."""

    def __init__(self, queue_url: str, signer: Signer) -> None:
        self.url = queue_url.replace("http://", "ws://") + "/queue"
        self.signer = signer
        self.http = aiohttp.ClientSession()
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.welcome: dict[str, Any] = {}

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        await self.http.close()

    async def connect(self, *, ack: int = 0, reset: bool = False, signer: Signer | None = None) -> dict[str, Any]:
        """Handshake with the relay; returns the welcome (its epoch and ack)."""
        if self.ws is not None:
            await self.ws.close()
        self.ws = await self.http.ws_connect(self.url, max_msg_size=0)
        challenge = json.loads((await self.ws.receive(timeout=5)).data)
        signer = signer or self.signer
        nonce = link.new_nonce()
        ids = {"relay_nonce": challenge["nonce"], "lgwan_nonce": nonce, "relay_key_id": challenge["key_id"],
               "lgwan_key_id": signer.key_id}
        await self.ws.send_str(link.control("auth", v=1, nonce=nonce, key_id=signer.key_id,
                                            proof=link.prove(signer, "lgwan", **ids)))
        msg = await self.ws.receive(timeout=5)
        if msg.type != WSMsgType.TEXT:
            return {"closed": self.ws.close_code}
        self.welcome = json.loads(msg.data)
        if self.welcome["type"] == "welcome":
            await self.ws.send_str(link.control("ready", ack=ack, reset=reset))
        return self.welcome

    def seal(self, payload: env.Payload, seq: int, **kwargs: Any) -> bytes:
        return env.seal(payload, seq=seq, signer=self.signer, **kwargs)

    async def send(self, raw: bytes, quiet: float = 1.5, until_ack: int | None = None) -> Outcome:
        assert self.ws is not None
        await self.ws.send_bytes(raw)
        return await drain(self.ws, quiet, until_ack)


class FakeRelay:
    """Listens on the relay's queue port so the real LGWAN dialler connects to it."""

    def __init__(self, port: int, signer: Signer, epoch: str = "e" * 32) -> None:
        self.port = port
        self.signer = signer
        self.epoch = epoch
        self.ack = 0                    # what we tell LGWAN we applied (LGWAN→relay)
        self.connections: asyncio.Queue[Connection] = asyncio.Queue()
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/queue", self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, HOST, self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        nonce = link.new_nonce()
        await ws.send_str(link.control("challenge", v=1, nonce=nonce, key_id=self.signer.key_id))
        auth = json.loads((await ws.receive(timeout=5)).data)
        ids = {"relay_nonce": nonce, "lgwan_nonce": auth["nonce"], "relay_key_id": self.signer.key_id,
               "lgwan_key_id": auth["key_id"]}
        await ws.send_str(link.control("welcome", proof=link.prove(self.signer, "relay", **ids), epoch=self.epoch,
                                       ack=self.ack))
        msg = await ws.receive(timeout=5)
        if msg.type != WSMsgType.TEXT:
            return ws
        ready = json.loads(msg.data)
        conn = Connection(ws, ready, asyncio.Event())
        await self.connections.put(conn)
        await conn.done.wait()          # the test drives the connection, then lets it go
        with contextlib.suppress(Exception):
            await ws.close()
        return ws

    async def next_connection(self, within: float = 15.0) -> Connection:
        return await asyncio.wait_for(self.connections.get(), within)


@dataclass
class Connection:
    ws: web.WebSocketResponse
    ready: dict[str, Any]
    done: asyncio.Event

    async def send(self, raw: bytes, quiet: float = 1.5, until_ack: int | None = None) -> Outcome:
        await self.ws.send_bytes(raw)
        return await drain(self.ws, quiet, until_ack)

    def release(self) -> None:
        self.done.set()
