"""The accepted file types as data: names, extensions, output format.

Kept apart from ``detect.REBUILDERS`` (which adds the rebuild functions) so that the
parent process, which only routes bytes to workers, can know the vocabulary without
importing pikepdf, openpyxl, Pillow or libmagic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

_OD = "application/vnd.openxmlformats-officedocument."


@dataclass(frozen=True, slots=True)
class FileKind:
    """One accepted type.

    Attributes:
        kind: short name used in reports and the worker protocol.
        extensions: extensions a declared name may carry for this content.
        output_extension: extension of the rebuilt file (macro-enabled inputs lose the "m").
        mime: MIME type of the rebuilt file.
    """

    kind: str
    extensions: frozenset[str]
    output_extension: str
    mime: str


KINDS: Mapping[str, FileKind] = {
    k.kind: k
    for k in (
        FileKind("pdf", frozenset({"pdf"}), "pdf", "application/pdf"),
        FileKind(
            "docx", frozenset({"docx", "docm", "dotx", "dotm"}), "docx", _OD + "wordprocessingml.document"
        ),
        FileKind("xlsx", frozenset({"xlsx", "xlsm", "xltx", "xltm"}), "xlsx", _OD + "spreadsheetml.sheet"),
        FileKind(
            "pptx",
            frozenset({"pptx", "pptm", "potx", "potm", "ppsx", "ppsm"}),
            "pptx",
            _OD + "presentationml.presentation",
        ),
        FileKind("png", frozenset({"png"}), "png", "image/png"),
        FileKind("jpeg", frozenset({"jpg", "jpeg", "jpe", "jfif"}), "jpg", "image/jpeg"),
        FileKind("gif", frozenset({"gif"}), "gif", "image/gif"),
        FileKind("text", frozenset({"txt", "text", "log"}), "txt", "text/plain"),
        FileKind("csv", frozenset({"csv"}), "csv", "text/csv"),
        FileKind("tsv", frozenset({"tsv"}), "tsv", "text/tab-separated-values"),
    )
}
