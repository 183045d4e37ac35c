"""Accessibility (JIS X 8341-3:2016 AA, acceptance statement 23): axe-core on the main screens reports no
serious or critical violation; 200% zoom keeps everything usable; the English catalogue is complete.

axe-core comes from the PyPI package ``axe-playwright-python`` (it ships axe.min.js); nothing is
downloaded at test time."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import (
    AXE_RESULTS,
    ROOT,
    Server,
    Staff,
    axe_check,
    new_context,
    real_errors,
    room_id,
    shot,
    sign_in,
    watch,
)

KEY_LIKE = re.compile(r"\b(?:admin|app|common|composer|conn|enrol|error|kind|login|mention|msg|nav|notify|profile|"
                      r"reaction|receipts|room|search|settings|sidebar|status|thread|unit|audit|crossing|role|lang)"
                      r"\.[a-zA-Z_]+(?:\.[a-zA-Z_]+)*\b")


def test_axe_on_main_screens(browser: Any, server: Server, admin: Staff) -> None:
    pytest.importorskip("axe_playwright_python", reason="pip install axe-playwright-python (test extra)")
    serious: dict[str, list[dict[str, Any]]] = {}
    # Login page (signed out).
    context = new_context(browser, server)
    page = context.new_page()
    page.goto("/")
    page.locator("#login-id").wait_for()
    serious["login"] = axe_check(page, "login")
    shot(page, "01-login")
    context.close()

    sato = sign_in(browser, server, "sato")
    page = sato.page
    page.goto(f"/#/room/{room_id(sato, 'ワクチン接種調整')}")
    expect(page.locator(".timeline .msg").first).to_be_visible()
    serious["chat"] = axe_check(page, "chat")
    page.locator(".timeline .msg").last.locator(".reply").click()
    expect(page.locator(".thread-view")).to_be_visible()
    serious["thread"] = axe_check(page, "thread")
    page.locator(".timeline .msg").last.locator(".read-count").click()
    expect(page.locator("dialog.receipts-dialog")).to_be_visible()
    serious["receipts"] = axe_check(page, "receipts")
    page.keyboard.press("Escape")
    page.fill("#search-input", "会議")
    page.press("#search-input", "Enter")
    expect(page.locator(".search-results")).to_be_visible()
    serious["search"] = axe_check(page, "search")
    page.get_by_role("button", name="設定").click()
    serious["settings"] = axe_check(page, "settings")
    page.keyboard.press("Escape")
    page.locator(".me-button").click()
    expect(page.locator("dialog.profile-dialog")).to_contain_text("総務課")
    serious["profile"] = axe_check(page, "profile")
    page.keyboard.press("Escape")
    assert real_errors(sato.errors) == []
    sato.close()

    for section in ("staff", "import", "transfers", "security", "rooms", "phones", "audit", "usage"):
        admin.page.goto(f"/#/admin/{section}")
        expect(admin.page.locator(".admin-tab[aria-current=page]")).to_have_attribute("href", f"#/admin/{section}")
        admin.page.wait_for_load_state("networkidle")
        serious[f"admin-{section}"] = axe_check(admin.page, f"admin-{section}")
    # A room open to guests: the owner's ゲスト panel (how-to opened, a refused invitation's message shown).
    # With guests listed, approval dialogs and the relay link: tests/e2e/test_browser.py and test_phone_admin_browser.py.
    admin.page.goto(f"/#/room/{room_id(admin, '医療機関との連絡')}")
    admin.page.locator(".room-tools").get_by_role("button", name="ゲスト", exact=True).click()
    guests = admin.page.locator(".guests-panel")
    guests.get_by_text("招待から参加までの流れ").click()
    guests.get_by_label("氏名").fill("山田 太郎")
    guests.get_by_role("button", name="招待リンクを作成").click()
    expect(guests.locator(".form-error")).not_to_be_empty()
    serious["guests-panel"] = axe_check(admin.page, "guests-panel")
    admin.page.get_by_role("button", name="閉じる").click()
    serious["totp-enrolment"] = [v for v in AXE_RESULTS["totp-enrolment"] if v["impact"] in ("serious", "critical")]

    out = ROOT / "test-artifacts" / "axe-results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(AXE_RESULTS, ensure_ascii=False, indent=2), encoding="utf-8")
    assert {k: v for k, v in serious.items() if v} == {}


def test_200_percent_zoom_reflows(browser: Any, server: Server) -> None:
    """1280×800 at 200% zoom is a 640×400 CSS-pixel viewport at device scale 2."""
    sato = sign_in(browser, server, "sato", viewport={"width": 640, "height": 400}, device_scale_factor=2)
    page = sato.page
    page.goto(f"/#/room/{room_id(sato, 'ワクチン接種調整')}")
    expect(page.locator(".timeline .msg").first).to_be_visible()
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"horizontal scrolling at 200% ({overflow}px)"
    expect(page.locator("#composer-input")).to_be_in_viewport()
    toggle = page.get_by_role("button", name="ルーム一覧")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(page.locator("#sidebar")).to_be_in_viewport()
    expect(page.locator("#sidebar a").first).to_be_focused()
    shot(page, "09-zoom-200-sidebar")
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    sato.close()


def test_tablet_layout(browser: Any, server: Server) -> None:
    sato = sign_in(browser, server, "sato", viewport={"width": 820, "height": 1180}, has_touch=True, is_mobile=True)
    page = sato.page
    page.goto(f"/#/room/{room_id(sato, 'ワクチン接種調整')}")
    expect(page.locator(".timeline .msg").first).to_be_visible()
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, "11-tablet")
    sato.close()


def test_english_has_no_untranslated_strings(browser: Any, server: Server) -> None:
    sato = sign_in(browser, server, "sato")
    page = sato.page
    page.get_by_role("button", name="設定").click()
    page.get_by_label("表示言語").select_option("en")
    page.get_by_role("button", name="保存").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.locator(".timeline .msg").last.locator(".read-count").click()
    expect(page.locator("dialog")).to_contain_text("Read (")
    text = page.evaluate("() => document.body.innerText")
    assert KEY_LIKE.findall(text) == []
    page.keyboard.press("Escape")
    shot(page, "12-english")
    # Back to Japanese so the preference does not leak into screenshots of later runs.
    page.get_by_role("button", name="Settings").click()
    page.get_by_label("Language").select_option("ja")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("button", name="ログアウト")).to_be_visible()
    assert real_errors(sato.errors) == []
    sato.close()


def test_login_page_in_english_without_session(browser: Any, server: Server) -> None:
    context = new_context(browser, server)
    page = context.new_page()
    errors: list[str] = []
    watch(page, errors, [])
    page.goto("/")
    page.get_by_label("表示言語").select_option("en")
    expect(page.get_by_role("heading", name="Staff sign-in")).to_be_visible()
    assert KEY_LIKE.findall(page.evaluate("() => document.body.innerText")) == []
    context.close()
