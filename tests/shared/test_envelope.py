"""The queue envelope: every hostile form is refused with a stable code; valid ones round-trip."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from shared import envelope as env
from shared.limits import MAX_ENVELOPE_BYTES
from shared.signing import KeyRing, Signer, TrustedKey, canonical_json
from shared.timeutil import utcnow

LGWAN_KEY = Signer.generate()
RELAY_KEY = Signer.generate()
AT_RELAY = KeyRing([TrustedKey(LGWAN_KEY.public_key)])     # the relay trusts the LGWAN key
AT_LGWAN = KeyRing([TrustedKey(RELAY_KEY.public_key)])


def message(body: str = "接種会場は午後も空きがあります。") -> env.MessageNew:
    return env.MessageNew(message_id=7, room_id=3, seq=1, sender="s:12", sender_name="佐藤 花子",
                          sender_affiliation="健康福祉部 健康推進課", body=body, created_at="2026-04-01T00:00:00.000Z",
                          thread_root_id=None, origin_id=None, attachments=0)


def post(body: str = "了解しました。") -> env.RelayPost:
    return env.RelayPost(origin_id="r-1", room_id=3, author="g:5", body=body, posted_at="2026-04-01T00:00:00.000Z",
                         thread_root_id=None)


def reseal(obj: dict, signer: Signer = LGWAN_KEY) -> bytes:
    """Re-sign a modified envelope object, so the test isolates the check after the signature."""
    obj = {k: v for k, v in obj.items() if k != "sig"}
    obj["sig"] = signer.sign(env.PURPOSE, obj)
    return canonical_json(obj)


def test_round_trip_both_directions() -> None:
    out = env.open_envelope(env.seal(message(), seq=1, signer=LGWAN_KEY), expect_sender=env.LGWAN, keyring=AT_RELAY)
    assert out.payload == message() and out.seq == 1 and out.kind == "message.new"
    back = env.open_envelope(env.seal(post(), seq=9, signer=RELAY_KEY), expect_sender=env.RELAY, keyring=AT_LGWAN)
    assert back.payload == post()


def test_allow_lists_are_disjoint_and_cover_every_kind() -> None:
    assert env.LGWAN_TO_RELAY.isdisjoint(env.RELAY_TO_LGWAN)
    assert env.LGWAN_TO_RELAY | env.RELAY_TO_LGWAN == set(env.KINDS)


def tamper(raw: bytes, **changes: object) -> bytes:
    obj = json.loads(raw)
    obj.update(changes)
    return canonical_json(obj)


def flip_payload(raw: bytes) -> bytes:
    obj = json.loads(raw)
    obj["payload"]["body"] = "改ざんされた本文"
    return canonical_json(obj)


FRESH = env.seal(message(), seq=1, signer=LGWAN_KEY)


@pytest.mark.parametrize(("raw", "code"), [
    (flip_payload(FRESH), "bad_signature"),                                    # forged content
    (env.seal(message(), seq=1, signer=Signer.generate()), "unknown_key"),      # wrong key
    (tamper(FRESH, key_id=RELAY_KEY.key_id), "unknown_key"),                    # claims another key
    (tamper(FRESH, sig=base64.b64encode(b"\0" * 64).decode()), "bad_signature"),
    (tamper(FRESH, sig="not base64!"), "bad_signature"),
    (reseal({**json.loads(FRESH), "kind": "guest.delete_everything"}), "kind_not_allowed"),
    (reseal({**json.loads(FRESH), "kind": "relay.post"}), "kind_not_allowed"),  # wrong direction for this sender
    (reseal({**json.loads(FRESH), "extra": 1}), "bad_structure"),
    (reseal({**json.loads(FRESH), "payload": {**message().to_wire(), "html": "<b>x</b>"}}), "bad_payload"),
    (reseal({**json.loads(FRESH), "payload": {**message().to_wire(), "body": "<script>alert(1)</script>"}}),
     "bad_payload"),
    (reseal({**json.loads(FRESH), "payload": {**message().to_wire(), "body": "abc\u202edef"}}), "bad_payload"),
    (reseal({**json.loads(FRESH), "payload": {**message().to_wire(), "body": "\x1b[31mred"}}), "bad_payload"),
    (reseal({**json.loads(FRESH), "payload": {**message().to_wire(), "room_id": "3"}}), "bad_payload"),
    (reseal({**json.loads(FRESH), "payload": {**message().to_wire(), "room_id": True}}), "bad_payload"),
    (reseal({**json.loads(FRESH), "payload": {**message().to_wire(), "body": "x" * 10_001}}), "bad_payload"),
    (reseal({**json.loads(FRESH), "ts": "2020-01-01T00:00:00.000Z"}), "clock_skew"),
    (reseal({**json.loads(FRESH), "v": 2}), "bad_version"),
    (reseal({**json.loads(FRESH), "sender": "relay"}), "wrong_sender"),
    (reseal({**json.loads(FRESH), "seq": 0}), "bad_structure"),
    (FRESH[: len(FRESH) // 2], "not_json"),                                     # truncated
    (b"\xff\xfe" + FRESH, "not_utf8"),
    (FRESH.replace(b'"seq":1', b'"seq":1.0'), "not_json"),                      # floats refused
    (FRESH.replace(b'{"id"', b'{"id":"x","id"', 1), "not_json"),                # duplicate key
    (b"[" * 100_000, "too_large"),
    (b"x" * (MAX_ENVELOPE_BYTES + 1), "too_large"),
    (b"[1,2,3]", "bad_structure"),
])
def test_hostile_envelopes_are_refused(raw: bytes, code: str) -> None:
    with pytest.raises(env.EnvelopeError) as info:
        env.open_envelope(raw, expect_sender=env.LGWAN, keyring=AT_RELAY)
    assert info.value.code == code


def test_relay_key_cannot_speak_for_lgwan() -> None:
    """A compromised relay holds only its own key: envelopes it signs as 'lgwan' do not verify."""
    forged = reseal({**json.loads(FRESH), "key_id": RELAY_KEY.key_id}, signer=RELAY_KEY)
    with pytest.raises(env.EnvelopeError) as info:
        env.open_envelope(forged, expect_sender=env.LGWAN, keyring=AT_RELAY)
    assert info.value.code == "unknown_key"


def test_rotation_overlap_then_expiry() -> None:
    new = Signer.generate()
    ring = KeyRing([TrustedKey(LGWAN_KEY.public_key, not_after=utcnow() + timedelta(hours=1)),
                    TrustedKey(new.public_key)])
    for signer in (LGWAN_KEY, new):
        env.open_envelope(env.seal(message(), seq=1, signer=signer), expect_sender=env.LGWAN, keyring=ring)
    later = utcnow() + timedelta(hours=2)
    old_raw = env.seal(message(), seq=2, signer=LGWAN_KEY, now=later)
    with pytest.raises(env.EnvelopeError) as info:
        env.open_envelope(old_raw, expect_sender=env.LGWAN, keyring=ring, now=later)
    assert info.value.code == "expired_key"


def test_sender_refuses_what_the_receiver_would() -> None:
    with pytest.raises(env.EnvelopeError):
        env.seal(message("<img src=x onerror=alert(1)>"), seq=1, signer=LGWAN_KEY)
    with pytest.raises(env.EnvelopeError):
        env.seal(message("x" * 70_000), seq=1, signer=LGWAN_KEY)


def test_plain_text_with_angle_brackets_that_are_not_markup_crosses() -> None:
    with pytest.raises(env.EnvelopeError):
        env.seal(message("a<b は不可"), seq=1, signer=LGWAN_KEY)   # "<b" looks like a tag
    raw = env.seal(message("3 < 5 かつ 5 > 3"), seq=1, signer=LGWAN_KEY)
    assert env.open_envelope(raw, expect_sender=env.LGWAN, keyring=AT_RELAY).payload.body == "3 < 5 かつ 5 > 3"


@pytest.mark.parametrize(("last", "seq", "verdict"), [(0, 1, "next"), (5, 6, "next"), (5, 5, "duplicate"),
                                                      (5, 1, "duplicate"), (5, 7, "gap"), (0, 2, "gap")])
def test_sequence_classification(last: int, seq: int, verdict: str) -> None:
    assert env.classify_seq(last, seq) == verdict
