"""Pure builders for 行政文書 exports: rows in, xlsx/CSV bytes out (documented columns).

Every row shows 日時 (JST, to the second), the sender's name and 所属 at the time of sending,
the room, the text with its edit history, and attachments with SHA-256 — what the national
rule asks of chat kept as 行政文書 (date, party and affiliation).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font

from shared.timeutil import JST, parse_iso

# (heading, key) in export order; documented in docs/records.md.
COLUMNS = (
    ("日時（JST）", "at"), ("和暦", "wareki"), ("ルーム", "room"), ("メッセージID", "message_id"),
    ("返信元ID", "thread_root_id"), ("送信者", "sender"), ("所属（送信時）", "affiliation"), ("本文", "body"),
    ("重要", "important"), ("編集履歴", "history"), ("削除", "deleted"), ("添付ファイル", "attachments"),
    ("添付SHA-256", "attachment_sha256"), ("行政文書区分", "record_class"), ("保存期間満了日", "retain_until"),
)
# Eras since the Showa era ended; enough for chat records.
_ERAS = ((date(2019, 5, 1), "令和"), (date(1989, 1, 8), "平成"))


def wareki(moment: date) -> str:
    """2026-04-01 → 令和8年4月1日 (first year written 元年)."""
    for start, name in _ERAS:
        if moment >= start:
            year = moment.year - start.year + 1
            return f"{name}{'元' if year == 1 else year}年{moment.month}月{moment.day}日"
    return moment.isoformat()


def jst(stored: str) -> datetime:
    return parse_iso(stored).astimezone(JST)


@dataclass(frozen=True)
class ExportRow:
    at: str
    wareki: str
    room: str
    message_id: int
    thread_root_id: int | None
    sender: str
    affiliation: str
    body: str
    important: str
    history: str
    deleted: str
    attachments: str
    attachment_sha256: str
    record_class: str
    retain_until: str


def _columns(with_wareki: bool) -> list[tuple[str, str]]:
    return [c for c in COLUMNS if with_wareki or c[1] != "wareki"]


def to_xlsx(rows: list[ExportRow], info: list[tuple[str, str]], *, with_wareki: bool) -> bytes:
    """Sheet 記録 holds the rows; sheet 出力情報 the room, members and export conditions."""
    columns = _columns(with_wareki)
    return table_xlsx("記録", [h for h, _ in columns], [[getattr(r, k) for _, k in columns] for r in rows], info,
                      wrap_column="本文")


def to_csv(rows: list[ExportRow], *, with_wareki: bool) -> bytes:
    columns = _columns(with_wareki)
    return table_csv([h for h, _ in columns], [[getattr(r, k) for _, k in columns] for r in rows])


def table_xlsx(title: str, headings: list[str], rows: list[list[Any]], info: list[tuple[str, str]], *,
               wrap_column: str | None = None) -> bytes:
    """One data sheet (bold header, frozen) and an 出力情報 sheet. Every value is stored as data."""
    wb = Workbook()
    ws = wb.active
    ws.title = title
    for c_index, heading in enumerate(headings, start=1):
        _put(ws.cell(row=1, column=c_index), heading)
        ws.cell(row=1, column=c_index).font = Font(bold=True)
        ws.column_dimensions[ws.cell(row=1, column=c_index).column_letter].width = 18
    for r_index, row in enumerate(rows, start=2):
        for c_index, value in enumerate(row, start=1):
            _put(ws.cell(row=r_index, column=c_index), value)
    if wrap_column in headings:
        col = headings.index(wrap_column) + 1
        ws.column_dimensions[ws.cell(row=1, column=col).column_letter].width = 60
        for cells in ws.iter_rows(min_row=2, min_col=col, max_col=col):
            cells[0].alignment = Alignment(wrap_text=True, vertical="top")
    ws.freeze_panes = "A2"
    meta = wb.create_sheet("出力情報")
    for r_index, (key, value) in enumerate(info, start=1):
        _put(meta.cell(row=r_index, column=1), key)
        _put(meta.cell(row=r_index, column=2), value)
    meta.column_dimensions["A"].width = 24
    meta.column_dimensions["B"].width = 80
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def _put(cell: Any, value: object) -> None:
    """Write a value as data: openpyxl would store a string starting with "=" as a formula."""
    cell.value = value
    if isinstance(value, str) and value.startswith("="):
        cell.data_type = "s"


def table_csv(headings: list[str], rows: list[list[Any]]) -> bytes:
    """UTF-8 with BOM (Excel on LGWAN terminals opens it with Japanese intact), CRLF, all fields quoted.

    Cells that a spreadsheet would evaluate (=, +, -, @ at the start) get a leading apostrophe.
    """
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(headings)
    for row in rows:
        writer.writerow([_csv_safe(value) for value in row])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def _csv_safe(value: object) -> str:
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠"):
        return "'" + text
    return text
