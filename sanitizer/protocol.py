"""How the parent and a worker exchange a job and its result.

File bytes never travel through the socket: the parent puts the input in a sealed
memfd (read-only once sealed) and hands the worker an empty memfd for the output, both
attached to the job header with SCM_RIGHTS. Only small frames cross the socket:

- parent -> worker (trusted): ``b"KSJ1"``, u32 length, JSON header (role, declared
  name, claimed kind, input size, the job's resource limits), with the two memfds
  attached;
- worker -> parent (**untrusted**: the worker has parsed hostile input and may be
  compromised): ``b"KSR1"``, u32 length, JSON meta (code, detail, detected type,
  output kind, removal counts, findings, output size).

The parent never unpickles anything from a worker. ``parse_reply`` checks every field
against fixed vocabularies and limits; ``read_output`` checks the memfd's size against
the claimed size before reading. Anything else is a protocol error, which the pool
turns into a refusal. Moving megabytes through memfds instead of a Unix socket also
avoids a context switch per socket-buffer's worth (about 200 KB) of data.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import struct
from dataclasses import dataclass, field
from typing import Any

from sanitizer.errors import Code
from sanitizer.report import MAX_REPORTED_COUNT, Removed

# Worker exit statuses (the parent reads them when there is no valid reply).
EXIT_OK = 0
EXIT_MEMORY = 17
EXIT_CONFINEMENT = 18
EXIT_PROTOCOL = 19
EXIT_INTERNAL = 20

JOB_MAGIC = b"KSJ1"
RESULT_MAGIC = b"KSR1"
_U32 = struct.Struct("!I")
MAX_HEADER_BYTES = 64 * 1024
MAX_META_BYTES = 64 * 1024
_DETAIL_RE = re.compile(r"[ -~]{0,300}")  # printable ASCII only: details are fixed phrases
_META_KEYS = frozenset({"code", "detail", "detected", "kind", "removed", "findings", "size"})
_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


class ProtocolError(Exception):
    """A worker reply (or job) that does not follow the protocol; never shown to users."""


class IncompleteFrame(ProtocolError):
    """More bytes are needed before the frame can be parsed."""


@dataclass(frozen=True, slots=True)
class Job:
    """What a worker is asked to do.

    Attributes:
        role: ``"rebuild"`` or ``"verify"``.
        data: the bytes to process.
        declared_name: the sender's file name (rebuild only).
        kind: the claimed type of ``data`` (verify only).
        limits: the job's ``Limits`` as a plain dict (``Limits.to_dict``).
    """

    role: str
    data: bytes
    declared_name: str = ""
    kind: str = ""
    limits: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reply:
    """A validated worker reply (``data`` filled in from the output memfd)."""

    code: Code
    detail: str = ""
    detected: str | None = None
    kind: str | None = None
    removed: dict[Removed, int] = field(default_factory=dict)
    findings: tuple[str, ...] = ()
    size: int = 0
    data: bytes = b""


# ------------------------------------------------------------------ memfds


def sealed_memfd(data: bytes, name: str = "kakehashi-input") -> int:
    """A memfd holding ``data``, sealed so that nobody can change it afterwards."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        write_all(fd, data)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
    except BaseException:
        os.close(fd)
        raise
    return fd


def empty_memfd(name: str = "kakehashi-output") -> int:
    """A fresh memfd for a worker's output; sealable, so the parent can freeze it later."""
    return os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)


def write_all(fd: int, data: bytes) -> None:
    """Write ``data`` to ``fd`` completely."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def read_exactly(fd: int, size: int, limit: int) -> bytes:
    """Read ``size`` bytes from the start of ``fd``, checking its size first.

    Raises:
        ProtocolError: the file is larger than ``limit`` or not exactly ``size`` bytes.
    """
    actual = os.fstat(fd).st_size
    if size > limit or actual != size:
        raise ProtocolError("output size differs from the announced size")
    chunks = []
    offset = 0
    while offset < size:
        chunk = os.pread(fd, min(size - offset, 1 << 24), offset)
        if not chunk:
            raise ProtocolError("output shrank while being read")
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


# ------------------------------------------------------------------ frames


def _frame(magic: bytes, payload: dict[str, Any]) -> bytes:
    raw = json.dumps(payload, ensure_ascii=True).encode("ascii")
    return magic + _U32.pack(len(raw)) + raw


def _unframe(buffer: bytes, magic: bytes, limit: int) -> tuple[Any, int]:
    if len(buffer) < 8:
        if buffer and not magic.startswith(buffer[:4]):
            raise ProtocolError("bad magic")
        raise IncompleteFrame("short frame")
    if buffer[:4] != magic:
        raise ProtocolError("bad magic")
    (length,) = _U32.unpack_from(buffer, 4)
    if length > limit:
        raise ProtocolError("frame too long")
    if len(buffer) < 8 + length:
        raise IncompleteFrame("short frame")
    try:
        return json.loads(buffer[8 : 8 + length].decode("ascii")), 8 + length
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError("frame is not json") from exc


def encode_job(
    role: str, size: int, *, declared_name: str = "", kind: str = "", limits: dict[str, Any] | None = None
) -> bytes:
    """The job header; the ``size`` bytes of input are in the input memfd."""
    return _frame(
        JOB_MAGIC,
        {"role": role, "name": declared_name, "kind": kind, "size": size, "limits": limits or {}},
    )


def seal(fd: int) -> None:
    """Make a memfd immutable (no write, grow or shrink, and no unsealing).

    Raises:
        ProtocolError: it cannot be sealed (a writable mapping still exists, say).
    """
    try:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
    except OSError as exc:
        raise ProtocolError("output could not be sealed") from exc


def decode_job(buffer: bytes) -> tuple[Job, int]:
    """Parse a job header; returns the job (without data) and the input size.

    Raises:
        IncompleteFrame: more bytes are needed.
        ProtocolError: malformed header.
    """
    header, consumed = _unframe(buffer, JOB_MAGIC, MAX_HEADER_BYTES)
    if consumed != len(buffer):
        raise ProtocolError("bytes after the job header")
    try:
        limits = header.get("limits", {})
        if not isinstance(limits, dict):
            raise TypeError("limits")
        job = Job(
            role=str(header["role"]), data=b"", declared_name=str(header["name"]), kind=str(header["kind"]),
            limits=limits,
        )  # fmt: skip
        size = int(header["size"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ProtocolError("bad job header") from exc
    return job, size


def encode_reply(
    code: Code,
    *,
    detail: str = "",
    detected: str | None = None,
    kind: str | None = None,
    removed: dict[Removed, int] | None = None,
    findings: tuple[str, ...] = (),
    size: int = 0,
) -> bytes:
    """Frame a worker reply (the output bytes, if any, are in the output memfd)."""
    return _frame(
        RESULT_MAGIC,
        {
            "code": code.value,
            "detail": detail if _DETAIL_RE.fullmatch(detail) else "",
            "detected": detected,
            "kind": kind,
            "removed": {k.value: int(v) for k, v in (removed or {}).items()},
            "findings": list(findings),
            "size": size,
        },
    )


def _check_kind(value: Any, kinds: frozenset[str]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value not in kinds:
        raise ProtocolError("unknown kind")
    return value


def parse_reply(frame: bytes, *, max_data: int, kinds: frozenset[str], findings: frozenset[str]) -> Reply:
    """Validate an untrusted worker reply frame.

    Args:
        frame: everything the worker wrote to the socket.
        max_data: largest acceptable output size.
        kinds: acceptable values for ``detected``/``kind``.
        findings: acceptable finding names.

    Returns:
        The reply, every field checked (``data`` still empty).

    Raises:
        ProtocolError: on any deviation (magic, lengths, unknown codes or names,
            trailing bytes, an output size on a refusal, ...).
    """
    try:
        meta, consumed = _unframe(frame, RESULT_MAGIC, MAX_META_BYTES)
    except IncompleteFrame as exc:
        raise ProtocolError("truncated reply") from exc
    if consumed != len(frame):
        raise ProtocolError("bytes after the reply")
    if not isinstance(meta, dict) or set(meta) != _META_KEYS:
        raise ProtocolError("unexpected meta keys")
    try:
        code = Code(meta["code"])
    except ValueError as exc:
        raise ProtocolError("unknown code") from exc
    detail = meta["detail"]
    if not isinstance(detail, str) or not _DETAIL_RE.fullmatch(detail):
        raise ProtocolError("bad detail")
    removed_raw = meta["removed"]
    if not isinstance(removed_raw, dict):
        raise ProtocolError("bad removed")
    removed: dict[Removed, int] = {}
    for key, count in removed_raw.items():
        try:
            item = Removed(key)
        except ValueError as exc:
            raise ProtocolError("unknown removed item") from exc
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_REPORTED_COUNT:
            raise ProtocolError("bad removed count")
        removed[item] = count
    found = meta["findings"]
    if not isinstance(found, list) or not all(isinstance(f, str) and f in findings for f in found):
        raise ProtocolError("unknown finding")
    size = meta["size"]
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= max_data:
        raise ProtocolError("bad output size")
    if code is not Code.OK and size:
        raise ProtocolError("output on a refusal")
    return Reply(
        code=code,
        detail=detail,
        detected=_check_kind(meta["detected"], kinds),
        kind=_check_kind(meta["kind"], kinds),
        removed=removed,
        findings=tuple(found),
        size=size,
    )
