"""A WebSocket that reconnects with ?since=<last event id> loses nothing and gets nothing twice."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from lgwan_harness import ClientFactory, Roster, ServerProcess, StaffClient


def visible_event_ids(server: ServerProcess, staff_id: int, after: int) -> list[int]:
    """What the database says this person may see after ``after``: their rooms' events and their own."""
    return [r[0] for r in server.query(
        "SELECT id FROM events WHERE id > ? AND ((staff_id IS NULL AND room_id IN"
        " (SELECT room_id FROM room_members WHERE staff_id = ?)) OR staff_id = ?"
        " OR id IN (SELECT event_id FROM event_recipients WHERE staff_id = ?)) ORDER BY id",
        (after, staff_id, staff_id, staff_id))]


async def test_reconnect_with_since_replays_exactly_once(demo_server: ServerProcess, people: Roster,
                                                         clients: ClientFactory) -> None:
    alice, bob, carol = people.take(3)
    a = await clients.staff(demo_server, alice)
    b = await clients.staff(demo_server, bob)
    c = await clients.staff(demo_server, carol)
    room = (await a.create_room("再接続テスト", [bob, carol]))["id"]
    elsewhere = (await a.create_room("carol のいない部屋", [bob]))["id"]

    ws = await c.ws()
    mine = await c.say(room, "切断前の最後の発言")
    seen = await ws.wait_for(lambda f: f.get("type") == "message.new" and f["data"]["id"] == mine["id"])
    last_seen = seen["id"]
    await ws.close()

    # While carol is away: 12 posts, an edit, a reaction, a thread reply, a pin, a room she joins,
    # and traffic in a room she is not in.
    posted = [await (a if i % 2 else b).say(room, f"不在中のお知らせ {i}") for i in range(12)]
    await a.patch(f"/api/messages/{posted[1]['id']}", json={"body": "不在中のお知らせ 1（訂正）"}, expect=200)
    await b.put(f"/api/messages/{posted[3]['id']}/reactions/ok", expect=200)
    reply = await a.say(room, "スレッドで補足します", thread_root_id=posted[0]["id"])
    await b.put(f"/api/messages/{posted[2]['id']}/pin", expect=200)
    await b.say(elsewhere, "carol には見えない")
    new_room = (await b.create_room("新設ルーム", [carol]))["id"]

    expected = visible_event_ids(demo_server, carol.id, last_seen)
    ws2 = await c.ws(since=last_seen)
    got = [f["id"] for f in ws2.replayed]
    assert got == expected                                  # every event, in order, exactly once
    assert len(set(got)) == len(got)
    assert ws2.hello is not None and ws2.hello["type"] == "hello" and ws2.hello["replayed"] == len(got)
    types = [f["type"] for f in ws2.replayed]
    assert types.count("message.new") == 12 + 1 and "message.edit" in types and "reaction.add" in types
    assert "thread.reply" in types and "pin.add" in types and "room.joined" in types
    assert all(f["room_id"] in (room, new_room, None) for f in ws2.replayed)
    assert not any(f.get("room_id") == elsewhere for f in ws2.replayed)
    new_ids = [f["data"]["id"] for f in ws2.replayed if f["type"] == "message.new" and f["room_id"] == room]
    assert new_ids == [m["id"] for m in posted] + [reply["id"]]
    edit = next(f for f in ws2.replayed if f["type"] == "message.edit")
    assert edit["data"]["body"] == "不在中のお知らせ 1（訂正）"

    # Live events continue after the replay, without a gap and without repeats.
    live = await b.say(room, "おかえりなさい")
    frame = await ws2.wait_for(lambda f: f.get("type") == "message.new" and f["data"]["id"] == live["id"])
    assert frame["id"] > got[-1]
    assert [f["id"] for f in ws2.events] == sorted({f["id"] for f in ws2.events})

    # Resuming from the same point again gives the same replay (nothing was consumed).
    ws3 = await c.ws(since=last_seen)
    assert [f["id"] for f in ws3.replayed] == visible_event_ids(demo_server, carol.id, last_seen)


async def _post_many(client: StaffClient, room: int, count: int) -> list[int]:
    ids = []
    for i in range(count):
        ids.append((await client.say(room, f"同時投稿 {i}"))["id"])
        await asyncio.sleep(0)
    return ids


async def test_events_during_the_reconnect_are_neither_lost_nor_doubled(demo_server: ServerProcess, people: Roster,
                                                                        clients: ClientFactory) -> None:
    """Posts race with the resume: each must arrive once, either in the replay or live."""
    alice, bob = people.take(2)
    a = await clients.staff(demo_server, alice)
    b = await clients.staff(demo_server, bob)
    room = (await a.create_room("競合テスト", [bob]))["id"]
    for round_no in range(3):
        since = demo_server.latest_event_id()
        await a.say(room, f"第{round_no}回 開始")
        poster = asyncio.create_task(_post_many(a, room, 8))
        ws = await b.ws(since=since)
        posted = await poster
        last = posted[-1]
        await ws.wait_for(lambda f, last=last: f.get("type") == "message.new" and f["data"]["id"] == last, timeout=10)
        received = [f["data"]["id"] for f in ws.events if f["type"] == "message.new"]
        assert received == sorted(received) and len(received) == len(set(received))
        assert set(posted) <= set(received)
        assert [f["id"] for f in ws.events] == visible_event_ids(demo_server, bob.id, since)
        await ws.close()


async def test_resync_required_when_too_far_ahead_or_behind(demo_server: ServerProcess, people: Roster,
                                                            clients: ClientFactory) -> None:
    person = people.one()
    p = await clients.staff(demo_server, person)
    ahead = await p.ws(since=demo_server.latest_event_id() + 1000)
    assert ahead.hello is not None and ahead.hello["type"] == "resync_required"
    assert ahead.hello["error"]["code"] == "resync_required"
    fresh = await p.ws()
    assert fresh.hello is not None and fresh.hello["type"] == "hello" and fresh.replayed == []
    assert fresh.hello["last_event_id"] == demo_server.latest_event_id()


async def test_client_vanishing_during_replay_is_not_a_server_error(make_server: Callable[..., ServerProcess],
                                                                    roster: Roster, clients: ClientFactory) -> None:
    """A terminal that drops off mid-replay (network cut) must not produce an unhandled error."""
    server = make_server()
    owner, victim = roster.take(2)
    o = await clients.staff(server, owner)
    v = await clients.staff(server, victim)
    since = server.latest_event_id()
    others = [p.id for p in roster.people if p.id not in (owner.id, victim.id)][:190]
    for name in ("全体連絡A", "全体連絡B", "全体連絡C"):
        room = (await o.create_room(name, [victim]))["id"]
        await o.post(f"/api/rooms/{room}/members", json={"staff_ids": others}, expect=200)
    assert len(visible_event_ids(server, victim.id, since)) > 500
    for _ in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write((f"GET /api/ws?since={since} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                      f"Origin: {server.origin}\r\nCookie: kk_session={v.token}\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").encode())
        await writer.drain()
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        await reader.read(100)
        writer.transport.abort()          # RST: the server is still writing the replay
    await asyncio.sleep(0.5)
    # The server is fine and the person can resume properly.
    ws = await v.ws(since=since)
    assert [f["id"] for f in ws.replayed] == visible_event_ids(server, victim.id, since)


async def test_one_event_for_many_recipients_reaches_only_them_live_and_on_resume(
        make_server: Callable[..., ServerProcess], clients: ClientFactory, roster: Roster) -> None:
    """一斉送信 to a department: one event row with its recipient list. Members of the department get it
    live and, when they were away, on resume; someone outside it gets it neither way."""
    server = make_server()
    admin = await clients.admin(server)
    inside, away = roster.take(2, same_department=True)
    outside = roster.one(outside=(inside,))
    here, back, other = [await clients.staff(server, p) for p in (inside, away, outside)]
    ws_here, ws_other = await here.ws(), await other.ws()
    ws_away = await back.ws()
    since = ws_away.hello["last_event_id"] if ws_away.hello else 0
    await ws_away.close()

    sent = (await admin.post("/api/broadcasts", json={"title": "避難所開設", "body": "第二体育館を開設しました。",
                                                      "department_ids": [inside.department_id]}, expect=201)).data
    live = await ws_here.wait_for(lambda f: f.get("type") == "broadcast.new")
    assert live["data"]["id"] == sent["id"]
    event_id = live["id"]
    assert server.scalar("SELECT count(*) FROM events WHERE id = ?", (event_id,)) == 1
    recipients = server.scalar("SELECT count(*) FROM event_recipients WHERE event_id = ?", (event_id,))
    assert recipients == server.scalar("SELECT count(*) FROM staff WHERE department_id = ? AND status = 'active'",
                                       (inside.department_id,))

    resumed = await back.ws(since=since)
    assert [f["id"] for f in resumed.replayed if f.get("type") == "broadcast.new"] == [event_id]
    assert [f["id"] for f in resumed.replayed] == visible_event_ids(server, away.id, since)

    await here.say((await here.create_room("確認用", [outside]))["id"], "区切り")   # something other does get
    seen = await ws_other.wait_for(lambda f: f.get("type") == "message.new")
    assert all(f.get("type") != "broadcast.new" for f in ws_other.events) and seen
    other_resume = await other.ws(since=since)
    assert event_id not in {f["id"] for f in other_resume.replayed}
