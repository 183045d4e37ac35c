"""Issue 5 screens in the staff UI with the LGWAN server alone (no relay link configured here): the room's
ゲスト panel and 管理 → スマートフォン・端末. Everything that needs the relay — an invitation that
crosses, a device waiting for approval, the link's state — runs with both tiers in
tests/e2e/test_browser.py and tests/e2e/test_phone_admin_browser.py; here: who sees what, validation,
the refusal when there is no link, English, and 200% zoom."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from .conftest import Server, Staff, real_errors, room_id, shot, sign_in

CLINICS = "医療機関との連絡"          # the demo's room open to guests (crossing policy "guests"), made by admin
KEY_LIKE = re.compile(r"\b(?:guests|phones|bridge|link|admin|room)\.[a-zA-Z_]+(?:\.[a-zA-Z_]+)*\b")


def _open_guests(person: Staff, room: str, button: str = "ゲスト") -> Any:
    page = person.page
    page.goto(f"/#/room/{room_id(person, room)}")
    page.locator(".room-tools").get_by_role("button", name=button, exact=True).click()
    panel = page.locator(".guests-panel")
    expect(panel).to_be_visible()
    return panel


def test_owner_guest_panel_without_relay_link(admin: Staff) -> None:
    panel = _open_guests(admin, CLINICS)
    page = admin.page
    expect(page.locator("#side-title")).to_have_text(f"{CLINICS} のゲスト")
    expect(panel.get_by_text("このルームには、まだゲストがいません。")).to_be_visible()
    panel.get_by_text("招待から参加までの流れ").click()
    expect(panel.locator(".steps li")).to_have_count(4)
    expect(panel.locator(".steps")).to_contain_text("チャット以外の手段")
    # A name is required; the form says so and puts the cursor there.
    panel.get_by_role("button", name="招待リンクを作成").click()
    expect(panel.locator(".form-error")).to_have_text("氏名を入力してください。")
    expect(panel.get_by_label("氏名")).to_be_focused()
    # Without a relay link the server refuses, and the panel says why; no link is shown.
    panel.get_by_label("氏名").fill("山田 太郎")
    panel.get_by_label("所属（任意）").fill("架橋病院")
    panel.get_by_role("button", name="招待リンクを作成").click()
    expect(panel.locator(".form-error")).to_have_text("インターネット中継サーバーとの連携が設定されていません。")
    expect(panel.locator(".link-box")).to_have_count(0)
    expect(panel.locator("li.guest-item")).to_have_count(0)
    assert admin.api("GET", f"/api/rooms/{room_id(admin, CLINICS)}/guests")["guests"] == []
    shot(page, "40-guests-panel")
    assert real_errors(admin.errors) == []


def test_guest_panel_only_in_guest_rooms_and_read_only_for_members(browser: Any, server: Server) -> None:
    tanaka = sign_in(browser, server, "tanaka")    # a member of the clinics room, not its owner
    try:
        page = tanaka.page
        page.goto(f"/#/room/{room_id(tanaka, 'ワクチン接種調整')}")     # 庁内のみ: no guests, no button
        expect(page.locator(".room-tools").get_by_role("button", name="メンバー")).to_be_visible()
        expect(page.locator(".room-tools").get_by_role("button", name="ゲスト", exact=True)).to_have_count(0)
        panel = _open_guests(tanaka, CLINICS)
        expect(panel.get_by_text("ゲストの招待・承認・削除は、このルームのオーナーが行います。")).to_be_visible()
        expect(panel.locator("form.guest-invite")).to_have_count(0)
        expect(panel.get_by_role("button", name="招待リンクを作成")).to_have_count(0)
        # The server agrees: a member who is not an owner cannot invite.
        response = tanaka.context.request.post(f"/api/rooms/{room_id(tanaka, CLINICS)}/guests",
                                               headers={"X-CSRF-Token": tanaka.csrf},
                                               data={"display_name": "山田 太郎"})
        assert response.status in (403, 404, 409), response.text()
        assert real_errors(tanaka.errors) == []
    finally:
        tanaka.close()


def test_phone_admin_screen_without_relay_link(admin: Staff) -> None:
    page = admin.page
    page.goto("/#/admin/phones")
    expect(page.get_by_role("heading", name="スマートフォン・端末", level=2)).to_be_visible()
    expect(page.locator(".admin-body [role=alert]").first).to_have_text(
        "中継サーバーとの連携が設定されていないため、許可や承認はできません（一覧の表示のみ）。")
    expect(page.get_by_role("button", name="利用を許可")).to_be_disabled()
    expect(page.get_by_text("スマートフォンの利用を許可した職員はいません。")).to_be_visible()
    expect(page.get_by_text("承認待ちの端末はありません。")).to_be_visible()
    expect(page.get_by_text("該当する端末はありません。")).to_be_visible()
    staff_select = page.get_by_label("職員", exact=True)
    expect(staff_select.locator("option", has_text="佐藤 花子")).to_have_count(1)
    setting = page.locator("#guest-device-approval")
    expect(setting).to_have_attribute("data-value", "false")
    expect(setting).to_contain_text("承認不要")
    mobile = admin.api("GET", "/api/admin/mobile")
    assert mobile == {"grants": [], "bridge_enabled": False, "guest_device_approval": False}
    # The relay link is the server admin's: an org admin has no 中継サーバー連携 tab, and the URL falls back.
    expect(page.get_by_role("link", name="中継サーバー連携")).to_have_count(0)
    page.goto("/#/admin/bridge")
    expect(page.locator(".admin-tab[aria-current=page]")).to_have_attribute("href", "#/admin/staff")
    assert admin.api_status("GET", "/api/admin/bridge") == 403   # type: ignore[attr-defined]
    shot(page, "41-admin-phones")
    assert real_errors(admin.errors) == []


def test_phone_screens_are_admin_only(browser: Any, server: Server) -> None:
    sato = sign_in(browser, server, "sato")
    try:
        assert sato.api_status("GET", "/api/admin/mobile") == 403   # type: ignore[attr-defined]
        assert sato.api_status("GET", "/api/admin/devices") == 403   # type: ignore[attr-defined]
        expect(sato.page.locator("#admin-link")).to_have_count(0)
        sato.page.goto("/#/admin/phones")
        expect(sato.page.locator(".room-view")).to_be_visible()     # not an admin: back to a room
        expect(sato.page.locator(".admin")).to_have_count(0)
    finally:
        sato.close()


def test_guest_and_phone_screens_in_english_and_at_200_percent(browser: Any, server: Server, admin: Staff) -> None:
    page = admin.page
    page.goto("/#/admin/phones")
    page.evaluate("() => localStorage.setItem('kakehashi.prefs', JSON.stringify({lang: 'en'}))")
    try:
        page.reload()
        expect(page.get_by_role("heading", name="Phones and devices", level=2)).to_be_visible()
        expect(page.get_by_role("button", name="Grant phone use")).to_be_disabled()
        text = page.evaluate("() => document.body.innerText")
        assert KEY_LIKE.findall(text) == [], KEY_LIKE.findall(text)
        panel = _open_guests(admin, CLINICS, "Guests")
        expect(page.locator("#side-title")).to_have_text(f"Guests of {CLINICS}")
        expect(panel.get_by_role("button", name="Create invitation link")).to_be_visible()
        expect(panel.get_by_text("This room has no guests yet.")).to_be_visible()
        text = page.evaluate("() => document.body.innerText")
        assert KEY_LIKE.findall(text) == [], KEY_LIKE.findall(text)
    finally:
        page.evaluate("() => localStorage.setItem('kakehashi.prefs', JSON.stringify({lang: 'ja'}))")
        page.reload()
        expect(page.get_by_role("button", name="ログアウト")).to_be_visible()
    # 1280×800 at 200%: a 640×400 CSS-pixel window, with the admin's session.
    context = browser.new_context(base_url=server.base_url, viewport={"width": 640, "height": 400},
                                  device_scale_factor=2, locale="ja-JP", timezone_id="Asia/Tokyo")
    try:
        context.add_cookies(admin.context.cookies())
        zoomed = context.new_page()
        zoomed.goto("/#/admin/phones")
        expect(zoomed.get_by_role("heading", name="スマートフォン・端末", level=2)).to_be_visible()
        zoomed.wait_for_load_state("networkidle")
        overflow = zoomed.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"phones: horizontal scrolling at 200% ({overflow}px)"
        zoomed.goto(f"/#/room/{room_id(admin, CLINICS)}")
        zoomed.locator(".room-tools").get_by_role("button", name="ゲスト", exact=True).click()
        expect(zoomed.locator(".guests-panel")).to_be_visible()
        overflow = zoomed.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"guests panel: horizontal scrolling at 200% ({overflow}px)"
        shot(zoomed, "42-zoom-200-guests")
    finally:
        context.close()
