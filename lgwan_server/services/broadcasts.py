"""一斉送信 (emergency broadcast) and 確認必須 (must-acknowledge) messages.

A broadcast goes to everyone, chosen departments, named people, or whole organisations that
granted the sender's organisation the right (a prefecture reaching its municipalities). Each
recipient row records delivery (pushed to an open session, or fetched), reading and 確認; the
sender sees the roll-up by organisation and department and can re-notify those still pending.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from shared import limits
from shared.textsafe import clean_line, clean_text
from shared.timeutil import now_iso

from ..errors import AppError
from ..hub import Hub
from ..storage import broadcasts as store
from ..storage import messages as message_store
from ..storage import org as org_store
from ..storage import rooms as room_store
from ..storage import targets
from ..storage.broadcasts import Broadcast
from ..storage.database import Database
from .actor import Actor
from .audit import AuditService
from .events import EventService
from .messages import card_json
from .rooms import RoomService
from .safety import MANAGER_ROLES

log = logging.getLogger(__name__)


def broadcast_json(b: Broadcast) -> dict[str, Any]:
    return {"id": b.id, "org_id": b.org_id, "sender_id": b.sender_id, "sender_affiliation": b.sender_affiliation,
            "title": b.title, "body": b.body, "important": b.important, "ack_required": b.ack_required,
            "target": b.target, "created_at": b.created_at}


class BroadcastService:
    def __init__(self, db: Database, hub: Hub, events: EventService, audit: AuditService, rooms: RoomService) -> None:
        self.db = db
        self.hub = hub
        self.events = events
        self.audit = audit
        self.rooms = rooms
        self._tasks: set[asyncio.Task[None]] = set()

    # --- broadcasts ----------------------------------------------------------------------------

    async def send(self, actor: Actor, *, title: str, body: str, important: bool, ack_required: bool,
                   department_ids: list[int] | None, staff_ids: list[int] | None,
                   org_ids: list[int] | None) -> Broadcast:
        if actor.role not in MANAGER_ROLES:
            raise AppError("forbidden")
        assert actor.org_id is not None and actor.staff_id is not None
        text = clean_text(body).strip()
        if not text or len(text) > limits.MAX_MESSAGE_CHARS:
            raise AppError("empty_message" if not text else "message_too_long")
        recipients: list[tuple[int, int, int | None]] = []
        target: dict[str, Any] = {}
        if org_ids:
            allowed = set(await store.granted_targets(self.db, actor.org_id)) | {actor.org_id}
            if not set(org_ids) <= allowed:
                raise AppError("org_not_allowed")
            for org_id in sorted(set(org_ids)):
                recipients += [(s, org_id, d) for s, d in await targets.resolve(self.db, org_id)]
            target["orgs"] = sorted(set(org_ids))
        else:
            own = await targets.resolve(self.db, actor.org_id, department_ids=department_ids, staff_ids=staff_ids)
            recipients = [(s, actor.org_id, d) for s, d in own]
            target = ({"staff": staff_ids} if staff_ids is not None else
                      {"departments": department_ids} if department_ids is not None else {"all": True})
        if not recipients:
            raise AppError("invalid_request", field="target", reason="nobody_selected")
        async with self.db.transaction("broadcast_send") as conn:
            broadcast_id = await store.insert_broadcast(
                conn, org_id=actor.org_id, sender_id=actor.staff_id, sender_affiliation=actor.affiliation,
                title=clean_line(title)[:200], body=text, important=important, ack_required=ack_required,
                target=target, now=now_iso())
            await store.insert_recipients(conn, broadcast_id, recipients)
            broadcast = await store.get_broadcast(conn, broadcast_id)
            assert broadcast is not None
            ids = [s for s, _, _ in recipients]
            await self.events.emit_to_staff(conn, "broadcast.new", broadcast_json(broadcast), ids)
            await self.audit.record(conn, actor, "broadcast.send", target_type="broadcast", target_id=broadcast_id,
                                    detail={"recipients": len(ids), "target": target, "ack_required": ack_required})
            self.db.after_commit(lambda: self._record_delivery(broadcast_id, ids))
        return broadcast

    def _record_delivery(self, broadcast_id: int, staff_ids: list[int]) -> None:
        """After commit: those online had it pushed to an open session just now."""
        online = self.hub.online(staff_ids)
        if not online:
            return

        async def write() -> None:
            async with self.db.transaction("broadcast_delivered") as conn:
                await store.set_delivered(conn, broadcast_id, online, now_iso())
        task = asyncio.get_running_loop().create_task(write())
        self._tasks.add(task)
        task.add_done_callback(self._delivery_done)

    def _delivery_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Delivery stamps are bookkeeping: a failure is logged, the broadcast itself stands.
            log.error("recording broadcast delivery failed", exc_info=task.exception())

    async def inbox(self, staff_id: int) -> list[dict[str, Any]]:
        async with self.db.transaction("broadcast_fetch") as conn:
            await store.set_delivered_for_staff(conn, staff_id, now_iso())
        return [{**broadcast_json(b), "read_at": r["read_at"], "acked_at": r["acked_at"]}
                for b, r in await store.inbox(self.db, staff_id, 50)]

    async def mark(self, actor: Actor, broadcast_id: int, ack: bool) -> None:
        assert actor.staff_id is not None
        broadcast = await store.get_broadcast(self.db, broadcast_id)
        if broadcast is None or await store.recipient_state(self.db, broadcast_id, actor.staff_id) is None:
            raise AppError("not_found")
        async with self.db.transaction("broadcast_mark") as conn:
            await store.set_read(conn, broadcast_id, actor.staff_id, now_iso(), ack)
            await self.events.emit(conn, "broadcast.receipt", {"broadcast_id": broadcast_id, "staff_id": actor.staff_id,
                                                               "ack": ack}, staff_id=broadcast.sender_id)

    async def status(self, actor: Actor, broadcast_id: int) -> dict[str, Any]:
        broadcast = await self._own(actor, broadcast_id)
        names: dict[int, str] = {}
        rows = await store.tally(self.db, broadcast_id)
        for org_id in {t.org_id for t in rows}:
            names.update(await targets.department_names(self.db, org_id))
        groups: list[dict[str, Any]] = [
            {"org_id": t.org_id, "department_id": t.department_id,
             "department": names.get(t.department_id or 0, "（所属なし）"), "recipients": t.recipients,
             "delivered": t.delivered, "read": t.read, "acked": t.acked} for t in rows]
        totals = {k: sum(int(g[k]) for g in groups) for k in ("recipients", "delivered", "read", "acked")}
        waiting = await store.pending(self.db, broadcast_id, "acked_at" if broadcast.ack_required else "read_at")
        cards = await org_store.get_cards(self.db, waiting[:500])
        return {"broadcast": broadcast_json(broadcast), "totals": totals, "groups": groups,
                "pending_count": len(waiting), "pending": [card_json(c) for c in cards]}

    async def remind(self, actor: Actor, broadcast_id: int) -> int:
        broadcast = await self._own(actor, broadcast_id)
        waiting = await store.pending(self.db, broadcast_id, "acked_at" if broadcast.ack_required else "read_at")
        async with self.db.transaction("broadcast_remind") as conn:
            await self.events.emit_to_staff(conn, "broadcast.reminder", broadcast_json(broadcast), waiting)
            await store.mark_reminded(conn, broadcast_id, waiting, now_iso())
            await self.audit.record(conn, actor, "broadcast.remind", target_type="broadcast", target_id=broadcast_id,
                                    detail={"reminded": len(waiting)})
        return len(waiting)

    async def _own(self, actor: Actor, broadcast_id: int) -> Broadcast:
        broadcast = await store.get_broadcast(self.db, broadcast_id)
        if broadcast is None or not (broadcast.sender_id == actor.staff_id or
                                     (actor.role in MANAGER_ROLES and actor.org_id == broadcast.org_id)):
            raise AppError("not_found")
        return broadcast

    async def sent(self, actor: Actor) -> list[dict[str, Any]]:
        assert actor.staff_id is not None
        return [broadcast_json(b) for b in await store.sent_by(self.db, actor.staff_id, 50)]

    async def grant(self, actor: Actor, source_org_code: str, allow: bool) -> None:
        """This organisation's admin lets another organisation broadcast to its staff (or stops it)."""
        if not actor.is_org_admin or actor.org_id is None or actor.staff_id is None:
            raise AppError("forbidden")
        source = await org_store.get_org_by_code(self.db, source_org_code)
        if source is None:
            raise AppError("org_not_found")
        async with self.db.transaction("broadcast_grant") as conn:
            if allow:
                await store.grant(conn, actor.org_id, source.id, actor.staff_id, now_iso())
            else:
                await store.revoke(conn, actor.org_id, source.id)
            await self.audit.record(conn, actor, "broadcast.grant" if allow else "broadcast.revoke",
                                    target_type="org", target_id=source.id)

    # --- 確認必須 on room messages ----------------------------------------------------------------

    async def request_ack(self, actor: Actor, message_id: int) -> None:
        assert actor.staff_id is not None
        msg = await message_store.get_message(self.db, message_id)
        if msg is None or msg.sender_id != actor.staff_id or msg.deleted:
            raise AppError("message_not_found" if msg is None or msg.deleted else "not_message_author")
        async with self.db.transaction("ack_request") as conn:
            if await store.request_ack(conn, message_id, actor.staff_id, now_iso()):
                await self.events.emit(conn, "ack.request", {"message_id": message_id, "room_id": msg.room_id},
                                       room_id=msg.room_id)

    async def ack(self, actor: Actor, message_id: int) -> None:
        assert actor.staff_id is not None
        msg = await message_store.get_message(self.db, message_id)
        if msg is None:
            raise AppError("message_not_found")
        try:
            await self.rooms.access_room(actor.staff_id, msg.room_id)
        except AppError as exc:
            raise AppError("message_not_found") from exc
        if not await store.ack_requested(self.db, message_id):
            raise AppError("invalid_transition", reason="no_ack_requested")
        async with self.db.transaction("ack") as conn:
            if await store.add_ack(conn, message_id, actor.staff_id, now_iso()):
                await self.events.emit(conn, "ack", {"message_id": message_id, "room_id": msg.room_id,
                                                     "staff_id": actor.staff_id}, room_id=msg.room_id)

    async def ack_status(self, actor: Actor, message_id: int) -> dict[str, Any]:
        """Who has and has not pressed 確認, rolled up by department (members other than the sender)."""
        assert actor.staff_id is not None
        msg = await message_store.get_message(self.db, message_id)
        if msg is None:
            raise AppError("message_not_found")
        try:
            await self.rooms.access_room(actor.staff_id, msg.room_id)
        except AppError as exc:
            raise AppError("message_not_found") from exc
        members = [m for m in await room_store.list_member_ids(self.db, msg.room_id) if m != msg.sender_id]
        acked = await store.acked_ids(self.db, message_id)
        cards = await org_store.get_cards(self.db, members)
        by_dept: dict[str, dict[str, int]] = {}
        for card in cards:
            entry = by_dept.setdefault(card.department_name or "（所属なし）", {"members": 0, "acked": 0})
            entry["members"] += 1
            entry["acked"] += card.id in acked
        return {"message_id": message_id, "requested": await store.ack_requested(self.db, message_id),
                "acked_count": sum(1 for c in cards if c.id in acked),
                "pending_count": sum(1 for c in cards if c.id not in acked),
                "departments": [{"department": k, **v} for k, v in sorted(by_dept.items())],
                "acked": [card_json(c) for c in cards if c.id in acked],
                "pending": [card_json(c) for c in cards if c.id not in acked]}

    async def ack_remind(self, actor: Actor, message_id: int) -> int:
        status = await self.ack_status(actor, message_id)
        msg = await message_store.get_message(self.db, message_id)
        assert msg is not None
        if msg.sender_id != actor.staff_id:
            raise AppError("not_message_author")
        waiting = [c["id"] for c in status["pending"]]
        async with self.db.transaction("ack_remind") as conn:
            await self.events.emit_to_staff(conn, "ack.reminder", {"message_id": message_id, "room_id": msg.room_id},
                                            waiting)
        return len(waiting)
