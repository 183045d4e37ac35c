"""Threads, edits with history, tombstone deletes, reactions, pins and search (Japanese, 2 and 3+ characters)."""

from __future__ import annotations

import secrets

import pytest
from lgwan_harness import ClientFactory, Roster, ServerProcess, StaffClient, is_event


@pytest.fixture
async def trio(demo_server: ServerProcess, people: Roster,
               clients: ClientFactory) -> tuple[StaffClient, StaffClient, StaffClient, int]:
    alice, bob, carol = people.take(3)
    a = await clients.staff(demo_server, alice)
    b = await clients.staff(demo_server, bob)
    c = await clients.staff(demo_server, carol)
    room = (await a.create_room("業務連絡", [bob, carol]))["id"]
    return a, b, c, room


async def test_threads(trio: tuple[StaffClient, StaffClient, StaffClient, int]) -> None:
    a, b, c, room = trio
    root = await a.say(room, "来週の防災訓練について")
    ws = await c.ws()
    r1 = await b.say(room, "参加します", thread_root_id=root["id"])
    r2 = await c.say(room, "会場はどこですか", thread_root_id=root["id"])
    event = await ws.wait_for(is_event("thread.reply", room))
    assert event["data"] == {"root_id": root["id"], "message_id": r1["id"]}
    thread = (await a.get(f"/api/messages/{root['id']}/thread", expect=200)).data
    assert thread["root"]["id"] == root["id"] and thread["root"]["reply_count"] == 2
    assert [m["id"] for m in thread["replies"]] == [r1["id"], r2["id"]]
    assert all(m["thread_root_id"] == root["id"] for m in thread["replies"])
    # The room timeline shows top-level posts only.
    assert [m["id"] for m in await a.timeline(room)] == [root["id"]]
    # No replies to replies, no threads across rooms, no thread on a deleted root.
    await a.post(f"/api/rooms/{room}/messages", json={"body": "x", "thread_root_id": r1["id"]}, expect=400,
                 code="invalid_thread")
    await a.get(f"/api/messages/{r1['id']}/thread", expect=404, code="message_not_found")
    other = (await a.create_room("別室", []))["id"]
    await a.post(f"/api/rooms/{other}/messages", json={"body": "x", "thread_root_id": root["id"]}, expect=400,
                 code="invalid_thread")
    await a.delete(f"/api/messages/{root['id']}", expect=200)
    await b.post(f"/api/rooms/{room}/messages", json={"body": "x", "thread_root_id": root["id"]}, expect=400,
                 code="invalid_thread")


async def test_edit_keeps_history(demo_server: ServerProcess,
                                  trio: tuple[StaffClient, StaffClient, StaffClient, int]) -> None:
    a, b, c, room = trio
    msg = await a.say(room, "会議は10時からです")
    ws = await b.ws()
    edited = (await a.patch(f"/api/messages/{msg['id']}", json={"body": "会議は11時からです"}, expect=200)).data
    assert edited["body"] == "会議は11時からです" and edited["edited_at"]
    await a.patch(f"/api/messages/{msg['id']}", json={"body": "会議は11時から第2会議室です"}, expect=200)
    event = await ws.wait_for(is_event("message.edit", room))
    assert event["data"]["id"] == msg["id"] and event["data"]["body"] == "会議は11時からです"
    history = (await c.get(f"/api/messages/{msg['id']}/history", expect=200)).data["versions"]
    assert [(v["version"], v["body"]) for v in history] == [
        (1, "会議は10時からです"), (2, "会議は11時からです"), (3, "会議は11時から第2会議室です")]
    assert history[0]["created_at"] == msg["created_at"]
    current = (await c.get(f"/api/messages/{msg['id']}", expect=200)).data
    assert current["body"] == "会議は11時から第2会議室です" and current["edited_at"] is not None
    # Only the author edits; empty edits are refused; nothing was written by the refusals.
    before = demo_server.fingerprint(("message_edits", "events"))
    await b.patch(f"/api/messages/{msg['id']}", json={"body": "改ざん"}, expect=403, code="not_message_author")
    await a.patch(f"/api/messages/{msg['id']}", json={"body": "\u202e \x1b"}, expect=400, code="empty_message")
    assert demo_server.fingerprint(("message_edits", "events")) == before
    assert demo_server.scalar("SELECT count(*) FROM audit_log WHERE action = 'message.edit' AND target_id = ?",
                              (str(msg["id"]),)) == 2


async def test_delete_is_a_tombstone(demo_server: ServerProcess,
                                     trio: tuple[StaffClient, StaffClient, StaffClient, int]) -> None:
    a, b, c, room = trio
    mine = await b.say(room, "誤って送信した内容")
    theirs = await c.say(room, "不適切な投稿")
    ws = await a.ws()
    assert (await a.rooms())[room]["unread"] == 2
    await c.delete(f"/api/messages/{mine['id']}", expect=403, code="not_message_author")
    await b.delete(f"/api/messages/{mine['id']}", expect=200)          # the author
    await a.delete(f"/api/messages/{theirs['id']}", expect=200)        # the room owner
    event = await ws.wait_for(is_event("message.delete", room))
    assert event["data"] == {"id": mine["id"], "room_id": room}
    for m in (mine, theirs):
        shown = (await a.get(f"/api/messages/{m['id']}", expect=200)).data
        assert shown["deleted"] is True and shown["body"] == ""
        assert (await a.get(f"/api/messages/{m['id']}/history", expect=200)).data["versions"] == []
    timeline = {m["id"]: m for m in await c.timeline(room)}
    assert timeline[mine["id"]]["deleted"] and timeline[mine["id"]]["seq"] == mine["seq"]   # the row stays
    # The text is kept for the records (行政文書), not shown.
    assert demo_server.query("SELECT body FROM message_edits WHERE message_id = ?", (mine["id"],)) == [(mine["body"],)]
    assert demo_server.query("SELECT body, deleted_by FROM messages WHERE id = ?", (theirs["id"],)) == [("", a.staff_id)]
    audit = demo_server.query("SELECT actor_id, detail FROM audit_log WHERE action = 'message.delete'"
                              " AND target_id IN (?, ?) ORDER BY id", (str(mine["id"]), str(theirs["id"])))
    assert [(actor, '"by_author":true' in d) for actor, d in audit] == [(b.staff_id, True), (a.staff_id, False)]
    # A tombstone cannot be edited, reacted to or deleted again.
    await b.patch(f"/api/messages/{mine['id']}", json={"body": "復活"}, expect=409, code="message_deleted")
    await a.put(f"/api/messages/{mine['id']}/reactions/like", expect=409, code="message_deleted")
    await b.delete(f"/api/messages/{mine['id']}", expect=409, code="message_deleted")
    # Deleted messages no longer count as unread.
    assert (await a.rooms())[room]["unread"] == 0


async def test_reactions_allow_list(demo_server: ServerProcess,
                                    trio: tuple[StaffClient, StaffClient, StaffClient, int]) -> None:
    a, b, c, room = trio
    msg = await a.say(room, "資料を更新しました")
    ws = await a.ws()
    await b.put(f"/api/messages/{msg['id']}/reactions/thanks", expect=200)
    await b.put(f"/api/messages/{msg['id']}/reactions/thanks", expect=200)     # idempotent
    await c.put(f"/api/messages/{msg['id']}/reactions/thanks", expect=200)
    await c.put(f"/api/messages/{msg['id']}/reactions/understood", expect=200)
    shown = (await a.get(f"/api/messages/{msg['id']}", expect=200)).data
    assert shown["reactions"] == {"thanks": [b.staff_id, c.staff_id], "understood": [c.staff_id]}
    added = [f for f in [await ws.wait_for(is_event("reaction.add", room)) for _ in range(3)]]
    assert [(f["data"]["staff_id"], f["data"]["code"]) for f in added] == [
        (b.staff_id, "thanks"), (c.staff_id, "thanks"), (c.staff_id, "understood")]
    await c.delete(f"/api/messages/{msg['id']}/reactions/thanks", expect=200)
    shown = (await a.get(f"/api/messages/{msg['id']}", expect=200)).data
    assert shown["reactions"] == {"thanks": [b.staff_id], "understood": [c.staff_id]}
    before = demo_server.fingerprint(("reactions", "events"))
    for code in ("heart", "LIKE", "%F0%9F%91%8D", "like%00", "x" * 40):
        await b.put(f"/api/messages/{msg['id']}/reactions/{code}", expect=400, code="unknown_reaction")
    assert demo_server.fingerprint(("reactions", "events")) == before


async def test_pins_need_posting_rights(trio: tuple[StaffClient, StaffClient, StaffClient, int]) -> None:
    a, b, _, room = trio
    msg = await a.say(room, "重要：締切は金曜日", important=True)
    assert msg["important"] is True
    await b.put(f"/api/messages/{msg['id']}/pin", expect=200)
    pins = (await a.get(f"/api/rooms/{room}/pins", expect=200)).data["messages"]
    assert [p["id"] for p in pins] == [msg["id"]]
    await a.put(f"/api/rooms/{room}/members/{b.staff_id}/role", json={"role": "readonly"}, expect=200)
    await b.delete(f"/api/messages/{msg['id']}/pin", expect=403, code="read_only_member")
    await b.post(f"/api/rooms/{room}/messages", json={"body": "x"}, expect=403, code="read_only_member")


async def test_client_msg_id_makes_posting_idempotent(demo_server: ServerProcess,
                                                      trio: tuple[StaffClient, StaffClient, StaffClient, int]) -> None:
    a, _, _, room = trio
    key = "retry-" + secrets.token_hex(4)
    first = await a.say(room, "再送されるかもしれない投稿", client_msg_id=key)
    again = await a.say(room, "再送されるかもしれない投稿", client_msg_id=key)
    assert again["id"] == first["id"]
    assert demo_server.scalar("SELECT count(*) FROM messages WHERE client_msg_id = ?", (key,)) == 1
    other = (await a.create_room("別の部屋", []))["id"]
    await a.post(f"/api/rooms/{other}/messages", json={"body": "x", "client_msg_id": key}, expect=409, code="conflict")


async def test_search_japanese(demo_server: ServerProcess, people: Roster, clients: ClientFactory,
                               trio: tuple[StaffClient, StaffClient, StaffClient, int]) -> None:
    a, b, c, room = trio
    tag = "検索" + secrets.token_hex(3)          # keeps this test's hits apart from other tests'
    m1 = await a.say(room, f"{tag} 明日は防災訓練を実施します。")
    m2 = await b.say(room, f"{tag} 防災無線の点検は午後です。")
    m3 = await c.say(room, f"{tag} 会議資料は共有フォルダへ（100%完成）。")
    gone = await c.say(room, f"{tag} 防災訓練の旧案（削除予定）")
    await c.delete(f"/api/messages/{gone['id']}", expect=200)
    edited = await a.say(room, f"{tag} 訓練の集合場所は未定")
    await a.patch(f"/api/messages/{edited['id']}", json={"body": f"{tag} 集合場所は市役所前広場"}, expect=200)

    async def ids(client: StaffClient, q: str, **params: str) -> list[int]:
        results = (await client.get("/api/search", params={"q": q, **params}, expect=200)).data["results"]
        return [r["id"] for r in results if tag in r["body"]]

    assert await ids(b, "防災") == [m2["id"], m1["id"]]             # 2 characters: LIKE, newest first
    assert await ids(b, "防災訓練") == [m1["id"]]                    # 4 characters: FTS trigram
    assert await ids(b, "災訓") == [m1["id"]]                        # the middle of a word
    assert await ids(b, "訓練の集合") == []                          # the old text is gone from the index
    assert await ids(b, "市役所前") == [edited["id"]]
    assert await ids(b, "100%") == [m3["id"]] and await ids(b, "%") == [m3["id"]]   # LIKE wildcards are literal
    assert await ids(b, "_") == []
    assert await ids(b, '"防災 OR') == [] and await ids(b, "防災*") == []           # FTS syntax is literal text
    assert await ids(b, "削除予定") == []                                             # tombstones are not found
    assert await ids(b, "防災", room_id=str(room)) == [m2["id"], m1["id"]]
    hit = (await b.get("/api/search", params={"q": "防災訓練"}, expect=200)).data["results"]
    assert [r["room_name"] for r in hit if r["id"] == m1["id"]] == ["業務連絡"]
    # Someone outside the room finds nothing; every search is audited without its text.
    outsider = await clients.staff(demo_server, people.one())
    assert await ids(outsider, "防災") == [] and await ids(outsider, tag) == []
    audit = demo_server.query("SELECT detail FROM audit_log WHERE action = 'search.messages' AND actor_id = ?"
                              " ORDER BY id DESC LIMIT 1", (outsider.staff_id,))
    assert tag not in audit[0][0] and '"results":0' in audit[0][0]
    await b.get("/api/search", params={"q": "   "}, expect=400, code="invalid_request")
    await b.get("/api/search", params={"q": "\u202e"}, expect=400, code="invalid_request")
