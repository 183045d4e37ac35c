"""Municipal operations (issue 6): 安否確認, 一斉送信, 確認必須, お知らせ, tasks, polls — through the API."""

from __future__ import annotations

import asyncio
import io
import os
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import openpyxl
import pytest
from lgwan_harness import DEMO_PASSWORD, ClientFactory, Roster, ServerProcess, StaffClient, WsClient, is_event


async def _event(ws: WsClient, kind: str) -> dict[str, Any]:
    return await ws.wait_for(is_event(kind), timeout=5.0)


async def _no_event(ws: WsClient, kind: str) -> None:
    with pytest.raises(TimeoutError):
        await ws.wait_for(is_event(kind), timeout=0.7)


async def test_safety_check_flow(make_server: Callable[..., ServerProcess], clients: ClientFactory,
                                 roster: Roster) -> None:
    server = make_server()
    admin = await clients.admin(server)
    a, b, c = roster.take(3, same_department=True)
    outsider = roster.one(outside=(a,))
    alice, bob, carol = (await clients.staff(server, a), await clients.staff(server, b),
                         await clients.staff(server, c))
    stranger = await clients.staff(server, outsider)
    ws = await alice.ws()

    await alice.post("/api/safety", json={"title": "勝手な確認"}, expect=403, code="forbidden")
    check = (await admin.post("/api/safety", json={"title": "【訓練】震度6弱", "department_ids": [a.department_id],
                                                   "questions": ["condition", "attend", "eta"]}, expect=201)).data
    assert (await _event(ws, "safety.request"))["data"]["id"] == check["id"]    # live, to the target

    await stranger.post(f"/api/safety/{check['id']}/answer", json={"condition": "safe"}, expect=404)
    await alice.post(f"/api/safety/{check['id']}/answer", json={"condition": "minor"}, expect=200)
    await alice.post(f"/api/safety/{check['id']}/answer", json={"condition": "safe", "attend": "yes",
                                                               "eta_minutes": 45}, expect=200)   # latest counts
    await bob.post(f"/api/safety/{check['id']}/answer", json={"condition": "need_help", "note": "自宅が浸水"},
                   expect=200)
    await bob.post(f"/api/safety/{check['id']}/answer", json={"condition": "fine"}, expect=400)
    await carol.get(f"/api/safety/{check['id']}/dashboard", expect=403)

    board = (await admin.get(f"/api/safety/{check['id']}/dashboard", expect=200)).data
    targets = server.scalar("SELECT count(*) FROM staff WHERE department_id = ? AND status = 'active'",
                            (a.department_id,))
    assert board["totals"]["targets"] == targets
    assert board["totals"]["answered"] == 2 and board["totals"]["unanswered"] == targets - 2
    assert board["totals"]["safe"] == 1 and board["totals"]["need_help"] == 1 and board["totals"]["attend_yes"] == 1
    assert [d["department"] for d in board["departments"]] == [a.department]

    carol_ws = await carol.ws()
    reminded = (await admin.post(f"/api/safety/{check['id']}/remind", expect=200)).data["reminded"]
    assert reminded == targets - 2
    await _event(carol_ws, "safety.reminder")
    await _no_event(ws, "safety.reminder")                                       # alice answered: no reminder

    xlsx = await admin.get(f"/api/safety/{check['id']}/export", expect=200)
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.raw))["安否確認"]
    rows = {r[0]: r for r in sheet.iter_rows(min_row=2, values_only=True)}
    assert rows[a.name][3] == "無事" and rows[a.name][4] == "参集可" and rows[b.name][3] == "要支援"
    assert rows[c.name][3] == "未回答" and rows[a.name][2] == a.department
    csv = await admin.get(f"/api/safety/{check['id']}/export", params={"format": "csv"}, expect=200)
    assert csv.raw.startswith(b"\xef\xbb\xbf") and a.name in csv.raw.decode("utf-8-sig")

    await admin.post(f"/api/safety/{check['id']}/close", expect=200)
    await carol.post(f"/api/safety/{check['id']}/answer", json={"condition": "safe"}, expect=409)
    audited = Counter(r[0] for r in server.query("SELECT action FROM audit_log WHERE action LIKE 'safety.%'"))
    assert audited == {"safety.start": 1, "safety.remind": 1, "safety.export": 2, "safety.close": 1}


def _big_org_csvs(staff: int, departments: int, seed: int = 7) -> tuple[bytes, bytes, dict[str, str]]:
    rng = random.Random(seed)
    dept_rows = ["部署コード,部署名,上位部署コード,種別"]
    for bu in range(10):
        dept_rows.append(f"B{bu},第{bu + 1}部,,部")
    codes = [f"K{i:03d}" for i in range(departments)]
    for i, code in enumerate(codes):
        dept_rows.append(f"{code},第{i + 1}課,B{i % 10},課")
    staff_rows = ["職員番号,氏名,ログインID,部署コード"]
    home: dict[str, str] = {}
    for i in range(staff):
        code = rng.choice(codes)
        home[f"u{i:05d}"] = code
        staff_rows.append(f"E{i:05d},職員{i:05d},u{i:05d},{code}")
    return ("\r\n".join(dept_rows) + "\r\n").encode("cp932"), ("\r\n".join(staff_rows) + "\r\n").encode("cp932"), home


@pytest.mark.slow
async def test_safety_dashboard_exact_with_20000_staff(make_server: Callable[..., ServerProcess],
                                                       clients: ClientFactory) -> None:
    staff_count = int(os.environ.get("KAKEHASHI_SAFETY_STAFF", "20000"))
    answering = int(os.environ.get("KAKEHASHI_SAFETY_ANSWERS", "5000"))
    # Cheap argon2 parameters for this server only: the test is about the roll-up, not password hashing.
    server = make_server({"auth": {"argon2_time_cost": 1, "argon2_memory_cost_kib": 8192, "argon2_parallelism": 1,
                                   "login_attempts_per_minute_per_ip": 100_000},
                          "limits": {"max_json_body_bytes": "2 MiB"}}, demo=False)
    assert server.cli("create-org", "--code", "999992", "--name", "大規模市").returncode == 0
    created = server.cli("create-admin", "--org", "999992", "--login", "admin", "--name", "危機管理監",
                         env={"KAKEHASHI_PASSWORD": DEMO_PASSWORD})
    assert created.returncode == 0, created.stderr
    depts_csv, staff_csv, home = _big_org_csvs(staff_count, 60)
    (server.root / "depts.csv").write_bytes(depts_csv)
    (server.root / "staff.csv").write_bytes(staff_csv)
    for command, name in (("import-departments", "depts.csv"), ("import-staff", "staff.csv")):
        result = server.cli(command, "--org", "999992", str(server.root / name), timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
    ids = dict(server.query("SELECT login, id FROM staff WHERE login LIKE 'u%'"))
    dept_names = dict(server.query("SELECT code, name FROM departments"))
    assert len(ids) == staff_count

    admin = await clients.admin(server)
    check = (await admin.post("/api/safety", json={"title": "【訓練】全職員 安否確認"}, expect=201)).data
    assert server.scalar("SELECT count(*) FROM safety_targets WHERE check_id = ?", (check["id"],)) == staff_count + 1

    rng = random.Random(11)
    chosen = rng.sample(sorted(ids), answering)
    answers = {login: rng.choice(["safe", "safe", "safe", "minor", "serious", "need_help"]) for login in chosen}
    semaphore = asyncio.Semaphore(24)

    async def answer(login: str) -> None:
        async with semaphore:
            await admin.put(f"/api/admin/staff/{ids[login]}/password", json={"password": f"初期パスワード{ids[login]}番-2026"},
                            expect=200)
            client = StaffClient(server, login)
            try:
                await client.login(password=f"初期パスワード{ids[login]}番-2026", expect=200)
                await client.post(f"/api/safety/{check['id']}/answer", json={"condition": answers[login]}, expect=200)
            finally:
                await client.close()

    await asyncio.gather(*(answer(login) for login in chosen))

    expected: dict[str, Counter[str]] = {}
    targets: Counter[str] = Counter(dept_names[home[login]] for login in ids)
    for login, condition in answers.items():
        expected.setdefault(dept_names[home[login]], Counter())[condition] += 1
    board = (await admin.get(f"/api/safety/{check['id']}/dashboard", expect=200)).data
    seen = {d["department"]: d for d in board["departments"] if d["department"] in targets}
    assert set(seen) == set(targets)
    for name, row in seen.items():
        want = expected.get(name, Counter())
        assert row["targets"] == targets[name], name
        assert row["answered"] == sum(want.values()), name
        assert (row["safe"], row["minor"], row["serious"], row["need_help"]) == \
            (want["safe"], want["minor"], want["serious"], want["need_help"]), name
        assert row["unanswered"] == targets[name] - sum(want.values())
    assert board["totals"]["answered"] == answering
    assert board["totals"]["needs_attention"] == sum(1 for c in answers.values() if c in ("serious", "need_help"))


async def test_broadcast_tracking_and_cross_org_grant(make_server: Callable[..., ServerProcess],
                                                      clients: ClientFactory, roster: Roster) -> None:
    server = make_server()
    admin = await clients.admin(server)
    a, b = roster.take(2, same_department=True)
    alice, bob = await clients.staff(server, a), await clients.staff(server, b)
    ws = await alice.ws()
    await alice.post("/api/broadcasts", json={"title": "x", "body": "y"}, expect=403)
    sent = (await admin.post("/api/broadcasts", json={"title": "【重要】台風接近", "body": "明日は自宅待機とします。",
                                                      "important": True, "ack_required": True,
                                                      "department_ids": [a.department_id]}, expect=201)).data
    assert (await _event(ws, "broadcast.new"))["data"]["id"] == sent["id"]
    await alice.post(f"/api/broadcasts/{sent['id']}/ack", expect=200)
    await bob.get("/api/broadcasts", expect=200)                                   # fetched: delivered
    status = (await admin.get(f"/api/broadcasts/{sent['id']}/status", expect=200)).data
    recipients = server.scalar("SELECT count(*) FROM staff WHERE department_id = ? AND status = 'active'",
                               (a.department_id,))
    assert status["totals"]["recipients"] == recipients
    assert status["totals"]["acked"] == 1 and status["totals"]["read"] == 1 and status["totals"]["delivered"] >= 2
    assert status["pending_count"] == recipients - 1 and a.id not in {p["id"] for p in status["pending"]}
    assert (await admin.post(f"/api/broadcasts/{sent['id']}/remind", expect=200)).data["reminded"] == recipients - 1
    await bob.get(f"/api/broadcasts/{sent['id']}/status", expect=404)              # not the sender's business

    # Another organisation on the same server receives only after its admin grants it.
    assert server.cli("create-org", "--code", "999993", "--name", "隣町").returncode == 0
    assert server.cli("create-admin", "--org", "999993", "--login", "rinchou-admin", "--name", "隣町管理者",
                      env={"KAKEHASHI_PASSWORD": "隣町の管理者パスワード2026"}).returncode == 0
    other_org = server.scalar("SELECT id FROM organisations WHERE code = '999993'")
    await admin.post("/api/broadcasts", json={"title": "県から", "body": "全市町村へ", "org_ids": [other_org]},
                     expect=403, code="org_not_allowed")
    neighbour = clients.new(server, "rinchou-admin")
    await neighbour.login(password="隣町の管理者パスワード2026", expect=200)
    from lgwan_harness import enrol_totp
    await enrol_totp(neighbour)
    await neighbour.put("/api/admin/broadcast-grants/999991", expect=200)
    done = (await admin.post("/api/broadcasts", json={"title": "県から", "body": "全市町村へ", "org_ids": [other_org]},
                             expect=201)).data
    assert server.scalar("SELECT count(*) FROM broadcast_recipients WHERE broadcast_id = ?", (done["id"],)) == 1


async def test_must_acknowledge_message(demo_server: ServerProcess, clients: ClientFactory, people: Roster) -> None:
    a, b, c = people.take(3, same_department=True)
    alice, bob, carol = (await clients.staff(demo_server, a), await clients.staff(demo_server, b),
                         await clients.staff(demo_server, c))
    room = await alice.create_room("確認必須テスト", [b, c])
    msg = await alice.say(room["id"], "明日の会議は中止です。確認してください。")
    await bob.post(f"/api/messages/{msg['id']}/ack", expect=409)                   # nothing requested yet
    await bob.post(f"/api/messages/{msg['id']}/ack-request", expect=403)           # only its sender asks
    await alice.post(f"/api/messages/{msg['id']}/ack-request", expect=200)
    carol_ws = await carol.ws()
    await bob.post(f"/api/messages/{msg['id']}/ack", expect=200)
    status = (await alice.get(f"/api/messages/{msg['id']}/acks", expect=200)).data
    assert status["acked_count"] == 1 and [p["id"] for p in status["pending"]] == [c.id]
    assert status["departments"] == [{"department": a.department, "members": 2, "acked": 1}]
    assert (await alice.post(f"/api/messages/{msg['id']}/ack-remind", expect=200)).data["reminded"] == 1
    await _event(carol_ws, "ack.reminder")


async def test_notices_audience_read_confirmation_and_attachment(
        make_server: Callable[..., ServerProcess], clients: ClientFactory, roster: Roster) -> None:
    server = make_server()
    admin = await clients.admin(server)
    a, b = roster.take(2, same_department=True)
    outsider = roster.one(outside=(a,))
    alice, bob, stranger = (await clients.staff(server, a), await clients.staff(server, b),
                            await clients.staff(server, outsider))
    await alice.post("/api/notices", json={"title": "全庁", "body": "x"}, expect=403)
    notice = (await alice.post("/api/notices", json={"title": "課内連絡", "body": "備品の棚卸しは15日です。",
                                                     "department_ids": [a.department_id]}, expect=201)).data
    await stranger.get(f"/api/notices/{notice['id']}", expect=404)
    assert notice["id"] not in {n["id"] for n in (await stranger.get("/api/notices")).data["notices"]}
    listed = {n["id"]: n for n in (await bob.get("/api/notices", expect=200)).data["notices"]}
    assert listed[notice["id"]]["read"] is False
    await bob.post(f"/api/notices/{notice['id']}/read", expect=200)
    reads = (await alice.get(f"/api/notices/{notice['id']}/reads", expect=200)).data
    assert reads["read_count"] == 1 and b.id not in {p["id"] for p in reads["pending"]}
    await bob.get(f"/api/notices/{notice['id']}/reads", expect=404)

    import aiohttp
    form = aiohttp.FormData()
    form.add_field("file", "棚卸し表".encode(), filename="棚卸し.txt", content_type="text/plain")
    att = (await alice.post(f"/api/notices/{notice['id']}/attachments", data=form, expect=201)).data["id"]
    got = await bob.get(f"/api/notices/{notice['id']}/attachments/{att}", expect=200)
    assert got.raw == "棚卸し表".encode()
    await stranger.get(f"/api/notices/{notice['id']}/attachments/{att}", expect=404)
    org_wide = (await admin.post("/api/notices", json={"title": "健康診断", "body": "10月実施"}, expect=201)).data
    assert org_wide["id"] in {n["id"] for n in (await stranger.get("/api/notices")).data["notices"]}


async def test_tasks_from_messages(demo_server: ServerProcess, clients: ClientFactory, people: Roster) -> None:
    a, b = people.take(2, same_department=True)
    outsider = people.one(outside=(a,))
    alice, bob, stranger = (await clients.staff(demo_server, a), await clients.staff(demo_server, b),
                            await clients.staff(demo_server, outsider))
    room = await alice.create_room("タスクテスト", [b])
    msg = await alice.say(room["id"], "会場の予約をお願いします")
    await alice.post("/api/tasks", json={"title": "会場予約", "message_id": msg["id"], "assignee_ids": [outsider.id]},
                     expect=400)
    await stranger.post("/api/tasks", json={"title": "覗き見", "message_id": msg["id"]}, expect=404)
    task = (await alice.post("/api/tasks", json={"title": "会場予約", "message_id": msg["id"], "assignee_ids": [b.id],
                                                 "due_date": "2026-12-01"}, expect=201)).data
    mine = (await bob.get("/api/tasks", expect=200)).data["tasks"]
    assert [t["id"] for t in mine] == [task["id"]] and mine[0]["assignees"] == [b.id]
    await bob.patch(f"/api/tasks/{task['id']}", json={"status": "done"}, expect=200)
    assert (await bob.get("/api/tasks")).data["tasks"] == []
    assert [t["status"] for t in (await bob.get("/api/tasks", params={"done": "1"})).data["tasks"]] == ["done"]
    await stranger.get(f"/api/tasks/{task['id']}", expect=404)
    await bob.patch(f"/api/tasks/{task['id']}", json={"due_date": "2026-02-30"}, expect=400)
    assert [t["id"] for t in (await alice.get(f"/api/rooms/{room['id']}/tasks")).data["tasks"]] == [task["id"]]


async def test_polls_by_department(demo_server: ServerProcess, clients: ClientFactory, people: Roster) -> None:
    a, b = people.take(2, same_department=True)
    c = people.one(outside=(a,))
    alice, bob, carol = (await clients.staff(demo_server, a), await clients.staff(demo_server, b),
                         await clients.staff(demo_server, c))
    room = await alice.create_room("アンケート", [b, c])
    poll = (await alice.post(f"/api/rooms/{room['id']}/polls", json={"question": "忘年会の日程",
                                                                     "options": ["12/20", "12/27"]}, expect=201)).data
    await alice.post(f"/api/rooms/{room['id']}/polls", json={"question": "x", "options": ["同じ", "同じ"]}, expect=400)
    await bob.post(f"/api/polls/{poll['id']}/vote", json={"options": [0, 1]}, expect=400)     # single choice
    await bob.post(f"/api/polls/{poll['id']}/vote", json={"options": [1]}, expect=200)
    await carol.post(f"/api/polls/{poll['id']}/vote", json={"options": [0]}, expect=200)
    await carol.post(f"/api/polls/{poll['id']}/vote", json={"options": [1]}, expect=200)      # changes mind
    results = (await alice.get(f"/api/polls/{poll['id']}", expect=200)).data
    assert results["counts"] == [0, 2] and results["voters"] == 2
    assert {d["department"]: d["counts"] for d in results["by_department"]} == {a.department: [0, 1],
                                                                                 c.department: [0, 1]}
    assert {v["id"] for v in results["choices"][0]["voters"]} == {b.id, c.id}
    await bob.post(f"/api/polls/{poll['id']}/close", expect=403)
    await alice.post(f"/api/polls/{poll['id']}/close", expect=200)
    await bob.post(f"/api/polls/{poll['id']}/vote", json={"options": [0]}, expect=409)
    anonymous = (await alice.post(f"/api/rooms/{room['id']}/polls", json={"question": "満足度", "anonymous": True,
                                                                          "options": ["高", "低"]}, expect=201)).data
    await bob.post(f"/api/polls/{anonymous['id']}/vote", json={"options": [0]}, expect=200)
    assert "choices" not in (await alice.get(f"/api/polls/{anonymous['id']}")).data
