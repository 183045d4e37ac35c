"""The invitation flow in a real browser (Debian's chromium through Playwright; never `playwright install`).

Guest side, entirely in the relay's UI: open the link handed over out of band, read and acknowledge
the 利用目的 notice, choose a login, set a password and TOTP from the locally drawn QR code, log in,
wait for approval, then read and post. Staff side: the staff UI (lgwan_server/static, built by
another engineer) has no invite/approve screen yet, so the owner invites and approves **through the
staff API**; the conversation itself then runs in the staff UI in a second browser context.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
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


def test_invitation_flow_in_the_browser(tmp_path: Path) -> None:
    # Own thread: another module's session-scoped Playwright (sync API) keeps an event loop on the main
    # thread, where neither asyncio.run() nor a second sync_playwright() may start.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(_invitation_flow, tmp_path).result()


def _invitation_flow(tmp_path: Path) -> None:
    tiers = asyncio.run(start_two_tiers(tmp_path))
    expect = playwright_sync.expect
    room = tiers.seed.rooms["guests-room"]
    try:
        with playwright_sync.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            staff_ctx = browser.new_context(base_url=tiers.lgwan_url, locale="ja-JP")
            login = staff_ctx.request.post("/api/auth/login", data={"login": "sato", "password": "kakehashi-test-2026"})
            assert login.ok, login.text()
            csrf = {"X-CSRF-Token": login.json()["csrf_token"], "Origin": tiers.lgwan_url}

            # Staff API (no invite screen in the staff UI yet): invite a guest to a `guests` room.
            invite = staff_ctx.request.post(f"/api/rooms/{room}/guests", headers=csrf,
                                            data={"display_name": "山田 太郎", "affiliation": "架橋病院"})
            assert invite.status == 201, invite.text()
            link, guest_id = invite.json()["invite_url"], invite.json()["guest"]["id"]

            # Guest, in the relay UI: the link handed over out of band.
            guest_ctx = browser.new_context(base_url=tiers.relay_url, locale="ja-JP", viewport={"width": 390, "height": 844})
            page = guest_ctx.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            requested: list[str] = []
            page.on("request", lambda r: requested.append(r.url))
            for _ in range(100):        # the invitation crosses the queue first
                page.goto(link)
                if page.locator("#enrol-invited").inner_text(timeout=5000).strip():
                    break
                time.sleep(0.1)
            expect(page.locator("#enrol-invited")).to_contain_text("山田 太郎")
            expect(page.locator("#privacy-text")).to_contain_text("利用目的")
            assert page.url.endswith("/enrol"), "the token must leave the address bar"
            enrol = page.locator("#view-enrol")
            enrol.get_by_label("ログインID").fill("yamada-hosp")
            enrol.get_by_label("パスワード").fill(PASSWORD)
            enrol.get_by_role("button", name="QRコードを 出す").click()
            secret_el = page.locator("#totp-secret")
            expect(secret_el).not_to_be_empty()
            page.wait_for_function("() => { const i = document.getElementById('totp-qr');"
                                   " return i.complete && i.naturalWidth > 0; }")   # drawn locally, as an image
            used: list[int] = []
            enrol.get_by_label("アプリに 出ている 6けたの 数字").fill(_code(secret_el.inner_text().strip(), used))
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
            secret = secret_el.inner_text().strip()

            # LGWAN hears of the enrolment and the privacy acknowledgement; the owner approves (届け出制).
            for _ in range(200):
                status = staff_ctx.request.get(f"/api/guests/{guest_id}").json()
                if status["status"] == "enrolled":
                    break
                time.sleep(0.05)
            assert status["status"] == "enrolled" and status["privacy_ack_at"]

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
            approved = staff_ctx.request.post(f"/api/guests/{guest_id}/approve", headers=csrf)
            assert approved.ok, approved.text()
            expect(page.get_by_role("heading", name="guests-room")).to_be_visible(timeout=15000)

            # The staff member has the room open in the staff UI.
            staff_page = staff_ctx.new_page()
            staff_page.goto(f"/#/room/{room}")
            composer = staff_page.locator("#composer-input")
            composer.wait_for()

            # Guest → staff, seen live in the staff UI with the guest's name.
            page.get_by_role("textbox", name="メッセージ（文字だけ。ファイルは 送れません）").fill("はじめまして。架橋病院の山田です。")
            page.get_by_role("button", name="送信").click()
            expect(staff_page.get_by_text("はじめまして。架橋病院の山田です。", exact=True)).to_be_visible(timeout=15000)
            expect(staff_page.get_by_text("山田 太郎").first).to_be_visible()
            # Staff → guest, announced in the guest's live region.
            composer.fill("ようこそ。本日15時に打合せをお願いします。")
            composer.press("Enter")
            log = page.get_by_role("log")
            expect(log).to_contain_text("ようこそ。本日15時に打合せをお願いします。", timeout=15000)
            expect(log).to_contain_text("佐藤 花子")
            # 既読: the staff UI opened the room, so the guest's own message shows it was read.
            expect(log.locator("li.mine .read").first).to_contain_text("既読", timeout=15000)
            _shot(page, "03-chat")
            assert _axe(page) == []
            assert [e for e in errors if "Failed to load resource" not in e] == []
            # The relay UI loads nothing from anywhere else (no CDN, no web fonts).
            outside = [u for u in requested if not u.startswith((tiers.relay_url, "data:", "ws://127.0.0.1"))]
            assert outside == []
            browser.close()
    finally:
        tiers.stop()
