"""Small pieces: codes and messages, limits, the report, the worker protocol, link policy."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sanitizer.errors import MESSAGES, Code
from sanitizer.formulas import formula_verdict
from sanitizer.limits import Limits
from sanitizer.links import is_safe_link
from sanitizer.ooxml_markup import field_verdict
from sanitizer.protocol import (
    ProtocolError,
    decode_job,
    encode_job,
    encode_reply,
    parse_reply,
    read_exactly,
    sealed_memfd,
)
from sanitizer.report import FINDINGS, LABELS, Removed, Report
from sanitizer.source import Source

KINDS = frozenset({"pdf", "docx"})


def test_every_code_and_removed_item_has_japanese_and_english_text() -> None:
    assert set(MESSAGES) == set(Code)
    assert set(LABELS) == set(Removed)
    for ja, en in [*MESSAGES.values(), *LABELS.values()]:
        assert ja and en and ja != en or ja == en == "DDE" or ja == en == "JavaScript"


def test_admin_notes_list_every_code() -> None:
    notes = (Path(__file__).resolve().parents[2] / "docs" / "sanitizer.md").read_text(encoding="utf-8")
    missing = [code.value for code in Code if f"`{code.value}`" not in notes]
    assert missing == []


def test_codes_are_stable_strings() -> None:
    # Renaming a code breaks stored reports and audit rows; only additions are allowed.
    assert Code.PDF_ENCRYPTED.value == "pdf_encrypted"
    assert Code.LEGACY_OFFICE.value == "legacy_office"
    assert all(c.value == c.value.lower() and " " not in c.value for c in Code)


def test_limits_validate_and_round_trip() -> None:
    limits = Limits(cpu_seconds=3, wall_seconds=1.5)
    assert Limits.from_dict(limits.to_dict()) == limits
    with pytest.raises(ValueError):
        Limits(cpu_seconds=0)
    with pytest.raises(ValueError):
        Limits.from_dict({"bogus": 1})
    with pytest.raises(ValueError):
        Limits(memory_bytes=True)  # type: ignore[arg-type]


def test_report_json_lists_removals_with_counts() -> None:
    report = Report(
        code=Code.OK, input_name="a.pdf", input_sha256="0" * 64, input_bytes=10, output_sha256="1" * 64,
        removed={Removed.JAVASCRIPT: 2, Removed.EMBEDDED_FILE: 1, Removed.MACRO: 0},
    )  # fmt: skip
    data = json.loads(report.to_json())
    assert data["status"] == "rebuilt"
    assert [(i["item"], i["count"]) for i in data["removed"]] == [("embedded_file", 1), ("javascript", 2)]
    assert data["summary"]["ja"] == "埋め込みファイル ×1、JavaScript ×2"
    assert data["message"]["ja"] and data["message"]["en"]


def test_refusal_report_has_no_output() -> None:
    data = Report(code=Code.PDF_ENCRYPTED, input_name="a.pdf", input_sha256="0" * 64, input_bytes=1).to_dict()
    assert data["status"] == "refused" and data["output"] is None and data["code"] == "pdf_encrypted"


@pytest.mark.parametrize(
    ("url", "safe"),
    [("https://a.example/", True), ("HTTP://a", True), ("mailto:x@y", True), ("javascript:alert(1)", False),
     ("java\tscript:alert(1)", False), (" file:///c:/x", False), ("\\\\server\\share", False), ("ms-msdt:x", False),
     ("relative/path.pdf", False), ("", False), ("h\nttps://x", True)],
)  # fmt: skip
def test_link_policy(url: str, safe: bool) -> None:
    assert is_safe_link(url) is safe


@pytest.mark.parametrize(
    ("instruction", "verdict"),
    [("DDEAUTO cmd", Removed.DDE), (" ddeauto x", Removed.DDE), ("ＤＤＥ x", Removed.DDE), ("PAGE", None),
     ("  =SUM(ABOVE) ", None), ("INCLUDEPICTURE x", Removed.EXTERNAL_LINK), ("MACROBUTTON a b", Removed.FIELD_CODE),
     ("", None), ("REF _Ref1 \\h", None), ('HYPERLINK "file:///x"', Removed.UNSAFE_URI)],
)  # fmt: skip
def test_field_verdicts(instruction: str, verdict: Removed | None) -> None:
    assert field_verdict(instruction) is verdict


def test_nested_field_instruction_is_never_trusted() -> None:
    assert field_verdict("PAGE", nested=True) is Removed.FIELD_CODE


@pytest.mark.parametrize(
    ("formula", "verdict"),
    [("=SUM(A1:A3)", None), ("=cmd|' /C calc'!A0", Removed.DDE), ("=WEBSERVICE(A1)", Removed.FORMULA),
     ("=[2]Sheet1!A1", Removed.EXTERNAL_LINK), ('="[x]y!z"', None), ("=Table1[Col]&Sheet2!A1", None)],
)  # fmt: skip
def test_formula_verdicts(formula: str, verdict: Removed | None) -> None:
    assert formula_verdict(formula) is verdict


def _parse(frame: bytes) -> object:
    return parse_reply(frame, max_data=100, kinds=KINDS, findings=FINDINGS)


def test_protocol_round_trip() -> None:
    frame = encode_reply(Code.OK, detected="pdf", kind="pdf", removed={Removed.JAVASCRIPT: 3}, size=4)
    reply = _parse(frame)
    assert reply.code is Code.OK and reply.removed == {Removed.JAVASCRIPT: 3} and reply.size == 4  # type: ignore[attr-defined]


def test_job_header_round_trip() -> None:
    limits = Limits(cpu_seconds=7).to_dict()
    job, size = decode_job(encode_job("rebuild", 5, declared_name="申請書.pdf", limits=limits))
    assert (job.role, job.declared_name, size) == ("rebuild", "申請書.pdf", 5)
    assert Limits.from_dict(job.limits) == Limits(cpu_seconds=7)
    with pytest.raises(ProtocolError):
        decode_job(b"KSJ1" + b"\x00\x00\x00\x0d" + b'{"limits": 1}')


def test_a_worker_maps_only_a_sealed_input_of_the_announced_size() -> None:
    # The mapping is read in place; an unsealed memfd could shrink under it (SIGBUS) or
    # change after the check, so the worker refuses it.
    unsealed = os.memfd_create("kakehashi-input", os.MFD_ALLOW_SEALING)
    os.write(unsealed, b"%PDF-1.4")
    with pytest.raises(ProtocolError):
        Source.from_memfd(unsealed, 8)
    os.close(unsealed)
    fd = sealed_memfd(b"%PDF-1.4 %%EOF x %%EOF")
    with pytest.raises(ProtocolError):
        Source.from_memfd(os.dup(fd), 5)
    with Source.from_memfd(fd, 22) as source:
        assert source.read() == b"%PDF-1.4 %%EOF x %%EOF" and len(source) == 22
        assert bytes(source.buffer()[:8]) == b"%PDF-1.4" and source.count(b"%%EOF") == 2
        with source.stream() as stream:
            assert stream.fileno() >= 0 and stream.read() == source.read()


def test_output_is_checked_against_the_announced_size() -> None:
    fd = sealed_memfd(b"abcdef")
    try:
        assert read_exactly(fd, 6, 10) == b"abcdef"
        for size, limit in ((5, 10), (7, 10), (6, 5)):
            with pytest.raises(ProtocolError):
                read_exactly(fd, size, limit)
        with pytest.raises(OSError):
            os.write(fd, b"x")  # sealed: the worker cannot change its input
    finally:
        os.close(fd)


def _meta_frame(meta: dict[str, object]) -> bytes:
    raw = json.dumps(meta).encode()
    return b"KSR1" + len(raw).to_bytes(4, "big") + raw


BASE = {
    "code": "ok",
    "detail": "",
    "detected": "pdf",
    "kind": "pdf",
    "removed": {},
    "findings": [],
    "size": 3,
}


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"KSR1",
        b"XXXX" + b"\x00" * 20,
        b"KSR1\xff\xff\xff\xffnot a reply",
        _meta_frame({**BASE, "code": "rm -rf"}),
        _meta_frame({**BASE, "kind": "exe"}),
        _meta_frame({**BASE, "removed": {"javascript": -1}}),
        _meta_frame({**BASE, "removed": {"javascript": True}}),
        _meta_frame({**BASE, "removed": {"not-an-item": 1}}),
        _meta_frame({**BASE, "findings": ["something else"]}),
        _meta_frame({**BASE, "detail": "機密の内容"}),
        _meta_frame({**BASE, "extra": 1}),
        _meta_frame({**BASE, "code": "pdf_encrypted"}),  # output size on a refusal
        _meta_frame({**BASE, "size": 101}),
        _meta_frame({**BASE, "size": -1}),
        _meta_frame(BASE) + b"trailing",
        _meta_frame(BASE)[:-1],
    ],
)
def test_protocol_rejects_malformed_replies(frame: bytes) -> None:
    with pytest.raises(ProtocolError):
        _parse(frame)


def test_the_parent_side_stays_light() -> None:
    """The server imports the pool; parsers load only in the fork server and its children."""
    import subprocess
    import sys

    code = (
        "import sys, sanitizer, sanitizer.pool, sanitizer.__main__;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'pikepdf','openpyxl','PIL','magic','defusedxml','lxml','aiohttp','aiosqlite'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_no_module_imports_aiohttp_or_aiosqlite() -> None:
    import subprocess
    import sys

    code = (
        "import pkgutil, importlib, sys, sanitizer;"
        "[importlib.import_module('sanitizer.' + m.name) for m in pkgutil.iter_modules(sanitizer.__path__)"
        " if m.name != '__main__'];"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'aiohttp', 'aiosqlite'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_the_verifier_shares_no_code_with_the_rebuilders() -> None:
    """verify.py must stay independent: importing it loads no rebuilder (nor detect/core)."""
    import ast
    import subprocess
    import sys

    code = (
        "import sys, sanitizer.verify;"
        "print(sorted(m for m in sys.modules if m.startswith('sanitizer.')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(ast.literal_eval(done.stdout))
    rebuilders = {
        "sanitizer.pdf", "sanitizer.ooxml", "sanitizer.ooxml_parts", "sanitizer.ooxml_markup", "sanitizer.xlsx",
        "sanitizer.image", "sanitizer.text", "sanitizer.formulas", "sanitizer.links", "sanitizer.zipsafe",
        "sanitizer.detect", "sanitizer.core",
    }  # fmt: skip
    assert loaded & rebuilders == set()


def test_tmpdir_prefix_matches_between_pool_and_fork_server() -> None:
    from sanitizer import forkserver, pool

    assert pool._tmpdir_prefix(123) == forkserver.tmpdir_prefix(123)
