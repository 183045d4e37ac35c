"""File uploads on the relay (issue 3, item 9): who may upload where, limits, and that only the sanitizer's
rebuilt bytes (with its signed verdict) are queued — never the upload — while refusals queue nothing.

The sanitizer service here is a stand-in speaking the real protocol (shared/verdict.py) with a test key, so
each case is deterministic; tests/sanitizer/test_sanitizer_service.py and tests/e2e run the real one.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from relay_fixtures import CLOCK, ROOM, STAFF_ROOM, Browser, RelayUnderTest, account, write_config

from internet_relay.app import create_app
from internet_relay.appkeys import relay_key
from internet_relay.config import load_config
from internet_relay.services.uploads import UploadRefused
from shared import envelope as env
from shared.signing import Signer
from shared.verdict import (
    VERSION,
    decode_report,
    decode_token,
    encode_frame,
    read_frame,
    sign_verdict,
)

UPLOAD = b"%PDF-1.7 the upload itself, with a marker: UPLOAD-MARKER-7f3a " + bytes(range(256)) * 8
REBUILT = b"%PDF-1.7 what the sanitizer made of it " + bytes(range(255, -1, -1)) * 300     # 77 KB: two chunks


def report_for(data: bytes, out: bytes, name: str, removed: list[dict[str, Any]]) -> dict[str, Any]:
    return {"status": "rebuilt", "code": "ok", "message": {"ja": "再構成しました。", "en": "Rebuilt."}, "detail": "",
            "input": {"name": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                      "detected_type": "pdf"},
            "output": {"name": name, "type": "pdf", "extension": "pdf", "sha256": hashlib.sha256(out).hexdigest(),
                       "bytes": len(out)},
            "removed": removed, "summary": {"ja": "JavaScript ×2", "en": "JavaScript ×2"}, "isolation": {},
            "elapsed_ms": 3}


@dataclass
class StubSanitizer:
    """Answers like ``python -m sanitizer serve``; ``mode`` picks the answer."""

    signer: Signer = field(default_factory=Signer.generate)
    mode: str = "rebuild"           # rebuild | refuse | wrong_sha | hang_up
    received: list[bytes] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        header, body = await read_frame(reader, 64 * 1024 * 1024)
        self.received.append(body)
        name = header["name"]
        if self.mode == "hang_up":
            writer.close()
            return
        if self.mode == "refuse":
            report = {**report_for(body, b"", name, []), "status": "refused", "code": "pdf_encrypted", "output": None}
            writer.write(encode_frame({"v": VERSION, "status": "refused", "code": "pdf_encrypted", "report": report}))
        else:
            removed = [{"item": "javascript", "ja": "JavaScript", "en": "JavaScript", "count": 2}]
            report = report_for(body, REBUILT, name, removed)
            verdict = sign_verdict(self.signer, input_sha256=hashlib.sha256(body).hexdigest(), input_bytes=len(body),
                                   output=REBUILT, output_type="pdf", output_name=name, report=report)
            sent = REBUILT if self.mode == "rebuild" else REBUILT[:-1] + b"!"
            writer.write(encode_frame({"v": VERSION, "status": "rebuilt", "code": "ok", "report": report,
                                       "verdict": verdict.to_json()}, sent))
        await writer.drain()
        writer.close()


@dataclass
class Setup:
    relay: RelayUnderTest
    stub: StubSanitizer
    guest: Browser


@pytest.fixture
async def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Setup]:
    import types

    from internet_relay.services import accounts as accounts_module
    monkeypatch.setattr(accounts_module, "time", types.SimpleNamespace(time=CLOCK.time))
    stub = StubSanitizer()
    socket_dir = Path(tempfile.mkdtemp(prefix="ks-"))
    socket_path = socket_dir / "s.sock"
    server = await asyncio.start_unix_server(stub.handle, str(socket_path))
    cfg = write_config(tmp_path, f'[sanitizer]\nsocket = "{socket_path}"\nmax_upload_bytes = "100KiB"\n'
                                 "uploads_per_hour = 6\n")
    app = create_app(load_config(cfg))
    web = TestServer(app, host="127.0.0.1")
    await web.start_server()
    relay = RelayUnderTest(web, app[relay_key])
    await relay.from_lgwan(
        env.RoomUpsert(room_id=ROOM, name="外部連携ルーム", policy="guests"),
        env.RoomUpsert(room_id=STAFF_ROOM, name="職員スマホ連絡", policy="staff_mobile"),
        env.MemberUpsert(room_id=ROOM, member="g:5", display_name="山田 太郎", affiliation="架橋病院"),
        env.MemberUpsert(room_id=STAFF_ROOM, member="g:5", display_name="山田 太郎", affiliation="架橋病院"),
        account())
    guest = relay.browser()
    await guest.enrol("yamada")
    await relay.from_lgwan(account(status="active", token=None))
    status, _ = await guest.login("yamada")
    assert status == 200
    yield Setup(relay, stub, guest)
    await guest.close()
    await web.close()
    server.close()
    await server.wait_closed()
    shutil.rmtree(socket_dir, ignore_errors=True)


async def post_file(browser: Browser, room: int, name: str, data: bytes, client_id: str, *,
                    csrf: bool = True, origin: str | None = None) -> tuple[int, Any]:
    form = aiohttp.FormData(quote_fields=False)
    form.add_field("client_msg_id", client_id)
    form.add_field("file", io.BytesIO(data), filename=name, content_type="application/pdf")
    headers = {"Origin": origin or browser.base}
    if csrf:
        headers["X-CSRF-Token"] = browser.csrf
    async with browser.http.post(f"{browser.base}/api/rooms/{room}/files", data=form, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def file_rows(relay: RelayUnderTest) -> list[tuple[str, dict[str, Any]]]:
    return [(k, p) for k, p in await relay.outbox() if k.startswith("file.")]


def db_bytes(relay: RelayUnderTest) -> bytes:
    return b"".join(p.read_bytes() for p in relay.relay.cfg.storage_dir.iterdir() if p.is_file())


async def test_only_the_rebuilt_file_and_the_signed_verdict_are_queued(files: Setup) -> None:
    relay, guest = files.relay, files.guest
    status, body = await post_file(guest, ROOM, "請求書.pdf", UPLOAD, "up-1")
    assert status == 202, body
    assert body["status"] == "queued" and body["file"]["sha256"] == hashlib.sha256(REBUILT).hexdigest()
    assert files.stub.received == [UPLOAD]               # the sanitizer got the upload …
    rows = await file_rows(relay)
    kinds = [k for k, _ in rows]
    assert kinds == ["file.sanitized", "file.chunk", "file.chunk"]         # … LGWAN gets only what it rebuilt
    header = rows[0][1]
    assert header["origin_id"] == "g:5:up-1" and header["author"] == "g:5" and header["room_id"] == ROOM
    assert header["output_sha256"] == hashlib.sha256(REBUILT).hexdigest() != header["input_sha256"]
    assert header["sanitizer_key_id"] == files.stub.signer.key_id
    assert decode_report(header["report"])["removed"][0]["item"] == "javascript"
    crossed = b"".join(decode_token(p["data"], 40 * 1024) for _, p in rows[1:])
    assert crossed == REBUILT
    # The author sees a pending copy; the audit has hashes and counts, never the name.
    page = await guest.call("GET", f"/api/rooms/{ROOM}/messages")
    assert [p["client_msg_id"] for p in page[1]["pending"]] == ["up-1"]
    audit = (await relay.audit("file.upload"))[-1]
    assert audit["input_sha256"] == hashlib.sha256(UPLOAD).hexdigest() and audit["chunks"] == 2
    assert "請求書" not in str(audit)
    # A retry with the same client id takes nothing again.
    status, again = await post_file(guest, ROOM, "請求書.pdf", UPLOAD, "up-1")
    assert status == 202 and again["client_msg_id"] == "up-1" and len(files.stub.received) == 1
    assert len(await file_rows(relay)) == 3
    # The upload is nowhere in the relay's data directory.
    assert b"UPLOAD-MARKER-7f3a" not in db_bytes(relay)


async def test_refusals_queue_nothing_and_tell_the_guest_why(files: Setup) -> None:
    relay, guest, stub = files.relay, files.guest, files.stub
    stub.mode = "refuse"
    status, body = await post_file(guest, ROOM, "locked.pdf", UPLOAD, "r-1")
    assert status == 422 and body["error"]["code"] == "file_refused"
    assert body["error"]["detail"] == {"reason": "pdf_encrypted"}
    assert "パスワードが かかった PDF は 送れません" in body["error"]["message"]
    assert (await relay.audit("file.refused"))[-1]["code"] == "pdf_encrypted"
    for mode in ("hang_up", "wrong_sha"):         # a broken or inconsistent sanitizer: nothing crosses either
        stub.mode = mode
        status, body = await post_file(guest, ROOM, "a.pdf", UPLOAD, f"u-{mode}")
        assert (status, body["error"]["code"]) == (503, "sanitizer_unavailable"), mode
    assert len(await relay.audit("file.sanitizer_unavailable")) == 2
    assert await file_rows(relay) == []
    page = await guest.call("GET", f"/api/rooms/{ROOM}/messages")
    assert page[1]["pending"] == []


async def test_who_may_upload_where_and_the_limits(files: Setup) -> None:
    relay, guest, stub = files.relay, files.guest, files.stub
    cases: list[tuple[str, Callable[[], Any], int, str]] = [
        ("a guest in a staff_mobile room", lambda: post_file(guest, STAFF_ROOM, "a.pdf", UPLOAD, "a1"), 404,
         "room_not_found"),
        ("a room that does not exist", lambda: post_file(guest, 999, "a.pdf", UPLOAD, "a2"), 404, "room_not_found"),
        ("no CSRF token", lambda: post_file(guest, ROOM, "a.pdf", UPLOAD, "a3", csrf=False), 403, "csrf_failed"),
        ("another site", lambda: post_file(guest, ROOM, "a.pdf", UPLOAD, "a4", origin="https://evil.example"), 403,
         "origin_mismatch"),
        ("too large", lambda: post_file(guest, ROOM, "big.pdf", b"x" * (100 * 1024 + 1), "a5"), 413,
         "file_too_large"),
        ("a My Number in the name", lambda: post_file(guest, ROOM, "番号123456789018.pdf", UPLOAD, "a6"), 422,
         "file_name_my_number"),
        ("a bad client id", lambda: post_file(guest, ROOM, "a.pdf", UPLOAD, "../x"), 400, "invalid_request"),
    ]
    for what, call, status_code, code in cases:
        status, body = await call()
        assert (status, body["error"]["code"]) == (status_code, code), what
    assert stub.received == [] and await file_rows(relay) == []
    assert (await relay.audit("file.refused"))[-1]["code"] == "too_large_at_relay"
    async with guest.http.post(f"{guest.base}/api/rooms/{ROOM}/files", json={"x": 1},
                               headers={"Origin": guest.base, "X-CSRF-Token": guest.csrf}) as resp:
        assert resp.status == 415
    # uploads_per_hour = 6: the seventh upload within the hour waits (the refused ones above count too).
    codes = []
    for i in range(8):
        status, body = await post_file(guest, ROOM, "a.pdf", UPLOAD, f"rl-{i}")
        codes.append(status)
    assert codes.count(429) >= 2 and codes[-1] == 429


async def test_a_staff_phone_uploads_in_a_staff_mobile_room(files: Setup) -> None:
    relay = files.relay
    token = "phone-enrolment-token-0123456789abcdef"
    await relay.from_lgwan(account("s:7", kind="staff", token=token),
                           env.MemberUpsert(room_id=STAFF_ROOM, member="s:7", display_name="鈴木 健太",
                                            affiliation="危機管理課"))
    phone = relay.browser()
    try:
        await phone.enrol("suzuki-phone", token=token)
        await relay.from_lgwan(account("s:7", kind="staff", status="active", token=None))
        assert (await phone.login("suzuki-phone"))[0] == 200
        status, body = await post_file(phone, STAFF_ROOM, "現場写真.pdf", UPLOAD, "p-1")
        assert status == 202, body
        header = (await file_rows(relay))[0][1]
        assert (header["author"], header["room_id"]) == ("s:7", STAFF_ROOM)
    finally:
        await phone.close()


async def test_uploads_are_off_without_a_sanitizer(tmp_path: Path) -> None:
    app = create_app(load_config(write_config(tmp_path)))
    web = TestServer(app, host="127.0.0.1")
    await web.start_server()
    try:
        uploads = app[relay_key].uploads
        assert uploads.enabled is False
        with pytest.raises(UploadRefused) as off:
            await uploads.admit(None, "127.0.0.1", ROOM, "x", None)  # type: ignore[arg-type]
        assert off.value.status == 503 and "ファイルを 送れません" in off.value.to_json()["error"]["message"]
    finally:
        await web.close()
