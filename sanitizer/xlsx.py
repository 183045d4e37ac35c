"""Excel workbooks: allow-list the package, then let openpyxl rebuild a new workbook.

Stage 1 (``ooxml.rebuild_package``) checks the zip, refuses unknown parts, counts cells
and drops VBA, XLM macro sheets, external links, customUI, OLE, ActiveX, pivot caches
and data connections, so openpyxl never even parses them. Stage 2 loads what is left
with openpyxl and copies it into a *new* ``Workbook``: sheet names and order, cell
values, styles, number formats, merged cells, column widths, row heights, freeze panes,
print settings, comments, safe hyperlinks, data validations, conditional formats and
pictures. Defined names (``_xlnm.Auto_Open`` lives there), charts, pivot tables and
anything else never come along. Formulas that can reach outside (DDE, external
references, WEBSERVICE, ...) become text (see ``formulas.py``).
"""

from __future__ import annotations

import io
import warnings
import zipfile
from collections import Counter
from copy import copy
from typing import Any

import openpyxl
from openpyxl.cell.cell import MergedCell
from openpyxl.comments import Comment
from openpyxl.drawing.image import Image as SheetImage
from openpyxl.worksheet.formula import ArrayFormula, DataTableFormula
from openpyxl.worksheet.hyperlink import Hyperlink
from openpyxl.worksheet.worksheet import Worksheet

from sanitizer.errors import Code, Refused
from sanitizer.formulas import formula_verdict
from sanitizer.limits import Limits
from sanitizer.links import is_safe_link
from sanitizer.ooxml import rebuild_package, write_package
from sanitizer.report import Rebuilt, Removed, counter


def _formula_text(value: Any) -> str:
    if isinstance(value, ArrayFormula):
        return value.text or ""
    if isinstance(value, DataTableFormula):
        return ""  # a what-if table: references inside the sheet only, no formula text
    return str(value)


class _SheetCopier:
    """Copies one worksheet into a new workbook; owns the style cache for that workbook."""

    def __init__(self, removed: Counter[Removed]) -> None:
        self.removed = removed
        # Source style array -> target style array. Assigning font/fill/border/... one by
        # one costs tens of microseconds a cell; a workbook has few distinct styles, so
        # map each once and reuse the resulting array (openpyxl keeps it in ``_style``).
        self._styles: dict[tuple[int, ...], Any] = {}

    def copy(self, src: Worksheet, dst: Worksheet) -> None:
        self._sheet_settings(src, dst)
        for rng in src.merged_cells.ranges:
            dst.merge_cells(str(rng))
        # ``_cells`` holds only stored cells; ``iter_rows`` would walk the whole bounding
        # box, which an attacker sets to A1:XFD1048576 with two cells.
        for (row, column), cell in list(src._cells.items()):
            target = dst.cell(row=row, column=column)
            if not isinstance(cell, MergedCell):
                self._value(cell, target)
                self._hyperlink(cell, target)
                if cell.comment is not None:
                    target.comment = Comment(cell.comment.text, cell.comment.author or "")
            if cell.has_style:
                self._style(cell, target)
        self._validations(src, dst)
        self._conditional_formats(src, dst)
        self._pictures(src, dst)
        charts = len(getattr(src, "_charts", ()))
        if charts:
            self.removed[Removed.CHART] += charts

    def _sheet_settings(self, src: Worksheet, dst: Worksheet) -> None:
        dst.sheet_state = "visible" if src.sheet_state == "visible" else "hidden"
        dst.sheet_format = copy(src.sheet_format)
        dst.sheet_properties.tabColor = copy(src.sheet_properties.tabColor)
        dst.sheet_properties.pageSetUpPr = copy(src.sheet_properties.pageSetUpPr)
        dst.sheet_properties.outlinePr = copy(src.sheet_properties.outlinePr)
        dst.freeze_panes = src.freeze_panes
        dst.sheet_view.showGridLines = src.sheet_view.showGridLines
        dst.sheet_view.zoomScale = src.sheet_view.zoomScale
        dst.page_margins = copy(src.page_margins)
        dst.print_options = copy(src.print_options)
        for attr in ("orientation", "paperSize", "scale", "fitToWidth", "fitToHeight", "pageOrder"):
            setattr(dst.page_setup, attr, getattr(src.page_setup, attr))
        dst.HeaderFooter = copy(src.HeaderFooter)
        dst.protection = copy(src.protection)
        if src.print_title_rows:
            dst.print_title_rows = src.print_title_rows
        if src.print_title_cols:
            dst.print_title_cols = src.print_title_cols
        area = src.print_area
        if area:
            dst.print_area = [
                part.split("!")[-1] for part in (area if isinstance(area, list) else area.split(","))
            ]
        for key, dim in src.column_dimensions.items():
            target = dst.column_dimensions[key]
            target.width = dim.width
            target.hidden = dim.hidden
            target.outlineLevel = dim.outlineLevel
            target.min, target.max = dim.min, dim.max
        for index, dim in src.row_dimensions.items():
            if dim.ht is not None or dim.hidden or dim.outlineLevel:
                target = dst.row_dimensions[index]
                target.ht = dim.ht
                target.hidden = dim.hidden
                target.outlineLevel = dim.outlineLevel

    def _value(self, cell: Any, target: Any) -> None:
        value = cell.value
        if cell.data_type == "f":
            verdict = formula_verdict(_formula_text(value))
            if verdict is not None:
                self.removed[verdict] += 1
                target.value = _formula_text(value)
                # Text, with Excel's "quote prefix" so editing the cell keeps it text.
                target.data_type = "s"
                target.quotePrefix = True
                return
        target.value = value
        if cell.data_type != "f" and target.data_type == "f":
            # A text cell that reads "=WEBSERVICE(...)" must stay text: openpyxl would
            # turn any assigned string starting with "=" into a live formula.
            target.data_type = "s"

    def _hyperlink(self, cell: Any, target: Any) -> None:
        link = cell.hyperlink
        if link is None:
            return
        if link.target:
            if is_safe_link(link.target):
                target.hyperlink = Hyperlink(ref=target.coordinate, target=link.target, tooltip=link.tooltip)
            else:
                self.removed[Removed.UNSAFE_URI] += 1
        elif link.location:
            target.hyperlink = Hyperlink(ref=target.coordinate, location=link.location, tooltip=link.tooltip)

    def _style(self, cell: Any, target: Any) -> None:
        key = tuple(cell._style)
        cached = self._styles.get(key)
        if cached is not None:
            target._style = copy(cached)
            return
        target.font = copy(cell.font)
        target.fill = copy(cell.fill)
        target.border = copy(cell.border)
        target.alignment = copy(cell.alignment)
        target.protection = copy(cell.protection)
        target.number_format = cell.number_format
        if cell.quotePrefix:
            target.quotePrefix = True
        self._styles[key] = copy(target._style)

    def _validations(self, src: Worksheet, dst: Worksheet) -> None:
        for validation in src.data_validations.dataValidation:
            formulas = [f for f in (validation.formula1, validation.formula2) if f]
            if any(formula_verdict(f) is not None for f in formulas):
                self.removed[Removed.FORMULA] += 1
                continue
            dst.add_data_validation(copy(validation))

    def _conditional_formats(self, src: Worksheet, dst: Worksheet) -> None:
        for fmt in src.conditional_formatting:
            for rule in fmt.rules:
                if any(formula_verdict(f) is not None for f in (rule.formula or [])):
                    self.removed[Removed.FORMULA] += 1
                    continue
                dst.conditional_formatting.add(str(fmt.sqref), copy(rule))

    def _pictures(self, src: Worksheet, dst: Worksheet) -> None:
        # Stage 1 already re-encoded every image part with Pillow; openpyxl re-reads them.
        for picture in getattr(src, "_images", ()):
            try:
                data = picture._data()
            except (OSError, ValueError, AttributeError):
                self.removed[Removed.DRAWING] += 1
                continue
            clone = SheetImage(io.BytesIO(data))
            clone.anchor = copy(picture.anchor)
            clone.width, clone.height = picture.width, picture.height
            dst.add_image(clone)


def _load(package_bytes: bytes) -> openpyxl.Workbook:
    # warnings.catch_warnings mutates process-wide state; a worker process runs one
    # rebuild at a time, so that is fine. openpyxl warns about every extension it does
    # not read ("Data Validation extension is not supported..."), which is expected.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return openpyxl.load_workbook(
                io.BytesIO(package_bytes), read_only=False, keep_vba=False, data_only=False,
                keep_links=False, rich_text=False,
            )  # fmt: skip
        except (
            KeyError,
            ValueError,
            TypeError,
            AttributeError,
            IndexError,
            zipfile.BadZipFile,
            OSError,
        ) as exc:
            raise Refused(Code.OOXML_MALFORMED, "openpyxl could not read the workbook") from exc


def rebuild_xlsx(untrusted: bytes, limits: Limits) -> Rebuilt:
    """Rebuild an Excel workbook (xlsx, xlsm, xltx, xltm) as a new macro-free .xlsx.

    Args:
        untrusted: the uploaded bytes.
        limits: zip, cell and image limits.

    Returns:
        The new workbook and the tally of what was removed or neutralised.

    Raises:
        Refused: for zip/XML abuse, unknown parts, too many cells, or unreadable content.
    """
    pkg = rebuild_package(untrusted, limits, "xlsx")
    source = _load(write_package(pkg))
    removed = counter()
    removed.update(pkg.removed)
    names = len(source.defined_names) + sum(len(ws.defined_names) for ws in source.worksheets)
    if names:
        removed[Removed.DEFINED_NAME] += names
    if source.chartsheets:
        removed[Removed.CHART] += len(source.chartsheets)
    target = openpyxl.Workbook()
    target.remove(target.active)
    copier = _SheetCopier(removed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            for sheet in source.worksheets:
                copier.copy(sheet, target.create_sheet(title=sheet.title))
            if not target.worksheets:
                target.create_sheet(title="Sheet1")
            active = source.worksheets.index(source.active) if source.active in source.worksheets else 0
            target.active = min(active, len(target.worksheets) - 1)
            out = io.BytesIO()
            target.save(out)
        except Refused:
            raise
        except (KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
            raise Refused(Code.OOXML_MALFORMED, "workbook content could not be copied") from exc
    return Rebuilt(data=out.getvalue(), kind="xlsx", removed=removed)
