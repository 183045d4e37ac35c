"""公文書管理 (issue 7): marking, retention, legal hold, disposal, signed exports, disclosure search."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import zipfile
from collections.abc import Callable
from datetime import date

import openpyxl
import pikepdf
import pytest
from lgwan_harness import ClientFactory, Roster, ServerProcess, StaffClient, today_jst

from lgwan_server.services.records import retain_until
from shared.manifest import ManifestError, verify_bundle

EXPECTED_COLUMNS = ["日時（JST）", "和暦", "ルーム", "メッセージID", "返信元ID", "送信者", "所属（送信時）", "本文",
                    "重要", "編集履歴", "削除", "添付ファイル", "添付SHA-256", "行政文書区分", "保存期間満了日"]


@pytest.mark.parametrize(("created", "years", "until"), [
    (date(2026, 11, 21), 1, date(2028, 3, 31)),    # FY2026 → starts 2027-04-01 → one year
    (date(2027, 3, 31), 1, date(2028, 3, 31)),     # still FY2026
    (date(2027, 4, 1), 1, date(2029, 3, 31)),      # FY2027
    (date(2026, 5, 1), 30, date(2057, 3, 31)),
    (date(2026, 5, 1), 0, date(2026, 5, 1)),       # 1年未満: no minimum
])
def test_retention_counts_from_the_next_fiscal_year(created: date, years: int, until: date) -> None:
    assert retain_until(created, years) == until


async def _class_id(client: StaffClient, code: str) -> int:
    classes = (await client.get("/api/records/classes", expect=200)).data["classes"]
    return next(c["id"] for c in classes if c["code"] == code)


async def _officer(server: ServerProcess, clients: ClientFactory, roster: Roster) -> tuple[StaffClient, int]:
    """A demo staff member made records officer by the org admin (the role change ends their sessions)."""
    admin = await clients.admin(server)
    person = roster.one()
    await admin.put(f"/api/admin/staff/{person.id}/role", json={"role": "records_officer"}, expect=200)
    return await clients.staff(server, person), person.id


def _rows(bundle: bytes) -> tuple[list[str], list[list[object]], dict[str, object]]:
    with zipfile.ZipFile(io.BytesIO(bundle)) as zf:
        wb = openpyxl.load_workbook(io.BytesIO(zf.read("records.xlsx")))
    ws = wb["記録"]
    values = [[c.value for c in row] for row in ws.iter_rows()]
    info = {str(r[0].value): r[1].value for r in wb["出力情報"].iter_rows()}
    return [str(v) for v in values[0]], values[1:], info


def _pdf_text(bundle: bytes) -> str:
    """The text drawn on the PDF's pages, whitespace removed (lines wrap anywhere in Japanese). The
    built-in CID font encodes text as UTF-16BE."""
    with zipfile.ZipFile(io.BytesIO(bundle)) as zf:
        pdf = pikepdf.open(io.BytesIO(zf.read("records.pdf")))
    drawn = []
    for page in pdf.pages:
        for operands, operator in pikepdf.parse_content_stream(page):
            if str(operator) == "Tj":
                drawn.append(bytes(operands[0]).decode("utf-16-be"))
            elif str(operator) == "TJ":
                drawn.extend(bytes(part).decode("utf-16-be") for part in operands[0] if isinstance(part, pikepdf.String))
    return "".join("".join(drawn).split())


async def test_export_keeps_affiliation_at_sending_across_a_transfer(
        make_server: Callable[..., ServerProcess], clients: ClientFactory, roster: Roster) -> None:
    server = make_server()
    a, b = roster.take(2, same_department=True)
    new_home = next(p for p in roster.people if p.bu_id != a.bu_id)
    alice, bob = await clients.staff(server, a), await clients.staff(server, b)
    room = await alice.create_room("議会答弁調整", [b])
    before = await alice.say(room["id"], "答弁案の第一稿を共有します。＝修正は金曜まで")
    await bob.say(room["id"], "=HYPERLINK(\"http://example.invalid\",\"x\") は数式にしないこと")

    admin = await clients.admin(server)
    await admin.post("/api/admin/transfers", json={"items": [
        {"staff_id": a.id, "department_id": new_home.department_id, "effective_date": today_jst()}]}, expect=200)
    alice = await clients.staff(server, a)            # 人事異動 keeps the session; log in again anyway
    after = await alice.say(room["id"], "異動後の投稿です。")
    assert before["sender"]["affiliation"] == a.affiliation
    assert after["sender"]["affiliation"] == new_home.affiliation != a.affiliation

    reply = await alice.post("/api/records/exports", json={"room_id": room["id"], "wareki": True}, expect=200)
    assert reply.headers["Content-Type"] == "application/zip"
    headings, rows, info = _rows(reply.raw)
    assert headings == EXPECTED_COLUMNS
    by_id = {row[3]: dict(zip(headings, row, strict=True)) for row in rows}
    assert by_id[before["id"]]["所属（送信時）"] == a.affiliation          # the old 所属, intact Japanese
    assert by_id[before["id"]]["本文"] == "答弁案の第一稿を共有します。＝修正は金曜まで"
    assert by_id[after["id"]]["所属（送信時）"] == new_home.affiliation
    assert str(by_id[before["id"]]["和暦"]).startswith("令和")
    assert by_id[before["id"]]["送信者"] == a.name
    formula_row = next(r for r in by_id.values() if str(r["本文"]).startswith("=HYPERLINK"))
    assert formula_row["本文"].startswith("=HYPERLINK")                 # kept as text…
    with zipfile.ZipFile(io.BytesIO(reply.raw)) as zf:
        xlsx, csv_text = zf.read("records.xlsx"), zf.read("records.csv").decode("utf-8-sig")
    with zipfile.ZipFile(io.BytesIO(xlsx)) as sheet_zip:                 # …never stored as a formula
        assert b"<f>" not in sheet_zip.read("xl/worksheets/sheet1.xml")
    assert "'=HYPERLINK" in csv_text and a.affiliation in csv_text
    assert info["ルーム"] == "議会答弁調整" and a.name in str(info["メンバー"])
    # The PDF (acceptance statement 12) says the same: each message with its 所属 at the time of sending.
    assert info["PDF"] == "records.pdf"
    text = _pdf_text(reply.raw)
    squash = lambda value: "".join(value.split())  # noqa: E731
    assert squash(f"{a.name}（{a.affiliation}）") in text
    assert squash(f"{a.name}（{new_home.affiliation}）") in text
    assert squash("答弁案の第一稿を共有します。＝修正は金曜まで") in text and "=HYPERLINK" in text
    assert squash("メンバー") in text and "議会答弁調整" in text and str(before["id"]) in text

    # the audit log records the export (without its content)
    assert server.scalar("SELECT count(*) FROM audit_log WHERE action = 'records.export' AND actor_id = ?",
                         (a.id,)) == 1


async def test_manifest_detects_one_changed_byte(make_server: Callable[..., ServerProcess], clients: ClientFactory,
                                                 roster: Roster) -> None:
    server = make_server()
    a = roster.one()
    alice = await clients.staff(server, a)
    room = await alice.create_room("署名確認", [])
    await alice.say(room["id"], "署名付きで書き出す記録")
    bundle = (await alice.post("/api/records/exports", json={"room_id": room["id"]}, expect=200)).raw
    fingerprint = (await alice.get("/api/records/key", expect=200)).data["fingerprint"]
    manifest = verify_bundle(bundle, fingerprint)
    assert {f["name"] for f in manifest["files"]} == {"records.xlsx", "records.csv", "records.pdf"}

    with zipfile.ZipFile(io.BytesIO(bundle)) as zf:
        parts = {name: zf.read(name) for name in zf.namelist()}
    tampered_csv = bytearray(parts["records.csv"])
    tampered_csv[-3] ^= 0x01
    rebuilt = io.BytesIO()
    with zipfile.ZipFile(rebuilt, "w") as zf:
        for name, data in parts.items():
            zf.writestr(name, bytes(tampered_csv) if name == "records.csv" else data)
    with pytest.raises(ManifestError, match="records.csv"):
        verify_bundle(rebuilt.getvalue())
    with pytest.raises(ManifestError, match="another key"):
        verify_bundle(bundle, "0000 1111 2222 3333 4444 5555 6666 7777")

    # the command a records officer runs
    path = server.root / "bundle.zip"
    path.write_bytes(bundle)
    ok = await _verify_cli(path, "--fingerprint", fingerprint)
    assert ok.returncode == 0, ok.stderr
    path.write_bytes(rebuilt.getvalue())
    bad = await _verify_cli(path)
    assert bad.returncode == 1 and "records.csv" in bad.stderr


async def _verify_cli(path: object, *extra: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "shared.manifest", "verify", str(path), *extra],
                                   capture_output=True, text=True, timeout=60)


async def test_marked_message_cannot_be_deleted_and_edits_keep_versions(
        demo_server: ServerProcess, clients: ClientFactory, people: Roster) -> None:
    a, b = people.take(2, same_department=True)
    alice, bob = await clients.staff(demo_server, a), await clients.staff(demo_server, b)
    room = await alice.create_room("方針決定", [b])
    decision = await alice.say(room["id"], "接種会場は市民体育館とする。")
    plain = await alice.say(room["id"], "了解です")
    reply = await bob.post(f"/api/messages/{decision['id']}/record",
                           json={"class_id": await _class_id(bob, "5y"), "scope": "message", "title": "接種会場の決定"},
                           expect=201)
    assert reply.data["retain_until"] == retain_until(date.fromisoformat(today_jst()), 5).isoformat()
    await bob.post(f"/api/messages/{decision['id']}/record", json={"class_id": await _class_id(bob, "1y")},
                   expect=409, code="already_marked")

    before = demo_server.fingerprint(("messages", "message_edits"))
    await alice.delete(f"/api/messages/{decision['id']}", expect=409, code="retention_locked")
    assert demo_server.fingerprint(("messages", "message_edits")) == before
    await alice.delete(f"/api/messages/{plain['id']}", expect=200)              # unmarked: allowed

    await alice.patch(f"/api/messages/{decision['id']}", json={"body": "接種会場は市民体育館（第2会場：公民館）とする。"},
                      expect=200)
    versions = (await bob.get(f"/api/messages/{decision['id']}/history", expect=200)).data["versions"]
    assert [v["body"] for v in versions] == ["接種会場は市民体育館とする。", "接種会場は市民体育館（第2会場：公民館）とする。"]
    assert demo_server.scalar("SELECT count(*) FROM audit_log WHERE action = 'records.mark' AND target_id = ?",
                              (str(decision["id"]),)) == 1


async def test_thread_mark_covers_replies(demo_server: ServerProcess, clients: ClientFactory,
                                          people: Roster) -> None:
    a, b = people.take(2, same_department=True)
    alice, bob = await clients.staff(demo_server, a), await clients.staff(demo_server, b)
    room = await alice.create_room("スレッド記録", [b])
    root = await alice.say(room["id"], "予算要求の方針について")
    reply = await bob.say(room["id"], "前年度比 5% 増で要求します", thread_root_id=root["id"])
    await alice.post(f"/api/messages/{root['id']}/record", json={"class_id": await _class_id(alice, "3y"),
                                                                  "scope": "thread"}, expect=201)
    await bob.delete(f"/api/messages/{reply['id']}", expect=409, code="retention_locked")
    await alice.post(f"/api/messages/{reply['id']}/record", json={"class_id": await _class_id(alice, "1y"),
                                                                   "scope": "thread"}, expect=400)


async def test_disposal_needs_approval_and_respects_legal_hold(
        make_server: Callable[..., ServerProcess], clients: ClientFactory, roster: Roster) -> None:
    server = make_server()
    officer, officer_id = await _officer(server, clients, roster)
    admin = await clients.admin(server)
    a = roster.one()
    alice = await clients.staff(server, a)
    room = await alice.create_room("廃棄テスト", [])
    old = await alice.say(room["id"], "保存期間が満了した記録")
    held_msg = await alice.say(room["id"], "保全対象の記録")
    marks = []
    for msg in (old, held_msg):
        marks.append((await alice.post(f"/api/messages/{msg['id']}/record",
                                       json={"class_id": await _class_id(alice, "1y")}, expect=201)).data)
    # Not expired yet: neither listed nor proposable.
    assert (await officer.get("/api/records/disposal-candidates", expect=200)).data["candidates"] == []
    await officer.post("/api/records/disposals", json={"mark_ids": [marks[0]["id"]]}, expect=409,
                       code="retention_active")
    # Let the retention period end (the test moves the expiry date into the past instead of waiting a year).
    with server.db_rw() as conn:
        conn.execute("UPDATE record_marks SET retain_until = '2020-03-31'")
    assert {c["id"] for c in (await officer.get("/api/records/disposal-candidates")).data["candidates"]} == \
        {m["id"] for m in marks}

    # Staff cannot run disposal; the proposer cannot approve their own proposal.
    await alice.post("/api/records/disposals", json={"mark_ids": [marks[0]["id"]]}, expect=403, code="forbidden")
    first = (await officer.post("/api/records/disposals", json={"mark_ids": [marks[0]["id"]]}, expect=201)).data["id"]
    await officer.post(f"/api/records/disposals/{first}/execute", expect=409, code="disposal_not_approved")
    assert server.scalar("SELECT body FROM messages WHERE id = ?", (old["id"],)) == old["body"]
    await officer.post(f"/api/records/disposals/{first}/approve", expect=403)
    await admin.post(f"/api/records/disposals/{first}/approve", expect=200)
    removed = (await officer.post(f"/api/records/disposals/{first}/execute", expect=200)).data["messages_removed"]
    assert removed == 1
    assert server.scalar("SELECT body FROM messages WHERE id = ?", (old["id"],)) == ""
    tomb = server.query("SELECT message_id, approved_by, class_code, body_sha256 FROM record_tombstones")
    assert [(t[0], t[2]) for t in tomb] == [(old["id"], "1y")] and tomb[0][1] != officer_id and len(tomb[0][3]) == 64

    # A legal hold placed after approval still blocks execution, and nothing is removed.
    second = (await officer.post("/api/records/disposals", json={"mark_ids": [marks[1]["id"]]}, expect=201)).data["id"]
    await admin.post(f"/api/records/disposals/{second}/approve", expect=200)
    hold = (await officer.post("/api/records/holds", json={"message_id": held_msg["id"], "reason": "情報公開請求 第12号"},
                               expect=201)).data["id"]
    await officer.post(f"/api/records/disposals/{second}/execute", expect=409, code="legal_hold")
    assert server.scalar("SELECT body FROM messages WHERE id = ?", (held_msg["id"],)) == held_msg["body"]
    await alice.delete(f"/api/messages/{held_msg['id']}", expect=409, code="legal_hold")   # expired, but held
    await officer.delete(f"/api/records/holds/{hold}", expect=200)
    assert (await officer.post(f"/api/records/disposals/{second}/execute", expect=200)).data["messages_removed"] == 1
    actions = [r[0] for r in server.query("SELECT action FROM audit_log WHERE action LIKE 'records.%' ORDER BY id")]
    for expected in ("records.mark", "records.disposal_propose", "records.disposal_approve",
                     "records.disposal_execute", "records.hold", "records.hold_release"):
        assert expected in actions


async def test_disclosure_search_is_for_records_officers_and_audited(
        make_server: Callable[..., ServerProcess], clients: ClientFactory, roster: Roster) -> None:
    server = make_server()
    officer, officer_id = await _officer(server, clients, roster)
    a, other = roster.take(2)
    alice, stranger = await clients.staff(server, a), await clients.staff(server, other)
    room = await alice.create_room("情報公開テスト", [])
    await alice.say(room["id"], "道路補修工事の入札結果について")

    await stranger.get("/api/records/search", params={"q": "入札"}, expect=403, code="forbidden")
    admin = await clients.admin(server)
    await admin.get("/api/records/search", params={"q": "入札"}, expect=403, code="forbidden")
    denied = server.scalar("SELECT count(*) FROM audit_log WHERE action = 'records.disclosure_search'"
                           " AND outcome = 'denied'")
    assert denied == 2

    found = (await officer.get("/api/records/search", params={"q": "入札結果"}, expect=200)).data["results"]
    assert [r["body"] for r in found] == ["道路補修工事の入札結果について"]        # across rooms they are not in
    assert found[0]["affiliation"] == a.affiliation
    by_affiliation = (await officer.get("/api/records/search", params={"affiliation": a.department},
                                        expect=200)).data["results"]
    assert any(r["sender_id"] == a.id for r in by_affiliation)
    entry = server.query("SELECT actor_id, detail FROM audit_log WHERE action = 'records.disclosure_search'"
                         " AND outcome = 'ok' ORDER BY id LIMIT 1")[0]
    assert entry[0] == officer_id and "入札結果" in entry[1]
    export = await officer.get("/api/records/search/export", params={"q": "入札"}, expect=200)
    assert verify_bundle(export.raw)["meta"]["kind"] == "disclosure"


async def test_audit_export_is_signed_and_admin_only(make_server: Callable[..., ServerProcess],
                                                     clients: ClientFactory, roster: Roster) -> None:
    server = make_server()
    admin = await clients.admin(server)
    staff = await clients.staff(server, roster.one())
    await staff.get("/api/admin/audit/export", expect=403)
    reply = await admin.get("/api/admin/audit/export", params={"action": "auth"}, expect=200)
    manifest = verify_bundle(reply.raw)
    assert manifest["meta"]["kind"] == "audit"
    with zipfile.ZipFile(io.BytesIO(reply.raw)) as zf:
        wb = openpyxl.load_workbook(io.BytesIO(zf.read("audit.xlsx")))
    rows = list(wb["操作ログ"].iter_rows(values_only=True))
    assert rows[0][:6] == ("ID", "日時（JST）", "ログインID", "所属", "送信元", "操作")
    assert all(str(r[5]).startswith("auth") for r in rows[1:]) and len(rows) > 1
