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
safety.request      LGWAN→relay  a 安否確認 for the phone-registered targets listed (issue 6)
safety.remind       LGWAN→relay  a reminder to the listed phone-registered targets
safety.close        LGWAN→relay  the check is closed: phones stop answering
safety.start        relay→LGWAN  a 安否確認 started on the relay (LGWAN down), with its targets
safety.answer       relay→LGWAN  a phone's answer (the latest answer of a person counts)
file.sanitized      relay→LGWAN  a guest's or phone's file, rebuilt and signed by the sanitizer (issue 3)
file.chunk          relay→LGWAN  the rebuilt bytes of a file.sanitized, in order
==================  ===========  ==========================================================

Files (issue 3, item 9): only the sanitizer's *rebuilt* bytes cross, never the upload. ``file.sanitized``
carries the sanitizer's verdict (signed with the sanitizer's own key, not the relay's; see
``shared/verdict.py``) and its report; ``file.chunk`` envelopes with the same ``job_id`` follow in order
with the bytes. LGWAN stages them, checks the verdict, the SHA-256, the type and the structure, and
only then posts the file. A refusal goes back as ``post.refused`` with the upload's ``origin_id``.

安否確認 (issue 6): ``safety.request`` lists *only* the targets registered for phone use (never the
whole audience, never anybody's answer, never a room); a list longer than ``MAX_SAFETY_MEMBERS``
goes in several envelopes of the same check. ``safety.start`` is the relay's own check, started by
a phone account whose LGWAN role lets it (``account.upsert`` ``safety_manager``); LGWAN creates it
once, keyed on its ``origin_id``. ``safety.answer`` carries its own ``origin_id`` and applies once.
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

from .limits import (
    MAX_DISPLAY_NAME_CHARS,
    MAX_ENVELOPE_BYTES,
    MAX_FILENAME_BYTES,
    MAX_MESSAGE_CHARS,
    MAX_ROOM_NAME_CHARS,
)
from .mynumber import contains_my_number
from .signing import KeyRing, SignatureError, Signer, canonical_json
from .textsafe import clean_text
from .timeutil import parse_iso, to_iso, utcnow
from .verdict import CHUNK_TOKEN_CHARS, MAX_REPORT_TOKEN_CHARS, OUTPUT_TYPES, SIGNATURE_TOKEN_CHARS

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


def count(maximum: int = 2**53 - 1) -> Any:
    return field(metadata={"min": 0, "max": maximum})


def choice(*values: str) -> Any:
    return field(metadata={"choices": values})


def timestamp() -> Any:
    return field(metadata={"timestamp": True})


def token(max_chars: int = 64) -> Any:
    return field(metadata={"token": max_chars})


def digest() -> Any:
    """A SHA-256 as 64 lowercase hex digits."""
    return field(metadata={"sha256": True})


def flag(default: bool | None = None) -> Any:
    # A default only lets the sender omit it when building the object; on the wire it is required.
    if default is None:
        return field(metadata={})
    return field(default=default, metadata={})


def staff_member() -> Any:
    """A staff member as the relay names them: ``s:<id>`` (never a guest)."""
    return field(metadata={"pattern": _STAFF_MEMBER})


def items(item: Any, *, max_items: int, min_items: int = 1) -> Any:
    """A JSON array of distinct strings, each checked like ``item`` (a field such as ``choice(...)``)."""
    return field(metadata={"item": dict(item.metadata), "max_items": max_items, "min_items": min_items})


_TOKEN = re.compile(r"^[A-Za-z0-9_:.-]+$")
_STAFF_MEMBER = re.compile(r"^s:[1-9][0-9]{0,14}$")


@dataclass(frozen=True)
class Payload:
    """Base of every payload. Subclasses set KIND and DIRECTION and declare typed fields."""

    KIND: ClassVar[str] = ""
    DIRECTION: ClassVar[str] = ""   # the sending tier

    def to_wire(self) -> dict[str, Any]:
        wire = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            wire[f.name] = list(value) if isinstance(value, tuple) else value
        return wire

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
        payload = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
        payload.check()
        return payload

    def check(self) -> None:
        """Rules across fields (after each field passed its own); raise EnvelopeError('bad_payload')."""


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
    elif typing.get_origin(base) is tuple:
        if not isinstance(value, list):
            raise EnvelopeError("bad_payload", f"{name}: expected array")
        if not meta["min_items"] <= len(value) <= meta["max_items"]:
            raise EnvelopeError("bad_payload", f"{name}: wrong number of items")
        for item in value:
            if not isinstance(item, str):
                raise EnvelopeError("bad_payload", f"{name}: expected strings")
            _check_str(name, meta["item"], item)
        if len(set(value)) != len(value):
            raise EnvelopeError("bad_payload", f"{name}: repeated item")
    else:
        raise EnvelopeError("bad_payload", f"{name}: unsupported type")


def _check_str(name: str, meta: typing.Mapping[str, Any], value: str) -> None:
    if "choices" in meta:
        if value not in meta["choices"]:
            raise EnvelopeError("bad_payload", f"{name}: not an allowed value")
    elif meta.get("timestamp"):
        if not _TS.match(value):
            raise EnvelopeError("bad_payload", f"{name}: not a UTC timestamp")
    elif "pattern" in meta:
        if not meta["pattern"].match(value):
            raise EnvelopeError("bad_payload", f"{name}: bad member")
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
    # Staff phones only: the LGWAN role (org_admin or safety_manager) lets this person start a
    # 安否確認 on the relay while LGWAN is unreachable (issue 6). LGWAN re-checks it at hand-over.
    safety_manager: bool = flag(False)


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


# --- 安否確認 (issue 6) ------------------------------------------------------------------------------

SAFETY_CONDITIONS = ("safe", "minor", "serious", "need_help")     # 無事 / 軽傷 / 重傷 / 要支援
SAFETY_ATTEND = ("yes", "no", "unknown")                          # 参集可否
SAFETY_QUESTIONS = ("condition", "attend", "eta", "location", "note")
MAX_SAFETY_MEMBERS = 2_000        # targets per envelope; a larger list goes in several envelopes
MAX_SAFETY_TITLE_CHARS = 200
MAX_SAFETY_MESSAGE_CHARS = 2_000
MAX_SAFETY_LOCATION_CHARS = 200
MAX_SAFETY_NOTE_CHARS = 1_000
MAX_SAFETY_ETA_MINUTES = 7 * 24 * 60


def _questions() -> Any:
    return items(choice(*SAFETY_QUESTIONS), max_items=len(SAFETY_QUESTIONS))


def _targets() -> Any:
    return items(staff_member(), max_items=MAX_SAFETY_MEMBERS)


class _AskedQuestions:
    questions: tuple[str, ...]

    def check(self) -> None:
        if "condition" not in self.questions:
            raise EnvelopeError("bad_payload", "questions: condition is always asked")


@dataclass(frozen=True)
class SafetyRequest(_AskedQuestions, Payload):
    """A 安否確認 for the phone-registered targets in ``members`` (all others answer on LGWAN)."""

    KIND: ClassVar[str] = "safety.request"
    DIRECTION: ClassVar[str] = LGWAN
    check_id: int = ident()                   # LGWAN's id
    origin_id: str | None = token()           # the relay's id when the relay started this check
    title: str = text(MAX_SAFETY_TITLE_CHARS)
    message: str = text(MAX_SAFETY_MESSAGE_CHARS, multiline=True, empty=True)
    questions: tuple[str, ...] = _questions()
    started_at: str = timestamp()
    members: tuple[str, ...] = _targets()


@dataclass(frozen=True)
class SafetyRemind(Payload):
    """Remind the listed phone-registered targets (those who have not answered on LGWAN)."""

    KIND: ClassVar[str] = "safety.remind"
    DIRECTION: ClassVar[str] = LGWAN
    check_id: int = ident()
    origin_id: str | None = token()
    members: tuple[str, ...] = _targets()


@dataclass(frozen=True)
class SafetyClose(Payload):
    KIND: ClassVar[str] = "safety.close"
    DIRECTION: ClassVar[str] = LGWAN
    check_id: int = ident()
    origin_id: str | None = token()
    closed_at: str = timestamp()


@dataclass(frozen=True)
class SafetyStart(_AskedQuestions, Payload):
    """A 安否確認 started on the relay by ``started_by`` while LGWAN was unreachable.

    LGWAN creates it once (``safety_checks.origin_id``), re-checking that the starter may start
    one and that every target is active staff registered for phone use.
    """

    KIND: ClassVar[str] = "safety.start"
    DIRECTION: ClassVar[str] = RELAY
    origin_id: str = token()
    started_by: str = staff_member()
    title: str = text(MAX_SAFETY_TITLE_CHARS)
    message: str = text(MAX_SAFETY_MESSAGE_CHARS, multiline=True, empty=True)
    questions: tuple[str, ...] = _questions()
    started_at: str = timestamp()
    members: tuple[str, ...] = _targets()


@dataclass(frozen=True)
class SafetyAnswer(Payload):
    """One phone answer: to LGWAN's check ``check_id`` or to the relay's own ``check_origin_id``."""

    KIND: ClassVar[str] = "safety.answer"
    DIRECTION: ClassVar[str] = RELAY
    origin_id: str = token()                  # this answer's id: applied once on LGWAN
    check_id: int | None = ident()
    check_origin_id: str | None = token()
    member: str = staff_member()
    condition: str = choice(*SAFETY_CONDITIONS)
    attend: str = choice(*SAFETY_ATTEND)
    eta_minutes: int | None = count(MAX_SAFETY_ETA_MINUTES)
    location: str = text(MAX_SAFETY_LOCATION_CHARS, empty=True)
    note: str = text(MAX_SAFETY_NOTE_CHARS, multiline=True, empty=True)
    answered_at: str = timestamp()

    def check(self) -> None:
        if (self.check_id is None) == (self.check_origin_id is None):
            raise EnvelopeError("bad_payload", "exactly one of check_id and check_origin_id")


# --- files (issue 3, item 9) -------------------------------------------------------------------------

@dataclass(frozen=True)
class FileSanitized(Payload):
    """A file a guest or phone uploaded, as the sanitizer rebuilt it; ``chunks`` file.chunk envelopes follow.

    The ``signed_at`` … ``report_sha256`` fields are the sanitizer's verdict, signed by the sanitizer's
    key (``sanitizer_key_id``, ``sanitizer_sig``); the relay can forward it but not make one.
    """

    KIND: ClassVar[str] = "file.sanitized"
    DIRECTION: ClassVar[str] = RELAY
    origin_id: str = token()          # the upload's id on the relay: LGWAN's idempotency key
    room_id: int = ident()
    author: str = token()             # "g:<guest id>" or "s:<staff id>"
    posted_at: str = timestamp()
    thread_root_id: int | None = ident()
    job_id: str = token(32)           # the sanitizer's id for this verdict (32 hex); a verdict is used once
    signed_at: str = timestamp()
    input_sha256: str = digest()      # of the upload, which never crosses
    input_bytes: int = ident()
    output_sha256: str = digest()     # of the rebuilt bytes that follow
    output_bytes: int = ident()
    output_type: str = choice(*OUTPUT_TYPES)
    output_name: str = text(MAX_FILENAME_BYTES)
    report: str = token(MAX_REPORT_TOKEN_CHARS)        # base64url of the report's canonical JSON
    report_sha256: str = digest()
    sanitizer_key_id: str = token(16)
    sanitizer_sig: str = token(SIGNATURE_TOKEN_CHARS)  # base64url Ed25519 signature
    chunks: int = ident()


@dataclass(frozen=True)
class FileChunk(Payload):
    """Part ``index`` (from 0) of the rebuilt bytes of the file.sanitized with this ``job_id``."""

    KIND: ClassVar[str] = "file.chunk"
    DIRECTION: ClassVar[str] = RELAY
    job_id: str = token(32)
    index: int = count()
    data: str = token(CHUNK_TOKEN_CHARS)                # base64url, at most CHUNK_BYTES raw bytes

KINDS: dict[str, type[Payload]] = {
    cls.KIND: cls
    for cls in (RoomUpsert, RoomRemove, MemberUpsert, MemberRemove, MessageNew, MessageEdit, MessageDelete,
                ReceiptOut, AccountUpsert, AccountRemove, DeviceDecision, PostRefused, SafetyRequest, SafetyRemind,
                SafetyClose, RelayPost, ReceiptIn, AccountEnrolled, DeviceRequest, SafetyStart, SafetyAnswer,
                FileSanitized, FileChunk)
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
