"""Type detection: content decides, the name must agree, polyglots are rebuilt as one type."""

from __future__ import annotations

import pytest
from sanitizer_samples import (
    HTML_PAGE,
    SVG_WITH_SCRIPT,
    animated_gif,
    docx,
    jpeg_with_gps,
    para,
    pdf_bytes,
    pdf_document,
    png_bytes,
    xlsx,
    zip_bytes,
)

from sanitizer.core import rebuild_untrusted, verify_untrusted
from sanitizer.detect import REBUILDERS, declared_extension, detect
from sanitizer.errors import Code, Refused
from sanitizer.limits import Limits

CFB_HEADER = (
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 16 + b"\x3e\x00\x03\x00\xfe\xff\x09\x00" + b"\x00" * 4000
)


@pytest.mark.parametrize(
    ("data", "name", "kind"),
    [
        (pdf_bytes(pdf_document()), "報告書.PDF", "pdf"),
        (docx(para("x")), "a.docx", "docx"),
        (docx(para("x")), "a.docm", "docx"),
        (xlsx("<row r='1'/>"), "a.xlsm", "xlsx"),
        (png_bytes(), "a.png", "png"),
        (jpeg_with_gps(1), "a.JPG", "jpeg"),
        (jpeg_with_gps(1), "a.jpeg", "jpeg"),
        (animated_gif(2), "a.gif", "gif"),
        ("表\n".encode("cp932"), "a.txt", "text"),
        (b"a,b\n", "a.csv", "csv"),
        (b"a\tb\n", "a.tsv", "tsv"),
    ],
)
def test_accepted_types(data: bytes, name: str, kind: str, detector) -> None:  # type: ignore[no-untyped-def]
    assert detect(data, name, detector).file_type.kind == kind


@pytest.mark.parametrize(
    ("data", "name", "code"),
    [
        (b"", "empty.pdf", Code.EMPTY_FILE),
        (pdf_bytes(pdf_document()), "invoice.docx", Code.TYPE_MISMATCH),
        (docx(para("x")), "invoice.pdf", Code.TYPE_MISMATCH),
        (docx(para("x")), "book.xlsx", Code.TYPE_MISMATCH),  # Word content named as Excel
        (png_bytes(), "photo.jpg", Code.TYPE_MISMATCH),
        (png_bytes(), "photo", Code.TYPE_MISMATCH),  # no extension cannot agree
        (SVG_WITH_SCRIPT, "logo.svg", Code.ACTIVE_MARKUP),
        (SVG_WITH_SCRIPT, "logo.png", Code.ACTIVE_MARKUP),
        (HTML_PAGE, "page.html", Code.ACTIVE_MARKUP),
        (HTML_PAGE, "notes.txt", Code.ACTIVE_MARKUP),
        (b"{\\rtf1\\ansi {\\object\\objemb}}", "letter.rtf", Code.UNSUPPORTED_TYPE),
        (b"MZ\x90\x00" + b"\x00" * 200, "setup.pdf", Code.UNSUPPORTED_TYPE),
        (zip_bytes({"a.txt": "x"}), "archive.zip", Code.UNSUPPORTED_TYPE),
        (zip_bytes({"a.txt": "x"}), "archive.docx", Code.UNSUPPORTED_TYPE),
        (CFB_HEADER, "old.doc", Code.LEGACY_OFFICE),
        (CFB_HEADER, "old.xls", Code.LEGACY_OFFICE),
    ],
)
def test_refused_types(data: bytes, name: str, code: Code, detector) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Refused) as refused:
        detect(data, name, detector)
    assert refused.value.code is code


@pytest.mark.parametrize(
    ("name", "ext"),
    [("a.pdf", "pdf"), ("A.TAR.PDF", "pdf"), ("../../etc/x.docx", "docx"), ("C:\\Users\\x\\y.xlsx", "xlsx"),
     ("noext", ""), ("trailing.dot.", "dot"), (".bashrc", "")],
)  # fmt: skip
def test_declared_extension(name: str, ext: str) -> None:
    assert declared_extension(name) == ext


@pytest.mark.parametrize(
    ("data", "name", "kind"),
    [
        (pdf_bytes(pdf_document()) + zip_bytes({"evil.js": "x" * 100}), "poly.pdf", "pdf"),
        (jpeg_with_gps(1) + zip_bytes({"evil.js": "x"}), "poly.jpg", "jpeg"),
        (animated_gif(2) + zip_bytes({"META-INF/MANIFEST.MF": "Main-Class: X"}), "gifar.gif", "gif"),
    ],
    ids=["pdf+zip", "jpeg+zip", "gifar"],
)
def test_polyglots_are_rebuilt_strictly_as_the_detected_type(
    data: bytes, name: str, kind: str, detector
) -> None:  # type: ignore[no-untyped-def]
    outcome = rebuild_untrusted(data, name, Limits(), detector)
    assert outcome.code is Code.OK and outcome.kind == kind
    assert outcome.data is not None and b"PK\x03\x04" not in outcome.data and b"evil.js" not in outcome.data
    assert verify_untrusted(outcome.data, kind, Limits(), detector).code is Code.OK


def test_every_rebuilder_is_on_the_single_allow_list() -> None:
    assert set(REBUILDERS) == {"pdf", "docx", "xlsx", "pptx", "png", "jpeg", "gif", "text", "csv", "tsv"}
    for kind, file_type in REBUILDERS.items():
        assert file_type.kind == kind and file_type.output_extension in file_type.extensions | {"jpg"}


def test_oversized_input_is_refused_before_detection(detector) -> None:  # type: ignore[no-untyped-def]
    outcome = rebuild_untrusted(b"a" * 11, "a.txt", Limits(max_input_bytes=10), detector)
    assert outcome.code is Code.TOO_LARGE
