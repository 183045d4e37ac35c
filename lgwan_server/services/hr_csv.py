"""Parse the department and staff CSV files that municipal HR (人事給与) systems export.

Pure functions: bytes in, typed rows or line-numbered errors out. Files arrive as UTF-8 (with or
without BOM) or as cp932/Shift_JIS, with Japanese or English headers. A file with any bad row is
rejected whole, so an import never half-applies.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

from shared.textsafe import clean_line

DEPARTMENT_HEADERS = {
    "code": ("部署コード", "所属コード", "department_code", "code"),
    "name": ("部署名", "所属名", "department_name", "name"),
    "parent_code": ("上位部署コード", "親部署コード", "上位所属コード", "parent_code"),
    "kind": ("種別", "区分", "kind"),
    "sort_order": ("表示順", "並び順", "sort_order"),
}
STAFF_HEADERS = {
    "employee_no": ("職員番号", "employee_no"),
    "display_name": ("氏名", "display_name", "name"),
    "kana": ("よみがな", "ふりがな", "フリガナ", "カナ氏名", "kana"),
    "login": ("ログインID", "login"),
    "department_code": ("部署コード", "所属コード", "department_code"),
    "rank_code": ("職層コード", "rank_code"),
    "rank_name": ("職層", "職層名", "rank_name"),
    "rank_level": ("職層順位", "rank_level"),
    "title": ("役職", "役職名", "title"),
    "role": ("権限", "role"),
    "status": ("状態", "在職区分", "status"),
    "effective_date": ("発令日", "effective_date"),
}
REQUIRED_DEPARTMENT = ("code", "name")
REQUIRED_STAFF = ("employee_no", "display_name", "login", "department_code")
KIND_ALIASES = {"部": "bu", "局": "bu", "bu": "bu", "課": "ka", "室": "ka", "ka": "ka", "係": "kakari",
                "担当": "kakari", "kakari": "kakari", "": "ka"}
STATUS_ALIASES = {"": "active", "在職": "active", "active": "active", "休職": "suspended", "停止": "suspended",
                  "suspended": "suspended", "退職": "retired", "retired": "retired"}
ROLE_ALIASES = {"": "staff", "一般": "staff", "staff": "staff", "管理者": "org_admin", "org_admin": "org_admin",
                "監査": "auditor", "auditor": "auditor", "文書管理": "records_officer",
                "records_officer": "records_officer", "危機管理": "safety_manager",
                "safety_manager": "safety_manager"}
_LOGIN_RE = re.compile(r"^[A-Za-z0-9._-]{2,64}$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_ROWS = 100_000


@dataclass(frozen=True)
class CsvError:
    line: int
    field: str
    reason: str


@dataclass(frozen=True)
class DepartmentRow:
    line: int
    code: str
    name: str
    parent_code: str
    kind: str
    sort_order: int


@dataclass(frozen=True)
class StaffRow:
    line: int
    employee_no: str
    display_name: str
    kana: str
    login: str
    department_code: str
    rank_code: str
    rank_name: str
    rank_level: int
    title: str
    role: str
    status: str
    effective_date: str


class CsvRejected(Exception):
    def __init__(self, errors: list[CsvError]) -> None:
        super().__init__(f"{len(errors)} errors")
        self.errors = errors


def decode(data: bytes) -> str:
    """UTF-8 (BOM stripped) if it decodes, else cp932 (Windows Shift_JIS, what Excel writes)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp932")
    except UnicodeDecodeError as exc:
        raise CsvRejected([CsvError(0, "", "encoding: neither UTF-8 nor Shift_JIS (cp932)")]) from exc


def _rows(data: bytes, headers: dict[str, tuple[str, ...]], required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    text = decode(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration as exc:
        raise CsvRejected([CsvError(1, "", "empty file")]) from exc
    except csv.Error as exc:
        raise CsvRejected([CsvError(1, "", f"csv: {exc}")]) from exc
    columns: dict[str, int] = {}
    for index, raw in enumerate(header):
        name = clean_line(raw)
        for key, aliases in headers.items():
            if name in aliases or name.lower() in aliases:
                columns.setdefault(key, index)
    missing = [k for k in required if k not in columns]
    if missing:
        raise CsvRejected([CsvError(1, k, "missing column") for k in missing])
    out: list[tuple[int, dict[str, str]]] = []
    try:
        for line_no, record in enumerate(reader, start=2):
            if not any(cell.strip() for cell in record):
                continue
            if len(out) >= MAX_ROWS:
                raise CsvRejected([CsvError(line_no, "", f"more than {MAX_ROWS} rows")])
            out.append((line_no, {k: clean_line(record[i]) if i < len(record) else "" for k, i in columns.items()}))
    except csv.Error as exc:
        raise CsvRejected([CsvError(reader.line_num, "", f"csv: {exc}")]) from exc
    return out


def _small_int(text: str, *, negative: bool = False) -> int | None:
    """A cell's integer, or None. Full-width digits (１２) are fine — Excel users type them — but
    "²" (which int() rejects) and numbers too long for an SQLite INTEGER are not."""
    digits = text[1:] if negative and text.startswith("-") else text
    if not digits.isdigit() or len(digits) > 9:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def parse_departments(data: bytes) -> list[DepartmentRow]:
    rows, errors = [], []
    seen: set[str] = set()
    for line, rec in _rows(data, DEPARTMENT_HEADERS, REQUIRED_DEPARTMENT):
        code, name = rec["code"], rec["name"]
        kind = KIND_ALIASES.get(rec.get("kind", ""))
        order = rec.get("sort_order", "") or "0"
        if not code or len(code) > 32:
            errors.append(CsvError(line, "code", "required, at most 32 characters"))
        elif code in seen:
            errors.append(CsvError(line, "code", "duplicate"))
        if not name or len(name) > 100:
            errors.append(CsvError(line, "name", "required, at most 100 characters"))
        if kind is None:
            errors.append(CsvError(line, "kind", "must be 部, 課 or 係"))
        sort_order = _small_int(order, negative=True)
        if sort_order is None:
            errors.append(CsvError(line, "sort_order", "must be a number"))
        seen.add(code)
        if not errors or errors[-1].line != line:
            rows.append(DepartmentRow(line, code, name, rec.get("parent_code", ""), kind or "ka", sort_order or 0))
    for row in rows:
        if row.parent_code and row.parent_code not in seen:
            errors.append(CsvError(row.line, "parent_code", "unknown department code"))
        if row.parent_code == row.code:
            errors.append(CsvError(row.line, "parent_code", "a department cannot be its own parent"))
    if errors:
        raise CsvRejected(errors)
    return _topological(rows)


def _topological(rows: list[DepartmentRow]) -> list[DepartmentRow]:
    """Parents before children, so each insert can resolve its parent id; cycles are errors."""
    by_code = {r.code: r for r in rows}
    ordered: list[DepartmentRow] = []
    state: dict[str, int] = {}

    def visit(row: DepartmentRow, depth: int) -> None:
        if state.get(row.code) == 2:
            return
        if state.get(row.code) == 1 or depth > 16:
            raise CsvRejected([CsvError(row.line, "parent_code", "cycle in the department tree")])
        state[row.code] = 1
        if row.parent_code:
            visit(by_code[row.parent_code], depth + 1)
        state[row.code] = 2
        ordered.append(row)

    for row in rows:
        visit(row, 0)
    return ordered


def parse_staff(data: bytes) -> list[StaffRow]:
    rows, errors = [], []
    seen_no: set[str] = set()
    seen_login: set[str] = set()
    for line, rec in _rows(data, STAFF_HEADERS, REQUIRED_STAFF):
        line_errors = []
        employee_no, login = rec["employee_no"], rec["login"]
        role = ROLE_ALIASES.get(rec.get("role", ""))
        status = STATUS_ALIASES.get(rec.get("status", ""))
        level = rec.get("rank_level", "") or "99"
        date = rec.get("effective_date", "")
        if not employee_no or len(employee_no) > 32:
            line_errors.append(CsvError(line, "employee_no", "required, at most 32 characters"))
        elif employee_no in seen_no:
            line_errors.append(CsvError(line, "employee_no", "duplicate"))
        if not _LOGIN_RE.match(login):
            line_errors.append(CsvError(line, "login", "2–64 characters: letters, digits, . _ -"))
        elif login.lower() in seen_login:
            line_errors.append(CsvError(line, "login", "duplicate"))
        if not rec["display_name"] or len(rec["display_name"]) > 100:
            line_errors.append(CsvError(line, "display_name", "required, at most 100 characters"))
        if not rec["department_code"]:
            line_errors.append(CsvError(line, "department_code", "required"))
        if role is None:
            line_errors.append(CsvError(line, "role", "must be 一般, 管理者, 監査, 文書管理 or 危機管理"))
        if status is None:
            line_errors.append(CsvError(line, "status", "must be 在職, 休職 or 退職"))
        rank_level = _small_int(level)
        if rank_level is None:
            line_errors.append(CsvError(line, "rank_level", "must be a number"))
        if date and not _DATE_RE.match(date):
            line_errors.append(CsvError(line, "effective_date", "must be YYYY-MM-DD"))
        if rec.get("rank_name") and not rec.get("rank_code"):
            line_errors.append(CsvError(line, "rank_code", "required when a rank name is given"))
        seen_no.add(employee_no)
        seen_login.add(login.lower())
        if line_errors:
            errors.extend(line_errors)
            continue
        rows.append(StaffRow(line, employee_no, rec["display_name"], rec.get("kana", ""), login,
                             rec["department_code"], rec.get("rank_code", ""), rec.get("rank_name", ""), rank_level or 0,
                             rec.get("title", ""), role or "staff", status or "active", date))
    if errors:
        raise CsvRejected(errors)
    return rows
