"""Stable refusal codes and the Japanese/English messages shown to staff and guests.

The code strings are part of the public contract (reports, audit rows, the relay's
notices): never rename one, only add. Messages never quote file content.
"""

from __future__ import annotations

from enum import StrEnum


class Code(StrEnum):
    """Why a file was refused (or ``OK`` when it was rebuilt)."""

    OK = "ok"
    EMPTY_FILE = "empty_file"
    TOO_LARGE = "too_large"
    UNSUPPORTED_TYPE = "unsupported_type"
    TYPE_MISMATCH = "type_mismatch"
    LEGACY_OFFICE = "legacy_office"
    ACTIVE_MARKUP = "active_markup"
    PDF_ENCRYPTED = "pdf_encrypted"
    PDF_MALFORMED = "pdf_malformed"
    PDF_TOO_MANY_PAGES = "pdf_too_many_pages"
    OFFICE_ENCRYPTED = "office_encrypted"
    OOXML_MALFORMED = "ooxml_malformed"
    OOXML_UNKNOWN_PART = "ooxml_unknown_part"
    XML_FORBIDDEN_CONSTRUCT = "xml_forbidden_construct"
    ZIP_BOMB = "zip_bomb"
    ZIP_TOO_MANY_ENTRIES = "zip_too_many_entries"
    ZIP_UNSAFE_NAME = "zip_unsafe_name"
    XLSX_TOO_MANY_CELLS = "xlsx_too_many_cells"
    IMAGE_MALFORMED = "image_malformed"
    IMAGE_TOO_LARGE = "image_too_large"
    TEXT_UNDECODABLE = "text_undecodable"
    CSV_MALFORMED = "csv_malformed"
    LIMIT_CPU = "limit_cpu"
    LIMIT_MEMORY = "limit_memory"
    LIMIT_TIME = "limit_time"
    WORKER_CRASHED = "worker_crashed"
    WORKER_PROTOCOL = "worker_protocol"
    VERIFY_FAILED = "verify_failed"
    INTERNAL_ERROR = "internal_error"


# (ja, en). Japanese first: the users are municipal staff.
MESSAGES: dict[Code, tuple[str, str]] = {
    Code.OK: (
        "ファイルを無害化して再構成しました。",
        "The file was sanitised and rebuilt.",
    ),
    Code.EMPTY_FILE: (
        "ファイルが空です。",
        "The file is empty.",
    ),
    Code.TOO_LARGE: (
        "ファイルが大きすぎるため受け付けられません。",
        "The file is too large to accept.",
    ),
    Code.UNSUPPORTED_TYPE: (
        "この形式のファイルは受け付けていません。PDF、Word/Excel/PowerPoint（OOXML）、PNG/JPEG/GIF、テキスト/CSV のみ送信できます。",
        "This file type is not accepted. Only PDF, Word/Excel/PowerPoint (OOXML), PNG/JPEG/GIF and text/CSV can be sent.",
    ),
    Code.TYPE_MISMATCH: (
        "ファイル名の拡張子と実際の内容が一致しません。",
        "The file name extension does not match the file's content.",
    ),
    Code.LEGACY_OFFICE: (
        "旧形式の Office ファイル（.doc/.xls/.ppt）は受け付けていません。.docx/.xlsx/.pptx 形式で保存し直して送信してください。",
        "Legacy Office files (.doc/.xls/.ppt) are not accepted. Please save the file as .docx/.xlsx/.pptx and send it again.",
    ),
    Code.ACTIVE_MARKUP: (
        "SVG や HTML はスクリプトを含められるため受け付けていません。PNG または PDF に変換して送信してください。",
        "SVG and HTML can carry scripts and are not accepted. Please convert to PNG or PDF and send it again.",
    ),
    Code.PDF_ENCRYPTED: (
        "パスワード保護（暗号化）された PDF は検査できないため受け付けていません。保護を解除して送信してください。",
        "Password-protected (encrypted) PDFs cannot be inspected and are not accepted. Please remove the protection and send it again.",
    ),
    Code.PDF_MALFORMED: (
        "PDF が壊れているか、読み取れない構造です。",
        "The PDF is damaged or has a structure that cannot be read.",
    ),
    Code.PDF_TOO_MANY_PAGES: (
        "PDF のページ数が上限を超えています。",
        "The PDF has more pages than allowed.",
    ),
    Code.OFFICE_ENCRYPTED: (
        "パスワード保護（暗号化）された Office ファイルは検査できないため受け付けていません。保護を解除して送信してください。",
        "Password-protected (encrypted) Office files cannot be inspected and are not accepted. Please remove the protection and send it again.",
    ),
    Code.OOXML_MALFORMED: (
        "Office ファイルが壊れているか、読み取れない構造です。",
        "The Office file is damaged or has a structure that cannot be read.",
    ),
    Code.OOXML_UNKNOWN_PART: (
        "Office ファイルに安全性を確認できない構成要素が含まれているため受け付けていません。",
        "The Office file contains a component whose safety cannot be established, so it is not accepted.",
    ),
    Code.XML_FORBIDDEN_CONSTRUCT: (
        "ファイル内の XML に許可されていない構文（DTD・外部実体など）が含まれています。",
        "XML inside the file uses a forbidden construct (DTD, external entity, ...).",
    ),
    Code.ZIP_BOMB: (
        "展開後のサイズが異常に大きいため受け付けていません（ZIP 爆弾の疑い）。",
        "The file expands to an abnormal size and is not accepted (suspected zip bomb).",
    ),
    Code.ZIP_TOO_MANY_ENTRIES: (
        "ファイル内の要素数が上限を超えています。",
        "The file contains more entries than allowed.",
    ),
    Code.ZIP_UNSAFE_NAME: (
        "ファイル内に不正なパス名（../ など）を持つ要素があります。",
        "An entry inside the file has an unsafe path name (such as ../).",
    ),
    Code.XLSX_TOO_MANY_CELLS: (
        "Excel ファイルのセル数が上限を超えています。",
        "The Excel workbook has more cells than allowed.",
    ),
    Code.IMAGE_MALFORMED: (
        "画像が壊れているか、読み取れません。",
        "The image is damaged or cannot be read.",
    ),
    Code.IMAGE_TOO_LARGE: (
        "画像の画素数が上限を超えています（展開爆弾の疑い）。",
        "The image has more pixels than allowed (suspected decompression bomb).",
    ),
    Code.TEXT_UNDECODABLE: (
        "テキストの文字コードを判別できません。UTF-8 または Shift_JIS で保存して送信してください。",
        "The text encoding could not be determined. Please save as UTF-8 or Shift_JIS and send it again.",
    ),
    Code.CSV_MALFORMED: (
        "CSV の構造を読み取れません（閉じていない引用符や極端に長いセルなど）。",
        "The CSV structure cannot be read (an unclosed quote, an extremely long cell, ...).",
    ),
    Code.LIMIT_CPU: (
        "処理時間（CPU）の上限を超えたため中止しました。",
        "Processing was stopped because it exceeded the CPU time limit.",
    ),
    Code.LIMIT_MEMORY: (
        "メモリ使用量の上限を超えたため中止しました。",
        "Processing was stopped because it exceeded the memory limit.",
    ),
    Code.LIMIT_TIME: (
        "処理時間の上限を超えたため中止しました。",
        "Processing was stopped because it exceeded the time limit.",
    ),
    Code.WORKER_CRASHED: (
        "無害化処理が異常終了しました。ファイルは受け付けていません。",
        "The sanitiser process terminated abnormally. The file was not accepted.",
    ),
    Code.WORKER_PROTOCOL: (
        "無害化処理から不正な応答がありました。ファイルは受け付けていません。",
        "The sanitiser process returned an invalid response. The file was not accepted.",
    ),
    Code.VERIFY_FAILED: (
        "再構成後の検査で危険な要素が残っていたため受け付けていません。",
        "A dangerous element remained after rebuilding, so the file was not accepted.",
    ),
    Code.INTERNAL_ERROR: (
        "無害化処理中に予期しないエラーが発生しました。ファイルは受け付けていません。",
        "An unexpected error occurred while sanitising. The file was not accepted.",
    ),
}


def message_ja(code: Code) -> str:
    """The Japanese message for ``code``."""
    return MESSAGES[code][0]


def message_en(code: Code) -> str:
    """The English message for ``code``."""
    return MESSAGES[code][1]


class Refused(Exception):  # noqa: N818 - "Refused" reads as the verdict, which is the point
    """A rebuilder's verdict that the file must not pass.

    ``detail`` is a short, fixed English phrase for logs and reports (for example
    ``"member ratio"``); it must never contain text taken from the file.
    """

    def __init__(self, code: Code, detail: str = "") -> None:
        super().__init__(f"{code.value}: {detail}" if detail else code.value)
        self.code = code
        self.detail = detail
