"""WebSocket registry and fan-out.

Every event is fanned out only to connections whose staff member is *currently* in the room,
according to ``members`` — an in-memory copy of ``room_members`` that services update in the
same after-commit step that publishes their events, so the check and the event always agree.
Each socket has a bounded queue and one writer task; a socket that falls too far behind is
closed and its client resumes from its last event id, so one slow tablet cannot hold up a room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict

from aiohttp import WSCloseCode, web

from shared.limits import WS_SEND_QUEUE

log = logging.getLogger(__name__)

# Application close codes (4000–4999 are ours).
CLOSE_SESSION_ENDED = 4001     # logged out, session revoked, account suspended or retired
CLOSE_TOO_SLOW = 4008          # send queue overflowed; resume from the last event id


class Connection:
    __slots__ = ("staff_id", "session_id", "ws", "queue", "writer", "hold_until", "closing")

    def __init__(self, staff_id: int, session_id: int, ws: web.WebSocketResponse) -> None:
        self.staff_id = staff_id
        self.session_id = session_id
        self.ws = ws
        self.queue: asyncio.Queue[tuple[int, str] | None] = asyncio.Queue(maxsize=WS_SEND_QUEUE)
        self.writer: asyncio.Task[None] | None = None
        self.hold_until = 0        # events with id <= this were already sent by the resume replay
        self.closing = False


class Hub:
    def __init__(self) -> None:
        self.members: dict[int, set[int]] = defaultdict(set)      # room_id -> staff ids
        self._by_staff: dict[int, set[Connection]] = defaultdict(set)
        self.delivered = 0

    # --- membership index (mirrors room_members) ---------------------------------------------

    def load_members(self, pairs: list[tuple[int, int]]) -> None:
        self.members.clear()
        for room_id, staff_id in pairs:
            self.members[room_id].add(staff_id)

    def member_added(self, room_id: int, staff_id: int) -> None:
        self.members[room_id].add(staff_id)

    def member_removed(self, room_id: int, staff_id: int) -> None:
        self.members[room_id].discard(staff_id)

    def is_member(self, room_id: int, staff_id: int) -> bool:
        return staff_id in self.members.get(room_id, ())

    # --- connections -------------------------------------------------------------------------

    def register(self, conn: Connection) -> None:
        """Start receiving events (queued until ``start_writer``)."""
        self._by_staff[conn.staff_id].add(conn)

    def start_writer(self, conn: Connection, already_sent_up_to: int) -> None:
        conn.hold_until = already_sent_up_to
        conn.writer = asyncio.get_running_loop().create_task(self._write_loop(conn))

    def unregister(self, conn: Connection) -> None:
        conns = self._by_staff.get(conn.staff_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._by_staff[conn.staff_id]
        if conn.writer is not None and not conn.writer.done():
            with contextlib.suppress(asyncio.QueueFull):
                conn.queue.put_nowait(None)

    def online(self, staff_ids: list[int]) -> list[int]:
        """Those of ``staff_ids`` with at least one open socket right now."""
        return [s for s in staff_ids if self._by_staff.get(s)]

    @property
    def connection_count(self) -> int:
        return sum(len(c) for c in self._by_staff.values())

    def publish(self, event_id: int, room_id: int | None, staff_id: int | None, text: str) -> None:
        """Queue an event for every authorised connection. Synchronous: never awaits."""
        if staff_id is not None:
            targets = [staff_id]
        elif room_id is not None:
            targets = list(self.members.get(room_id, ()))
        else:
            return
        item = (event_id, text)
        by_staff = self._by_staff
        for sid in targets:
            conns = by_staff.get(sid)
            if not conns:
                continue
            for conn in conns:
                if conn.closing:
                    continue
                try:
                    conn.queue.put_nowait(item)
                except asyncio.QueueFull:
                    self._close_soon(conn, CLOSE_TOO_SLOW, "too slow")

    def close_staff(self, staff_id: int, reason: str) -> int:
        """Close every socket of a staff member (suspension, retirement, admin action)."""
        conns = list(self._by_staff.get(staff_id, ()))
        for conn in conns:
            self._close_soon(conn, CLOSE_SESSION_ENDED, reason)
        return len(conns)

    def close_session(self, session_id: int, reason: str) -> None:
        for conns in list(self._by_staff.values()):
            for conn in list(conns):
                if conn.session_id == session_id:
                    self._close_soon(conn, CLOSE_SESSION_ENDED, reason)

    async def close_all(self) -> None:
        """On shutdown: GOING_AWAY to every client so it reconnects and resumes elsewhere/later."""
        conns = [c for cs in self._by_staff.values() for c in cs]
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
        queue, ws = conn.queue, conn.ws
        try:
            while True:
                item = await queue.get()
                if item is None or conn.closing:
                    return
                event_id, text = item
                if event_id <= conn.hold_until:
                    continue
                await ws.send_str(text)
                self.delivered += 1
        except (ConnectionResetError, RuntimeError, asyncio.CancelledError):
            return
        except Exception:
            log.exception("websocket writer failed", extra={"staff_id": conn.staff_id})
