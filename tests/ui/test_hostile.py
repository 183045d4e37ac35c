"""Hostile content renders as inert text: <script>, <img onerror>, javascript: links and RTL overrides in
message bodies, display names, room names and file names. Checked in the browser: no dialog, no injected
element, no script run. And the CSP header forbids inline script (the browser refuses one)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import HOSTILE_NAME, RLO, Server, Staff, real_errors, room_id, shot, sign_in

SCRIPT = '<script>window.__pwned = 1; alert("body")</script>'
IMG = '<img src=x onerror="window.__pwned=1;alert(1)">'
BODIES = [
    SCRIPT,
    IMG,
    "javascript:alert(1)",
    "[クリック](javascript:alert(1)) <a href=\"javascript:alert(1)\">リンク</a>",
    'https://example.lg.jp/a?q="><img src=x onerror=alert(1)> 続き',
    f"請求書{RLO}txt.exe を確認",
    "<svg onload=alert(1)><iframe src=javascript:alert(1)></iframe>",
]
ROOM_NAME = f"<b>会議</b><img src=x onerror=alert(1)>{RLO}moor"
FILE_NAME = f'<img src=x onerror=alert(1)>{RLO}gpj.exe.txt'


def assert_inert(page: Any) -> None:
    state = page.evaluate("""() => ({
        pwned: window.__pwned === 1,
        imgX: [...document.querySelectorAll('img')].filter(i => /\\/x$|^x$/.test(i.getAttribute('src') || '')).length,
        scripts: [...document.scripts].map(s => s.src || 'inline'),
        handlers: [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length,
        jsLinks: [...document.querySelectorAll('a[href]')].filter(a => !/^(https?:|blob:)/.test(a.href)).map(a => a.href),
        frames: document.querySelectorAll('iframe, svg[onload], object, embed').length,
        rlo: document.body.innerText.includes('\\u202e'),
    })""")
    assert not state["pwned"]
    assert state["imgX"] == 0
    assert all(src.endswith("/static/js/main.js") for src in state["scripts"]), state["scripts"]
    assert state["handlers"] == 0
    assert state["jsLinks"] == [], state["jsLinks"]
    assert state["frames"] == 0
    assert not state["rlo"], "bidi overrides must not reach the screen"


@pytest.fixture(scope="module")
def hostile_room(browser: Any, server: Server) -> Iterator[tuple[Staff, int]]:
    sato = sign_in(browser, server, "sato", open_page=False)
    tanaka_id = sato.api("GET", "/api/staff?q=tanaka")["staff"][0]["id"]
    room = sato.api("POST", "/api/rooms", data={"kind": "project", "name": ROOM_NAME, "topic": IMG,
                                                "member_ids": [tanaka_id]})
    for body in BODIES:
        sato.api("POST", f"/api/rooms/{room['id']}/messages", data={"body": body})
    sato.api("POST", f"/api/rooms/{room['id']}/files", multipart={
        "body": SCRIPT, "file": {"name": FILE_NAME, "mimeType": "text/html", "buffer": b"<script>alert(1)</script>"}})
    yield sato, room["id"]
    sato.close()


def test_bodies_room_and_file_names_are_inert(browser: Any, server: Server, hostile_room: tuple[Staff, int]) -> None:
    _, rid = hostile_room
    tanaka = sign_in(browser, server, "tanaka")
    page = tanaka.page
    page.goto(f"/#/room/{rid}")
    expect(page.locator(".timeline .msg")).to_have_count(len(BODIES) + 1)
    expect(page.locator("#room-title")).to_contain_text("<b>会議</b><img src=x onerror=alert(1)>moor")
    expect(page.locator(".room-topic")).to_have_text(IMG)
    bodies = page.locator(".timeline .msg-body").all_inner_texts()
    assert bodies[0] == SCRIPT and bodies[1] == IMG
    assert "請求書txt.exe を確認" in bodies            # the override is gone, the text stays
    # Only the real https URL became a link, with the safe attributes; the quote ends it.
    links = page.locator(".timeline .msg-body a")
    expect(links).to_have_count(1)
    assert links.get_attribute("href") == "https://example.lg.jp/a?q="
    assert links.get_attribute("rel") == "noopener noreferrer"
    assert links.get_attribute("target") == "_blank"
    file_link = page.locator(".file-link")
    expect(file_link.locator(".file-name")).to_have_text("_img src=x onerror=alert(1)_gpj.exe.txt")
    assert file_link.get_attribute("href").startswith("/api/files/")
    # Hostile text in the sidebar, the tab title and the receipts dialog (with the hostile staff name).
    expect(page.locator(f'.room-link[data-room-id="{rid}"] .room-name')).to_have_text(
        "<b>会議</b><img src=x onerror=alert(1)>moor")
    page.locator(".timeline .msg").first.locator(".read-count").click()
    expect(page.locator("dialog.receipts-dialog")).to_be_visible()
    assert_inert(page)
    shot(page, "10-hostile-content")
    page.keyboard.press("Escape")
    assert tanaka.dialogs == []
    assert real_errors(tanaka.errors) == []
    tanaka.close()


def test_hostile_display_name_is_inert(browser: Any, server: Server) -> None:
    sato = sign_in(browser, server, "sato")
    page = sato.page
    page.goto(f"/#/room/{room_id(sato, '総務課')}")
    composer = page.locator("#composer-input")
    composer.click()
    composer.press_sequentially("@あくい")
    option = page.locator(".mention-list [role=option]").first
    expect(option.locator(".mention-name")).to_have_text(HOSTILE_NAME.replace(RLO, ""))
    composer.press("Enter")
    composer.press_sequentially("確認をお願いします")
    composer.press("Enter")
    message = page.locator(".timeline .msg").last
    expect(message).to_contain_text("@<img src=x onerror=")
    message.locator(".read-count").click()
    dialog = page.locator("dialog.receipts-dialog")
    expect(dialog.locator(".person-name", has_text="onerror")).to_have_text(HOSTILE_NAME.replace(RLO, ""))
    dialog.get_by_role("button", name="閉じる").click()
    assert_inert(page)
    assert sato.dialogs == []
    assert real_errors(sato.errors) == []
    sato.close()


def test_csp_forbids_inline_script(browser: Any, server: Server) -> None:
    sato = sign_in(browser, server, "sato")
    response = sato.context.request.get("/")
    csp = response.headers["content-security-policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    # The browser enforces it: an inline script added to the page does not run, nor does an inline handler.
    sato.page.evaluate("""() => {
        const s = document.createElement('script'); s.textContent = 'window.__inline = 1'; document.body.append(s);
        const d = document.createElement('div'); d.setAttribute('onclick', 'window.__inline = 2'); document.body.append(d);
        d.click();
    }""")
    assert sato.page.evaluate("() => window.__inline") is None
    assert any("Content Security Policy" in e for e in sato.errors)
    sato.close()
