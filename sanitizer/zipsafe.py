"""Read an untrusted zip (an OOXML package) into memory, or refuse it.

Checks, in order: entry count; member names (absolute paths, ``..``, backslashes, drive
letters, NUL, case-insensitive duplicates); encryption flag; compression method;
declared sizes (per member, total, and compression ratio); and finally the actual
decompressed bytes, which ``zipfile`` caps at the declared size and checks against the
CRC. mat2 (``libmat2/archive.py``) and DocBleach's fail-open recursion are the
references for what not to do: nothing here is skipped or passed through on error.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass

from sanitizer.errors import Code, Refused
from sanitizer.limits import Limits

_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_ALLOWED_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})


def is_unsafe_member_name(name: str) -> bool:
    """True for names that could escape an extraction directory or alias another member."""
    if not name or "\x00" in name or "\\" in name:
        return True
    if name.startswith("/") or _DRIVE_RE.match(name):
        return True
    parts = name.rstrip("/").split("/")
    return any(part in ("", ".", "..") for part in parts)


@dataclass(frozen=True, slots=True)
class ZipMembers:
    """Decompressed members of a checked zip, keyed by their exact names (directories omitted).

    Attributes:
        members: name -> bytes, in central-directory order.
        by_folded_name: lower-cased name -> exact name (OPC part names are case-insensitive).
    """

    members: dict[str, bytes]
    by_folded_name: dict[str, str]

    def get(self, name: str) -> bytes | None:
        """Member bytes by case-insensitive name, or ``None``."""
        exact = self.by_folded_name.get(name.lower())
        return None if exact is None else self.members[exact]


def _check_declared(infos: list[zipfile.ZipInfo], limits: Limits) -> None:
    if len(infos) > limits.max_zip_entries:
        raise Refused(Code.ZIP_TOO_MANY_ENTRIES, "entry count over limit")
    seen: set[str] = set()
    total = 0
    for info in infos:
        if is_unsafe_member_name(info.filename):
            raise Refused(Code.ZIP_UNSAFE_NAME, "unsafe member name")
        folded = info.filename.lower()
        if folded in seen:
            # Two members that differ only in case (or repeat exactly) let different
            # readers pick different ones; refuse the ambiguity.
            raise Refused(Code.ZIP_UNSAFE_NAME, "duplicate member name")
        seen.add(folded)
        if info.flag_bits & 0x1:
            raise Refused(Code.OFFICE_ENCRYPTED, "encrypted zip member")
        if info.compress_type not in _ALLOWED_METHODS:
            raise Refused(Code.OOXML_MALFORMED, "unsupported compression method")
        if info.file_size > limits.max_zip_member_bytes:
            raise Refused(Code.ZIP_BOMB, "member larger than limit")
        total += info.file_size
        if total > limits.max_zip_total_bytes:
            raise Refused(Code.ZIP_BOMB, "total uncompressed size over limit")
        if info.file_size > limits.zip_ratio_floor_bytes and info.file_size > limits.max_zip_ratio * max(
            info.compress_size, 1
        ):
            raise Refused(Code.ZIP_BOMB, "compression ratio over limit")


def read_zip(untrusted: bytes, limits: Limits) -> ZipMembers:
    """Check and decompress every member of ``untrusted``.

    Args:
        untrusted: the zip bytes.
        limits: entry-count and size limits.

    Returns:
        The decompressed members.

    Raises:
        Refused: ``ZIP_*``, ``OFFICE_ENCRYPTED`` or ``OOXML_MALFORMED``.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(untrusted))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        raise Refused(Code.OOXML_MALFORMED, "not a readable zip") from exc
    with archive:
        infos = archive.infolist()
        _check_declared(infos, limits)
        members: dict[str, bytes] = {}
        actual_total = 0
        for info in infos:
            if info.is_dir():
                continue
            try:
                with archive.open(info) as fh:
                    data = fh.read(info.file_size + 1)
            except (
                zipfile.BadZipFile,
                ValueError,
                OSError,
                EOFError,
                RuntimeError,
                NotImplementedError,
            ) as exc:
                # Bad CRC, truncated stream, header/directory name mismatch, ...
                raise Refused(Code.OOXML_MALFORMED, "member could not be decompressed") from exc
            if len(data) != info.file_size:
                raise Refused(Code.ZIP_BOMB, "actual size differs from declared size")
            actual_total += len(data)
            if actual_total > limits.max_zip_total_bytes:
                raise Refused(Code.ZIP_BOMB, "total uncompressed size over limit")
            members[info.filename] = data
    return ZipMembers(members=members, by_folded_name={name.lower(): name for name in members})
