"""A crossing workload shared by the fault tests: rooms, people on both sides, posters that retry.

Room i has one LGWAN poster (staff ``s{i}``) and one relay poster (guest ``g{i}``), each posting
``f"{side}{i}-{n}"`` for n = 1…N strictly in order: the next post starts only after the previous
one was accepted (retrying, with the same client id, through any outage). So per room and side the
expected order on the other tier is exactly n = 1…N, and any loss or duplicate shows up directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .harness import ApiError, Guest, Staff, TwoTiers, query, wait_for

_BODY = re.compile(r"^([sg])(\d+)-(\d+)$")


@dataclass
class Crossing:
    tiers: TwoTiers
    rooms: list[int]
    staff: list[Staff]
    guests: list[Guest]
    sent: dict[str, int] = field(default_factory=dict)
    retries: int = 0


async def onboard(tiers: TwoTiers, rooms: int) -> Crossing:
    """Log the staff in and enrol, approve and log in one guest per room."""
    owner = Staff(tiers.lgwan_url)
    await owner.login("sato")
    room_ids = [tiers.seed.rooms[f"room{i}"] for i in range(rooms)]
    staff, guests = [], []
    for i, room_id in enumerate(room_ids):
        s = Staff(tiers.lgwan_url)
        await s.login(f"staff{i}")
        staff.append(s)
        invite = await owner.call("POST", f"/api/rooms/{room_id}/guests",
                                  {"display_name": f"ゲスト{i}", "affiliation": "架橋病院"})
        g = Guest(tiers.relay_url)

        async def enrol_ready(token: str = invite["invite_token"], guest: Guest = g) -> bool:
            try:
                await guest.call("POST", "/api/enrol/info", {"token": token})
                return True
            except ApiError:
                return False

        await wait_for(enrol_ready, what="the invitation on the relay")
        await g.enrol(invite["invite_token"], f"guest-{i}")
        gid = invite["guest"]["id"]

        async def enrolled(gid: int = gid) -> bool:
            return (await owner.call("GET", f"/api/guests/{gid}"))["status"] == "enrolled"

        await wait_for(enrolled, what="the enrolment on LGWAN")
        await owner.call("POST", f"/api/guests/{gid}/approve")
        await g.login()

        async def sees_room(guest: Guest = g, room_id: int = room_id) -> bool:
            with contextlib.suppress(ApiError):
                return any(r["id"] == room_id for r in (await guest.call("GET", "/api/rooms"))["rooms"])
            return False

        await wait_for(sees_room, what="the approved guest's room")
        guests.append(g)
    await owner.close()
    return Crossing(tiers, room_ids, staff, guests)


async def _post_until_accepted(crossing: Crossing, client: Staff | Guest, room_id: int, text: str,
                               client_id: str) -> None:
    while True:
        try:
            if isinstance(client, Guest):
                await client.post(room_id, text, client_id)
            else:
                await client.post(room_id, text, client_id)
            return
        except (TimeoutError, aiohttp.ClientError, ConnectionError, ApiError) as exc:
            if isinstance(exc, ApiError) and exc.status < 500 and exc.code not in ("internal_error", "not_authenticated"):
                raise
            crossing.retries += 1
            await asyncio.sleep(0.05)


async def run_posters(crossing: Crossing, per_poster: int) -> None:
    """Every poster posts ``per_poster`` messages in its room, in order, retrying through outages."""

    async def poster(side: str, i: int, client: Staff | Guest) -> None:
        room_id = crossing.rooms[i]
        for n in range(1, per_poster + 1):
            await _post_until_accepted(crossing, client, room_id, f"{side}{i}-{n}", f"{side}{i}n{n}")
            crossing.sent[f"{side}{i}"] = n

    await asyncio.gather(*(poster("s", i, c) for i, c in enumerate(crossing.staff)),
                         *(poster("g", i, c) for i, c in enumerate(crossing.guests)))


async def drained(crossing: Crossing) -> bool:
    """Both outboxes empty and both sides applied everything the other sent."""
    t = crossing.tiers
    lgwan = query(t.lgwan_db, "SELECT out_last_seq, out_acked_seq, in_applied_seq FROM bridge_state")[0]
    relay = query(t.relay_db, "SELECT out_last_seq, out_acked_seq, in_applied_seq FROM link_state")[0]
    return lgwan[0] == relay[2] and relay[0] == lgwan[2] and not query(t.relay_db, "SELECT 1 FROM pending LIMIT 1")


def tally(crossing: Crossing, per_poster: int) -> dict[str, Any]:
    """Per direction: delivered (exactly once, in order), duplicated, lost, out of order."""
    t = crossing.tiers
    report: dict[str, Any] = {}
    sides = {
        "relay_to_lgwan": ("g", [(r[0], r[1]) for r in query(
            t.lgwan_db, "SELECT room_id, body FROM messages WHERE body LIKE 'g%' ORDER BY room_id, seq")]),
        "lgwan_to_relay": ("s", [(r[0], r[1]) for r in query(
            t.relay_db, "SELECT room_id, body FROM messages WHERE body LIKE 's%' ORDER BY room_id, seq")]),
    }
    for direction, (side, rows) in sides.items():
        delivered = duplicated = lost = out_of_order = 0
        for i, room_id in enumerate(crossing.rooms):
            seen = []
            for rid, body in rows:
                match = _BODY.match(body)
                if rid == room_id and match and match.group(1) == side and int(match.group(2)) == i:
                    seen.append(int(match.group(3)))
            unique = set(seen)
            duplicated += len(seen) - len(unique)
            lost += len(set(range(1, per_poster + 1)) - unique)
            delivered += len(unique & set(range(1, per_poster + 1)))
            out_of_order += sum(1 for a, b in zip(seen, seen[1:], strict=False) if b <= a)
        report[direction] = {"sent": per_poster * len(crossing.rooms), "delivered": delivered,
                             "duplicated": duplicated, "lost": lost, "out_of_order": out_of_order}
    report["relay_replays_audited"] = query(t.relay_db, "SELECT count(*) FROM audit WHERE action = 'queue.replay'")[0][0]
    report["lgwan_replays_audited"] = query(t.lgwan_db, "SELECT count(*) FROM audit_log WHERE action = 'bridge.replay'")[0][0]
    report["relay_rejections"] = query(t.relay_db,
                                       "SELECT count(*) FROM audit WHERE action = 'queue.envelope_rejected'")[0][0]
    report["lgwan_rejections"] = query(t.lgwan_db,
                                       "SELECT count(*) FROM audit_log WHERE action = 'bridge.envelope_rejected'")[0][0]
    report["duplicate_origin_absorbed"] = query(
        t.lgwan_db, "SELECT count(*) FROM bridge_inbox WHERE outcome = 'refused:duplicate_origin'")[0][0]
    report["client_retries"] = crossing.retries
    return report


async def close(crossing: Crossing) -> None:
    for client in [*crossing.staff, *crossing.guests]:
        await client.close()
