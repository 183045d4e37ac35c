"""安否確認 on the relay, in-process: who sees what, the one-tap answer, hostile text, and a check started here.

The crossing itself (LGWAN ↔ relay over the real link, outages, restarts) is tests/e2e/test_safety_relay.py.
"""

from __future__ import annotations

import dataclasses

from relay_fixtures import RelayUnderTest, account

from shared import envelope as env

MY_NUMBER = "1234-5678-9018"
STARTED = "2026-04-01T00:00:00.000Z"


def request(check_id: int = 41, members: tuple[str, ...] = ("s:7",), **changes: object) -> env.SafetyRequest:
    base = env.SafetyRequest(check_id=check_id, origin_id=None, title="震度6弱", message="状況を回答してください。",
                             questions=("condition", "attend", "eta", "location", "note"), started_at=STARTED,
                             members=members)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


async def _phone(relay: RelayUnderTest, member: str, login: str, *, affiliation: str = "危機管理課",
                 manager: bool = False):  # type: ignore[no-untyped-def]
    token = f"phone-token-{login}-0123456789abcdef"
    upsert = dataclasses.replace(account(member, kind="staff", status="active", token=token, expires_at=None),
                                 affiliation=affiliation, safety_manager=manager)
    await relay.from_lgwan(upsert)
    phone = relay.browser()
    status, _ = await phone.enrol(login, token=token)
    assert status == 200
    status, _ = await phone.login(login)
    assert status == 200
    return phone


async def test_lgwan_check_reaches_only_its_phone_targets_and_answers_queue_once(relay: RelayUnderTest) -> None:
    asked = await _phone(relay, "s:7", "suzuki")
    other = await _phone(relay, "s:8", "tanaka")
    guest = relay.browser()
    try:
        await relay.from_lgwan(request())
        status, mine = await asked.call("GET", "/api/safety")
        assert status == 200 and [c["id"] for c in mine["checks"]] == [1] and mine["can_start"] is False
        check = mine["checks"][0]
        assert check["asked"] is True and check["answer"] is None and check["title"] == "震度6弱"
        # Not asked: the check does not exist for them; guests never see 安否確認 at all.
        status, theirs = await other.call("GET", "/api/safety")
        assert theirs["checks"] == []
        status, refused = await other.call("POST", "/api/safety/1/answer", {"condition": "safe"})
        assert (status, refused["error"]["code"]) == (404, "not_found")
        await guest.enrol("yamada")
        await relay.from_lgwan(account(status="active", token=None))
        await guest.login("yamada")
        status, body = await guest.call("GET", "/api/safety")
        assert (status, body["error"]["code"]) == (404, "not_found")

        # One tap, then the details; each answer is queued for LGWAN with its own origin id.
        status, first = await asked.call("POST", "/api/safety/1/answer", {"condition": "minor", "client_id": "tap-1"})
        assert status == 200 and first["answer"]["condition"] == "minor"
        status, again = await asked.call("POST", "/api/safety/1/answer", {"condition": "minor", "client_id": "tap-1"})
        assert status == 200                                   # a retried tap is not queued twice
        status, _ = await asked.call("POST", "/api/safety/1/answer", {
            "condition": "minor", "attend": "yes", "eta_minutes": 45, "location": "自宅", "note": "徒歩で向かいます",
            "client_id": "tap-2"})
        answers = [p for k, p in await relay.outbox() if k == "safety.answer"]
        assert [a["origin_id"] for a in answers] == ["s:7:tap-1", "s:7:tap-2"]
        assert answers[-1] == {**answers[-1], "check_id": 41, "check_origin_id": None, "member": "s:7",
                               "attend": "yes", "eta_minutes": 45, "location": "自宅", "note": "徒歩で向かいます"}

        # Hostile text is refused before anything is written; a 個人番号 is audited, never stored.
        for note, code in (("<img src=x onerror=alert(1)>", "markup_not_allowed"),
                           (f"番号 {MY_NUMBER}", "my_number_blocked")):
            status, refused = await asked.call("POST", "/api/safety/1/answer", {"condition": "safe", "note": note})
            assert refused["error"]["code"] == code
        for value in ({"condition": "fine"}, {"condition": "safe", "attend": "maybe"},
                      {"condition": "safe", "eta_minutes": 10_081}, {"condition": "safe", "extra": 1},
                      {"condition": "safe", "client_id": "../x"}):
            status, refused = await asked.call("POST", "/api/safety/1/answer", value)
            assert status == 400, value
        assert len([k for k, _ in await relay.outbox() if k == "safety.answer"]) == 2
        assert (await relay.audit("safety.my_number_blocked"))[0]["outcome"] == "denied"

        # A reminder reaches only those who have not answered here; closing stops the answers.
        await relay.from_lgwan(env.SafetyRemind(check_id=41, origin_id=None, members=("s:7",)))
        await relay.from_lgwan(env.SafetyClose(check_id=41, origin_id=None, closed_at=STARTED))
        status, closed = await asked.call("POST", "/api/safety/1/answer", {"condition": "safe"})
        assert (status, closed["error"]["detail"]["reason"]) == (400, "closed")
    finally:
        for client in (asked, other, guest):
            await client.close()


async def test_a_check_started_on_the_relay_and_its_roll_up(relay: RelayUnderTest) -> None:
    chief = await _phone(relay, "s:3", "chief", affiliation="危機管理課", manager=True)
    staff = [await _phone(relay, f"s:{10 + i}", f"staff{i}", affiliation=("総務課", "土木課")[i % 2]) for i in range(4)]
    plain = staff[0]
    try:
        status, refused = await plain.call("POST", "/api/safety", {"template": "simple"})
        assert (status, refused["error"]["code"]) == (404, "not_found")     # not a safety manager
        status, check = await chief.call("POST", "/api/safety", {"template": "disaster", "title": "地震（LGWAN停止中）"})
        assert status == 201 and check["origin"] == "relay" and check["mine"] is True
        start = [p for k, p in await relay.outbox() if k == "safety.start"]
        assert len(start) == 1 and start[0]["started_by"] == "s:3"
        assert sorted(start[0]["members"]) == ["s:10", "s:11", "s:12", "s:13", "s:3"]
        for phone, condition in zip(staff, ("safe", "need_help", "safe", "serious"), strict=True):
            status, _ = await phone.call("POST", f"/api/safety/{check['id']}/answer",
                                         {"condition": condition, "location": "避難所"})
            assert status == 200
        answers = [p for k, p in await relay.outbox() if k == "safety.answer"]
        assert {a["check_origin_id"] for a in answers} == {start[0]["origin_id"]}
        assert {a["check_id"] for a in answers} == {None}
        # Only the starter sees the roll-up (by 所属, from what the relay holds).
        status, denied = await plain.call("GET", f"/api/safety/{check['id']}/rollup")
        assert status == 404
        status, rollup = await chief.call("GET", f"/api/safety/{check['id']}/rollup")
        assert rollup["totals"]["targets"] == 5 and rollup["totals"]["answered"] == 4
        by = {r["affiliation"]: r for r in rollup["affiliations"]}
        assert (by["総務課"]["safe"], by["総務課"]["needs_attention"]) == (2, 0)
        assert (by["土木課"]["need_help"], by["土木課"]["serious"], by["危機管理課"]["unanswered"]) == (1, 1, 1)
        assert {a["condition"] for a in rollup["attention"]} == {"serious", "need_help"}
        status, reminded = await chief.call("POST", f"/api/safety/{check['id']}/remind", {})
        assert reminded == {"reminded": 1}
        # LGWAN names the check it created from ours (a resync): the relay links it, no second check.
        await relay.from_lgwan(request(check_id=77, origin_id=start[0]["origin_id"], members=("s:10",)))
        status, listed = await chief.call("GET", "/api/safety")
        assert [c["id"] for c in listed["checks"]] == [check["id"]] and listed["can_start"] is True
    finally:
        for client in (chief, *staff):
            await client.close()
