"""The IP allowlist is per organisation and applies to logins and to live sessions."""

from __future__ import annotations

import json
from collections.abc import Callable

from lgwan_harness import ClientFactory, Roster, ServerProcess


async def test_allowlist_per_organisation(make_server: Callable[..., ServerProcess], roster: Roster,
                                          clients: ClientFactory) -> None:
    # 127.0.0.1 is a trusted proxy here, so X-Forwarded-For can stand in for terminals on other networks.
    server = make_server({"server": {"trusted_proxies": ["127.0.0.1"]}}, start=False)
    made = server.cli("create-org", "--code", "999992", "--name", "隣町")
    assert made.returncode == 0, made.stderr
    other_org = json.loads(made.stdout)["org_id"]
    made = server.cli("create-admin", "--org", "999992", "--login", "rinka-admin", "--name", "隣町 管理者",
                      env={"KAKEHASHI_PASSWORD": "隣町の管理者パスワード2026"})
    assert made.returncode == 0, made.stderr
    server.start()

    lan = {"X-Forwarded-For": "10.20.30.40"}       # a terminal on the city's LGWAN segment
    person = roster.one()
    admin = await clients.admin(server)
    staff = await clients.staff(server, person)
    neighbour = clients.new(server, "rinka-admin")
    assert (await neighbour.login(password="隣町の管理者パスワード2026")).data["status"] == "totp_enrolment_required"

    await admin.patch("/api/admin/org", json={"ip_allowlist": ["10.0.0.0/8", "not-a-cidr"]}, expect=400,
                      code="invalid_cidr")
    assert server.scalar("SELECT ip_allowlist FROM organisations WHERE code = '999991'") == "[]"
    reply = await admin.patch("/api/admin/org", json={"ip_allowlist": ["10.0.0.0/8"]}, headers=lan, expect=200)
    assert reply.data["ip_allowlist"] == ["10.0.0.0/8"]

    # The city's live sessions from 127.0.0.1 stop working at once; from 10.x they go on.
    await staff.get("/api/rooms", expect=403, code="ip_not_allowed")
    await staff.get("/api/rooms", headers=lan, expect=200)
    await admin.get("/api/admin/org", expect=403, code="ip_not_allowed")
    # New logins likewise, and the refusal is audited with the address.
    fresh = clients.new(server, roster.one())
    await fresh.login(expect=403, code="ip_not_allowed")
    assert fresh.token is None
    denied = server.query("SELECT source_ip, outcome FROM audit_log WHERE action = 'auth.login' AND detail LIKE ?"
                          " ORDER BY id DESC LIMIT 1", ('%ip_not_allowed%',))
    assert denied == [("127.0.0.1", "denied")]
    ok = clients.new(server, fresh.login_name)
    await ok.request("POST", "/api/auth/login", json={"login": fresh.login_name, "password": "kakehashi-demo-2026"},
                     headers=lan, csrf=False, expect=200)
    # An untrusted hop cannot forge its way in: the last X-Forwarded-For entry is the one believed.
    await staff.get("/api/rooms", headers={"X-Forwarded-For": "10.1.1.1, 192.0.2.1"}, expect=403)

    # The neighbouring organisation has no allowlist: its admin still works from 127.0.0.1.
    await neighbour.post("/api/auth/totp/begin", expect=200)
    assert server.scalar("SELECT ip_allowlist FROM organisations WHERE id = ?", (other_org,)) == "[]"

    # Back to open: the old session works again without logging in.
    await admin.patch("/api/admin/org", json={"ip_allowlist": []}, headers=lan, expect=200)
    await staff.get("/api/rooms", expect=200)


async def test_forwarded_for_ignored_from_untrusted_peer(make_server: Callable[..., ServerProcess], roster: Roster,
                                                         clients: ClientFactory) -> None:
    server = make_server()             # no trusted proxies
    admin = await clients.admin(server)
    await admin.patch("/api/admin/org", json={"ip_allowlist": ["10.0.0.0/8"]}, headers={"X-Forwarded-For": "10.0.0.1"},
                      expect=200)
    # The header did not help: the change locked out the admin's own 127.0.0.1 session.
    await admin.get("/api/admin/org", headers={"X-Forwarded-For": "10.0.0.1"}, expect=403, code="ip_not_allowed")
    await clients.new(server, roster.one()).login(expect=403, code="ip_not_allowed")
