"""HR CSV import through /api/admin/import/*: Shift_JIS (cp932) as Excel writes it, idempotent, all or nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from lgwan_harness import ClientFactory, ServerProcess, StaffClient

DEPT_HEADER = ["部署コード", "部署名", "上位部署コード", "種別", "表示順"]
DEPARTMENTS = [["400", "都市整備部", "", "部", "20"], ["410", "道路河川課", "400", "課", "21"],
               ["420", "まちづくり推進室", "400", "室", "22"]]
STAFF_HEADER = ["職員番号", "氏名", "よみがな", "ログインID", "部署コード", "職層コード", "職層", "職層順位", "役職", "権限"]
# 髙, 﨑 and 彅 exist in cp932 (Windows) but not in JIS X 0208 Shift_JIS: a strict shift_jis decoder fails.
STAFF = [["E9001", "髙橋 﨑子", "たかはし さきこ", "takahashi-s", "410", "06", "係長級", "6", "道路維持係長", "一般"],
         ["E9002", "草彅 剛", "くさなぎ つよし", "kusanagi-t", "420", "08", "主事", "8", "", "一般"],
         ["E9003", "渡邉 ①花", "わたなべ いちか", "watanabe-i", "420", "07", "主査", "7", "", "管理者"]]


def csv_bytes(rows: list[list[str]], encoding: str = "cp932") -> bytes:
    return ("\r\n".join(",".join(r) for r in rows) + "\r\n").encode(encoding)


async def post_csv(admin: StaffClient, what: str, data: bytes, **kw: object) -> dict:  # type: ignore[type-arg]
    reply = await admin.post(f"/api/admin/import/{what}", data=data, headers={"Content-Type": "text/csv"}, **kw)
    return reply.data


@pytest.fixture
def server(make_server: Callable[..., ServerProcess]) -> ServerProcess:
    return make_server()


async def test_cp932_import_is_intact_and_idempotent(server: ServerProcess, clients: ClientFactory) -> None:
    admin = await clients.admin(server)
    depts = csv_bytes([DEPT_HEADER, *DEPARTMENTS])
    staff = csv_bytes([STAFF_HEADER, *STAFF])
    with pytest.raises(UnicodeDecodeError):
        staff.decode("shift_jis")          # the file really needs cp932

    first = await post_csv(admin, "departments", depts, expect=200)
    assert (first["rows"], first["created"], first["updated"], first["unchanged"]) == (3, 3, 0, 0)
    assert first["rooms_created"] == 3
    first_staff = await post_csv(admin, "staff", staff, expect=200)
    assert (first_staff["rows"], first_staff["created"], first_staff["updated"], first_staff["unchanged"]) == (3, 3, 0, 0)

    # Japanese names arrive intact, through the API and in the database.
    names = {d["code"]: d["name"] for d in (await admin.get("/api/departments", expect=200)).data["departments"]}
    assert [names[c] for c in ("400", "410", "420")] == ["都市整備部", "道路河川課", "まちづくり推進室"]
    found = (await admin.get("/api/staff", params={"q": "髙橋"}, expect=200)).data["staff"]
    assert [(s["display_name"], s["kana"], s["department"], s["title"]) for s in found] == \
        [("髙橋 﨑子", "たかはし さきこ", "道路河川課", "道路維持係長")]
    rows = server.query("SELECT employee_no, display_name, role, status FROM staff WHERE employee_no LIKE 'E900%'"
                        " ORDER BY employee_no")
    assert rows == [("E9001", "髙橋 﨑子", "staff", "active"), ("E9002", "草彅 剛", "staff", "active"),
                    ("E9003", "渡邉 ①花", "org_admin", "active")]
    # Generated rooms: the 部 room holds everyone below it.
    bu_room = server.scalar("SELECT r.id FROM rooms r JOIN departments d ON d.id = r.department_id"
                            " WHERE r.kind = 'department' AND d.code = '400'")
    assert server.scalar("SELECT count(*) FROM room_members WHERE room_id = ?", (bu_room,)) == 3

    # Second run (and the same data as UTF-8 with a BOM): nothing changes.
    before = server.fingerprint(("departments", "staff", "staff_assignments", "rooms", "room_members", "events"))
    for data in (depts, csv_bytes([DEPT_HEADER, *DEPARTMENTS], "utf-8-sig")):
        again = await post_csv(admin, "departments", data, expect=200)
        assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 3)
        assert (again["rooms_created"], again["members_added"], again["members_removed"]) == (0, 0, 0)
    again = await post_csv(admin, "staff", staff, expect=200)
    assert (again["created"], again["updated"], again["unchanged"], again["scheduled"]) == (0, 0, 3, 0)
    assert (again["members_added"], again["members_removed"]) == (0, 0)
    assert server.fingerprint(("departments", "staff", "staff_assignments", "rooms", "room_members", "events")) == before
    imports = server.query("SELECT action, outcome FROM audit_log WHERE action LIKE 'org.import_%'"
                           " AND actor_login = 'admin' ORDER BY id")
    assert imports == [("org.import_departments", "ok"), ("org.import_staff", "ok"),
                       ("org.import_departments", "ok"), ("org.import_departments", "ok"), ("org.import_staff", "ok")]


@pytest.mark.parametrize(("what", "rows", "line", "field"), [
    ("staff", [STAFF_HEADER, STAFF[0], ["E9002", "草彅 剛", "くさなぎ", "bad login!", "420", "", "", "", "", ""],
               STAFF[2]], 3, "login"),
    ("staff", [STAFF_HEADER, *STAFF[:2], ["E9003", "渡邉 ①花", "", "watanabe-i", "420", "", "", "", "", "神"]],
     4, "role"),
    ("staff", [STAFF_HEADER, STAFF[0], STAFF[0][:3] + ["other-login"] + STAFF[0][4:]], 3, "employee_no"),
    # Found only when the rows meet the database (an unknown department code): still nothing written.
    ("staff", [STAFF_HEADER, ["E9001", "髙橋 﨑子", "", "takahashi-s", "999", "", "", "", "", ""]], 2,
     "department_code"),
    ("staff", [STAFF_HEADER, ["E9001", "髙橋 﨑子", "", "admin", "110", "", "", "", "", ""]], 2, "login"),
    ("staff", [STAFF_HEADER, ["E9001", "髙橋 﨑子", "", "takahashi-s", "110", "06", "係長級", "²", "", ""]], 2,
     "rank_level"),     # (written as UTF-8: "²" has no cp932 code)
    ("staff", [STAFF_HEADER, ["E9001", "髙橋 﨑子", "", "takahashi-s", "110", "06", "係長級", "9" * 30, "", ""]], 2,
     "rank_level"),
    ("departments", [DEPT_HEADER, DEPARTMENTS[0], ["410", "道路河川課", "499", "課", "21"]], 3, "parent_code"),
    ("departments", [DEPT_HEADER, *DEPARTMENTS[:2], ["420", "まちづくり推進室", "400", "班長", "22"]], 4, "kind"),
    ("departments", [DEPT_HEADER, DEPARTMENTS[0], ["410", "道路河川課", "400", "課", "²"]], 3, "sort_order"),
    ("departments", [DEPT_HEADER, DEPARTMENTS[0], ["410", "道路河川課", "400", "課", "9" * 30]], 3, "sort_order"),
])
async def test_one_bad_row_writes_nothing(module_server: ServerProcess, clients: ClientFactory, what: str,
                                          rows: list[list[str]], line: int, field: str) -> None:
    server = module_server      # every case writes nothing, so the cases can share a server
    admin = await clients.admin(server)
    if what == "staff":
        await post_csv(admin, "departments", csv_bytes([DEPT_HEADER, *DEPARTMENTS]), expect=200)
    before = server.fingerprint()
    text = "\r\n".join(",".join(r) for r in rows)
    data = csv_bytes(rows) if "²" not in text else csv_bytes(rows, "utf-8")
    reply = await admin.post(f"/api/admin/import/{what}", data=data,
                             headers={"Content-Type": "text/csv"}, expect=400, code="csv_invalid")
    errors = reply.detail["errors"]
    assert {"line": line, "field": field} in [{"line": e["line"], "field": e["field"]} for e in errors], errors
    assert server.fingerprint() == before


async def test_unreadable_files_are_refused(module_server: ServerProcess, clients: ClientFactory) -> None:
    server = module_server
    admin = await clients.admin(server)
    before = server.fingerprint()
    cases = [
        (b"", "text/csv", 400, "csv_invalid"),
        (b"\x81\x7f\xff\xfe\x00garbage", "text/csv", 400, "csv_invalid"),             # neither UTF-8 nor cp932
        (csv_bytes([["氏名", "ログインID"], ["髙橋", "x"]]), "text/csv", 400, "csv_invalid"),  # columns missing
        (csv_bytes([DEPT_HEADER, *DEPARTMENTS]), "application/json", 415, "unsupported_media_type"),
    ]
    for data, ctype, status, code in cases:
        await admin.post("/api/admin/import/departments", data=data, headers={"Content-Type": ctype}, expect=status,
                         code=code)
    assert server.fingerprint() == before


async def test_csv_larger_than_the_json_limit_imports(server: ServerProcess, clients: ClientFactory) -> None:
    """A real HR export is bigger than a JSON request: the CSV limit (20 MiB) applies, not 256 KiB."""
    admin = await clients.admin(server)
    await post_csv(admin, "departments", csv_bytes([DEPT_HEADER, *DEPARTMENTS]), expect=200)
    note = "備考" * 5000          # an extra column the importer ignores, as HR exports have many
    rows = [[*STAFF_HEADER, "備考"]] + [
        [f"E8{i:03d}", f"職員 {i}号", "しょくいん", f"bulk{i:03d}", "410", "08", "主事", "8", "", "一般", note]
        for i in range(20)]
    data = csv_bytes(rows)
    assert len(data) > 256 * 1024
    result = await post_csv(admin, "staff", data, expect=200)
    assert (result["rows"], result["created"]) == (20, 20)
