"""LGWAN→relay: turn state changes of crossing rooms into outbox rows, in the same transaction.

``on_event`` is the hook ``EventService.emit`` calls for every event, inside the transaction of the
state change, so an outbox row commits or rolls back together with what it describes. Rooms whose
policy is ``lgwan_only`` produce nothing at all — not even their names. The first event of a room
that starts to cross sends a snapshot of it (room, members, recent text, read cursors); a room that
stops crossing is removed from the relay.

安否確認 (issue 6): ``SafetyService`` calls the same hook with ``safety.request``, ``safety.reminder``
and ``safety.close`` (no room); the relay then gets the check for the targets registered for phone
use only — never the rest of the audience, nobody's answers, no room. Every staff-phone
``account.upsert`` carries, from the staff row, whether the person may start a check on the relay.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from shared import envelope as env
from shared.limits import MAX_DISPLAY_NAME_CHARS, MAX_ENVELOPE_BYTES, MAX_ROOM_NAME_CHARS
from shared.linkstream import OutboxFeed, Queued
from shared.sqlite import Writer
from shared.textsafe import clean_line, clean_text
from shared.timeutil import now_iso, to_iso, utcnow

from ..config import BridgeConfig
from ..errors import AppError
from ..storage import bridge as store
from ..storage import guests as guest_store
from ..storage import org as org_store
from ..storage import rooms as room_store
from ..storage import safety as safety_store
from ..storage.database import Database
from ..storage.guests import Guest, MobileGrant
from ..storage.rooms import Room
from ..storage.safety import SafetyCheck

log = logging.getLogger(__name__)

CROSSING_POLICIES = ("staff_mobile", "guests")
# A body that may not cross (it predates the room's crossing, or holds markup or a 個人番号) is
# replaced by this in snapshots; live posts with such text are refused before they are written.
WITHHELD = "（この投稿はインターネット側には表示できません）"
_HANDLED = frozenset({"message.new", "message.edit", "message.delete", "receipt", "member.join", "member.leave",
                      "room.update"})
_AFFILIATION_CHARS = 200
# 安否確認 on phones (issue 6). Who may start a check on the relay while LGWAN is down: the relay
# learns it from account.upsert (safety_manager), and the bridge inbox re-checks it at hand-over.
SAFETY_STARTER_ROLES = ("org_admin", "safety_manager")
SAFETY_RESYNC_CHECKS = 20      # open checks a rebuilt relay gets again
SAFETY_TEXT_WITHHELD = "（詳しくは 庁内の 端末で 確認して ください）"


def member_token(role: str, staff_id: int) -> str:
    """How the relay names a person: ``g:<id>`` for a guest, ``s:<id>`` for staff."""
    return f"{'g' if role == 'guest' else 's'}:{staff_id}"


def parse_member(token: str) -> tuple[str, int] | None:
    """``("g"|"s", staff id)`` or None when the token is malformed."""
    kind, _, number = token.partition(":")
    if kind not in ("g", "s") or not number.isdigit() or len(number) > 15 or int(number) < 1:
        return None
    return kind, int(number)


def crossing_name(value: str, limit: int) -> str:
    """A display name or 所属 as it may cross: one clean line, and no '<' that could read as a tag.

    Names are built by the sender (not signed user text), so they are normalised rather than refused:
    a stray '<' in an HR import must not block a whole department room.
    """
    return clean_line(value).replace("<", "＜")[:limit]


def guest_account(guest: Guest, *, device_approval: bool) -> env.AccountUpsert:
    return env.AccountUpsert(
        account=member_token("guest", guest.staff_id), kind="guest",
        display_name=crossing_name(guest.display_name, MAX_DISPLAY_NAME_CHARS) or "ゲスト",
        affiliation=crossing_name(guest.affiliation, _AFFILIATION_CHARS),
        status=guest.status if guest.status in ("invited", "enrolled", "active") else "suspended",
        enrol_token_sha256=guest.invite_token_sha256, enrol_expires_at=guest.invite_expires_at,
        expires_at=guest.expires_at, device_approval=device_approval)


def safety_text(value: str, limit: int, *, multiline: bool, fallback: str) -> str:
    """A manager's 安否確認 title or message as it may cross. Normalised rather than refused: a stray
    '<' must not stop a check from reaching the phones; text that still may not cross is withheld."""
    text = (clean_text(value) if multiline else clean_line(value)).replace("<", "＜")[:limit]
    if env.crossing_text_problem(text, multiline=multiline) is not None:
        return fallback
    return text or fallback


def phone_account(grant: MobileGrant, display_name: str, affiliation: str) -> env.AccountUpsert:
    # Staff phones always register their device (issue 5 §5).
    return env.AccountUpsert(
        account=member_token("staff", grant.staff_id), kind="staff",
        display_name=crossing_name(display_name, MAX_DISPLAY_NAME_CHARS) or "職員",
        affiliation=crossing_name(affiliation, _AFFILIATION_CHARS),
        status="active" if grant.status == "active" else "invited",
        enrol_token_sha256=grant.enrol_token_sha256, enrol_expires_at=grant.enrol_expires_at,
        expires_at=None, device_approval=True)


class BridgeOutbox:
    """Writes LGWAN→relay envelopes into ``bridge_outbox`` inside the caller's transaction."""

    def __init__(self, db: Database, cfg: BridgeConfig) -> None:
        self.db = db
        self.cfg = cfg
        # Rows committed here reach the dialler's sender in memory (and wake it); it reads the table otherwise.
        self.feed = OutboxFeed()
        # Whether each room crossed the last time one of its events was routed: only which way a
        # message.new is tried first (``_message_if_mirrored``), never what crosses.
        self._crossing: dict[int, bool] = {}

    # --- queueing --------------------------------------------------------------------------------

    async def enqueue(self, conn: Writer, payload: env.Payload, room_id: int | None = None) -> int:
        """Queue one payload as the next LGWAN→relay envelope. Returns its seq.

        The payload is checked now with the receiver's rules, so what cannot cross is refused while the
        caller can still roll back and tell the user, instead of jamming the queue later.
        """
        if isinstance(payload, env.AccountUpsert) and payload.kind == "staff":
            payload = await self._with_safety_role(conn, payload)
        data, size = self._checked(payload)
        envelope_id = env.new_id()
        seq = await store.insert_outbox(conn, envelope_id, payload.KIND, data, room_id, now_iso())
        self._queued(Queued(seq, envelope_id, payload, size))
        return seq

    @staticmethod
    def _checked(payload: env.Payload) -> tuple[str, int]:
        """The payload as the outbox stores it, and its size, once it passed the receiver's checks."""
        try:
            type(payload).from_wire(payload.to_wire())
        except env.EnvelopeError as exc:
            log.warning("refused to queue an envelope", extra={"kind": payload.KIND, "code": exc.code})
            raise AppError("crossing_text_refused") from exc
        data = env.payload_json(payload)
        size = len(data.encode("utf-8"))
        if size > MAX_ENVELOPE_BYTES - 1024:   # room for the signed header
            raise AppError("message_too_long")
        return data, size

    def _queued(self, row: Queued) -> None:
        self.db.after_commit(lambda: self.feed.committed(row))

    @staticmethod
    async def _with_safety_role(conn: Writer, payload: env.AccountUpsert) -> env.AccountUpsert:
        """Every staff-phone account says, from the staff row in this transaction, whether the person
        may start a 安否確認 on the relay (wherever the upsert was built)."""
        member = parse_member(payload.account)
        card = await store.member_card(conn, member[1]) if member is not None else None
        allowed = card is not None and card[0] in SAFETY_STARTER_ROLES and payload.status == "active"
        return payload if payload.safety_manager == allowed else dataclasses.replace(payload, safety_manager=allowed)

    # --- the EventService hook -------------------------------------------------------------------

    async def on_event(self, conn: Writer, type_: str, data: dict[str, Any], room_id: int | None,
                       staff_id: int | None) -> None:
        """Called by ``EventService.emit`` inside the transaction of every state change (and by
        ``SafetyService`` for the safety.* types, with no room)."""
        if type_ == "session.ended" and staff_id is not None:
            await self._staff_changed(conn, staff_id)
            return
        if type_ == "staff.profile" and staff_id is not None:
            await self._staff_changed(conn, staff_id)
            await self._card_changed(conn, staff_id)
            return
        if type_ in ("safety.request", "safety.reminder", "safety.close") and room_id is None:
            await self._safety(conn, type_, int(data["check_id"]))
            return
        if room_id is None or type_ not in _HANDLED:
            return
        if type_ == "message.new" and self._crossing.get(room_id) and await self._message_if_mirrored(conn, data, room_id):
            return
        # One round trip decides: most events are of lgwan_only rooms and stop here.
        route = await store.route(conn, room_id, int(data["id"]) if type_ == "message.new" else None)
        if route is None:
            return
        self._crossing[room_id] = route.crossing_policy in CROSSING_POLICIES
        if route.crossing_policy not in CROSSING_POLICIES:
            if route.mirrored_policy is not None:    # the room stopped crossing: the relay forgets it
                await self.enqueue(conn, env.RoomRemove(room_id=room_id), room_id)
                await store.unset_mirrored(conn, room_id)
            return
        if route.mirrored_policy is None or type_ == "room.update" or route.mirrored_policy != route.crossing_policy:
            room = await room_store.get_room(conn, room_id)
            assert room is not None
            if route.mirrored_policy is None:
                # First event of a room that crosses: the snapshot reads the current state in this
                # transaction, so it already includes whatever this event describes.
                await self.enqueue_room(conn, room)
                return
            await self.enqueue(conn, self._room_payload(room), room_id)
            await store.set_mirrored(conn, room_id, room.crossing_policy, now_iso())
            if type_ == "room.update":
                return
        await self._forward(conn, type_, data, room_id, route)

    async def _message_if_mirrored(self, conn: Writer, data: dict[str, Any], room_id: int) -> bool:
        """A message of a room believed to cross, queued in one round trip: the insert itself checks
        that the room crosses and that the relay holds it with its current policy, and fills in the
        sender's kind and the relay origin from the message row. False (nothing queued) otherwise: the
        caller then takes the full route, which also corrects the belief. A wrong belief costs one
        round trip, never a leak: what may cross is decided by the rows in this transaction."""
        sender = data["sender"]
        draft = self._message_payload(
            room_id, message_id=int(data["id"]), seq=int(data["seq"]), thread_root_id=data["thread_root_id"],
            sender=member_token("staff", int(sender["id"])), sender_name=sender["display_name"],
            affiliation=sender["affiliation"], body="" if data.get("deleted") else data["body"],
            created_at=data["created_at"], client_msg_id=None, attachments=len(data.get("attachments") or ()),
            live=True)
        stored, size = self._checked(draft)
        envelope_id = env.new_id()
        queued = await store.insert_message_if_mirrored(conn, envelope_id, stored, room_id, int(data["id"]), now_iso())
        if queued is None:
            return False
        seq, member, origin = queued
        payload = dataclasses.replace(draft, sender=member, origin_id=origin)
        if origin is not None:
            self._checked(payload)      # an origin taken from a client id must still be a valid token
        self._queued(Queued(seq, envelope_id, payload, size))
        return True

    async def _forward(self, conn: Writer, type_: str, data: dict[str, Any], room_id: int,
                       route: store.Route) -> None:
        if type_ == "message.new":
            sender = data["sender"]
            payload = self._message_payload(
                room_id, message_id=int(data["id"]), seq=int(data["seq"]), thread_root_id=data["thread_root_id"],
                sender=member_token(route.sender_role or "staff", int(sender["id"])), sender_name=sender["display_name"],
                affiliation=sender["affiliation"], body="" if data.get("deleted") else data["body"],
                created_at=data["created_at"], client_msg_id=route.client_msg_id,
                attachments=len(data.get("attachments") or ()), live=True)
            await self.enqueue(conn, payload, room_id)
        elif type_ == "message.edit":
            await self.enqueue(conn, env.MessageEdit(message_id=int(data["id"]), room_id=room_id, body=data["body"],
                                                     edited_at=data["edited_at"]), room_id)
        elif type_ == "message.delete":
            await self.enqueue(conn, env.MessageDelete(message_id=int(data["id"]), room_id=room_id), room_id)
        elif type_ == "receipt":
            card = await store.member_card(conn, int(data["staff_id"]))
            if card is not None:
                await self.enqueue(conn, env.ReceiptOut(room_id=room_id, member=member_token(card[0], data["staff_id"]),
                                                        seq=int(data["to_seq"])), room_id)
        elif type_ == "member.join":
            member = await self._member_payload(conn, route.crossing_policy, room_id, int(data["staff_id"]))
            if member is not None:
                await self.enqueue(conn, member, room_id)
        elif type_ == "member.leave":
            card = await store.member_card(conn, int(data["staff_id"]))
            if card is not None:
                await self.enqueue(conn, env.MemberRemove(room_id=room_id,
                                                          member=member_token(card[0], data["staff_id"])), room_id)

    async def _staff_changed(self, conn: Writer, staff_id: int) -> None:
        """An admin changed a person (their sessions ended): a suspended or retired staff member's phone
        account stops working on the relay too; an active one's is sent again, so a role change
        reaches the relay (who may start a 安否確認 there, issue 6)."""
        grant = await guest_store.get_grant(conn, staff_id)
        staff = await org_store.get_staff(conn, staff_id)
        if grant is None or grant.status not in ("granted", "active") or staff is None:
            return
        affiliation = await org_store.department_path(conn, staff.department_id)
        account = phone_account(grant, staff.display_name, affiliation)
        if staff.status != "active":
            account = dataclasses.replace(account, status="suspended", enrol_token_sha256=None, enrol_expires_at=None)
        await self.enqueue(conn, account)

    async def _card_changed(self, conn: Writer, staff_id: int) -> None:
        """A new name or 所属 (人事異動, CSV import): every crossing room the person is in gets their card again."""
        for room_id, policy in await store.mirrored_rooms_of(conn, staff_id):
            member = await self._member_payload(conn, policy, room_id, staff_id)
            if member is not None:
                await self.enqueue(conn, member, room_id)

    # --- 安否確認 on phones (issue 6) ---------------------------------------------------------------

    async def _safety(self, conn: Writer, type_: str, check_id: int) -> None:
        """The phone-registered targets hear of a check, a reminder or the closing; nobody else's answers
        and no room ever cross. A check that came from the relay is not sent back to it."""
        check = await safety_store.get_check(conn, check_id)
        if check is None:
            return
        if type_ == "safety.request":
            if check.origin != "relay":
                await self.enqueue_safety_request(conn, check)
        elif type_ == "safety.reminder":
            await self._in_chunks(conn, await store.unanswered_phone_targets(conn, check.id),
                                  lambda members: env.SafetyRemind(check_id=check.id, origin_id=check.origin_id,
                                                                   members=members))
        elif check.closed_at is not None:
            await self.enqueue(conn, env.SafetyClose(check_id=check.id, origin_id=check.origin_id,
                                                     closed_at=check.closed_at))

    async def enqueue_safety_request(self, conn: Writer, check: SafetyCheck) -> None:
        title = safety_text(check.title, env.MAX_SAFETY_TITLE_CHARS, multiline=False, fallback="安否確認")
        message = safety_text(check.message, env.MAX_SAFETY_MESSAGE_CHARS, multiline=True,
                              fallback=SAFETY_TEXT_WITHHELD if check.message.strip() else "")
        questions = tuple(q for q in env.SAFETY_QUESTIONS if q in check.questions)
        await self._in_chunks(conn, await store.phone_targets(conn, check.id),
                              lambda members: env.SafetyRequest(
                                  check_id=check.id, origin_id=check.origin_id, title=title, message=message,
                                  questions=questions, started_at=check.started_at, members=members))

    async def _in_chunks(self, conn: Writer, staff_ids: list[int],
                         build: Callable[[tuple[str, ...]], env.Payload]) -> None:
        for start in range(0, len(staff_ids), env.MAX_SAFETY_MEMBERS):
            chunk = staff_ids[start:start + env.MAX_SAFETY_MEMBERS]
            await self.enqueue(conn, build(tuple(member_token("staff", s) for s in chunk)))

    # --- payloads --------------------------------------------------------------------------------

    @staticmethod
    def _room_payload(room: Room) -> env.RoomUpsert:
        return env.RoomUpsert(room_id=room.id, name=crossing_name(room.name, MAX_ROOM_NAME_CHARS) or "ルーム",
                              policy=room.crossing_policy)

    @staticmethod
    def _message_payload(room_id: int, *, message_id: int, seq: int, thread_root_id: int | None, sender: str,
                         sender_name: str, affiliation: str, body: str, created_at: str, client_msg_id: str | None,
                         attachments: int, live: bool) -> env.MessageNew:
        if env.crossing_text_problem(body) is not None:
            if live:    # MessageService refuses such posts first; this is the second line
                raise AppError("crossing_text_refused")
            body = WITHHELD
        origin = client_msg_id[6:] if client_msg_id and client_msg_id.startswith("relay:") else None
        return env.MessageNew(
            message_id=message_id, room_id=room_id, seq=seq, sender=sender,
            sender_name=crossing_name(sender_name, MAX_DISPLAY_NAME_CHARS) or "—",
            sender_affiliation=crossing_name(affiliation, _AFFILIATION_CHARS), body=body,
            created_at=created_at, thread_root_id=thread_root_id, origin_id=origin, attachments=attachments)

    def _snapshot_message(self, room_id: int, msg: store.CrossingMessage) -> env.MessageNew:
        return self._message_payload(
            room_id, message_id=msg.id, seq=msg.seq, thread_root_id=msg.thread_root_id,
            sender=member_token(msg.sender_role, msg.sender_id), sender_name=msg.sender_name,
            affiliation=msg.sender_affiliation, body=msg.body, created_at=msg.created_at,
            client_msg_id=msg.client_msg_id, attachments=msg.attachments, live=False)

    async def affiliation_of(self, conn: Writer, staff_id: int, role: str,
                             department_id: int | None) -> str:
        if role == "guest":
            guest = await guest_store.get_guest(conn, staff_id)
            return guest.affiliation if guest else ""
        return await org_store.department_path(conn, department_id)

    async def _member_payload(self, conn: Writer, policy: str, room_id: int,
                              staff_id: int) -> env.MemberUpsert | None:
        card = await store.member_card(conn, staff_id)
        if card is None:
            return None
        role, name, department_id = card
        if role == "guest" and policy != "guests":
            return None     # RoomService never lets this happen; never leak a guest into a staff room
        affiliation = await self.affiliation_of(conn, staff_id, role, department_id)
        return env.MemberUpsert(room_id=room_id, member=member_token(role, staff_id),
                                display_name=crossing_name(name, MAX_DISPLAY_NAME_CHARS) or "—",
                                affiliation=crossing_name(affiliation, _AFFILIATION_CHARS))

    # --- snapshots -------------------------------------------------------------------------------

    async def enqueue_room(self, conn: Writer, room: Room) -> None:
        """The relay's whole copy of one room: the room, members, recent text, read cursors."""
        await self.enqueue(conn, self._room_payload(room), room.id)
        await store.set_mirrored(conn, room.id, room.crossing_policy, now_iso())
        members = await store.member_cards(conn, room.id)
        for member in members:
            payload = await self._member_payload(conn, room.crossing_policy, room.id, member.staff_id)
            if payload is not None:
                await self.enqueue(conn, payload, room.id)
        since = to_iso(utcnow() - timedelta(seconds=self.cfg.resync_history))
        for msg in await store.recent_crossing_messages(conn, room.id, since, self.cfg.resync_max_messages_per_room):
            if not msg.deleted:
                await self.enqueue(conn, self._snapshot_message(room.id, msg), room.id)
        for member in members:
            if member.last_read_seq > 0 and (member.role != "guest" or room.crossing_policy == "guests"):
                await self.enqueue(conn, env.ReceiptOut(room_id=room.id, member=member_token(member.role, member.staff_id),
                                                        seq=member.last_read_seq), room.id)

    async def rebuild(self, conn: Writer, *, reset_inbound: bool) -> int:
        """Replace the whole outbox by a snapshot of everything the relay should hold. Returns its size.

        Used when the relay is new or was wiped (new epoch), or when the two histories diverged after a
        restore from backup. Accounts go first, so rooms can name their members.
        """
        now = now_iso()
        await store.reset_outbound(conn, now)
        self.db.after_commit(self.feed.reset)     # before the snapshot's own rows reach the feed
        if reset_inbound:
            await store.reset_inbound(conn, now)
        for guest in await guest_store.list_open_guests(conn):
            await self.enqueue(conn, guest_account(guest, device_approval=self.cfg.guest_device_approval))
        for grant in await guest_store.list_open_grants(conn):
            staff = await org_store.get_staff(conn, grant.staff_id)
            if staff is not None and staff.status == "active":
                affiliation = await org_store.department_path(conn, staff.department_id)
                await self.enqueue(conn, phone_account(grant, staff.display_name, affiliation))
        for check_id in await store.open_safety_check_ids(conn, SAFETY_RESYNC_CHECKS):
            check = await safety_store.get_check(conn, check_id)
            assert check is not None
            await self.enqueue_safety_request(conn, check)
        for room_id in await store.crossing_room_ids(conn):
            room = await room_store.get_room(conn, room_id)
            assert room is not None
            await self.enqueue_room(conn, room)
        for device in await guest_store.list_decided_devices(conn):
            card = await store.member_card(conn, device.staff_id)
            if card is not None:
                await self.enqueue(conn, env.DeviceDecision(account=member_token(card[0], device.staff_id),
                                                            device_id=device.device_id, decision=device.status))
        return (await store.get_state(conn)).out_last_seq
