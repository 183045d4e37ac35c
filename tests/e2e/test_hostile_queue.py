"""Hostile queue input over the real link, against the real other tier.

Relay side: a fake LGWAN (holding the LGWAN key, as a compromised LGWAN host or a stolen key
would) dials the real relay process and sends forged, replayed, out-of-sequence, malformed,
oversized and stale envelopes. LGWAN side: the real LGWAN server's dialler connects to a fake
relay that does the same in the other direction. Every case must be refused, audited (relay: its
``audit`` table; LGWAN: ``audit_log``) and applied nowhere.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from shared import envelope as env
from shared.limits import MAX_ENVELOPE_BYTES
from shared.link import CLOSE_REJECTED
from shared.signing import Signer, canonical_json
from shared.timeutil import utcnow

from .harness import TwoTiers, query, start_two_tiers, wait_for
from .peers import FakeLgwan, FakeRelay, reseal

ROOM = 990          # a room id that exists only through the fake LGWAN


def relay_audit(tiers: TwoTiers, action: str) -> list[dict[str, object]]:
    rows = query(tiers.relay_db, "SELECT detail, outcome FROM audit WHERE action = ? ORDER BY id", (action,))
    return [{**json.loads(detail), "outcome": outcome} for detail, outcome in rows]


def lgwan_audit(tiers: TwoTiers, action: str) -> list[dict[str, object]]:
    rows = query(tiers.lgwan_db, "SELECT detail, outcome FROM audit_log WHERE action = ? ORDER BY id", (action,))
    return [{**json.loads(detail), "outcome": outcome} for detail, outcome in rows]


def message(message_id: int, body: str, seq: int = 1) -> env.MessageNew:
    return env.MessageNew(message_id=message_id, room_id=ROOM, seq=seq, sender="s:1", sender_name="佐藤 花子",
                          sender_affiliation="総務課", body=body, created_at="2026-04-01T00:00:00.000Z",
                          thread_root_id=None, origin_id=None, attachments=0)


@pytest.fixture
async def relay_only(tmp_path: Path):  # type: ignore[no-untyped-def]
    tiers = await start_two_tiers(tmp_path, start=False)
    tiers.relay.start()
    fake = FakeLgwan(tiers.queue_url, tiers.lgwan_signer)
    yield tiers, fake
    await fake.close()
    tiers.stop()


async def test_hostile_envelopes_to_the_relay(relay_only: tuple[TwoTiers, FakeLgwan]) -> None:
    tiers, fake = relay_only
    # An impostor without the LGWAN key cannot even get a link.
    impostor = await fake.connect(signer=Signer.generate())
    assert impostor.get("type") in (None, "reject")
    assert [a["code"] for a in relay_audit(tiers, "link.auth_failed")] == ["auth_unknown_key"]

    welcome = await fake.connect()
    assert welcome["type"] == "welcome" and welcome["ack"] == 0
    room = fake.seal(env.RoomUpsert(room_id=ROOM, name="外部連携", policy="guests"), 1)
    assert (await fake.send(room, until_ack=1)).acks == [1]
    first = fake.seal(message(1, "正しいメッセージ"), 2)
    assert (await fake.send(first, until_ack=2)).acks == [2]

    # Replayed envelope: acknowledged again, applied once, audited as a replay; the link stays up.
    replay = await fake.send(first)
    assert replay.acks == [2] and replay.close_code is None
    assert relay_audit(tiers, "queue.replay")[-1]["seq"] == 2

    # Verified but breaking the payload schema: consumed as refused (so it cannot jam the queue).
    consumed = {
        "html/script in text": reseal(fake.seal(message(3, "x"), 3), fake.signer,
                                      payload={"body": "<script>alert(1)</script>"}),
        "extra payload field": reseal(fake.seal(message(4, "y"), 4), fake.signer, payload={"html": "<b>x</b>"}),
        "bidi override": reseal(fake.seal(message(5, "z"), 5), fake.signer, payload={"body": "請求書\u202etxt.exe"}),
    }
    for seq, (case, raw) in enumerate(consumed.items(), start=3):
        outcome = await fake.send(raw, until_ack=seq)
        assert outcome.acks == [seq] and outcome.close_code is None, case

    # Everything else is refused and the link is closed; the dialler would resume from the last ack.
    next_seq = 6
    fresh = fake.seal(message(6, "あとで正しく届く"), next_seq)
    refused = {
        "forged signature": (fresh.replace("あとで".encode(), "改ざん".encode()), "bad_signature"),
        "wrong key": (env.seal(message(6, "w"), seq=next_seq, signer=Signer.generate()), "unknown_key"),
        "gap in the sequence": (fake.seal(message(7, "gap"), next_seq + 1), "gap"),
        "rewind (other envelope at an applied seq)": (fake.seal(message(8, "rewind"), 2), "rewind"),
        "unknown type": (reseal(fresh, fake.signer, kind="guest.delete_everything"), "kind_not_allowed"),
        "type of the other direction": (reseal(fresh, fake.signer, kind="relay.post"), "kind_not_allowed"),
        "extra top-level field": (reseal(fresh, fake.signer, extra=1), "bad_structure"),
        "oversized body": (canonical_json({**json.loads(fresh), "pad": "x" * (MAX_ENVELOPE_BYTES + 10)}),
                           "too_large"),
        "truncated body": (fresh[: len(fresh) // 2], "not_json"),
        "clock skew outside the window": (fake.seal(message(6, "古い"), next_seq, now=utcnow() - timedelta(minutes=10)),
                                          "clock_skew"),
    }
    for case, (raw, code) in refused.items():
        await fake.connect(ack=0)
        outcome = await fake.send(raw)
        assert outcome.close_code == CLOSE_REJECTED, case
        assert outcome.rejects and outcome.rejects[0]["code"] == code, (case, outcome)
    # A frame too big for the link at all is cut off by the WebSocket layer, and audited too.
    await fake.connect(ack=0)
    outcome = await fake.send(b"{" + b" " * (2 * MAX_ENVELOPE_BYTES + 10) + b"}")
    assert outcome.close_code is not None
    await wait_for(lambda: any(a["code"] == "frame_too_large" for a in relay_audit(tiers, "queue.envelope_rejected")),
                   what="the audited oversized frame")

    audited = [a["code"] for a in relay_audit(tiers, "queue.envelope_rejected")]
    assert audited[:3] == ["bad_payload", "bad_payload", "bad_payload"]
    assert audited[3:] == [code for _, code in refused.values()] + ["frame_too_large"]
    # Nothing hostile was applied: only the room and the two valid messages exist.
    bodies = [r[0] for r in query(tiers.relay_db, "SELECT body FROM messages ORDER BY id")]
    assert bodies == ["正しいメッセージ"]
    assert query(tiers.relay_db, "SELECT in_applied_seq FROM link_state")[0][0] == 5
    # After all that, the genuine next envelope still goes through.
    await fake.connect(ack=0)
    assert (await fake.send(fresh, until_ack=6)).acks == [6]
    assert [r[0] for r in query(tiers.relay_db, "SELECT body FROM messages ORDER BY id")] == ["正しいメッセージ",
                                                                                           "あとで正しく届く"]


async def test_hostile_envelopes_to_lgwan(tmp_path: Path) -> None:
    tiers = await start_two_tiers(tmp_path, start=False, max_backoff="200ms")   # it reconnects after each refusal
    fake = FakeRelay(tiers.ports.relay_queue, tiers.relay_signer)
    await fake.start()
    tiers.lgwan.start()
    signer = tiers.relay_signer
    room = tiers.seed.rooms["guests-room"]

    def post(origin: str, body: str, author: str = "g:99") -> env.RelayPost:
        return env.RelayPost(origin_id=origin, room_id=room, author=author, body=body,
                             posted_at="2026-04-01T00:00:00.000Z", thread_root_id=None)

    try:
        conn = await fake.next_connection()
        assert conn.ready["reset"] is True and conn.ready["ack"] == 0     # first link: LGWAN rebuilds our copy
        # A well-formed post from someone who is not an active guest: taken (seq 1) but refused.
        valid = env.seal(post("r-1", "正しい形の投稿"), seq=1, signer=signer)
        assert 1 in (await conn.send(valid, until_ack=1)).acks
        assert lgwan_audit(tiers, "bridge.post_refused")[-1]["code"] == "author_inactive"
        replay = await conn.send(valid)
        assert 1 in replay.acks and replay.close_code is None
        assert lgwan_audit(tiers, "bridge.replay")[-1]["seq"] == 1
        script = reseal(env.seal(post("r-2", "x"), seq=2, signer=signer), signer,
                        payload={"body": "<script>alert(1)</script>"})
        assert 2 in (await conn.send(script, until_ack=2)).acks
        conn.release()

        fresh = env.seal(post("r-3", "y"), seq=3, signer=signer)
        refused = {
            "forged signature": (fresh.replace(b'"y"', b'"z"'), "bad_signature"),
            "wrong key": (env.seal(post("r-3", "y"), seq=3, signer=Signer.generate()), "unknown_key"),
            "gap": (env.seal(post("r-4", "y"), seq=4, signer=signer), "gap"),
            "rewind": (env.seal(post("r-9", "y"), seq=1, signer=signer), "rewind"),
            "unknown type": (reseal(fresh, signer, kind="staff.promote"), "kind_not_allowed"),
            "LGWAN's own type": (reseal(fresh, signer, kind="message.new"), "kind_not_allowed"),
            "extra field": (reseal(fresh, signer, extra=True), "bad_structure"),
            "oversized": (canonical_json({**json.loads(fresh), "pad": "x" * (MAX_ENVELOPE_BYTES + 10)}), "too_large"),
            "truncated": (fresh[:-40], "not_json"),
            "clock skew": (env.seal(post("r-3", "y"), seq=3, signer=signer, now=utcnow() + timedelta(minutes=20)),
                           "clock_skew"),
        }
        for case, (raw, code) in refused.items():
            conn = await fake.next_connection()      # the dialler reconnects after each refusal
            assert conn.ready["ack"] == 2, case
            outcome = await conn.send(raw)
            assert outcome.close_code == CLOSE_REJECTED and outcome.rejects[0]["code"] == code, (case, outcome)
            conn.release()
        audited = [a["code"] for a in lgwan_audit(tiers, "bridge.envelope_rejected")]
        assert audited == ["bad_payload", *[code for _, code in refused.values()]]
        # Nothing was applied: no message from the relay exists, and the applied count is where it was.
        assert query(tiers.lgwan_db, "SELECT count(*) FROM messages WHERE client_msg_id LIKE 'relay:%'")[0][0] == 0
        assert query(tiers.lgwan_db, "SELECT in_applied_seq FROM bridge_state")[0][0] == 2
        outcomes = dict(query(tiers.lgwan_db, "SELECT seq, outcome FROM bridge_inbox"))
        assert outcomes == {1: "refused:author_inactive", 2: "rejected:bad_payload"}

        # A relay that cannot prove the relay key gets no envelope at all.
        impostor = FakeRelay(tiers.ports.relay_queue, Signer.generate())
        await fake.stop()
        await impostor.start()
        await wait_for(lambda: lgwan_audit(tiers, "bridge.link_auth_failed"), what="the refused impostor")
        await impostor.stop()
    finally:
        await fake.stop()
        tiers.stop()
