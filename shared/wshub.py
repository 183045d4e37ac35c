"""WebSocket fan-out core: sockets registered by owner, one bounded queue and one writer task each.

Publishing is synchronous and never awaits: a frame is put on each target socket's queue and that
socket's writer task sends it. A socket whose queue overflows is closed (``CLOSE_TOO_SLOW``) and its
client catches up on reconnect, so one slow client cannot hold up the others. Who may receive a
frame is each tier's business (its ``Hub`` subclass computes the owners); this core only delivers.

Fast path: when a socket has nothing queued and its writer is idle, a frame is written straight to
the transport (encoded once per fan-out, not once per socket), which saves a task wake-up and a
queue hand-off per delivery — the bulk of a 500-member room's cost. Anything else (a busy writer,
a backed-up transport, frames held for a resume replay, compression) takes the queue path, so
per-socket order is kept: a frame is only written directly when nothing is ahead of it.

Queue items are ``(seq, text)``. ``seq`` serves a tier whose clients resume from an event id: the
replay after a reconnect already sent every event up to ``Socket.hold_until``, so the writer skips
those. A tier without resume queues ``seq`` 0 and leaves ``hold_until`` at -1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections import defaultdict
from collections.abc import Hashable, Iterable
from typing import ClassVar, Generic, TypeVar

from aiohttp import WSCloseCode, web

log = logging.getLogger(__name__)

# Application close codes (4000–4999 are ours).
CLOSE_SESSION_ENDED = 4001     # logged out, session revoked, account suspended or ended
CLOSE_TOO_SLOW = 4008          # send queue overflowed; reconnect (and resume)

K = TypeVar("K", bound=Hashable)
Item = tuple[int, str]

# A transport holding more than this is not written to directly; the writer task waits for drain.
DIRECT_WRITE_HIGH_WATER = 64 * 1024


def text_frame(text: str) -> bytes:
    """An unmasked, uncompressed, final RFC 6455 text frame (server → client, section 5.2)."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x81, n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x81, 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 127, n)
    return header + payload


class Socket(Generic[K]):
    """One open WebSocket of ``owner`` (a staff id, an account…) in one login session."""

    __slots__ = ("owner", "session_id", "ws", "queue", "writer", "hold_until", "closing", "busy", "transport")

    def __init__(self, owner: K, session_id: int, ws: web.WebSocketResponse, queue_size: int,
                 transport: asyncio.Transport | None = None) -> None:
        self.owner = owner
        self.session_id = session_id
        self.ws = ws
        self.queue: asyncio.Queue[Item | None] = asyncio.Queue(maxsize=queue_size)
        self.writer: asyncio.Task[None] | None = None
        self.hold_until = -1       # items with seq <= this were already sent (by a resume replay)
        self.closing = False
        self.busy = False          # the writer task is inside a send
        # Set only for sockets negotiated without permessage-deflate: enables direct writes.
        self.transport = transport if transport is not None and not ws.compress else None


S = TypeVar("S", bound=Socket)  # type: ignore[type-arg]


class SocketHub(Generic[K, S]):
    """The registry and delivery half of a tier's hub; the tier adds who receives what."""

    # The ``extra=`` key under which a failing writer logs its socket's owner.
    owner_log_key: ClassVar[str] = "owner"

    def __init__(self) -> None:
        self._by_owner: dict[K, set[S]] = defaultdict(set)
        self.delivered = 0

    def register(self, conn: S) -> None:
        """Start receiving frames (queued until ``start_writer``)."""
        self._by_owner[conn.owner].add(conn)

    def start_writer(self, conn: S, already_sent_up_to: int = -1) -> None:
        """Start sending queued frames, skipping those with ``seq <= already_sent_up_to``."""
        conn.hold_until = already_sent_up_to
        conn.writer = asyncio.get_running_loop().create_task(self._write_loop(conn))

    def unregister(self, conn: S) -> None:
        """Stop receiving frames; the writer stops after the frames already queued."""
        conns = self._by_owner.get(conn.owner)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._by_owner[conn.owner]
        if conn.writer is not None and not conn.writer.done():
            with contextlib.suppress(asyncio.QueueFull):
                conn.queue.put_nowait(None)

    @property
    def connection_count(self) -> int:
        return sum(len(c) for c in self._by_owner.values())

    def _fan_out(self, owners: Iterable[K], item: Item) -> None:
        """Queue ``item`` for every open socket of ``owners``. Synchronous: never awaits.

        The hot path of every post: no copies of the socket sets. Overflowing sockets are closed
        after the loop, because closing one removes it from the set being iterated.
        """
        by_owner = self._by_owner
        too_slow: list[S] | None = None
        seq = item[0]
        data: bytes | None = None
        for owner in owners:
            conns = by_owner.get(owner)
            if not conns:
                continue
            for conn in conns:
                if conn.closing:
                    continue
                transport = conn.transport
                if (transport is not None and conn.writer is not None and not conn.busy and seq > conn.hold_until
                        and conn.queue.empty() and not conn.ws.closed and not transport.is_closing()
                        and transport.get_write_buffer_size() < DIRECT_WRITE_HIGH_WATER):
                    if data is None:
                        data = text_frame(item[1])
                    transport.write(data)
                    self.delivered += 1
                    continue
                try:
                    conn.queue.put_nowait(item)
                except asyncio.QueueFull:
                    if too_slow is None:
                        too_slow = []
                    too_slow.append(conn)
        if too_slow:
            for conn in too_slow:
                self._close_soon(conn, CLOSE_TOO_SLOW, "too slow")

    def close_session(self, session_id: int, reason: str) -> None:
        """Close every socket of one login session (logout)."""
        for conns in list(self._by_owner.values()):
            for conn in list(conns):
                if conn.session_id == session_id:
                    self._close_soon(conn, CLOSE_SESSION_ENDED, reason)

    async def close_all(self) -> None:
        """On shutdown: GOING_AWAY to every client so it reconnects and resumes elsewhere/later."""
        conns = [c for cs in self._by_owner.values() for c in cs]
        await asyncio.gather(*(c.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown") for c in conns),
                             return_exceptions=True)

    def _close_soon(self, conn: S, code: int, reason: str) -> None:
        if conn.closing:
            return
        conn.closing = True
        self.unregister(conn)
        task = asyncio.get_running_loop().create_task(conn.ws.close(code=code, message=reason.encode()))
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def _write_loop(self, conn: S) -> None:
        queue, ws = conn.queue, conn.ws
        try:
            while True:
                item = await queue.get()
                if item is None or conn.closing:
                    return
                seq, text = item
                if seq <= conn.hold_until:
                    continue
                conn.busy = True
                try:
                    await ws.send_str(text)
                finally:
                    conn.busy = False
                self.delivered += 1
        except (ConnectionResetError, RuntimeError, asyncio.CancelledError):
            return
        except Exception:
            log.exception("websocket writer failed", extra={self.owner_log_key: conn.owner})
