"""Every room of one organisation, for the admin room-crossing-policy screen.

Names, kinds, policies and member counts only: no topic, no message content, no DMs (a DM's
name is its members' names, and a DM has no policy an admin should set by hand).
"""

from __future__ import annotations

from dataclasses import dataclass

from .database import Source, fetchall


@dataclass(frozen=True)
class AdminRoom:
    id: int
    kind: str
    name: str
    crossing_policy: str
    archived: bool
    member_count: int


async def org_rooms(db: Source, org_id: int, limit: int, offset: int) -> list[AdminRoom]:
    rows = await fetchall(
        db, "SELECT r.id, r.kind, r.name, r.crossing_policy, r.archived,"
            " (SELECT count(*) FROM room_members m WHERE m.room_id = r.id)"
            " FROM rooms r WHERE r.org_id = ? AND r.kind != 'dm'"
            " ORDER BY CASE r.kind WHEN 'department' THEN 0 WHEN 'rank' THEN 1 WHEN 'project' THEN 2 ELSE 3 END,"
            " r.name, r.id LIMIT ? OFFSET ?", (org_id, limit, offset))
    return [AdminRoom(int(r[0]), r[1], r[2], r[3], bool(r[4]), int(r[5])) for r in rows]
