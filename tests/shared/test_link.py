"""The link protocol: handshake proofs, strict control frames, and the receiver's verdicts."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from shared import envelope as env
from shared import link
from shared.signing import KeyRing, Signer, TrustedKey, canonical_json
from shared.timeutil import utcnow

LGWAN, RELAY = Signer.generate(), Signer.generate()
AT_RELAY = KeyRing([TrustedKey(LGWAN.public_key)])
AT_LGWAN = KeyRing([TrustedKey(RELAY.public_key)])


def ids() -> dict[str, str]:
    return {"relay_nonce": link.new_nonce(), "lgwan_nonce": link.new_nonce(), "relay_key_id": RELAY.key_id,
            "lgwan_key_id": LGWAN.key_id}


def test_both_sides_prove_their_key_for_this_handshake() -> None:
    i = ids()
    link.check_proof(AT_RELAY, "lgwan", link.prove(LGWAN, "lgwan", **i), **i)
    link.check_proof(AT_LGWAN, "relay", link.prove(RELAY, "relay", **i), **i)


@pytest.mark.parametrize("case", ["other_nonce", "other_role", "other_key", "envelope_purpose"])
def test_a_proof_does_not_transfer(case: str) -> None:
    i = ids()
    proof = link.prove(LGWAN, "lgwan", **i)
    if case == "other_nonce":
        i = {**i, "relay_nonce": link.new_nonce()}          # a recorded handshake replayed to a new challenge
    elif case == "other_role":
        proof = link.prove(LGWAN, "relay", **i)
    elif case == "other_key":
        proof = link.prove(Signer.generate(), "lgwan", **i)
    else:       # a signature made for an envelope is no handshake proof (distinct purpose)
        proof = LGWAN.sign(env.PURPOSE, {"role": "lgwan", **i})
    with pytest.raises(link.LinkError) as info:
        link.check_proof(AT_RELAY, "lgwan", proof, **i)
    assert info.value.code == "auth_bad_signature"


def test_unknown_key_is_refused() -> None:
    i = {**ids(), "lgwan_key_id": "0" * 16}
    with pytest.raises(link.LinkError) as info:
        link.check_proof(AT_RELAY, "lgwan", link.prove(LGWAN, "lgwan", **i), **i)
    assert info.value.code == "auth_unknown_key"


@pytest.mark.parametrize(("text", "code"), [
    ('{"type":"ack","seq":1,"x":2}', "control_bad_structure"),
    ('{"type":"ack","seq":true}', "control_bad_structure"),
    ('{"type":"ack","seq":-1}', "control_bad_structure"),
    ('{"type":"ack","seq":"1"}', "control_bad_structure"),
    ('{"type":"welcome","proof":"x","epoch":"e","ack":0}', "control_unexpected"),
    ('{"type":"shell","cmd":"rm"}', "control_unexpected"),
    ("[1]", "control_bad_structure"),
    ("{", "control_not_json"),
    ('{"type":"ack","seq":1}' + " " * 5000, "control_too_large"),
    ('{"type":"challenge","v":2,"nonce":"n","key_id":"k"}', "control_bad_version"),
])
def test_control_frames_are_strict(text: str, code: str) -> None:
    with pytest.raises(link.LinkError) as info:
        link.parse_control(text, expect=("ack", "challenge", "reject"))
    assert info.value.code == code


def test_control_round_trip() -> None:
    assert link.parse_control(link.control("ack", seq=7), expect=("ack",)) == {"type": "ack", "seq": 7}
    assert link.parse_control(link.control("reject", seq=None, code="gap"), expect=("reject",))["seq"] is None


def post(origin: str = "g:1:a", body: str = "了解です") -> env.RelayPost:
    return env.RelayPost(origin_id=origin, room_id=1, author="g:1", body=body, posted_at="2026-04-01T00:00:00.000Z",
                         thread_root_id=None)


async def verdict(raw: bytes, applied: int = 0, known: dict[int, str] | None = None) -> link.Verdict:
    async def applied_id(seq: int) -> str | None:
        return (known or {}).get(seq)
    return await link.judge(raw, expect_sender=env.RELAY, keyring=AT_LGWAN, skew=timedelta(minutes=5),
                            applied_seq=applied, applied_id=applied_id)


async def test_verdicts() -> None:
    first = env.seal(post(), seq=1, signer=RELAY)
    v = await verdict(first)
    assert v.action == link.APPLY and v.envelope is not None and v.envelope.payload == post()
    first_id = json.loads(first)["id"]
    replay = await verdict(first, applied=1, known={1: first_id})
    assert (replay.action, replay.code) == (link.DUPLICATE, "replay")
    rewind = await verdict(env.seal(post("g:1:b"), seq=1, signer=RELAY), applied=1, known={1: first_id})
    assert (rewind.action, rewind.code) == (link.REJECT, "rewind")
    gap = await verdict(env.seal(post(), seq=3, signer=RELAY), applied=1)
    assert (gap.action, gap.code, gap.seq) == (link.REJECT, "gap", 3)
    # Signed by the peer and next in line, but the payload breaks the schema: consumed, never applied.
    obj = json.loads(env.seal(post(), seq=2, signer=RELAY))
    obj["payload"]["body"] = "<script>alert(1)</script>"
    obj.pop("sig")
    obj["sig"] = RELAY.sign(env.PURPOSE, obj)
    bad = await verdict(canonical_json(obj), applied=1)
    assert (bad.action, bad.code, bad.seq) == (link.CONSUME, "bad_payload", 2) and bad.envelope is None
    # A stale envelope is rejected even though its signature is good: it may be re-sealed, not consumed.
    stale = await verdict(env.seal(post(), seq=2, signer=RELAY, now=utcnow() - timedelta(minutes=6)), applied=1)
    assert (stale.action, stale.code) == (link.REJECT, "clock_skew")
    forged = await verdict(first.replace("了解".encode(), "拒否".encode()))
    assert (forged.action, forged.code, forged.seq) == (link.REJECT, "bad_signature", None)
