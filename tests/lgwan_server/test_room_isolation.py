"""A member of another department cannot read, search or receive events of a room they are not in."""

from __future__ import annotations

import asyncio
import io

import aiohttp
from lgwan_harness import ClientFactory, Roster, ServerProcess, is_event


async def test_outsider_cannot_read_search_or_listen(demo_server: ServerProcess, people: Roster,
                                                     clients: ClientFactory) -> None:
    alice, bob = people.take(2, same_department=True)
    eve = people.one(outside=(alice, bob))            # another 部 altogether
    a = await clients.staff(demo_server, alice)
    b = await clients.staff(demo_server, bob)
    e = await clients.staff(demo_server, eve)
    secret_room = (await a.create_room("人事案件（内密）", [bob]))["id"]
    dept_room = people.department_rooms[alice.department_id]
    shared_room = (await a.create_room("連絡用", [eve]))["id"]     # eve is in this one, for a sentinel

    b_ws = await b.ws()
    e_ws = await e.ws()
    token = "ひみつのキーワード"
    secret = await a.say(secret_room, f"{token}について相談です")
    dept_msg = await a.say(dept_room, f"課内連絡：{token}")
    sentinel = await a.say(shared_room, "これは eve も読めます")

    # The member's socket gets the event; the outsider's socket gets the sentinel and nothing before it.
    got = await b_ws.wait_for(is_event("message.new", secret_room))
    assert got["data"]["id"] == secret["id"]
    await e_ws.wait_for(lambda f: f.get("type") == "message.new" and f["data"]["id"] == sentinel["id"])
    leaked = [f for f in e_ws.frames if f.get("room_id") in (secret_room, dept_room)
              or token in str(f.get("data", ""))]
    assert leaked == []

    # Reading: the same 404 as for a room that does not exist, so ids cannot be probed.
    for room_id in (secret_room, dept_room):
        for path in (f"/api/rooms/{room_id}", f"/api/rooms/{room_id}/messages", f"/api/rooms/{room_id}/members",
                     f"/api/rooms/{room_id}/pins"):
            await e.get(path, expect=404, code="room_not_found")
        await e.post(f"/api/rooms/{room_id}/messages", json={"body": "割り込み"}, expect=404, code="room_not_found")
        await e.post(f"/api/rooms/{room_id}/read", json={"seq": 1}, expect=404, code="room_not_found")
        await e.get("/api/search", params={"q": token, "room_id": str(room_id)}, expect=404, code="room_not_found")
    await e.get("/api/rooms/987654321", expect=404, code="room_not_found")
    for msg in (secret, dept_msg):
        for suffix in ("", "/receipts", "/thread", "/history"):
            await e.get(f"/api/messages/{msg['id']}{suffix}", expect=404, code="message_not_found")
        await e.put(f"/api/messages/{msg['id']}/reactions/like", expect=404, code="message_not_found")
        await e.patch(f"/api/messages/{msg['id']}", json={"body": "改ざん"}, expect=404, code="message_not_found")
        await e.delete(f"/api/messages/{msg['id']}", expect=404, code="message_not_found")
        await e.put(f"/api/messages/{msg['id']}/pin", expect=404, code="message_not_found")
    assert secret_room not in await e.rooms() and dept_room not in await e.rooms()

    # Search: 3+ characters (FTS) and 2 characters (LIKE) find nothing of those rooms for eve…
    for q in (token, "ひみ", "課内連絡"):
        results = (await e.get("/api/search", params={"q": q}, expect=200)).data["results"]
        assert [r for r in results if r["room_id"] in (secret_room, dept_room)] == []
    # …while the members find them.
    found = (await b.get("/api/search", params={"q": token}, expect=200)).data["results"]
    assert {r["id"] for r in found} >= {secret["id"], dept_msg["id"]}

    # Nothing eve did touched the rooms.
    assert demo_server.scalar("SELECT count(*) FROM messages WHERE room_id = ?", (secret_room,)) == 1
    assert demo_server.scalar("SELECT count(*) FROM reactions WHERE message_id = ?", (secret["id"],)) == 0


async def test_resume_does_not_replay_foreign_rooms(demo_server: ServerProcess, people: Roster,
                                                    clients: ClientFactory) -> None:
    alice, bob = people.take(2, same_department=True)
    eve = people.one(outside=(alice, bob))
    a = await clients.staff(demo_server, alice)
    e = await clients.staff(demo_server, eve)
    secret_room = (await a.create_room("非公開", [bob]))["id"]
    shared_room = (await a.create_room("共有", [eve]))["id"]
    since = demo_server.latest_event_id()
    await a.say(secret_room, "非公開の話")
    visible = await a.say(shared_room, "共有の話")
    ws = await e.ws(since=since)
    assert [f["room_id"] for f in ws.replayed] == [shared_room]
    assert ws.replayed[0]["data"]["id"] == visible["id"]


async def test_outsider_cannot_download_a_file(demo_server: ServerProcess, people: Roster,
                                               clients: ClientFactory) -> None:
    alice, bob = people.take(2, same_department=True)
    eve = people.one(outside=(alice, bob))
    a = await clients.staff(demo_server, alice)
    e = await clients.staff(demo_server, eve)
    room = (await a.create_room("資料室", [bob]))["id"]
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO("予算案の内容\n".encode()), filename="予算案.txt", content_type="text/plain")
    uploaded = (await a.post(f"/api/rooms/{room}/files", data=form, expect=201)).data
    attachment = uploaded["attachments"][0]["id"]
    before = demo_server.scalar("SELECT count(*) FROM audit_log WHERE action = 'file.download'")
    await e.get(f"/api/files/{attachment}", expect=404, code="file_not_found")
    await e.get("/api/files/99999999", expect=404, code="file_not_found")
    # A refused download is not a download.
    assert demo_server.scalar("SELECT count(*) FROM audit_log WHERE action = 'file.download'") == before


async def test_dm_is_private_to_its_members(demo_server: ServerProcess, people: Roster,
                                           clients: ClientFactory) -> None:
    alice, bob, carol = people.take(3, same_department=True)     # even a colleague of the same 課
    a = await clients.staff(demo_server, alice)
    b = await clients.staff(demo_server, bob)
    c = await clients.staff(demo_server, carol)
    room = (await a.post("/api/dms", json={"member_ids": [bob.id]}, expect=200)).data["id"]
    assert (await b.post("/api/dms", json={"member_ids": [alice.id]}, expect=200)).data["id"] == room   # one DM
    msg = await a.say(room, "二人だけの話")
    await c.get(f"/api/rooms/{room}/messages", expect=404, code="room_not_found")
    await c.get(f"/api/messages/{msg['id']}", expect=404, code="message_not_found")
    await c.post(f"/api/rooms/{room}/members", json={"staff_ids": [carol.id]}, expect=404, code="room_not_found")
    await a.post(f"/api/rooms/{room}/members", json={"staff_ids": [carol.id]}, expect=403, code="forbidden")
    assert [m["body"] for m in await b.timeline(room)] == ["二人だけの話"]


async def test_removed_member_loses_access_and_events(demo_server: ServerProcess, people: Roster,
                                                      clients: ClientFactory) -> None:
    alice, bob, carol = people.take(3)
    a = await clients.staff(demo_server, alice)
    c = await clients.staff(demo_server, carol)
    room = (await a.create_room("一時メンバー", [bob, carol]))["id"]
    c_ws = await c.ws()
    await a.delete(f"/api/rooms/{room}/members/{carol.id}", expect=200)
    await c_ws.wait_for(lambda f: f.get("type") == "room.left" and f["data"]["room_id"] == room)
    await a.say(room, "退出後の発言")
    sentinel_room = (await a.create_room("別件", [carol]))["id"]
    await c_ws.wait_for(is_event("room.joined"))
    sentinel = await a.say(sentinel_room, "こちらは見えます")
    await c_ws.wait_for(lambda f: f.get("type") == "message.new" and f["data"]["id"] == sentinel["id"])
    assert [f for f in c_ws.frames if f.get("type") == "message.new" and f.get("room_id") == room] == []
    await c.get(f"/api/rooms/{room}/messages", expect=404, code="room_not_found")


async def test_a_removal_committed_while_a_post_waits_for_the_writer_wins(demo_server: ServerProcess, people: Roster,
                                                                          clients: ClientFactory) -> None:
    """The post checks access again inside its write transaction: a member removed while their post
    waited for the write lock cannot post (the first check ran on what was committed before)."""
    alice, bob = people.take(2, same_department=True)
    a = await clients.staff(demo_server, alice)
    b = await clients.staff(demo_server, bob)
    room = (await a.create_room("順番の確認", [bob]))["id"]
    await b.say(room, "まだメンバーです")
    with demo_server.db_rw() as other:             # another writer holds the file (an admin tool, say)
        other.execute("BEGIN IMMEDIATE")
        post = asyncio.create_task(b.post(f"/api/rooms/{room}/messages", json={"body": "間に合う？"}))
        await asyncio.sleep(0.5)                    # first check passed; the post waits for the lock
        assert not post.done()
        other.execute("DELETE FROM room_members WHERE room_id = ? AND staff_id = ?", (room, bob.id))
        other.execute("COMMIT")
        reply = await post
    assert (reply.status, reply.code) == (404, "room_not_found")
    assert demo_server.query("SELECT body FROM messages WHERE room_id = ? AND sender_id = ?",
                             (room, bob.id)) == [("まだメンバーです",)]
