"""(d) 安否確認 on a staff phone in a real browser (Debian's chromium through Playwright; never `playwright install`).

A registered phone logs in to the relay UI (password + TOTP, on its approved device); a check
started on LGWAN appears live; one tap on 無事 sends the answer, which the LGWAN dashboard counts;
the optional details (参集可否, 到着見込み, 現在地) follow and replace it. axe-core checks the view.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pyotp
import pytest

from .harness import PASSWORD, TwoTiers, query, start_two_tiers
from .phones import City, seed_city, start_city
from .test_browser import CHROMIUM, CHROMIUM_ARGS, SHOTS

playwright_sync = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed")


async def _city(root: Path) -> City:
    tiers = await start_two_tiers(root, start=False, staff_logins=(), rooms=())
    city = await seed_city(tiers, phones=2, web_only=1, departments=2)
    await start_city(city)
    return city


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


def _until(predicate: Any, what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


def test_one_tap_answer_on_the_phone(tmp_path: Path) -> None:
    city = asyncio.run(_city(tmp_path))
    tiers: TwoTiers = city.tiers
    phone = city.phones[1]
    expect = playwright_sync.expect
    try:
        with playwright_sync.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            ctx = browser.new_context(base_url=tiers.relay_url, locale="ja-JP", viewport={"width": 390, "height": 844})
            # The phone's registered (approved) device: its long-lived device cookie.
            ctx.add_cookies([{"name": "kr_device", "value": phone.device_cookie, "url": tiers.relay_url}])
            page = ctx.new_page()
            page.goto("/")
            page.fill("#login-id", f"{phone.login}-phone")
            page.fill("#login-password", PASSWORD)
            page.fill("#login-code", pyotp.TOTP(phone.totp_secret).now())
            page.click("#login-form button[type=submit]")
            expect(page.locator("#view-chat")).to_be_visible()
            expect(page.locator("#safety")).to_be_hidden()      # nothing to answer, not a safety manager

            # The chief starts a check on LGWAN; it appears on the phone live (WebSocket).
            lgwan = p.request.new_context(base_url=tiers.lgwan_url)
            login = lgwan.post("/api/auth/login", data={"login": city.chief.login, "password": PASSWORD})
            assert login.ok, login.text()
            headers = {"X-CSRF-Token": login.json()["csrf_token"], "Origin": tiers.lgwan_url}
            started = lgwan.post("/api/safety", headers=headers, data={
                "title": "震度6弱 安否確認", "message": "ご自身の安全を確保してから回答してください。",
                "questions": ["condition", "attend", "eta", "location", "note"]})
            assert started.status == 201, started.text()
            check_id = started.json()["id"]
            card = page.locator("#safety-list > li").first
            expect(card.get_by_role("heading", name="【安否確認】震度6弱 安否確認")).to_be_visible()
            state = card.locator(".answer-state")
            expect(state).to_contain_text("まだ 回答して いません")
            assert _axe(page) == []

            # One tap: sent at once, counted on LGWAN.
            card.get_by_role("button", name="無事", exact=True).click()
            expect(state).to_contain_text("回答済み：無事")
            expect(card.get_by_role("button", name="無事", exact=True)).to_have_attribute("aria-pressed", "true")

            def board() -> dict[str, Any]:
                response = lgwan.get(f"/api/safety/{check_id}/dashboard")
                assert response.ok, response.text()
                return response.json()["totals"]  # type: ignore[no-any-return]

            _until(lambda: board()["safe"] == 1, "the tap on the LGWAN dashboard")
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "relay-safety-one-tap.png"), full_page=True)

            # The details, optional, replace the answer (the latest counts; still one person).
            card.locator("summary").click()
            card.get_by_label("参集できる").check()
            card.get_by_label("到着見込み（分）").fill("30")
            card.get_by_label("現在地（例：自宅、○○小学校）").fill("自宅")
            card.get_by_role("button", name="くわしい 内容を 送る").click()
            expect(state).to_contain_text("回答済み：無事・参集できる・到着まで 約30分")
            totals = _until(lambda: (t := board())["attend_yes"] == 1 and t, "the details on LGWAN")
            assert totals["answered"] == 1 and totals["safe"] == 1 and totals["targets"] == len(city.people) + 1
            row = query(tiers.lgwan_db, "SELECT condition, attend, eta_minutes, location, via FROM safety_answers"
                                        " WHERE check_id = ? AND staff_id = ?", (check_id, phone.staff_id))
            assert row == [("safe", "yes", 30, "自宅", "relay")]
            assert _axe(page) == []
            page.screenshot(path=str(SHOTS / "relay-safety-details.png"), full_page=True)

            # The chief (safety_manager on LGWAN) starts a check on the relay from the phone view and
            # watches the roll-up by 所属 move as the answer arrives (live, over the WebSocket).
            chief_ctx = browser.new_context(base_url=tiers.relay_url, locale="ja-JP",
                                            viewport={"width": 390, "height": 844})
            chief_ctx.add_cookies([{"name": "kr_device", "value": city.chief.device_cookie, "url": tiers.relay_url}])
            chief = chief_ctx.new_page()
            chief.goto("/")
            chief.fill("#login-id", f"{city.chief.login}-phone")
            chief.fill("#login-password", PASSWORD)
            chief.fill("#login-code", pyotp.TOTP(city.chief.totp_secret).now())
            chief.click("#login-form button[type=submit]")
            chief.locator("#safety-start-box summary").click()
            chief.select_option("#safety-template", "drill")
            chief.fill("#safety-start-title", "中継サーバーからの確認")
            chief.get_by_role("button", name="送る", exact=True).click()
            own = chief.locator("#safety-list > li", has=chief.get_by_role("heading", name="【安否確認】中継サーバーからの確認"))
            expect(own.get_by_role("status").last).to_contain_text(f"回答 0 / {len(city.phones)} 人")
            theirs = page.locator("#safety-list > li", has=page.get_by_role("heading", name="【安否確認】中継サーバーからの確認"))
            theirs.get_by_role("button", name="要支援", exact=True).click()
            expect(own.get_by_role("status").last).to_contain_text(f"回答 1 / {len(city.phones)} 人（要支援・重傷 1 人）")
            expect(own.get_by_role("row", name=phone.department)).to_contain_text("1")
            expect(own.get_by_role("listitem").filter(has_text=f"要支援：職員 {phone.login}")).to_be_visible()
            assert _axe(chief) == []
            chief.screenshot(path=str(SHOTS / "relay-safety-rollup.png"), full_page=True)
            lgwan.dispose()
            browser.close()
    finally:
        tiers.stop()
