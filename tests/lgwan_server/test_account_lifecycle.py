"""Retirement and suspension cut a person off at once, live WebSockets included; their messages stay."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from lgwan_harness import ClientFactory, Roster, ServerProcess, is_event


@pytest.mark.parametrize("status", ["retired", "suspended"])
async def test_cut_off_immediately(make_server: Callable[..., ServerProcess], roster: Roster,
                                   clients: ClientFactory, status: str) -> None:
    server = make_server()
    victim, colleague = roster.take(2, same_department=True)
    admin = await clients.admin(server)
    v = await clients.staff(server, victim)
    v_phone = await clients.staff(server, victim)          # a second session (another terminal)
    c = await clients.staff(server, colleague)
    room = (await c.create_room("係内連絡", [victim]))["id"]
    said = await v.say(room, "引き継ぎ資料はフォルダにあります。")
    old_cookie, old_csrf = v.token, v.csrf
    sockets = [await v.ws(), await v_phone.ws()]
    c_ws = await c.ws()

    started = time.monotonic()
    await admin.put(f"/api/admin/staff/{victim.id}/status", json={"status": status, "reason": "テスト"}, expect=200)
    for ws in sockets:
        assert await ws.wait_closed(timeout=3) == 4001
    assert time.monotonic() - started < 3.0      # "within a couple of seconds", on a busy 2-core CI box

    # The old cookie is dead for every request, and the person cannot log back in.
    await v.get("/api/auth/me", expect=401, code="not_authenticated")
    await v_phone.get("/api/rooms", expect=401, code="not_authenticated")
    await v.post(f"/api/rooms/{room}/messages", json={"body": "まだ書ける？"}, expect=401)
    relogin = clients.new(server, victim)
    await relogin.login(expect=403)
    assert (await relogin.login(expect=403)).code == "account_disabled"
    stale = clients.new(server)
    stale.use_token(old_cookie or "", old_csrf)
    with pytest.raises(Exception) as refused:    # the WebSocket handshake is refused too
        await stale.ws()
    assert "401" in str(refused.value)

    # Messages they wrote are still there for the others, with their name and 所属.
    timeline = await c.timeline(room)
    assert [(m["id"], m["body"], m["sender"]["display_name"], m["sender"]["affiliation"]) for m in timeline] == \
        [(said["id"], said["body"], victim.name, victim.affiliation)]
    await c.post(f"/api/rooms/{room}/read", json={"seq": said["seq"]}, expect=200)
    receipts = (await c.get(f"/api/messages/{said['id']}/receipts", expect=200)).data
    assert [p["id"] for p in receipts["read"]] == [colleague.id]
    # The 既読 count in the timeline agrees with the receipts.
    assert [m["read_count"] for m in await c.timeline(room)] == [receipts["read_count"]]

    # The database: no sessions left, status recorded, audited.
    assert server.scalar("SELECT count(*) FROM sessions WHERE staff_id = ?", (victim.id,)) == 0
    assert server.scalar("SELECT status FROM staff WHERE id = ?", (victim.id,)) == status
    audited = server.query("SELECT action, actor_login, detail FROM audit_log WHERE action LIKE 'staff.%'"
                           " AND target_id = ?", (str(victim.id),))
    assert [(a, who) for a, who, _ in audited] == [(f"staff.{status}", "admin")]
    assert '"sessions_ended":2' in audited[0][2] and '"reason":"テスト"' in audited[0][2]
    members = {r[0] for r in server.query("SELECT staff_id FROM room_members WHERE room_id = ?", (room,))}
    if status == "retired":
        # Retired staff leave every room (receipts stop counting them); suspended staff keep project rooms.
        assert members == {colleague.id}
        assert server.scalar("SELECT count(*) FROM room_members WHERE staff_id = ?", (victim.id,)) == 0
    else:
        assert members == {colleague.id, victim.id}
    # The colleague's live socket keeps working.
    later = await c.say(room, "了解しました")
    await c_ws.wait_for(lambda f: f.get("type") == "message.new" and f["data"]["id"] == later["id"])


async def test_suspended_can_be_reactivated_but_retired_cannot(make_server: Callable[..., ServerProcess],
                                                               roster: Roster, clients: ClientFactory) -> None:
    server = make_server()
    sus, ret = roster.take(2)
    admin = await clients.admin(server)
    await admin.put(f"/api/admin/staff/{sus.id}/status", json={"status": "suspended"}, expect=200)
    await admin.put(f"/api/admin/staff/{ret.id}/status", json={"status": "retired"}, expect=200)
    await clients.new(server, sus).login(expect=403)
    await admin.put(f"/api/admin/staff/{sus.id}/status", json={"status": "active"}, expect=200)
    back = await clients.staff(server, sus)
    # Back in the department room that suspension took them out of.
    assert roster.department_rooms[sus.department_id] in await back.rooms()
    await admin.put(f"/api/admin/staff/{ret.id}/status", json={"status": "active"}, expect=409,
                    code="invalid_transition")
    # An admin cannot lock themselves out.
    await admin.put("/api/admin/staff/1/status", json={"status": "suspended"}, expect=409, code="invalid_transition")


async def test_admin_ends_sessions_closes_sockets(make_server: Callable[..., ServerProcess], roster: Roster,
                                                  clients: ClientFactory) -> None:
    server = make_server()
    person = roster.one()
    admin = await clients.admin(server)
    p = await clients.staff(server, person)
    ws = await p.ws()
    assert (await admin.delete(f"/api/admin/staff/{person.id}/sessions", expect=200)).data == {"ended": 1}
    # The personal session.ended event may or may not beat the close frame; the close code is what counts.
    assert await ws.wait_closed(timeout=3) == 4001
    assert [f for f in ws.events if not is_event("session.ended")(f)] == []
    await p.get("/api/rooms", expect=401)
    # Logging in again works (the account is fine).
    await clients.staff(server, person)
