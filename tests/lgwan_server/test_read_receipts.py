"""Two staff post and read: receipts name the right people, 既読 counts and unread counts agree."""

from __future__ import annotations

from lgwan_harness import ClientFactory, Roster, ServerProcess


async def test_post_read_receipts_and_unread_counts(demo_server: ServerProcess, people: Roster,
                                                    clients: ClientFactory) -> None:
    alice, bob, carol = people.take(3)
    a = await clients.staff(demo_server, alice)
    b = await clients.staff(demo_server, bob)
    c = await clients.staff(demo_server, carol)
    room = await a.create_room("既読テスト", [bob, carol])
    rid = room["id"]

    m1 = await a.say(rid, "資料を共有します。")
    m2 = await b.say(rid, f"確認します。@{alice.name}", mentions=[alice.id])
    assert (m1["seq"], m2["seq"]) == (1, 2)
    assert m1["sender"] == {"id": alice.id, "display_name": alice.name, "affiliation": alice.affiliation}

    # Nobody but the sender has read m1 yet; bob has read up to his own post (posting moves the cursor).
    receipts = (await a.get(f"/api/messages/{m1['id']}/receipts", expect=200)).data
    assert receipts["read_count"] == 1 and receipts["unread_count"] == 1
    assert [p["id"] for p in receipts["read"]] == [bob.id]
    assert [p["id"] for p in receipts["unread"]] == [carol.id]
    assert receipts["unread"][0]["display_name"] == carol.name

    # Unread counts in the sidebar: carol has 2, alice has 1 (bob's post) with one mention, bob 0.
    assert (await c.rooms())[rid]["unread"] == 2
    alice_view = (await a.rooms())[rid]
    assert (alice_view["unread"], alice_view["unread_mentions"]) == (1, 1)
    assert (await b.rooms())[rid]["unread"] == 0

    # 既読 counts in the timeline, before and after carol reads everything.
    before = {m["id"]: m["read_count"] for m in await c.timeline(rid)}
    assert before == {m1["id"]: 1, m2["id"]: 0}
    assert (await c.post(f"/api/rooms/{rid}/read", json={"seq": 2}, expect=200)).data == {"last_read_seq": 2}
    after = {m["id"]: m["read_count"] for m in await a.timeline(rid)}
    assert after == {m1["id"]: 2, m2["id"]: 1}
    receipts = (await b.get(f"/api/messages/{m1['id']}/receipts", expect=200)).data
    assert {p["id"] for p in receipts["read"]} == {bob.id, carol.id} and receipts["unread"] == []
    receipts2 = (await a.get(f"/api/messages/{m2['id']}/receipts", expect=200)).data
    assert ([p["id"] for p in receipts2["read"]], [p["id"] for p in receipts2["unread"]]) == ([carol.id], [alice.id])
    assert (await c.rooms())[rid]["unread"] == 0

    # Alice reads: her mention is no longer unread. A cursor never moves backwards.
    await a.post(f"/api/rooms/{rid}/read", json={"seq": 99}, expect=200)   # clamped to the newest message
    alice_view = (await a.rooms())[rid]
    assert (alice_view["unread"], alice_view["unread_mentions"], alice_view["last_read_seq"]) == (0, 0, 2)
    assert (await a.post(f"/api/rooms/{rid}/read", json={"seq": 1}, expect=200)).data == {"last_read_seq": 2}

    # The database agrees with what the API said.
    cursors = dict(demo_server.query("SELECT staff_id, last_read_seq FROM room_members WHERE room_id = ?", (rid,)))
    assert cursors == {alice.id: 2, bob.id: 2, carol.id: 2}


async def test_receipt_events_reach_the_sender(demo_server: ServerProcess, people: Roster,
                                               clients: ClientFactory) -> None:
    alice, bob = people.take(2)
    a = await clients.staff(demo_server, alice)
    b = await clients.staff(demo_server, bob)
    room = await a.create_room("既読通知", [bob])
    ws = await a.ws()
    msg = await a.say(room["id"], "読んだら教えてください")
    await b.post(f"/api/rooms/{room['id']}/read", json={"seq": msg["seq"]}, expect=200)
    event = await ws.wait_for(lambda f: f.get("type") == "receipt" and f["data"]["staff_id"] == bob.id)
    assert event["room_id"] == room["id"]
    assert (event["data"]["from_seq"], event["data"]["to_seq"]) == (0, msg["seq"])
