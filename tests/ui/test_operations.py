"""Municipal operations (issue 6) in the browser: a 安否確認 started by a manager reaches an open page as a
banner, is answered in one tap and shows on the manager's live dashboard; a 一斉送信 with 確認必須 is
acknowledged by a recipient and seen by the sender; お知らせ with read confirmation; 確認必須 on a room
message."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from .conftest import Officers, Server, Staff, expect_no_serious, real_errors, room_id, shot, sign_in


@pytest.fixture(scope="module")
def manager(browser: Any, server: Server, officers: Officers) -> Iterator[Staff]:
    person = sign_in(browser, server, officers.safety_login)
    yield person
    assert real_errors(person.errors) == []
    person.close()


@pytest.fixture(scope="module")
def staff(browser: Any, server: Server) -> Iterator[Staff]:
    person = sign_in(browser, server, "tanaka")
    # 人事異動 in test_admin may have moved her: use her 所属 as it is now.
    person.department = person.api("GET", f"/api/staff/{person.staff_id}")["department"].split(" ")[-1]  # type: ignore[attr-defined]
    yield person
    assert real_errors(person.errors) == []
    person.close()


def test_safety_check_banner_one_tap_and_dashboard(manager: Staff, staff: Staff) -> None:
    page = manager.page
    page.locator("#work-link").click()
    page.get_by_role("link", name="安否確認").click()
    page.get_by_label("ひな形").select_option("drill")
    expect(page.get_by_label("件名")).to_have_value("訓練")
    page.get_by_label(re.compile("^部署を選ぶ")).check()
    page.get_by_label(staff.department, exact=True).check()  # type: ignore[attr-defined]
    if staff.department != "危機管理課":  # type: ignore[attr-defined]
        page.get_by_label("危機管理課", exact=True).check()
    expect_no_serious(page, "safety-start")
    shot(page, "30-safety-start")
    page.get_by_role("button", name="安否確認を開始").click()
    page.locator("dialog[open]").get_by_role("button", name="安否確認を開始").click()
    expect(page.locator("#dash-title")).to_contain_text("訓練")
    table = page.locator(".safety-table")
    expect(table).to_contain_text(staff.department)  # type: ignore[attr-defined]

    # The staff member's open page shows the banner live; one tap answers.
    banner = staff.page.locator(".safety-banner")
    expect(banner.locator("h2")).to_contain_text("【安否確認】訓練")
    expect(staff.page.locator("#alerter")).to_contain_text("安否確認が届きました")
    expect_no_serious(staff.page, "safety-banner")
    shot(staff.page, "31-safety-banner")
    banner.locator("summary").click()
    banner.get_by_label("参集可否").select_option("yes")
    banner.get_by_label("到着見込み（分）").fill("30")
    banner.get_by_role("button", name="無事").click()
    expect(banner.locator(".safety-result")).to_contain_text("回答しました：無事")

    row = table.locator("tr", has_text=staff.department)  # type: ignore[attr-defined]
    expect(row.locator("td").nth(1)).to_have_text("1")      # answered, refreshed live
    expect(row.locator("td").nth(3)).to_have_text("1")      # 無事
    expect(row.locator("td").nth(7)).to_have_text("1")      # 参集可
    expect_no_serious(page, "safety-dashboard")
    shot(page, "32-safety-dashboard")
    check_id = int(page.url.rsplit("/", 1)[1])
    answers = manager.context.request.get(f"/api/safety/{check_id}/export?format=csv")
    assert answers.ok and "無事" in answers.body().decode("utf-8-sig") and "参集可" in answers.body().decode("utf-8-sig")
    page.get_by_role("button", name="未回答の人に再通知").click()
    expect(page.locator(".admin-body > [role=status]").first).to_contain_text("人に再通知しました")
    banner.get_by_role("button", name="閉じる").click()
    expect(banner).to_have_count(0)


def test_broadcast_ack_required_seen_by_sender(manager: Staff, staff: Staff) -> None:
    page = manager.page
    page.goto("/#/work/broadcasts")
    page.get_by_label("件名").fill("台風接近に伴う庁舎閉鎖")
    page.get_by_label("本文").fill("明日は全庁舎を閉鎖します。各課で在宅勤務の準備をしてください。")
    expect(page.get_by_label("確認必須")).to_be_checked()
    page.get_by_label("職員を個別に選ぶ").check()
    page.get_by_label("対象の職員を検索").fill("田中")
    page.get_by_role("button", name="田中 陽子 を追加").click()
    page.get_by_label("対象の職員を検索").fill("高橋")
    page.get_by_role("button", name="高橋 誠 を追加").click()
    expect_no_serious(page, "broadcast-compose")
    page.get_by_role("button", name="送信", exact=True).click()
    expect(page.locator(".stats")).to_contain_text("対象者")
    acked = page.locator(".stats li", has_text="確認済み").locator(".stat-value")
    expect(acked).to_have_text("0")

    banner = staff.page.locator(".broadcast-banner", has_text="台風接近に伴う庁舎閉鎖")
    expect(banner).to_contain_text("明日は全庁舎を閉鎖します")
    shot(staff.page, "33-broadcast-banner")
    banner.get_by_role("button", name="確認しました").click()
    expect(banner).to_have_count(0)
    expect(acked).to_have_text("1")                        # the sender's status refreshes on the receipt
    expect(page.locator(".broadcast-table")).to_contain_text(staff.department)  # type: ignore[attr-defined]
    expect(page.locator(".admin-body")).to_contain_text("まだの人（1 人）")
    expect_no_serious(page, "broadcast-status")
    shot(page, "34-broadcast-status")

    staff.page.goto("/#/work/inbox")
    item = staff.page.locator(".inbox-item", has_text="台風接近に伴う庁舎閉鎖")
    expect(item.locator(".tag")).to_have_text("確認済み")
    expect_no_serious(staff.page, "broadcast-inbox")


def test_notice_with_read_confirmation(manager: Staff, staff: Staff) -> None:
    page = manager.page
    page.goto("/#/work/notices")
    page.get_by_label("件名").fill("健康診断のお知らせ")
    page.get_by_label("本文").fill("6月に定期健康診断を行います。")
    page.get_by_label("添付ファイル（任意）").set_input_files(files=[{"name": "日程表.txt", "mimeType": "text/plain",
                                                                  "buffer": "6月10日 総務部\n".encode()}])
    expect_no_serious(page, "notices")
    page.get_by_role("button", name="投稿", exact=True).click()
    expect(page.locator("#nt-detail-h")).to_have_text("健康診断のお知らせ")
    expect(page.locator(".notice-detail .file-link")).to_have_text("日程表.txt")

    notice_banner = staff.page.locator(".notice-banner", has_text="健康診断のお知らせ")
    expect(notice_banner).to_be_visible()
    notice_banner.get_by_role("link", name="開く").click()
    expect(staff.page.locator("#nt-detail-h")).to_have_text("健康診断のお知らせ")
    staff.page.get_by_role("button", name="読みました").click()
    expect(staff.page.locator(".notice-detail [role=status]")).to_contain_text("既読にしました")
    page.reload()
    expect(page.locator("#nt-reads-h")).to_contain_text(re.compile(r"既読確認（[1-9]\d* / "))
    expect_no_serious(page, "notice-reads")
    shot(page, "35-notice-reads")


def test_ack_required_room_message(browser: Any, server: Server, staff: Staff) -> None:
    sato = sign_in(browser, server, "sato")
    rid = room_id(sato, "ワクチン接種調整")
    sato.page.goto(f"/#/room/{rid}")
    staff.page.goto(f"/#/room/{rid}")
    composer = sato.page.locator("#composer-input")
    composer.fill("接種会場の変更を確認してください")
    composer.press("Enter")
    mine = sato.page.locator(".timeline-list > li.msg", has_text="接種会場の変更を確認してください")
    mine.get_by_role("button", name=re.compile("その他の操作")).click()
    sato.page.locator("dialog.menu-dialog").get_by_role("button", name="確認を求める（確認必須）").click()
    theirs = staff.page.locator(".timeline-list > li.msg", has_text="接種会場の変更を確認してください")
    theirs.get_by_role("button", name="確認", exact=True).click()
    expect(theirs.locator(".chip.ack")).to_have_text("確認済み")
    mine.get_by_role("button", name="確認状況").click()
    dialog = sato.page.locator("dialog.acks-dialog")
    expect(dialog.locator("#acks-done")).to_have_text("確認済み（1 人）")
    expect(dialog.locator("section").first).to_contain_text("田中 陽子")
    expect(dialog.locator("table")).to_contain_text(staff.department)  # type: ignore[attr-defined]
    expect_no_serious(sato.page, "ack-status")
    shot(sato.page, "36-ack-status")
    dialog.get_by_role("button", name="未確認の人に再通知").click()
    expect(dialog.locator("[role=status]").last).to_contain_text("人に再通知しました")
    assert real_errors(sato.errors) == []
    sato.close()


def test_new_screens_reflow_at_200_percent(browser: Any, server: Server, officers: Officers) -> None:
    """1280×800 at 200% zoom: the 業務 screens and the banner fit the width, without sideways scrolling."""
    person = sign_in(browser, server, officers.records_login, viewport={"width": 640, "height": 400},
                     device_scale_factor=2)
    page = person.page
    for section in ("tasks", "safety", "notices", "holds", "disposal", "disclosure"):
        page.goto(f"/#/work/{section}")
        expect(page.locator(".admin-tab[aria-current=page]")).to_be_visible()
        page.wait_for_load_state("networkidle")
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{section}: horizontal scrolling at 200% ({overflow}px)"
    shot(page, "37-zoom-200-work")
    person.close()
