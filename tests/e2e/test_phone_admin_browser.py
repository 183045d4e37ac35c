"""Staff phones (届け出制) and the relay link, administered in the staff UI, with both tiers running.

The admin grants a staff member phone use in 管理 → スマートフォン・端末 and copies the one-time
enrolment link; the staff member enrols on the relay in a phone-sized browser and signs in, which
leaves the phone waiting for approval; the device request crosses to LGWAN and shows up as pending;
the admin approves it and the phone gets in; the admin revokes it and the phone's session ends at
once; finally phone use itself is revoked. The read-only guest-device setting comes from the config
file. 中継サーバー連携 shows the live link and pauses, resumes and resyncs it.
(Debian's chromium through Playwright; never `playwright install`.)
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from .harness import PASSWORD, start_two_tiers
from .test_browser import CHROMIUM, CHROMIUM_ARGS, _axe, _code, begin_enrolment, in_own_thread, open_link

playwright_sync = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed")

SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PHONE_PASSWORD = "phone-pass-2026!"


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"admin-{name}.png"), full_page=True)


def test_phone_grant_device_approval_and_bridge_in_the_browser(tmp_path: Path) -> None:
    in_own_thread(_phone_admin_flow, tmp_path)


def _phone_admin_flow(tmp_path: Path) -> None:
    tiers = asyncio.run(start_two_tiers(tmp_path, lgwan_extra="guest_device_approval = true"))
    expect = playwright_sync.expect
    admin_codes: list[int] = []
    try:
        with playwright_sync.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            admin_ctx = browser.new_context(base_url=tiers.lgwan_url, locale="ja-JP", timezone_id="Asia/Tokyo",
                                            viewport={"width": 1280, "height": 900})
            login = admin_ctx.request.post("/api/auth/login", data={
                "login": "admin", "password": PASSWORD, "totp": _code(tiers.seed.admin_totp, admin_codes)})
            assert login.ok, login.text()
            page = admin_ctx.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto("/#/admin/phones")
            expect(page.get_by_role("heading", name="スマートフォン・端末", level=2)).to_be_visible(timeout=15000)
            # The guest-device rule is the config file's ([bridge] guest_device_approval = true), shown read-only.
            setting = page.locator("#guest-device-approval")
            expect(setting).to_have_text("ゲストが新しい端末でログインするときも、管理者の承認が必要です。")
            expect(setting).to_have_attribute("data-value", "true")
            expect(page.get_by_text("スマートフォンの利用を許可した職員はいません。")).to_be_visible()
            expect(page.get_by_text("承認待ちの端末はありません。")).to_be_visible()

            # Grant phone use to 鈴木 健太: the enrolment link is shown once.
            page.get_by_label("職員", exact=True).select_option(label="鈴木 健太（所属なし・suzuki）")
            page.get_by_role("button", name="利用を許可").click()
            link_box = page.locator(".link-box")
            expect(link_box.get_by_role("heading")).to_have_text("鈴木 健太 さんの登録リンク")
            link = link_box.get_by_label("リンク").input_value()
            assert link.startswith(f"{tiers.relay_url}/enrol#"), link
            grant_row = page.locator("table.mobile-table tbody tr", has_text="鈴木 健太")
            expect(grant_row).to_have_attribute("data-status", "granted")
            expect(grant_row).to_contain_text("登録待ち")
            # Someone with phone use is no longer offered in the grant list.
            assert "suzuki" not in page.locator("#mobile-staff").inner_text()

            # The phone: enrol from the link, then sign in — a new device waits for approval.
            phone_ctx = browser.new_context(base_url=tiers.relay_url, locale="ja-JP", viewport={"width": 390, "height": 844},
                                            user_agent="Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 "
                                                       "(KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36")
            phone = phone_ctx.new_page()
            phone_errors: list[str] = []
            phone.on("pageerror", lambda e: phone_errors.append(str(e)))
            open_link(phone, link)      # once the account has crossed the queue
            expect(phone.locator("#enrol-invited")).to_contain_text("鈴木 健太")
            expect(phone.locator("#privacy-box")).to_be_hidden()       # staff: no guest privacy notice
            enrol = phone.locator("#view-enrol")
            secret = begin_enrolment(phone, "suzuki-phone", PHONE_PASSWORD)
            phone_codes: list[int] = []
            enrol.get_by_label("アプリに 出ている 6けたの 数字").fill(_code(secret, phone_codes))
            enrol.get_by_role("button", name="登録する").click()
            expect(phone.get_by_text("登録 できました。")).to_be_visible()

            def sign_in_on_phone() -> None:
                phone.goto("/")
                form = phone.locator("#view-login")
                expect(form).to_be_visible(timeout=15000)
                form.get_by_label("ログインID").fill("suzuki-phone")
                form.get_by_label("パスワード").fill(PHONE_PASSWORD)
                form.get_by_label("確認コード").fill(_code(secret, phone_codes))
                form.get_by_role("button", name="ログイン").click()

            sign_in_on_phone()
            expect(phone.locator("#device-wait")).to_be_visible(timeout=15000)
            expect(phone.locator("#view-chat")).to_be_hidden()

            # The device request crosses to LGWAN and shows up on the admin's open page by itself (a live
            # event to the organisation's admins, announced to screen readers too).
            pending = page.locator("table.device-table tbody tr[data-status=pending]", has_text="鈴木 健太")
            expect(pending).to_be_visible(timeout=30000)
            expect(page.get_by_text("端末の承認依頼が届きました（管理 → スマートフォン・端末）。")).to_be_attached()
            expect(page.locator(".pending-count")).to_have_text("承認待ちの端末が 1 台あります。")
            expect(pending).to_contain_text("Android")
            expect(grant_row).to_have_attribute("data-status", "active")       # enrolled meanwhile
            expect(grant_row).to_contain_text("利用中")
            _shot(page, "00-phones-pending")
            assert _axe(page) == []

            # Approve (after a confirmation naming person and device); the phone can now sign in.
            pending.get_by_role("button", name="を承認").click()
            dialog = page.get_by_role("dialog")
            expect(dialog.get_by_role("heading")).to_contain_text("鈴木 健太 さんの端末「")
            dialog.get_by_role("button", name="承認", exact=True).click()
            approved = page.locator("table.device-table tbody tr[data-status=approved]", has_text="鈴木 健太")
            expect(approved).to_contain_text("承認済み")
            expect(page.locator(".pending-count")).to_have_text("承認待ちの端末はありません。")
            device_id = approved.get_attribute("data-device-id")
            assert device_id and len(device_id) == 32
            devices = admin_ctx.request.get("/api/admin/devices").json()["devices"]
            assert [(d["device_id"], d["status"]) for d in devices] == [(device_id, "approved")]

            deadline = time.monotonic() + 60
            while True:                  # the decision crosses to the relay
                sign_in_on_phone()
                try:
                    expect(phone.locator("#view-chat")).to_be_visible(timeout=5000)
                    break
                except AssertionError:
                    if time.monotonic() > deadline:
                        raise
            expect(phone.get_by_role("button", name="mobile-room")).to_be_visible(timeout=15000)

            # Revoke the device (lost phone): its session on the relay ends at once.
            approved.get_by_role("button", name="取り消す").click()
            dialog = page.get_by_role("dialog")
            expect(dialog).to_contain_text("紛失")
            dialog.get_by_role("button", name="取り消す").click()
            revoked = page.locator("table.device-table tbody tr[data-status=revoked]", has_text="鈴木 健太")
            expect(revoked).to_contain_text("取り消し済み")
            expect(revoked.get_by_role("button")).to_have_count(0)
            expect(phone.locator("#view-login")).to_be_visible(timeout=30000)
            expect(phone.locator("#view-chat")).to_be_hidden()

            # Revoke phone use itself; the person may be granted again later.
            grant_row.get_by_role("button", name="利用を取り消す").click()
            page.get_by_role("dialog").get_by_role("button", name="利用を取り消す").click()
            expect(grant_row).to_have_attribute("data-status", "revoked")
            expect(grant_row).to_contain_text("取り消し済み")
            expect(grant_row.get_by_role("button", name="鈴木 健太 さんに再び許可")).to_be_visible()
            assert admin_ctx.request.get("/api/admin/mobile").json()["grants"][0]["status"] == "revoked"
            _shot(page, "01-phones-revoked")

            # 中継サーバー連携 (server admins): the link is up; pause it, resume it, ask for a resync.
            page.get_by_role("link", name="中継サーバー連携").click()
            state = page.locator("#bridge-state")
            expect(state).to_have_attribute("data-state", "up", timeout=15000)
            expect(state).to_contain_text("接続中")
            expect(page.locator("dd[data-fact=depth]")).to_contain_text("件")
            assert _axe(page) == []
            _shot(page, "02-bridge")
            page.get_by_role("button", name="緊急遮断").click()
            page.get_by_role("dialog").get_by_role("button", name="緊急遮断").click()
            expect(state).to_have_attribute("data-state", "paused")
            expect(state).to_contain_text("遮断中")
            assert admin_ctx.request.get("/api/admin/bridge").json()["paused"] is True
            page.get_by_role("button", name="再開").click()
            expect(page.locator(".admin-body p[role=status]").first).to_have_text("連携を再開しました。")
            expect(state).to_have_attribute("data-state", "up", timeout=30000)     # refreshes by itself
            page.get_by_role("button", name="再同期").click()
            page.get_by_role("dialog").get_by_role("button", name="再同期").click()
            expect(page.locator(".admin-body p[role=status]").first).to_have_text("再同期を依頼しました。")

            assert [e for e in errors if "Failed to load resource" not in e] == []
            assert phone_errors == []
            browser.close()
    finally:
        tiers.stop()
