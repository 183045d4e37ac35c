"""Rooms: creation, membership, cross-organisation approval, generated 部署/職層 rooms.

``access_room`` is the only way handlers get a room for a member. It answers
``room_not_found`` both for a missing room and for one the caller may not see, so ids cannot be
probed.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared import limits
from shared.sqlite import Writer
from shared.textsafe import clean_line, clean_text
from shared.timeutil import now_iso

from ..errors import AppError
from ..hub import Hub
from ..storage import guests as guest_store
from ..storage import org as org_store
from ..storage import rooms as store
from ..storage.database import Database, Source, fetchall
from ..storage.rooms import Membership, Room
from .actor import Actor
from .audit import AuditService
from .events import EventService

CROSSING_POLICIES = ("lgwan_only", "staff_mobile", "guests")
CREATABLE_KINDS = ("project", "announcement")
MEMBER_ROLES = ("owner", "member", "readonly")


@dataclass(frozen=True)
class RoomAccess:
    room: Room
    membership: Membership

    @property
    def can_post(self) -> bool:
        if self.membership.role == "readonly" or self.room.archived:
            return False
        return self.room.kind != "announcement" or self.membership.role == "owner"

    @property
    def is_owner(self) -> bool:
        return self.membership.role == "owner"


def room_json(room: Room) -> dict[str, object]:
    return {"id": room.id, "org_id": room.org_id, "kind": room.kind, "name": room.name, "topic": room.topic,
            "department_id": room.department_id, "rank_id": room.rank_id,
            "crossing_policy": room.crossing_policy, "last_seq": room.last_seq, "archived": room.archived}


class RoomService:
    def __init__(self, db: Database, hub: Hub, events: EventService, audit: AuditService) -> None:
        self.db = db
        self.hub = hub
        self.events = events
        self.audit = audit

    # --- the authorization chokepoint -----------------------------------------------------------

    async def access_room(self, staff_id: int, room_id: int, src: Source | None = None) -> RoomAccess:
        """The room and the caller's membership, or ``room_not_found`` (missing or not a member).

        ``src``: the writer, to check again inside a write transaction (what committed while it
        waited for the lock counts); by default the inline reader (point lookups)."""
        src = src or self.db.inline
        room = await store.get_room(src, room_id)
        if room is None:
            raise AppError("room_not_found")
        membership = await store.get_membership(src, room_id, staff_id)
        if membership is None:
            raise AppError("room_not_found")
        return RoomAccess(room, membership)

    async def require_post(self, staff_id: int, room_id: int, src: Source | None = None) -> RoomAccess:
        access = await self.access_room(staff_id, room_id, src)
        if access.room.archived:
            raise AppError("room_archived")
        if access.membership.role == "readonly":
            raise AppError("read_only_member")
        if access.room.kind == "announcement" and access.membership.role != "owner":
            raise AppError("announcement_owner_only")
        return access

    async def require_owner(self, staff_id: int, room_id: int) -> RoomAccess:
        access = await self.access_room(staff_id, room_id)
        if not access.is_owner:
            raise AppError("forbidden")
        return access

    # --- creation ------------------------------------------------------------------------------

    async def create_room(self, actor: Actor, *, kind: str, name: str, topic: str, member_ids: list[int],
                          crossing_policy: str) -> Room:
        assert actor.staff_id is not None and actor.org_id is not None
        if kind not in CREATABLE_KINDS:
            raise AppError("invalid_request", field="kind")
        if crossing_policy != "lgwan_only" and not actor.is_org_admin:
            raise AppError("forbidden", reason="crossing_policy_requires_admin")
        name = clean_line(name)[: limits.MAX_ROOM_NAME_CHARS]
        if not name:
            raise AppError("invalid_request", field="name")
        members = sorted(set(member_ids) - {actor.staff_id})
        if len(members) > limits.MAX_ROOM_MEMBERS_PER_REQUEST:
            raise AppError("too_many_members")
        now = now_iso()
        async with self.db.transaction("create_room") as conn:
            room_id = await store.insert_room(conn, org_id=actor.org_id, kind=kind, name=name,
                                              topic=clean_text(topic)[: limits.MAX_ROOM_TOPIC_CHARS],
                                              department_id=None, rank_id=None, dm_key=None,
                                              crossing_policy=crossing_policy, created_by=actor.staff_id, now=now)
            room = await store.get_room(conn, room_id)
            assert room is not None
            await self._add(conn, room, actor.staff_id, "owner", auto=False)
            for staff_id in members:
                await self._check_can_join(conn, room, staff_id)
                await self._add(conn, room, staff_id, "member", auto=False)
            await self.audit.record(conn, actor, "room.create", target_type="room", target_id=room_id,
                                    detail={"kind": kind, "members": len(members) + 1, "crossing_policy": crossing_policy})
        return room

    async def open_dm(self, actor: Actor, member_ids: list[int]) -> Room:
        """The DM between the caller and ``member_ids`` (1:1 or a small group), created once."""
        assert actor.staff_id is not None and actor.org_id is not None
        everyone = sorted(set(member_ids) | {actor.staff_id})
        if len(everyone) < 2:
            raise AppError("invalid_request", field="member_ids")
        if len(everyone) > limits.MAX_DM_MEMBERS:
            raise AppError("too_many_members")
        cards = await org_store.get_cards(self.db, everyone)
        if len(cards) != len(everyone) or any(c.status != "active" for c in cards):
            raise AppError("staff_not_found")
        if any(s.role == "guest" for s in await org_store.get_staff_many(self.db, everyone)):
            raise AppError("staff_not_found")   # guests talk only in rooms shared with guests (issue 5)
        if any(c.org_id != actor.org_id for c in cards):
            raise AppError("org_not_allowed")   # cross-organisation talk goes through approved shared rooms
        dm_key = ",".join(map(str, everyone))
        async with self.db.transaction("open_dm") as conn:
            existing = await store.get_room_by_dm_key(conn, dm_key)
            if existing is not None:
                return existing
            name = "、".join(c.display_name for c in sorted(cards, key=lambda c: c.id))[: limits.MAX_ROOM_NAME_CHARS]
            room_id = await store.insert_room(conn, org_id=actor.org_id, kind="dm", name=name, topic="",
                                              department_id=None, rank_id=None, dm_key=dm_key,
                                              crossing_policy="lgwan_only", created_by=actor.staff_id, now=now_iso())
            room = await store.get_room(conn, room_id)
            assert room is not None
            for staff_id in everyone:
                await self._add(conn, room, staff_id, "member", auto=False)
        return room

    # --- settings ------------------------------------------------------------------------------

    async def update_room(self, actor: Actor, room_id: int, *, name: str | None, topic: str | None,
                          crossing_policy: str | None, archived: bool | None) -> Room:
        assert actor.staff_id is not None
        if crossing_policy is not None:
            # The crossing policy decides what may leave LGWAN: an organisation admin's decision.
            room = await store.get_room(self.db.inline, room_id)
            if room is None or not actor.is_org_admin or room.org_id != actor.org_id:
                raise AppError("room_not_found") if room is None else AppError("forbidden")
            if room.kind == "dm":
                raise AppError("invalid_request", field="crossing_policy")
        else:
            room = (await self.require_owner(actor.staff_id, room_id)).room
        if name is not None:
            name = clean_line(name)[: limits.MAX_ROOM_NAME_CHARS]
            if not name:
                raise AppError("invalid_request", field="name")
        async with self.db.transaction("update_room") as conn:
            await store.update_room(conn, room_id, name=name,
                                    topic=None if topic is None else clean_text(topic)[: limits.MAX_ROOM_TOPIC_CHARS],
                                    crossing_policy=crossing_policy, archived=archived)
            updated = await store.get_room(conn, room_id)
            assert updated is not None
            if crossing_policy is not None and crossing_policy != "guests":
                # Narrowing the policy takes the guests out of the room (issue 5).
                for guest_id in await guest_store.guest_member_ids(conn, room_id):
                    await self._remove(conn, updated, guest_id)
            await self.events.emit(conn, "room.update", room_json(updated), room_id=room_id)
            await self.audit.record(conn, actor, "room.update", target_type="room", target_id=room_id,
                                    detail={k: v for k, v in (("name", name is not None), ("topic", topic is not None),
                                            ("crossing_policy", crossing_policy), ("archived", archived))
                                            if v not in (None, False)})
        return updated

    # --- membership ----------------------------------------------------------------------------

    async def add_members(self, actor: Actor, room_id: int, staff_ids: list[int], role: str) -> int:
        assert actor.staff_id is not None
        access = await self.require_owner(actor.staff_id, room_id)
        if access.room.kind in ("department", "rank", "dm"):
            raise AppError("managed_membership")
        if role not in MEMBER_ROLES:
            raise AppError("invalid_request", field="role")
        if len(staff_ids) > limits.MAX_ROOM_MEMBERS_PER_REQUEST:
            raise AppError("too_many_members")
        added = 0
        async with self.db.transaction("add_members") as conn:
            for staff_id in sorted(set(staff_ids)):
                await self._check_can_join(conn, access.room, staff_id)
                added += await self._add(conn, access.room, staff_id, role, auto=False)
            await self.audit.record(conn, actor, "room.members_add", target_type="room", target_id=room_id,
                                    detail={"staff_ids": sorted(set(staff_ids))[:50], "role": role, "added": added})
        return added

    async def remove_member(self, actor: Actor, room_id: int, staff_id: int) -> None:
        """An owner removes someone, or a member leaves (staff_id == actor)."""
        assert actor.staff_id is not None
        access = await self.access_room(actor.staff_id, room_id)
        if staff_id != actor.staff_id and not access.is_owner:
            raise AppError("forbidden")
        if access.room.kind in ("department", "rank"):
            raise AppError("managed_membership")
        async with self.db.transaction("remove_member") as conn:
            target = await store.get_membership(conn, room_id, staff_id)
            if target is None:
                raise AppError("not_member")
            if target.role == "owner" and await store.count_owners(conn, room_id) <= 1:
                raise AppError("last_owner")
            await self._remove(conn, access.room, staff_id)
            await self.audit.record(conn, actor, "room.member_remove", target_type="room", target_id=room_id,
                                    detail={"staff_id": staff_id})

    async def set_member_role(self, actor: Actor, room_id: int, staff_id: int, role: str) -> None:
        assert actor.staff_id is not None
        await self.require_owner(actor.staff_id, room_id)
        if role not in MEMBER_ROLES:
            raise AppError("invalid_request", field="role")
        async with self.db.transaction("set_member_role") as conn:
            target = await store.get_membership(conn, room_id, staff_id)
            if target is None:
                raise AppError("not_member")
            if target.role == "owner" and role != "owner" and await store.count_owners(conn, room_id) <= 1:
                raise AppError("last_owner")
            await store.update_member_role(conn, room_id, staff_id, role)
            await self.events.emit(conn, "member.role", {"room_id": room_id, "staff_id": staff_id, "role": role},
                                   room_id=room_id)
            await self.audit.record(conn, actor, "room.member_role", target_type="room", target_id=room_id,
                                    detail={"staff_id": staff_id, "role": role})

    async def approve_org(self, actor: Actor, room_id: int) -> None:
        """An organisation admin lets their staff be added to another organisation's room."""
        if not actor.is_org_admin or actor.org_id is None or actor.staff_id is None:
            raise AppError("forbidden")
        room = await store.get_room(self.db.inline, room_id)
        if room is None or room.kind in ("dm", "department", "rank"):
            raise AppError("room_not_found")
        async with self.db.transaction("approve_org") as conn:
            await store.approve_org(conn, room_id, actor.org_id, actor.staff_id, now_iso())
            await self.audit.record(conn, actor, "room.org_approve", target_type="room", target_id=room_id,
                                    detail={"org_id": actor.org_id})

    async def _check_can_join(self, conn: Writer, room: Room, staff_id: int) -> None:
        staff = await org_store.get_staff(conn, staff_id)
        if staff is None or staff.status != "active":
            raise AppError("staff_not_found", staff_id=staff_id)
        # Guests (issue 5) are only ever in rooms shared with guests — never staff-only rooms.
        if staff.role == "guest" and room.crossing_policy != "guests":
            raise AppError("guest_room_required")
        if staff.org_id != room.org_id and staff.org_id not in await store.approved_org_ids(conn, room.id):
            raise AppError("org_not_allowed", staff_id=staff_id)

    async def add_member_in_transaction(self, conn: Writer, room: Room, staff_id: int,
                                        role: str = "member") -> int:
        """Check and add one member inside the caller's transaction (guest invitations, issue 5)."""
        await self._check_can_join(conn, room, staff_id)
        return await self._add(conn, room, staff_id, role, auto=False)

    async def _add(self, conn: Writer, room: Room, staff_id: int, role: str, *, auto: bool) -> int:
        # New members start caught up (cursor at the newest message), so joining a department
        # room with years of history does not show thousands of unread messages.
        last_seq = (await store.get_room(conn, room.id) or room).last_seq
        if not await store.insert_member(conn, room.id, staff_id, role, auto, last_seq, now_iso()):
            return 0
        self.db.after_commit(lambda: self.hub.member_added(room.id, staff_id))
        await self.events.emit(conn, "member.join", {"room_id": room.id, "staff_id": staff_id, "role": role},
                               room_id=room.id)
        await self.events.emit(conn, "room.joined", {"room": room_json(room), "role": role}, staff_id=staff_id)
        return 1

    async def _remove(self, conn: Writer, room: Room, staff_id: int) -> None:
        if not await store.delete_member(conn, room.id, staff_id):
            return
        await self.events.emit(conn, "member.leave", {"room_id": room.id, "staff_id": staff_id}, room_id=room.id)
        await self.events.emit(conn, "room.left", {"room_id": room.id}, staff_id=staff_id)
        self.db.after_commit(lambda: self.hub.member_removed(room.id, staff_id))

    # --- generated rooms (縦: departments, 横: ranks) ---------------------------------------------

    async def sync_generated_rooms(self, conn: Writer, org_id: int) -> dict[str, int]:
        """Make department and rank rooms match the organisation, inside the caller's transaction.

        A department room holds the active staff of the department and all its sub-departments.
        Only auto memberships are touched; people added by hand stay.
        """
        now = now_iso()
        stats = {"rooms_created": 0, "members_added": 0, "members_removed": 0}
        targets: list[tuple[str, int | None, int | None, str, list[int]]] = []
        for row in await fetchall(conn, "SELECT id, name FROM departments WHERE org_id = ? AND active = 1", (org_id,)):
            dept_ids = await org_store.descendant_department_ids(conn, row[0])
            members = await org_store.active_staff_ids_in_departments(conn, dept_ids)
            targets.append(("department", row[0], None, row[1], members))
        for row in await fetchall(conn, "SELECT id, name FROM ranks WHERE org_id = ?", (org_id,)):
            targets.append(("rank", None, row[0], row[1], await org_store.active_staff_ids_with_rank(conn, row[0])))
        for kind, dept_id, rank_id, name, wanted in targets:
            room = await store.get_generated_room(conn, org_id, kind, dept_id, rank_id)
            if room is None:
                room_id = await store.insert_room(conn, org_id=org_id, kind=kind, name=name, topic="",
                                                  department_id=dept_id, rank_id=rank_id, dm_key=None,
                                                  crossing_policy="lgwan_only", created_by=None, now=now)
                room = await store.get_room(conn, room_id)
                assert room is not None
                stats["rooms_created"] += 1
            elif room.name != name:
                await store.update_room(conn, room.id, name=name)
            current = set(await store.list_auto_member_ids(conn, room.id))
            wanted_set = set(wanted)
            for staff_id in sorted(wanted_set - current):
                if await store.get_membership(conn, room.id, staff_id) is None:
                    stats["members_added"] += await self._add(conn, room, staff_id, "member", auto=True)
            for staff_id in sorted(current - wanted_set):
                await self._remove(conn, room, staff_id)
                stats["members_removed"] += 1
        return stats

    async def remove_from_all_rooms(self, conn: Writer, staff_id: int) -> int:
        room_ids = await store.room_ids_of_staff(conn, staff_id)
        for room_id in room_ids:
            room = await store.get_room(conn, room_id)
            assert room is not None
            await self._remove(conn, room, staff_id)
        return len(room_ids)

    async def load_membership_index(self) -> None:
        rows = await fetchall(self.db, "SELECT room_id, staff_id FROM room_members")
        self.hub.load_members([(r[0], r[1]) for r in rows])
