"""Files from guests cross only as the sanitizer rebuilt them (issue 3, item 9; invariant 3), with real processes.

Both tiers and the sanitizer service run as their own processes on 127.0.0.1 / a Unix socket. A guest
uploads clean and hostile files through the relay; staff see only rebuilt files, marked sanitized, with
the report one click away. Refused files never cross and the guest gets the reason in やさしい日本語.
A compromised relay (its own valid link key, but no sanitizer key) injects forged verdicts: LGWAN refuses
and audits each, and stores nothing. Afterwards neither data directory holds a byte of an original.
SIGKILL of the relay (and then of LGWAN) in the middle of a transfer still ends with exactly one file.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import secrets
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from openpyxl import Workbook
from PIL import Image, PngImagePlugin

from shared.signing import Signer

from .harness import Staff, TwoTiers, query, wait_for
from .sanitized import (
    CORPUS,
    SanitizerService,
    files_containing,
    forged_transfer,
    inject_into_relay_outbox,
    sha256,
    start_file_tiers,
    start_sanitizer,
    upload,
)
from .test_two_tier import invite_and_approve

pytestmark = pytest.mark.skipif(not (CORPUS / "threats").is_dir(), reason="CDR corpus not found (KAKEHASHI_CORPUS)")


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[TwoTiers, SanitizerService]]:
    sanitizer = start_sanitizer(tmp_path)
    tiers = await start_file_tiers(tmp_path, sanitizer)
    yield tiers, sanitizer
    tiers.stop()
    sanitizer.stop()


def js_pdf(marker: str) -> bytes:
    """A PDF that runs JavaScript when opened (built here; the marker is unique to this run)."""
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(200, 200))
    action = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Action, S=pikepdf.Name.JavaScript,
                                                  JS=pikepdf.String(f'app.alert("{marker}");')))
    pdf.Root.OpenAction = action
    out = io.BytesIO()
    pdf.save(out, compress_streams=False, object_stream_mode=pikepdf.ObjectStreamMode.disable)
    return out.getvalue()


def xlsx_bytes() -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.append(["氏名", "所属"])
    ws.append(["山田 太郎", "架橋病院"])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def png_with_metadata(marker: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", marker)
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


async def sanitized_attachments(staff: Staff, room_id: int) -> dict[str, dict[str, Any]]:
    """Attachments with origin 'sanitized' that staff see in the room, by file name."""
    page = await staff.call("GET", f"/api/rooms/{room_id}/messages?limit=200")
    return {a["filename"]: {**a, "message": m} for m in page["messages"] for a in m["attachments"]
            if a["origin"] == "sanitized"}


def lgwan_audit(tiers: TwoTiers, action: str) -> list[dict[str, Any]]:
    return [json.loads(r[0]) for r in query(tiers.lgwan_db, "SELECT detail FROM audit_log WHERE action = ?"
                                                           " ORDER BY id", (action,))]


async def test_guest_files_cross_only_rebuilt_and_forgeries_are_refused(env: tuple[TwoTiers, SanitizerService]) -> None:
    tiers, sanitizer = env
    room = tiers.seed.rooms["guests-room"]
    owner, desk = Staff(tiers.lgwan_url), Staff(tiers.lgwan_url)
    await owner.login("sato")
    await desk.login("suzuki")
    guest, guest_id = await invite_and_approve(tiers, owner, room, "山田 太郎", "yamada-hosp")
    marker = f"kakehashi-{secrets.token_hex(8)}"
    threats = CORPUS / "threats"
    accepted = {                    # name sent → (bytes, name LGWAN shows, threat classes the report must list)
        "hello.pdf": ((CORPUS / "clean" / "pdfium-hello_world.pdf").read_bytes(), "hello.pdf", set()),
        "名簿.xlsx": (xlsx_bytes(), "名簿.xlsx", set()),
        "photo.png": (png_with_metadata(marker + "-png"), "photo.png", {"metadata"}),
        "corpus-js.pdf": ((threats / "pdfium-js.pdf").read_bytes(), "corpus-js.pdf", {"javascript"}),
        "invoice.pdf": (js_pdf(marker), "invoice.pdf", {"javascript", "auto_action"}),
        "macro.xlsm": ((threats / "xlsxwriter-macro01-vba.xlsm").read_bytes(), "macro.xlsx", {"macro"}),
    }
    refused = {                     # name → (bytes, the sanitizer's code, words the guest must read)
        "setup.exe": (b"MZ\x90\x00" + secrets.token_bytes(2000), "unsupported_type", "送れません"),
        "legacy.xls": ((threats / "oletools-excel4_sample_macro-xlm.xls").read_bytes(), "legacy_office",
                       ".docx .xlsx .pptx"),
        "locked.pdf": ((threats / "qpdf-enc-aes256-userpw-view.pdf").read_bytes(), "pdf_encrypted", "パスワード"),
    }
    try:
        # --- accepted: each arrives for staff rebuilt, marked sanitized, with its report -----------------------
        rebuilt: dict[str, str] = {}
        for i, (name, (data, _, must_remove)) in enumerate(accepted.items()):
            status, body = await upload(guest, room, name, data, f"f-{i}")
            assert status == 202, (name, body)
            assert body["status"] == "queued"
            rebuilt[name] = body["file"]["sha256"]
            # A file with threats in it never comes out as it went in. (A clean file openpyxl wrote a
            # moment ago may come back byte-identical: rebuilding it again changes nothing.)
            assert not must_remove or rebuilt[name] != sha256(data), name
        seen = await wait_for(lambda: _all_there(desk, room, [v[1] for v in accepted.values()]), timeout=60,
                              what="every accepted file on LGWAN")
        for name, (data, shown, must_remove) in accepted.items():
            att = seen[shown]
            assert att["message"]["sender"]["display_name"] == "山田 太郎"
            async with desk.http.get(f"{tiers.lgwan_url}/api/files/{att['id']}") as resp:
                assert resp.status == 200
                got = await resp.read()
            assert sha256(got) == att["sha256"] == rebuilt[name], name
            report = await desk.call("GET", f"/api/files/{att['id']}/report")
            assert report["verdict"]["output_sha256"] == att["sha256"]
            assert report["verdict"]["input_sha256"] == sha256(data)
            assert report["verdict"]["fingerprint"] == sanitizer_fingerprint(sanitizer)
            assert must_remove <= {r["item"] for r in report["report"]["removed"]}, (name, report["report"]["removed"])
            assert report["lgwan_check"]["checked_at"]
        # Someone outside the room gets the same answer as for a file that does not exist.
        await owner.call("DELETE", f"/api/rooms/{room}/members/{tiers.seed.staff['tanaka']}")
        outsider = Staff(tiers.lgwan_url)
        try:
            await outsider.login("tanaka")
            any_id = seen["invoice.pdf"]["id"]
            assert await _status(desk, f"/api/files/{any_id}/report") == 200
            for path in (f"/api/files/{any_id}/report", "/api/files/999999/report", f"/api/files/{any_id}"):
                assert await _status(outsider, path) == 404, path
        finally:
            await outsider.close()
        # The guest sees the confirmed messages (the file itself stays on LGWAN).
        page = await guest.call("GET", f"/api/rooms/{room}/messages")
        assert sum(1 for m in page["messages"] if m["mine"] and m["attachments"] == 1) == len(accepted)
        assert page["pending"] == []

        # --- refused: nothing crosses, the guest reads why, the relay audits hashes only ------------------------
        for i, (name, (data, code, words)) in enumerate(refused.items()):
            status, body = await upload(guest, room, name, data, f"r-{i}")
            assert status == 422, (name, body)
            assert body["error"]["code"] == "file_refused" and body["error"]["detail"]["reason"] == code
            assert words in body["error"]["message"], body
        # Nothing of a refused upload was queued: the only files in the relay's outbox are the accepted ones.
        assert query(tiers.relay_db, "SELECT count(*) FROM outbox WHERE kind = 'file.sanitized'")[0][0] == len(accepted)
        relay_refusals = [json.loads(r[0]) for r in query(tiers.relay_db,
                                                           "SELECT detail FROM audit WHERE action = 'file.refused'")]
        assert sorted(r["code"] for r in relay_refusals) == sorted(c for _, c, _ in refused.values())
        assert {r["input_sha256"] for r in relay_refusals} == {sha256(d) for d, _, _ in refused.values()}

        # --- a compromised relay forges verdicts: refused by LGWAN and audited, nothing stored -------------------
        author = f"g:{guest_id}"
        png = png_with_metadata("x")
        forged = {
            "unknown_key": forged_transfer(signer=Signer.generate(), origin_id=f"{author}:x-1", room_id=room,
                                           author=author, data=png, output_type="png", name="a.png"),
            "sha256_mismatch": forged_transfer(signer=sanitizer.signer, origin_id=f"{author}:x-2", room_id=room,
                                               author=author, data=png[:-1] + b"\x00", signed_bytes=png,
                                               output_type="png", name="b.png"),
            "type_mismatch": forged_transfer(signer=sanitizer.signer, origin_id=f"{author}:x-3", room_id=room,
                                             author=author, data=png, output_type="pdf", name="c.pdf"),
            "report_digest_mismatch": forged_transfer(signer=sanitizer.signer, origin_id=f"{author}:x-4",
                                                      room_id=room, author=author, data=png, output_type="png",
                                                      name="d.png", tamper_report=True),
        }
        tiers.relay.stop()
        inject_into_relay_outbox(tiers.relay_db, [p for payloads in forged.values() for p in payloads])
        tiers.relay.start()
        await wait_for(lambda: _refusal_codes(tiers, 4), timeout=30, what="LGWAN refusing the forgeries")
        by_origin = {d["origin"]: d for d in lgwan_audit(tiers, "bridge.file_refused")}
        assert {o: by_origin[f"{author}:x-{i}"]["code"] for i, o in enumerate(forged, 1)} == {
            "unknown_key": "verdict_unknown_key",            # not signed by the trusted sanitizer key
            "sha256_mismatch": "sha256_mismatch",            # the bytes are not the ones signed
            "type_mismatch": "recheck_verify_failed",        # libmagic: PNG bytes signed as a PDF
            "report_digest_mismatch": "report_digest_mismatch"}
        assert "type.mismatch" in by_origin[f"{author}:x-3"]["detail"]
        states = dict(query(tiers.lgwan_db, "SELECT origin_id, state FROM sanitized_files WHERE origin_id LIKE ?",
                            (f"{author}:x-%",)))
        assert states == {f"{author}:x-{i}": "refused" for i in range(1, 5)}
        assert query(tiers.lgwan_db, "SELECT count(*) FROM sanitized_file_chunks")[0][0] == 0
        assert query(tiers.lgwan_db, "SELECT count(*) FROM blobs WHERE sha256 = ?", (sha256(png),))[0][0] == 0
        assert set(await sanitized_attachments(desk, room)) == {v[1] for v in accepted.values()}
        assert query(tiers.lgwan_db, "SELECT count(*) FROM attachments WHERE origin = 'sanitized'")[0][0] == len(accepted)

        # --- the originals are nowhere: not in the relay's data dir, not in LGWAN's -------------------------------
        tiers.stop()                         # flush WALs and close the databases before reading the files
        # Every original that differs from what the sanitizer made of it (all hostile and refused ones).
        originals = [d for name, (d, _, _) in accepted.items() if sha256(d) != rebuilt[name]]
        originals += [d for d, _, _ in refused.values()]
        assert len(originals) >= len(refused) + sum(1 for _, _, r in accepted.values() if r)
        needles = [o for o in originals if len(o) < 4096] + [o[len(o) // 2 - 2048:len(o) // 2 + 2048]
                                                             for o in originals if len(o) >= 4096]
        needles += [marker.encode(), b'app.alert("ping")']
        for data_dir in (tiers.root / "relay-data", tiers.root / "lgwan-data"):
            assert files_containing(data_dir, needles) == [], data_dir
        # The scan does see files: the rebuilt bytes are on LGWAN as a blob and in the relay's outbox (base64url).
        assert files_containing(tiers.root / "lgwan-data", [got]) and files_containing(tiers.root / "relay-data", [got])
    finally:
        for client in (owner, desk, guest):
            await client.close()


def sanitizer_fingerprint(sanitizer: SanitizerService) -> str:
    from shared.signing import fingerprint
    return fingerprint(sanitizer.signer.public_key)


async def _status(client: Staff, path: str) -> int:
    async with client.http.get(client.base + path) as resp:
        return resp.status


async def _all_there(staff: Staff, room: int, names: list[str]) -> dict[str, dict[str, Any]] | None:
    seen = await sanitized_attachments(staff, room)
    return seen if set(names) <= set(seen) else None


def _refusal_codes(tiers: TwoTiers, count: int) -> list[str] | None:
    codes = [d["code"] for d in lgwan_audit(tiers, "bridge.file_refused")]
    return codes if len(codes) >= count else None


async def test_sigkill_of_either_tier_mid_transfer_ends_with_one_attachment(
        env: tuple[TwoTiers, SanitizerService]) -> None:
    """While a big file streams, LGWAN is frozen (SIGSTOP) as soon as it has staged part of it, and both tiers
    are SIGKILLed: the relay with envelopes still unsent, LGWAN with envelopes received but not applied.
    After both restart, the transfer resumes from LGWAN's applied position and staff see the file exactly
    once, whole; before that, nothing of it is visible."""
    tiers, _ = env
    room = tiers.seed.rooms["guests-room"]
    owner = Staff(tiers.lgwan_url)
    await owner.login("sato")
    guest, _ = await invite_and_approve(tiers, owner, room, "佐々木 一郎", "sasaki-kk")
    # Incompressible pixels: the rebuilt PNG stays ~10 MiB, about 250 chunks (several transactions on LGWAN).
    noise = Image.frombytes("RGB", (1900, 1800), os.urandom(1900 * 1800 * 3))
    out = io.BytesIO()
    noise.save(out, format="PNG", compress_level=1)
    big = out.getvalue()
    try:
        status, body = await upload(guest, room, "noise.png", big, "big-1")
        assert status == 202, body
        chunks = query(tiers.relay_db, "SELECT count(*) FROM outbox WHERE kind = 'file.chunk'")[0][0]
        assert chunks > 200
        for _ in range(4000):
            staged = _staged(tiers)
            if staged is not None and staged[0] > 0:
                os.kill(tiers.lgwan.pid, signal.SIGSTOP)
                break
            await asyncio.sleep(0.005)
        tiers.relay.kill()
        tiers.lgwan.kill()
        staged = _staged(tiers)
        assert staged is not None and staged[1] == "receiving" and 0 < staged[0] < staged[2] == chunks, staged
        assert sanitized_attachment_count(tiers) == 0            # nothing half-done is visible
        tiers.relay.start()
        tiers.lgwan.start()
        await owner.close()
        owner = Staff(tiers.lgwan_url)
        await owner.login("sato")
        seen = await wait_for(lambda: _all_there(owner, room, ["noise.png"]), timeout=60, what="the file after restarts")
        att = seen["noise.png"]
        async with owner.http.get(f"{tiers.lgwan_url}/api/files/{att['id']}") as resp:
            assert sha256(await resp.read()) == att["sha256"] == body["file"]["sha256"]
        await asyncio.sleep(1.0)        # anything still in flight would show up as a second attachment now
        assert sanitized_attachment_count(tiers) == 1
        assert query(tiers.lgwan_db, "SELECT state, received, chunks FROM sanitized_files") == [
            ("posted", chunks, chunks)]
        assert query(tiers.lgwan_db, "SELECT count(*) FROM sanitized_file_chunks")[0][0] == 0
        page = await guest.call("GET", f"/api/rooms/{room}/messages")
        assert [m["attachments"] for m in page["messages"] if m["mine"]] == [1] and page["pending"] == []
    finally:
        await owner.close()
        await guest.close()


def _staged(tiers: TwoTiers) -> tuple[int, str, int] | None:
    rows = query(tiers.lgwan_db, "SELECT received, state, chunks FROM sanitized_files")
    return (int(rows[0][0]), str(rows[0][1]), int(rows[0][2])) if rows and rows[0][0] else None


def sanitized_attachment_count(tiers: TwoTiers) -> int:
    return int(query(tiers.lgwan_db, "SELECT count(*) FROM attachments WHERE origin = 'sanitized'")[0][0])
