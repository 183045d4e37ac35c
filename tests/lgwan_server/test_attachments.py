"""Staff files: upload (type by libmagic, executables refused, size limit), download (audited, access-checked)."""

from __future__ import annotations

import hashlib
import io
import secrets
import struct
import sys
from pathlib import Path

import pytest
from lgwan_harness import ClientFactory, Reply, Roster, ServerProcess, StaffClient

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
                    "0000000d4944415478da63f8ffff3f0005fe02fea7d6a4e40000000049454e44ae426082")


def pe_executable() -> bytes:
    """A minimal Windows PE header: 'MZ', e_lfanew → 'PE\\0\\0' and a COFF header."""
    dos = bytearray(b"MZ" + b"\0" * 58 + struct.pack("<I", 64))
    return bytes(dos + b"PE\0\0" + struct.pack("<HHIIIHH", 0x14C, 0, 0, 0, 0, 0xE0, 0x102) + b"\0" * 0xE0)


def elf_executable() -> bytes:
    """This Python's own binary: a position-independent ELF executable, like most Linux programs."""
    return Path(sys.executable).resolve().read_bytes()


def browser_multipart(data: bytes, filename: str, **fields: str) -> tuple[bytes, str]:
    """multipart/form-data the way browsers write it (WHATWG): the filename as raw UTF-8 with only
    '"', CR and LF percent-escaped. (aiohttp's client would percent-encode the whole name instead.)"""
    boundary = "----KakehashiTestBoundary" + secrets.token_hex(8)
    out = bytearray()
    for name, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value.encode() + b"\r\n"
    escaped = filename.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
    out += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{escaped}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode("utf-8", "surrogatepass")
    out += data + f"\r\n--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


async def upload(client: StaffClient, room: int, data: bytes, filename: str, **kw: object) -> Reply:
    expect = kw.pop("expect", 201)
    code = kw.pop("code", None)
    body, ctype = browser_multipart(data, filename, **{k: str(v) for k, v in kw.items()})
    return await client.post(f"/api/rooms/{room}/files", data=io.BytesIO(body), headers={"Content-Type": ctype},
                             expect=expect, code=code)  # type: ignore[arg-type]


@pytest.fixture
async def pair(demo_server: ServerProcess, people: Roster, clients: ClientFactory) -> tuple[StaffClient, StaffClient, int]:
    alice, bob = people.take(2)
    a = await clients.staff(demo_server, alice)
    b = await clients.staff(demo_server, bob)
    room = (await a.create_room("ファイル共有", [bob]))["id"]
    return a, b, room


async def test_upload_and_download_round_trip(demo_server: ServerProcess, pair: tuple[StaffClient, StaffClient, int]
                                              ) -> None:
    a, b, room = pair
    body = "令和8年度 予算要求資料（案）\n".encode() * 50
    reply = await upload(a, room, body, "予算要求.txt", body="資料を添付します", client_msg_id="upload-1")
    msg = reply.data
    att = msg["attachments"][0]
    assert msg["body"] == "資料を添付します"
    assert (att["filename"], att["size"], att["mime"], att["origin"]) == ("予算要求.txt", len(body), "text/plain", "lgwan")
    assert att["sha256"] == hashlib.sha256(body).hexdigest()

    got = await b.get(f"/api/files/{att['id']}", expect=200)
    assert got.raw == body
    assert got.headers["Content-Type"] == "application/octet-stream"       # never rendered by the browser
    disposition = got.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and "filename*=UTF-8''%E4%BA%88%E7%AE%97" in disposition
    assert "sandbox" in got.headers["Content-Security-Policy"]
    # The blob is stored once, named by its hash, with the type libmagic found.
    assert demo_server.query("SELECT size, mime FROM blobs WHERE sha256 = ?", (att["sha256"],)) == [(len(body),
                                                                                                      "text/plain")]
    blob = demo_server.data_dir / "files" / att["sha256"][:2] / att["sha256"][2:4] / att["sha256"]
    assert blob.read_bytes() == body
    # The download is audited, naming who, what and from where.
    audit = demo_server.query("SELECT actor_id, target_id, source_ip, detail FROM audit_log"
                              " WHERE action = 'file.download' ORDER BY id DESC LIMIT 1")
    assert audit[0][:3] == (b.staff_id, str(att["id"]), "127.0.0.1") and att["sha256"] in audit[0][3]
    assert demo_server.scalar("SELECT count(*) FROM audit_log WHERE action = 'file.upload' AND target_id = ?",
                              (str(att["id"]),)) == 1

    # Same client_msg_id: the retry returns the first message, no second attachment.
    again = (await upload(a, room, body, "予算要求.txt", body="資料を添付します", client_msg_id="upload-1")).data
    assert again["id"] == msg["id"]
    assert demo_server.scalar("SELECT count(*) FROM attachments WHERE message_id = ?", (msg["id"],)) == 1


async def test_images_preview_inline_only_when_asked(pair: tuple[StaffClient, StaffClient, int]) -> None:
    a, b, room = pair
    att = (await upload(a, room, PNG, "写真.png")).data["attachments"][0]
    assert att["mime"] == "image/png"
    inline = await b.get(f"/api/files/{att['id']}", params={"inline": "1"}, expect=200)
    assert inline.headers["Content-Type"] == "image/png" and inline.headers["Content-Disposition"].startswith("inline")
    plain = await b.get(f"/api/files/{att['id']}", expect=200)
    assert plain.headers["Content-Type"] == "application/octet-stream"
    # A file that only claims to be an image is typed by its bytes.
    fake = (await upload(a, room, b"<html><script>alert(1)</script></html>", "fake.png", )).data
    fake_att = fake["attachments"][0]
    assert fake_att["mime"] == "text/html"
    served = await b.get(f"/api/files/{fake_att['id']}", params={"inline": "1"}, expect=200)
    assert served.headers["Content-Type"] == "application/octet-stream"
    assert served.headers["Content-Disposition"].startswith("attachment")


@pytest.mark.parametrize(("name", "data", "filename"), [
    ("elf", elf_executable(), "report.pdf"),
    ("elf_library", Path("/bin/true").resolve().read_bytes(), "true.txt"),
    ("pe", pe_executable(), "議事録.docx"),
    ("shell", b"#!/bin/sh\nrm -rf ~\n", "notes.txt"),
])
async def test_executables_are_refused(demo_server: ServerProcess, pair: tuple[StaffClient, StaffClient, int],
                                       name: str, data: bytes, filename: str) -> None:
    a, _, room = pair
    before = demo_server.fingerprint(("messages", "attachments", "blobs", "events"))
    reply = await upload(a, room, data, filename, body="見てください", expect=415, code="file_type_not_allowed")
    assert reply.detail["mime"]
    assert demo_server.fingerprint(("messages", "attachments", "blobs", "events")) == before
    assert list((demo_server.data_dir / "files" / "tmp").iterdir()) == []
    digest = hashlib.sha256(data).hexdigest()
    assert not (demo_server.data_dir / "files" / digest[:2] / digest[2:4] / digest).exists()
    denied = demo_server.query("SELECT outcome, detail FROM audit_log WHERE action = 'file.upload'"
                               " ORDER BY id DESC LIMIT 1")
    assert denied[0][0] == "denied" and digest in denied[0][1]


async def test_size_limit_and_empty_file(demo_server: ServerProcess, pair: tuple[StaffClient, StaffClient, int]
                                         ) -> None:
    a, _, room = pair       # the session server allows 1 MiB
    before = demo_server.fingerprint(("messages", "attachments", "blobs", "events"))
    reply = await upload(a, room, b"a" * (1024 * 1024 + 1), "big.txt", expect=413, code="file_too_large")
    assert reply.detail["max_bytes"] == 1024 * 1024
    await upload(a, room, b"", "empty.txt", expect=400, code="empty_file")
    assert demo_server.fingerprint(("messages", "attachments", "blobs", "events")) == before
    assert list((demo_server.data_dir / "files" / "tmp").iterdir()) == []
    ok = await upload(a, room, b"b" * (1024 * 1024), "exactly-1MiB.txt")
    assert ok.data["attachments"][0]["size"] == 1024 * 1024


@pytest.mark.parametrize(("given", "stored"), [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\Windows\\system32\\hosts", None),     # the multipart quoted-string eats the backslashes
    ("請求書\u202etxt.exe", "請求書txt.exe"),
    ("..", "file"),
    (".htaccess", "htaccess"),
    ("CON:<>|?*.txt", "CON______.txt"),
    ("あ" * 100 + ".pdf", "あ" * 83 + ".pdf"),       # cut to 255 UTF-8 bytes, extension kept
    ("ｶﾀｶﾅ\u200d名.txt", "ｶﾀｶﾅ\u200d名.txt"),
])
async def test_hostile_filenames(pair: tuple[StaffClient, StaffClient, int], given: str, stored: str | None) -> None:
    a, b, room = pair
    att = (await upload(a, room, b"plain text\n", given)).data["attachments"][0]
    if stored is not None:
        assert att["filename"] == stored
    assert "/" not in att["filename"] and "\\" not in att["filename"] and not att["filename"].startswith(".")
    assert len(att["filename"].encode()) <= 255
    got = await b.get(f"/api/files/{att['id']}", expect=200)
    disposition = got.headers["Content-Disposition"]
    assert "/" not in disposition.split("filename=")[1].split(";")[0] and "\\" not in disposition


async def test_control_characters_in_part_headers_are_a_clean_400(demo_server: ServerProcess,
                                                                   pair: tuple[StaffClient, StaffClient, int]) -> None:
    a, _, room = pair
    before = demo_server.fingerprint(("messages", "attachments", "blobs", "events"))
    await upload(a, room, b"x", "a\x1b[31mb\x00c.txt", expect=400, code="invalid_request")
    assert demo_server.fingerprint(("messages", "attachments", "blobs", "events")) == before


async def test_read_only_member_and_archived_room_cannot_upload(demo_server: ServerProcess, people: Roster,
                                                                clients: ClientFactory) -> None:
    alice, bob = people.take(2)
    a = await clients.staff(demo_server, alice)
    b = await clients.staff(demo_server, bob)
    room = (await a.create_room("閲覧のみ", []))["id"]
    await a.post(f"/api/rooms/{room}/members", json={"staff_ids": [bob.id], "role": "readonly"}, expect=200)
    await upload(b, room, b"x", "x.txt", expect=403, code="read_only_member")
    await a.patch(f"/api/rooms/{room}", json={"archived": True}, expect=200)
    await upload(a, room, b"x", "x.txt", expect=409, code="room_archived")
    assert list((demo_server.data_dir / "files" / "tmp").iterdir()) == []


@pytest.mark.parametrize("client_msg_id", ["relay:g:7:abc", "a" * 65, "スペース 入り"])
async def test_a_staff_upload_cannot_claim_a_bridge_id(demo_server: ServerProcess,
                                                       pair: tuple[StaffClient, StaffClient, int],
                                                       client_msg_id: str) -> None:
    """``relay:<origin>`` ids belong to posts applied from the relay; a staff client's id must match the
    same pattern as in JSON posts, on the multipart path too, and a refusal stores nothing."""
    a, _, room = pair
    tables = ("messages", "attachments", "blobs", "events")
    before = demo_server.fingerprint(tables)
    await upload(a, room, b"report", "r.txt", client_msg_id=client_msg_id, expect=400, code="invalid_request")
    assert demo_server.fingerprint(tables) == before
    assert list((demo_server.data_dir / "files" / "tmp").iterdir()) == []
