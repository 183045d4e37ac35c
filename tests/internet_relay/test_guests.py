"""Guests on the relay: enrolment, login, 届け出制 approval, the room chokepoint, posts and refusals."""

from __future__ import annotations

from relay_fixtures import ROOM, STAFF_ROOM, TOKEN, RelayUnderTest, account, message

from shared import envelope as env

MY_NUMBER = "1234-5678-9018"


async def test_enrolment_needs_the_link_the_privacy_notice_and_a_totp_code(relay: RelayUnderTest) -> None:
    guest = relay.browser()
    try:
        status, body = await guest.call("POST", "/api/enrol/info", {"token": "wrong-token-0123456789abcdef"})
        assert (status, body["error"]["code"]) == (404, "invite_invalid")
        assert (await relay.audit("account.enrol"))[-1]["reason"] == "invalid_link"
        status, info = await guest.call("POST", "/api/enrol/info", {"token": TOKEN})
        assert status == 200 and info["display_name"] == "山田 太郎" and "利用目的" in info["privacy_notice"]
        status, refused = await guest.enrol("yamada", privacy_ack=False)
        assert (status, refused["error"]["code"]) == (400, "privacy_required")
        status, done = await guest.enrol("yamada")
        assert status == 200 and done == {"status": "invited", "login": "yamada"}
        # The link is used up; LGWAN hears of the enrolment and of the acknowledged notice.
        status, again = await guest.call("POST", "/api/enrol/info", {"token": TOKEN})
        assert again["error"]["code"] == "invite_invalid"
        kind, enrolled = (await relay.outbox())[-1]
        assert kind == "account.enrolled" and enrolled["account"] == "g:5"
        assert enrolled["privacy_notice_sha256"] == relay.relay.accounts.notice_sha256
    finally:
        await guest.close()


async def test_login_totp_replay_lockout_and_approval(relay: RelayUnderTest) -> None:
    guest = relay.browser()
    try:
        await guest.enrol("yamada")
        enrol_step = guest.last_step
        status, body = await guest.call("POST", "/api/login", {"login": "yamada", "password": "wrong-password!!",
                                                               "totp": "000000"})
        assert (status, body["error"]["code"]) == (401, "invalid_credentials")
        # A code that was already used (here: at enrolment) is refused, without saying which factor failed.
        import pyotp
        status, body = await guest.call("POST", "/api/login", {"login": "yamada", "password": "guest-pass-2026!",
                                                               "totp": pyotp.TOTP(guest.secret).at(enrol_step * 30)})
        assert (status, body["error"]["code"]) == (401, "invalid_credentials")
        # Three failures lock the account (lockout_threshold = 3 in the test config).
        status, body = await guest.call("POST", "/api/login", {"login": "yamada", "password": "wrong-again!!!",
                                                               "totp": "000000"})
        assert body["error"]["code"] == "account_locked" or status == 401
        status, body = await guest.call("POST", "/api/login", {"login": "yamada", "password": "guest-pass-2026!",
                                                               "totp": "123456"})
        assert (status, body["error"]["code"]) == (423, "account_locked")
        failures = [a["reason"] for a in await relay.audit("auth.login") if a["outcome"] == "failed"]
        assert failures[:2] == ["bad_password", "bad_totp"]
    finally:
        await guest.close()


async def test_rooms_only_after_approval_and_only_guest_rooms(relay: RelayUnderTest) -> None:
    guest = relay.browser()
    try:
        await guest.enrol("yamada")
        status, _ = await guest.login("yamada")
        assert status == 200
        status, body = await guest.call("GET", "/api/rooms")
        assert (status, body["error"]["code"]) == (403, "not_approved")
        await relay.from_lgwan(account(status="active", token=None))
        status, body = await guest.call("GET", "/api/rooms")
        assert [r["id"] for r in body["rooms"]] == [ROOM]      # not the staff_mobile room, though a member there
        for room in (STAFF_ROOM, 999):
            status, body = await guest.call("GET", f"/api/rooms/{room}/messages")
            assert (status, body["error"]["code"]) == (404, "room_not_found")
        status, body = await guest.call("GET", f"/api/rooms/{ROOM}/members")
        assert body["members"] == [{"display_name": "佐藤 花子", "affiliation": "総務課", "me": False},
                                   {"display_name": "山田 太郎", "affiliation": "架橋病院", "me": True}]
        # Suspension on LGWAN ends the session here.
        await relay.from_lgwan(account(status="suspended", token=None))
        status, _ = await guest.call("GET", "/api/rooms")
        assert status == 401
    finally:
        await guest.close()


async def test_posts_queue_for_lgwan_and_are_confirmed_or_refused(relay: RelayUnderTest) -> None:
    guest = relay.browser()
    try:
        await guest.enrol("yamada")
        await guest.login("yamada")
        await relay.from_lgwan(account(status="active", token=None), message(1, 1, "ようこそ"))
        status, pending = await guest.call("POST", f"/api/rooms/{ROOM}/messages", {"body": "了解です", "client_msg_id": "c1"})
        assert status == 202 and pending["status"] == "queued"
        status, again = await guest.call("POST", f"/api/rooms/{ROOM}/messages", {"body": "了解です", "client_msg_id": "c1"})
        assert again == pending                                  # idempotent on the client id
        posts = [p for k, p in await relay.outbox() if k == "relay.post"]
        assert len(posts) == 1 and posts[0]["origin_id"] == "g:5:c1" and posts[0]["author"] == "g:5"
        # LGWAN confirms (message.new with the origin id): the pending copy goes.
        await relay.from_lgwan(message(2, 2, "了解です", sender="g:5", origin="g:5:c1"))
        status, page = await guest.call("GET", f"/api/rooms/{ROOM}/messages")
        assert page["pending"] == [] and page["messages"][-1]["client_msg_id"] == "c1" and page["messages"][-1]["mine"]
        # LGWAN refuses another one: the author is told why.
        await guest.call("POST", f"/api/rooms/{ROOM}/messages", {"body": "もう一件", "client_msg_id": "c2"})
        await relay.from_lgwan(env.PostRefused(origin_id="g:5:c2", room_id=ROOM, code="not_member"))
        status, page = await guest.call("GET", f"/api/rooms/{ROOM}/messages")
        assert page["pending"][0]["status"] == "refused" and "メンバー" in page["pending"][0]["refused_message"]
        # 既読 goes to LGWAN (posting already counted as reading up to one's own message).
        await relay.from_lgwan(message(3, 3, "承知しました"))
        await guest.call("POST", f"/api/rooms/{ROOM}/read", {"seq": 3})
        assert (await relay.outbox())[-1] == ("receipt.relay", {"room_id": ROOM, "member": "g:5", "seq": 3})
    finally:
        await guest.close()


async def test_my_number_markup_and_hostile_text_are_refused_here(relay: RelayUnderTest) -> None:
    guest = relay.browser()
    try:
        await guest.enrol("yamada")
        await guest.login("yamada")
        await relay.from_lgwan(account(status="active", token=None))
        before = len(await relay.outbox())
        for text, code in ((f"マイナンバーは {MY_NUMBER} です", "my_number_blocked"),
                           ("<script>alert(1)</script>", "markup_not_allowed"), ("   ", "empty_message")):
            status, body = await guest.call("POST", f"/api/rooms/{ROOM}/messages", {"body": text, "client_msg_id": "x"})
            assert body["error"]["code"] == code, text
        assert len(await relay.outbox()) == before
        blocked = await relay.audit("post.my_number_blocked")
        assert len(blocked) == 1 and "9018" not in str(blocked)
        # Bidi overrides and controls are stripped, never passed on.
        await guest.call("POST", f"/api/rooms/{ROOM}/messages", {"body": "請求書\u202eexe.txt\x1b[31m", "client_msg_id": "y"})
        assert (await relay.outbox())[-1][1]["body"] == "請求書exe.txt[31m"
    finally:
        await guest.close()


async def test_csrf_origin_and_headers(relay: RelayUnderTest) -> None:
    guest = relay.browser()
    try:
        await guest.enrol("yamada")
        await guest.login("yamada")
        await relay.from_lgwan(account(status="active", token=None))
        status, body = await guest.call("POST", f"/api/rooms/{ROOM}/read", {"seq": 0}, csrf=False)
        assert (status, body["error"]["code"]) == (403, "csrf_failed")
        status, body = await guest.call("POST", f"/api/rooms/{ROOM}/read", {"seq": 0}, origin="https://evil.example")
        assert (status, body["error"]["code"]) == (403, "origin_mismatch")
        status, body = await guest.call("POST", f"/api/rooms/{ROOM}/messages",
                                        {"body": "x", "client_msg_id": "z", "html": "<b>"})
        assert (status, body["error"]["detail"]["reason"]) == (400, "unknown_field")
        async with guest.http.get(guest.base + "/") as resp:
            csp = resp.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        async with guest.http.get(guest.base + "/static/../config.py") as resp:
            assert resp.status == 404
    finally:
        await guest.close()


async def test_device_approval_for_phones(relay: RelayUnderTest) -> None:
    phone = relay.browser()
    try:
        await relay.from_lgwan(account("s:7", kind="staff", status="active", token="phone-token-0123456789abcdef",
                                       device_approval=True, expires_at=None),
                               env.MemberUpsert(room_id=STAFF_ROOM, member="s:7", display_name="鈴木 健太",
                                                affiliation="危機管理課"))
        status, _ = await phone.enrol("suzuki", token="phone-token-0123456789abcdef")
        assert status == 200
        status, first = await phone.login("suzuki")
        assert status == 200 and first["status"] == "device_pending" and first["csrf_token"] is None
        kind, request = (await relay.outbox())[-1]
        assert kind == "device.request" and request["account"] == "s:7"
        await relay.from_lgwan(env.DeviceDecision(account="s:7", device_id=request["device_id"], decision="approved"))
        status, ok = await phone.login("suzuki")
        assert ok["status"] == "ok"
        status, rooms = await phone.call("GET", "/api/rooms")
        assert {r["id"] for r in rooms["rooms"]} == {STAFF_ROOM}
        await relay.from_lgwan(env.DeviceDecision(account="s:7", device_id=request["device_id"], decision="revoked"))
        status, _ = await phone.call("GET", "/api/rooms")
        assert status == 401
    finally:
        await phone.close()


async def test_device_restriction_can_be_switched_on_for_guests(relay: RelayUnderTest) -> None:
    """[bridge] guest_device_approval on LGWAN sends device_approval=true with the guest's account."""
    guest = relay.browser()
    try:
        await relay.from_lgwan(account(status="active", device_approval=True))
        await guest.enrol("yamada")
        status, first = await guest.login("yamada")
        assert first["status"] == "device_pending"
        kind, request = (await relay.outbox())[-1]
        assert kind == "device.request" and request["account"] == "g:5"
    finally:
        await guest.close()
