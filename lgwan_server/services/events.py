"""Record an event in the caller's transaction and fan it out once the transaction commits."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from shared.sqlite import Writer
from shared.timeutil import now_iso

from ..hub import Hub
from ..storage import events as store
from ..storage.database import Database


def dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def frame(event_id: int, type_: str, room_id: int | None, payload: str) -> str:
    """The WebSocket text frame for an event. Built by concatenation: the payload is already JSON."""
    room = "null" if room_id is None else str(int(room_id))
    return f'{{"id":{event_id},"type":{dumps(type_)},"room_id":{room},"data":{payload}}}'


# (conn, type, data, room_id, staff_id), awaited inside the caller's transaction.
OutboxHook = Callable[[Writer, str, dict[str, Any], "int | None", "int | None"], Awaitable[None]]


class EventService:
    def __init__(self, db: Database, hub: Hub) -> None:
        self.db = db
        self.hub = hub
        # Set by the kernel when the internet relay is configured (issue 5): lgwan_server/bridge/outbox.py.
        # Called for every event *inside the transaction of the state change*, so the relay's outbox
        # row commits or rolls back together with the change; it ignores lgwan_only rooms entirely.
        self.outbox: OutboxHook | None = None

    async def emit(self, conn: Writer, type_: str, data: dict[str, Any], *,
                   room_id: int | None = None, staff_id: int | None = None) -> int:
        """Store an event for a room's members (room_id) or for one person (staff_id)."""
        payload = dumps(data)
        event_id = await store.insert_event(conn, room_id, staff_id, type_, payload, now_iso())
        text = frame(event_id, type_, room_id, payload)
        self.db.after_commit(lambda: self.hub.publish(event_id, room_id, staff_id, text))
        if self.outbox is not None:
            await self.outbox(conn, type_, data, room_id, staff_id)
        return event_id

    async def emit_to_staff(self, conn: Writer, type_: str, data: dict[str, Any],
                            staff_ids: list[int]) -> int:
        """The same event for many people (安否確認, 一斉送信): one row and its recipient list, one frame
        for every socket. Returns the event id (0 when nobody is addressed)."""
        staff_ids = list(dict.fromkeys(staff_ids))
        if not staff_ids:
            return 0
        payload = dumps(data)
        if len(staff_ids) == 1:     # a plain personal event (not through the relay outbox: see emit)
            event_id = await store.insert_event(conn, None, staff_ids[0], type_, payload, now_iso())
        else:
            event_id = await store.insert_audience_event(conn, staff_ids, type_, payload, now_iso())
        text = frame(event_id, type_, None, payload)
        self.db.after_commit(lambda: self.hub.publish_to(event_id, staff_ids, text))
        return event_id
