"""relay→LGWAN: apply what the relay sends, each envelope in one transaction with its inbox record.

The inbox record and ``in_applied_seq`` commit together with the change, so an envelope takes
effect exactly once however often it arrives. Everything the relay says is re-checked here
(the receiver re-checks what the sender checked): a guest must be active and in the room, the
room must still cross, a phone needs an active grant. A post that fails such a rule is *consumed*
as refused — recorded, audited, and answered with ``post.refused`` so the author is told — and
never blocks the queue.

安否確認 from phones (issue 6): ``safety.start`` (a check started on the relay while LGWAN was down)
is created once, keyed on its origin id, after re-checking the starter's role and each target;
``safety.answer`` is applied once (its origin id) through ``SafetyService.answer_in_transaction``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared import envelope as env
from shared.sqlite import Writer
from shared.timeutil import now_iso

from ..errors import AppError
from ..services.actor import Actor
from ..services.audit import AuditService
from ..services.events import EventService
from ..services.messages import MessageService, NewMessage
from ..services.safety import Answer, SafetyService
from ..storage import bridge as store
from ..storage import guests as guest_store
from ..storage import messages as message_store
from ..storage import org as org_store
from ..storage import rooms as room_store
from ..storage import safety as safety_store
from ..storage import targets as target_store
from ..storage.database import Database, Source
from .outbox import SAFETY_STARTER_ROLES, BridgeOutbox, guest_account, parse_member, phone_account

if TYPE_CHECKING:
    from .files import SanitizedFileInbox

log = logging.getLogger(__name__)

BRIDGE_ACTOR = Actor(None, None, "bridge", "", "relay", "system")
_POLICIES_FOR = {"g": ("guests",), "s": ("staff_mobile", "guests")}


@dataclass(frozen=True)
class Checked:
    """Who acts and where, as checked before the transaction."""

    staff: org_store.Staff
    affiliation: str
    room: room_store.Room
    membership: room_store.Membership


class _BatchChecks:
    """The read-only checks of a batch's posts and receipts (point lookups, ``Database.inline``), each
    asked once: a backlog is mostly the same few people in the same few rooms."""

    def __init__(self, inbox: BridgeInbox) -> None:
        self.inbox = inbox
        self._authors: dict[str, tuple[str, org_store.Staff, str] | Refused] = {}
        self._rooms: dict[tuple[str, int, int], tuple[room_store.Room, room_store.Membership] | Refused] = {}

    async def check(self, payload: env.Payload) -> Checked | None:
        if isinstance(payload, env.RelayPost):
            token = payload.author
        elif isinstance(payload, env.ReceiptIn):
            token = payload.member
        else:
            return None
        if token not in self._authors:
            try:
                self._authors[token] = await self.inbox._author(self.inbox.db.inline, token)
            except Refused as exc:
                self._authors[token] = exc
        author = self._authors[token]
        if isinstance(author, Refused):
            raise Refused(author.code)
        kind, staff, affiliation = author
        key = (kind, staff.id, payload.room_id)
        if key not in self._rooms:
            try:
                self._rooms[key] = await self.inbox._room_for(self.inbox.db.inline, kind, staff.id, payload.room_id)
            except Refused as exc:
                self._rooms[key] = exc
        place = self._rooms[key]
        if isinstance(place, Refused):
            raise Refused(place.code)
        room, membership = place
        return Checked(staff, affiliation, room, membership)


class Refused(Exception):
    """A business rule refuses an envelope that was otherwise valid."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class BridgeInbox:
    def __init__(self, db: Database, outbox: BridgeOutbox, messages: MessageService, events: EventService,
                 audit: AuditService, safety: SafetyService | None = None) -> None:
        self.db = db
        self.outbox = outbox
        self.messages = messages
        self.events = events
        self.audit = audit
        self.safety = safety
        self.files: SanitizedFileInbox | None = None     # files from the relay (issue 3); set by bridge_ctx

    async def apply(self, envelopes: list[env.Envelope]) -> list[str]:
        """Apply verified, consecutive envelopes in one transaction. Returns the outcomes recorded.

        Who may post where is checked once per author and room in the batch, inside the transaction
        (as ``MessageService.post`` checks again inside its own) with point lookups that do not yield
        the loop; then the writes, the idempotency check (one query for the batch) and the inbox
        records (one statement for the batch). Under a backlog
        several envelopes share one transaction; the caller keeps kinds that change who may act
        (enrolments, devices) in a batch of their own, so no check can miss an earlier envelope's effect.
        """
        checker = _BatchChecks(self)
        checks: list[Checked | Refused | None] = []
        outcomes = []
        async with self.db.transaction("bridge_apply") as conn:
            # Under the lock: nothing commits between these checks and the writes (a guest removed
            # while the batch waited for the writer is refused). Inline reads do not yield the loop.
            for envelope in envelopes:
                try:
                    checks.append(await checker.check(envelope.payload))
                except Refused as exc:
                    checks.append(exc)
            seen = await self._origins_taken(conn, envelopes, checks)
            for envelope, checked in zip(envelopes, checks, strict=True):
                try:
                    if isinstance(checked, Refused):
                        raise checked
                    await self._dispatch(conn, envelope.payload, checked, seen)
                    outcome = "applied"
                except Refused as exc:
                    outcome = f"refused:{exc.code}"
                    await self._refused(conn, envelope, exc.code)
                outcomes.append(outcome)
            now = now_iso()
            await store.record_inbox_many(conn, [(e.seq, e.id, e.kind, outcome, now)
                                                 for e, outcome in zip(envelopes, outcomes, strict=True)])
        return outcomes

    @staticmethod
    async def _origins_taken(conn: Writer, envelopes: list[env.Envelope],
                             checks: list[Checked | Refused | None]) -> set[tuple[int, str]]:
        """(author, idempotency key) of the batch's posts already on LGWAN: one query per author, inside
        the transaction; the posts of this batch join the set as they are written."""
        wanted: dict[int, list[str]] = {}
        for envelope, checked in zip(envelopes, checks, strict=True):
            if isinstance(envelope.payload, env.RelayPost) and isinstance(checked, Checked):
                wanted.setdefault(checked.staff.id, []).append(f"relay:{envelope.payload.origin_id}")
        seen: set[tuple[int, str]] = set()
        for staff_id, keys in wanted.items():
            seen.update((staff_id, key) for key in await store.origins_taken(conn, staff_id, keys))
        return seen

    @staticmethod
    def batchable(envelope: env.Envelope) -> bool:
        """Posts, receipts and 安否確認 answers may share a transaction (an answer's checks run inside
        it, so they see a check created earlier in the batch); enrolments, device requests and
        relay-started checks go alone. File chunks batch too: each reads its file's row inside the
        transaction; the file.sanitized that creates that row goes alone, before them."""
        return isinstance(envelope.payload, (env.RelayPost, env.ReceiptIn, env.SafetyAnswer, env.FileChunk))

    async def consume_rejected(self, seq: int, envelope_id: str, kind: str, code: str, detail: str) -> None:
        """Take a signed, in-sequence envelope whose payload breaks the schema: record, audit, apply nothing."""
        async with self.db.transaction("bridge_reject") as conn:
            await store.record_inbox(conn, seq, envelope_id, kind, f"rejected:{code}", now_iso())
            await self.audit.record(conn, BRIDGE_ACTOR, "bridge.envelope_rejected", outcome="denied",
                                    target_type="envelope", target_id=envelope_id,
                                    detail={"code": code, "seq": seq, "kind": kind, "reason": detail[:120]})

    async def _refused(self, conn: Writer, envelope: env.Envelope, code: str) -> None:
        payload = envelope.payload
        if code == "duplicate_origin":
            # Not a refusal: the same post arrived again under a new seq (a rebuilt or restored relay)
            # and already took effect once. Recorded, so the count stays visible.
            await self.audit.record(conn, BRIDGE_ACTOR, "bridge.post_duplicate", target_type="envelope",
                                    target_id=envelope.id, detail={"seq": envelope.seq})
        elif isinstance(payload, env.RelayPost):
            # Tell the author (through the relay) that the post did not go through.
            await self.outbox.enqueue(conn, env.PostRefused(origin_id=payload.origin_id, room_id=payload.room_id,
                                                            code=code), payload.room_id)
            await self.audit.record(conn, BRIDGE_ACTOR, "bridge.post_refused", outcome="denied", target_type="room",
                                    target_id=payload.room_id, detail={"code": code, "author": payload.author,
                                                                        "seq": envelope.seq})
        elif not isinstance(payload, env.ReceiptIn):   # a receipt racing a removal is routine
            await self.audit.record(conn, BRIDGE_ACTOR, "bridge.envelope_refused", outcome="denied",
                                    target_type="envelope", target_id=envelope.id,
                                    detail={"code": code, "kind": envelope.kind, "seq": envelope.seq})

    async def _dispatch(self, conn: Writer, payload: env.Payload, checked: Checked | None,
                        seen: set[tuple[int, str]]) -> None:
        if isinstance(payload, env.RelayPost):
            assert checked is not None
            await self._post(conn, payload, checked, seen)
        elif isinstance(payload, env.ReceiptIn):
            assert checked is not None
            await self.messages.mark_read_in_transaction(conn, checked.staff.id, payload.room_id, payload.seq)
        elif isinstance(payload, env.AccountEnrolled):
            await self._enrolled(conn, payload)
        elif isinstance(payload, env.DeviceRequest):
            await self._device(conn, payload)
        elif isinstance(payload, env.SafetyAnswer) and self.safety is not None:
            await self._safety_answer(conn, payload, self.safety)
        elif isinstance(payload, env.SafetyStart) and self.safety is not None:
            await self._safety_start(conn, payload, self.safety)
        elif isinstance(payload, (env.FileSanitized, env.FileChunk)) and self.files is not None:
            await self.files.apply(conn, payload)     # refusals are handled (and told) there
        else:   # the allow-list in shared/envelope.py makes this unreachable
            raise Refused("kind_not_handled")

    # --- people ----------------------------------------------------------------------------------

    async def _author(self, conn: Source, token: str) -> tuple[str, org_store.Staff, str]:
        """(kind, staff row, 所属) of a guest or phone that may act right now, else Refused."""
        member = parse_member(token)
        if member is None:
            raise Refused("bad_author")
        kind, staff_id = member
        staff = await org_store.get_staff(conn, staff_id)
        if staff is None or staff.status != "active":
            raise Refused("author_inactive")
        if kind == "g":
            guest = await guest_store.get_guest(conn, staff_id)
            if staff.role != "guest" or guest is None:
                raise Refused("bad_author")
            if guest.status != "active" or guest.expires_at < now_iso():
                raise Refused("guest_inactive")
            return kind, staff, guest.affiliation
        if staff.role == "guest":
            raise Refused("bad_author")
        grant = await guest_store.get_grant(conn, staff_id)
        if grant is None or grant.status != "active":
            raise Refused("mobile_not_granted")
        return kind, staff, await org_store.department_path(conn, staff.department_id)

    async def _room_for(self, conn: Source, kind: str, staff_id: int,
                        room_id: int) -> tuple[room_store.Room, room_store.Membership]:
        room = await room_store.get_room(conn, room_id)
        if room is None or room.crossing_policy not in _POLICIES_FOR[kind]:
            raise Refused("room_not_crossing")
        membership = await room_store.get_membership(conn, room_id, staff_id)
        if membership is None:
            raise Refused("not_member")
        return room, membership

    # --- kinds -----------------------------------------------------------------------------------

    async def _post(self, conn: Writer, p: env.RelayPost, checked: Checked,
                    seen: set[tuple[int, str]]) -> None:
        staff, affiliation, room, membership = checked.staff, checked.affiliation, checked.room, checked.membership
        if room.archived:
            raise Refused("room_archived")
        if membership.role == "readonly":
            raise Refused("read_only_member")
        if room.kind == "announcement" and membership.role != "owner":
            raise Refused("announcement_owner_only")
        client_msg_id = f"relay:{p.origin_id}"
        if (staff.id, client_msg_id) in seen:
            # Already here (e.g. a rebuilt relay sent it again under a new seq): the origin id is the
            # second idempotency key, so it still takes effect once.
            raise Refused("duplicate_origin")
        if p.thread_root_id is not None:
            root = await message_store.get_message(conn, p.thread_root_id)
            if root is None or root.room_id != room.id or root.thread_root_id is not None or root.deleted:
                raise Refused("invalid_thread")
        body = p.body.strip()
        if not body:
            raise Refused("empty_message")
        actor = Actor(staff.id, staff.org_id, staff.login, affiliation, "relay", staff.role)
        await self.messages.post_in_transaction(conn, actor, staff.display_name, room.id,
                                                NewMessage(body=body, thread_root_id=p.thread_root_id,
                                                           client_msg_id=client_msg_id), body, [])
        seen.add((staff.id, client_msg_id))

    async def _enrolled(self, conn: Writer, p: env.AccountEnrolled) -> None:
        member = parse_member(p.account)
        if member is None:
            raise Refused("bad_account")
        kind, staff_id = member
        staff = await org_store.get_staff(conn, staff_id)
        if staff is None:
            raise Refused("bad_account")
        now = now_iso()
        if kind == "g":
            guest = await guest_store.get_guest(conn, staff_id)
            if guest is None or guest.status not in ("invited", "enrolled", "active"):
                raise Refused("account_closed")
            if p.privacy_notice_sha256 is None:
                raise Refused("privacy_notice_not_acknowledged")    # acceptance statement 17
            await guest_store.mark_guest_enrolled(conn, staff_id, p.privacy_notice_sha256, p.acknowledged_at, now)
            updated = await guest_store.get_guest(conn, staff_id)
            assert updated is not None
            await self.outbox.enqueue(conn, guest_account(updated,
                                                          device_approval=self.outbox.cfg.guest_device_approval))
            # The inviting owner's screen shows that an approval is waiting.
            await self.events.emit(conn, "guest.enrolled", {"guest_id": staff_id, "status": updated.status},
                                   staff_id=guest.invited_by)
            actor = Actor(staff_id, staff.org_id, staff.login, guest.affiliation, "relay", "guest")
            await self.audit.record(conn, actor, "guest.enrolled", target_type="guest", target_id=staff_id,
                                    detail={"privacy_notice_sha256": p.privacy_notice_sha256,
                                            "acknowledged_at": p.acknowledged_at})
            return
        grant = await guest_store.get_grant(conn, staff_id)
        if staff.role == "guest" or grant is None or grant.status not in ("granted", "active"):
            raise Refused("account_closed")
        await guest_store.mark_grant_enrolled(conn, staff_id, now)
        updated_grant = await guest_store.get_grant(conn, staff_id)
        assert updated_grant is not None
        affiliation = await org_store.department_path(conn, staff.department_id)
        await self.outbox.enqueue(conn, phone_account(updated_grant, staff.display_name, affiliation))
        actor = Actor(staff.id, staff.org_id, staff.login, affiliation, "relay", staff.role)
        await self.audit.record(conn, actor, "mobile.enrolled", target_type="staff", target_id=staff_id)

    async def _device(self, conn: Writer, p: env.DeviceRequest) -> None:
        member = parse_member(p.account)
        if member is None:
            raise Refused("bad_account")
        staff = await org_store.get_staff(conn, member[1])
        if staff is None:
            raise Refused("bad_account")
        if await guest_store.insert_device(conn, p.device_id, staff.id, p.label, now_iso()):
            actor = Actor(staff.id, staff.org_id, staff.login, "", "relay", staff.role)
            await self.audit.record(conn, actor, "device.request", target_type="device", target_id=p.device_id,
                                    detail={"label": p.label})
            # The admins' screens list it at once (管理 → スマートフォン・端末).
            await self.events.emit_to_staff(conn, "device.request", {"device_id": p.device_id, "staff_id": staff.id},
                                            await org_store.active_admin_ids(conn, staff.org_id))
            return
        known = await guest_store.get_device(conn, p.device_id)
        if known is not None and known.staff_id == staff.id and known.status in ("approved", "revoked"):
            # The relay asks again (it lost the decision, e.g. after a rebuild): tell it once more.
            await self.outbox.enqueue(conn, env.DeviceDecision(account=p.account, device_id=p.device_id,
                                                               decision=known.status))

    # --- 安否確認 from phones (issue 6) ---------------------------------------------------------------

    async def _safety_start(self, conn: Writer, p: env.SafetyStart, safety: SafetyService) -> None:
        """A check started on the relay while LGWAN was down: created once (keyed on its origin id).

        The relay's word is re-checked: the starter must be active staff with an active phone grant and
        a role that may start a check now; only active staff of the same organisation registered for
        phone use become targets. Their 所属 for the roll-up is LGWAN's, as for any other check.
        """
        _, staff, affiliation = await self._author(conn, p.started_by)
        if staff.role not in SAFETY_STARTER_ROLES:
            raise Refused("not_safety_manager")
        wanted = [member[1] for member in map(parse_member, p.members) if member is not None]
        allowed = await store.phone_staff_among(conn, staff.org_id, wanted)
        audience = await target_store.resolve(conn, staff.org_id, staff_ids=allowed) if allowed else []
        existing = await safety_store.get_check_by_origin(conn, p.origin_id)
        if existing is not None:      # a later part of a long target list, or the same check sent again
            await safety.add_targets_in_transaction(conn, existing, audience)
            return
        actor = Actor(staff.id, staff.org_id, staff.login, affiliation, "relay", staff.role)
        await safety.start_in_transaction(conn, actor, title=p.title, message=p.message, questions=list(p.questions),
                                          audience=audience, target={"relay_phones": True}, via="relay",
                                          origin_id=p.origin_id, started_at=min(p.started_at, now_iso()))

    async def _safety_answer(self, conn: Writer, p: env.SafetyAnswer, safety: SafetyService) -> None:
        """A phone's answer, applied once (its origin id); the latest answer of a person counts."""
        _, staff, _ = await self._author(conn, p.member)
        if p.check_id is not None:
            check = await safety_store.get_check(conn, p.check_id)
        else:
            assert p.check_origin_id is not None
            check = await safety_store.get_check_by_origin(conn, p.check_origin_id)
        if check is None or check.org_id != staff.org_id:
            raise Refused("safety_check_unknown")
        if not await safety_store.is_target(conn, check.id, staff.id):
            raise Refused("not_target")
        answer = Answer(condition=p.condition, attend=p.attend, eta_minutes=p.eta_minutes, location=p.location,
                        note=p.note)
        try:
            # A relay clock ahead of ours must not make an answer outrank every later one.
            applied = await safety.answer_in_transaction(conn, staff.id, check, answer, via="relay",
                                                         origin_id=p.origin_id,
                                                         answered_at=min(p.answered_at, now_iso()))
        except AppError as exc:
            raise Refused("safety_closed" if exc.code == "invalid_transition" else "invalid_answer") from None
        if not applied:
            raise Refused("duplicate_origin")
