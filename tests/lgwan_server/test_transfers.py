"""人事異動: a transfer dated today moves the person between department rooms at once; messages
sent before keep the old 所属."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from lgwan_harness import JST, ClientFactory, Roster, ServerProcess, is_event, today_jst


async def test_transfer_today_moves_rooms_and_keeps_old_affiliation(make_server: Callable[..., ServerProcess],
                                                                    roster: Roster, clients: ClientFactory) -> None:
    server = make_server()
    mover, old_colleague = roster.take(2, same_department=True)
    new_colleague = roster.one(outside=(mover,))          # a 課 in another 部
    old_room = roster.department_rooms[mover.department_id]
    old_bu_room = roster.department_rooms[mover.bu_id]
    new_room = roster.department_rooms[new_colleague.department_id]
    new_bu_room = roster.department_rooms[new_colleague.bu_id]
    admin = await clients.admin(server)
    m = await clients.staff(server, mover)
    old = await clients.staff(server, old_colleague)
    new = await clients.staff(server, new_colleague)

    before = await m.say(old_room, "異動前の最後の連絡です。")
    assert before["sender"]["affiliation"] == mover.affiliation
    assert {old_room, old_bu_room} <= set(await m.rooms()) and new_room not in await m.rooms()
    ws = await m.ws()

    reply = await admin.post("/api/admin/transfers", json={"items": [
        {"staff_id": mover.id, "department_id": new_colleague.department_id, "effective_date": today_jst()}]},
        expect=200)
    assert reply.data == {"scheduled": 1, "applied": 1}

    # Live: the person's socket hears that they left the old rooms and joined the new ones.
    left = {(await ws.wait_for(is_event("room.left")))["data"]["room_id"] for _ in range(2)}
    joined = {(await ws.wait_for(is_event("room.joined")))["data"]["room"]["id"] for _ in range(2)}
    assert left == {old_room, old_bu_room} and joined == {new_room, new_bu_room}
    rooms = await m.rooms()
    assert {new_room, new_bu_room} <= set(rooms) and not {old_room, old_bu_room} & set(rooms)
    await m.get(f"/api/rooms/{old_room}/messages", expect=404, code="room_not_found")

    # The old message keeps the old 所属, for the people who can still read it.
    kept = [x for x in await old.timeline(old_room) if x["id"] == before["id"]]
    assert kept[0]["sender"]["affiliation"] == mover.affiliation and kept[0]["body"] == before["body"]
    # New messages carry the new 所属.
    after = await m.say(new_room, "本日付で着任しました。")
    new_affiliation = new_colleague.affiliation
    assert after["sender"]["affiliation"] == new_affiliation
    assert (await new.timeline(new_room))[-1]["sender"]["affiliation"] == new_affiliation
    me = await m.get("/api/auth/me", expect=200)
    assert me.data["affiliation"] == new_affiliation

    # The database: assignment history and the audit trail.
    assert server.scalar("SELECT department_id FROM staff WHERE id = ?", (mover.id,)) == new_colleague.department_id
    history = (await admin.get(f"/api/admin/staff/{mover.id}/assignments", expect=200)).data["assignments"]
    assert history[-1]["department_id"] == new_colleague.department_id and history[-1]["applied_at"]
    assert server.scalar("SELECT count(*) FROM audit_log WHERE action = 'staff.transfer' AND target_id = ?",
                         (str(mover.id),)) == 1
    assert server.scalar("SELECT sender_affiliation FROM messages WHERE id = ?", (before["id"],)) == mover.affiliation


async def test_future_transfer_waits_and_rank_only_keeps_department(make_server: Callable[..., ServerProcess],
                                                                    roster: Roster, clients: ClientFactory) -> None:
    server = make_server()
    waiting, promoted = roster.take(2)
    other = roster.one(outside=(waiting,))
    admin = await clients.admin(server)
    tomorrow = (datetime.now(JST) + timedelta(days=1)).strftime("%Y-%m-%d")
    reply = await admin.post("/api/admin/transfers", json={"items": [
        {"staff_id": waiting.id, "department_id": other.department_id, "effective_date": tomorrow}]}, expect=200)
    assert reply.data == {"scheduled": 1, "applied": 0}
    assert server.scalar("SELECT department_id FROM staff WHERE id = ?", (waiting.id,)) == waiting.department_id
    pending = server.query("SELECT effective_date, applied_at FROM staff_assignments WHERE staff_id = ?"
                           " ORDER BY id DESC LIMIT 1", (waiting.id,))
    assert pending == [(tomorrow, None)]

    # A promotion (rank only) must leave the department alone.
    rank = server.scalar("SELECT id FROM ranks WHERE code = '04'")
    await admin.post("/api/admin/transfers", json={"items": [
        {"staff_id": promoted.id, "rank_id": rank, "title": "課長", "effective_date": today_jst()}]}, expect=200)
    row = server.query("SELECT department_id, rank_id, title FROM staff WHERE id = ?", (promoted.id,))
    assert row == [(promoted.department_id, rank, "課長")]
    p = await clients.staff(server, promoted)
    assert roster.department_rooms[promoted.department_id] in await p.rooms()


async def test_transfer_refuses_unknown_people_and_departments(make_server: Callable[..., ServerProcess],
                                                               roster: Roster, clients: ClientFactory) -> None:
    server = make_server()
    person = roster.one()
    admin = await clients.admin(server)
    staff = await clients.staff(server, person)
    before = server.fingerprint()
    await admin.post("/api/admin/transfers", json={"items": [
        {"staff_id": person.id, "department_id": 987654, "effective_date": today_jst()}]}, expect=404,
        code="department_not_found")
    await admin.post("/api/admin/transfers", json={"items": [
        {"staff_id": 987654, "department_id": person.department_id, "effective_date": today_jst()}]}, expect=404,
        code="staff_not_found")
    await admin.post("/api/admin/transfers", json={"items": [
        {"staff_id": person.id, "effective_date": "2026/04/01"}]}, expect=400, code="invalid_request")
    await staff.post("/api/admin/transfers", json={"items": [
        {"staff_id": person.id, "department_id": person.department_id, "effective_date": today_jst()}]},
        expect=403, code="forbidden")
    assert server.fingerprint() == before
