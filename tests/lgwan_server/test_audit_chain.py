"""The 操作ログ hash chain verifies, and tampering with one stored row is found and named."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from lgwan_harness import ClientFactory, Roster, ServerProcess


async def _activity(server: ServerProcess, roster: Roster, clients: ClientFactory) -> None:
    """Some audited work: logins, a failed login, a room, a search, a download refusal."""
    alice, bob = roster.take(2)
    a = await clients.staff(server, alice)
    await clients.new(server, bob).login(password="wrong-password-1", expect=401)
    await clients.staff(server, bob)
    room = (await a.create_room("監査テスト", [bob]))["id"]
    await a.say(room, "記録に残る発言")
    await a.get("/api/search", params={"q": "記録"}, expect=200)


@pytest.mark.parametrize("tamper", ["edit_detail", "edit_actor", "delete_row"])
async def test_tampering_is_detected_and_named(make_server: Callable[..., ServerProcess], roster: Roster,
                                               clients: ClientFactory, tamper: str) -> None:
    server = make_server()
    await _activity(server, roster, clients)
    admin = await clients.admin(server)

    verified = (await admin.post("/api/admin/audit/verify", expect=200)).data
    assert verified["ok"] is True and verified["first_bad_id"] is None
    # Every entry was checked; the verification then recorded itself as one more.
    assert verified["checked"] == server.scalar("SELECT max(id) FROM audit_log") - 1 > 10
    use_cli = tamper == "edit_detail"        # the CLI is slow to start; once is enough to prove it
    if use_cli:
        cli = server.cli("verify-audit")
        assert cli.returncode == 0, cli.stdout + cli.stderr
        assert json.loads(cli.stdout)["ok"] is True

    # The table refuses changes…
    victim = server.scalar("SELECT id FROM audit_log WHERE action = 'auth.login' AND outcome = 'failed'"
                           " ORDER BY id DESC LIMIT 1")
    with server.db_rw() as conn:
        with pytest.raises(Exception, match="append-only"):
            conn.execute("UPDATE audit_log SET outcome = 'ok' WHERE id = ?", (victim,))
        with pytest.raises(Exception, match="append-only"):
            conn.execute("DELETE FROM audit_log WHERE id = ?", (victim,))
        # …so an attacker with the file drops the triggers first.
        conn.execute("DROP TRIGGER audit_log_no_update")
        conn.execute("DROP TRIGGER audit_log_no_delete")
        if tamper == "edit_detail":
            conn.execute("UPDATE audit_log SET outcome = 'ok', detail = '{}' WHERE id = ?", (victim,))
        elif tamper == "edit_actor":
            conn.execute("UPDATE audit_log SET actor_login = 'someone-else' WHERE id = ?", (victim,))
        else:
            conn.execute("DELETE FROM audit_log WHERE id = ?", (victim,))

    result = (await admin.post("/api/admin/audit/verify", expect=200)).data
    assert result["ok"] is False
    assert result["first_bad_id"] == victim
    assert result["checked"] == victim - 1
    if use_cli:
        cli = server.cli("verify-audit")
        assert cli.returncode == 1, cli.stdout + cli.stderr
        assert json.loads(cli.stdout)["first_bad_id"] == victim
    # The failed verification is itself recorded.
    last = server.query("SELECT action, outcome, detail FROM audit_log ORDER BY id DESC LIMIT 1")[0]
    assert last[:2] == ("audit.verify", "failed") and f'"first_bad_id":{victim}' in last[2]


async def test_rehashed_edit_breaks_the_next_link(make_server: Callable[..., ServerProcess], roster: Roster,
                                                  clients: ClientFactory) -> None:
    """Recomputing the edited row's own hash does not help: the next entry's prev_hash no longer matches."""
    from lgwan_server.services.audit import entry_hash

    server = make_server()
    await _activity(server, roster, clients)
    victim = server.scalar("SELECT id FROM audit_log WHERE action = 'room.create' ORDER BY id DESC LIMIT 1")
    with server.db_rw() as conn:
        conn.execute("DROP TRIGGER audit_log_no_update")
        row = conn.execute("SELECT id, at, org_id, actor_id, actor_login, actor_affiliation, source_ip, action,"
                           " target_type, target_id, outcome, detail, prev_hash FROM audit_log WHERE id = ?",
                           (victim,)).fetchone()
        fields = list(row[:12])
        fields[11] = '{"forged":true}'
        conn.execute("UPDATE audit_log SET detail = ?, hash = ? WHERE id = ?",
                     (fields[11], entry_hash(row[12], fields), victim))
    admin = await clients.admin(server)
    result = (await admin.post("/api/admin/audit/verify", expect=200)).data
    assert result["ok"] is False
    assert result["first_bad_id"] == victim + 1 and "prev_hash" in result["reason"]


async def test_audit_log_is_visible_to_admins_only(make_server: Callable[..., ServerProcess], roster: Roster,
                                                   clients: ClientFactory) -> None:
    server = make_server()
    person = roster.one()
    staff = await clients.staff(server, person)
    await staff.get("/api/admin/audit", expect=403, code="forbidden")
    await staff.post("/api/admin/audit/verify", expect=403, code="forbidden")
    admin = await clients.admin(server)
    entries = (await admin.get("/api/admin/audit", params={"actor_id": str(person.id)}, expect=200)).data["entries"]
    assert entries and all(e["actor_id"] == person.id for e in entries)
    assert entries[0]["action"] == "auth.login" and entries[0]["source_ip"] == "127.0.0.1"
    assert entries[0]["actor_affiliation"] == person.affiliation
