"""Hostile and malformed requests: a 4xx with the stable error code, nothing written, never a 500.

Every case checks the status, the error code, that no content table changed (row counts and
max ids, the event log included) and — through the autouse log check in conftest — that the
server logged no unhandled error.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from lgwan_harness import CONTENT_TABLES, ClientFactory, Reply, Roster, ServerProcess, StaffClient

_CACHE: dict[str, Any] = {}


@dataclass
class Ctx:
    server: ServerProcess
    alice: StaffClient      # owner of ``room``
    bob: StaffClient        # member of ``room``
    eve: StaffClient        # another 部; owner of ``foreign_room``
    ids: dict[str, int]


@pytest.fixture
async def ctx(demo_server: ServerProcess, people: Roster, clients: ClientFactory) -> AsyncIterator[Ctx]:
    """The same three people and rooms for every case (created once; the cases write nothing)."""
    if not _CACHE:
        alice, bob = people.take(2, same_department=True)
        eve = people.one(outside=(alice, bob))
        a = await clients.staff(demo_server, alice)
        b = await clients.staff(demo_server, bob)
        e = await clients.staff(demo_server, eve)
        room = (await a.create_room("入力検査", [bob]))["id"]
        foreign_room = (await e.create_room("よその部屋", []))["id"]
        ids = {"room": room, "foreign_room": foreign_room, "alice": alice.id, "bob": bob.id, "eve": eve.id,
               "msg": (await a.say(room, "検査用の投稿"))["id"],
               "bob_msg": (await b.say(room, "bob の投稿"))["id"],
               "foreign_msg": (await e.say(foreign_room, "よその投稿"))["id"],
               "dept_room": people.department_rooms[eve.department_id]}
        _CACHE.update(ids=ids, logins={"alice": alice, "bob": bob, "eve": eve},
                      tokens={"alice": (a.token, a.csrf), "bob": (b.token, b.csrf), "eve": (e.token, e.csrf)})
        yield Ctx(demo_server, a, b, e, ids)
        return
    made = {}
    for name, (token, csrf) in _CACHE["tokens"].items():
        client = clients.new(demo_server, _CACHE["logins"][name])
        client.use_token(token, csrf)
        made[name] = client
    yield Ctx(demo_server, made["alice"], made["bob"], made["eve"], _CACHE["ids"])


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str                       # formatted with Ctx.ids
    status: int
    code: str
    json: Any = None                # a JSON body (serialised by the test)…
    raw: bytes | None = None        # …or raw bytes
    ctype: str | None = "application/json"
    who: str = "alice"              # alice, bob, eve or "anonymous"
    csrf: str = "ok"                # ok, missing, wrong
    headers: dict[str, str] = field(default_factory=dict)
    audited: bool = False           # refusals that are audited by design (failed logins)


POST = "/api/rooms/{room}/messages"
BIG = 300 * 1024

CASES = [
    # JSON syntax and encoding
    Case("malformed_json", "POST", POST, 400, "invalid_json", raw=b'{"body": "x",'),
    Case("empty_body", "POST", POST, 400, "invalid_json", raw=b""),
    Case("json_with_bom", "POST", POST, 400, "invalid_json", raw=b'\xef\xbb\xbf{"body": "x"}'),
    Case("deeply_nested_json", "POST", POST, 400, "invalid_json", raw=b"[" * 100_000),
    Case("integer_of_5000_digits", "POST", "/api/rooms/{room}/read", 400, "invalid_json",
         raw=b'{"seq": ' + b"7" * 5000 + b"}"),
    Case("json_not_an_object", "POST", POST, 400, "invalid_request", json=["body", "x"]),
    Case("nan_where_integer", "POST", "/api/rooms/{room}/read", 400, "invalid_request", raw=b'{"seq": NaN}'),
    Case("invalid_utf8", "POST", POST, 400, "invalid_utf8", raw=b'{"body": "\xff\xfe\xfd"}'),
    Case("overlong_utf8_slash", "POST", POST, 400, "invalid_utf8", raw=b'{"body": "\xc0\xaf"}'),
    Case("oversized_body", "POST", POST, 413, "body_too_large", json={"body": "あ" * (BIG // 3)}),
    Case("oversized_even_as_garbage", "POST", POST, 413, "body_too_large", raw=b"x" * BIG),
    # Schema
    Case("unknown_field", "POST", POST, 400, "invalid_request", json={"body": "x", "html": "<b>x</b>"}),
    Case("wrong_type", "POST", POST, 400, "invalid_request", json={"body": 12345}),
    Case("missing_field", "POST", POST, 400, "invalid_request", json={"important": True}),
    Case("body_over_10000_chars", "POST", POST, 400, "invalid_request", json={"body": "長" * 10_001}),
    Case("bad_client_msg_id", "POST", POST, 400, "invalid_request", json={"body": "x", "client_msg_id": "../x"}),
    Case("negative_read_seq", "POST", "/api/rooms/{room}/read", 400, "invalid_request", json={"seq": -1}),
    Case("empty_after_cleaning", "POST", POST, 400, "empty_message", json={"body": "\u202e\x1b\u200f  \n"}),
    # Mentions
    Case("ten_thousand_mentions", "POST", POST, 400, "invalid_request",
         json={"body": "全員へ", "mentions": list(range(1, 10_001))}),
    Case("mention_of_non_member", "POST", POST, 400, "mention_not_member", json={"body": "x", "mentions": ["{eve}"]}),
    Case("mention_id_zero", "POST", POST, 400, "invalid_request", json={"body": "x", "mentions": [0]}),
    Case("mention_of_nonexistent", "POST", POST, 400, "mention_not_member",
         json={"body": "x", "mentions": [9007199254740991]}),
    Case("mention_id_too_large", "POST", POST, 400, "invalid_request",
         json={"body": "x", "mentions": [9007199254740992]}),
    # Rooms and messages the caller cannot see
    Case("post_to_foreign_room", "POST", "/api/rooms/{foreign_room}/messages", 404, "room_not_found",
         json={"body": "侵入"}),
    Case("post_to_foreign_dept_room", "POST", "/api/rooms/{dept_room}/messages", 404, "room_not_found",
         json={"body": "侵入"}),
    Case("read_foreign_room", "GET", "/api/rooms/{foreign_room}/messages", 404, "room_not_found", ctype=None),
    Case("add_self_to_foreign_room", "POST", "/api/rooms/{foreign_room}/members", 404, "room_not_found",
         json={"staff_ids": ["{alice}"]}),
    Case("thread_root_in_foreign_room", "POST", POST, 400, "invalid_thread",
         json={"body": "x", "thread_root_id": "{foreign_msg}"}),
    Case("edit_foreign_message", "PATCH", "/api/messages/{foreign_msg}", 404, "message_not_found",
         json={"body": "改ざん"}),
    Case("edit_someone_elses_message", "PATCH", "/api/messages/{bob_msg}", 403, "not_message_author",
         json={"body": "改ざん"}),
    Case("react_to_foreign_message", "PUT", "/api/messages/{foreign_msg}/reactions/like", 404, "message_not_found",
         ctype=None),
    Case("unknown_reaction", "PUT", "/api/messages/{msg}/reactions/%3Cscript%3E", 400, "unknown_reaction", ctype=None),
    Case("search_foreign_room", "GET", "/api/search?q=%E3%82%88%E3%81%9D&room_id={foreign_room}", 404,
         "room_not_found", ctype=None),
    Case("search_query_too_long", "GET", "/api/search?q=" + "a" * 201, 400, "invalid_request", ctype=None),
    Case("create_room_with_unknown_member", "POST", "/api/rooms", 404, "staff_not_found",
         json={"kind": "project", "name": "x", "member_ids": [987654321]}),
    Case("dm_with_too_many", "POST", "/api/dms", 400, "invalid_request", json={"member_ids": list(range(1, 30))}),
    # Path and query ids
    Case("room_id_not_numeric", "GET", "/api/rooms/abc", 404, "not_found", ctype=None),
    Case("room_id_negative", "GET", "/api/rooms/-1", 404, "not_found", ctype=None),
    Case("room_id_huge", "GET", "/api/rooms/99999999999999999999999999", 404, "not_found", ctype=None),
    Case("room_id_superscript_digit", "GET", "/api/rooms/%C2%B2", 404, "not_found", ctype=None),
    Case("room_id_arabic_indic_digit", "GET", "/api/rooms/%D9%A1", 404, "not_found", ctype=None),
    Case("room_id_fullwidth_digit", "POST", "/api/rooms/%EF%BC%91/messages", 404, "not_found",
         json={"body": "全角の１"}),
    Case("room_id_nonexistent", "GET", "/api/rooms/123456789012", 404, "room_not_found", ctype=None),
    Case("message_id_not_numeric", "GET", "/api/messages/1e3", 404, "not_found", ctype=None),
    Case("file_id_not_numeric", "GET", "/api/files/..%2F..%2Fetc%2Fpasswd", 404, "not_found", ctype=None),
    Case("limit_not_numeric", "GET", "/api/rooms/{room}/messages?limit=ten", 400, "invalid_request", ctype=None),
    Case("limit_superscript_digit", "GET", "/api/rooms/{room}/messages?limit=%C2%B2", 400, "invalid_request",
         ctype=None),
    Case("limit_out_of_range", "GET", "/api/rooms/{room}/messages?limit=100000", 400, "invalid_request", ctype=None),
    # Content types
    Case("text_plain_json", "POST", POST, 415, "unsupported_media_type", raw=b'{"body": "x"}', ctype="text/plain"),
    Case("form_encoded", "POST", POST, 415, "unsupported_media_type", raw=b"body=x",
         ctype="application/x-www-form-urlencoded"),
    Case("no_content_type", "POST", POST, 415, "unsupported_media_type", raw=b'{"body": "x"}', ctype=None),
    Case("json_upload", "POST", "/api/rooms/{room}/files", 415, "unsupported_media_type", json={"file": "x"}),
    Case("multipart_without_boundary", "POST", "/api/rooms/{room}/files", 400, "invalid_request",
         raw=b"--x\r\n\r\n", ctype="multipart/form-data"),
    Case("multipart_garbage", "POST", "/api/rooms/{room}/files", 400, "invalid_request",
         raw=b"this is not multipart at all", ctype="multipart/form-data; boundary=zzz"),
    Case("multipart_no_file_part", "POST", "/api/rooms/{room}/files", 400, "invalid_request",
         raw=b'--zzz\r\nContent-Disposition: form-data; name="body"\r\n\r\nhello\r\n--zzz--\r\n',
         ctype="multipart/form-data; boundary=zzz"),
    Case("multipart_unknown_field", "POST", "/api/rooms/{room}/files", 400, "invalid_request",
         raw=b'--zzz\r\nContent-Disposition: form-data; name="\xff\xfe"\r\n\r\nx\r\n--zzz--\r\n',
         ctype="multipart/form-data; boundary=zzz"),
    Case("multipart_field_bad_utf8", "POST", "/api/rooms/{room}/files", 400, "invalid_utf8",
         raw=b'--zzz\r\nContent-Disposition: form-data; name="body"\r\n\r\n\xff\r\n--zzz--\r\n',
         ctype="multipart/form-data; boundary=zzz"),
    Case("csv_import_not_admin", "POST", "/api/admin/import/staff", 403, "forbidden",
         raw="職員番号\r\n".encode("cp932"), ctype="text/csv"),
    # CSRF, Origin, authentication
    Case("missing_csrf", "POST", POST, 403, "csrf_failed", json={"body": "x"}, csrf="missing"),
    Case("wrong_csrf", "POST", POST, 403, "csrf_failed", json={"body": "x"}, csrf="wrong"),
    Case("csrf_of_another_session", "POST", POST, 403, "csrf_failed", json={"body": "x"}, csrf="bob"),
    Case("missing_csrf_delete", "DELETE", "/api/messages/{msg}", 403, "csrf_failed", ctype=None, csrf="missing"),
    Case("foreign_origin", "POST", POST, 403, "origin_mismatch", json={"body": "x"},
         headers={"Origin": "https://evil.example"}),
    Case("null_origin", "POST", POST, 403, "origin_mismatch", json={"body": "x"}, headers={"Origin": "null"}),
    Case("foreign_origin_login", "POST", "/api/auth/login", 403, "origin_mismatch", who="anonymous",
         json={"login": "x", "password": "y"}, headers={"Origin": "http://127.0.0.1.evil.example"}),
    Case("no_cookie", "POST", POST, 401, "not_authenticated", json={"body": "x"}, who="anonymous"),
    Case("forged_cookie", "GET", "/api/rooms", 401, "not_authenticated", ctype=None, who="anonymous",
         headers={"Cookie": "kk_session=forged-token"}),
    # Login input that must not reach SQLite or argon2 as it is
    Case("login_lone_surrogate", "POST", "/api/auth/login", 400, "invalid_request", who="anonymous",
         raw=b'{"login": "\\ud800", "password": "x"}'),
    Case("password_lone_surrogate", "POST", "/api/auth/login", 401, "invalid_credentials", who="anonymous",
         raw=b'{"login": "nobody-here", "password": "x\\udfff\\ud800"}', audited=True),
    Case("login_unknown_field", "POST", "/api/auth/login", 400, "invalid_request", who="anonymous",
         json={"login": "x", "password": "y", "remember": True}),
    # Routing
    Case("unknown_api_path", "GET", "/api/no/such/thing", 404, "not_found", ctype=None),
    Case("method_not_allowed", "PUT", "/api/rooms", 405, "invalid_request", json={}),
]


def fill(value: Any, ids: dict[str, int]) -> Any:
    """Replace "{name}" strings in a JSON value with the context's ids."""
    if isinstance(value, str) and value.startswith("{") and value.endswith("}") and value[1:-1] in ids:
        return ids[value[1:-1]]
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    return value


async def send(ctx: Ctx, case: Case) -> Reply:
    client = {"alice": ctx.alice, "bob": ctx.bob, "eve": ctx.eve}.get(case.who)
    path = case.path.format(**ctx.ids)
    headers = dict(case.headers)
    if case.ctype is not None:
        headers["Content-Type"] = case.ctype
    data = case.raw if case.raw is not None else (
        json.dumps(fill(case.json, ctx.ids), ensure_ascii=False).encode() if case.json is not None else None)
    if client is None:
        # No session at all: a bare aiohttp session (no cookie jar contents).
        async with aiohttp.ClientSession(base_url=ctx.server.base_url) as http:
            async with http.request(case.method, path, data=data, headers=headers) as resp:
                raw = await resp.read()
                return Reply(resp.status, resp.headers, raw,
                             json.loads(raw) if resp.content_type == "application/json" else None)
    if case.csrf == "wrong":
        headers["X-CSRF-Token"] = "x" * 32
    elif case.csrf == "bob":
        headers["X-CSRF-Token"] = ctx.bob.csrf or ""
    if data is None and case.ctype is None:
        data = b"" if case.method != "GET" else None
    return await client.request(case.method, path, data=data, headers=headers, csrf=case.csrf == "ok")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_refused_with_stable_code_and_no_write(ctx: Ctx, case: Case) -> None:
    tables = tuple(t for t in CONTENT_TABLES if not (case.audited and t == "audit_log"))
    before = ctx.server.fingerprint(tables)
    reply = await send(ctx, case)
    assert (reply.status, reply.code) == (case.status, case.code), reply
    assert set(reply.data["error"]) >= {"code", "message", "message_en"}
    assert ctx.server.fingerprint(tables) == before
    # Refusals still carry the security headers.
    assert "Content-Security-Policy" in reply.headers and reply.headers.get("Cache-Control") == "no-store"


async def test_upload_bad_input_leaves_no_temporary_files(ctx: Ctx) -> None:
    """Refused uploads (wrong room, malformed multipart) leave nothing in the blob store."""
    tmp = ctx.server.data_dir / "files" / "tmp"
    form = aiohttp.FormData()
    form.add_field("file", b"data", filename="x.txt", content_type="text/plain")
    await ctx.alice.post(f"/api/rooms/{ctx.ids['foreign_room']}/files", data=form, expect=404, code="room_not_found")
    assert list(tmp.iterdir()) == []


@pytest.mark.parametrize(("params", "origin", "status", "code"), [
    ({}, "https://evil.example", 403, "origin_mismatch"),
    ({}, "http://localhost", 403, "origin_mismatch"),
    ({"since": "-1"}, None, 400, "invalid_request"),
    ({"since": "abc"}, None, 400, "invalid_request"),
    ({"since": "\u00b2"}, None, 400, "invalid_request"),
])
async def test_websocket_handshake_refused(ctx: Ctx, params: dict[str, str], origin: str | None, status: int,
                                           code: str) -> None:
    before = ctx.server.fingerprint()
    headers = {"Origin": origin or ctx.server.origin, "Connection": "Upgrade", "Upgrade": "websocket",
               "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    reply = await ctx.alice.get("/api/ws", params=params, headers=headers)
    assert (reply.status, reply.code) == (status, code), reply
    assert ctx.server.fingerprint() == before


async def test_websocket_without_session_is_refused(ctx: Ctx) -> None:
    async with aiohttp.ClientSession(base_url=ctx.server.base_url) as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect("/api/ws", origin=ctx.server.origin)
    assert refused.value.status == 401


async def test_websocket_ignores_junk_frames(ctx: Ctx) -> None:
    """Client frames other than ping are ignored; an oversized frame closes the socket, not the server."""
    ws = await ctx.alice.ws()
    await ws.sock.send_str("not json")
    await ws.sock.send_str(json.dumps({"type": "post", "body": "WebSocket からは投稿できない"}))
    await ws.sock.send_bytes(b"\x00\x01")
    await ws.sock.send_str(json.dumps({"type": "ping"}))
    assert await ws.wait_for(lambda f: f.get("type") == "pong")
    await ws.sock.send_str("x" * (70 * 1024))      # over MAX_WS_MESSAGE_BYTES
    assert await ws.wait_closed(timeout=5) == 1009
    again = await ctx.alice.ws()
    assert again.hello is not None
