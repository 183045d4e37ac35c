"""The queue envelope: every hostile form is refused with a stable code; valid ones round-trip."""

from __future__ import annotations

import base64
import dataclasses
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


# The hostile samples are built at collection time; the test opens them "at" the same moment, so a
# long test run cannot turn them into clock-skew refusals.
SEALED_AT = utcnow()
FRESH = env.seal(message(), seq=1, signer=LGWAN_KEY, now=SEALED_AT)


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
        env.open_envelope(raw, expect_sender=env.LGWAN, keyring=AT_RELAY, now=SEALED_AT)
    assert info.value.code == code


def test_relay_key_cannot_speak_for_lgwan() -> None:
    """A compromised relay holds only its own key: envelopes it signs as 'lgwan' do not verify."""
    forged = reseal({**json.loads(FRESH), "key_id": RELAY_KEY.key_id}, signer=RELAY_KEY)
    with pytest.raises(env.EnvelopeError) as info:
        env.open_envelope(forged, expect_sender=env.LGWAN, keyring=AT_RELAY, now=SEALED_AT)
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


def test_new_kinds_round_trip() -> None:
    """Every kind added for issue 5 seals and opens in its own direction only."""
    h = "a" * 64
    samples = [
        env.AccountUpsert(account="g:5", kind="guest", display_name="山田 太郎", affiliation="架橋病院", status="invited",
                          enrol_token_sha256=h, enrol_expires_at="2026-04-08T00:00:00.000Z",
                          expires_at="2026-07-01T00:00:00.000Z", device_approval=False),
        env.AccountRemove(account="s:12"),
        env.DeviceDecision(account="s:12", device_id="0" * 32, decision="revoked"),
        env.PostRefused(origin_id="g:5:abc", room_id=3, code="not_member"),
        env.AccountEnrolled(account="g:5", privacy_notice_sha256=h, acknowledged_at="2026-04-01T00:00:00.000Z"),
        env.DeviceRequest(account="s:12", device_id="1" * 32, label="iPhone Safari",
                          requested_at="2026-04-01T00:00:00.000Z"),
    ]
    for payload in samples:
        signer, ring = (LGWAN_KEY, AT_RELAY) if payload.DIRECTION == env.LGWAN else (RELAY_KEY, AT_LGWAN)
        raw = env.seal(payload, seq=1, signer=signer)
        assert env.open_envelope(raw, expect_sender=payload.DIRECTION, keyring=ring).payload == payload
        other = env.RELAY if payload.DIRECTION == env.LGWAN else env.LGWAN
        with pytest.raises(env.EnvelopeError):
            env.open_envelope(raw, expect_sender=other, keyring=ring)


@pytest.mark.parametrize(("change", "reason"), [
    ({"enrol_token_sha256": "xyz"}, "not a SHA-256"),
    ({"status": "owner"}, "not an allowed value"),
    ({"device_approval": 1}, "expected boolean"),
    ({"display_name": "<b>管理者</b>"}, "markup"),
])
def test_account_fields_are_strict(change: dict, reason: str) -> None:
    wire = env.AccountUpsert(account="g:5", kind="guest", display_name="山田", affiliation="", status="active",
                             enrol_token_sha256=None, enrol_expires_at=None, expires_at=None,
                             device_approval=False).to_wire()
    with pytest.raises(env.EnvelopeError) as info:
        env.AccountUpsert.from_wire({**wire, **change})
    assert reason in str(info.value)


def test_my_number_never_crosses() -> None:
    """Acceptance statement 16: a valid 個人番号 is refused by the sender and by the receiver."""
    assert env.crossing_text_problem("番号は 1234-5678-9018 です") == "my_number"
    assert env.crossing_text_problem("番号は 1234-5678-9012 です") is None
    with pytest.raises(env.EnvelopeError) as info:
        env.seal(message("マイナンバー123456789018"), seq=1, signer=LGWAN_KEY)
    assert "my_number" in str(info.value)
    raw = reseal({**json.loads(FRESH), "payload": {**message().to_wire(), "body": "123456789018"}})
    with pytest.raises(env.EnvelopeError) as refused:
        env.open_envelope(raw, expect_sender=env.LGWAN, keyring=AT_RELAY, now=SEALED_AT)
    assert refused.value.code == "bad_payload" and refused.value.verified is not None


def test_failures_after_the_signature_carry_the_verified_header() -> None:
    """So the receiver may trust the seq of a well-signed envelope with a bad payload (and consume it)."""
    with pytest.raises(env.EnvelopeError) as before:
        env.open_envelope(flip_payload(FRESH), expect_sender=env.LGWAN, keyring=AT_RELAY, now=SEALED_AT)
    assert before.value.verified is None
    raw = reseal({**json.loads(FRESH), "seq": 9, "payload": {**message().to_wire(), "extra": 1}})
    with pytest.raises(env.EnvelopeError) as after:
        env.open_envelope(raw, expect_sender=env.LGWAN, keyring=AT_RELAY, now=SEALED_AT)
    assert after.value.verified is not None and after.value.verified["seq"] == 9


def test_payload_json_round_trip() -> None:
    text = env.payload_json(message())
    assert env.payload_from_json("message.new", text) == message()
    with pytest.raises(env.EnvelopeError):
        env.payload_from_json("no.such.kind", text)


# --- 安否確認 kinds (issue 6) -----------------------------------------------------------------------

def safety_request(**changes: object) -> env.SafetyRequest:
    base = env.SafetyRequest(check_id=4, origin_id=None, title="震度6弱 安否確認", message="状況を回答してください。\n訓練です。",
                             questions=("condition", "attend"), started_at="2026-04-01T00:00:00.000Z",
                             members=("s:12", "s:13"))
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def safety_answer(**changes: object) -> env.SafetyAnswer:
    base = env.SafetyAnswer(origin_id="s:12:abc", check_id=4, check_origin_id=None, member="s:12", condition="safe",
                            attend="yes", eta_minutes=30, location="自宅", note="徒歩で向かいます",
                            answered_at="2026-04-01T00:05:00.000Z")
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


SAFETY_SAMPLES: list[env.Payload] = [
    safety_request(),
    safety_request(origin_id="r:abc", members=tuple(f"s:{n}" for n in range(1, env.MAX_SAFETY_MEMBERS + 1))),
    env.SafetyRemind(check_id=4, origin_id=None, members=("s:12",)),
    env.SafetyClose(check_id=4, origin_id="r:abc", closed_at="2026-04-02T00:00:00.000Z"),
    env.SafetyStart(origin_id="r:abc", started_by="s:3", title="地震", message="", questions=("condition",),
                    started_at="2026-04-01T00:00:00.000Z", members=("s:3", "s:12")),
    safety_answer(),
    safety_answer(check_id=None, check_origin_id="r:abc", eta_minutes=None, location="", note=""),
]


def test_every_kind_is_in_exactly_one_allow_list() -> None:
    for kind, cls in env.KINDS.items():
        assert (kind in env.LGWAN_TO_RELAY) + (kind in env.RELAY_TO_LGWAN) == 1, kind
        assert kind in env.ALLOWED[cls.DIRECTION]
    assert {"safety.request", "safety.remind", "safety.close"} <= env.LGWAN_TO_RELAY
    assert {"safety.start", "safety.answer"} <= env.RELAY_TO_LGWAN
    assert env.__doc__ is not None and all(f"\n{kind} " in env.__doc__ for kind in env.KINDS)   # documented


@pytest.mark.parametrize("payload", SAFETY_SAMPLES, ids=lambda p: p.KIND)
def test_safety_kinds_round_trip_in_their_direction_only(payload: env.Payload) -> None:
    signer, ring = (LGWAN_KEY, AT_RELAY) if payload.DIRECTION == env.LGWAN else (RELAY_KEY, AT_LGWAN)
    raw = env.seal(payload, seq=1, signer=signer)
    assert len(raw) <= MAX_ENVELOPE_BYTES
    assert env.open_envelope(raw, expect_sender=payload.DIRECTION, keyring=ring).payload == payload
    assert env.payload_from_json(payload.KIND, env.payload_json(payload)) == payload
    other = env.RELAY if payload.DIRECTION == env.LGWAN else env.LGWAN
    with pytest.raises(env.EnvelopeError) as info:     # the same kind claimed by the other tier
        env.open_envelope(reseal({**json.loads(raw), "sender": other}, signer), expect_sender=other,
                          keyring=AT_LGWAN if other == env.RELAY else AT_RELAY)
    assert info.value.code == "kind_not_allowed"


@pytest.mark.parametrize(("make", "change", "reason"), [
    (safety_request, {"members": ["g:5"]}, "bad member"),                   # a guest is never a target
    (safety_request, {"members": ["s:12", "s:12"]}, "repeated item"),
    (safety_request, {"members": []}, "wrong number of items"),
    (safety_request, {"members": [f"s:{n}" for n in range(1, env.MAX_SAFETY_MEMBERS + 2)]}, "wrong number of items"),
    (safety_request, {"members": "s:12"}, "expected array"),
    (safety_request, {"members": [12]}, "expected strings"),
    (safety_request, {"members": [["s:12"]]}, "expected strings"),
    (safety_request, {"members": ["s:0"]}, "bad member"),
    (safety_request, {"members": ["s:12 "]}, "bad member"),
    (safety_request, {"questions": ["attend"]}, "condition is always asked"),
    (safety_request, {"questions": ["condition", "gps"]}, "not an allowed value"),
    (safety_request, {"title": "<script>alert(1)</script>"}, "markup"),
    (safety_request, {"title": "a\u202eb"}, "control_chars"),
    (safety_request, {"message": "番号は 1234-5678-9018 です"}, "my_number"),
    (safety_request, {"check_id": 0}, "out of range"),
    (safety_answer, {"check_id": None}, "exactly one of"),
    (safety_answer, {"check_origin_id": "r:abc"}, "exactly one of"),
    (safety_answer, {"member": "g:5"}, "bad member"),
    (safety_answer, {"condition": "fine"}, "not an allowed value"),
    (safety_answer, {"attend": "maybe"}, "not an allowed value"),
    (safety_answer, {"eta_minutes": env.MAX_SAFETY_ETA_MINUTES + 1}, "out of range"),
    (safety_answer, {"eta_minutes": -1}, "out of range"),
    (safety_answer, {"eta_minutes": True}, "expected integer"),
    (safety_answer, {"location": "1階\n2階"}, "control_chars"),               # one line
    (safety_answer, {"location": "x" * (env.MAX_SAFETY_LOCATION_CHARS + 1)}, "too long"),
    (safety_answer, {"note": "<img src=x onerror=alert(1)>"}, "markup"),
    (safety_answer, {"note": "\x1b[31m赤"}, "control_chars"),
    (safety_answer, {"note": "マイナンバー123456789018"}, "my_number"),
    (safety_answer, {"answered_at": "yesterday"}, "not a UTC timestamp"),
    (safety_answer, {"origin_id": "../../etc"}, "bad token"),
])
def test_hostile_safety_payloads_are_refused(make: object, change: dict, reason: str) -> None:
    payload = make()  # type: ignore[operator]
    with pytest.raises(env.EnvelopeError) as info:
        type(payload).from_wire({**payload.to_wire(), **change})
    assert info.value.code == "bad_payload" and reason in str(info.value)
    # …and at the receiver, after the signature: consumed as refused, never applied.
    signer, ring = (LGWAN_KEY, AT_RELAY) if payload.DIRECTION == env.LGWAN else (RELAY_KEY, AT_LGWAN)
    raw = env.seal(payload, seq=3, signer=signer)
    hostile = reseal({**json.loads(raw), "payload": {**payload.to_wire(), **change}}, signer)
    with pytest.raises(env.EnvelopeError) as opened:
        env.open_envelope(hostile, expect_sender=payload.DIRECTION, keyring=ring)
    assert opened.value.code == "bad_payload" and opened.value.verified is not None


def test_a_phone_account_says_whether_it_may_start_a_check() -> None:
    upsert = env.AccountUpsert(account="s:3", kind="staff", display_name="危機 管理", affiliation="危機管理課",
                               status="active", enrol_token_sha256=None, enrol_expires_at=None, expires_at=None,
                               device_approval=True, safety_manager=True)
    wire = upsert.to_wire()
    assert wire["safety_manager"] is True and env.AccountUpsert.from_wire(wire) == upsert
    for bad in ({**wire, "safety_manager": 1}, {k: v for k, v in wire.items() if k != "safety_manager"}):
        with pytest.raises(env.EnvelopeError):
            env.AccountUpsert.from_wire(bad)
