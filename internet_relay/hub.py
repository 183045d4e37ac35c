"""Guest and phone WebSockets: a registry by account, bounded per-socket queues, one writer each.

Services decide who may see an event (members of the room, computed in the same transaction) and
publish after commit; a socket that falls behind is closed and its page reloads what it missed.
The queues, writers and closing are ``shared.wshub`` (the LGWAN server's hub uses the same core).
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from shared.wshub import CLOSE_SESSION_ENDED, CLOSE_TOO_SLOW, Socket, SocketHub

__all__ = ["CLOSE_SESSION_ENDED", "CLOSE_TOO_SLOW", "SEND_QUEUE", "Connection", "Hub"]

SEND_QUEUE = 1_000


class Connection(Socket[str]):
    """One guest or staff-phone WebSocket (``member`` is the account, e.g. ``g:5``)."""

    __slots__ = ("device_id",)

    def __init__(self, member: str, session_id: int, device_id: str | None, ws: web.WebSocketResponse) -> None:
        super().__init__(member, session_id, ws, SEND_QUEUE)
        self.device_id = device_id

    @property
    def member(self) -> str:
        return self.owner


class Hub(SocketHub[str, Connection]):
    owner_log_key = "member"

    def register(self, conn: Connection) -> None:
        """Start receiving and sending at once: a relay page reloads instead of replaying events."""
        super().register(conn)
        self.start_writer(conn)

    def publish(self, members: Iterable[str], text: str) -> None:
        """Queue a frame for every socket of ``members``. Synchronous: never awaits."""
        self._fan_out(members, (0, text))

    def broadcast(self, text: str) -> None:
        self.publish(list(self._by_owner), text)

    def close_member(self, member: str, reason: str, device_id: str | None = None) -> None:
        for conn in list(self._by_owner.get(member, ())):
            if device_id is None or conn.device_id == device_id:
                self._close_soon(conn, CLOSE_SESSION_ENDED, reason)
