"""Hostile strings through the real API: controls and bidi overrides stripped, ZWJ and kana kept, NFC applied."""

from __future__ import annotations

import json

import pytest
from lgwan_harness import HOSTILE_CASES, ClientFactory, Roster, ServerProcess, is_event


@pytest.mark.parametrize(("raw", "expected"), list(HOSTILE_CASES.values()), ids=list(HOSTILE_CASES))
async def test_message_body(demo_server: ServerProcess, people: Roster, clients: ClientFactory, raw: str,
                            expected: str) -> None:
    alice, bob = people.take(2)
    a = await clients.staff(demo_server, alice)
    b = await clients.staff(demo_server, bob)
    room = (await a.create_room("文字テスト", [bob]))["id"]
    ws = await b.ws()
    posted = await a.say(room, raw)
    assert posted["body"] == expected
    assert (await ws.wait_for(is_event("message.new", room)))["data"]["body"] == expected
    assert [m["body"] for m in await b.timeline(room)] == [expected]
    assert demo_server.scalar("SELECT body FROM messages WHERE id = ?", (posted["id"],)) == expected


async def test_lone_surrogates_from_json_escapes(demo_server: ServerProcess, people: Roster,
                                                 clients: ClientFactory) -> None:
    """A JSON \\ud800 escape decodes to a lone surrogate: it is dropped, the rest is kept."""
    alice = people.one()
    a = await clients.staff(demo_server, alice)
    room = (await a.create_room("サロゲート", []))["id"]
    raw = b'{"body": "\\u524d\\ud800\\u5f8c \\udfff\\ud83d\\ude00 \\ud83d"}'      # 前<lone>後 <lone>😀 <lone>
    reply = await a.post(f"/api/rooms/{room}/messages", data=raw, headers={"Content-Type": "application/json"},
                         expect=201)
    assert reply.data["body"] == "前後 😀"
    assert demo_server.scalar("SELECT body FROM messages WHERE id = ?", (reply.data["id"],)) == "前後 😀"
    # Room names and topics: the same rules, single-line for names.
    raw = json.dumps({"kind": "project", "name": "\u202e危機\x1b[0m管理\n室\ud800", "topic": "一行目\r\n\x07二行目"})
    made = await a.post("/api/rooms", data=raw.encode("utf-8", "surrogatepass"),
                        headers={"Content-Type": "application/json"}, expect=201)
    assert (made.data["name"], made.data["topic"]) == ("危機[0m管理 室", "一行目\n二行目")


async def test_mentions_survive_hostile_names(demo_server: ServerProcess, people: Roster,
                                              clients: ClientFactory) -> None:
    alice, bob = people.take(2)
    a = await clients.staff(demo_server, alice)
    room = (await a.create_room("メンション", [bob]))["id"]
    posted = await a.say(room, f"@{bob.name}\u202e さん確認を", mentions=[bob.id, bob.id])
    assert posted["mentions"] == [bob.id] and posted["body"] == f"@{bob.name} さん確認を"
