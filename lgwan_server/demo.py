"""The sample city 架橋市 (fictional): 3 部, 10 課, ~200 staff, rooms and some history.

It goes through the same paths as a real municipality: departments and staff arrive as an HR
CSV in Shift_JIS, rooms and messages are created through the services. Idempotent: a second run
only prints the logins again.
"""

from __future__ import annotations

import random
from typing import Any

from .kernel import Kernel
from .services.actor import Actor
from .services.messages import NewMessage
from .storage import org as org_store

ORG_CODE = "999991"          # not a real 地方公共団体コード
ORG_NAME = "架橋市"
DEFAULT_PASSWORD = "kakehashi-demo-2026"

DEPARTMENTS = [
    # code, name, parent, kind
    ("100", "総務部", "", "部"), ("110", "総務課", "100", "課"), ("120", "人事課", "100", "課"),
    ("130", "情報政策課", "100", "課"), ("140", "危機管理課", "100", "課"),
    ("200", "市民生活部", "", "部"), ("210", "市民課", "200", "課"), ("220", "環境課", "200", "課"),
    ("230", "税務課", "200", "課"),
    ("300", "健康福祉部", "", "部"), ("310", "健康推進課", "300", "課"), ("320", "高齢福祉課", "300", "課"),
    ("330", "子ども家庭課", "300", "課"),
]
RANKS = [("01", "市長", 1), ("02", "副市長", 2), ("03", "部長級", 3), ("04", "課長級", 4), ("05", "課長補佐級", 5),
         ("06", "係長級", 6), ("07", "主査", 7), ("08", "主事", 8)]
SURNAMES = [("佐藤", "さとう"), ("鈴木", "すずき"), ("高橋", "たかはし"), ("田中", "たなか"), ("伊藤", "いとう"),
            ("渡辺", "わたなべ"), ("山本", "やまもと"), ("中村", "なかむら"), ("小林", "こばやし"), ("加藤", "かとう"),
            ("吉田", "よしだ"), ("山田", "やまだ"), ("佐々木", "ささき"), ("山口", "やまぐち"), ("松本", "まつもと"),
            ("井上", "いのうえ"), ("木村", "きむら"), ("林", "はやし"), ("斎藤", "さいとう"), ("清水", "しみず")]
GIVEN = [("一郎", "いちろう"), ("花子", "はなこ"), ("健太", "けんた"), ("陽子", "ようこ"), ("翔", "しょう"),
         ("美咲", "みさき"), ("大輔", "だいすけ"), ("由美", "ゆみ"), ("拓也", "たくや"), ("恵", "めぐみ"),
         ("誠", "まこと"), ("彩", "あや"), ("直樹", "なおき"), ("真理", "まり"), ("浩", "ひろし")]
NAMED = [  # login, name, kana, department, rank, title, role
    ("admin", "管理 太郎", "かんり たろう", "130", "05", "課長補佐", "管理者"),
    ("sato", "佐藤 花子", "さとう はなこ", "110", "07", "主査", "一般"),
    ("suzuki", "鈴木 健太", "すずき けんた", "140", "06", "防災係長", "一般"),
    ("tanaka", "田中 陽子", "たなか ようこ", "310", "06", "予防係長", "一般"),
    ("takahashi", "高橋 誠", "たかはし まこと", "210", "04", "市民課長", "一般"),
]
HISTORY = [
    ("sato", "おはようございます。本日の庁議資料を共有フォルダに置きました。"),
    ("takahashi", "確認しました。10時からの会議で使います。"),
    ("suzuki", "台風接近に伴い、明日8時30分に危機管理課で情報連絡室を設置します。"),
    ("tanaka", "ワクチン接種会場の予約状況：午前は満席、午後は残り12枠です。"),
    ("sato", "議会答弁の調整は今週金曜日までにお願いします。"),
    ("takahashi", "窓口の混雑状況を共有します。番号札は現在45番です。"),
]


def _csv(rows: list[list[str]]) -> bytes:
    # HR systems on LGWAN terminals usually export Shift_JIS from Excel; the demo does the same.
    return "\r\n".join(",".join(r) for r in rows).encode("cp932") + b"\r\n"


def demo_staff_rows(count: int, seed: int = 2026) -> list[list[str]]:
    rng = random.Random(seed)
    rows = [["職員番号", "氏名", "よみがな", "ログインID", "部署コード", "職層コード", "職層", "職層順位", "役職", "権限"]]
    ranks = {code: (name, level) for code, name, level in RANKS}
    for i, (login, name, kana, dept, rank, title, role) in enumerate(NAMED, start=1):
        rows.append([f"D{i:05d}", name, kana, login, dept, rank, ranks[rank][0], str(ranks[rank][1]), title, role])
    sections = [d[0] for d in DEPARTMENTS if d[3] == "課"]
    for i in range(len(NAMED) + 1, count + 1):
        (sur, sur_kana), (giv, giv_kana) = rng.choice(SURNAMES), rng.choice(GIVEN)
        rank = rng.choices(["04", "05", "06", "07", "08"], weights=[1, 2, 4, 6, 10])[0]
        rows.append([f"D{i:05d}", f"{sur} {giv}", f"{sur_kana} {giv_kana}", f"staff{i:03d}", rng.choice(sections),
                     rank, ranks[rank][0], str(ranks[rank][1]), "", "一般"])
    return rows


async def load_demo(k: Kernel, staff_count: int = 200, password: str | None = None) -> dict[str, Any]:
    password = password or DEFAULT_PASSWORD
    system = Actor.system("demo")
    org = await org_store.get_org_by_code(k.db, ORG_CODE)
    created = org is None
    if org is None:
        org_id = await k.org.create_org(system, ORG_CODE, ORG_NAME)
        admin = Actor(None, org_id, "demo", "", "demo", "server_admin")
        dept_rows = [["部署コード", "部署名", "上位部署コード", "種別", "表示順"]]
        dept_rows += [[code, name, parent, kind, str(i)] for i, (code, name, parent, kind) in enumerate(DEPARTMENTS)]
        await k.org.import_departments(admin, org_id, _csv(dept_rows))
        await k.org.import_staff(admin, org_id, _csv(demo_staff_rows(staff_count)))
        digest = await k.auth.passwords.hash(password)   # one hash for all demo accounts keeps loading fast
        async with k.db.transaction("demo_passwords") as conn:
            await conn.execute("UPDATE staff SET password_hash = ?, password_changed_at = ? WHERE org_id = ?",
                               (digest, "2026-04-01T00:00:00.000Z", org_id))
        await _rooms_and_history(k, org_id)
    org = await org_store.get_org_by_code(k.db, ORG_CODE)
    assert org is not None
    return {"organisation": ORG_NAME, "created": created, "password": password,
            "logins": {login: f"{name}（{title}）" for login, name, _, _, _, title, _ in NAMED},
            "note": "admin は初回ログイン時に二要素認証（TOTP）の設定を求められます。"}


async def _actor(k: Kernel, login: str) -> tuple[Actor, org_store.Staff]:
    staff = await org_store.get_staff_by_login(k.db, login)
    assert staff is not None
    affiliation = await org_store.department_path(k.db, staff.department_id)
    return Actor(staff.id, staff.org_id, staff.login, affiliation, "demo", staff.role), staff


async def _rooms_and_history(k: Kernel, org_id: int) -> None:
    people = {login: await _actor(k, login) for login, *_ in NAMED}
    ids = {login: staff.id for login, (_, staff) in people.items()}
    admin_actor = people["admin"][0]
    project = await k.rooms.create_room(people["tanaka"][0], kind="project", name="ワクチン接種調整",
                                        topic="接種会場・予約・医療機関との調整", member_ids=list(ids.values()),
                                        crossing_policy="lgwan_only")
    notice = await k.rooms.create_room(admin_actor, kind="announcement", name="庁内お知らせ",
                                       topic="全庁向けのお知らせ", member_ids=list(ids.values()),
                                       crossing_policy="lgwan_only")
    disaster = await k.rooms.create_room(admin_actor, kind="project", name="災害対策本部連絡",
                                         topic="災害時の情報共有", member_ids=list(ids.values()),
                                         crossing_policy="staff_mobile")
    clinics = await k.rooms.create_room(admin_actor, kind="project", name="医療機関との連絡",
                                        topic="接種会場と医療機関の連絡（ゲスト参加可）", member_ids=[ids["tanaka"]],
                                        crossing_policy="guests")
    await k.messages.post(people["tanaka"][0], people["tanaka"][1], clinics.id,
                          NewMessage(body="来週の接種枠について、各医療機関の状況を教えてください。"))
    for login, text in HISTORY:
        actor, staff = people[login]
        await k.messages.post(actor, staff, project.id, NewMessage(body=text))
    await k.messages.post(admin_actor, people["admin"][1], notice.id,
                          NewMessage(body="【重要】システムメンテナンスのため、土曜日 9:00〜12:00 は利用できません。",
                                     important=True))
    await k.messages.post(people["suzuki"][0], people["suzuki"][1], disaster.id,
                          NewMessage(body=f"@{people['sato'][1].display_name} 避難所開設の連絡体制を確認してください。",
                                     mentions=(ids["sato"],)))
    await k.rooms.open_dm(people["sato"][0], [ids["takahashi"]])
