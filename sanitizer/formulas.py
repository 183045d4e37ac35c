"""Which spreadsheet formulas can reach outside the workbook.

A formula is judged on its NFKC-folded, upper-cased text (full-width ``＝｜！`` fold to
ASCII, oletools#379) with string literals blanked out, so that ``="a|b"`` is not DDE
but ``=cmd|'/c calc'!A0`` is:

- DDE: a ``|`` outside a string (``service|topic!item``).
- external references: ``[1]Sheet!A1``, ``'C:\\dir\\[book.xlsx]Sheet'!A1``, UNC paths.
- functions that fetch, call or execute: WEBSERVICE, RTD, CALL, REGISTER, EXEC,
  IMAGE, STOCKHISTORY, the XLM file/system functions, and HYPERLINK unless its target is
  a literal http(s)/mailto URL.
"""

from __future__ import annotations

import re
import unicodedata

from sanitizer.links import is_safe_link
from sanitizer.report import Removed

_STRING_RE = re.compile(r'"(?:[^"]|"")*"')
# "[1]Sheet!A1", "'C:\\dir\\[book.xlsx]Sheet'!A1", "[1]!Name"; not structured references
# like "Table1[Col]" (an identifier right before the bracket), UNC paths, file: URLs.
_EXTERNAL_REF_RE = re.compile(r"(?:^|[^A-Z0-9_.\]])\[[^\[\]]+\][^!\[\]()]*!|\\\\|FILE:")
_REACHING_FUNCTIONS_RE = re.compile(
    r"(?<![A-Z0-9_.])(?:_XLFN\.|_XLWS\.)?"
    r"(WEBSERVICE|RTD|CALL|REGISTER|REGISTER\.ID|EXEC|IMAGE|STOCKHISTORY|IMPORTXML|IMPORTDATA|IMPORTHTML"
    r"|IMPORTRANGE|IMPORTFEED|FOPEN|FWRITE|FWRITELN|FREAD|FREADLN|FCLOSE|FILES|DIRECTORY|SEND\.KEYS"
    r"|EXECUTE|INITIATE|REQUEST|POKE|TERMINATE|RUN|EVALUATE|SET\.NAME|FORMULA|FORMULA\.FILL|CREATE\.OBJECT)\s*\("
)
_HYPERLINK_RE = re.compile(r"(?<![A-Z0-9_.])HYPERLINK\s*\(\s*(\"(?:[^\"]|\"\")*\")?")


def formula_verdict(formula: str) -> Removed | None:
    """``None`` if the formula stays inside the workbook, else why it must be neutralised.

    Args:
        formula: formula text, with or without the leading ``=``.
    """
    folded = unicodedata.normalize("NFKC", formula).upper()
    bare = _STRING_RE.sub('""', folded)
    if "|" in bare:
        return Removed.DDE
    if _EXTERNAL_REF_RE.search(bare):
        return Removed.EXTERNAL_LINK
    if _REACHING_FUNCTIONS_RE.search(bare):
        return Removed.FORMULA
    for match in _HYPERLINK_RE.finditer(folded):
        literal = match.group(1)
        if literal is None or not is_safe_link(literal[1:-1].replace('""', '"')):
            return Removed.FORMULA
    return None
