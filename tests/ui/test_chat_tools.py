"""The chat gaps (issue 4) in the browser: create a room with the member picker, manage members, edit a
message and see its history, pin it, a poll answered by two people with results by department, a task
made from a message that shows in the assignee's マイタスク, and changing one's own password."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import PASSWORD, Server, Staff, expect_no_serious, real_errors, room_id, shot, sign_in

VACCINE = "ワクチン接種調整"


@pytest.fixture(scope="module")
def pair(browser: Any, server: Server) -> Iterator[tuple[Staff, Staff]]:
    a = sign_in(browser, server, "sato")
    b = sign_in(browser, server, "takahashi")
    yield a, b
    assert real_errors(a.errors) == []
    assert real_errors(b.errors) == []
    a.close()
    b.close()


def open_room(person: Staff, name: str) -> int:
    rid = room_id(person, name)
    person.page.goto(f"/#/room/{rid}")
    expect(person.page.locator("#room-title")).to_contain_text(name)
    return rid


def message(person: Staff, text: str) -> Any:
    return person.page.locator(".timeline .timeline-list > li.msg", has_text=text).last


def send(person: Staff, text: str) -> None:
    composer = person.page.locator("#composer-input")
    composer.fill(text)
    composer.press("Enter")
    expect(message(person, text)).to_be_visible()


def menu(person: Staff, text: str, action: str) -> None:
    message(person, text).get_by_role("button", name=re.compile("その他の操作")).click()
    person.page.locator("dialog.menu-dialog").get_by_role("button", name=action, exact=True).click()


def test_create_room_with_members_and_manage(pair: tuple[Staff, Staff]) -> None:
    a, b = pair
    page = a.page
    page.get_by_role("button", name="＋ ルームを作成").click()
    dialog = page.locator("dialog.create-room-dialog")
    dialog.get_by_label("ルーム名").fill("防災訓練準備")
    dialog.get_by_label("説明（任意）").fill("11月の総合防災訓練")
    dialog.get_by_label(re.compile("メンバーを追加")).fill("高橋")
    dialog.get_by_role("button", name="高橋 誠 を追加").click()
    expect(dialog.locator(".pick-chosen")).to_contain_text("高橋 誠")
    expect_no_serious(page, "create-room")
    shot(page, "20-create-room")
    dialog.get_by_role("button", name="作成", exact=True).click()
    expect(page.locator("#room-title")).to_contain_text("防災訓練準備")
    # The other member sees the new room appear live in the sidebar.
    expect(b.page.locator(".room-link", has_text="防災訓練準備")).to_be_visible()

    page.get_by_role("button", name="メンバー", exact=True).click()
    members = page.locator("dialog.members-dialog")
    expect(members.locator("table")).to_contain_text("高橋 誠")
    members.get_by_label("追加する職員を検索").fill("田中")
    members.get_by_role("button", name="田中 陽子 を追加").click()
    members.get_by_role("button", name="選んだ職員を追加").click()
    expect(members.locator("[role=status]").first).to_contain_text("1 人を追加しました")
    expect(members.locator("table")).to_contain_text("田中 陽子")
    members.get_by_label("田中 陽子 の役割").select_option("readonly")
    expect(members.locator("[role=status]").first).to_contain_text("閲覧のみ")
    expect_no_serious(page, "room-members")
    shot(page, "21-room-members")
    room = next(r for r in a.api("GET", "/api/rooms")["rooms"] if r["name"] == "防災訓練準備")
    roles = {m["login"]: m["role"] for m in a.api("GET", f"/api/rooms/{room['id']}/members")["members"]}
    assert roles == {"sato": "owner", "takahashi": "member", "tanaka": "readonly"}
    members.get_by_role("button", name="閉じる").click()


def test_edit_message_with_history_and_pin(pair: tuple[Staff, Staff]) -> None:
    a, b = pair
    open_room(a, VACCINE)
    open_room(b, VACCINE)
    send(a, "明日の説明会は13時からです")
    menu(a, "明日の説明会は13時からです", "編集")
    edit = a.page.locator("dialog").get_by_label("本文")
    expect(edit).to_be_focused()
    edit.fill("明日の説明会は14時からです（変更）")
    a.page.locator("dialog").get_by_role("button", name="保存").click()
    mine = message(a, "14時からです")
    expect(mine.locator(".edited")).to_have_text("（編集済み）")
    # The edit arrives live on the other page, marked 編集済み.
    theirs = message(b, "14時からです")
    expect(theirs.locator(".edited")).to_be_visible()
    theirs.locator(".edited").click()
    history = b.page.locator("dialog.history-dialog")
    expect(history.locator(".history-item")).to_have_count(2)
    expect(history).to_contain_text("13時から")
    expect(history).to_contain_text("14時から")
    expect_no_serious(b.page, "edit-history")
    shot(b.page, "22-edit-history")
    history.get_by_role("button", name="閉じる").click()

    menu(a, "14時からです", "ピン留めする")
    expect(message(a, "14時からです").locator(".pin-tag")).to_have_text("ピン留め")
    expect(message(b, "14時からです").locator(".pin-tag")).to_be_visible()
    b.page.get_by_role("button", name="ピン留め", exact=True).click()
    panel = b.page.locator("#side-panel")
    expect(panel).to_contain_text("14時からです")
    expect_no_serious(b.page, "pins-panel")
    panel.get_by_role("button", name="閉じる").click()


def test_poll_voted_by_two_shows_results_by_department(pair: tuple[Staff, Staff]) -> None:
    a, b = pair
    a.page.get_by_role("button", name="アンケート", exact=True).click()
    panel = a.page.locator("#side-panel")
    panel.get_by_label("質問").fill("懇親会に参加しますか")
    panel.get_by_label(re.compile("選択肢（1行に1つ")).fill("参加\n不参加")
    panel.get_by_role("button", name="作成", exact=True).click()
    card = panel.locator(".poll-card", has_text="懇親会に参加しますか")
    card.get_by_label("参加", exact=True).check()
    card.get_by_role("button", name="回答する").click()
    expect(card.locator(".poll-results")).to_contain_text("集計（回答 1 人）")

    b.page.get_by_role("button", name="アンケート", exact=True).click()
    their = b.page.locator("#side-panel .poll-card", has_text="懇親会に参加しますか")
    their.get_by_label("不参加").check()
    their.get_by_role("button", name="回答する").click()
    expect(their.locator(".poll-results")).to_contain_text("集計（回答 2 人）")
    # A's open panel refreshes live on the vote event.
    expect(card.locator(".poll-results caption")).to_have_text("集計（回答 2 人）")
    by_dept = card.locator(".poll-by-dept")
    expect(by_dept).to_contain_text("総務課")
    expect(by_dept).to_contain_text("市民課")
    expect(card.locator(".poll-voters")).to_contain_text("佐藤 花子")
    expect(card.locator(".poll-voters")).to_contain_text("高橋 誠")
    expect_no_serious(a.page, "polls-panel")
    by_dept.scroll_into_view_if_needed()
    shot(a.page, "23-poll-results")
    panel.get_by_role("button", name="閉じる").click()
    b.page.locator("#side-panel").get_by_role("button", name="閉じる").click()


def test_task_from_message_appears_in_assignees_tasks(pair: tuple[Staff, Staff]) -> None:
    a, b = pair
    send(a, "議会資料の数字を確認してください")
    menu(a, "議会資料の数字を確認してください", "タスクにする")
    dialog = a.page.locator("dialog.task-dialog")
    expect(dialog.get_by_label("やること")).to_have_value("議会資料の数字を確認してください")
    dialog.get_by_label("期限（任意）").fill("2030-03-31")
    dialog.get_by_label(re.compile("高橋 誠")).check()
    expect_no_serious(a.page, "task-dialog")
    dialog.get_by_role("button", name="タスクを作成").click()
    expect(dialog).to_have_count(0)

    b.page.locator("#work-link").click()
    item = b.page.locator(".task-item", has_text="議会資料の数字を確認してください")
    expect(item).to_contain_text("期限 2030-03-31")
    item.get_by_role("combobox").select_option("doing")
    expect(b.page.locator("#task-status")).to_contain_text("対応中")
    expect(item.get_by_role("combobox")).to_have_value("doing")
    expect_no_serious(b.page, "my-tasks")
    shot(b.page, "24-my-tasks")
    task = next(x for x in b.api("GET", "/api/tasks")["tasks"] if x["title"] == "議会資料の数字を確認してください")
    assert task["status"] == "doing" and task["due_date"] == "2030-03-31"


def test_change_own_password(browser: Any, server: Server, officers: Any) -> None:
    person = sign_in(browser, server, "staff040")
    page = person.page
    page.get_by_role("button", name="設定").click()
    page.get_by_role("button", name="パスワードを変更").click()
    dialog = page.locator("dialog.password-dialog")
    dialog.get_by_label("現在のパスワード").fill("wrong-password-1234")
    dialog.get_by_label("新しいパスワード", exact=True).fill("kakehashi-new-2026")
    dialog.get_by_label("新しいパスワード（確認）").fill("kakehashi-new-2026")
    dialog.get_by_role("button", name="変更").click()
    expect(dialog.locator(".form-error")).to_have_text("現在のパスワードが違います。")
    expect(page.locator("#room-title")).to_be_visible()       # a wrong current password does not sign out
    expect_no_serious(page, "password")
    dialog.get_by_label("現在のパスワード").fill(PASSWORD)
    dialog.get_by_role("button", name="変更").click()
    expect(dialog).to_have_count(0)
    assert person.context.request.post("/api/auth/login", data={"login": "staff040",
                                                                "password": "kakehashi-new-2026"}).ok
    person.close()
