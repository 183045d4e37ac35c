"""Rooms, messages and read receipts as guests and staff phones see them on the relay.

``access_room`` is the only way to a room: it answers ``room_not_found`` alike for a room that
does not exist here, one the account is not in, and one whose policy does not admit its kind
(guests: ``guests`` rooms only; phones: ``staff_mobile`` and ``guests``). Guests see other people
by display name and 所属 only — never a directory, never ids. Posts are queued for LGWAN in the same
transaction as the pending copy the author sees; LGWAN's confirmation replaces it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from shared import envelope as env
from shared.limits import MAX_MESSAGE_CHARS
from shared.sqlite import Writer
from shared.textsafe import clean_text
from shared.timeutil import now_iso

from ..config import RelayConfig
from ..errors import AppError
from ..hub import Hub
from ..ratelimit import RateLimiter
from ..storage import mirror as store
from ..storage.accounts import Account
from ..storage.database import Database
from ..storage.mirror import Message, Pending, Room
from .audit import AuditService
from .outbox import Outbox

POLICIES = {"guest": ("guests",), "staff": ("staff_mobile", "guests")}
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
# What a refused post tells its author, in やさしい日本語.
REFUSALS = {
    "not_member": "この ルームの メンバーでは なくなったので、送れませんでした。",
    "room_not_crossing": "この ルームは もう 使えないので、送れませんでした。",
    "guest_inactive": "アカウントが 使えないので、送れませんでした。",
    "room_archived": "この ルームは 終わったので、送れませんでした。",
    "read_only_member": "この ルームでは 読むだけです。",
    # A file LGWAN did not accept after its own checks (issue 3); the details are in LGWAN's audit log.
    "file_refused": "ファイルを 確認 できなかったので、送れませんでした。",
    "bad_author": "アカウントを 確認 できなかったので、送れませんでした。",
    "author_inactive": "アカウントが 使えないので、送れませんでした。",
    "mobile_not_granted": "スマートフォンでの 利用が 止められているので、送れませんでした。",
    "announcement_owner_only": "この ルームでは、お知らせを 出す 人だけが 書けます。",
    "invalid_thread": "返事を する メッセージが ないので、送れませんでした。",
    "empty_message": "何も 書かれて いないので、送れませんでした。",
}


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def own_client_id(member: str, origin_id: str | None) -> str | None:
    """The client's id of one of its own posts (origin ids are ``<member>:<client id>``)."""
    prefix = member + ":"
    return origin_id[len(prefix):] if origin_id and origin_id.startswith(prefix) else None


def message_json(m: Message, viewer: str, read_count: int) -> dict[str, Any]:
    return {"id": m.id, "room_id": m.room_id, "seq": m.seq, "thread_root_id": m.thread_root_id,
            "sender": {"display_name": m.sender_name, "affiliation": m.sender_affiliation},
            "mine": m.sender == viewer, "client_msg_id": own_client_id(viewer, m.origin_id),
            "body": m.body, "attachments": m.attachments, "created_at": m.created_at, "edited_at": m.edited_at,
            "deleted": m.deleted, "read_count": read_count}


def pending_json(p: Pending, viewer: str) -> dict[str, Any]:
    return {"client_msg_id": own_client_id(viewer, p.origin_id), "room_id": p.room_id, "body": p.body,
            "thread_root_id": p.thread_root_id, "posted_at": p.posted_at, "status": p.status,
            "refused_code": p.refused_code, "refused_message": REFUSALS.get(p.refused_code or "",
                                                                            "送れませんでした。")
            if p.status == "refused" else None}


class ChatService:
    def __init__(self, db: Database, cfg: RelayConfig, audit: AuditService, outbox: Outbox, hub: Hub) -> None:
        self.db = db
        self.audit = audit
        self.outbox = outbox
        self.hub = hub
        lim = cfg.limits
        self.post_limiter = RateLimiter(lim.post_burst, lim.post_burst / lim.post_refill_per_second)

    # --- the chokepoint --------------------------------------------------------------------------

    @staticmethod
    def require_active(account: Account) -> None:
        if account.status != "active":
            raise AppError("not_approved")

    async def access_room(self, account: Account, room_id: int) -> Room:
        """The room, or ``room_not_found`` — missing, not a member, and wrong policy look the same."""
        self.require_active(account)
        room = await store.get_room_of_member(self.db.inline, room_id, account.member)    # missing or not a member
        if room is None:
            raise AppError("room_not_found")
        if room.policy not in POLICIES[account.kind]:
            raise AppError("room_not_found")
        return room

    # --- reading ---------------------------------------------------------------------------------

    async def rooms(self, account: Account) -> list[dict[str, Any]]:
        self.require_active(account)
        return [{"id": room.id, "name": room.name, "last_read_seq": cursor, "last_seq": last,
                 "unread": max(0, last - cursor)}
                for room, cursor, last in await store.rooms_of(self.db, account.member, POLICIES[account.kind])]

    async def messages(self, account: Account, room_id: int, after_seq: int | None, before_seq: int | None,
                       limit: int) -> dict[str, Any]:
        room = await self.access_room(account, room_id)
        msgs = await store.list_messages(self.db, room.id, after_seq, before_seq, limit)
        cursors = await store.read_cursors(self.db, room.id)
        mine = next((seq for member, seq in cursors if member == account.member), 0)
        pending = await store.list_pending(self.db, room.id, account.member)
        return {"room": {"id": room.id, "name": room.name, "last_read_seq": mine},
                "messages": [message_json(m, account.member, _read_count(m, cursors)) for m in msgs],
                "pending": [pending_json(p, account.member) for p in pending]}

    async def members(self, account: Account, room_id: int) -> list[dict[str, Any]]:
        room = await self.access_room(account, room_id)
        return [{"display_name": m.display_name, "affiliation": m.affiliation, "me": m.member == account.member}
                for m in await store.list_members(self.db, room.id)]

    # --- writing ---------------------------------------------------------------------------------

    async def post(self, account: Account, ip: str, room_id: int, body: str, client_msg_id: str,
                   thread_root_id: int | None) -> dict[str, Any]:
        """Queue a text post for LGWAN. Idempotent on ``client_msg_id``."""
        room = await self.access_room(account, room_id)
        if not _CLIENT_ID.match(client_msg_id):
            raise AppError("invalid_request", field="client_msg_id")
        origin_id = f"{account.member}:{client_msg_id}"
        existing, confirmed = await store.find_origin(self.db.inline, origin_id)
        if existing is not None:
            return pending_json(existing, account.member)
        if confirmed is not None:
            return {**pending_json(Pending(origin_id, room.id, account.member, confirmed.body, None,
                                           confirmed.created_at, "delivered", None), account.member),
                    "message_id": confirmed.id}
        text = clean_text(body).strip()
        if not text:
            raise AppError("empty_message")
        if len(text) > MAX_MESSAGE_CHARS:
            raise AppError("message_too_long")
        problem = env.crossing_text_problem(text)
        if problem == "my_number":
            # The audit says that a 個人番号 was found, never which (acceptance statement 16).
            await self.audit.record_alone("post.my_number_blocked", actor=account.member, ip=ip, outcome="denied",
                                          target=f"room:{room.id}")
            raise AppError("my_number_blocked")
        if problem is not None:
            raise AppError("markup_not_allowed")
        if thread_root_id is not None:
            root = await store.get_message(self.db, thread_root_id)
            if root is None or root.room_id != room.id or root.thread_root_id is not None:
                raise AppError("invalid_request", field="thread_root_id")
        if not self.post_limiter.allow(account.member):
            raise AppError("rate_limited")
        pending = Pending(origin_id, room.id, account.member, text, thread_root_id, now_iso(), "queued", None)
        async with self.db.transaction("post") as conn:
            if not await store.insert_pending_new(conn, pending):
                raise AppError("conflict")      # the same post, sent twice at once
            await self.outbox.enqueue(conn, env.RelayPost(origin_id=origin_id, room_id=room.id, author=account.member,
                                                          body=text, posted_at=pending.posted_at,
                                                          thread_root_id=thread_root_id))
            out = pending_json(pending, account.member)
            frame = dumps({"type": "pending", "pending": out})
            self.db.after_commit(lambda: self.hub.publish([account.member], frame))
        return out

    async def mark_read(self, account: Account, room_id: int, seq: int) -> int:
        room = await self.access_room(account, room_id)
        async with self.db.transaction("mark_read") as conn:
            newest = await store.newest_seq(conn, room.id)
            target = min(max(seq, 0), newest)
            if await store.advance_cursor(conn, room.id, account.member, target):
                await self.outbox.enqueue(conn, env.ReceiptIn(room_id=room.id, member=account.member, seq=target))
                await self._publish_room(conn, room.id, {"type": "receipt", "room_id": room.id, "seq": target})
            member = await store.get_member(conn, room.id, account.member)
        return member.last_read_seq if member else target

    async def _publish_room(self, conn: Writer, room_id: int, event: dict[str, Any],
                            extra: list[str] | None = None) -> None:
        members = await store.member_tokens(conn, room_id) + (extra or [])
        frame = dumps(event)
        self.db.after_commit(lambda: self.hub.publish(members, frame))

    # --- what LGWAN says (inside the link's apply transaction) ----------------------------------

    def run(self, conn: Writer) -> MessageRun:
        """A writer for the runs of messages and receipts in one link transaction."""
        return MessageRun(self, conn)

    async def apply(self, conn: Writer, p: env.Payload) -> None:
        if isinstance(p, env.RoomUpsert):
            await store.upsert_room(conn, p.room_id, p.name, p.policy, now_iso())
            await self._publish_room(conn, p.room_id, {"type": "room.update", "room_id": p.room_id})
        elif isinstance(p, env.RoomRemove):
            members = await store.member_tokens(conn, p.room_id)
            await store.delete_room(conn, p.room_id)
            frame = dumps({"type": "room.remove", "room_id": p.room_id})
            self.db.after_commit(lambda: self.hub.publish(members, frame))
        elif isinstance(p, env.MemberUpsert):
            if await store.upsert_member(conn, p.room_id, p.member, p.display_name, p.affiliation):
                await self._publish_room(conn, p.room_id, {"type": "member.update", "room_id": p.room_id})
        elif isinstance(p, env.MemberRemove):
            await store.delete_member(conn, p.room_id, p.member)
            await self._publish_room(conn, p.room_id, {"type": "member.update", "room_id": p.room_id})
            frame = dumps({"type": "room.remove", "room_id": p.room_id})
            self.db.after_commit(lambda: self.hub.publish([p.member], frame))
        elif MessageRun.takes(p):
            run = self.run(conn)
            await run.add(p)
            await run.flush()
        elif isinstance(p, env.MessageEdit):
            if await store.edit_message(conn, p.message_id, p.body, p.edited_at):
                await self._publish_room(conn, p.room_id, {"type": "message.edit", "room_id": p.room_id,
                                                           "id": p.message_id, "body": p.body,
                                                           "edited_at": p.edited_at})
        elif isinstance(p, env.MessageDelete):
            if await store.delete_message(conn, p.message_id):
                await self._publish_room(conn, p.room_id, {"type": "message.delete", "room_id": p.room_id,
                                                           "id": p.message_id})
        elif isinstance(p, env.PostRefused):
            if await store.refuse_pending(conn, p.origin_id, p.code):
                pending = await store.get_pending(conn, p.origin_id)
                assert pending is not None
                frame = dumps({"type": "pending", "pending": pending_json(pending, pending.author)})
                self.db.after_commit(lambda: self.hub.publish([pending.author], frame))


def _read_count(m: Message, cursors: list[tuple[str, int]]) -> int:
    return sum(1 for member, seq in cursors if seq >= m.seq and member != m.sender)


class MessageRun:
    """Consecutive ``message.new`` and ``receipt.lgwan`` envelopes of one link transaction, written with
    a few statements for the whole run instead of several per envelope (the common traffic: text and
    既読 in crossing rooms).

    Each room's read cursors are read once per run and kept up to date here, so read counts and the
    people to tell are the same as if each envelope were written on its own. ``flush`` writes
    everything and queues the frames after commit, in envelope order; the link flushes before it
    applies any other kind, so that one sees the run's effects (and the next run reads afresh).
    """

    def __init__(self, chat: ChatService, conn: Writer) -> None:
        self.chat = chat
        self.conn = conn
        self._cursors: dict[int, dict[str, int] | None] = {}     # room -> member -> cursor; None: not held here
        self._messages: list[Message] = []
        self._confirmed: list[str] = []                            # pending posts LGWAN confirmed
        self._moved: dict[tuple[int, str], int] = {}               # (room, member) -> new cursor
        self._frames: list[tuple[list[str], str]] = []

    @staticmethod
    def takes(p: env.Payload) -> bool:
        return isinstance(p, (env.MessageNew, env.ReceiptOut))

    async def add(self, p: env.Payload) -> None:
        assert isinstance(p, (env.MessageNew, env.ReceiptOut))
        if p.room_id not in self._cursors:
            self._cursors[p.room_id] = await store.room_cursors(self.conn, p.room_id)
        cursors = self._cursors[p.room_id]
        if cursors is None:
            return      # a room the relay does not hold (it stopped crossing meanwhile)
        if isinstance(p, env.ReceiptOut):
            if self._advance(p.room_id, cursors, p.member, p.seq):
                self._frames.append((list(cursors), dumps({"type": "receipt", "room_id": p.room_id, "seq": p.seq})))
            return
        message = Message(p.message_id, p.room_id, p.seq, p.thread_root_id, p.sender, p.sender_name,
                          p.sender_affiliation, p.body, p.attachments, p.origin_id, p.created_at, None, False)
        self._messages.append(message)
        if p.origin_id is not None:
            self._confirmed.append(p.origin_id)
        # As on LGWAN, posting means the author has read everything up to their own message.
        self._advance(p.room_id, cursors, p.sender, p.seq)
        count = _read_count(message, list(cursors.items()))
        # The author's copy says "mine" (and carries their client id); everyone else's does not.
        self._frames.append(([member for member in cursors if member != p.sender],
                             dumps({"type": "message.new", "message": message_json(message, "", count)})))
        self._frames.append(([p.sender], dumps({"type": "message.new", "message": message_json(message, p.sender,
                                                                                                count)})))

    def _advance(self, room_id: int, cursors: dict[str, int], member: str, seq: int) -> bool:
        if member not in cursors or cursors[member] >= seq:
            return False
        cursors[member] = self._moved[(room_id, member)] = seq
        return True

    async def flush(self) -> None:
        if self._messages:
            await store.upsert_messages(self.conn, self._messages)
        if self._confirmed:
            await store.delete_pending_many(self.conn, self._confirmed)
        if self._moved:
            await store.advance_cursors(self.conn, [(room, member, seq) for (room, member), seq in self._moved.items()])
        frames, hub = self._frames, self.chat.hub

        def publish() -> None:
            for members, frame in frames:
                hub.publish(members, frame)
        if frames:
            self.chat.db.after_commit(publish)
        self._cursors, self._messages, self._confirmed, self._moved, self._frames = {}, [], [], {}, []
