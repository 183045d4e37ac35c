"""The guest UI in English and back (REQUIREMENTS-JP F-49 and acceptance statement 24), in a real browser.

Japanese (やさしい日本語) is the default; the switch at the top changes every label, button, status
and error message to English, sets <html lang>, and is remembered on the device (localStorage). The
organisation's 利用目的 notice is shown as written (it is what the guest acknowledges) and marked
lang="ja". The message tables are checked against the page: both have the same keys and
placeholders, index.html's text is exactly the Japanese table's, and no Japanese text in the page
is left without a key. Both tiers run as real processes; the guest goes from the invitation link to
the chat in English, then switches back.
(Debian's chromium through Playwright; never `playwright install`.)
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest

from .harness import PASSWORD, start_two_tiers
from .test_browser import CHROMIUM, CHROMIUM_ARGS, _axe, _code, in_own_thread, open_link

playwright_sync = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed")

SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
GUEST_PASSWORD = "guest-pass-2026!"
KEY_LIKE = re.compile(r"\b(?:page|lang|enrol|login|wait|rooms|room|composer|msg|file|safety|refused|error)"
                      r"\.[a-zA-Z_]+(?:\.[a-zA-Z_]+)*\b")

# Run in the page: the tables against each other and against the page as served.
TABLE_CHECK = """async () => {
  const { MESSAGES } = await import("/static/i18n.js");
  const problems = [];
  const keys = (lang) => Object.keys(MESSAGES[lang]).sort();
  if (JSON.stringify(keys("ja")) !== JSON.stringify(keys("en"))) {
    problems.push("tables differ: " + keys("ja").filter((k) => !(k in MESSAGES.en)).concat(
      keys("en").filter((k) => !(k in MESSAGES.ja))).join(", "));
  }
  const holes = (s) => (s.match(/\\{\\w+\\}/g) || []).sort().join();
  for (const key of keys("ja")) {
    if (key in MESSAGES.en && holes(MESSAGES.ja[key]) !== holes(MESSAGES.en[key])) problems.push("placeholders: " + key);
  }
  const html = await (await fetch("/", { cache: "no-store" })).text();
  const doc = new DOMParser().parseFromString(html, "text/html");
  const fill = (s, vars) => s.replace(/\\{(\\w+)\\}/g, (m, n) => (n in vars ? String(vars[n]) : m));
  if (doc.title !== MESSAGES.ja["page.title"]) problems.push("title");
  for (const el of doc.querySelectorAll("[data-i18n]")) {
    const key = el.dataset.i18n;
    if (!(key in MESSAGES.ja)) { problems.push("no key " + key); continue; }
    if (el.children.length) problems.push(key + " has child elements (they would be lost)");
    const vars = el.dataset.i18nVars ? JSON.parse(el.dataset.i18nVars) : {};
    if (el.textContent.trim() !== fill(MESSAGES.ja[key], vars).trim()) problems.push("text differs: " + key);
  }
  for (const el of doc.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of el.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":").map((s) => s.trim());
      if (!(key in MESSAGES.ja)) problems.push("no key " + key);
      else if (el.getAttribute(attr) !== MESSAGES.ja[key]) problems.push("attribute differs: " + key);
    }
  }
  const jp = /[\\u3040-\\u30ff\\u4e00-\\u9fff]/;
  const walker = doc.createTreeWalker(doc.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (jp.test(n.data) && !n.parentElement.closest("[data-i18n]")) problems.push("untagged text: " + n.data.trim());
  }
  for (const el of doc.querySelectorAll("[aria-label], [alt], [title], [placeholder]")) {
    for (const attr of ["aria-label", "alt", "title", "placeholder"]) {
      const v = el.getAttribute(attr);
      if (v && jp.test(v) && !(el.dataset.i18nAttr || "").includes(attr + ":")) problems.push("untagged " + attr + ": " + v);
    }
  }
  return problems;
}"""

# Run in the page: Japanese text a person can see, outside the given selectors (data from people and the
# organisation's own notice) — in English mode there must be none.
VISIBLE_JAPANESE = """(skip) => {
  const jp = /[\\u3040-\\u30ff\\u4e00-\\u9fff]/;
  const found = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!jp.test(n.data) || skip.some((s) => el.closest(s)) || !el.checkVisibility()) continue;
    found.push(n.data.trim());
  }
  for (const el of document.querySelectorAll("[aria-label], [alt]")) {
    if (skip.some((s) => el.closest(s))) continue;
    for (const attr of ["aria-label", "alt"]) if (jp.test(el.getAttribute(attr) || "")) found.push(el.getAttribute(attr));
  }
  return found;
}"""


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"relay-en-{name}.png"), full_page=True)


def _no_japanese(page: Any, *skip: str) -> None:
    found = page.evaluate(VISIBLE_JAPANESE, ["#privacy-text", "#lang-switch", *skip])
    assert found == [], found
    assert KEY_LIKE.findall(page.evaluate("() => document.body.innerText")) == []


def test_guest_ui_in_english_and_back(tmp_path: Path) -> None:
    in_own_thread(_english_flow, tmp_path)


def _english_flow(tmp_path: Path) -> None:
    tiers = asyncio.run(start_two_tiers(tmp_path))
    expect = playwright_sync.expect
    room = tiers.seed.rooms["guests-room"]
    try:
        with playwright_sync.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            staff = browser.new_context(base_url=tiers.lgwan_url)
            login = staff.request.post("/api/auth/login", data={"login": "sato", "password": PASSWORD})
            assert login.ok, login.text()
            csrf = {"X-CSRF-Token": login.json()["csrf_token"], "Origin": tiers.lgwan_url}
            invite = staff.request.post(f"/api/rooms/{room}/guests", headers=csrf,
                                        data={"display_name": "Jane Smith", "affiliation": "Example Clinic"})
            assert invite.status == 201, invite.text()
            link, guest_id = invite.json()["invite_url"], invite.json()["guest"]["id"]

            guest = browser.new_context(base_url=tiers.relay_url, locale="en-GB", viewport={"width": 390, "height": 844})
            page = guest.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            open_link(page, link)      # once the account has crossed the queue

            # Japanese by default, whatever the browser's language; the tables match the page.
            html = page.locator("html")
            expect(html).to_have_attribute("lang", "ja")
            switch = page.locator("#lang-switch")
            expect(switch).to_have_text("English")
            expect(switch).to_have_attribute("lang", "en")
            expect(page.get_by_role("heading", name="利用の 登録")).to_be_visible()
            assert page.evaluate(TABLE_CHECK) == []

            # English: every label, button and status; the organisation's notice stays as written.
            switch.click()
            expect(html).to_have_attribute("lang", "en")
            expect(switch).to_have_text("日本語")
            expect(switch).to_have_attribute("lang", "ja")
            expect(switch).to_be_focused()
            assert page.title() == "Kakehashi chat (guests and phones)"
            enrol = page.locator("#view-enrol")
            expect(page.get_by_role("heading", name="Register")).to_be_visible()
            expect(page.locator("#enrol-invited")).to_have_text(
                "Jane Smith (Example Clinic): you have been invited by 架橋市. Fill in the form below to register.")
            expect(page.locator("#privacy-lang-note")).to_be_visible()
            expect(page.locator("#privacy-text")).to_have_attribute("lang", "ja")
            expect(page.locator("#privacy-text")).to_contain_text("利用目的")
            _no_japanese(page, "#enrol-invited")
            enrol.get_by_label("Login ID").fill("jane-clinic")
            expect(enrol.get_by_label("Password (at least 12 characters)")).to_be_visible()
            enrol.get_by_label("Password").fill(GUEST_PASSWORD)
            enrol.get_by_role("button", name="Show the QR code").click()
            expect(page.get_by_role("img", name="QR code for the authenticator app")).to_be_visible()
            secret = page.locator("#totp-secret")
            expect(secret).not_to_be_empty()
            used: list[int] = []
            totp_secret = secret.inner_text().strip()
            enrol.get_by_label("The 6-digit code shown in the app").fill(_code(totp_secret, used))
            enrol.get_by_role("button", name="Register").click()
            expect(page.locator("#alert")).to_have_text("Please read the purpose of use and tick the box.")
            enrol.get_by_label("I have read it and I agree.").check()
            enrol.get_by_role("button", name="Register").click()
            expect(page.get_by_text("You are registered.")).to_be_visible()
            expect(page.locator("#enrol-next")).to_have_text(
                "You can use the chat once the staff member who invited you approves you. You can sign in now and wait.")
            _no_japanese(page, "#enrol-invited")
            _shot(page, "00-enrolled")
            assert _axe(page) == []

            # The choice is remembered on this device: the sign-in page is English too.
            page.get_by_role("link", name="Sign in").click()
            form = page.locator("#view-login")
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            expect(html).to_have_attribute("lang", "en")
            form.get_by_label("Login ID").fill("jane-clinic")
            form.get_by_label("Password").fill(GUEST_PASSWORD)
            wrong = next(c for c in ("000000", "111111", "222222") if c not in _nearby_codes(totp_secret))
            form.get_by_label("Verification code").fill(wrong)
            form.get_by_role("button", name="Sign in").click()
            # The server's error message, in English (the relay's catalogue carries both).
            expect(page.locator("#alert")).to_have_text("Wrong login ID, password or code.")
            form.get_by_label("Verification code").fill(_code(totp_secret, used))
            form.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", name="Waiting for approval")).to_be_visible()
            _no_japanese(page)

            approved = staff.request.post(f"/api/guests/{guest_id}/approve", headers=csrf)
            assert approved.ok, approved.text()
            expect(page.get_by_role("heading", name="guests-room")).to_be_visible(timeout=30000)
            expect(page.locator("#who-name")).to_have_text("Jane Smith (Example Clinic)")
            expect(page.get_by_role("button", name="Sign out")).to_be_visible()
            page.get_by_role("textbox", name="Message (text only; files cannot be sent)").fill("Hello from the clinic.")
            page.get_by_role("button", name="Send", exact=True).click()
            mine = page.locator("#messages li.mine", has_text="Hello from the clinic.")
            expect(mine.locator(".read")).to_have_text("Not read yet", timeout=30000)
            expect(mine.locator(".meta")).to_contain_text("Jane Smith (Example Clinic)")
            page.get_by_role("button", name="Members").click()
            expect(page.get_by_role("list", name="Members (name and organisation)")).to_contain_text(
                "Jane Smith (Example Clinic), you")
            reply = staff.request.post(f"/api/rooms/{room}/messages", headers=csrf, data={"body": "ようこそ。"})
            assert reply.ok, reply.text()
            expect(page.get_by_role("log", name="Messages")).to_contain_text("ようこそ。", timeout=30000)
            expect(mine.locator(".read")).to_have_text("Read by 1", timeout=30000)    # her reply read the room
            _no_japanese(page, "#messages .meta", "#messages .body", "#members")
            _shot(page, "01-chat")
            assert _axe(page) == []

            # Still English after a reload; then back to Japanese, which is remembered too.
            page.reload()
            expect(page.get_by_role("heading", name="Rooms")).to_be_visible(timeout=15000)
            expect(html).to_have_attribute("lang", "en")
            page.locator("#lang-switch").click()
            expect(html).to_have_attribute("lang", "ja")
            expect(page.locator("#lang-switch")).to_have_text("English")
            expect(page.get_by_role("heading", name="ルーム", exact=True)).to_be_visible()
            expect(page.get_by_role("textbox", name="メッセージ（文字だけ。ファイルは 送れません）")).to_be_visible()
            expect(mine.locator(".read")).to_have_text("既読 1")
            expect(mine.locator(".meta")).to_contain_text("Jane Smith（Example Clinic）")
            expect(page.locator("#who-name")).to_have_text("Jane Smith（Example Clinic）")
            assert page.title() == "架け橋 チャット（ゲスト・スマホ用）"
            page.reload()
            expect(page.get_by_role("heading", name="ルーム", exact=True)).to_be_visible(timeout=15000)
            expect(html).to_have_attribute("lang", "ja")
            expect(page.get_by_role("button", name="ログアウト")).to_be_visible()
            assert [e for e in errors if "Failed to load resource" not in e] == []
            browser.close()
    finally:
        tiers.stop()


def _nearby_codes(secret: str) -> set[str]:
    """The codes the relay would accept around now (it allows one step of clock drift either way)."""
    import pyotp

    totp, step = pyotp.TOTP(secret), int(time.time()) // 30
    return {str(totp.at((step + d) * 30)) for d in (-1, 0, 1, 2)}
