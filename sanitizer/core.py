"""The work one worker process does: detect + rebuild, or verify. No I/O, no isolation.

The worker (``worker.py``) runs these inside a sandboxed child; tests may call them
directly to exercise the logic without processes. Every exception is turned into an
``Outcome`` with a refusal code: whatever the input, the answer is "rebuilt" or
"refused", never a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

from sanitizer.detect import REBUILDERS, detect
from sanitizer.errors import Code, Refused
from sanitizer.libmagic import Detector
from sanitizer.limits import Limits
from sanitizer.report import Removed
from sanitizer.source import Source
from sanitizer.verify import verify

_MALFORMED: dict[str, Code] = {
    "pdf": Code.PDF_MALFORMED,
    "docx": Code.OOXML_MALFORMED,
    "xlsx": Code.OOXML_MALFORMED,
    "pptx": Code.OOXML_MALFORMED,
    "png": Code.IMAGE_MALFORMED,
    "jpeg": Code.IMAGE_MALFORMED,
    "gif": Code.IMAGE_MALFORMED,
    "text": Code.TEXT_UNDECODABLE,
    "csv": Code.TEXT_UNDECODABLE,
    "tsv": Code.TEXT_UNDECODABLE,
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """Result of one step in a worker.

    Attributes:
        code: ``OK`` or the refusal reason.
        detail: fixed phrase narrowing the reason (never file content).
        detected: the type the input was recognised as, if it got that far.
        kind: type of ``data`` (rebuild step only).
        data: the rebuilt bytes (rebuild step, when OK and not written to a sink).
        size: length of the rebuilt file (rebuild step, when OK), wherever it is.
        removed: tally of removed content (rebuild step).
        findings: verify step: what was found in the output.
    """

    code: Code
    detail: str = ""
    detected: str | None = None
    kind: str | None = None
    data: bytes | None = None
    removed: Mapping[Removed, int] = field(default_factory=dict)
    findings: tuple[str, ...] = ()
    size: int = 0


def rebuild_untrusted(
    untrusted: bytes | Source,
    declared_name: str,
    limits: Limits,
    detector: Detector,
    sink: BinaryIO | None = None,
) -> Outcome:
    """Detect the type of ``untrusted`` and rebuild it.

    Args:
        untrusted: the uploaded bytes.
        declared_name: the name the sender gave; its extension must match the content.
        limits: resource and size limits.
        detector: libmagic handles.
        sink: if given, the rebuilt file is written into this binary file (the worker's
            output memfd) and ``Outcome.data`` stays ``None``; without it the bytes are
            returned in ``Outcome.data``.

    Returns:
        ``Outcome`` with the rebuilt bytes (or their size, with a sink), or a refusal.
    """
    untrusted = Source.of(untrusted)
    if len(untrusted) > limits.max_input_bytes:
        return Outcome(Code.TOO_LARGE, "input over max_input_bytes")
    try:
        detection = detect(untrusted, declared_name, detector)
    except Refused as refusal:
        return Outcome(refusal.code, refusal.detail)
    except MemoryError:
        return Outcome(Code.LIMIT_MEMORY, "during detection")
    except Exception as exc:  # noqa: BLE001 - fail closed: anything unexpected is a refusal
        return Outcome(Code.UNSUPPORTED_TYPE, f"unexpected {type(exc).__name__} in detection")
    kind = detection.file_type.kind
    try:
        rebuilt = detection.file_type.rebuild(untrusted, limits, sink)
    except Refused as refusal:
        return Outcome(refusal.code, refusal.detail, detected=kind)
    except MemoryError:
        return Outcome(Code.LIMIT_MEMORY, "during rebuild", detected=kind)
    except RecursionError:
        return Outcome(_MALFORMED[kind], "nesting too deep", detected=kind)
    except Exception as exc:  # noqa: BLE001 - a parser choking on hostile input is a refusal, not a crash
        return Outcome(_MALFORMED[kind], f"unexpected {type(exc).__name__}", detected=kind)
    if rebuilt.size > limits.max_output_bytes:
        return Outcome(Code.TOO_LARGE, "output over max_output_bytes", detected=kind)
    if rebuilt.kind not in REBUILDERS:
        return Outcome(Code.INTERNAL_ERROR, "rebuilder returned an unknown kind", detected=kind)
    data: bytes | None = rebuilt.data
    if sink is not None and rebuilt.streamed is None:
        sink.write(rebuilt.data)
        sink.flush()
        data = None
    elif rebuilt.streamed is not None:
        data = None
    return Outcome(
        Code.OK, detected=kind, kind=rebuilt.kind, data=data, removed=dict(rebuilt.removed),
        size=rebuilt.size,
    )  # fmt: skip


def verify_untrusted(rebuilt: bytes | Source, kind: str, limits: Limits, detector: Detector) -> Outcome:
    """Run ``verify.verify`` and turn its findings (or its failure) into an ``Outcome``."""
    try:
        findings = verify(rebuilt, kind, limits, detector)
    except MemoryError:
        return Outcome(Code.LIMIT_MEMORY, "during verification")
    except Exception as exc:  # noqa: BLE001 - a verifier that cannot finish has not verified
        return Outcome(Code.VERIFY_FAILED, f"verifier raised {type(exc).__name__}")
    if findings:
        return Outcome(Code.VERIFY_FAILED, "found: " + ", ".join(findings), findings=tuple(findings))
    return Outcome(Code.OK, kind=kind)
