"""PDF rebuild over hostile files the tests build themselves (sanitizer_samples)."""

from __future__ import annotations

import io
import os

import pikepdf
import pytest
from sanitizer_oracles import pdf_expanded, pdf_page_contents, pdf_page_count, pdf_threats
from sanitizer_samples import (
    encrypted_pdf,
    hostile_pdf_everywhere,
    pdf_bytes,
    pdf_document,
    pdf_with_incremental_js,
)

from sanitizer.errors import Code, Refused
from sanitizer.limits import Limits
from sanitizer.pdf import rebuild_pdf
from sanitizer.protocol import seal, sealed_memfd
from sanitizer.source import Source
from sanitizer.verify import verify


@pytest.mark.parametrize("object_streams", [False, True], ids=["plain", "in-objstm"])
def test_every_hiding_place_is_emptied(object_streams: bool, detector) -> None:  # type: ignore[no-untyped-def]
    source = hostile_pdf_everywhere(object_streams=object_streams)
    assert pdf_threats(source)  # the sample really is hostile
    rebuilt = rebuild_pdf(source, Limits())
    assert pdf_threats(rebuilt.data) == set()
    removed = {k.value for k, n in rebuilt.removed.items() if n}
    assert removed >= {
        "javascript", "auto_action", "launch", "unsafe_uri", "remote_goto", "submit_form", "import_data",
        "other_action", "multimedia", "file_attachment", "embedded_file", "xfa",
    }  # fmt: skip
    assert rebuilt.removed["unsafe_uri"] == 2  # javascript: (with a tab inside) and file:
    assert verify(rebuilt.data, "pdf", Limits(), detector) == []
    assert pdf_page_contents(rebuilt.data) == pdf_page_contents(source)
    expanded = pdf_expanded(rebuilt.data)
    assert b"https://example.invalid/ok" in expanded  # plain web links survive
    assert b"/NextPage" in expanded  # and so do standard navigation actions
    assert b"payload.exe" not in expanded and b"MZ fake" not in expanded


def test_javascript_in_object_streams_is_found_by_parsing_not_bytes() -> None:
    source = hostile_pdf_everywhere(object_streams=True)
    # A byte scanner sees no /JavaScript (pdfid's blind spot): it is inside a compressed /ObjStm.
    assert b"/JavaScript" not in source
    rebuilt = rebuild_pdf(source, Limits())
    assert rebuilt.removed["javascript"] >= 5


def test_incremental_update_is_dropped_with_its_javascript(detector) -> None:  # type: ignore[no-untyped-def]
    source = pdf_with_incremental_js()
    assert source.count(b"%%EOF") == 2
    rebuilt = rebuild_pdf(source, Limits())
    assert rebuilt.removed["incremental_update"] == 1 and rebuilt.removed["javascript"] == 1
    assert rebuilt.data.count(b"%%EOF") == 1 and b"/Prev" not in rebuilt.data
    assert pdf_threats(rebuilt.data) == set()
    assert verify(rebuilt.data, "pdf", Limits(), detector) == []


@pytest.mark.parametrize("object_streams", [False, True], ids=["plain", "in-objstm"])
def test_worker_path_maps_the_input_and_writes_the_output_in_place(object_streams: bool, detector) -> None:  # type: ignore[no-untyped-def]
    # In a worker the input is a sealed memfd that qpdf maps, and qpdf writes the new
    # file straight into the output memfd: same result as the in-memory path.
    source = hostile_pdf_everywhere(object_streams=object_streams)
    in_memory = rebuild_pdf(source, Limits())
    out = os.memfd_create("kakehashi-output", os.MFD_ALLOW_SEALING)
    with Source.from_memfd(sealed_memfd(source), len(source)) as mapped:
        with os.fdopen(out, "wb", closefd=False) as sink:
            streamed = rebuild_pdf(mapped, Limits(), sink)
    assert streamed.data == b"" and streamed.streamed == os.fstat(out).st_size > 0
    assert streamed.removed == in_memory.removed
    seal(out)
    with Source.from_memfd(out, os.fstat(out).st_size) as output:
        assert pdf_threats(output.read()) == set()
        assert pdf_page_contents(output.read()) == pdf_page_contents(source)
        assert verify(output, "pdf", Limits(), detector) == []
    # The verifier reads a mapping just as well: the hostile input itself fails it.
    with Source.from_memfd(sealed_memfd(source), len(source)) as hostile:
        assert "pdf.javascript" in verify(hostile, "pdf", Limits(), detector)


def test_incremental_update_is_counted_on_a_mapped_input() -> None:
    source = pdf_with_incremental_js()
    with Source.from_memfd(sealed_memfd(source), len(source)) as mapped:
        rebuilt = rebuild_pdf(mapped, Limits())
    assert rebuilt.removed["incremental_update"] == 1 and rebuilt.data.count(b"%%EOF") == 1


@pytest.mark.parametrize("user_password", ["", "secret"], ids=["empty-user-password", "user-password"])
def test_encrypted_pdfs_are_refused(user_password: str) -> None:
    with pytest.raises(Refused) as refused:
        rebuild_pdf(encrypted_pdf(user_password), Limits())
    assert refused.value.code is Code.PDF_ENCRYPTED


def test_benign_open_action_destination_is_kept() -> None:
    pdf = pdf_document(pages=3)
    pdf.Root.OpenAction = pikepdf.Array([pdf.pages[1].obj, pikepdf.Name.Fit])
    rebuilt = rebuild_pdf(pdf_bytes(pdf), Limits())
    assert not rebuilt.removed
    with pikepdf.open(io.BytesIO(rebuilt.data)) as out:
        assert isinstance(out.Root.OpenAction, pikepdf.Array)


def test_open_action_goto_dictionary_is_kept_but_launch_is_not() -> None:
    pdf = pdf_document(pages=2)
    pdf.Root.OpenAction = pikepdf.Dictionary(S=pikepdf.Name.GoTo, D=[pdf.pages[1].obj, pikepdf.Name.Fit])
    assert not rebuild_pdf(pdf_bytes(pdf), Limits()).removed
    pdf.Root.OpenAction = pikepdf.Dictionary(S=pikepdf.Name.Launch, F=pikepdf.String("calc.exe"))
    rebuilt = rebuild_pdf(pdf_bytes(pdf), Limits())
    assert rebuilt.removed["launch"] == 1 and rebuilt.removed["auto_action"] == 1
    with pikepdf.open(io.BytesIO(rebuilt.data)) as out:
        assert "/OpenAction" not in out.Root


def test_page_limit_is_enforced() -> None:
    source = pdf_bytes(pdf_document(pages=5))
    with pytest.raises(Refused) as refused:
        rebuild_pdf(source, Limits(max_pdf_pages=4))
    assert refused.value.code is Code.PDF_TOO_MANY_PAGES
    assert pdf_page_count(rebuild_pdf(source, Limits(max_pdf_pages=5)).data) == 5


def test_japanese_text_and_hundred_pages_survive() -> None:
    pdf = pdf_document(pages=100, text="Page")
    source = pdf_bytes(pdf)
    rebuilt = rebuild_pdf(source, Limits())
    assert pdf_page_contents(rebuilt.data) == pdf_page_contents(source)


@pytest.mark.parametrize(
    "garbage",
    [b"%PDF-1.7\n", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF", b"%PDF-" + b"\x00" * 200],
    ids=["header-only", "no-pages", "nul-bytes"],
)
def test_broken_pdfs_are_refused_not_crashed(garbage: bytes) -> None:
    with pytest.raises(Refused) as refused:
        rebuild_pdf(garbage, Limits())
    assert refused.value.code is Code.PDF_MALFORMED


def test_deeply_nested_arrays_are_refused_or_rebuilt() -> None:
    pdf = pdf_document()
    nested = pikepdf.Array([])
    for _ in range(400):
        nested = pikepdf.Array([nested])
    pdf.Root.Deep = nested
    try:
        rebuilt = rebuild_pdf(pdf_bytes(pdf), Limits())
    except Refused as refused:
        assert refused.code is Code.PDF_MALFORMED
    else:
        assert pdf_page_count(rebuilt.data) == 1
