"""Both tiers as real processes on 127.0.0.1: guest ↔ staff and staff phone ↔ staff text round trips.

Also: guests see names and 所属 only, 既読 works both ways, lgwan_only rooms never cross (not even
their names), the My Number guard blocks on both sides and audits without the number, the relay
never holds a socket to the LGWAN server, owners remove guests, and a wiped relay is rebuilt
from LGWAN.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from .harness import ApiError, Guest, Staff, TwoTiers, query, start_two_tiers, wait_for, ws_collect
from .sockets import check_relay_sockets

MY_NUMBER = "1234 5678 9018"        # a valid check digit (a well-known test value, not a real person's)


@pytest.fixture
async def tiers(tmp_path: Path):  # type: ignore[no-untyped-def]
    t = await start_two_tiers(tmp_path)
    yield t
    t.stop()


async def invite_and_approve(tiers: TwoTiers, owner: Staff, room_id: int, name: str, login: str,
                             affiliation: str = "架橋病院") -> tuple[Guest, int]:
    invite = await owner.call("POST", f"/api/rooms/{room_id}/guests", {"display_name": name,
                                                                       "affiliation": affiliation})
    assert invite["invite_url"] == f"{tiers.relay_url}/enrol#{invite['invite_token']}"
    guest_id = invite["guest"]["id"]
    guest = Guest(tiers.relay_url)

    async def crossed() -> bool:
        try:
            await guest.call("POST", "/api/enrol/info", {"token": invite["invite_token"]})
            return True
        except ApiError:
            return False

    await wait_for(crossed, what="the invitation on the relay")
    info = await guest.enrol(invite["invite_token"], login)
    assert info["display_name"] == name and info["privacy_notice"]

    async def status() -> str:
        return str((await owner.call("GET", f"/api/guests/{guest_id}"))["status"])

    await wait_for(lambda: _eq(status(), "enrolled"), what="enrolled on LGWAN")
    await guest.login()
    with pytest.raises(ApiError) as waiting:        # 届け出制: nothing before the owner approves
        await guest.call("GET", "/api/rooms")
    assert waiting.value.code == "not_approved"
    await owner.call("POST", f"/api/guests/{guest_id}/approve")
    await wait_for(lambda: _rooms(guest), what="the approved guest's rooms")
    return guest, guest_id


async def _eq(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def _rooms(client: Guest) -> list[dict[str, Any]]:
    try:
        return list((await client.call("GET", "/api/rooms"))["rooms"])
    except ApiError:
        return []


def _events(frames: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [f for f in frames if f.get("type") == type_]


async def test_guest_and_staff_round_trip(tiers: TwoTiers) -> None:
    room = tiers.seed.rooms["guests-room"]
    owner, colleague = Staff(tiers.lgwan_url), Staff(tiers.lgwan_url)
    await owner.login("sato")
    await colleague.login("suzuki")
    guest, guest_id = await invite_and_approve(tiers, owner, room, "山田 太郎", "yamada-hosp")
    staff_frames: list[dict[str, Any]] = []
    guest_frames: list[dict[str, Any]] = []
    staff_ws, guest_ws = await colleague.ws("/api/ws"), await guest.ws("/api/ws")
    readers = [asyncio.create_task(ws_collect(staff_ws, staff_frames)),
               asyncio.create_task(ws_collect(guest_ws, guest_frames))]
    try:
        # Guests see rooms they are in, nothing else; people by display name and 所属 only.
        assert [r["id"] for r in await _rooms(guest)] == [room]
        members = (await guest.call("GET", f"/api/rooms/{room}/members"))["members"]
        assert all(set(m) == {"display_name", "affiliation", "me"} for m in members)
        assert {m["display_name"] for m in members} >= {"佐藤 花子", "鈴木 健太", "山田 太郎"}
        for other in (tiers.seed.rooms["mobile-room"], tiers.seed.rooms["secret-room"], 999):
            with pytest.raises(ApiError) as denied:
                await guest.call("GET", f"/api/rooms/{other}/messages")
            assert denied.value.code == "room_not_found"

        # guest → staff (the colleague's WebSocket gets it, with the guest's name and organisation)
        await guest.post(room, "了解しました。午後に伺います。", "g-1")
        new = await wait_for(lambda: [e for e in _events(staff_frames, "message.new")
                                      if e["data"]["body"] == "了解しました。午後に伺います。"], what="staff WebSocket")
        sender = new[0]["data"]["sender"]
        assert sender["display_name"] == "山田 太郎" and sender["affiliation"] == "架橋病院"
        # The guest's own page replaces its pending copy with the confirmed message.
        mine = await wait_for(lambda: [e for e in _events(guest_frames, "message.new")
                                       if e["message"]["client_msg_id"] == "g-1"], what="confirmation")
        assert mine[0]["message"]["mine"] is True

        # staff → guest
        posted = await colleague.post(room, "お待ちしています。受付でお名前をどうぞ。")
        got = await wait_for(lambda: [e for e in _events(guest_frames, "message.new")
                                      if e["message"]["body"] == "お待ちしています。受付でお名前をどうぞ。"],
                             what="guest WebSocket")
        assert got[0]["message"]["sender"] == {"display_name": "鈴木 健太", "affiliation": ""}
        assert "id" not in got[0]["message"]["sender"]         # no staff ids, no directory

        # 既読 both ways: the guest reads → LGWAN counts the guest; staff read → the guest sees the count.
        await guest.call("POST", f"/api/rooms/{room}/read", {"seq": posted["seq"]})
        await wait_for(lambda: _read_by(colleague, posted["id"], "山田 太郎"), what="guest's 既読 on LGWAN")
        guest_msg_id = new[0]["data"]["id"]
        await owner.call("POST", f"/api/rooms/{room}/read", {"seq": posted["seq"]})

        async def guest_sees_read() -> bool:
            page = await guest.call("GET", f"/api/rooms/{room}/messages")
            return any(m["id"] == guest_msg_id and m["read_count"] >= 2 for m in page["messages"])

        await wait_for(guest_sees_read, what="staff 既読 on the relay")

        # My Number guard, both sides: refused, audited without the number.
        with pytest.raises(ApiError) as blocked:
            await colleague.post(room, f"番号は {MY_NUMBER} です")
        assert blocked.value.code == "my_number_blocked"
        with pytest.raises(ApiError) as blocked_guest:
            await guest.post(room, f"マイナンバーは{MY_NUMBER.replace(' ', '')}です", "g-2")
        assert blocked_guest.value.code == "my_number_blocked"
        lgwan_entries = query(tiers.lgwan_db, "SELECT detail FROM audit_log WHERE action = 'message.my_number_blocked'")
        relay_entries = query(tiers.relay_db, "SELECT detail FROM audit WHERE action = 'post.my_number_blocked'")
        assert len(lgwan_entries) == 1 and len(relay_entries) == 1
        for db in (tiers.lgwan_db, tiers.relay_db):
            dump = "\n".join(str(r) for table in _tables(db) for r in query(db, f"SELECT * FROM {table}"))  # noqa: S608
            assert MY_NUMBER not in dump and MY_NUMBER.replace(" ", "") not in dump
        # Markup is refused before it can cross.
        with pytest.raises(ApiError) as markup:
            await guest.post(room, "<img src=x onerror=alert(1)>", "g-3")
        assert markup.value.code == "markup_not_allowed"

        # lgwan_only rooms never cross — not even their names — and guests never enter the directory.
        for table in _tables(tiers.relay_db):
            assert "secret-room" not in str(query(tiers.relay_db, f"SELECT * FROM {table}")), table  # noqa: S608
        directory = await owner.call("GET", "/api/staff?q=山田")
        assert directory["staff"] == []
        intruder = Staff(tiers.lgwan_url)        # a guest's identity row never logs in to LGWAN
        with pytest.raises(ApiError):
            await intruder.login(query(tiers.lgwan_db, "SELECT login FROM staff WHERE id = ?", (guest_id,))[0][0])
        await intruder.close()
        check_relay_sockets(tiers)

        # The owner removes the guest: the room disappears on the relay and the session ends.
        await owner.call("DELETE", f"/api/guests/{guest_id}")
        await wait_for(lambda: _gone(guest), what="the removed guest to lose access")
        # The socket learns it too (the frame may trail the HTTP answer by a moment).
        await wait_for(lambda: any(e.get("type") == "room.remove" for e in guest_frames) or guest_ws.closed,
                       what="the guest's socket to drop the room")
    finally:
        for task in readers:
            task.cancel()
        for client in (owner, colleague, guest):
            await client.close()


async def _read_by(staff: Staff, message_id: int, name: str) -> bool:
    receipts = await staff.call("GET", f"/api/messages/{message_id}/receipts")
    return any(r["display_name"] == name for r in receipts["read"])


async def _gone(guest: Guest) -> bool:
    try:
        await guest.call("GET", "/api/rooms")
    except ApiError as exc:
        return exc.status == 401
    return False


def _tables(db: Path) -> list[str]:
    return [r[0] for r in query(db, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'"
                                    " AND name NOT LIKE '%fts%'")]


async def test_staff_phone_round_trip(tiers: TwoTiers) -> None:
    room = tiers.seed.rooms["mobile-room"]
    admin, desk = Staff(tiers.lgwan_url), Staff(tiers.lgwan_url)
    await admin.login("admin", totp_secret=tiers.seed.admin_totp)
    await desk.login("sato")
    suzuki = tiers.seed.staff["suzuki"]
    grant = await admin.call("PUT", f"/api/admin/staff/{suzuki}/mobile")
    phone = Guest(tiers.relay_url)

    async def crossed() -> bool:
        try:
            await phone.call("POST", "/api/enrol/info", {"token": grant["enrol_token"]})
            return True
        except ApiError:
            return False

    try:
        await wait_for(crossed, what="the grant on the relay")
        info = await phone.enrol(grant["enrol_token"], "suzuki-phone")
        assert info["kind"] == "staff" and info["privacy_notice"] is None
        # A login from an unregistered device waits for an admin's approval.
        await wait_for(lambda: _grant_status(admin, suzuki, "active"), what="enrolment on LGWAN")
        first = await phone.login()
        assert first["status"] == "device_pending" and first["csrf_token"] is None
        pending = await wait_for(lambda: _devices(admin, "pending"), what="the device request on LGWAN")
        device_id = pending[0]["device_id"]
        assert pending[0]["staff_id"] == suzuki
        await admin.call("POST", f"/api/admin/devices/{device_id}/approve")

        async def logged_in() -> bool:
            return (await phone.login())["status"] == "ok"

        await wait_for(logged_in, interval=0.5, what="login after approval")
        # Phones see staff_mobile and guests rooms, never lgwan_only ones.
        assert {r["name"] for r in await _rooms(phone)} == {"guests-room", "mobile-room"}
        frames: list[dict[str, Any]] = []
        ws = await phone.ws("/api/ws")
        reader = asyncio.create_task(ws_collect(ws, frames))
        await phone.post(room, "現地に到着しました。避難所は開設済みです。", "p-1")

        async def desk_sees() -> list[dict[str, Any]]:
            page = await desk.call("GET", f"/api/rooms/{room}/messages")
            return [m for m in page["messages"] if m["body"].startswith("現地に到着")]

        seen = await wait_for(desk_sees, what="the phone post on LGWAN")
        assert seen[0]["sender"]["id"] == suzuki and seen[0]["sender"]["display_name"] == "鈴木 健太"
        await desk.post(room, "了解。毛布を50枚送ります。")
        await wait_for(lambda: [e for e in _events(frames, "message.new")
                                if e["message"]["body"] == "了解。毛布を50枚送ります。"], what="the phone's WebSocket")
        # Revoking the device ends its session on the relay.
        await admin.call("POST", f"/api/admin/devices/{device_id}/revoke")
        await wait_for(lambda: _gone(phone), what="the revoked device's session to end")
        reader.cancel()
        audit = await admin.call("GET", "/api/admin/audit?action=device")
        assert {"device.request", "device.approve", "device.revoke"} <= {e["action"] for e in audit["entries"]}
    finally:
        for client in (admin, desk, phone):
            await client.close()


async def _grant_status(admin: Staff, staff_id: int, status: str) -> bool:
    grants = (await admin.call("GET", "/api/admin/mobile"))["grants"]
    return any(g["staff_id"] == staff_id and g["status"] == status for g in grants)


async def _devices(admin: Staff, status: str) -> list[dict[str, Any]]:
    return list((await admin.call("GET", f"/api/admin/devices?status={status}"))["devices"])


async def test_wiped_relay_is_rebuilt_from_lgwan(tiers: TwoTiers) -> None:
    room = tiers.seed.rooms["guests-room"]
    owner = Staff(tiers.lgwan_url)
    await owner.login("sato")
    try:
        for n in range(3):
            await owner.post(room, f"記録 {n}")
        await wait_for(lambda: query(tiers.relay_db, "SELECT count(*) FROM messages")[0][0] == 3, what="the copy")
        epoch = query(tiers.relay_db, "SELECT value FROM relay_meta WHERE key = 'epoch'")[0][0]
        tiers.relay.stop()
        wipe = await asyncio.create_subprocess_exec(sys.executable, "-m", "internet_relay", "--config",
                                                    str(tiers.relay.config), "wipe", "--yes", cwd=tiers.root,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(wipe.communicate(), 60)
        assert wipe.returncode == 0, err
        assert not tiers.relay_db.exists()
        tiers.relay.start()
        await wait_for(lambda: tiers.relay_db.exists() and query(tiers.relay_db, "SELECT count(*) FROM messages")[0][0] == 3,
                       what="the rebuilt copy")
        assert query(tiers.relay_db, "SELECT value FROM relay_meta WHERE key = 'epoch'")[0][0] != epoch
        assert [r[0] for r in query(tiers.relay_db, "SELECT name FROM rooms ORDER BY name")] == ["guests-room",
                                                                                               "mobile-room"]
        resync = query(tiers.lgwan_db, "SELECT detail FROM audit_log WHERE action = 'bridge.resync' ORDER BY id")
        assert json.loads(resync[-1][0])["reason"] == "new_relay"
    finally:
        await owner.close()


async def test_queue_link_over_tls(tmp_path: Path) -> None:
    """wss:// between the tiers, the relay's certificate pinned on the LGWAN side ([bridge] ca_file)."""
    tiers = await start_two_tiers(tmp_path, tls=True)
    owner = Staff(tiers.lgwan_url)
    try:
        await owner.login("sato")
        await owner.post(tiers.seed.rooms["mobile-room"], "TLS経由で届きます")
        await wait_for(lambda: query(tiers.relay_db, "SELECT 1 FROM messages WHERE body = 'TLS経由で届きます'"),
                       what="the message over TLS")
        health = await owner.call("GET", "/healthz")
        assert health["bridge"]["connected"] is True and health["bridge"]["outbound"]["depth"] == 0
    finally:
        await owner.close()
        tiers.stop()


async def _keys(*args: str | Path) -> str:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "shared.keys", *map(str, args),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_key_rotation_with_overlap_over_the_live_link(tiers: TwoTiers) -> None:
    """The relay rotates its key (kakehashi-keys rotate → LGWAN installs the new key → activate); each new
    link session reloads the key files, so the link carries on without a restart of either tier."""
    relay_keys, lgwan_keys = tiers.root / "keys-relay", tiers.root / "keys-lgwan"
    owner = Staff(tiers.lgwan_url)
    await owner.login("sato")
    room = tiers.seed.rooms["mobile-room"]
    try:
        staged = await _keys("rotate", "--keys", relay_keys)
        new_fp = staged.split(": ", 1)[1].split("  (")[0]
        await _keys("install-peer", "--keys", lgwan_keys, "--public-key", relay_keys / "next" / "signing.pub",
                    "--fingerprint", new_fp)
        shown = await _keys("show", "--keys", lgwan_keys)
        old_fp = next(line for line in shown.splitlines() if "trusted peer" in line and new_fp not in line)
        old_fp = old_fp.split(": ", 1)[1].split("  (")[0]
        await _keys("activate", "--keys", relay_keys)
        # No overlap left for the old key: only the new one can open the next link.
        await _keys("retire-peer", "--keys", lgwan_keys, "--fingerprint", old_fp, "--overlap", "0s")
        admin = Staff(tiers.lgwan_url)
        await admin.login("admin", totp_secret=tiers.seed.admin_totp)
        await admin.call("POST", "/api/admin/bridge/pause")      # a new session picks up the keys
        await admin.call("POST", "/api/admin/bridge/resume")
        await admin.close()
        await owner.post(room, "鍵の更新後も届きます")
        await wait_for(lambda: query(tiers.relay_db, "SELECT 1 FROM messages WHERE body = '鍵の更新後も届きます'"),
                       what="a message after the rotation")
        up = query(tiers.relay_db, "SELECT count(*) FROM audit WHERE action = 'link.up'")[0][0]
        assert up >= 2 and not query(tiers.relay_db, "SELECT 1 FROM audit WHERE action = 'link.auth_failed'")
    finally:
        await owner.close()
