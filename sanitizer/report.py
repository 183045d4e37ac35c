"""What a sanitiser run tells the user: the verdict, what was removed, and the hashes.

``Removed`` names are stable strings (they end up in audit rows and the JSON report);
the labels are for people. Counts are how many instances were removed or neutralised.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sanitizer.errors import Code, message_en, message_ja


class Removed(StrEnum):
    """A class of content the sanitiser removes or neutralises."""

    JAVASCRIPT = "javascript"
    AUTO_ACTION = "auto_action"
    LAUNCH = "launch"
    SUBMIT_FORM = "submit_form"
    IMPORT_DATA = "import_data"
    REMOTE_GOTO = "remote_goto"
    MULTIMEDIA = "multimedia"
    EMBEDDED_FILE = "embedded_file"
    FILE_ATTACHMENT = "file_attachment"
    XFA = "xfa"
    UNSAFE_URI = "unsafe_uri"
    OTHER_ACTION = "other_action"
    INCREMENTAL_UPDATE = "incremental_update"
    MACRO = "macro"
    XLM_MACRO = "xlm_macro"
    ACTIVEX = "activex"
    OLE_OBJECT = "ole_object"
    CUSTOM_UI = "custom_ui"
    EXTERNAL_LINK = "external_link"
    REMOTE_TEMPLATE = "remote_template"
    DDE = "dde"
    FIELD_CODE = "field_code"
    PPT_ACTION = "ppt_action"
    WEB_EXTENSION = "web_extension"
    DATA_CONNECTION = "data_connection"
    MAIL_MERGE = "mail_merge"
    FORMULA = "formula"
    DEFINED_NAME = "defined_name"
    CHART = "chart"
    DRAWING = "drawing"
    MEDIA = "media"
    EMBEDDED_FONT = "embedded_font"
    UNSUPPORTED_IMAGE = "unsupported_image"
    METADATA = "metadata"
    TRAILING_DATA = "trailing_data"
    AUX_PART = "aux_part"
    SIGNATURE = "signature"
    CSV_FORMULA = "csv_formula"
    CONTROL_CHARS = "control_chars"


LABELS: dict[Removed, tuple[str, str]] = {
    Removed.JAVASCRIPT: ("JavaScript", "JavaScript"),
    Removed.AUTO_ACTION: ("自動実行アクション (OpenAction/AA)", "automatic action (OpenAction/AA)"),
    Removed.LAUNCH: ("外部プログラム起動 (Launch)", "Launch action"),
    Removed.SUBMIT_FORM: ("フォーム送信 (SubmitForm)", "SubmitForm action"),
    Removed.IMPORT_DATA: ("データ取込 (ImportData)", "ImportData action"),
    Removed.REMOTE_GOTO: ("外部文書へのジャンプ (GoToR/GoToE)", "GoToR/GoToE action"),
    Removed.MULTIMEDIA: (
        "マルチメディア (RichMedia/Movie/Sound/Screen)",
        "multimedia (RichMedia/Movie/Sound/Screen)",
    ),
    Removed.EMBEDDED_FILE: ("埋め込みファイル", "embedded file"),
    Removed.FILE_ATTACHMENT: ("添付ファイル注釈", "file attachment annotation"),
    Removed.XFA: ("XFA フォーム", "XFA form"),
    Removed.UNSAFE_URI: ("危険な URI (javascript:/file: など)", "unsafe URI (javascript:, file:, ...)"),
    Removed.OTHER_ACTION: ("その他の危険なアクション", "other unsafe action"),
    Removed.INCREMENTAL_UPDATE: ("増分更新（過去の版）", "incremental update (earlier revision)"),
    Removed.MACRO: ("マクロ (VBA)", "macro (VBA)"),
    Removed.XLM_MACRO: ("Excel 4.0 マクロシート", "Excel 4.0 macro sheet"),
    Removed.ACTIVEX: ("ActiveX コントロール", "ActiveX control"),
    Removed.OLE_OBJECT: ("OLE 埋め込みオブジェクト", "OLE object"),
    Removed.CUSTOM_UI: ("リボン拡張 (customUI)", "ribbon customisation (customUI)"),
    Removed.EXTERNAL_LINK: ("外部リンク・外部参照", "external link or reference"),
    Removed.REMOTE_TEMPLATE: ("外部テンプレート参照", "remote template reference"),
    Removed.DDE: ("DDE", "DDE"),
    Removed.FIELD_CODE: ("フィールドコード（表示中の文字は残しました）", "field code (displayed text kept)"),
    Removed.PPT_ACTION: ("PowerPoint の実行アクション", "PowerPoint run/macro action"),
    Removed.WEB_EXTENSION: ("Office アドイン", "Office add-in"),
    Removed.DATA_CONNECTION: ("外部データ接続", "external data connection"),
    Removed.MAIL_MERGE: ("差し込み印刷のデータソース", "mail-merge data source"),
    Removed.FORMULA: ("外部に接続する数式（文字列に変換）", "formula that reaches out (turned into text)"),
    Removed.DEFINED_NAME: ("名前の定義", "defined name"),
    Removed.CHART: ("グラフ", "chart"),
    Removed.DRAWING: ("図形・画像", "drawing or picture"),
    Removed.MEDIA: ("音声・動画", "audio or video"),
    Removed.EMBEDDED_FONT: ("埋め込みフォント", "embedded font"),
    Removed.UNSUPPORTED_IMAGE: (
        "非対応形式の画像 (EMF/WMF など)",
        "image in an unsupported format (EMF, WMF, ...)",
    ),
    Removed.METADATA: ("メタデータ (EXIF・GPS・コメントなど)", "metadata (EXIF, GPS, comments, ...)"),
    Removed.TRAILING_DATA: ("ファイル末尾の余分なデータ", "data after the end of the file"),
    Removed.AUX_PART: (
        "付属パーツ（プリンタ設定・サムネイルなど）",
        "auxiliary part (printer settings, thumbnail, ...)",
    ),
    Removed.SIGNATURE: (
        "デジタル署名（再構成で無効になるため）",
        "digital signature (invalid after rebuilding)",
    ),
    Removed.CSV_FORMULA: (
        "数式として実行されうるセル（先頭に ' を付加）",
        "cell that could run as a formula (prefixed with ')",
    ),
    Removed.CONTROL_CHARS: ("制御文字・双方向制御文字", "control or bidirectional-override characters"),
}

# What verify.py can report finding in a rebuilt file: a fixed vocabulary, so a worker
# can name what it found without quoting any content.
FINDINGS = frozenset(
    {
        "type.mismatch", "verify.unparseable",
        "pdf.encrypted", "pdf.incremental_update", "pdf.javascript", "pdf.auto_action", "pdf.open_action",
        "pdf.forbidden_action", "pdf.unsafe_uri", "pdf.embedded_file", "pdf.forbidden_annotation", "pdf.xfa",
        "pdf.no_pages",
        "zip.encrypted", "zip.unsafe_name", "ooxml.forbidden_part", "ooxml.forbidden_content_type",
        "ooxml.external_relationship", "ooxml.forbidden_relationship", "ooxml.dtd_or_entity",
        "ooxml.forbidden_element", "ooxml.dde_field", "ooxml.external_field", "ooxml.ppt_action",
        "xlsx.dangerous_formula", "xlsx.defined_name",
        "image.metadata", "image.trailing_data",
        "text.not_utf8", "text.control_chars", "csv.formula",
    }
)  # fmt: skip

# A worker reports counts; anything above this is a protocol violation, not a document.
MAX_REPORTED_COUNT = 10_000_000


def summarise(removed: Mapping[Removed, int]) -> tuple[str, str]:
    """Human summary such as ``"JavaScript ×2、埋め込みファイル ×1"`` (ja, en)."""
    items = [(LABELS[k], n) for k, n in sorted(removed.items(), key=lambda kv: kv[0].value) if n > 0]
    if not items:
        return ("除去した要素はありません。", "Nothing needed removing.")
    ja = "、".join(f"{label[0]} ×{n}" for label, n in items)
    en = ", ".join(f"{label[1]} ×{n}" for label, n in items)
    return (ja, en)


@dataclass(frozen=True, slots=True)
class Report:
    """The outcome of one file, as written to ``--report`` and stored in the audit log.

    Attributes:
        code: ``Code.OK`` when rebuilt, otherwise the refusal reason.
        detail: fixed English phrase narrowing the reason; never file content.
        input_name: the declared (display) name, made safe.
        input_sha256 / input_bytes: of the bytes as received.
        detected_type: the type the content was recognised as (``"pdf"``, ``"xlsx"``...).
        output_type / output_extension / output_name / output_sha256 / output_bytes:
            of the rebuilt file; ``None`` when refused.
        removed: what was removed or neutralised, with counts.
        isolation: how the worker was confined (for the audit trail).
        elapsed_ms: wall time of the whole job.
    """

    code: Code
    input_name: str
    input_sha256: str
    input_bytes: int
    detail: str = ""
    detected_type: str | None = None
    output_type: str | None = None
    output_extension: str | None = None
    output_name: str | None = None
    output_sha256: str | None = None
    output_bytes: int | None = None
    removed: Mapping[Removed, int] = field(default_factory=dict)
    isolation: Mapping[str, str] = field(default_factory=dict)
    elapsed_ms: float = 0.0

    @property
    def rebuilt(self) -> bool:
        """True when an output file exists."""
        return self.code is Code.OK

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (the ``--report`` file format)."""
        summary_ja, summary_en = summarise(self.removed)
        return {
            "status": "rebuilt" if self.rebuilt else "refused",
            "code": self.code.value,
            "message": {"ja": message_ja(self.code), "en": message_en(self.code)},
            "detail": self.detail,
            "input": {
                "name": self.input_name,
                "sha256": self.input_sha256,
                "bytes": self.input_bytes,
                "detected_type": self.detected_type,
            },
            "output": None
            if not self.rebuilt
            else {
                "name": self.output_name,
                "type": self.output_type,
                "extension": self.output_extension,
                "sha256": self.output_sha256,
                "bytes": self.output_bytes,
            },
            "removed": [
                {"item": k.value, "ja": LABELS[k][0], "en": LABELS[k][1], "count": n}
                for k, n in sorted(self.removed.items(), key=lambda kv: kv[0].value)
                if n > 0
            ],
            "summary": {"ja": summary_ja, "en": summary_en},
            "isolation": dict(self.isolation),
            "elapsed_ms": round(self.elapsed_ms, 1),
        }

    def to_json(self) -> str:
        """Pretty JSON, UTF-8 friendly (Japanese is kept readable)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n"


def counter() -> Counter[Removed]:
    """A fresh tally for a rebuilder to fill."""
    return Counter()


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """What a rebuilder returns: the new file and what it left out.

    Attributes:
        data: the rebuilt file (empty when it was ``streamed`` to the caller's sink).
        kind: the output type (a key of ``detect.REBUILDERS``).
        removed: tally of removed or neutralised content.
        streamed: bytes written straight into the sink the caller passed, or None.
    """

    data: bytes
    kind: str
    removed: Mapping[Removed, int] = field(default_factory=dict)
    streamed: int | None = None

    @property
    def size(self) -> int:
        """Length of the rebuilt file, wherever it went."""
        return len(self.data) if self.streamed is None else self.streamed
