"""Guest and phone WebSockets: a registry by account, bounded per-socket queues, one writer each.

Services decide who may see an event (members of the room, computed in the same transaction) and
publish after commit; a socket that falls behind is closed and its page reloads what it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterable

from aiohttp import WSCloseCode, web

log = logging.getLogger(__name__)
SEND_QUEUE = 1_000
CLOSE_SESSION_ENDED = 4001
CLOSE_TOO_SLOW = 4008


class Connection:
    __slots__ = ("member", "session_id", "device_id", "ws", "queue", "writer", "closing")

    def __init__(self, member: str, session_id: int, device_id: str | None, ws: web.WebSocketResponse) -> None:
        self.member = member
        self.session_id = session_id
        self.device_id = device_id
        self.ws = ws
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=SEND_QUEUE)
        self.writer: asyncio.Task[None] | None = None
        self.closing = False


class Hub:
    def __init__(self) -> None:
        self._by_member: dict[str, set[Connection]] = defaultdict(set)
        self.delivered = 0

    def register(self, conn: Connection) -> None:
        self._by_member[conn.member].add(conn)
        conn.writer = asyncio.get_running_loop().create_task(self._write_loop(conn))

    def unregister(self, conn: Connection) -> None:
        conns = self._by_member.get(conn.member)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._by_member[conn.member]
        with contextlib.suppress(asyncio.QueueFull):
            conn.queue.put_nowait(None)

    @property
    def connection_count(self) -> int:
        return sum(len(c) for c in self._by_member.values())

    def publish(self, members: Iterable[str], text: str) -> None:
        """Queue a frame for every socket of ``members``. Synchronous: never awaits."""
        for member in members:
            for conn in list(self._by_member.get(member, ())):
                if conn.closing:
                    continue
                try:
                    conn.queue.put_nowait(text)
                except asyncio.QueueFull:
                    self._close_soon(conn, CLOSE_TOO_SLOW, "too slow")

    def broadcast(self, text: str) -> None:
        self.publish(list(self._by_member), text)

    def close_member(self, member: str, reason: str, device_id: str | None = None) -> None:
        for conn in list(self._by_member.get(member, ())):
            if device_id is None or conn.device_id == device_id:
                self._close_soon(conn, CLOSE_SESSION_ENDED, reason)

    def close_session(self, session_id: int, reason: str) -> None:
        for conns in list(self._by_member.values()):
            for conn in list(conns):
                if conn.session_id == session_id:
                    self._close_soon(conn, CLOSE_SESSION_ENDED, reason)

    async def close_all(self) -> None:
        conns = [c for cs in self._by_member.values() for c in cs]
        await asyncio.gather(*(c.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown") for c in conns),
                             return_exceptions=True)

    def _close_soon(self, conn: Connection, code: int, reason: str) -> None:
        if conn.closing:
            return
        conn.closing = True
        self.unregister(conn)
        task = asyncio.get_running_loop().create_task(conn.ws.close(code=code, message=reason.encode()))
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def _write_loop(self, conn: Connection) -> None:
        try:
            while True:
                text = await conn.queue.get()
                if text is None or conn.closing:
                    return
                await conn.ws.send_str(text)
                self.delivered += 1
        except (ConnectionResetError, RuntimeError, asyncio.CancelledError):
            return
        except Exception:
            log.exception("websocket writer failed")
