"""Messages: post, thread replies, edit with history, tombstone delete, reactions, pins,
read cursors and receipts, and search limited to the caller's rooms."""

from __future__ import annotations

import bisect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from shared import limits
from shared.envelope import crossing_text_problem
from shared.sqlite import Writer
from shared.textsafe import clean_text
from shared.timeutil import now_iso

from ..errors import AppError
from ..ratelimit import RateLimiter
from ..storage import files as file_store
from ..storage import messages as store
from ..storage import org as org_store
from ..storage import rooms as room_store
from ..storage.database import Database
from ..storage.messages import Message
from ..storage.org import Staff, StaffCard
from ..storage.rooms import Room
from .actor import Actor
from .audit import AuditService
from .events import EventService
from .rooms import RoomService

DeletionGuard = Callable[[Writer, int, int, "int | None"], Awaitable["str | None"]]

CLIENT_MSG_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

# Stamps: a fixed allow-list (codes, not free text or images), labelled in the UI catalogue.
REACTION_CODES = ("like", "ok", "thanks", "understood", "done", "check", "question", "celebrate", "sorry", "great")


def card_json(card: StaffCard) -> dict[str, Any]:
    return {"id": card.id, "login": card.login, "display_name": card.display_name, "kana": card.kana,
            "department_id": card.department_id, "department": card.department_name, "rank": card.rank_name,
            "title": card.title, "status": card.status, "org_id": card.org_id}


def attachment_json(att: file_store.Attachment) -> dict[str, Any]:
    return {"id": att.id, "filename": att.filename, "size": att.size, "mime": att.mime, "sha256": att.sha256,
            "origin": att.origin}


def message_json(msg: Message, sender_name: str, *, mentions: list[int] | None = None,
                 reactions: dict[str, list[int]] | None = None,
                 attachments: list[file_store.Attachment] | None = None, read_count: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": msg.id, "room_id": msg.room_id, "seq": msg.seq, "thread_root_id": msg.thread_root_id,
        "sender": {"id": msg.sender_id, "display_name": sender_name, "affiliation": msg.sender_affiliation},
        "body": msg.body, "important": msg.important, "mention_room": msg.mention_room,
        "mentions": mentions or [], "reactions": reactions or {},
        "attachments": [attachment_json(a) for a in attachments or []],
        "created_at": msg.created_at, "edited_at": msg.edited_at, "deleted": msg.deleted,
        "reply_count": msg.reply_count,
    }
    if read_count is not None:
        out["read_count"] = read_count
    return out


@dataclass(frozen=True)
class NewMessage:
    body: str
    thread_root_id: int | None = None
    mentions: tuple[int, ...] = ()
    mention_room: bool = False
    important: bool = False
    client_msg_id: str | None = None


class MessageService:
    def __init__(self, db: Database, rooms: RoomService, events: EventService, audit: AuditService, *,
                 post_burst: int = 30, post_refill_per_second: float = 3.0) -> None:
        self.db = db
        self.rooms = rooms
        self.events = events
        self.audit = audit
        # per person: a burst, then a sustained rate ([limits] post_burst, post_refill_per_second)
        self.post_limiter = RateLimiter(rate=post_burst, per=post_burst / post_refill_per_second)
        # Set by the kernel to RecordsService.deletion_blocked: 行政文書 in retention or on hold stay.
        self.deletion_guard: DeletionGuard | None = None

    # --- posting -------------------------------------------------------------------------------

    def _clean_body(self, body: str, allow_empty: bool) -> str:
        text = clean_text(body).strip()
        if not text and not allow_empty:
            raise AppError("empty_message")
        if len(text) > limits.MAX_MESSAGE_CHARS:
            raise AppError("message_too_long", max=limits.MAX_MESSAGE_CHARS)
        return text

    async def check_crossing_text(self, actor: Actor, room: Room, body: str) -> None:
        """Text in a room that crosses to the internet relay must be able to cross (issue 5).

        A 12-digit 個人番号 with a valid check digit is blocked and the refusal is audited without the
        number (acceptance statement 16); markup is refused because the relay shows plain text only.
        """
        if room.crossing_policy == "lgwan_only":
            return
        problem = crossing_text_problem(body)
        if problem == "my_number":
            await self.audit.record_alone(actor, "message.my_number_blocked", outcome="denied",
                                          target_type="room", target_id=room.id, detail={"room_id": room.id})
            raise AppError("my_number_blocked")
        if problem is not None:
            raise AppError("crossing_text_refused", reason=problem)

    async def post(self, actor: Actor, sender: Staff, room_id: int, new: NewMessage, *,
                   attachment: tuple[str, str] | None = None) -> dict[str, Any]:
        """Post a message (optionally carrying an uploaded blob: (filename, sha256)). Idempotent on client_msg_id."""
        assert actor.staff_id is not None
        if new.client_msg_id is not None and not CLIENT_MSG_ID.fullmatch(new.client_msg_id):
            # Same rule as the JSON schema, for every path (multipart too): the bridge's own ids
            # ("relay:<origin>") must never be claimable by a staff client.
            raise AppError("invalid_request", field="client_msg_id", reason="pattern")
        access = await self.rooms.require_post(actor.staff_id, room_id)
        body = self._clean_body(new.body, allow_empty=attachment is not None)
        await self.check_crossing_text(actor, access.room, body)
        mentions = sorted(set(new.mentions))
        if len(mentions) > limits.MAX_MENTIONS_PER_MESSAGE:
            raise AppError("too_many_mentions", max=limits.MAX_MENTIONS_PER_MESSAGE)
        for staff_id in mentions:
            if not self.rooms.hub.is_member(room_id, staff_id):
                raise AppError("mention_not_member", staff_id=staff_id)
        # One writer transaction for the retry check and the insert: a retry finds its message (and is
        # not rate-limited); two concurrent retries cannot both insert.
        existing: Message | None = None
        async with self.db.transaction("post_message") as conn:
            if new.client_msg_id is not None:
                existing = await store.get_by_client_id(conn, actor.staff_id, new.client_msg_id)
            if existing is None:
                # Again on the writer's view: a removal, archive or role change that committed while
                # this post waited for the lock wins. A room whose crossing policy changed meanwhile
                # was checked against the wrong rules (My Number guard): the client posts again.
                current = await self.rooms.require_post(actor.staff_id, room_id, conn)
                if current.room.crossing_policy != access.room.crossing_policy:
                    raise AppError("conflict", reason="room_changed")
                if not self.post_limiter.allow(actor.staff_id):
                    raise AppError("rate_limited")
                data = await self.post_in_transaction(conn, actor, sender.display_name, room_id, new, body,
                                                      mentions, attachment=attachment)
        del access
        if existing is not None:
            if existing.room_id != room_id:
                raise AppError("conflict", reason="client_msg_id_reused")
            return await self.render_one(existing)
        return data

    async def post_in_transaction(self, conn: Writer, actor: Actor, sender_name: str, room_id: int,
                                  new: NewMessage, body: str, mentions: list[int], *,
                                  attachment: tuple[str, str] | None = None,
                                  attachment_origin: str = "lgwan") -> dict[str, Any]:
        """The write half of ``post`` for a caller that checked access and holds the transaction.

        The relay bridge applies guest and staff-phone posts through here, so that the message and
        the bridge's inbox record commit together (exactly-once apply).
        ``attachment_origin`` is ``'sanitized'`` for a file from the relay that the sanitizer rebuilt
        (issue 3; ``bridge/files.py``), ``'lgwan'`` for a staff upload.
        """
        assert actor.staff_id is not None
        now = now_iso()
        if new.thread_root_id is not None:
            root = await store.get_message(conn, new.thread_root_id)
            if root is None or root.room_id != room_id or root.thread_root_id is not None or root.deleted:
                raise AppError("invalid_thread")
        seq = await room_store.next_seq(conn, room_id)
        message_id = await store.insert_message(
            conn, room_id=room_id, seq=seq, thread_root_id=new.thread_root_id, sender_id=actor.staff_id,
            sender_affiliation=actor.affiliation, body=body, important=new.important,
            mention_room=new.mention_room, client_msg_id=new.client_msg_id, now=now)
        if new.thread_root_id is not None:
            await store.increment_reply_count(conn, new.thread_root_id)
        if mentions:
            await store.insert_mentions(conn, message_id, mentions)
        attachments = []
        if attachment is not None:
            filename, sha256 = attachment
            att_id = await file_store.insert_attachment(conn, room_id=room_id, message_id=message_id,
                                                        uploader_id=actor.staff_id, filename=filename,
                                                        sha256=sha256, origin=attachment_origin, now=now)
            att = await file_store.get_attachment(conn, att_id)
            assert att is not None
            attachments.append(att)
            await self.audit.record(conn, actor, "file.upload", target_type="attachment", target_id=att_id,
                                    detail={"room_id": room_id, "sha256": sha256, "size": att.size,
                                            "mime": att.mime})
        # Posting means the sender has seen everything up to their own message.
        await room_store.advance_cursor(conn, room_id, actor.staff_id, seq, now)
        msg = Message(id=message_id, room_id=room_id, seq=seq, thread_root_id=new.thread_root_id,
                      sender_id=actor.staff_id, sender_affiliation=actor.affiliation, body=body,
                      important=new.important, mention_room=new.mention_room, client_msg_id=new.client_msg_id,
                      created_at=now, edited_at=None, deleted_at=None, reply_count=0)
        data = message_json(msg, sender_name, mentions=mentions, attachments=attachments, read_count=0)
        await self.events.emit(conn, "message.new", data, room_id=room_id)
        if new.thread_root_id is not None:
            await self.events.emit(conn, "thread.reply", {"root_id": new.thread_root_id, "message_id": message_id},
                                   room_id=room_id)
        return data

    # --- edit / delete -------------------------------------------------------------------------

    async def _own_message(self, actor: Actor, message_id: int, *, owner_may: bool) -> tuple[Message, bool]:
        assert actor.staff_id is not None
        msg = await self._visible(actor.staff_id, message_id)
        access = await self.rooms.access_room(actor.staff_id, msg.room_id)
        if msg.deleted:
            raise AppError("message_deleted")
        is_author = msg.sender_id == actor.staff_id
        if not is_author and not (owner_may and access.is_owner):
            raise AppError("not_message_author")
        return msg, is_author

    async def edit(self, actor: Actor, message_id: int, body: str) -> dict[str, Any]:
        msg, _ = await self._own_message(actor, message_id, owner_may=False)
        assert actor.staff_id is not None
        text = self._clean_body(body, allow_empty=False)
        room = await room_store.get_room(self.db, msg.room_id)
        assert room is not None
        await self.check_crossing_text(actor, room, text)
        now = now_iso()
        async with self.db.transaction("edit_message") as conn:
            versions = await store.count_edits(conn, message_id)
            if versions == 0:   # keep the original text as version 1
                await store.insert_edit(conn, message_id, 1, msg.body, msg.sender_id, msg.created_at)
                versions = 1
            await store.insert_edit(conn, message_id, versions + 1, text, actor.staff_id, now)
            await store.update_body(conn, message_id, text, now)
            await self.events.emit(conn, "message.edit", {"id": message_id, "room_id": msg.room_id, "body": text,
                                                          "edited_at": now}, room_id=msg.room_id)
            await self.audit.record(conn, actor, "message.edit", target_type="message", target_id=message_id,
                                    detail={"room_id": msg.room_id, "version": versions + 1})
        return {"id": message_id, "body": text, "edited_at": now}

    async def delete(self, actor: Actor, message_id: int) -> None:
        """Tombstone: the body is cleared for readers; the text is kept in the edit history for records."""
        msg, is_author = await self._own_message(actor, message_id, owner_may=True)
        assert actor.staff_id is not None
        now = now_iso()
        async with self.db.transaction("delete_message") as conn:
            if self.deletion_guard is not None:
                reason = await self.deletion_guard(conn, msg.room_id, msg.id, msg.thread_root_id)
                if reason is not None:
                    raise AppError("retention_locked" if reason == "retention" else "legal_hold")
            versions = await store.count_edits(conn, message_id)
            if versions == 0:
                await store.insert_edit(conn, message_id, 1, msg.body, msg.sender_id, msg.created_at)
            await store.mark_deleted(conn, message_id, actor.staff_id, now)
            await self.events.emit(conn, "message.delete", {"id": message_id, "room_id": msg.room_id},
                                   room_id=msg.room_id)
            await self.audit.record(conn, actor, "message.delete", target_type="message", target_id=message_id,
                                    detail={"room_id": msg.room_id, "by_author": is_author})

    # --- reactions and pins --------------------------------------------------------------------

    async def _visible(self, staff_id: int, message_id: int) -> Message:
        """The message if the caller may read its room; ``message_not_found`` otherwise (either way)."""
        msg = await store.get_message(self.db, message_id)
        if msg is None:
            raise AppError("message_not_found")
        try:
            await self.rooms.access_room(staff_id, msg.room_id)
        except AppError as exc:
            raise AppError("message_not_found") from exc
        return msg

    async def react(self, actor: Actor, message_id: int, code: str, add: bool) -> None:
        if code not in REACTION_CODES:
            raise AppError("unknown_reaction")
        assert actor.staff_id is not None
        msg = await self._visible(actor.staff_id, message_id)
        if msg.deleted:
            raise AppError("message_deleted")
        async with self.db.transaction("react") as conn:
            if add:
                changed = await store.add_reaction(conn, message_id, actor.staff_id, code, now_iso())
            else:
                changed = await store.remove_reaction(conn, message_id, actor.staff_id, code)
            if changed:
                await self.events.emit(conn, "reaction.add" if add else "reaction.remove",
                                       {"message_id": message_id, "room_id": msg.room_id,
                                        "staff_id": actor.staff_id, "code": code}, room_id=msg.room_id)

    async def pin(self, actor: Actor, message_id: int, pinned: bool) -> None:
        assert actor.staff_id is not None
        msg = await self._visible(actor.staff_id, message_id)
        await self.rooms.require_post(actor.staff_id, msg.room_id)
        async with self.db.transaction("pin") as conn:
            if pinned:
                changed = await store.pin(conn, msg.room_id, message_id, actor.staff_id, now_iso())
            else:
                changed = await store.unpin(conn, msg.room_id, message_id)
            if changed:
                await self.events.emit(conn, "pin.add" if pinned else "pin.remove",
                                       {"message_id": message_id, "room_id": msg.room_id, "by": actor.staff_id},
                                       room_id=msg.room_id)

    # --- reading -------------------------------------------------------------------------------

    async def render(self, messages: list[Message], cursors: dict[int, int] | None = None) -> list[dict[str, Any]]:
        """JSON for a page of messages with names, mentions, reactions, attachments and 既読 counts."""
        ids = [m.id for m in messages]
        cards = {c.id: c for c in await org_store.get_cards(self.db, sorted({m.sender_id for m in messages}))}
        mentions = await store.mentions_of(self.db, ids)
        reactions = await store.reactions_of(self.db, ids)
        attachments = await file_store.attachments_of(self.db, ids)
        annotations = await store.annotations_of(self.db, ids)
        sorted_cursors = sorted(cursors.values()) if cursors is not None else None
        out = []
        for m in messages:
            read_count = None
            if cursors is not None and sorted_cursors is not None:
                # members whose cursor >= seq, minus the sender's own cursor — only while the sender is
                # still a member (a retired sender has left the room and must not be subtracted)
                read_count = len(sorted_cursors) - bisect.bisect_left(sorted_cursors, m.seq)
                if cursors.get(m.sender_id, -1) >= m.seq:
                    read_count -= 1
            card = cards.get(m.sender_id)
            out.append(message_json(m, card.display_name if card else "", mentions=mentions.get(m.id),
                                    reactions=reactions.get(m.id), attachments=attachments.get(m.id),
                                    read_count=read_count))
            note = annotations.get(m.id, {})
            out[-1].update({"pinned": bool(note.get("pinned")), "ack_requested": bool(note.get("ack_requested")),
                            "record": note.get("record")})
        return out

    async def render_one(self, msg: Message) -> dict[str, Any]:
        cursors = await room_store.read_cursors(self.db, msg.room_id)
        return (await self.render([msg], cursors))[0]

    async def list_room(self, staff_id: int, room_id: int, before_seq: int | None, after_seq: int | None,
                        limit: int) -> list[dict[str, Any]]:
        await self.rooms.access_room(staff_id, room_id)
        msgs = await store.list_room_messages(self.db, room_id, before_seq, after_seq, limit)
        return await self.render(msgs, await room_store.read_cursors(self.db, room_id))

    async def thread(self, staff_id: int, root_id: int, limit: int) -> dict[str, Any]:
        root = await self._visible(staff_id, root_id)
        if root.thread_root_id is not None:
            raise AppError("message_not_found")
        cursors = await room_store.read_cursors(self.db, root.room_id)
        replies = await store.list_thread(self.db, root_id, limit)
        rendered = await self.render([root, *replies], cursors)
        return {"root": rendered[0], "replies": rendered[1:]}

    async def get(self, staff_id: int, message_id: int) -> dict[str, Any]:
        msg = await self._visible(staff_id, message_id)
        return await self.render_one(msg)

    async def history(self, staff_id: int, message_id: int) -> list[dict[str, Any]]:
        """Edit history (versions) of a message the caller can read; deleted text is not shown here."""
        msg = await self._visible(staff_id, message_id)
        if msg.deleted:
            return []
        return [{"version": e.version, "body": e.body, "edited_by": e.edited_by, "created_at": e.created_at}
                for e in await store.list_edits(self.db, message_id)]

    async def pinned(self, staff_id: int, room_id: int) -> list[dict[str, Any]]:
        await self.rooms.access_room(staff_id, room_id)
        msgs = [m for i in await store.pinned_ids(self.db, room_id) if (m := await store.get_message(self.db, i))]
        return await self.render(msgs)

    # --- read cursors and receipts -------------------------------------------------------------

    async def mark_read(self, actor: Actor, room_id: int, seq: int) -> int:
        """Move the caller's cursor to ``seq`` (clamped to the newest message). Returns the cursor."""
        assert actor.staff_id is not None
        await self.rooms.access_room(actor.staff_id, room_id)
        async with self.db.transaction("mark_read") as conn:
            return await self.mark_read_in_transaction(conn, actor.staff_id, room_id, seq)

    async def mark_read_in_transaction(self, conn: Writer, staff_id: int, room_id: int, seq: int) -> int:
        """``mark_read`` inside the caller's transaction (the relay bridge applies guests' 既読 this way)."""
        room = await room_store.get_room(conn, room_id)
        if room is None:
            raise AppError("room_not_found")
        target = min(max(seq, 0), room.last_seq)
        current = await room_store.get_membership(conn, room_id, staff_id)
        if current is None:
            raise AppError("room_not_found")
        previous = current.last_read_seq
        if await room_store.advance_cursor(conn, room_id, staff_id, target, now_iso()):
            await self.events.emit(conn, "receipt", {"room_id": room_id, "staff_id": staff_id,
                                                     "from_seq": previous, "to_seq": target}, room_id=room_id)
            return target
        return max(previous, target)

    async def receipts(self, staff_id: int, message_id: int) -> dict[str, Any]:
        """Who has read a message and who has not (names and 所属), excluding its sender."""
        msg = await self._visible(staff_id, message_id)
        read, unread = await room_store.readers_of(self.db, msg.room_id, msg.seq)
        read = [s for s in read if s != msg.sender_id]
        unread = [s for s in unread if s != msg.sender_id]
        cards = {c.id: c for c in await org_store.get_cards(self.db, read + unread)}

        def names(ids: list[int]) -> list[dict[str, Any]]:
            chosen = [cards[i] for i in ids if i in cards]
            return [card_json(c) for c in sorted(chosen, key=lambda c: (c.kana, c.id))]

        return {"message_id": message_id, "read_count": len(read), "unread_count": len(unread),
                "read": names(read), "unread": names(unread)}

    # --- search --------------------------------------------------------------------------------

    async def search(self, actor: Actor, query: str, room_id: int | None, limit: int) -> list[dict[str, Any]]:
        assert actor.staff_id is not None
        text = clean_text(query, multiline=False).strip()
        if not text or len(text) > limits.MAX_SEARCH_QUERY_CHARS:
            raise AppError("invalid_request", field="q")
        if room_id is not None:
            await self.rooms.access_room(actor.staff_id, room_id)
            room_ids = [room_id]
        else:
            room_ids = await room_store.room_ids_of_staff(self.db, actor.staff_id)
        found = await store.search(self.db, room_ids, text, limit)
        await self.audit.record_alone(actor, "search.messages", detail={"room_id": room_id, "results": len(found),
                                                                         "query_chars": len(text)})
        rendered = await self.render(found)
        names = {r.id: r.name for r in [await room_store.get_room(self.db, i) for i in {m.room_id for m in found}] if r}
        for item in rendered:
            item["room_name"] = names.get(item["room_id"], "")
        return rendered

