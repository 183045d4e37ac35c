"""What a file really is (libmagic), whether its name agrees, and who rebuilds it.

``REBUILDERS`` is the single allow-list of accepted types. A type that is not a key
there is refused, whatever its name says. The content decides the type; the extension
must belong to that type, so ``invoice.pdf`` that is really a zip is refused rather than
"helpfully" rebuilt as something else. A polyglot (say a PDF with a zip appended) is
rebuilt strictly as the type libmagic reports for its first bytes; the rebuild writes a
new file of that type only, so the other personality does not survive.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import BinaryIO

from sanitizer.errors import Code, Refused
from sanitizer.image import rebuild_image
from sanitizer.kinds import KINDS
from sanitizer.libmagic import Detector
from sanitizer.limits import Limits
from sanitizer.ooxml import CT_NS, parse_xml, rebuild_docx, rebuild_pptx
from sanitizer.ooxml_parts import MAIN_TYPES
from sanitizer.pdf import rebuild_pdf
from sanitizer.report import Rebuilt
from sanitizer.source import Source
from sanitizer.text import rebuild_csv, rebuild_text, rebuild_tsv
from sanitizer.xlsx import rebuild_xlsx

# (input, limits, sink) -> Rebuilt. A rebuilder that can write its output straight into
# ``sink`` (PDF: qpdf writes to the worker's output memfd) does so and returns a
# ``Rebuilt`` with ``streamed`` set; the others return the bytes.
Rebuilder = Callable[[Source, Limits, BinaryIO | None], Rebuilt]


@dataclass(frozen=True, slots=True)
class FileType:
    """An accepted type (see ``kinds.FileKind``) together with its pure rebuilder."""

    kind: str
    extensions: frozenset[str]
    output_extension: str
    mime: str
    rebuild: Rebuilder


def _allow(kind: str, rebuild: Rebuilder) -> FileType:
    info = KINDS[kind]
    return FileType(info.kind, info.extensions, info.output_extension, info.mime, rebuild)


def _whole(rebuild: Callable[[bytes, Limits], Rebuilt]) -> Rebuilder:
    """Adapt a rebuilder that needs the whole input as ``bytes`` and returns its output."""

    def run(source: Source, limits: Limits, sink: BinaryIO | None) -> Rebuilt:
        del sink
        return rebuild(source.read(), limits)

    return run


# The single allow-list: content of any other type is refused.
REBUILDERS: Mapping[str, FileType] = {
    ft.kind: ft
    for ft in (
        _allow("pdf", rebuild_pdf),
        _allow("docx", _whole(rebuild_docx)),
        _allow("xlsx", _whole(rebuild_xlsx)),
        _allow("pptx", _whole(rebuild_pptx)),
        _allow("png", _whole(partial(rebuild_image, kind="png"))),
        _allow("jpeg", _whole(partial(rebuild_image, kind="jpeg"))),
        _allow("gif", _whole(partial(rebuild_image, kind="gif"))),
        _allow("text", _whole(rebuild_text)),
        _allow("csv", _whole(rebuild_csv)),
        _allow("tsv", _whole(rebuild_tsv)),
    )
}
if set(REBUILDERS) != set(KINDS):
    raise RuntimeError("kinds.KINDS and detect.REBUILDERS disagree")

_OD = "application/vnd.openxmlformats-officedocument."
_IMAGE_MIMES = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif"}
_ZIP_MIMES = frozenset({"application/zip", "application/x-zip-compressed", "application/octet-stream"})
_OOXML_MIME_KIND = {
    _OD + "wordprocessingml.document": "docx",
    _OD + "wordprocessingml.template": "docx",
    _OD + "spreadsheetml.sheet": "xlsx",
    _OD + "spreadsheetml.template": "xlsx",
    _OD + "presentationml.presentation": "pptx",
    _OD + "presentationml.slideshow": "pptx",
    _OD + "presentationml.template": "pptx",
}
_LEGACY_OFFICE_MIMES = frozenset(
    {"application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
     "application/x-ole-storage", "application/vnd.ms-office", "application/CDFV2"}
)  # fmt: skip
_LEGACY_OFFICE_EXTENSIONS = frozenset({"doc", "dot", "xls", "xlt", "xla", "ppt", "pot", "pps", "xlsb"})
_ACTIVE_MARKUP_MIMES = frozenset({"text/html", "image/svg+xml", "application/xhtml+xml", "image/svg"})
_ACTIVE_MARKUP_EXTENSIONS = frozenset(
    {"svg", "svgz", "html", "htm", "xhtml", "shtml", "mht", "mhtml", "hta", "xml", "xsl"}
)
_TEXT_MIME_EXCLUDED = frozenset({"text/html", "text/rtf", "text/xml"})
_TEXT_KINDS = frozenset({"text", "csv", "tsv"})
_MAX_CONTENT_TYPES_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Detection:
    """The verdict on a file's type.

    Attributes:
        file_type: the accepted type it will be rebuilt as.
        mime: what libmagic said.
        declared_extension: lower-case extension of the declared name.
        macro_enabled: OOXML only: the main part was macro-enabled.
    """

    file_type: FileType
    mime: str
    declared_extension: str
    macro_enabled: bool = False


def declared_extension(declared_name: str) -> str:
    """Lower-case extension of the last path component, without the dot ("" if none)."""
    base = declared_name.replace("\\", "/").rsplit("/", 1)[-1].strip().rstrip(".")
    ext = posixpath.splitext(base)[1]
    return ext[1:].lower() if ext else ""


def ooxml_main_kind(data: bytes) -> tuple[str, bool]:
    """Kind and macro flag from ``[Content_Types].xml``, reading nothing else from the zip.

    Raises:
        Refused: ``OOXML_MALFORMED``, ``OFFICE_ENCRYPTED`` or ``UNSUPPORTED_TYPE``.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info = next((i for i in archive.infolist() if i.filename.lower() == "[content_types].xml"), None)
            if info is None:
                raise Refused(Code.UNSUPPORTED_TYPE, "zip without [Content_Types].xml")
            if info.flag_bits & 0x1:
                raise Refused(Code.OFFICE_ENCRYPTED, "encrypted zip")
            if info.file_size > _MAX_CONTENT_TYPES_BYTES:
                raise Refused(Code.ZIP_BOMB, "oversized [Content_Types].xml")
            with archive.open(info) as fh:
                content_types = fh.read(_MAX_CONTENT_TYPES_BYTES + 1)
    except Refused:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        ValueError,
        OSError,
        EOFError,
        NotImplementedError,
    ) as exc:
        raise Refused(Code.OOXML_MALFORMED, "unreadable zip") from exc
    mains = {
        MAIN_TYPES[el.get("ContentType", "")]
        for el in parse_xml(content_types)
        if el.tag == CT_NS + "Override" and el.get("ContentType", "") in MAIN_TYPES
    }
    if len(mains) != 1:
        raise Refused(Code.UNSUPPORTED_TYPE, "no single known main document type")
    return mains.pop()


def detect(untrusted: bytes | Source, declared_name: str, detector: Detector) -> Detection:
    """Decide which rebuilder may handle ``untrusted``, or refuse.

    libmagic sees the whole input in place (a memfd is not copied for it); only types
    that need more than the MIME type (zips, OLE2, text) read the bytes themselves.

    Args:
        untrusted: the untrusted bytes.
        declared_name: the file name the sender gave (only its extension is used).
        detector: libmagic handles.

    Returns:
        The detection, naming an entry of ``REBUILDERS``.

    Raises:
        Refused: ``EMPTY_FILE``, ``UNSUPPORTED_TYPE``, ``TYPE_MISMATCH``, ``LEGACY_OFFICE``,
            ``ACTIVE_MARKUP``, ``OFFICE_ENCRYPTED`` and, for zips, ``OOXML_MALFORMED``.
    """
    source = Source.of(untrusted)
    if not source.size:
        raise Refused(Code.EMPTY_FILE)
    ext = declared_extension(declared_name)
    mime = detector.mime(source.buffer())
    kind: str | None = None
    macro_enabled = False
    if mime == "application/pdf":
        kind = "pdf"
    else:
        kind, macro_enabled = _other_kind(source.read(), mime, ext, detector)
    if kind is None:
        if ext in _LEGACY_OFFICE_EXTENSIONS:
            raise Refused(Code.LEGACY_OFFICE, "legacy office extension")
        raise Refused(Code.UNSUPPORTED_TYPE, "type not on the allow-list")
    file_type = REBUILDERS[kind]
    if ext not in file_type.extensions:
        raise Refused(Code.TYPE_MISMATCH, "extension does not match content")
    return Detection(file_type=file_type, mime=mime, declared_extension=ext, macro_enabled=macro_enabled)


def _other_kind(data: bytes, mime: str, ext: str, detector: Detector) -> tuple[str | None, bool]:
    """The kind of a non-PDF input (None if not accepted), and the OOXML macro flag."""
    kind: str | None = None
    macro_enabled = False
    if mime in _IMAGE_MIMES:
        kind = _IMAGE_MIMES[mime]
    elif mime in _ACTIVE_MARKUP_MIMES or ext in _ACTIVE_MARKUP_EXTENSIONS:
        raise Refused(Code.ACTIVE_MARKUP, "svg, html or xml")
    elif mime in _LEGACY_OFFICE_MIMES or "Composite Document File" in detector.description(data):
        if mime == "application/encrypted" or "Encrypted" in detector.description(data):
            raise Refused(Code.OFFICE_ENCRYPTED, "encrypted office container")
        raise Refused(Code.LEGACY_OFFICE, "ole2 compound file")
    elif mime == "application/encrypted":
        raise Refused(Code.OFFICE_ENCRYPTED, "encrypted office container")
    elif mime in _OOXML_MIME_KIND or (mime in _ZIP_MIMES and data[:4] == b"PK\x03\x04"):
        kind, macro_enabled = ooxml_main_kind(data)
        claimed = _OOXML_MIME_KIND.get(mime)
        if claimed is not None and claimed != kind:
            raise Refused(Code.TYPE_MISMATCH, "libmagic and content types disagree")
    elif (mime.startswith("text/") and mime not in _TEXT_MIME_EXCLUDED) or mime in (
        "application/json",
        "application/csv",
    ):
        if ext in REBUILDERS["csv"].extensions or ext in REBUILDERS["tsv"].extensions:
            kind = "tsv" if ext == "tsv" else "csv"
        else:
            kind = "text"
    return kind, macro_enabled
