"""The PDF of a 行政文書 export (acceptance statement 12): the rows of the xlsx/CSV laid out for reading,
printing and filing — 日時 (JST, to the second), 送信者 and 所属 at the time of sending, the text,
its edit history and the attachments with SHA-256, after a first block on the room, its members and
the export conditions.

Japanese text is set in reportlab's built-in CID font HeiseiKakuGo-W5 (Adobe-Japan1): there is no
font file to ship or embed, and every Japanese PDF viewer supplies a matching font. (So the file is
not PDF/A, which needs embedded fonts; the signed xlsx/CSV beside it remain the machine-readable
record.) Message text goes in escaped: reportlab's Paragraph reads a small markup language, and a
message that says ``<font …>`` must print as written.
"""

from __future__ import annotations

import io
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from .records_export import ExportRow

FONT = "HeiseiKakuGo-W5"
MAX_PDF_ROWS = 5_000     # above this the bundle carries xlsx/CSV only (split by period for a PDF)

pdfmetrics.registerFont(UnicodeCIDFont(FONT))

# wordWrap CJK: Japanese has no spaces, and a hash or URL must break anywhere rather than overflow.
_BASE = ParagraphStyle("base", fontName=FONT, fontSize=9, leading=13, wordWrap="CJK")
_TITLE = ParagraphStyle("title", parent=_BASE, fontSize=15, leading=20, spaceAfter=4 * mm)
_HEAD = ParagraphStyle("head", parent=_BASE, fontSize=9.5, leading=13, textColor=colors.HexColor("#1a3d6d"))
_META = ParagraphStyle("meta", parent=_BASE, fontSize=7.5, leading=10, textColor=colors.HexColor("#555555"))
_BODY = ParagraphStyle("body", parent=_BASE, fontSize=9.5, leading=14, leftIndent=3 * mm, spaceBefore=1 * mm)
_NOTE = ParagraphStyle("note", parent=_BASE, fontSize=8, leading=11, leftIndent=3 * mm,
                       textColor=colors.HexColor("#333333"))


def _p(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(text).replace("\n", "<br/>"), style)


def _message(r: ExportRow, with_wareki: bool) -> list[Flowable]:
    when = f"{r.at}（{r.wareki}）" if with_wareki and r.wareki else r.at
    who = f"{r.sender}（{r.affiliation}）" if r.affiliation else r.sender
    meta = [f"メッセージID {r.message_id}"]
    if r.thread_root_id is not None:
        meta.append(f"返信元ID {r.thread_root_id}")
    meta += [label for label in (r.important, r.deleted) if label]
    if r.record_class:
        meta.append(f"行政文書区分 {r.record_class}")
    if r.retain_until:
        meta.append(f"保存期間満了日 {r.retain_until}")
    block: list[Flowable] = [_p(f"{when}　{who}", _HEAD), _p("　".join(meta), _META),
                             _p(r.body if r.body else "（本文なし）", _BODY)]
    if r.history:
        block.append(_p("編集履歴\n" + r.history, _NOTE))
    if r.attachments:
        names, hashes = r.attachments.split("\n"), r.attachment_sha256.split("\n")
        block.append(_p("\n".join(f"添付ファイル {name}　SHA-256 {sha}"
                                  for name, sha in zip(names, hashes, strict=False)), _NOTE))
    block.append(Spacer(0, 3 * mm))
    return block


def to_pdf(rows: list[ExportRow], info: list[tuple[str, str]], *, with_wareki: bool) -> bytes:
    """A4 portrait: the export's 出力情報 as a table, then one block per message, page numbers below."""
    room = dict(info).get("ルーム", "")
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
                            bottomMargin=15 * mm, title=f"行政文書 書き出し {room}", author="Kakehashi",
                            subject="行政文書 書き出し", creator="Kakehashi")

    def footer(canvas: Any, document: Any) -> None:
        canvas.saveState()
        canvas.setFont(FONT, 7.5)
        canvas.drawString(15 * mm, 8 * mm, room)
        canvas.drawRightString(A4[0] - 15 * mm, 8 * mm, f"{document.page} ページ")
        canvas.restoreState()

    table = Table([[_p(key, _META), _p(value, _BASE)] for key, value in info], colWidths=[28 * mm, 152 * mm])
    table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#999999")),
                               ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#eef2f7")),
                               ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    story: list[Flowable] = [_p("行政文書 書き出し", _TITLE), table, Spacer(0, 6 * mm)]
    for row in rows:
        story.extend(_message(row, with_wareki))
    if not rows:
        story.append(_p("該当するメッセージはありません。", _BASE))
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()
