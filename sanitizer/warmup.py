"""Run every rebuilder once, in the fork server, on tiny built-in samples.

Each sample goes through twice: as bytes, and the way a worker sees it (sealed memfds,
mapped). Children drop to ``nobody`` when the server runs as root, and an interpreter installed
under a private home directory is then unreadable: any module or codec imported
lazily on first use (``encodings.cp437`` for zip names, ``encodings.cp932``, Pillow
plugins, openpyxl writers...) would fail inside the child. Exercising each path once
before forking loads all of that into the parent, so children inherit it; it also
warms the caches, so the first real file is as fast as the rest.
"""

from __future__ import annotations

import io
import os
import zipfile

import openpyxl
import pikepdf
from PIL import Image

from sanitizer.core import rebuild_untrusted, verify_untrusted
from sanitizer.libmagic import Detector
from sanitizer.limits import Limits
from sanitizer.protocol import empty_memfd, seal, sealed_memfd
from sanitizer.source import Source

_DOCX_PARTS = {
    "[Content_Types].xml": (
        '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/word/document.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
    ),
    "_rels/.rels": (
        '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
        'Target="word/document.xml"/></Relationships>'
    ),
    "word/document.xml": (
        '<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        '<w:body><w:p><w:fldSimple w:instr="DDE a b"><w:r><w:t>x</w:t></w:r></w:fldSimple>'
        "<w:r><w:t>あ</w:t></w:r></w:p></w:body></w:document>"
    ),
}


def _samples() -> list[tuple[str, bytes]]:
    samples: list[tuple[str, bytes]] = []
    pdf = pikepdf.new()
    pdf.add_blank_page()
    pdf.Root.OpenAction = pikepdf.Dictionary(S=pikepdf.Name.JavaScript, JS=pikepdf.String("1"))
    out = io.BytesIO()
    pdf.save(out)
    samples.append(("warm.pdf", out.getvalue()))
    workbook = openpyxl.Workbook()
    workbook.active["A1"] = "あ"
    workbook.active["A2"] = "=WEBSERVICE(A1)"
    out = io.BytesIO()
    workbook.save(out)
    samples.append(("warm.xlsx", out.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in _DOCX_PARTS.items():
            archive.writestr(name, text)
    samples.append(("warm.docx", out.getvalue()))
    for fmt, name in (("PNG", "warm.png"), ("JPEG", "warm.jpg"), ("GIF", "warm.gif")):
        out = io.BytesIO()
        Image.new("RGB", (4, 4), "white").save(out, format=fmt)
        samples.append((name, out.getvalue()))
    samples.append(("warm.csv", "=1+1,あ\r\n".encode("cp932")))
    samples.append(("warm.txt", "テキスト\n".encode("utf-16")))
    samples.append(("warm.tsv", b"a\tb\n"))
    return samples


def warm_up(detector: Detector) -> int:
    """Rebuild and verify each sample once; return how many rebuilt cleanly."""
    limits = Limits()
    ok = 0
    for name, data in _samples():
        outcome = rebuild_untrusted(data, name, limits, detector)
        if outcome.data is not None and outcome.kind is not None:
            if verify_untrusted(outcome.data, outcome.kind, limits, detector).code.value == "ok":
                ok += 1
        ok += _through_memfds(name, data, limits, detector)
    return ok


def _through_memfds(name: str, data: bytes, limits: Limits, detector: Detector) -> int:
    """The worker's own path: sealed input mapped, output written into a memfd, verified
    from a mapping. Returns 1 when the rebuild was verified clean (0 otherwise)."""
    output_fd = empty_memfd()
    try:
        with Source.from_memfd(sealed_memfd(data), len(data)) as source:
            with os.fdopen(output_fd, "wb", closefd=False) as sink:
                outcome = rebuild_untrusted(source, name, limits, detector, sink)
        if outcome.code.value != "ok" or outcome.kind is None:
            return 0
        seal(output_fd)
        with Source.from_memfd(os.dup(output_fd), outcome.size) as rebuilt:
            verdict = verify_untrusted(rebuilt, outcome.kind, limits, detector)
        return 1 if verdict.code.value == "ok" else 0
    finally:
        os.close(output_fd)
