"""Independent checks the tests apply to rebuilt files.

None of this uses sanitizer code. PDFs are expanded by qpdf (QDF mode: object streams
and stream filters undone) and searched as bytes; OOXML is read with zipfile and the
standard-library XML parser (test input is our own output, so no hardening needed)
and handed to oletools (olevba, msodde, oleobj).
"""

from __future__ import annotations

import io
import re
import tempfile
import warnings
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pikepdf

PDF_THREAT_TOKENS = (
    rb"/JavaScript", rb"/JS\b", rb"/Launch", rb"/SubmitForm", rb"/ImportData", rb"/GoToR", rb"/GoToE",
    rb"/EmbeddedFiles?", rb"/RichMedia", rb"/XFA", rb"/AA\b", rb"/FileAttachment", rb"/Sound", rb"/Movie",
    rb"/Screen", rb"/Rendition", rb"(?i)\(\s*java\s*script:", rb"(?i)\(file:",
)  # fmt: skip


def pdf_expanded(data: bytes) -> bytes:
    """The PDF with every object written out uncompressed (qpdf QDF mode)."""
    with pikepdf.open(io.BytesIO(data)) as pdf:
        out = io.BytesIO()
        pdf.save(
            out, qdf=True, object_stream_mode=pikepdf.ObjectStreamMode.disable, compress_streams=False,
            stream_decode_level=pikepdf.StreamDecodeLevel.generalized,
        )  # fmt: skip
        return out.getvalue()


def pdf_threats(data: bytes) -> set[str]:
    """Threat tokens in the object syntax of the expanded PDF (stream bodies excluded:
    page text may legitimately read "/RichMedia", as in the pdf.js multimedia sample)."""
    expanded = re.sub(rb"\nstream\n.*?\nendstream", b"", pdf_expanded(data), flags=re.DOTALL)
    return {token.decode() for token in PDF_THREAT_TOKENS if re.search(token, expanded)}


def pdf_page_contents(data: bytes) -> list[bytes]:
    """Decoded content stream(s) of each page."""
    pages = []
    with pikepdf.open(io.BytesIO(data)) as pdf:
        for page in pdf.pages:
            contents = page.obj.get("/Contents")
            if contents is None:
                pages.append(b"")
            elif isinstance(contents, pikepdf.Array):
                pages.append(b"".join(part.read_bytes() for part in contents))
            else:
                pages.append(contents.read_bytes())
    return pages


def pdf_page_count(data: bytes) -> int:
    with pikepdf.open(io.BytesIO(data)) as pdf:
        return len(pdf.pages)


def _oletools():  # type: ignore[no-untyped-def]
    # olevba triggers a pyparsing DeprecationWarning at import; keep it out of the
    # test run's "warnings are errors" policy without touching the global filters.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import oletools.msodde
        import oletools.oleobj
        import oletools.olevba
        import oletools.ooxml
    return oletools


def olevba_finds_macros(data: bytes, filename: str) -> bool:
    """olevba's verdict (VBA or XLM) on ``data``."""
    ole = _oletools()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parser = ole.olevba.VBA_Parser(filename, data=data)
        try:
            return bool(parser.detect_vba_macros()) or bool(parser.detect_xlm_macros())
        finally:
            parser.close()


def msodde_links(data: bytes, suffix: str) -> str:
    """DDE links msodde extracts (empty string when none)."""
    ole = _oletools()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"file{suffix}"
        path.write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return str(ole.msodde.process_file(str(path)) or "").strip()


def oleobj_external_relationships(data: bytes, suffix: str) -> list[tuple[str, str]]:
    """(type, target) of external relationships oleobj reports."""
    ole = _oletools()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"file{suffix}"
        path.write_bytes(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parser = ole.ooxml.XmlParser(str(path))
            return [(str(t), str(u)) for t, u in ole.oleobj.find_external_relationships(parser)]


def zip_names(data: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.namelist()


def zip_read(data: bytes, name: str) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.read(name)


def ooxml_external_targets(data: bytes) -> list[tuple[str, str]]:
    """(relationship type suffix, target) of every TargetMode="External" relationship."""
    found = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            if name.endswith(".rels"):
                for rel in ET.fromstring(archive.read(name)):
                    if rel.get("TargetMode") == "External":
                        found.append((rel.get("Type", "").rsplit("/", 1)[-1], rel.get("Target", "")))
    return found


def content_types(data: bytes) -> set[str]:
    return {el.get("ContentType", "") for el in ET.fromstring(zip_read(data, "[Content_Types].xml"))}


def word_text(data: bytes, part: str = "word/document.xml") -> str:
    root = ET.fromstring(zip_read(data, part))
    return "".join(
        el.text or "" for el in root.iter("{http://schemas.openxmlformats.org/wordprocessingml/2006/main}t")
    )


def word_instructions(data: bytes) -> list[str]:
    root = ET.fromstring(zip_read(data, "word/document.xml"))
    w = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
    found = [el.text or "" for el in root.iter(w + "instrText")]
    found += [el.get(w + "instr", "") for el in root.iter(w + "fldSimple")]
    return found


def drawing_text(data: bytes, prefix: str) -> list[str]:
    """All a:t texts of the parts whose names start with ``prefix`` (pptx slides)."""
    texts = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in sorted(n for n in archive.namelist() if n.startswith(prefix) and n.endswith(".xml")):
            root = ET.fromstring(archive.read(name))
            texts += [
                el.text or "" for el in root.iter("{http://schemas.openxmlformats.org/drawingml/2006/main}t")
            ]
    return texts


def xlsx_formulas(data: bytes) -> list[str]:
    found = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            if name.startswith("xl/worksheets/") and name.endswith(".xml"):
                root = ET.fromstring(archive.read(name))
                found += [
                    el.text or ""
                    for el in root.iter("{http://schemas.openxmlformats.org/spreadsheetml/2006/main}f")
                ]
    return found


def workbook_values(data: bytes) -> dict[str, dict[str, object]]:
    """sheet title -> {coordinate: value} via openpyxl (formulas as their text)."""
    import openpyxl

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        workbook = openpyxl.load_workbook(io.BytesIO(data))
    # Stored cells only: iter_rows() would walk the whole bounding box (A1:XFD1048576
    # in the sparse-sheet test is 17 billion cells).
    return {
        ws.title: {c.coordinate: c.value for c in ws._cells.values() if c.value is not None}
        for ws in workbook.worksheets
    }
