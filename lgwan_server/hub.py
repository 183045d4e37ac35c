"""WebSocket registry and fan-out for staff.

Every event is fanned out only to connections whose staff member is *currently* in the room,
according to ``members`` — an in-memory copy of ``room_members`` that services update in the
same after-commit step that publishes their events, so the check and the event always agree.
Each socket has a bounded queue and one writer task; a socket that falls too far behind is
closed and its client resumes from its last event id, so one slow tablet cannot hold up a room.
The queues, writers and closing are ``shared.wshub`` (the relay's hub uses the same core).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from aiohttp import web

from shared.limits import WS_SEND_QUEUE
from shared.wshub import CLOSE_SESSION_ENDED, CLOSE_TOO_SLOW, Socket, SocketHub

__all__ = ["CLOSE_SESSION_ENDED", "CLOSE_TOO_SLOW", "Connection", "Hub"]


class Connection(Socket[int]):
    """One staff WebSocket; its queue holds ``(event id, frame)``."""

    __slots__ = ()

    def __init__(self, staff_id: int, session_id: int, ws: web.WebSocketResponse,
                 transport: asyncio.Transport | None = None) -> None:
        super().__init__(staff_id, session_id, ws, WS_SEND_QUEUE, transport)

    @property
    def staff_id(self) -> int:
        return self.owner


class Hub(SocketHub[int, Connection]):
    owner_log_key = "staff_id"

    def __init__(self) -> None:
        super().__init__()
        self.members: dict[int, set[int]] = defaultdict(set)      # room_id -> staff ids

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

    # --- connections (register, start_writer, unregister, close_session, close_all: SocketHub) --

    def online(self, staff_ids: list[int]) -> list[int]:
        """Those of ``staff_ids`` with at least one open socket right now."""
        return [s for s in staff_ids if self._by_owner.get(s)]

    def publish(self, event_id: int, room_id: int | None, staff_id: int | None, text: str) -> None:
        """Queue an event for every authorised connection. Synchronous: never awaits."""
        if staff_id is not None:
            targets = [staff_id]
        elif room_id is not None:
            targets = list(self.members.get(room_id, ()))
        else:
            return
        self._fan_out(targets, (event_id, text))

    def publish_to(self, event_id: int, staff_ids: list[int], text: str) -> None:
        """One event for many people (its recipients were written with it): one frame for all."""
        self._fan_out(staff_ids, (event_id, text))

    def close_staff(self, staff_id: int, reason: str) -> int:
        """Close every socket of a staff member (suspension, retirement, admin action)."""
        conns = list(self._by_owner.get(staff_id, ()))
        for conn in conns:
            self._close_soon(conn, CLOSE_SESSION_ENDED, reason)
        return len(conns)
