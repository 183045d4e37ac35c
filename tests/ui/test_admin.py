"""Admin screens through the browser: CSV import, 人事異動, IP allowlist and MFA policy, room crossing
policy, audit log with filters and chain verification, and 利用状況 (GET /api/admin/usage)."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from .conftest import Server, Staff, real_errors, shot, sign_in

DEPT_CSV = "部署コード,部署名,上位部署コード,種別,表示順\r\n100,総務部,,部,0\r\n150,デジタル推進課,100,課,5\r\n"


def test_department_import_and_transfer(admin: Staff, tmp_path: Any) -> None:
    page = admin.page
    page.goto("/#/admin/import")
    csv_file = tmp_path / "departments.csv"
    csv_file.write_bytes(DEPT_CSV.encode("cp932"))       # HR exports are often Shift_JIS
    page.set_input_files("#import-departments", str(csv_file))
    page.locator("#import-departments").locator("xpath=ancestor::form").get_by_role("button", name="取り込む").click()
    result = page.locator(".import-result").first
    expect(result).to_contain_text("取り込みました")
    expect(result.locator("dl")).to_contain_text("作成したルーム")
    bad = tmp_path / "bad.csv"
    bad.write_text("部署コード,部署名\r\n,名前なし\r\n", encoding="utf-8")
    page.set_input_files("#import-staff", str(bad))
    page.locator("#import-staff").locator("xpath=ancestor::form").get_by_role("button", name="取り込む").click()
    expect(page.locator(".import-result").nth(1).locator(".form-error")).to_be_visible()

    page.goto("/#/admin/transfers")
    page.locator("#tr-staff").select_option(label="田中 陽子 (tanaka)")
    page.locator("#tr-dept").select_option(label="デジタル推進課")
    page.fill("#tr-title", "主任")
    page.get_by_role("button", name="人事異動を登録").click()
    expect(page.locator(".admin-body [role=status]").first).to_contain_text("登録しました")
    expect(page.locator(".table-wrap table")).to_contain_text("デジタル推進課")
    shot(page, "13-admin-transfers")


def test_security_policy_and_room_crossing(admin: Staff) -> None:
    page = admin.page
    page.goto("/#/admin/security")
    page.fill("#sec-ip", "127.0.0.0/8\n10.20.0.0/16")
    page.get_by_label("全職員に必須").check()
    page.get_by_role("button", name="保存").click()
    expect(page.locator(".admin-body [role=status]")).to_contain_text("保存しました")
    org = admin.api("GET", "/api/admin/org")
    assert org["ip_allowlist"] == ["127.0.0.0/8", "10.20.0.0/16"] and org["mfa_policy"] == "all"
    page.fill("#sec-ip", "not-an-address")
    page.get_by_role("button", name="保存").click()
    expect(page.locator(".admin-body .form-error")).to_contain_text("IP アドレス")
    admin.api("PATCH", "/api/admin/org", data={"ip_allowlist": [], "mfa_policy": "admins"})   # restore

    page.goto("/#/admin/rooms")
    select = page.get_by_label("庁内お知らせ の公開範囲")
    expect(select).to_have_value("lgwan_only")
    select.select_option("staff_mobile")
    expect(page.locator(".admin-body [role=status]").first).to_contain_text("職員の業務用スマートフォン")
    rooms = admin.api("GET", "/api/rooms")["rooms"]
    assert next(r for r in rooms if r["name"] == "庁内お知らせ")["crossing_policy"] == "staff_mobile"
    select.select_option("lgwan_only")


def test_audit_log_filters_and_verify(admin: Staff) -> None:
    page = admin.page
    page.goto("/#/admin/audit")
    expect(page.locator(".audit-table tbody tr").first).to_be_visible()
    page.locator("#audit-action").select_option("auth.login")
    page.get_by_role("button", name="絞り込む").click()
    expect(page.locator(".audit-table tbody tr").first).to_contain_text("auth.login")
    actions = page.locator(".audit-table tbody td code").all_inner_texts()
    assert actions and all(a == "auth.login" for a in actions)
    page.get_by_role("button", name="改ざん検証").click()
    expect(page.locator(".admin-body [role=status]").first).to_contain_text("改ざんされていません")
    shot(page, "14-admin-audit")


def test_usage_dashboard(admin: Staff) -> None:
    page = admin.page
    page.goto("/#/admin/usage")
    chart = page.locator("svg.chart")
    expect(chart).to_be_visible()
    expect(chart.locator("rect.bar")).to_have_count(30)
    expect(page.locator(".usage table").first).to_contain_text("総務部 総務課")
    data = admin.api("GET", "/api/admin/usage?days=7")
    assert len(data["days"]) == len(data["active_users"]) == len(data["messages"]) == 7
    assert data["messages"][-1] >= 1 and data["active_users"][-1] >= 1
    assert sum(d["total"] for d in data["departments"]) == sum(data["messages"])
    page.locator("#usage-days").select_option("7")
    expect(chart.locator("rect.bar")).to_have_count(7)
    shot(page, "08-admin-usage")
    assert real_errors(admin.errors) == []


def test_usage_api_is_admin_only(browser: Any, server: Server) -> None:
    sato = sign_in(browser, server, "sato", open_page=False)
    assert sato.context.request.get("/api/admin/usage").status == 403
    assert sato.context.request.get("/api/admin/usage?days=0").status in (400, 403)
    sato.close()
