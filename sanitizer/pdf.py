"""PDF: parse with pikepdf (qpdf), strip active content, write a complete new file.

What goes (CDR-ANCHORS §2.2 lists where DocBleach missed some of these):

- JavaScript anywhere: the ``/Names /JavaScript`` tree, ``/OpenAction``, every ``/AA``
  (catalog, pages, annotations, form fields), ``/A`` on links, widgets and outline items,
  and ``/Next`` chains. Action dictionaries are neutralised *in place*, so an action is
  disarmed no matter which key or array points at it. Objects inside ``/ObjStm`` object
  streams are reached because qpdf parses them: no byte scanning (pdfid misses those).
- Launch, SubmitForm, ImportData, GoToR/GoToE, Rendition/Movie/Sound/RichMediaExecute,
  non-standard Named actions, and URI actions whose scheme is not http/https/mailto.
- Embedded files (``/EF`` in file specifications, the ``/EmbeddedFiles`` tree) and the
  FileAttachment, RichMedia, Movie, Sound, Screen and 3D annotations; unknown annotation
  subtypes too (allow-list).
- XFA (``/AcroForm /XFA``) and ``/NeedsRendering``.

A destination array in ``/OpenAction`` ("open at page 1, fit") is not an action and stays.
qpdf writes every reachable object afresh with a new cross-reference table, so earlier
revisions (incremental updates) and anything unreachable are gone from the output.
"""

from __future__ import annotations

import io
import os
import re
from collections import Counter
from typing import BinaryIO

import pikepdf

from sanitizer.errors import Code, Refused
from sanitizer.limits import Limits
from sanitizer.links import is_safe_link
from sanitizer.report import Rebuilt, Removed, counter
from sanitizer.source import Source

# Action types that are removed, and what the report calls them. Any /S not listed here
# or in _INERT_ACTIONS is removed as OTHER_ACTION (allow-list, not block-list).
_ACTION_CATEGORY: dict[str, Removed] = {
    "/JavaScript": Removed.JAVASCRIPT,
    "/Launch": Removed.LAUNCH,
    "/SubmitForm": Removed.SUBMIT_FORM,
    "/ImportData": Removed.IMPORT_DATA,
    "/GoToR": Removed.REMOTE_GOTO,
    "/GoToE": Removed.REMOTE_GOTO,
    "/Rendition": Removed.MULTIMEDIA,
    "/Movie": Removed.MULTIMEDIA,
    "/Sound": Removed.MULTIMEDIA,
    "/RichMediaExecute": Removed.MULTIMEDIA,
    "/GoTo3DView": Removed.MULTIMEDIA,
    "/URI": Removed.UNSAFE_URI,
    "/Named": Removed.OTHER_ACTION,
}
# Navigation and display toggles that cannot reach outside the document.
_INERT_ACTIONS = frozenset({"/GoTo", "/Hide", "/SetOCGState", "/Trans", "/ResetForm"})
# Acrobat runs any menu item through a Named action (/Print, /SaveAs, /Quit...);
# the standard defines only these four.
_SAFE_NAMED = frozenset({"/NextPage", "/PrevPage", "/FirstPage", "/LastPage"})

_REMOVED_ANNOTS: dict[str, Removed] = {
    "/FileAttachment": Removed.FILE_ATTACHMENT,
    "/Sound": Removed.MULTIMEDIA,
    "/Movie": Removed.MULTIMEDIA,
    "/Screen": Removed.MULTIMEDIA,
    "/RichMedia": Removed.MULTIMEDIA,
    "/3D": Removed.MULTIMEDIA,
}
_KEPT_ANNOTS = frozenset(
    {
        "/Text", "/Link", "/FreeText", "/Line", "/Square", "/Circle", "/Polygon", "/PolyLine",
        "/Highlight", "/Underline", "/Squiggly", "/StrikeOut", "/Stamp", "/Caret", "/Ink",
        "/Popup", "/Widget", "/PrinterMark", "/TrapNet", "/Watermark", "/Redact",
    }
)  # fmt: skip
# Name trees in the catalog's /Names that only ever hold active content.
_ACTIVE_NAME_TREES = ("/JavaScript", "/EmbeddedFiles", "/AlternatePresentations", "/Renditions")
# Catalog entries with no place in a sanitised file: portfolio view, URI base (turns
# relative links into remote ones), web-capture info, XFA rendering switch.
_DROPPED_CATALOG_KEYS = ("/Collection", "/URI", "/SpiderInfo", "/NeedsRendering")
_MAX_NESTING = 256
# JSON keys (qpdf's JSON v2 writes names as "/Name") that make an object worth a full walk.
_TRIGGER_KEYS = ("/S", "/AA", "/A", "/OpenAction", "/JS", "/EF", "/RF", "/XFA", "/Annots", "/Next", "/JavaScript")  # fmt: skip
# One C-level search per object instead of a Python loop over the keys.
_TRIGGER = re.compile(b'"(?:' + b"|".join(re.escape(key.encode()) for key in _TRIGGER_KEYS) + b')"')


def _action_verdict(action: pikepdf.Object) -> Removed | None:
    """``None`` if ``action`` may stay; otherwise the reason it must go."""
    kind = action.get("/S")
    if not isinstance(kind, pikepdf.Name):
        return Removed.OTHER_ACTION
    name = str(kind)
    if name in _INERT_ACTIONS:
        return None
    if name == "/URI":
        uri = action.get("/URI")
        return None if isinstance(uri, pikepdf.String) and is_safe_link(bytes(uri)) else Removed.UNSAFE_URI
    if name == "/Named":
        named = action.get("/N")
        return None if isinstance(named, pikepdf.Name) and str(named) in _SAFE_NAMED else Removed.OTHER_ACTION
    return _ACTION_CATEGORY.get(name, Removed.OTHER_ACTION)


def _looks_like_action(d: pikepdf.Object) -> bool:
    kind = d.get("/S")
    if not isinstance(kind, pikepdf.Name):
        return False
    name = str(kind)
    return name in _ACTION_CATEGORY or name in _INERT_ACTIONS or d.get("/Type") == pikepdf.Name.Action


class _Cleaner:
    """One pass over every object of one document. Holds the tally, nothing global."""

    def __init__(self, removed: Counter[Removed]) -> None:
        self.removed = removed

    def clean_all(self, pdf: pikepdf.Pdf) -> None:
        for obj in pdf.objects:
            # qpdf serialises the parsed object (names already decoded, direct children
            # inlined, references as "n g R") in C++; only objects that mention a key we
            # act on get the slower per-key walk. Most objects of a long document are
            # content streams, fonts and plain pages, and are skipped here.
            if not isinstance(obj, pikepdf.Object):
                continue  # scalars (an indirect /Length, say) come back as Python values
            rendered = obj.to_json(dereference=True)
            if _TRIGGER.search(rendered):
                self._visit(obj, 0)

    def _visit(self, obj: pikepdf.Object, depth: int) -> None:
        if depth > _MAX_NESTING:
            raise Refused(Code.PDF_MALFORMED, "object nesting too deep")
        if not isinstance(obj, pikepdf.Dictionary | pikepdf.Stream | pikepdf.Array):
            return
        if isinstance(obj, pikepdf.Array):
            for item in obj:
                if isinstance(item, pikepdf.Dictionary | pikepdf.Array) and not item.is_indirect:
                    self._visit(item, depth + 1)
            return
        # Children first, so that direct actions are counted before their parent drops them.
        for key in list(obj.keys()):
            child = obj.get(key)
            if isinstance(child, pikepdf.Dictionary | pikepdf.Array) and not child.is_indirect:
                self._visit(child, depth + 1)
        self._clean_dict(obj)

    def _clean_dict(self, d: pikepdf.Object) -> None:
        if _looks_like_action(d):
            verdict = _action_verdict(d)
            if verdict is not None:
                self.removed[verdict] += 1
                self._neutralise(d)
                return
        if "/AA" in d:
            aa = d.get("/AA")
            self.removed[Removed.AUTO_ACTION] += len(aa.keys()) if isinstance(aa, pikepdf.Dictionary) else 1
            del d["/AA"]
        for key in ("/A", "/OpenAction"):
            action = d.get(key)
            if isinstance(action, pikepdf.Dictionary) and _action_verdict(action) is not None:
                if key == "/OpenAction":
                    self.removed[Removed.AUTO_ACTION] += 1
                del d[key]
        if "/JS" in d:
            # A /JS outside a JavaScript action (malformed, or inside a Rendition) still runs in some viewers.
            self.removed[Removed.JAVASCRIPT] += 1
            del d["/JS"]
        if "/EF" in d or "/RF" in d:
            self.removed[Removed.EMBEDDED_FILE] += 1
            for key in ("/EF", "/RF"):
                if key in d:
                    del d[key]
        if "/XFA" in d:
            self.removed[Removed.XFA] += 1
            del d["/XFA"]
        annots = d.get("/Annots")
        if isinstance(annots, pikepdf.Array):
            self._filter_annotations(d, annots)

    def _neutralise(self, action: pikepdf.Object) -> None:
        """Empty an action dictionary in place; viewers ignore an action without /S."""
        for key in list(action.keys()):
            del action[key]

    def _filter_annotations(self, page: pikepdf.Object, annots: pikepdf.Array) -> None:
        kept = []
        for annot in annots:
            subtype = annot.get("/Subtype") if isinstance(annot, pikepdf.Dictionary) else None
            name = str(subtype) if isinstance(subtype, pikepdf.Name) else ""
            if name in _KEPT_ANNOTS:
                kept.append(annot)
            else:
                self.removed[_REMOVED_ANNOTS.get(name, Removed.OTHER_ACTION)] += 1
        if len(kept) != len(annots):
            page["/Annots"] = pikepdf.Array(kept)


def _clean_catalog(pdf: pikepdf.Pdf, removed: Counter[Removed]) -> None:
    root = pdf.Root
    names = root.get("/Names")
    if isinstance(names, pikepdf.Dictionary):
        for key in _ACTIVE_NAME_TREES:
            if key in names:
                del names[key]
    for key in _DROPPED_CATALOG_KEYS:
        if key in root:
            del root[key]
    open_action = root.get("/OpenAction")
    if open_action is not None and not isinstance(open_action, pikepdf.Array | pikepdf.Dictionary):
        del root["/OpenAction"]
        removed[Removed.AUTO_ACTION] += 1


def _open(stream: BinaryIO) -> pikepdf.Pdf:
    try:
        # Over a memfd, qpdf maps the sealed input instead of reading it through Python.
        pdf = pikepdf.open(stream, access_mode=pikepdf.AccessMode.mmap)
    except pikepdf.PasswordError as exc:
        raise Refused(Code.PDF_ENCRYPTED, "password required") from exc
    except (pikepdf.PdfError, RuntimeError, ValueError, OSError) as exc:
        raise Refused(Code.PDF_MALFORMED, "qpdf could not open") from exc
    if pdf.is_encrypted:
        # Opened with the empty user password, but the owner restrictions and the
        # encrypted strings mean we would not be rebuilding what the sender sees.
        pdf.close()
        raise Refused(Code.PDF_ENCRYPTED, "encrypted with empty user password")
    return pdf


def rebuild_pdf(untrusted: bytes | Source, limits: Limits, sink: BinaryIO | None = None) -> Rebuilt:
    """Rebuild a PDF without active content.

    Args:
        untrusted: the uploaded bytes.
        limits: page and object limits.
        sink: if given, a binary file the new PDF is written into (qpdf writes straight
            to its descriptor); the result then has ``streamed`` set and no ``data``.

    Returns:
        The fully rewritten PDF and the tally of what was removed.

    Raises:
        Refused: ``PDF_ENCRYPTED``, ``PDF_MALFORMED`` or ``PDF_TOO_MANY_PAGES``.
    """
    source = Source.of(untrusted)
    removed = counter()
    out = sink if sink is not None else io.BytesIO()
    start = out.tell()
    with source.stream() as stream:
        pdf = _open(stream)
        try:
            with pdf:
                if len(pdf.objects) > limits.max_pdf_objects:
                    raise Refused(Code.PDF_MALFORMED, "too many objects")
                pages = len(pdf.pages)
                if pages > limits.max_pdf_pages:
                    raise Refused(Code.PDF_TOO_MANY_PAGES, "page count over limit")
                if pages == 0:
                    raise Refused(Code.PDF_MALFORMED, "no pages")
                if "/Prev" in pdf.trailer:
                    removed[Removed.INCREMENTAL_UPDATE] += max(1, source.count(b"%%EOF") - 1)
                _Cleaner(removed).clean_all(pdf)
                _clean_catalog(pdf, removed)
                # A complete rewrite: every reachable object is written afresh with one
                # new cross-reference table (no incremental update, nothing unreachable).
                pdf.save(
                    out,
                    linearize=False,
                    compress_streams=True,
                    # Plain objects, no object streams: qpdf 12.4 "generate" writes an xref
                    # stream without /Size when the input trailer lacks one (pdfium
                    # js.pdf), and the result cannot be reopened.
                    object_stream_mode=pikepdf.ObjectStreamMode.disable,
                    # No deterministic_id: it hashes the whole output and triples the save
                    # time of a 15 MB scanned document.
                    fix_metadata_version=False,
                )
        except Refused:
            raise
        except (pikepdf.PdfError, RuntimeError, ValueError, KeyError, TypeError, OSError) as exc:
            raise Refused(Code.PDF_MALFORMED, "qpdf failed while rebuilding") from exc
    if sink is None:
        assert isinstance(out, io.BytesIO)
        return Rebuilt(data=out.getvalue(), kind="pdf", removed=removed)
    sink.flush()
    # qpdf may have written to the descriptor directly; ask the file, not the buffer.
    end = os.lseek(sink.fileno(), 0, os.SEEK_CUR) if _has_fileno(sink) else sink.tell()
    return Rebuilt(data=b"", kind="pdf", removed=removed, streamed=end - start)


def _has_fileno(stream: BinaryIO) -> bool:
    try:
        stream.fileno()
    except (OSError, ValueError, AttributeError):
        return False
    return True
