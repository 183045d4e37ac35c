"""The sanitizer's signed verdict, the report that travels with it, and the sanitizer service's wire protocol.

Issue 3, item 9 (invariant 3): no file from the internet side reaches LGWAN unless the sanitizer
rebuilt it; the original never crosses; the LGWAN side verifies the sanitizer's signature and
re-checks the file. This module is the contract between the three parties:

* the **sanitizer service** (``python -m sanitizer serve``, its own user, no network) rebuilds a file
  and signs a :class:`Verdict` with *its own* Ed25519 key under :data:`PURPOSE`;
* the **relay** only forwards the rebuilt bytes with the verdict and the report. It never holds the
  sanitizer key, so a compromised relay cannot forge a verdict for bytes the sanitizer did not make;
* the **LGWAN side** trusts the sanitizer's public key (installed by fingerprint with
  ``kakehashi-keys install-peer``), checks the signature, the SHA-256 and size of the bytes it got,
  the report's digest, and then re-checks type and structure in a confined worker.

Signed content (canonical JSON, see ``shared.signing``), under the purpose ``kakehashi/sanitizer/v1``
(so no envelope or link proof signature can ever be replayed as a verdict, nor the reverse)::

    {"v": 1, "job_id": <32 hex>, "signed_at": <UTC ts>, "input_sha256", "input_bytes",
     "output_sha256", "output_bytes", "output_type", "output_name", "report_sha256"}

``report_sha256`` is the SHA-256 of the canonical JSON of the report (``sanitizer.report.Report
.to_dict()`` with ``elapsed_ms`` as an integer), so the report shown to staff is covered too.

Service protocol (one request per connection on a Unix socket; both directions use one frame,
``b"KSV1"``, a big-endian u32 header length, a JSON header, then ``header["size"]`` raw bytes)::

    → {"v": 1, "op": "sanitize", "name": "申請書.pdf", "size": N}   + N bytes (the upload)
    ← {"v": 1, "status": "rebuilt", "code": "ok", "report": {...}, "verdict": {...}, "size": M} + M bytes
    ← {"v": 1, "status": "refused", "code": "pdf_encrypted", "report": {...}, "size": 0}
    → {"v": 1, "op": "verify", "kind": "pdf", "size": N}            + N bytes (a rebuilt file)
    ← {"v": 1, "status": "verified" | "refused", "code": "ok" | <code>, "detail": "...", "size": 0}
    ← {"v": 1, "status": "error", "code": "bad_request" | "busy", "size": 0}
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import re
import secrets
import struct
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .signing import KeyRing, SignatureError, Signer, canonical_json
from .textsafe import clean_text
from .timeutil import now_iso

PURPOSE = "kakehashi/sanitizer/v1"
VERSION = 1

# The rebuilt types and their MIME types; the same vocabulary as ``sanitizer.kinds.KINDS`` (a test
# keeps them equal: shared/ may not import the sanitizer).
OUTPUT_MIME: dict[str, str] = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "png": "image/png",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "text": "text/plain",
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
}
OUTPUT_TYPES = tuple(OUTPUT_MIME)

# Rebuilt bytes cross in file.chunk envelopes of this many raw bytes (base64url: 54,614 characters),
# which leaves room for the signed envelope header under MAX_ENVELOPE_BYTES (64 KiB).
CHUNK_BYTES = 40 * 1024
CHUNK_TOKEN_CHARS = (CHUNK_BYTES * 4 + 2) // 3
MAX_REPORT_BYTES = 12 * 1024                       # canonical JSON of one report
MAX_REPORT_TOKEN_CHARS = (MAX_REPORT_BYTES * 4 + 2) // 3
SIGNATURE_TOKEN_CHARS = 86                         # 64 bytes, base64url without padding

FRAME_MAGIC = b"KSV1"
MAX_FRAME_HEADER_BYTES = 64 * 1024
_U32 = struct.Struct("!I")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


class VerdictError(Exception):
    """A verdict, report or chunk that must not be believed. ``code`` is stable (audit log)."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code


# --- base64url tokens (the envelope's token fields carry binary as [A-Za-z0-9_-]) ------------------

def encode_token(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode_token(text: str, max_bytes: int) -> bytes:
    """Strict inverse of ``encode_token``; raises VerdictError('bad_encoding')."""
    if len(text) > (max_bytes * 4 + 2) // 3 or not _B64URL.match(text) or len(text) % 4 == 1:
        raise VerdictError("bad_encoding")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise VerdictError("bad_encoding") from exc
    if encode_token(data) != text:          # one encoding per value: no non-canonical trailing bits
        raise VerdictError("bad_encoding")
    return data


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split_chunks(data: bytes) -> list[str]:
    """The rebuilt bytes as file.chunk tokens, in order."""
    return [encode_token(data[i:i + CHUNK_BYTES]) for i in range(0, len(data), CHUNK_BYTES)] or [""]


# --- the report -------------------------------------------------------------------------------------

def report_digest(report: dict[str, Any]) -> str:
    return sha256_hex(canonical_json(report))


def encode_report(report: dict[str, Any]) -> str:
    raw = canonical_json(report)
    if len(raw) > MAX_REPORT_BYTES:
        raise VerdictError("report_too_large")
    return encode_token(raw)


def decode_report(token: str) -> dict[str, Any]:
    """The report from its token: strict JSON (no floats, no duplicate keys), an object."""
    raw = decode_token(token, MAX_REPORT_BYTES)

    def strict(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise VerdictError("report_invalid", "duplicate key")
            out[key] = value
        return out

    def no_float(_: str) -> Any:
        raise VerdictError("report_invalid", "float")

    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=strict, parse_float=no_float,
                           parse_constant=no_float)
    except VerdictError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise VerdictError("report_invalid", "not JSON") from exc
    if not isinstance(value, dict):
        raise VerdictError("report_invalid", "not an object")
    return value


def _text(value: Any, limit: int, *, empty: bool = True) -> str:
    if not isinstance(value, str) or len(value) > limit or (not value and not empty):
        raise VerdictError("report_invalid", "text field")
    if clean_text(value, multiline=False) != value:
        raise VerdictError("report_invalid", "control characters")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
        raise VerdictError("report_invalid", "integer field")
    return value


def _keys(value: Any, keys: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) != keys:
        raise VerdictError("report_invalid", "fields")
    return value


_REPORT_KEYS = {"status", "code", "message", "detail", "input", "output", "removed", "summary", "isolation",
                "elapsed_ms"}


def check_report(report: dict[str, Any], verdict: Verdict) -> None:
    """The report has exactly the sanitizer's shape and says what the signed verdict says.

    Everything in it is shown to staff (as text, never markup); nothing unexpected gets through.
    """
    if report_digest(report) != verdict.report_sha256:
        raise VerdictError("report_digest_mismatch")
    _keys(report, _REPORT_KEYS)
    if report["status"] != "rebuilt" or report["code"] != "ok":
        raise VerdictError("report_invalid", "not a rebuilt file")
    for pair in (report["message"], report["summary"]):
        _keys(pair, {"ja", "en"})
        _text(pair["ja"], 2000)
        _text(pair["en"], 2000)
    _text(report["detail"], 300)
    source = _keys(report["input"], {"name", "sha256", "bytes", "detected_type"})
    output = _keys(report["output"], {"name", "type", "extension", "sha256", "bytes"})
    _text(source["name"], 300)
    _text(output["name"], 300, empty=False)
    _text(output["extension"], 16, empty=False)
    if (source["sha256"] != verdict.input_sha256 or _int(source["bytes"]) != verdict.input_bytes
            or source["detected_type"] != verdict.output_type or output["sha256"] != verdict.output_sha256
            or _int(output["bytes"]) != verdict.output_bytes or output["type"] != verdict.output_type
            or output["name"] != verdict.output_name):
        raise VerdictError("report_mismatch")
    removed = report["removed"]
    if not isinstance(removed, list) or len(removed) > 100:
        raise VerdictError("report_invalid", "removed")
    for item in removed:
        _keys(item, {"item", "ja", "en", "count"})
        if not isinstance(item["item"], str) or not re.fullmatch(r"[a-z_]{1,40}", item["item"]):
            raise VerdictError("report_invalid", "removed item")
        _text(item["ja"], 200, empty=False)
        _text(item["en"], 200, empty=False)
        _int(item["count"])
    isolation = report["isolation"]
    if not isinstance(isolation, dict) or len(isolation) > 10:
        raise VerdictError("report_invalid", "isolation")
    for key, value in isolation.items():
        _text(key, 40, empty=False)
        _text(value, 300)
    _int(report["elapsed_ms"])


def report_for_crossing(report: dict[str, Any]) -> dict[str, Any]:
    """``Report.to_dict()`` made signable: the one float (``elapsed_ms``) becomes an integer."""
    out = dict(report)
    out["elapsed_ms"] = int(round(float(out.get("elapsed_ms") or 0)))
    return out


# --- the verdict ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    """What the sanitizer signs about one rebuilt file (``signature`` is standard base64)."""

    job_id: str
    signed_at: str
    input_sha256: str
    input_bytes: int
    output_sha256: str
    output_bytes: int
    output_type: str
    output_name: str
    report_sha256: str
    key_id: str
    signature: str

    def content(self) -> dict[str, Any]:
        return {"v": VERSION, "job_id": self.job_id, "signed_at": self.signed_at,
                "input_sha256": self.input_sha256, "input_bytes": self.input_bytes,
                "output_sha256": self.output_sha256, "output_bytes": self.output_bytes,
                "output_type": self.output_type, "output_name": self.output_name,
                "report_sha256": self.report_sha256}

    def to_json(self) -> dict[str, Any]:
        return {**self.content(), "key_id": self.key_id, "signature": self.signature}

    @classmethod
    def from_json(cls, data: Any) -> Verdict:
        """Parse (not verify) a verdict, checking every field's form; raises VerdictError('verdict_invalid')."""
        fields = {"v", "job_id", "signed_at", "input_sha256", "input_bytes", "output_sha256", "output_bytes",
                  "output_type", "output_name", "report_sha256", "key_id", "signature"}
        if not isinstance(data, dict) or set(data) != fields or data["v"] != VERSION:
            raise VerdictError("verdict_invalid", "fields")
        verdict = cls(**{k: data[k] for k in fields - {"v"}})
        verdict.check_form()
        return verdict

    def check_form(self) -> None:
        ok = (isinstance(self.job_id, str) and _HEX32.match(self.job_id)
              and isinstance(self.signed_at, str) and _TS.match(self.signed_at)
              and isinstance(self.input_sha256, str) and _SHA256.match(self.input_sha256)
              and isinstance(self.output_sha256, str) and _SHA256.match(self.output_sha256)
              and isinstance(self.report_sha256, str) and _SHA256.match(self.report_sha256)
              and isinstance(self.key_id, str) and _HEX16.match(self.key_id)
              and isinstance(self.signature, str) and len(self.signature) == 88
              and self.output_type in OUTPUT_TYPES
              and isinstance(self.output_name, str) and 0 < len(self.output_name) <= 255)
        if not ok:
            raise VerdictError("verdict_invalid", "field form")
        for number in (self.input_bytes, self.output_bytes):
            if isinstance(number, bool) or not isinstance(number, int) or not 0 < number < 2**53:
                raise VerdictError("verdict_invalid", "size")

    @property
    def signature_token(self) -> str:
        """The signature as the envelope carries it (base64url)."""
        return encode_token(base64.b64decode(self.signature))

    @staticmethod
    def signature_from_token(token: str) -> str:
        raw = decode_token(token, 64)
        if len(raw) != 64:
            raise VerdictError("verdict_invalid", "signature length")
        return base64.b64encode(raw).decode("ascii")


def sign_verdict(signer: Signer, *, input_sha256: str, input_bytes: int, output: bytes, output_type: str,
                 output_name: str, report: dict[str, Any], job_id: str | None = None,
                 signed_at: str | None = None) -> Verdict:
    """The sanitizer's signature over one rebuilt file (called only by the sanitizer service)."""
    unsigned = Verdict(job_id=job_id or secrets.token_hex(16), signed_at=signed_at or now_iso(),
                       input_sha256=input_sha256, input_bytes=input_bytes, output_sha256=sha256_hex(output),
                       output_bytes=len(output), output_type=output_type, output_name=output_name,
                       report_sha256=report_digest(report), key_id=signer.key_id, signature="A" * 88)
    unsigned.check_form()
    return Verdict(**{**unsigned.__dict__, "signature": signer.sign(PURPOSE, unsigned.content())})


def check_verdict(verdict: Verdict, keyring: KeyRing, now: datetime | None = None) -> None:
    """Raise VerdictError unless a currently trusted sanitizer key signed exactly this verdict."""
    verdict.check_form()
    try:
        keyring.verify(PURPOSE, verdict.content(), verdict.signature, verdict.key_id, now)
    except SignatureError as exc:
        raise VerdictError("verdict_" + exc.code) from exc
    except ValueError as exc:
        raise VerdictError("verdict_invalid", str(exc)) from exc


def check_bytes(verdict: Verdict, data: bytes) -> None:
    """The bytes received are the bytes the sanitizer signed."""
    if len(data) != verdict.output_bytes:
        raise VerdictError("size_mismatch")
    if not secrets.compare_digest(sha256_hex(data), verdict.output_sha256):
        raise VerdictError("sha256_mismatch")


# --- the service's frames ---------------------------------------------------------------------------

class FrameError(Exception):
    """A frame that does not follow the protocol (or a peer that went away)."""


def encode_frame(header: dict[str, Any], body: bytes = b"") -> bytes:
    head = json.dumps({**header, "size": len(body)}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if len(head) > MAX_FRAME_HEADER_BYTES:
        raise FrameError("header too large")
    return FRAME_MAGIC + _U32.pack(len(head)) + head + body


async def read_frame(reader: asyncio.StreamReader, max_body: int) -> tuple[dict[str, Any], bytes]:
    """One frame: header (a JSON object with an integer ``size``) and exactly ``size`` bytes."""
    try:
        prefix = await reader.readexactly(len(FRAME_MAGIC) + _U32.size)
        if prefix[:4] != FRAME_MAGIC:
            raise FrameError("bad magic")
        (length,) = _U32.unpack(prefix[4:])
        if length > MAX_FRAME_HEADER_BYTES:
            raise FrameError("header too large")
        header = json.loads((await reader.readexactly(length)).decode("utf-8"))
        if not isinstance(header, dict):
            raise FrameError("header is not an object")
        size = header.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= max_body:
            raise FrameError("bad size")
        body = await reader.readexactly(size) if size else b""
    except (asyncio.IncompleteReadError, ConnectionError, UnicodeDecodeError, ValueError) as exc:
        raise FrameError(str(exc)[:100] or type(exc).__name__) from exc
    return header, body


class SanitizerUnavailable(Exception):
    """The sanitizer service could not be reached or answered outside the protocol. Nothing crosses."""


@dataclass(frozen=True)
class Sanitized:
    """The service's answer to one upload.

    Attributes:
        code: ``"ok"`` when rebuilt, else the sanitizer's stable refusal code.
        report: the report (``None`` only for protocol-level errors).
        verdict: the signed verdict (rebuilt only).
        data: the rebuilt bytes (rebuilt only); already checked against the verdict.
    """

    code: str
    report: dict[str, Any] | None
    verdict: Verdict | None = None
    data: bytes | None = None

    @property
    def rebuilt(self) -> bool:
        return self.code == "ok" and self.verdict is not None and self.data is not None


class SanitizerClient:
    """Talks to ``python -m sanitizer serve`` over its Unix socket (one request per connection)."""

    def __init__(self, socket_path: Path, timeout: float, max_output_bytes: int = 128 * 1024 * 1024) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self.max_output_bytes = max_output_bytes

    async def _exchange(self, header: dict[str, Any], body: bytes) -> tuple[dict[str, Any], bytes]:
        writer = None
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_unix_connection(str(self.socket_path), limit=1 << 20)
                writer.write(encode_frame(header, body))
                await writer.drain()
                return await read_frame(reader, self.max_output_bytes)
        except (OSError, TimeoutError, FrameError) as exc:
            raise SanitizerUnavailable(type(exc).__name__) from exc
        finally:
            if writer is not None:
                writer.close()
                try:
                    await writer.wait_closed()
                except (OSError, ConnectionError):
                    pass

    async def sanitize(self, data: bytes, name: str) -> Sanitized:
        """Rebuild ``data``; a refusal is an answer, a broken service raises SanitizerUnavailable."""
        header, body = await self._exchange({"v": VERSION, "op": "sanitize", "name": name}, data)
        status, code = header.get("status"), header.get("code")
        if not isinstance(code, str) or not re.fullmatch(r"[a-z_]{1,40}", code):
            raise SanitizerUnavailable("bad code")
        report = header.get("report")
        if status == "refused" and isinstance(report, dict) and not body:
            return Sanitized(code, report)
        if status != "rebuilt" or code != "ok" or not isinstance(report, dict):
            raise SanitizerUnavailable(f"unexpected answer {str(status)[:20]}")
        try:
            verdict = Verdict.from_json(header.get("verdict"))
            check_bytes(verdict, body)
            check_report(report, verdict)
        except VerdictError as exc:
            # Our own sanitizer contradicting itself: never forward it (LGWAN would refuse it anyway).
            raise SanitizerUnavailable(f"inconsistent answer: {exc.code}") from exc
        return Sanitized(code, report, verdict, body)

    async def verify(self, data: bytes, kind: str) -> tuple[str, str]:
        """Re-check a rebuilt file in a confined worker: ``("ok", "")`` or ``(code, detail)``."""
        header, _ = await self._exchange({"v": VERSION, "op": "verify", "kind": kind}, data)
        code, detail = header.get("code"), header.get("detail", "")
        if header.get("status") not in ("verified", "refused") or not isinstance(code, str) \
                or not isinstance(detail, str):
            raise SanitizerUnavailable("unexpected answer")
        if (header["status"] == "verified") != (code == "ok"):
            raise SanitizerUnavailable("inconsistent answer")
        return code, detail[:300]
