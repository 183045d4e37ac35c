"""公文書管理 (issue 7) in the browser: 行政文書として保存 with a class and 件名, the badge, a refused delete
showing the API's Japanese error, a room export whose signed manifest verifies, the records officer's
情報公開請求 search (which a normal staff member never sees), legal holds, disposal, and the admin screens
(保存期間区分, 鍵の指紋, 職員を追加, セッション, all rooms' crossing policy, 操作ログの書き出し)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from shared.manifest import verify_bundle

from .conftest import Officers, Server, Staff, expect_no_serious, real_errors, room_id, shot, sign_in

DISASTER = "災害対策本部連絡"
WORD = "土砂災害警戒区域"
KEY_LIKE = re.compile(r"\b(?:admin|ack|audience|broadcast|disclosure|disposal|export|holds|members|msg|notice|password|"
                      r"picker|pins|polls|records|room|rooms|safety|task|work|common|nav)\.[a-zA-Z_]+(?:\.[a-zA-Z_]+)*\b")


@pytest.fixture(scope="module")
def sato(browser: Any, server: Server) -> Iterator[Staff]:
    person = sign_in(browser, server, "sato")
    yield person
    assert real_errors(person.errors) == []
    person.close()


def test_marked_message_cannot_be_deleted_and_room_export_verifies(sato: Staff, admin: Staff) -> None:
    page = sato.page
    rid = room_id(sato, DISASTER)
    page.goto(f"/#/room/{rid}")
    composer = page.locator("#composer-input")
    composer.fill(f"{WORD}の避難指示を17時に発令する方針で決定しました。")
    composer.press("Enter")
    msg = page.locator(".timeline-list > li.msg", has_text=WORD).last
    msg.get_by_role("button", name=re.compile("その他の操作")).click()
    page.locator("dialog.menu-dialog").get_by_role("button", name="行政文書として保存").click()
    dialog = page.locator("dialog.record-dialog")
    dialog.get_by_label("保存期間区分").select_option(label="3年")
    dialog.get_by_label("件名").fill("避難指示の発令方針")
    expect_no_serious(page, "record-mark")
    shot(page, "40-record-mark")
    dialog.get_by_role("button", name="保存", exact=True).click()
    badge = msg.locator(".record-tag")
    expect(badge).to_contain_text("行政文書 3年")
    expect(badge).to_contain_text(re.compile(r"満了 \d{4}-03-31"))

    msg.get_by_role("button", name=re.compile("その他の操作")).click()
    page.locator("dialog.menu-dialog").get_by_role("button", name="削除").click()
    page.locator("dialog[open]").get_by_role("button", name="削除").click()
    expect(msg.locator(".msg-error")).to_have_text("保存期間中の行政文書のため削除できません。")
    expect(msg.locator(".msg-body")).to_contain_text(WORD)
    shot(page, "41-record-delete-refused")
    # After a reload the badge is still there (it comes with the message).
    page.reload()
    expect(page.locator(".timeline-list > li.msg", has_text=WORD).last.locator(".record-tag")).to_be_visible()

    page.get_by_role("button", name="書き出し", exact=True).click()
    export = page.locator("dialog.export-dialog")
    export.get_by_label("和暦の列を加える").check()
    expect_no_serious(page, "records-export")
    with page.expect_download() as info:
        export.get_by_role("button", name="書き出す").click()
    download = info.value
    assert download.suggested_filename.endswith(".zip")
    data = Path(download.path()).read_bytes()
    fingerprint = sato.api("GET", "/api/records/key")["fingerprint"]
    manifest = verify_bundle(data, fingerprint)
    names = {f["name"] if isinstance(f, dict) else f for f in manifest.get("files", [])} or set(manifest)
    assert any("records.csv" in str(n) for n in names), manifest
    expect(export.locator("[role=status]")).to_contain_text("保存しました")
    export.get_by_role("button", name="閉じる").click()


def test_disclosure_search_for_records_officer_only(browser: Any, server: Server, officers: Officers,
                                                    sato: Staff) -> None:
    sato.page.goto("/#/work/tasks")
    expect(sato.page.locator(".admin-nav")).to_be_visible()
    expect(sato.page.get_by_role("link", name="情報公開請求")).to_have_count(0)
    sato.page.goto("/#/work/disclosure")          # typed by hand: falls back to マイタスク
    expect(sato.page.locator(".admin-tab[aria-current=page]")).to_have_text("マイタスク")
    assert sato.api_status("GET", f"/api/records/search?q={WORD}") == 403

    officer = sign_in(browser, server, officers.records_login)
    page = officer.page
    page.locator("#work-link").click()
    page.get_by_role("link", name="情報公開請求").click()
    page.get_by_label("本文に含む語句").fill(WORD)
    page.get_by_role("search", name="情報公開請求の検索").get_by_role("button", name="検索", exact=True).click()
    table = page.locator(".disclosure-table")
    expect(table).to_contain_text(DISASTER)
    expect(table.locator("mark").first).to_have_text(WORD)
    expect(table).to_contain_text("3年")
    expect_no_serious(page, "disclosure")
    shot(page, "42-disclosure")
    with page.expect_download() as info:
        page.get_by_role("button", name=re.compile("検索結果を書き出す")).click()
    verify_bundle(Path(info.value.path()).read_bytes(), officer.api("GET", "/api/records/key")["fingerprint"])

    page.get_by_role("link", name="訴訟ホールド").click()
    page.locator("#hold-room").select_option(index=1)
    page.get_by_label("理由").fill("情報公開請求 第12号への対応")
    page.get_by_role("button", name="保全をかける", exact=True).click()
    holds = page.locator(".holds-table")
    expect(holds).to_contain_text("第12号")
    expect_no_serious(page, "legal-holds")
    shot(page, "43-legal-holds")
    holds.get_by_role("button", name=re.compile("を解除")).first.click()
    page.locator("dialog[open]").get_by_role("button", name="解除").click()
    expect(page.locator(".admin-body > [role=status]").first).to_contain_text("保全を解除しました")

    page.get_by_role("link", name="廃棄").click()
    expect(page.locator("#disp-c-h")).to_be_visible()
    expect_no_serious(page, "disposal")
    assert real_errors(officer.errors) == []
    officer.close()


def test_admin_records_staff_sessions_rooms_and_audit_export(admin: Staff, sato: Staff) -> None:
    sato.api("POST", "/api/rooms", data={"kind": "project", "name": "窓口改善検討", "member_ids": []})
    page = admin.page
    page.goto("/#/admin/records")
    fingerprint = page.locator("#records-fingerprint")
    expect(fingerprint).to_have_text(admin.api("GET", "/api/records/key")["fingerprint"])
    page.get_by_role("button", name="区分を追加").click()
    row = page.locator(".classes-table tbody tr").last
    row.get_by_label(re.compile("行目のコード")).fill("7y")
    row.get_by_label(re.compile("行目の表示名")).fill("7年")
    row.get_by_label(re.compile("行目の年数")).fill("7")
    page.get_by_role("button", name="保存").click()
    expect(page.locator(".admin-body [role=status]").last).to_contain_text("保存期間区分を保存しました")
    assert any(c["label"] == "7年" and c["years"] == 7 for c in admin.api("GET", "/api/records/classes")["classes"])
    expect_no_serious(page, "admin-records")
    shot(page, "44-admin-records")

    page.goto("/#/admin/staff")
    page.get_by_text("職員を追加").click()
    page.locator("#ns-login").fill("newcomer")
    page.locator("#ns-name").fill("新任 太郎")
    page.locator("#ns-dept").select_option(label="税務課")
    page.get_by_label("初期パスワード（任意）").fill("kakehashi-start-2026")
    page.get_by_role("button", name="追加", exact=True).click()
    expect(page.locator(".add-staff [role=status]")).to_contain_text("新任 太郎 さんを追加しました")
    page.fill("#staff-filter", "sato")
    page.get_by_role("button", name="佐藤 花子 のセッション一覧").click()
    sessions = page.locator("dialog.sessions-dialog")
    expect(sessions.locator("caption")).to_contain_text("ログイン中のセッション")
    expect_no_serious(page, "admin-sessions")
    shot(page, "45-admin-sessions")
    sessions.get_by_role("button", name="閉じる").click()

    page.goto("/#/admin/rooms")
    expect(page.get_by_label("窓口改善検討 の公開範囲")).to_be_visible()     # a room the admin is not in
    rooms = admin.api("GET", "/api/admin/rooms")["rooms"]
    assert all(set(r) == {"id", "kind", "name", "crossing_policy", "archived", "member_count"} for r in rooms)
    assert all(r["kind"] != "dm" for r in rooms)

    page.goto("/#/admin/audit")
    with page.expect_download() as info:
        page.locator("#audit-export").click()
    verify_bundle(Path(info.value.path()).read_bytes(), admin.api("GET", "/api/records/key")["fingerprint"])


def test_admin_rooms_is_org_admin_only(sato: Staff) -> None:
    assert sato.api_status("GET", "/api/admin/rooms") == 403


def test_new_screens_in_english(browser: Any, server: Server, officers: Officers) -> None:
    person = sign_in(browser, server, officers.records_login, locale="en-GB")
    page = person.page
    page.evaluate("() => localStorage.setItem('kakehashi.prefs', JSON.stringify({lang: 'en'}))")
    for section in ("tasks", "safety", "inbox", "notices", "holds", "disposal", "disclosure"):
        page.goto(f"/#/work/{section}")
        page.reload()
        expect(page.locator(".admin-tab[aria-current=page]")).to_be_visible()
        page.wait_for_load_state("networkidle")
        text = page.evaluate("() => document.body.innerText")
        assert KEY_LIKE.findall(text) == [], (section, KEY_LIKE.findall(text))
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    person.close()
