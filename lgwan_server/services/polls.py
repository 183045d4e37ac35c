"""Polls and surveys in rooms (庁内アンケート), results overall and by department."""

from __future__ import annotations

from typing import Any

from shared.textsafe import clean_line
from shared.timeutil import now_iso

from ..errors import AppError
from ..storage import org as org_store
from ..storage import polls as store
from ..storage import targets
from ..storage.database import Database
from ..storage.polls import Poll
from .actor import Actor
from .events import EventService
from .messages import card_json
from .rooms import RoomService


def poll_json(poll: Poll) -> dict[str, Any]:
    return {"id": poll.id, "room_id": poll.room_id, "created_by": poll.created_by, "question": poll.question,
            "options": list(poll.options), "multiple": poll.multiple, "anonymous": poll.anonymous,
            "closes_at": poll.closes_at, "created_at": poll.created_at}


class PollService:
    def __init__(self, db: Database, rooms: RoomService, events: EventService) -> None:
        self.db = db
        self.rooms = rooms
        self.events = events

    async def create(self, actor: Actor, room_id: int, *, question: str, options: list[str], multiple: bool,
                     anonymous: bool, closes_at: str | None) -> dict[str, Any]:
        assert actor.staff_id is not None
        await self.rooms.require_post(actor.staff_id, room_id)
        labels = [clean_line(o)[:100] for o in options]
        if len(labels) < 2 or any(not label for label in labels) or len(set(labels)) != len(labels):
            raise AppError("invalid_request", field="options")
        text = clean_line(question)[:500]
        if not text:
            raise AppError("invalid_request", field="question")
        async with self.db.transaction("poll_create") as conn:
            poll_id = await store.insert_poll(conn, room_id=room_id, created_by=actor.staff_id, question=text,
                                              options=labels, multiple=multiple, anonymous=anonymous,
                                              closes_at=closes_at, now=now_iso())
            poll = await store.get_poll(conn, poll_id)
            assert poll is not None
            await self.events.emit(conn, "poll.new", poll_json(poll), room_id=room_id)
        return poll_json(poll)

    async def _visible(self, actor: Actor, poll_id: int) -> Poll:
        assert actor.staff_id is not None
        poll = await store.get_poll(self.db, poll_id)
        if poll is None:
            raise AppError("not_found")
        try:
            await self.rooms.access_room(actor.staff_id, poll.room_id)
        except AppError as exc:
            raise AppError("not_found") from exc
        return poll

    async def vote(self, actor: Actor, staff: org_store.Staff, poll_id: int, choices: list[int]) -> None:
        poll = await self._visible(actor, poll_id)
        if poll.closes_at is not None and poll.closes_at <= now_iso():
            raise AppError("invalid_transition", reason="closed")
        picked = sorted(set(choices))
        if not picked or (len(picked) > 1 and not poll.multiple) or any(not 0 <= c < len(poll.options) for c in picked):
            raise AppError("invalid_request", field="options")
        async with self.db.transaction("poll_vote") as conn:
            await store.replace_votes(conn, poll_id, staff.id, picked, staff.department_id, now_iso())
            await self.events.emit(conn, "poll.vote", {"poll_id": poll_id, "room_id": poll.room_id}, room_id=poll.room_id)

    async def close(self, actor: Actor, poll_id: int) -> None:
        poll = await self._visible(actor, poll_id)
        if poll.created_by != actor.staff_id:
            raise AppError("forbidden")
        async with self.db.transaction("poll_close") as conn:
            await store.close_poll(conn, poll_id, now_iso())
            await self.events.emit(conn, "poll.closed", {"poll_id": poll_id, "room_id": poll.room_id},
                                   room_id=poll.room_id)

    async def results(self, actor: Actor, poll_id: int) -> dict[str, Any]:
        """Counts per option, per option by department, and (unless anonymous) who chose what."""
        poll = await self._visible(actor, poll_id)
        votes = await store.votes(self.db, poll_id)
        room = await self.rooms.access_room(actor.staff_id or 0, poll.room_id)
        names = await targets.department_names(self.db, room.room.org_id)
        counts = [0] * len(poll.options)
        by_dept: dict[str, list[int]] = {}
        voters: dict[int, list[int]] = {}
        for staff_id, option, dept in votes:
            counts[option] += 1
            by_dept.setdefault(names.get(dept or 0, "（所属なし）"), [0] * len(poll.options))[option] += 1
            voters.setdefault(option, []).append(staff_id)
        mine = sorted(o for s, o, _ in votes if s == actor.staff_id)
        out: dict[str, Any] = {"poll": poll_json(poll), "counts": counts, "voters": len({s for s, _, _ in votes}),
                               "by_department": [{"department": k, "counts": v} for k, v in sorted(by_dept.items())],
                               "my_choices": mine}
        if not poll.anonymous:
            cards = {c.id: c for c in await org_store.get_cards(self.db, sorted({s for s, _, _ in votes}))}
            out["choices"] = [{"option": o, "voters": [card_json(cards[s]) for s in ids if s in cards]}
                              for o, ids in sorted(voters.items())]
        return out

    async def in_room(self, actor: Actor, room_id: int) -> list[dict[str, Any]]:
        assert actor.staff_id is not None
        await self.rooms.access_room(actor.staff_id, room_id)
        return [poll_json(p) for p in await store.room_polls(self.db, room_id)]
