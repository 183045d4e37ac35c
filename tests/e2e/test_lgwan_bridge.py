"""The LGWAN half of the link, in-process through the services (no relay needed).

(These live under tests/e2e because tests/lgwan_server belongs to another engineer's work.)
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lgwan_server.bridge.inbox import BridgeInbox
from lgwan_server.cli import open_kernel
from lgwan_server.config import load_config
from lgwan_server.errors import AppError
from lgwan_server.kernel import Kernel
from lgwan_server.services.actor import Actor
from lgwan_server.services.messages import NewMessage
from lgwan_server.services.org import TransferItem, today_jst
from lgwan_server.storage import org as org_store
from shared import envelope as env
from shared.timeutil import now_iso

from .harness import PASSWORD, Ports, install_keys, lgwan_config, seed_lgwan

MY_NUMBER = "123456789018"


class RelayFeed:
    """Applies payloads through the bridge inbox as one batch of consecutive relay envelopes."""

    def __init__(self, inbox: BridgeInbox) -> None:
        self.inbox = inbox
        self.seq = 0        # the last sequence number sent

    async def __call__(self, *payloads: env.Payload) -> list[str]:
        envelopes = []
        for p in payloads:
            self.seq += 1
            envelopes.append(env.Envelope(p.KIND, env.new_id(), env.RELAY, self.seq, now_iso(), "0" * 16, p))
        return await self.inbox.apply(envelopes)


class World:
    def __init__(self, k: Kernel, seed: Any) -> None:
        self.k = k
        self.seed = seed

    async def actor(self, login: str) -> tuple[Actor, org_store.Staff]:
        staff = await org_store.get_staff_by_login(self.k.db, login)
        assert staff is not None
        return Actor(staff.id, staff.org_id, staff.login, "", "test", staff.role), staff

    async def outbox(self) -> list[tuple[str, dict[str, Any]]]:
        rows = await self.k.db.fetchall("SELECT kind, payload FROM bridge_outbox ORDER BY seq")
        return [(r[0], json.loads(r[1])) for r in rows]

    def relay_inbox(self) -> RelayFeed:
        return RelayFeed(BridgeInbox(self.k.db, self.k.bridge, self.k.messages, self.k.events,
                                     self.k.audit))  # type: ignore[arg-type]

    async def audit(self, action: str) -> list[dict[str, Any]]:
        rows = await self.k.db.fetchall("SELECT detail FROM audit_log WHERE action = ? ORDER BY id", (action,))
        return [json.loads(r[0]) for r in rows]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    keys, _, _, _ = install_keys(tmp_path)
    config = lgwan_config(tmp_path, Ports(), keys)
    seed = await seed_lgwan(config)
    async with open_kernel(load_config(config)) as k:
        yield World(k, seed)


async def test_lgwan_only_rooms_never_reach_the_outbox(world: World) -> None:
    sato, staff = await world.actor("sato")
    secret = world.seed.rooms["secret-room"]
    await world.k.messages.post(sato, staff, secret, NewMessage(body="庁内だけの話です"))
    text = json.dumps(await world.outbox(), ensure_ascii=False)
    assert "secret-room" not in text and "庁内だけの話です" not in text
    assert f'"room_id": {secret}' not in text
    # The crossing rooms were sent as snapshots when they were created (room first, then members).
    kinds = [k for k, p in await world.outbox() if p.get("room_id") == world.seed.rooms["guests-room"]]
    assert kinds[0] == "room.upsert" and "member.upsert" in kinds


async def test_the_outbox_row_commits_or_rolls_back_with_the_change(world: World) -> None:
    before = await world.outbox()
    room = world.seed.rooms["mobile-room"]
    with pytest.raises(RuntimeError):
        async with world.k.db.transaction("doomed") as conn:
            await world.k.events.emit(conn, "member.leave", {"room_id": room, "staff_id": world.seed.staff["sato"]},
                                      room_id=room)
            raise RuntimeError("the state change fails after its event")
    assert await world.outbox() == before
    sato, staff = await world.actor("sato")
    posted = await world.k.messages.post(sato, staff, room, NewMessage(body="現地の状況を共有します"))
    kind, payload = (await world.outbox())[-1]
    assert kind == "message.new" and payload["message_id"] == posted["id"] and payload["sender"] == f"s:{staff.id}"


async def test_messages_of_a_crossing_room_queue_in_one_round_trip_and_never_leak(world: World) -> None:
    """A room the bridge saw crossing queues its messages with one statement that re-checks the room:
    the stored row and the sender's in-memory copy agree, and a room that stopped crossing sends nothing."""
    sato, staff = await world.actor("sato")
    room = world.seed.rooms["guests-room"]
    feed = world.k.bridge.feed                                   # type: ignore[union-attr]
    for n in range(3):                                           # the first one routes, the others take one trip
        await world.k.messages.post(sato, staff, room, NewMessage(body=f"連絡 {n}", client_msg_id=f"c{n}"))
    rows = await world.k.db.fetchall("SELECT seq, envelope_id, payload FROM bridge_outbox WHERE kind = 'message.new'"
                                     " ORDER BY seq")
    last = rows[-1]
    queued = feed.take(last[0], 1)
    assert queued is not None and [(q.seq, q.envelope_id) for q in queued] == [(last[0], last[1])]
    assert env.payload_from_json("message.new", last[2]) == queued[0].payload
    assert json.loads(last[2])["sender"] == f"s:{staff.id}" and json.loads(last[2])["origin_id"] is None
    # A staff client can never claim the bridge's own ids ("relay:<origin>"): refused before anything.
    for claimed in ("relay:<bad>", "relay:g:1:x"):
        with pytest.raises(AppError) as refused:
            await world.k.messages.post(sato, staff, room, NewMessage(body="偽の由来", client_msg_id=claimed))
        assert refused.value.code == "invalid_request"
    assert len(await world.k.db.fetchall("SELECT 1 FROM bridge_outbox WHERE kind = 'message.new'")) == len(rows)
    # The room stops crossing: the relay forgets it and nothing more of it crosses.
    admin = Actor(world.seed.admin_id, world.seed.org_id, "admin", "", "test", "server_admin")
    await world.k.rooms.update_room(admin, room, name=None, topic=None, crossing_policy="lgwan_only", archived=None)
    await world.k.messages.post(sato, staff, room, NewMessage(body="庁内だけの続き"))
    text = json.dumps(await world.outbox(), ensure_ascii=False)
    assert "庁内だけの続き" not in text and (await world.outbox())[-1][0] == "room.remove"


async def test_my_number_and_markup_never_cross(world: World) -> None:
    sato, staff = await world.actor("sato")
    before = len(await world.outbox())
    for room in ("guests-room", "mobile-room"):
        with pytest.raises(AppError) as blocked:
            await world.k.messages.post(sato, staff, world.seed.rooms[room], NewMessage(body=f"番号 {MY_NUMBER}"))
        assert blocked.value.code == "my_number_blocked"
    with pytest.raises(AppError) as markup:
        await world.k.messages.post(sato, staff, world.seed.rooms["guests-room"], NewMessage(body="<b>重要</b>"))
    assert markup.value.code == "crossing_text_refused"
    assert len(await world.outbox()) == before
    entries = await world.audit("message.my_number_blocked")
    assert len(entries) == 2 and MY_NUMBER not in json.dumps(entries)
    # Inside LGWAN (lgwan_only) the text is the staff member's business: posted, nothing crosses.
    await world.k.messages.post(sato, staff, world.seed.rooms["secret-room"], NewMessage(body="<b>重要</b>"))


async def test_guests_stay_in_guest_rooms_and_out_of_the_directory(world: World) -> None:
    sato, _ = await world.actor("sato")
    room = world.seed.rooms["guests-room"]
    with pytest.raises(AppError) as wrong_room:
        await world.k.guests.invite(sato, world.seed.rooms["mobile-room"], "山田 太郎", "架橋病院")
    assert wrong_room.value.code == "guest_room_required"
    suzuki, _ = await world.actor("suzuki")
    with pytest.raises(AppError) as not_owner:
        await world.k.guests.invite(suzuki, room, "山田 太郎", "架橋病院")
    assert not_owner.value.code == "forbidden"
    invite = await world.k.guests.invite(sato, room, "山田 太郎", "架橋病院")
    guest_id = invite["guest"]["id"]
    kinds = [k for k, _ in await world.outbox()][-3:]
    assert kinds == ["account.upsert", "room.upsert", "member.upsert"] or kinds[-2:] == ["account.upsert", "member.upsert"]
    sent = next(p for k, p in await world.outbox() if k == "account.upsert")
    assert invite["invite_token"] not in json.dumps(sent) and len(sent["enrol_token_sha256"]) == 64
    assert await org_store.search_cards(world.k.db, [world.seed.org_id], "山田", None, 50, 0) == []
    with pytest.raises(AppError) as staff_room:
        await world.k.rooms.add_members(sato, world.seed.rooms["mobile-room"], [guest_id], "member")
    assert staff_room.value.code == "guest_room_required"
    with pytest.raises(AppError):
        await world.k.rooms.open_dm(sato, [guest_id])
    # Even with a password set behind the service's back, a guest cannot log in to LGWAN.
    async with world.k.db.transaction("t") as conn:
        await org_store.set_password_hash(conn, guest_id, await world.k.auth.passwords.hash(PASSWORD), now_iso())
    guest_login = (await org_store.get_staff(world.k.db, guest_id)).login  # type: ignore[union-attr]
    with pytest.raises(AppError) as refused:
        await world.k.auth.login(guest_login, PASSWORD, None, "127.0.0.1", "test")
    assert refused.value.code == "invalid_credentials"
    # Narrowing the room's policy takes the guest out (and the relay is told).
    admin = Actor(world.seed.admin_id, world.seed.org_id, "admin", "", "test", "server_admin")
    await world.k.rooms.update_room(admin, room, name=None, topic=None, crossing_policy="staff_mobile", archived=None)
    assert [k for k, p in await world.outbox() if p.get("member") == f"g:{guest_id}"][-1] == "member.remove"


async def test_relay_posts_apply_once_and_refusals_go_back(world: World) -> None:
    sato, _ = await world.actor("sato")
    room = world.seed.rooms["guests-room"]
    invite = await world.k.guests.invite(sato, room, "山田 太郎", "架橋病院")
    gid = invite["guest"]["id"]
    arrive = world.relay_inbox()

    def post(origin: str) -> env.RelayPost:
        return env.RelayPost(origin_id=origin, room_id=room, author=f"g:{gid}", body="了解しました",
                             posted_at=now_iso(), thread_root_id=None)

    assert await arrive(post(f"g:{gid}:1")) == ["refused:guest_inactive"]      # not approved yet
    assert (await world.outbox())[-1][0] == "post.refused"
    assert (await world.audit("bridge.post_refused"))[-1]["code"] == "guest_inactive"
    assert await arrive(env.AccountEnrolled(account=f"g:{gid}", privacy_notice_sha256="b" * 64,
                                            acknowledged_at=now_iso())) == ["applied"]
    await world.k.guests.approve(sato, gid)
    assert await arrive(post(f"g:{gid}:2"), post(f"g:{gid}:2")) == ["applied", "refused:duplicate_origin"]
    rows = await world.k.db.fetchall("SELECT sender_id, sender_affiliation FROM messages WHERE client_msg_id = ?",
                                     (f"relay:g:{gid}:2",))
    assert [tuple(r) for r in rows] == [(gid, "架橋病院")]
    echo = (await world.outbox())[-1]
    assert echo[0] == "message.new" and echo[1]["origin_id"] == f"g:{gid}:2" and echo[1]["sender"] == f"g:{gid}"
    state = await world.k.db.fetchone("SELECT in_applied_seq FROM bridge_state")
    assert state is not None and state[0] == arrive.seq


async def test_a_backlog_batch_checks_each_author_once_and_keeps_every_outcome(world: World) -> None:
    """Many envelopes in one transaction (after an outage): each keeps its own outcome, in order, and
    a post already applied in an earlier batch is still taken once."""
    sato, _ = await world.actor("sato")
    room = world.seed.rooms["guests-room"]
    invite = await world.k.guests.invite(sato, room, "山田 太郎", "架橋病院")
    gid = invite["guest"]["id"]
    arrive = world.relay_inbox()

    def post(author: str, origin: str, target: int = room) -> env.RelayPost:
        return env.RelayPost(origin_id=origin, room_id=target, author=author, body=f"報告 {origin}",
                             posted_at=now_iso(), thread_root_id=None)

    assert await arrive(env.AccountEnrolled(account=f"g:{gid}", privacy_notice_sha256="b" * 64,
                                            acknowledged_at=now_iso())) == ["applied"]
    await world.k.guests.approve(sato, gid)
    me, stranger = f"g:{gid}", "g:99999"
    assert await arrive(post(me, "a")) == ["applied"]
    outcomes = await arrive(post(stranger, "x"), post(me, "b"), post(me, "a"), post(me, "c"),
                            env.ReceiptIn(room_id=room, member=me, seq=1), post(stranger, "y"),
                            post(me, "d", world.seed.rooms["secret-room"]), post(me, "c"))
    assert outcomes == ["refused:author_inactive", "applied", "refused:duplicate_origin", "applied", "applied",
                        "refused:author_inactive", "refused:room_not_crossing", "refused:duplicate_origin"]
    rows = await world.k.db.fetchall("SELECT client_msg_id FROM messages WHERE sender_id = ? ORDER BY seq", (gid,))
    assert [r[0] for r in rows] == ["relay:a", "relay:b", "relay:c"]
    recorded = await world.k.db.fetchall("SELECT seq, outcome FROM bridge_inbox ORDER BY seq")
    assert [tuple(r) for r in recorded][-8:] == list(zip(range(arrive.seq - 7, arrive.seq + 1), outcomes, strict=True))
    state = await world.k.db.fetchone("SELECT in_applied_seq FROM bridge_state")
    assert state is not None and state[0] == arrive.seq
    refused = [p for k, p in await world.outbox() if k == "post.refused"]
    assert [(p["origin_id"], p["code"]) for p in refused][-3:] == [
        ("x", "author_inactive"), ("y", "author_inactive"), ("d", "room_not_crossing")]


async def test_expired_guests_end_everywhere(world: World) -> None:
    sato, _ = await world.actor("sato")
    invite = await world.k.guests.invite(sato, world.seed.rooms["guests-room"], "期限 切子", "")
    gid = invite["guest"]["id"]
    async with world.k.db.transaction("t") as conn:
        await conn.execute("UPDATE guests SET expires_at = '2000-01-01T00:00:00.000Z' WHERE staff_id = ?", (gid,))
    assert await world.k.guests.expire_due() == 1
    guest = await world.k.guests.get(Actor(world.seed.admin_id, world.seed.org_id, "admin", "", "t", "server_admin"), gid)
    assert guest["status"] == "expired"
    assert (await world.outbox())[-1] == ("account.remove", {"account": f"g:{gid}"})
    members = await world.k.db.fetchall("SELECT 1 FROM room_members WHERE staff_id = ?", (gid,))
    assert members == []
    # Out of every room, yet the owner's guest list still shows who had access and how it ended.
    removed = (await world.k.guests.invite(sato, world.seed.rooms["guests-room"], "削除 太郎", ""))["guest"]["id"]
    await world.k.guests.remove(sato, removed)
    assert sato.staff_id is not None
    listed = {g["id"]: g["status"] for g in await world.k.guests.list_room(sato.staff_id, world.seed.rooms["guests-room"])}
    assert listed[gid] == "expired" and listed[removed] == "removed"
    assert await world.k.guests.list_room(sato.staff_id, world.seed.rooms["mobile-room"]) == []


async def test_rebuild_sends_accounts_then_rooms(world: World) -> None:
    sato, _ = await world.actor("sato")
    await world.k.guests.invite(sato, world.seed.rooms["guests-room"], "山田 太郎", "架橋病院")
    assert world.k.bridge is not None
    async with world.k.db.transaction("rebuild") as conn:
        size = await world.k.bridge.rebuild(conn, reset_inbound=True)
    kinds = [k for k, _ in await world.outbox()]
    assert len(kinds) == size and kinds[0] == "account.upsert" and kinds[1] == "room.upsert"
    assert {p["name"] for k, p in await world.outbox() if k == "room.upsert"} == {"guests-room", "mobile-room"}
    first = await world.k.db.fetchone("SELECT min(seq) FROM bridge_outbox")
    assert first is not None and first[0] == 1


async def test_a_transfer_sends_the_new_affiliation_to_every_crossing_room(world: World) -> None:
    """人事異動 (here a transfer effective today; a CSV import takes the same path): guests and phones
    see the person's new 所属 in each crossing room at once, not after the next rebuild; the
    lgwan_only room's card never crosses."""
    suzuki, staff = await world.actor("suzuki")
    async with world.k.db.transaction("t") as conn:
        department_id, _ = await org_store.upsert_department(conn, world.seed.org_id, "K100", "危機管理課", "ka",
                                                             None, 1)
    before = len(await world.outbox())
    admin = Actor(world.seed.admin_id, world.seed.org_id, "admin", "", "test", "server_admin")
    applied = await world.k.org.schedule_transfers(admin, world.seed.org_id, [
        TransferItem(staff_id=staff.id, department_id=department_id, rank_id=None, title=None,
                     effective_date=today_jst())])
    assert applied == {"scheduled": 1, "applied": 1}
    cards = [(p["room_id"], p["affiliation"]) for k, p in (await world.outbox())[before:]
             if k == "member.upsert" and p["member"] == f"s:{staff.id}"]
    assert sorted(cards) == sorted((world.seed.rooms[name], "危機管理課") for name in ("guests-room", "mobile-room"))
    assert await org_store.department_path(world.k.db, (await world.actor("suzuki"))[1].department_id) == "危機管理課"
