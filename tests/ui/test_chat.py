"""Two staff in two browser contexts: mention → live badge, 既読 with names, thread, stamp, search,
file upload (drag and drop) and download, keyboard-only sending, and an admin suspension that signs
the other person out of their open page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import PASSWORD, Server, Staff, new_context, real_errors, room_id, shot, sign_in, watch

VACCINE = "ワクチン接種調整"
NOTICE = "庁内お知らせ"
TEXT = "明日の会議資料を確認してください"


@pytest.fixture(scope="module")
def pair(browser: Any, server: Server) -> Iterator[tuple[Staff, Staff]]:
    a = sign_in(browser, server, "sato")
    b = sign_in(browser, server, "suzuki")
    yield a, b
    assert real_errors(a.errors) == []
    a.close()
    b.close()


def last_message(person: Staff) -> Any:
    return person.page.locator(".timeline .timeline-list > li.msg").last


def test_mention_arrives_live_with_badge(pair: tuple[Staff, Staff]) -> None:
    a, b = pair
    vaccine, notice = room_id(a, VACCINE), room_id(a, NOTICE)
    b.page.goto(f"/#/room/{notice}")
    expect(b.page.locator("#room-title")).to_contain_text(NOTICE)
    a.page.goto(f"/#/room/{vaccine}")
    expect(a.page.locator("#room-title")).to_contain_text(VACCINE)
    composer = a.page.locator("#composer-input")
    composer.click()
    composer.press_sequentially("@鈴木")
    option = a.page.locator("#" + composer.get_attribute("aria-controls") + " [role=option]").first
    expect(option).to_contain_text("鈴木 健太")
    expect(option).to_have_attribute("aria-selected", "true")
    composer.press("Enter")       # picks the suggestion
    expect(composer).to_have_value("@鈴木 健太 ")
    composer.press_sequentially(TEXT)
    composer.press("Enter")       # sends
    expect(last_message(a)).to_contain_text(TEXT)
    expect(composer).to_have_value("")

    link = b.page.locator(f'.room-link[data-room-id="{vaccine}"]')
    expect(link.locator(".badge.mention")).to_have_text("@1")
    expect(link).to_contain_text("メンション 1 件")
    expect(b.page).to_have_title(re.compile(r"@1"))
    shot(b.page, "03-mention-badge")


def test_read_receipt_shows_reader(pair: tuple[Staff, Staff]) -> None:
    a, b = pair
    link = b.page.locator(f'.room-link[data-room-id="{room_id(b, VACCINE)}"]')
    link.click()
    expect(last_message(b)).to_contain_text(TEXT)
    expect(last_message(b)).to_have_class(re.compile("mentions-me"))
    expect(link.locator(".badge")).to_have_count(0)     # opening the room read it

    read = last_message(a).locator(".read-count")
    expect(read).to_have_text("既読 1")
    read.click()
    dialog = a.page.locator("dialog.receipts-dialog")
    expect(dialog.get_by_role("heading", name="既読（1 人）")).to_be_visible()
    expect(dialog.locator("section").first).to_contain_text("鈴木 健太")
    expect(dialog.locator("section").nth(1)).to_contain_text("田中 陽子")
    shot(a.page, "04-receipts")
    dialog.get_by_role("button", name="閉じる").click()
    expect(dialog).to_have_count(0)


def test_thread_reply_and_stamp(pair: tuple[Staff, Staff]) -> None:
    a, b = pair
    last_message(b).get_by_role("button", name="返信").click()
    thread_input = b.page.locator(".thread-composer textarea")
    expect(thread_input).to_be_focused()
    thread_input.press_sequentially("了解しました。資料を確認します。")
    thread_input.press("Enter")
    expect(b.page.locator(".thread-list")).to_contain_text("資料を確認します")

    reply_button = last_message(a).locator(".reply")
    expect(reply_button).to_have_text("返信 1 件")
    reply_button.click()
    expect(a.page.locator(".thread-list > li")).to_have_count(2)
    expect(a.page.locator(".thread-list")).to_contain_text("了解しました。資料を確認します。")

    last_message(b).get_by_role("button", name="スタンプ").click()
    b.page.locator(".stamp-dialog").get_by_role("button", name="了解").click()
    expect(last_message(a).locator(".stamp")).to_have_attribute("aria-label", re.compile("了解 1 人"))
    expect(last_message(a).locator(".stamp")).to_contain_text("👌 了解 1")
    shot(a.page, "05-thread")


def test_search_highlights_japanese(pair: tuple[Staff, Staff]) -> None:
    a, _ = pair
    a.page.fill("#search-input", "庁議資料")
    a.page.press("#search-input", "Enter")
    panel = a.page.locator("#side-panel")
    expect(panel.locator(".result-count")).to_contain_text("1 件")
    expect(panel.locator("mark")).to_have_text("庁議資料")
    expect(panel.locator(".hit-room")).to_have_text(VACCINE)
    shot(a.page, "06-search")
    panel.get_by_role("button", name=re.compile("このメッセージを表示")).click()
    expect(a.page.locator(".msg.flash")).to_contain_text("庁議資料")


def test_file_drag_and_drop_upload_and_download(pair: tuple[Staff, Staff]) -> None:
    a, b = pair
    content = "議事録\n1. 接種会場の追加について\n"
    data_transfer = a.page.evaluate_handle(
        """(text) => { const dt = new DataTransfer();
             dt.items.add(new File([text], '会議メモ.txt', {type: 'text/plain'})); return dt; }""", content)
    a.page.dispatch_event(".room-view", "dragenter", {"dataTransfer": data_transfer})
    expect(a.page.locator(".drop-hint")).to_be_visible()
    a.page.dispatch_event(".room-view", "drop", {"dataTransfer": data_transfer})
    expect(a.page.locator(".pending-file")).to_contain_text("会議メモ.txt")
    a.page.locator("#composer-input").fill("資料を添付します")
    a.page.locator("#composer-input").press("Enter")
    expect(last_message(a).locator(".file-link")).to_contain_text("会議メモ.txt")

    link = last_message(b).locator(".file-link")
    expect(link).to_contain_text("会議メモ.txt")
    with b.page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename == "会議メモ.txt"
    assert Path(download.path()).read_text(encoding="utf-8") == content


def test_keyboard_only_login_and_send(browser: Any, server: Server) -> None:
    context = new_context(browser, server)
    page = context.new_page()
    errors: list[str] = []
    watch(page, errors, [])
    page.goto("/")
    expect(page.locator("#login-id")).to_be_focused()
    page.keyboard.type("tanaka")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.locator(".room-link").first.wait_for()
    target = page.locator(".room-link", has_text=NOTICE).get_attribute("data-room-id")
    for _ in range(80):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.dataset.roomId") == target:
            break
    else:
        pytest.fail("the room link is not reachable with Tab")
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "keyboard focus must be visible"
    page.keyboard.press("Enter")
    expect(page.locator("#room-title")).to_contain_text(NOTICE)
    # お知らせ is read-only for members: go on to a room tanaka can post in, again by keyboard.
    target = page.locator(".room-link", has_text=VACCINE).get_attribute("data-room-id")
    page.keyboard.press("Shift+Tab")
    for _ in range(80):
        if page.evaluate("() => document.activeElement.dataset.roomId") == target:
            break
        page.keyboard.press("Shift+Tab")
    else:
        pytest.fail("the project room link is not reachable with Shift+Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#composer-input")).to_be_focused()
    page.keyboard.type("キーボードだけで送信しました")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("二行目です")
    page.keyboard.press("Enter")
    message = page.locator(".timeline-list > li.msg").last
    expect(message.locator(".msg-body")).to_have_text("キーボードだけで送信しました\n二行目です")
    assert real_errors(errors) == []
    context.close()


def test_admin_suspension_signs_out_open_page(pair: tuple[Staff, Staff], admin: Staff) -> None:
    _, b = pair
    page = admin.page
    page.goto("/#/admin/staff")
    page.fill("#staff-filter", "suzuki")
    row = page.locator("tr[data-login=suzuki]")
    expect(row).to_contain_text("鈴木 健太")
    shot(page, "07-admin-staff")
    row.get_by_role("button", name="鈴木 健太 を停止").click()
    dialog = page.locator("dialog[open]")
    dialog.locator("input").fill("長期休職のため")
    dialog.get_by_role("button", name="停止").click()
    expect(page.locator(".admin-body [role=status]").first).to_contain_text("停止しました")
    expect(row.locator(".status")).to_have_text("停止中")
    # B's open page is signed out at once (the server closes its WebSocket with 4001).
    expect(b.page.locator("#login-id")).to_be_visible(timeout=10_000)
    expect(b.page.locator(".notice")).to_contain_text("ログアウトしました")
    assert b.api_status("GET", "/api/rooms") == 401
