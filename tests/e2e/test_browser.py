"""The invitation flow in real browsers (Debian's chromium through Playwright; never `playwright install`).

Both tiers run as real processes. Staff side, entirely in the staff UI: the room owner opens the
room's ゲスト panel, invites a guest, copies the one-time link, sees the guest's status change when
they have registered on the relay (live), approves them (届け出制), and at the end re-invites and
removes them (the guest's relay session ends). Guest side, entirely in the
relay's UI: open the link handed over out of band, read and acknowledge the 利用目的 notice, choose
a login, set a password and TOTP from the locally drawn QR code, log in, wait for approval, then
read and post. The conversation then runs between the two browsers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyotp
import pytest

from .harness import start_two_tiers

CHROMIUM = Path(os.environ.get("KAKEHASHI_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "guest-pass-2026!"

playwright_sync = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed")


def in_own_thread(flow: Callable[[Path], None], tmp_path: Path) -> None:
    """Run a browser flow on a thread of its own: another module's session-scoped Playwright (sync API)
    keeps an event loop on the main thread, where neither asyncio.run() nor a second sync_playwright()
    may start."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(flow, tmp_path).result()


def begin_enrolment(page: Any, login: str, password: str) -> str:
    """Fill the relay's enrolment form (Japanese) up to the QR code; returns the TOTP secret it shows."""
    enrol = page.locator("#view-enrol")
    enrol.get_by_label("ログインID").fill(login)
    enrol.get_by_label("パスワード").fill(password)
    enrol.get_by_role("button", name="QRコードを 出す").click()
    secret = page.locator("#totp-secret")
    playwright_sync.expect(secret).not_to_be_empty()
    return str(secret.inner_text()).strip()


def _code(secret: str, used: list[int]) -> str:
    """A TOTP code for a time step not used yet (each step is accepted once)."""
    while True:
        current = int(time.time()) // 30
        for step in (current, current + 1):
            if not used or step > used[-1]:
                used.append(step)
                return str(pyotp.TOTP(secret).at(step * 30))
        time.sleep(0.5)


def _axe(page: Any) -> list[dict[str, Any]]:
    """Serious or critical axe-core findings (WCAG 2.1 A/AA), when axe-playwright-python is installed."""
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:
        return []
    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
                                       "resultTypes": ["violations"]})
    return [{"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
            for v in results.response["violations"] if v["impact"] in ("serious", "critical")]


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"relay-{name}.png"), full_page=True)


def open_link(page: Any, link: str, timeout: float = 60.0) -> None:
    """Open an enrolment link once the account has crossed the queue (until then the relay does not know it).

    Each attempt starts from a blank page: going from /enrol to /enrol#token would only change the
    fragment, and the page would not load again.
    """
    deadline = time.monotonic() + timeout
    while True:
        page.goto("about:blank")
        page.goto(link)
        page.wait_for_function("() => document.getElementById('enrol-invited').textContent.trim()"
                               " || !document.getElementById('alert').hidden", timeout=15000)
        if page.locator("#enrol-invited").inner_text().strip():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the relay never knew the link: {page.locator('#alert').inner_text()}")
        time.sleep(0.2)


def _staff_shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"staff-{name}.png"))


def test_invitation_flow_in_the_browser(tmp_path: Path) -> None:
    in_own_thread(_invitation_flow, tmp_path)


def _invitation_flow(tmp_path: Path) -> None:
    tiers = asyncio.run(start_two_tiers(tmp_path))
    expect = playwright_sync.expect
    room = tiers.seed.rooms["guests-room"]
    try:
        with playwright_sync.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            # The owner, signed in (the cookie lands in the context), with the room open in the staff UI.
            staff_ctx = browser.new_context(base_url=tiers.lgwan_url, locale="ja-JP", timezone_id="Asia/Tokyo",
                                            viewport={"width": 1280, "height": 900},
                                            permissions=["clipboard-read", "clipboard-write"])
            login = staff_ctx.request.post("/api/auth/login", data={"login": "sato", "password": "kakehashi-test-2026"})
            assert login.ok, login.text()
            staff_page = staff_ctx.new_page()
            staff_errors: list[str] = []
            staff_page.on("console", lambda m: staff_errors.append(m.text) if m.type == "error" else None)
            staff_page.on("pageerror", lambda e: staff_errors.append(str(e)))
            staff_page.goto(f"/#/room/{room}")
            composer = staff_page.locator("#composer-input")
            expect(composer).to_be_visible(timeout=15000)

            # ゲスト panel: invite, and the link is shown once with a copy button.
            staff_page.locator(".room-tools").get_by_role("button", name="ゲスト", exact=True).click()
            panel = staff_page.locator(".guests-panel")
            expect(staff_page.locator("#side-title")).to_have_text("guests-room のゲスト")
            expect(panel.get_by_text("このルームには、まだゲストがいません。")).to_be_visible()
            panel.get_by_label("氏名").fill("山田 太郎")
            panel.get_by_label("所属（任意）").fill("架橋病院")
            panel.get_by_role("button", name="招待リンクを作成").click()
            link_box = panel.locator(".link-box")
            expect(link_box.get_by_role("heading")).to_have_text("山田 太郎（架橋病院） さんの招待リンク")
            link_input = link_box.get_by_label("リンク")
            expect(link_input).to_be_focused()
            link = link_input.input_value()
            assert link.startswith(f"{tiers.relay_url}/enrol#"), link
            link_box.get_by_role("button", name="コピー").click()
            expect(link_box.get_by_role("status")).to_have_text("リンクをコピーしました。")
            assert staff_page.evaluate("() => navigator.clipboard.readText()") == link
            item = panel.locator("li.guest-item", has_text="山田 太郎")
            expect(item.locator(".guest-status")).to_have_text("招待中")
            expect(item.get_by_role("button", name="承認")).to_have_count(0)     # nothing to approve yet
            _staff_shot(staff_page, "00-guest-invited")
            assert _axe(staff_page) == []
            # The panel is drawn again from the server: the link is not there any more (shown once).
            staff_page.get_by_role("button", name="閉じる").click()
            staff_page.locator(".room-tools").get_by_role("button", name="ゲスト", exact=True).click()
            expect(panel.locator("li.guest-item")).to_have_count(1)
            expect(panel.locator(".link-box")).to_have_count(0)
            assert link not in staff_page.evaluate("() => document.body.innerText")

            # Guest, in the relay UI: the link handed over out of band.
            guest_ctx = browser.new_context(base_url=tiers.relay_url, locale="ja-JP", viewport={"width": 390, "height": 844})
            page = guest_ctx.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            requested: list[str] = []
            page.on("request", lambda r: requested.append(r.url))
            open_link(page, link)
            expect(page.locator("#enrol-invited")).to_contain_text("山田 太郎")
            expect(page.locator("#privacy-text")).to_contain_text("利用目的")
            assert page.url.endswith("/enrol"), "the token must leave the address bar"
            enrol = page.locator("#view-enrol")
            secret = begin_enrolment(page, "yamada-hosp", PASSWORD)
            page.wait_for_function("() => { const i = document.getElementById('totp-qr');"
                                   " return i.complete && i.naturalWidth > 0; }")   # drawn locally, as an image
            used: list[int] = []
            enrol.get_by_label("アプリに 出ている 6けたの 数字").fill(_code(secret, used))
            _shot(page, "00-enrol-form")
            assert _axe(page) == []
            enrol.get_by_role("button", name="登録する").click()
            # Without the acknowledgement, enrolment does not complete (acceptance statement 17).
            expect(page.locator("#alert")).to_contain_text("利用目的")
            enrol.get_by_label("読みました。同意します。").check()
            enrol.get_by_role("button", name="登録する").click()
            expect(page.get_by_text("登録 できました。")).to_be_visible()
            _shot(page, "01-enrolled")
            assert _axe(page) == []

            # LGWAN hears of the enrolment and the acknowledgement: the owner's panel changes by itself.
            expect(item.locator(".guest-status")).to_have_text("承認待ち", timeout=30000)
            expect(item).to_contain_text("利用目的への同意")
            approve = item.get_by_role("button", name="山田 太郎（架橋病院） さんを承認")
            expect(approve).to_be_visible()

            page.get_by_role("link", name="ログインする").click()
            sign_in = page.locator("#view-login")
            expect(sign_in).to_be_visible()
            assert _axe(page) == []
            sign_in.get_by_label("ログインID").fill("yamada-hosp")
            sign_in.get_by_label("パスワード").fill(PASSWORD)
            sign_in.get_by_label("確認コード").fill(_code(secret, used))
            sign_in.get_by_role("button", name="ログイン").click()
            expect(page.get_by_role("heading", name="承認を 待っています")).to_be_visible()
            _shot(page, "02-waiting")

            # 届け出制: the owner approves in the staff UI, after a confirmation that names the guest.
            approve.click()
            dialog = staff_page.get_by_role("dialog", name="山田 太郎（架橋病院） さんを承認しますか？")
            expect(dialog).to_contain_text("利用目的への同意")
            _staff_shot(staff_page, "01-guest-approve")
            dialog.get_by_role("button", name="承認", exact=True).click()
            expect(item.locator(".guest-status")).to_have_text("参加中", timeout=15000)
            expect(panel.locator("p[role=status]").first).to_have_text("山田 太郎（架橋病院） さんを承認しました。")
            assert _axe(staff_page) == []
            expect(page.get_by_role("heading", name="guests-room")).to_be_visible(timeout=30000)

            # Guest → staff, seen live in the staff UI with the guest's name.
            page.get_by_role("textbox", name="メッセージ（文字だけ。ファイルは 送れません）").fill("はじめまして。架橋病院の山田です。")
            page.get_by_role("button", name="送信").click()
            expect(staff_page.get_by_text("はじめまして。架橋病院の山田です。", exact=True)).to_be_visible(timeout=30000)
            expect(staff_page.locator(".timeline").get_by_text("山田 太郎").first).to_be_visible()
            # Staff → guest, announced in the guest's live region.
            composer.fill("ようこそ。本日15時に打合せをお願いします。")
            composer.press("Enter")
            log = page.get_by_role("log")
            expect(log).to_contain_text("ようこそ。本日15時に打合せをお願いします。", timeout=30000)
            expect(log).to_contain_text("佐藤 花子")
            # 既読: the staff UI has the room open, so the guest's own message shows it was read.
            expect(log.locator("li.mine .read").first).to_contain_text("既読", timeout=30000)
            _shot(page, "03-chat")
            _staff_shot(staff_page, "02-guest-chat")
            assert _axe(page) == []

            # Re-invite: a new link (shown once again); the old one is dead.
            guest_id = item.get_attribute("data-guest-id")
            item.get_by_role("button", name="山田 太郎（架橋病院） さんを招待し直す").click()
            staff_page.get_by_role("dialog").get_by_role("button", name="招待し直す").click()
            again = panel.locator(".link-box")
            expect(again.get_by_role("heading")).to_have_text("山田 太郎（架橋病院） さんの新しい招待リンク")
            new_link = again.get_by_label("リンク").input_value()
            assert new_link.startswith(f"{tiers.relay_url}/enrol#") and new_link != link
            expect(item.locator(".guest-status")).to_have_text("参加中")
            # Remove: out of the room, and the guest's session on the relay ends.
            item.get_by_role("button", name="山田 太郎（架橋病院） さんを削除").click()
            dialog = staff_page.get_by_role("dialog", name="山田 太郎（架橋病院） さんを削除しますか？")
            expect(dialog).to_contain_text("これまでのメッセージは記録として残ります")
            dialog.get_by_role("button", name="削除").click()
            expect(panel.locator("p[role=status]").first).to_have_text("山田 太郎（架橋病院） さんを削除しました。")
            # Still listed for the owner (who had access, how it ended), with nothing left to do.
            expect(item.locator(".guest-status")).to_have_text("削除済み")
            expect(item.get_by_role("button")).to_have_count(0)
            assert staff_ctx.request.get(f"/api/guests/{guest_id}").json()["status"] == "removed"
            expect(page.locator("#view-login")).to_be_visible(timeout=30000)
            expect(page.locator("#view-chat")).to_be_hidden()

            assert [e for e in errors if "Failed to load resource" not in e] == []
            assert [e for e in staff_errors if "Failed to load resource" not in e] == []
            # The relay UI loads nothing from anywhere else (no CDN, no web fonts).
            outside = [u for u in requested if not u.startswith((tiers.relay_url, "data:", "ws://127.0.0.1"))]
            assert outside == []
            browser.close()
    finally:
        tiers.stop()
