"""Every file of the shared corpus gets an explicit expected verdict.

The corpus is read in place (``/work/shared/corpus`` or ``$KAKEHASHI_CORPUS``); nothing
is copied into the repository. Each rebuilt file is then checked with parsers the
sanitizer does not use for checking: qpdf's QDF expansion plus a byte search for PDFs,
and zipfile/ElementTree plus oletools (olevba, msodde, oleobj) for Office files.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from sanitizer_oracles import (
    content_types,
    drawing_text,
    msodde_links,
    oleobj_external_relationships,
    olevba_finds_macros,
    ooxml_external_targets,
    pdf_page_contents,
    pdf_page_count,
    pdf_threats,
    word_text,
    workbook_values,
    zip_names,
)

from sanitizer.core import rebuild_untrusted, verify_untrusted
from sanitizer.errors import Code
from sanitizer.limits import Limits


@dataclass(frozen=True)
class Expect:
    code: Code
    removed: frozenset[str] = frozenset()
    output_kind: str | None = None


def ok(*removed: str, kind: str | None = None) -> Expect:
    return Expect(Code.OK, frozenset(removed), kind)


EXPECTED: dict[str, Expect] = {
    # clean: content must survive
    "clean/dangerzone-sample-pdf.pdf": ok(),
    "clean/mat2-dirty.jpg": ok("metadata"),  # the GIMP COM comment
    "clean/oletools-harmless-clean.docx": ok("aux_part"),  # webSettings.xml
    "clean/pdfium-hello_world.pdf": ok(),
    "clean/pdfjs-noembed-sjis-japanese.pdf": ok(),
    "clean/pdfjs-vertical-japanese.pdf": ok(),  # /OpenAction destination array is kept
    "clean/pikepdf-fourpages.pdf": ok(),
    "clean/python-pptx-tbl-cell.pptx": ok("aux_part"),  # printerSettings1.bin, thumbnail
    "clean/xlsxwriter-chart_bar01.xlsx": ok("chart"),  # values kept, the chart is not rebuilt
    "clean/xlsxwriter-unicode_shift_jis-japanese.xlsx": ok(),
    # threats: removed, or refused
    "threats/derived-attachedTemplate-external.docx": ok("remote_template", "aux_part"),
    "threats/derived-submitform-importdata.pdf": ok("submit_form", "import_data"),
    "threats/oletools-dde-in-csv.csv": ok("csv_formula", "dde"),
    "threats/oletools-dde-test.docx": ok("dde", "field_code", "aux_part"),
    "threats/oletools-dde-test.xlsx": ok("dde", "external_link", "aux_part"),
    "threats/oletools-embedded-ole-package.docx": ok("ole_object", "unsupported_image", "aux_part"),
    "threats/oletools-excel4_sample_macro-xlm.xls": Expect(Code.LEGACY_OFFICE),
    "threats/oletools-excel4_sample_macro-xlm.xlsm": ok("xlm_macro", "defined_name", kind="xlsx"),
    "threats/oletools-external-oleobject-link.docx": ok("ole_object", "aux_part"),
    "threats/oletools-oleform-PR314-vba-userform.docm": ok("macro", "aux_part", kind="docx"),
    "threats/oletools-sample_with_vba.ppt": Expect(Code.LEGACY_OFFICE),
    "threats/pdfium-annot_javascript.pdf": ok("javascript", "auto_action"),
    "threats/pdfium-annotation_fileattachment.pdf": ok("file_attachment", "embedded_file"),
    "threats/pdfium-document_aactions.pdf": ok("javascript", "auto_action"),
    "threats/pdfium-embedded_attachments.pdf": ok("javascript", "embedded_file"),
    "threats/pdfium-get_page_aaction.pdf": ok("remote_goto", "auto_action"),
    "threats/pdfium-js.pdf": ok("javascript", "other_action"),  # /S /Javascript (wrong case) counts as other
    "threats/pdfium-launch_action.pdf": ok("launch"),
    "threats/pdfium-simple_xfa.pdf": ok("xfa"),
    "threats/pdfium-uri_action.pdf": ok(),  # https link: kept by policy (links.py)
    "threats/pdfjs-autoprint-js-in-objstm.pdf": ok("javascript", "incremental_update"),
    "threats/pdfjs-bug766086-gotor.pdf": ok("remote_goto"),
    "threats/pdfjs-issue6106-openaction-js.pdf": ok("javascript", "auto_action"),
    "threats/pdfjs-multimedia_annotations.pdf": ok("multimedia", "embedded_file"),
    "threats/qpdf-enc-aes256-userpw-view.pdf": Expect(Code.PDF_ENCRYPTED),
    "threats/qpdf-form-fields-and-annotations.pdf": ok("embedded_file", "file_attachment"),
    "threats/ribbonx-customui.xlsx": ok("custom_ui"),
    "threats/xlsxwriter-hyperlink01-external.xlsx": ok(),  # http hyperlink: kept by policy
    "threats/xlsxwriter-macro01-vba.xlsm": ok("macro", kind="xlsx"),
}


def test_every_corpus_file_has_an_expected_verdict(corpus_dir: Path) -> None:
    present = {
        str(p.relative_to(corpus_dir)) for p in corpus_dir.glob("*/*") if p.suffix not in (".md", ".json")
    }
    assert present == set(EXPECTED)


def _check_pdf(source: bytes, output: bytes, relpath: str) -> None:
    assert pdf_threats(output) == set()
    assert pdf_page_count(output) == pdf_page_count(source)
    if relpath.startswith("clean/"):
        assert pdf_page_contents(output) == pdf_page_contents(source)
    assert output.count(b"%%EOF") == 1  # one revision: incremental updates are gone


def _check_ooxml(source: bytes, output: bytes, kind: str, relpath: str) -> None:
    suffix = "." + kind
    assert not olevba_finds_macros(output, "out" + suffix)
    assert not any("macroEnabled" in t or "vbaProject" in t for t in content_types(output))
    names = [n.lower() for n in zip_names(output)]
    for marker in ("vbaproject", "activex", "embeddings/", "customui", "externallink", "macrosheets/"):
        assert not any(marker in n for n in names), marker
    for rel_type, target in ooxml_external_targets(output):
        assert rel_type == "hyperlink" and target.startswith(("http://", "https://", "mailto:"))
    assert {t.rsplit("/", 1)[-1] for t, _ in oleobj_external_relationships(output, suffix)} <= {"hyperlink"}
    if kind in ("docx", "xlsx"):
        assert msodde_links(output, suffix) == ""
    if kind == "docx":
        assert word_text(output) == word_text(source)
    elif kind == "pptx":
        assert drawing_text(output, "ppt/slides/") == drawing_text(source, "ppt/slides/")
    elif kind == "xlsx" and relpath.startswith("clean/"):
        assert workbook_values(output) == workbook_values(source)


@pytest.mark.parametrize("relpath", sorted(EXPECTED))
def test_corpus_file_rebuilt_or_refused(relpath: str, corpus_dir: Path, detector) -> None:  # type: ignore[no-untyped-def]
    expect = EXPECTED[relpath]
    source = (corpus_dir / relpath).read_bytes()
    outcome = rebuild_untrusted(source, Path(relpath).name, Limits(), detector)
    assert outcome.code is expect.code, outcome.detail
    if expect.code is not Code.OK:
        assert outcome.data is None
        return
    assert {k.value for k, n in outcome.removed.items() if n} == set(expect.removed)
    assert outcome.data is not None and outcome.kind is not None
    if expect.output_kind:
        assert outcome.kind == expect.output_kind
    assert verify_untrusted(outcome.data, outcome.kind, Limits(), detector).code is Code.OK
    if outcome.kind == "pdf":
        _check_pdf(source, outcome.data, relpath)
    elif outcome.kind in ("docx", "xlsx", "pptx"):
        _check_ooxml(source, outcome.data, outcome.kind, relpath)
    elif outcome.kind == "jpeg":
        with Image.open(io.BytesIO(outcome.data)) as out, Image.open(io.BytesIO(source)) as src:
            assert out.size == src.size and "comment" not in out.info and not out.getexif()
    elif outcome.kind == "csv":
        assert outcome.data.startswith(b"\xef\xbb\xbf'=cmd|")
        assert msodde_links(outcome.data, ".csv") == ""


def test_corpus_through_the_worker_pool(corpus_dir: Path, pool) -> None:  # type: ignore[no-untyped-def]
    """The same verdicts through real isolation (fork server, rlimits, verify child)."""
    for relpath, expect in sorted(EXPECTED.items()):
        result = pool.sanitize((corpus_dir / relpath).read_bytes(), Path(relpath).name)
        assert result.code is expect.code, (relpath, result.report.detail)
        assert (result.data is not None) == (expect.code is Code.OK)
        if result.rebuilt:
            assert result.report.output_name and result.report.output_sha256
            assert {k.value for k, n in result.report.removed.items() if n} == set(expect.removed)


def test_macro_enabled_inputs_come_out_macro_free(corpus_dir: Path, pool) -> None:  # type: ignore[no-untyped-def]
    result = pool.sanitize((corpus_dir / "threats/xlsxwriter-macro01-vba.xlsm").read_bytes(), "予算.xlsm")
    assert result.rebuilt and result.report.output_extension == "xlsx"
    assert result.report.output_name == "予算.xlsx"
    assert olevba_finds_macros((corpus_dir / "threats/xlsxwriter-macro01-vba.xlsm").read_bytes(), "in.xlsm")
    assert not olevba_finds_macros(result.data or b"", "out.xlsx")
    docm = pool.sanitize(
        (corpus_dir / "threats/oletools-oleform-PR314-vba-userform.docm").read_bytes(), "x.docm"
    )
    assert docm.report.output_extension == "docx"
    assert not olevba_finds_macros(docm.data or b"", "out.docx")
