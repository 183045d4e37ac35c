"""The queue link between the tiers: who may speak, the handshake, control frames, and what a
receiver does with each envelope. No transport here: each tier runs this over a WebSocket that
the LGWAN side always opens (the relay has no code path that connects anywhere).

Handshake, before any envelope flows (text frames)::

    relay → lgwan  {"type": "challenge", "v": 1, "nonce": N1, "key_id": <relay key id>}
    lgwan → relay  {"type": "auth", "v": 1, "nonce": N2, "key_id": <lgwan key id>, "proof": P_lgwan}
    relay → lgwan  {"type": "welcome", "proof": P_relay, "epoch": E, "ack": A1}
    lgwan → relay  {"type": "ready", "ack": A2, "reset": false}

``P_role`` is Ed25519 under ``LINK_PURPOSE`` (distinct from the envelope purpose) over
``{"role", "relay_nonce", "lgwan_nonce", "relay_key_id", "lgwan_key_id"}``. The relay checks the
LGWAN proof with its installed LGWAN key and closes otherwise, so nobody else can pull guest
messages; the LGWAN side checks the relay's proof, so an impostor relay learns nothing either.
Both nonces are fresh, so a recorded handshake cannot be replayed.

``E`` is the relay's instance id (new when its database is created). ``A1`` is the highest
LGWAN→relay seq the relay has applied, ``A2`` the highest relay→LGWAN seq LGWAN has applied;
each sender resumes from the peer's ack + 1 out of its durable outbox, so after a crash of
either side nothing is lost and, in normal operation, nothing arrives twice. ``reset`` tells the
relay that LGWAN is rebuilding its copy (new epoch, or the two histories diverged after a
restore): the relay drops its mirrored rooms and restarts the inbound sequence at 0.

Then both directions stream at once: binary frames are envelopes (``shared.envelope``); text
frames are ``{"type": "ack", "seq": N}`` (cumulative: everything up to N is applied) and
``{"type": "reject", "seq": N | null, "code": C}`` sent just before the receiver closes the link.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .envelope import Envelope, EnvelopeError, classify_seq, open_envelope
from .signing import KeyRing, SignatureError, Signer

LINK_PURPOSE = "kakehashi/link/v1"
LINK_VERSION = 1
MAX_CONTROL_BYTES = 4096
# A sender keeps at most this many envelopes unacknowledged on the wire.
WINDOW = 512
# WebSocket close codes (4000–4999 are ours).
CLOSE_AUTH_FAILED = 4401
CLOSE_REJECTED = 4400       # the receiver refused an envelope; the sender resumes from the last ack
CLOSE_REPLACED = 4409       # a newer authenticated link took over
CLOSE_PAUSED = 4503         # an admin cut the link on the LGWAN side

_FRAMES: dict[str, dict[str, type | tuple[type, ...]]] = {
    "challenge": {"v": int, "nonce": str, "key_id": str},
    "auth": {"v": int, "nonce": str, "key_id": str, "proof": str},
    "welcome": {"proof": str, "epoch": str, "ack": int},
    "ready": {"ack": int, "reset": bool},
    "ack": {"seq": int},
    "reject": {"seq": (int, type(None)), "code": str},
}


class LinkError(Exception):
    """The link cannot continue. ``code`` is stable and goes to the audit log."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code


def new_nonce() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def new_epoch() -> str:
    return secrets.token_hex(16)


def _proof_content(role: str, relay_nonce: str, lgwan_nonce: str, relay_key_id: str,
                   lgwan_key_id: str) -> dict[str, str]:
    return {"role": role, "relay_nonce": relay_nonce, "lgwan_nonce": lgwan_nonce, "relay_key_id": relay_key_id,
            "lgwan_key_id": lgwan_key_id}


def prove(signer: Signer, role: str, *, relay_nonce: str, lgwan_nonce: str, relay_key_id: str,
          lgwan_key_id: str) -> str:
    """This tier's answer to the handshake: a signature binding both nonces and both key ids."""
    return signer.sign(LINK_PURPOSE, _proof_content(role, relay_nonce, lgwan_nonce, relay_key_id, lgwan_key_id))


def check_proof(keyring: KeyRing, role: str, proof: str, *, relay_nonce: str, lgwan_nonce: str, relay_key_id: str,
                lgwan_key_id: str, now: datetime | None = None) -> None:
    """Raise LinkError unless ``proof`` was made by a trusted peer key for this very handshake."""
    signer_key = lgwan_key_id if role == "lgwan" else relay_key_id
    try:
        keyring.verify(LINK_PURPOSE, _proof_content(role, relay_nonce, lgwan_nonce, relay_key_id, lgwan_key_id),
                       proof, signer_key, now)
    except SignatureError as exc:
        raise LinkError("auth_" + exc.code) from exc
    except ValueError as exc:
        raise LinkError("auth_bad_structure", str(exc)) from exc


def control(type_: str, **fields: Any) -> str:
    """A control frame as text (checked against the same schema the receiver uses)."""
    frame = {"type": type_, **fields}
    parse_control(json.dumps(frame), expect=(type_,))
    return json.dumps(frame, separators=(",", ":"))


def parse_control(text: str, *, expect: tuple[str, ...]) -> dict[str, Any]:
    """Parse one control frame strictly: size, JSON, a type from ``expect``, exact fields and types."""
    if len(text) > MAX_CONTROL_BYTES:
        raise LinkError("control_too_large")
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise LinkError("control_not_json") from exc
    if not isinstance(frame, dict):
        raise LinkError("control_bad_structure")
    type_ = frame.get("type")
    if type_ not in expect or type_ not in _FRAMES:
        raise LinkError("control_unexpected", str(type_)[:40])
    schema = _FRAMES[type_]
    if set(frame) != set(schema) | {"type"}:
        raise LinkError("control_bad_structure", f"fields of {type_}")
    for key, kind in schema.items():
        value = frame[key]
        if isinstance(value, bool) and kind is not bool:
            raise LinkError("control_bad_structure", key)
        if not isinstance(value, kind):
            raise LinkError("control_bad_structure", key)
        if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value < 2**53:
            raise LinkError("control_bad_structure", key)
        if isinstance(value, str) and len(value) > 200:
            raise LinkError("control_bad_structure", key)
    if type_ in ("challenge", "auth") and frame["v"] != LINK_VERSION:
        raise LinkError("control_bad_version")
    return frame


# --- what the receiver does with one envelope --------------------------------------------------

APPLY = "apply"            # the next envelope in sequence: apply it and the inbox record in one transaction
CONSUME = "consume"        # signed by the peer and next in sequence, but its payload breaks the schema:
                           # record and audit it as refused, apply nothing, and move on (so one bad
                           # envelope cannot block the queue forever)
DUPLICATE = "duplicate"    # already applied: acknowledge again, apply nothing, audit as a replay
REJECT = "reject"          # cannot be trusted or is out of order: audit, tell the peer, close the link


@dataclass(frozen=True)
class Verdict:
    action: str
    code: str                      # '' for APPLY; otherwise the audit code
    seq: int | None                # the envelope's seq when it can be believed (signature verified)
    envelope_id: str | None
    kind: str | None
    envelope: Envelope | None = None
    detail: str = ""


async def judge(raw: bytes, *, expect_sender: str, keyring: KeyRing, skew: timedelta, applied_seq: int,
                applied_id: Callable[[int], Awaitable[str | None]], now: datetime | None = None) -> Verdict:
    """Decide what to do with one received envelope (see the action constants above).

    ``applied_id(seq)`` returns the id of the envelope applied at ``seq`` (from the inbox), so a
    resent envelope (same id: a replay) is told apart from a different one claiming an
    already-used number (a rewind: refused).
    """
    try:
        env = open_envelope(raw, expect_sender=expect_sender, keyring=keyring, skew=skew, now=now)
    except EnvelopeError as exc:
        head = exc.verified
        if head is None or exc.code == "clock_skew":
            return Verdict(REJECT, exc.code, None, None, None, detail=str(exc)[:200])
        seq, env_id, kind = int(head["seq"]), str(head["id"]), str(head["kind"])
        position = classify_seq(applied_seq, seq)
        if position == "next":
            return Verdict(CONSUME, exc.code, seq, env_id, kind, detail=str(exc)[:200])
        if position == "gap":
            return Verdict(REJECT, "gap", seq, env_id, kind, detail=f"expected {applied_seq + 1}")
        return await _duplicate(seq, env_id, kind, applied_id)
    position = classify_seq(applied_seq, env.seq)
    if position == "next":
        return Verdict(APPLY, "", env.seq, env.id, env.kind, env)
    if position == "gap":
        return Verdict(REJECT, "gap", env.seq, env.id, env.kind, detail=f"expected {applied_seq + 1}")
    return await _duplicate(env.seq, env.id, env.kind, applied_id)


async def _duplicate(seq: int, env_id: str, kind: str, applied_id: Callable[[int], Awaitable[str | None]]) -> Verdict:
    known = await applied_id(seq)
    if known is not None and known != env_id:
        return Verdict(REJECT, "rewind", seq, env_id, kind, detail="another envelope was applied at this seq")
    return Verdict(DUPLICATE, "replay", seq, env_id, kind)
