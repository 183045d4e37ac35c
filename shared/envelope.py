"""Signed envelopes: the only thing that crosses between the LGWAN server and the relay.

Wire form (one JSON object, UTF-8, at most ``MAX_ENVELOPE_BYTES``)::

    {"v": 1, "kind": "message.new", "id": "<32 hex>", "sender": "lgwan", "seq": 17,
     "ts": "2026-04-01T00:00:00.000Z", "key_id": "<16 hex>", "payload": {...}, "sig": "<base64>"}

``sig`` is Ed25519 over ``PURPOSE NUL canonical-JSON(everything but sig)``. ``open_envelope``
checks, in this order, and stops at the first failure: size, strict JSON (no duplicate keys, no
floats, no NaN), exact top-level structure, version, sender and ``kind`` against the direction's
allow-list, the signature, the clock-skew window, then the payload against its kind's schema
(unknown fields rejected). Sequence and replay are the receiver's stateful check
(``classify_seq``). Every failure carries a stable ``code`` for the audit log.

``ts`` is the moment of *sealing*, not of the state change: the sender keeps the payload in its
durable outbox and signs it afresh each time it (re)transmits, so an envelope queued through a
long outage still passes the skew window, while a captured one goes stale within minutes. The
envelope ``id`` is fixed when the payload enters the outbox and stays the same across
retransmissions.

Every kind and its direction (the allow-lists below are built from the ``DIRECTION`` of each class):

==================  ===========  ==========================================================
kind                direction    meaning
==================  ===========  ==========================================================
room.upsert         LGWAN→relay  a room whose policy lets it cross (staff_mobile or guests)
room.remove         LGWAN→relay  the room stops crossing: the relay purges it
member.upsert       LGWAN→relay  a member of a crossing room (display name and 所属 only)
member.remove       LGWAN→relay  a member left or was removed
message.new         LGWAN→relay  a message in a crossing room (text only)
message.edit        LGWAN→relay  an edit of such a message
message.delete      LGWAN→relay  a tombstone
receipt.lgwan       LGWAN→relay  a read cursor moved on LGWAN (既読)
account.upsert      LGWAN→relay  a guest or staff-phone account, its status and enrolment token hash
account.remove      LGWAN→relay  the account ends (removed, expired, mobile use revoked)
device.decision     LGWAN→relay  an admin approved or revoked a registered device
post.refused        LGWAN→relay  LGWAN refused a relay post (the author is told why)
relay.post          relay→LGWAN  text posted by a guest or a staff phone
receipt.relay       relay→LGWAN  a guest's or phone's read cursor moved
account.enrolled    relay→LGWAN  password and TOTP set (and, for guests, 利用目的 acknowledged)
device.request      relay→LGWAN  a login from an unregistered device waits for approval
==================  ===========  ==========================================================
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from .limits import MAX_DISPLAY_NAME_CHARS, MAX_ENVELOPE_BYTES, MAX_MESSAGE_CHARS, MAX_ROOM_NAME_CHARS
from .mynumber import contains_my_number
from .signing import KeyRing, SignatureError, Signer, canonical_json
from .textsafe import clean_text
from .timeutil import parse_iso, to_iso, utcnow

VERSION = 1
PURPOSE = "kakehashi/queue/v1"
LGWAN, RELAY = "lgwan", "relay"
DEFAULT_SKEW = timedelta(minutes=5)
_TOP_KEYS = frozenset({"v", "kind", "id", "sender", "seq", "ts", "key_id", "payload", "sig"})
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")
_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Text that crosses is plain text; anything that looks like markup is refused, not "cleaned",
# because the receiver must not alter signed content.
_MARKUP = re.compile(r"<\s*[A-Za-z/!?]")


class EnvelopeError(Exception):
    """Rejected envelope. ``code`` is stable and goes to the audit log; nothing is applied.

    ``verified`` is set when the failure came *after* the signature verified (clock skew, payload
    schema): the header then really is the peer's, and the receiver may trust its ``seq``.
    """

    def __init__(self, code: str, message: str = "", *, verified: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.verified = verified


# --- field constraints ---------------------------------------------------------------------------

def text(max_chars: int, *, multiline: bool = False, empty: bool = False) -> Any:
    return field(metadata={"max": max_chars, "multiline": multiline, "empty": empty})


def ident() -> Any:
    return field(metadata={"min": 1, "max": 2**53 - 1})


def count() -> Any:
    return field(metadata={"min": 0, "max": 2**53 - 1})


def choice(*values: str) -> Any:
    return field(metadata={"choices": values})


def timestamp() -> Any:
    return field(metadata={"timestamp": True})


def token(max_chars: int = 64) -> Any:
    return field(metadata={"token": max_chars})


def digest() -> Any:
    """A SHA-256 as 64 lowercase hex digits."""
    return field(metadata={"sha256": True})


def flag() -> Any:
    return field(metadata={})


_TOKEN = re.compile(r"^[A-Za-z0-9_:.-]+$")


@dataclass(frozen=True)
class Payload:
    """Base of every payload. Subclasses set KIND and DIRECTION and declare typed fields."""

    KIND: ClassVar[str] = ""
    DIRECTION: ClassVar[str] = ""   # the sending tier

    def to_wire(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_wire(cls, data: Any) -> Payload:
        if not isinstance(data, dict):
            raise EnvelopeError("bad_payload", "payload must be an object")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if unknown := set(data) - set(fields):
            raise EnvelopeError("bad_payload", f"unknown fields: {sorted(unknown)[:5]}")
        if missing := set(fields) - set(data):
            raise EnvelopeError("bad_payload", f"missing fields: {sorted(missing)[:5]}")
        hints = _hints(cls)
        for name, f in fields.items():
            _check_value(name, hints[name], f.metadata, data[name])
        return cls(**data)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    # get_type_hints() re-evaluates string annotations on every call; the receiver checks every
    # envelope, so resolve each class once.
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _check_value(name: str, hint: Any, meta: typing.Mapping[str, Any], value: Any) -> None:
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)
    if value is None:
        if optional:
            return
        raise EnvelopeError("bad_payload", f"{name}: null not allowed")
    base = next(a for a in typing.get_args(hint) if a is not type(None)) if optional else hint
    if base is bool:
        if not isinstance(value, bool):
            raise EnvelopeError("bad_payload", f"{name}: expected boolean")
    elif base is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise EnvelopeError("bad_payload", f"{name}: expected integer")
        if not meta.get("min", -(2**53)) <= value <= meta.get("max", 2**53):
            raise EnvelopeError("bad_payload", f"{name}: out of range")
    elif base is str:
        if not isinstance(value, str):
            raise EnvelopeError("bad_payload", f"{name}: expected string")
        _check_str(name, meta, value)
    else:
        raise EnvelopeError("bad_payload", f"{name}: unsupported type")


def _check_str(name: str, meta: typing.Mapping[str, Any], value: str) -> None:
    if "choices" in meta:
        if value not in meta["choices"]:
            raise EnvelopeError("bad_payload", f"{name}: not an allowed value")
    elif meta.get("timestamp"):
        if not _TS.match(value):
            raise EnvelopeError("bad_payload", f"{name}: not a UTC timestamp")
    elif "token" in meta:
        if not 1 <= len(value) <= meta["token"] or not _TOKEN.match(value):
            raise EnvelopeError("bad_payload", f"{name}: bad token")
    elif meta.get("sha256"):
        if not _SHA256.match(value):
            raise EnvelopeError("bad_payload", f"{name}: not a SHA-256")
    else:
        if len(value) > meta.get("max", 0):
            raise EnvelopeError("bad_payload", f"{name}: too long")
        if not value and not meta.get("empty"):
            raise EnvelopeError("bad_payload", f"{name}: empty")
        problem = crossing_text_problem(value, multiline=meta.get("multiline", False))
        if problem is not None:
            raise EnvelopeError("bad_payload", f"{name}: {problem}")


def crossing_text_problem(value: str, *, multiline: bool = True) -> str | None:
    """Why ``value`` may not cross the queue, as a stable code, or None when it may.

    The same rule the receiver applies, so a sender (the staff post path, the relay's guest post
    path) can refuse with a clear message *before* anything is written.
    ``control_chars``: control or bidi-override characters, or text not in NFC.
    ``markup``: something that looks like an HTML/XML tag.
    ``my_number``: a 12-digit 個人番号 with a valid check digit (acceptance statement 16).
    """
    if clean_text(value, multiline=multiline) != value:
        return "control_chars"
    if _MARKUP.search(value):
        return "markup"
    if contains_my_number(value):
        return "my_number"
    return None


# --- kinds: LGWAN → relay --------------------------------------------------------------------------

@dataclass(frozen=True)
class RoomUpsert(Payload):
    """A room whose crossing policy lets it reach the relay (never lgwan_only)."""

    KIND: ClassVar[str] = "room.upsert"
    DIRECTION: ClassVar[str] = LGWAN
    room_id: int = ident()
    name: str = text(MAX_ROOM_NAME_CHARS)
    policy: str = choice("staff_mobile", "guests")


@dataclass(frozen=True)
class RoomRemove(Payload):
    """The room no longer crosses (policy changed to lgwan_only, archived or deleted): purge it."""

    KIND: ClassVar[str] = "room.remove"
    DIRECTION: ClassVar[str] = LGWAN
    room_id: int = ident()


@dataclass(frozen=True)
class MemberUpsert(Payload):
    KIND: ClassVar[str] = "member.upsert"
    DIRECTION: ClassVar[str] = LGWAN
    room_id: int = ident()
    member: str = token()            # "s:<staff id>" or "g:<guest id>"
    display_name: str = text(MAX_DISPLAY_NAME_CHARS)
    affiliation: str = text(200, empty=True)


@dataclass(frozen=True)
class MemberRemove(Payload):
    KIND: ClassVar[str] = "member.remove"
    DIRECTION: ClassVar[str] = LGWAN
    room_id: int = ident()
    member: str = token()


@dataclass(frozen=True)
class MessageNew(Payload):
    KIND: ClassVar[str] = "message.new"
    DIRECTION: ClassVar[str] = LGWAN
    message_id: int = ident()
    room_id: int = ident()
    seq: int = ident()
    sender: str = token()
    sender_name: str = text(MAX_DISPLAY_NAME_CHARS)
    sender_affiliation: str = text(200, empty=True)
    body: str = text(MAX_MESSAGE_CHARS, multiline=True, empty=True)
    created_at: str = timestamp()
    thread_root_id: int | None = ident()
    origin_id: str | None = token()   # the relay's client id when the message came from the relay
    attachments: int = count()        # files stay on LGWAN; the relay only says how many there are


@dataclass(frozen=True)
class MessageEdit(Payload):
    KIND: ClassVar[str] = "message.edit"
    DIRECTION: ClassVar[str] = LGWAN
    message_id: int = ident()
    room_id: int = ident()
    body: str = text(MAX_MESSAGE_CHARS, multiline=True)
    edited_at: str = timestamp()


@dataclass(frozen=True)
class MessageDelete(Payload):
    KIND: ClassVar[str] = "message.delete"
    DIRECTION: ClassVar[str] = LGWAN
    message_id: int = ident()
    room_id: int = ident()


@dataclass(frozen=True)
class ReceiptOut(Payload):
    """A staff member's read cursor moved in a crossing room (so guests see 既読)."""

    KIND: ClassVar[str] = "receipt.lgwan"
    DIRECTION: ClassVar[str] = LGWAN
    room_id: int = ident()
    member: str = token()
    seq: int = count()


@dataclass(frozen=True)
class AccountUpsert(Payload):
    """A guest (``g:<id>``) or staff-phone (``s:<id>``) account the relay may let in.

    The enrolment token itself never crosses: LGWAN shows it once to the person who hands the
    link over, and sends only its SHA-256, so neither the queue nor a copy of the relay's
    database can be used to enrol.
    """

    KIND: ClassVar[str] = "account.upsert"
    DIRECTION: ClassVar[str] = LGWAN
    account: str = token()
    kind: str = choice("guest", "staff")
    display_name: str = text(MAX_DISPLAY_NAME_CHARS)
    affiliation: str = text(200, empty=True)
    # invited: may enrol, nothing else; enrolled: credentials set, waiting for the owner (届け出制);
    # active: may read and post; suspended: may not log in
    status: str = choice("invited", "enrolled", "active", "suspended")
    enrol_token_sha256: str | None = digest()
    enrol_expires_at: str | None = timestamp()
    expires_at: str | None = timestamp()
    device_approval: bool = flag()    # a login from an unregistered device waits for an admin


@dataclass(frozen=True)
class AccountRemove(Payload):
    KIND: ClassVar[str] = "account.remove"
    DIRECTION: ClassVar[str] = LGWAN
    account: str = token()


@dataclass(frozen=True)
class DeviceDecision(Payload):
    KIND: ClassVar[str] = "device.decision"
    DIRECTION: ClassVar[str] = LGWAN
    account: str = token()
    device_id: str = token()
    decision: str = choice("approved", "revoked")


@dataclass(frozen=True)
class PostRefused(Payload):
    """LGWAN did not accept a relay post (e.g. the author left the room meanwhile)."""

    KIND: ClassVar[str] = "post.refused"
    DIRECTION: ClassVar[str] = LGWAN
    origin_id: str = token()
    room_id: int = ident()
    code: str = token()


# --- kinds: relay → LGWAN --------------------------------------------------------------------------

@dataclass(frozen=True)
class RelayPost(Payload):
    """Text posted on the relay by a guest or a registered staff phone."""

    KIND: ClassVar[str] = "relay.post"
    DIRECTION: ClassVar[str] = RELAY
    origin_id: str = token()          # relay-side unique id: the idempotency key on LGWAN
    room_id: int = ident()
    author: str = token()             # "g:<guest id>" or "s:<staff id>"
    body: str = text(MAX_MESSAGE_CHARS, multiline=True)
    posted_at: str = timestamp()
    thread_root_id: int | None = ident()


@dataclass(frozen=True)
class ReceiptIn(Payload):
    KIND: ClassVar[str] = "receipt.relay"
    DIRECTION: ClassVar[str] = RELAY
    room_id: int = ident()
    member: str = token()
    seq: int = count()


@dataclass(frozen=True)
class AccountEnrolled(Payload):
    """The person behind an enrolment link set a password and TOTP on the relay.

    For a guest this also records that the organisation's 利用目的 notice (identified by its
    SHA-256) was shown and acknowledged (acceptance statement 17).
    """

    KIND: ClassVar[str] = "account.enrolled"
    DIRECTION: ClassVar[str] = RELAY
    account: str = token()
    privacy_notice_sha256: str | None = digest()
    acknowledged_at: str = timestamp()


@dataclass(frozen=True)
class DeviceRequest(Payload):
    KIND: ClassVar[str] = "device.request"
    DIRECTION: ClassVar[str] = RELAY
    account: str = token()
    device_id: str = token()
    label: str = text(100, empty=True)   # e.g. "iPhone Safari", from the User-Agent
    requested_at: str = timestamp()


KINDS: dict[str, type[Payload]] = {
    cls.KIND: cls
    for cls in (RoomUpsert, RoomRemove, MemberUpsert, MemberRemove, MessageNew, MessageEdit, MessageDelete,
                ReceiptOut, AccountUpsert, AccountRemove, DeviceDecision, PostRefused,
                RelayPost, ReceiptIn, AccountEnrolled, DeviceRequest)
}
LGWAN_TO_RELAY = frozenset(k for k, c in KINDS.items() if c.DIRECTION == LGWAN)
RELAY_TO_LGWAN = frozenset(k for k, c in KINDS.items() if c.DIRECTION == RELAY)
ALLOWED = {LGWAN: LGWAN_TO_RELAY, RELAY: RELAY_TO_LGWAN}


# --- sealing and opening --------------------------------------------------------------------------

@dataclass(frozen=True)
class Envelope:
    kind: str
    id: str
    sender: str
    seq: int
    ts: str
    key_id: str
    payload: Payload

    def header(self) -> dict[str, Any]:
        return {"v": VERSION, "kind": self.kind, "id": self.id, "sender": self.sender, "seq": self.seq,
                "ts": self.ts, "key_id": self.key_id}


def new_id() -> str:
    return secrets.token_hex(16)


def payload_from_json(kind: str, text_value: str) -> Payload:
    """Rebuild a payload kept in a durable outbox (stored as canonical JSON) for sealing."""
    cls = KINDS.get(kind)
    if cls is None:
        raise EnvelopeError("kind_not_allowed", kind[:40])
    return cls.from_wire(json.loads(text_value))


def payload_json(payload: Payload) -> str:
    """The canonical JSON of a payload, as an outbox stores it."""
    return canonical_json(payload.to_wire()).decode("utf-8")


def seal(payload: Payload, *, seq: int, signer: Signer, envelope_id: str | None = None,
         now: datetime | None = None) -> bytes:
    """Sign a payload as the next envelope of its direction; returns the wire bytes."""
    if payload.KIND not in ALLOWED.get(payload.DIRECTION, ()):
        raise EnvelopeError("kind_not_allowed", payload.KIND)
    type(payload).from_wire(payload.to_wire())   # the sender checks what the receiver will check
    body: dict[str, Any] = {"v": VERSION, "kind": payload.KIND, "id": envelope_id or new_id(),
                            "sender": payload.DIRECTION, "seq": seq, "ts": to_iso(now or utcnow()),
                            "key_id": signer.key_id, "payload": payload.to_wire()}
    body["sig"] = signer.sign(PURPOSE, body)
    raw = canonical_json(body)
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise EnvelopeError("too_large", f"{len(raw)} bytes")
    return raw


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise EnvelopeError("not_json", "duplicate key")
        out[key] = value
    return out


def _no_float(text_value: str) -> Any:
    raise EnvelopeError("not_json", "floats are not allowed")


def _no_constant(text_value: str) -> Any:
    raise EnvelopeError("not_json", "NaN/Infinity are not allowed")


def open_envelope(raw: bytes, *, expect_sender: str, keyring: KeyRing, skew: timedelta = DEFAULT_SKEW,
                  now: datetime | None = None) -> Envelope:
    """Verify and parse one envelope from ``expect_sender``; raise EnvelopeError otherwise."""
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise EnvelopeError("too_large", f"{len(raw)} bytes")
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EnvelopeError("not_utf8") from exc
    try:
        obj = json.loads(decoded, object_pairs_hook=_strict_object, parse_float=_no_float,
                         parse_constant=_no_constant)
    except EnvelopeError:
        raise
    except (ValueError, RecursionError) as exc:
        raise EnvelopeError("not_json") from exc
    if not isinstance(obj, dict) or set(obj) != _TOP_KEYS:
        raise EnvelopeError("bad_structure", "wrong top-level fields")
    if obj["v"] != VERSION or isinstance(obj["v"], bool):
        raise EnvelopeError("bad_version")
    if obj["sender"] != expect_sender:
        raise EnvelopeError("wrong_sender")
    kind = obj["kind"]
    if not isinstance(kind, str) or kind not in ALLOWED[expect_sender]:
        raise EnvelopeError("kind_not_allowed", str(kind)[:40])
    if not (isinstance(obj["id"], str) and _HEX32.match(obj["id"])):
        raise EnvelopeError("bad_structure", "id")
    if not isinstance(obj["seq"], int) or isinstance(obj["seq"], bool) or not 1 <= obj["seq"] < 2**53:
        raise EnvelopeError("bad_structure", "seq")
    if not (isinstance(obj["ts"], str) and _TS.match(obj["ts"])):
        raise EnvelopeError("bad_structure", "ts")
    if not (isinstance(obj["key_id"], str) and _HEX16.match(obj["key_id"])):
        raise EnvelopeError("bad_structure", "key_id")
    if not isinstance(obj["sig"], str):
        raise EnvelopeError("bad_structure", "sig")
    signed = {k: v for k, v in obj.items() if k != "sig"}
    try:
        keyring.verify(PURPOSE, signed, obj["sig"], obj["key_id"], now)
    except SignatureError as exc:
        raise EnvelopeError(exc.code) from exc
    except ValueError as exc:   # canonicalisation refused the content
        raise EnvelopeError("bad_structure", str(exc)) from exc
    header = {k: obj[k] for k in ("kind", "id", "seq", "ts")}
    moment = now or utcnow()
    if abs(parse_iso(obj["ts"]) - moment) > skew:
        raise EnvelopeError("clock_skew", verified=header)
    try:
        payload = KINDS[kind].from_wire(obj["payload"])
    except EnvelopeError as exc:
        raise EnvelopeError(exc.code, str(exc), verified=header) from None
    return Envelope(kind, obj["id"], obj["sender"], obj["seq"], obj["ts"], obj["key_id"], payload)


def classify_seq(last_applied: int, seq: int) -> str:
    """``'next'`` to apply, ``'duplicate'`` (already applied: ack, do nothing) or ``'gap'`` (refuse)."""
    if seq == last_applied + 1:
        return "next"
    if seq <= last_applied:
        return "duplicate"
    return "gap"
