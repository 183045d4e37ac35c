"""Files from a guest in real browsers (Debian's chromium through Playwright): the guest uploads in the relay UI
and reads a refusal in やさしい日本語; staff see the 「無害化済み」 badge and open the sanitizer's report.

Enrolment is not repeated here (tests/e2e/test_browser.py covers it): the guest enrols through the API and
the browser gets that session's cookies.
"""

from __future__ import annotations

import asyncio
import os
from http.cookies import Morsel
from pathlib import Path
from typing import Any

import pytest

from shared.signing import fingerprint

from .harness import PASSWORD, Staff, TwoTiers
from .sanitized import CORPUS, sha256, start_file_tiers, start_sanitizer
from .test_browser import CHROMIUM, CHROMIUM_ARGS, SHOTS, _axe, _shot
from .test_sanitized_files import js_pdf
from .test_two_tier import invite_and_approve

playwright_sync = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed"),
              pytest.mark.skipif(not (CORPUS / "threats").is_dir(), reason="CDR corpus not found")]


async def _enrolled_guest(tiers: TwoTiers, room: int) -> list[dict[str, Any]]:
    """Invite, enrol and approve a guest through the APIs; return the guest session's cookies."""
    owner = Staff(tiers.lgwan_url)
    await owner.login("sato")
    guest, _ = await invite_and_approve(tiers, owner, room, "山田 太郎", "yamada-hosp")
    morsels: list[Morsel[str]] = [m for m in guest.http.cookie_jar]
    cookies = [{"name": m.key, "value": m.value, "url": tiers.relay_url} for m in morsels]
    await guest.close()
    await owner.close()
    return cookies


def test_guest_uploads_and_staff_open_the_report_in_the_browser(tmp_path: Path) -> None:
    expect = playwright_sync.expect
    sanitizer = start_sanitizer(tmp_path)
    tiers = asyncio.run(start_file_tiers(tmp_path, sanitizer))
    room = tiers.seed.rooms["guests-room"]
    hostile = js_pdf(f"browser-{os.getpid()}")
    try:
        cookies = asyncio.run(_enrolled_guest(tiers, room))
        with playwright_sync.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            guest_ctx = browser.new_context(base_url=tiers.relay_url, locale="ja-JP",
                                            viewport={"width": 390, "height": 844})
            guest_ctx.add_cookies(cookies)
            page = guest_ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto("/")
            expect(page.get_by_role("heading", name="guests-room")).to_be_visible(timeout=15000)
            expect(page.locator("#file-form")).to_be_visible()
            expect(page.locator('label[for="post-body"]')).to_have_text("メッセージ")

            # A PDF that runs JavaScript: rebuilt, sent, and the guest is told what was taken out.
            page.locator("#file-input").set_input_files({"name": "請求書.pdf", "mimeType": "application/pdf",
                                                          "buffer": hostile})
            page.get_by_role("button", name="ファイルを 送る").click()
            status = page.locator("#file-status")
            expect(status).to_contain_text("作り直して 送りました", timeout=30000)
            expect(status).to_contain_text("JavaScript")
            expect(page.get_by_role("log")).to_contain_text("LGWAN側でだけ 見られます", timeout=30000)

            # A legacy .xls is refused before anything crosses; the reason is in やさしい日本語.
            legacy = (CORPUS / "threats" / "oletools-excel4_sample_macro-xlm.xls").read_bytes()
            page.locator("#file-input").set_input_files({"name": "古い表.xls", "mimeType": "application/vnd.ms-excel",
                                                          "buffer": legacy})
            page.get_by_role("button", name="ファイルを 送る").click()
            expect(page.locator("#alert")).to_contain_text("古い 形の Office ファイル", timeout=30000)
            expect(status).to_contain_text("送れませんでした")
            _shot(page, "10-file-refused")
            assert _axe(page) == []

            # Staff: the badge on the file, and the report one click away.
            staff_ctx = browser.new_context(base_url=tiers.lgwan_url, locale="ja-JP")
            login = staff_ctx.request.post("/api/auth/login", data={"login": "suzuki", "password": PASSWORD})
            assert login.ok, login.text()
            staff_page = staff_ctx.new_page()
            staff_page.on("pageerror", lambda e: errors.append(str(e)))
            staff_page.goto(f"/#/room/{room}")
            badge = staff_page.get_by_role("button", name="請求書.pdf の無害化の結果を見る")
            expect(badge).to_be_visible(timeout=15000)
            expect(badge).to_have_text("無害化済み")
            SHOTS.mkdir(parents=True, exist_ok=True)
            staff_page.screenshot(path=str(SHOTS / "42-sanitized-badge.png"))
            badge.click()
            dialog = staff_page.get_by_role("dialog", name="無害化の結果")
            expect(dialog).to_be_visible()
            expect(dialog).to_contain_text("JavaScript ×")
            expect(dialog).to_contain_text(fingerprint(sanitizer.signer.public_key))
            expect(dialog).to_contain_text(sha256(hostile))          # the original's hash; the original itself never came
            staff_page.screenshot(path=str(SHOTS / "43-sanitized-report.png"))
            assert _axe(staff_page) == []
            dialog.get_by_role("button", name="閉じる").click()
            expect(badge).to_be_focused()
            assert errors == []
            browser.close()
    finally:
        tiers.stop()
        sanitizer.stop()
