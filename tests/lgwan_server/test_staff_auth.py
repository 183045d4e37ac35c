"""Login, lockout, TOTP for admins, cookies and security headers."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import pyotp
from lgwan_harness import ClientFactory, Roster, ServerProcess, totp_step


async def test_lockout_after_five_failures(demo_server: ServerProcess, people: Roster, clients: ClientFactory) -> None:
    person = people.one()
    c = clients.new(demo_server, person)
    for _ in range(5):
        await c.login(password="wrong-password-123", expect=401)
    assert demo_server.scalar("SELECT failed_logins FROM staff WHERE id = ?", (person.id,)) == 5
    assert demo_server.scalar("SELECT locked_until FROM staff WHERE id = ?", (person.id,)) is not None
    # Locked: even the right password is refused, with 423 and the stable code.
    reply = await c.login(expect=423)
    assert reply.code == "account_locked"
    assert c.token is None
    failures = demo_server.query("SELECT outcome, detail FROM audit_log WHERE action = 'auth.login' AND actor_id = ?"
                                 " ORDER BY id", (person.id,))
    assert [o for o, _ in failures] == ["failed"] * 5 + ["denied"]
    assert '"locked":true' in failures[4][1]
    # Other people are not affected.
    await clients.staff(demo_server, people.one())


async def test_unknown_login_and_wrong_password_look_the_same(demo_server: ServerProcess, people: Roster,
                                                             clients: ClientFactory) -> None:
    person = people.one()
    c = clients.new(demo_server)
    unknown = await c.login("no-such-person", expect=401)
    wrong = await c.login(person.login, password="not-the-password", expect=401)
    assert unknown.code == wrong.code == "invalid_credentials"
    assert unknown.data["error"]["message"] == wrong.data["error"]["message"]
    # A success resets the failure counter.
    await c.login(person.login, expect=200)
    assert demo_server.scalar("SELECT failed_logins FROM staff WHERE id = ?", (person.id,)) == 0


async def test_cookie_flags_and_security_headers(demo_server: ServerProcess, people: Roster,
                                                 clients: ClientFactory) -> None:
    c = clients.new(demo_server, people.one())
    reply = await c.login()
    cookie = reply.headers.getall("Set-Cookie")
    assert len(cookie) == 1 and cookie[0].startswith("kk_session=")
    attrs = [a.strip().lower() for a in cookie[0].split(";")]
    assert "httponly" in attrs and "samesite=strict" in attrs and "path=/" in attrs
    assert "secure" not in attrs            # plain HTTP on 127.0.0.1, not behind a TLS proxy
    assert "kk_session" not in reply.raw.decode()   # the token never appears in a body
    for path in ("/api/auth/me", "/api/rooms", "/healthz", "/api/openapi.yaml", "/api/no/such"):
        got = await c.get(path)
        csp = got.headers.get("Content-Security-Policy", "")
        directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
        assert directives.get("script-src") == ["'self'"], (path, csp)
        assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
        assert directives.get("object-src") == ["'none'"] and directives.get("frame-ancestors") == ["'none'"]
        assert got.headers.get("X-Content-Type-Options") == "nosniff"
        assert got.headers.get("X-Frame-Options") == "DENY"
    me = await c.get("/api/auth/me", expect=200)
    assert me.headers.get("Cache-Control") == "no-store"
    # Logging out clears the cookie and the session.
    await c.post("/api/auth/logout", expect=200)
    await c.get("/api/auth/me", expect=401, code="not_authenticated")


async def test_secure_cookie_behind_tls_proxy(make_server: Callable[..., ServerProcess], roster: Roster,
                                              clients: ClientFactory) -> None:
    server = make_server({"server": {"behind_tls_proxy": True}})
    c = clients.new(server, roster.one())
    reply = await c.login()
    attrs = [a.strip().lower() for a in reply.headers["Set-Cookie"].split(";")]
    assert "secure" in attrs and "httponly" in attrs and "samesite=strict" in attrs


async def test_admin_totp_enrolment_required_then_enforced(make_server: Callable[..., ServerProcess],
                                                           clients: ClientFactory) -> None:
    server = make_server()
    c = clients.new(server, "admin")
    first = await c.login(expect=200)
    assert first.data["status"] == "totp_enrolment_required"
    # Until enrolment, the session may only enrol (or log out).
    for method, path in (("GET", "/api/rooms"), ("GET", "/api/admin/org"), ("POST", "/api/admin/audit/verify")):
        await c.request(method, path, expect=403, code="totp_enrolment_required")
    me = await c.get("/api/auth/me", expect=200)
    assert me.data["mfa_pending"] is True
    await c.post("/api/auth/totp/confirm", json={"code": "123456"}, expect=409, code="totp_not_pending")
    begun = (await c.post("/api/auth/totp/begin", expect=200)).data
    secret = begun["secret"]
    assert begun["otpauth_uri"].startswith("otpauth://totp/") and begun["qr_svg"].lstrip().startswith("<svg")
    totp = pyotp.TOTP(secret)
    step = totp_step()
    wrong = f"{(int(totp.generate_otp(step)) + 1) % 1_000_000:06d}"
    await c.post("/api/auth/totp/confirm", json={"code": wrong}, expect=401, code="totp_invalid")
    await c.post("/api/auth/totp/confirm", json={"code": totp.generate_otp(step)}, expect=200)
    await c.get("/api/admin/org", expect=200)
    assert server.scalar("SELECT totp_secret FROM staff WHERE login = 'admin'") == secret

    # From now on a password alone is not enough.
    fresh = clients.new(server, "admin")
    await fresh.login(expect=401, code="totp_required")
    assert fresh.token is None
    # The code used to confirm enrolment cannot be used again, nor can any earlier one.
    await fresh.login(totp=totp.generate_otp(step), expect=401, code="totp_invalid")
    await fresh.login(totp=totp.generate_otp(step - 1), expect=401, code="totp_invalid")
    good = totp.generate_otp(step + 1)
    assert (await fresh.login(totp=good, expect=200)).data["status"] == "ok"
    await fresh.get("/api/admin/org", expect=200)
    # Replaying the code that just worked is refused.
    replay = clients.new(server, "admin")
    await replay.login(totp=good, expect=401, code="totp_invalid")
    assert server.scalar("SELECT totp_last_step FROM staff WHERE login = 'admin'") == step + 1


async def test_ordinary_staff_need_no_totp_unless_policy_says_all(make_server: Callable[..., ServerProcess],
                                                                  roster: Roster, clients: ClientFactory) -> None:
    from lgwan_harness import enrol_totp

    server = make_server()
    person = roster.one()
    assert (await clients.new(server, person).login(expect=200)).data["status"] == "ok"
    admin = await clients.admin(server)
    await admin.patch("/api/admin/org", json={"mfa_policy": "all"}, expect=200)
    c = clients.new(server, person)
    assert (await c.login(expect=200)).data["status"] == "totp_enrolment_required"
    await c.get("/api/rooms", expect=403, code="totp_enrolment_required")
    await enrol_totp(c)
    await c.get("/api/rooms", expect=200)


async def test_password_change_policy(demo_server: ServerProcess, people: Roster, clients: ClientFactory) -> None:
    person = people.one()
    c = await clients.staff(demo_server, person)
    await c.post("/api/auth/password", json={"current": "wrong-one-123", "new": "長くて十分なパスワード2026"},
                 expect=400, code="wrong_current_password")
    await c.get("/api/rooms", expect=200)                      # still signed in
    short = await c.post("/api/auth/password", json={"current": "kakehashi-demo-2026", "new": "short"}, expect=400)
    assert short.code == "password_policy" and "min_length:12" in short.detail["reasons"]
    await c.post("/api/auth/password", json={"current": "kakehashi-demo-2026", "new": f"{person.login}-and-more"},
                 expect=400, code="password_policy")
    await c.post("/api/auth/password", json={"current": "kakehashi-demo-2026", "new": "長くて十分なパスワード2026"},
                 expect=200)
    await clients.new(demo_server, person).login(expect=401)
    await clients.new(demo_server, person).login(password="長くて十分なパスワード2026", expect=200)


async def test_login_rate_limit_per_address(make_server: Callable[..., ServerProcess], clients: ClientFactory) -> None:
    server = make_server({"auth": {"login_attempts_per_minute_per_ip": 3}})
    c = clients.new(server)
    codes = [(await c.login("nobody", password="x", expect=None)).code for _ in range(4)]
    assert codes == ["invalid_credentials"] * 3 + ["rate_limited"]
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.base_url}/api/auth/login", json={"login": "admin", "password": "x"}) as resp:
            assert resp.status == 429
