"""Plain text and CSV: decode (UTF-8, UTF-16 with BOM, cp932), clean, re-encode as UTF-8.

CSV cells that a spreadsheet would run as a formula get a leading apostrophe (the
OWASP "CSV injection" advice). Japanese users type formulas with a full-width ``＝``
and Excel accepts it, and msodde misses full-width DDE (oletools#379), so the check
looks at the NFKC form of the first visible character.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from collections import Counter

from sanitizer.errors import Code, Refused
from sanitizer.limits import Limits
from sanitizer.report import Rebuilt, Removed, counter
from shared.textsafe import clean_text

# NFKC folds ＝＋－＠ and the small forms ﹦﹢﹣﹫ to ASCII; U+2212 MINUS SIGN and the
# full-width vertical bar need listing because NFKC leaves U+2212 alone.
_FORMULA_LEADS = frozenset("=+-@\u2212")
_CONTROL_LEADS = frozenset("\t\r\n")
_LEADING_BLANKS = " \u3000"
_PLAIN_NUMBER_RE = re.compile(r"[+-]?(?:\d+|\d{1,3}(?:,\d{3})+)(?:\.\d+)?(?:[eE][+-]?\d+)?%?")
_DASHES_ONLY_RE = re.compile(r"[-\u2212\u30fc\u2015\u2010\uff0d]+")
_DDE_RE = re.compile(r"\|.*!")


def decode_untrusted_text(untrusted: bytes) -> str:
    """Decode bytes as UTF-8 (with or without BOM), UTF-16 with BOM, or cp932.

    Raises:
        Refused: ``TEXT_UNDECODABLE`` when no encoding decodes the bytes strictly.
    """
    try:
        if untrusted.startswith(codecs.BOM_UTF8):
            return untrusted[len(codecs.BOM_UTF8) :].decode("utf-8")
        if untrusted.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return untrusted.decode("utf-16")
    except UnicodeDecodeError as exc:
        raise Refused(Code.TEXT_UNDECODABLE, "bad text after byte-order mark") from exc
    for encoding in ("utf-8", "cp932"):
        try:
            return untrusted.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise Refused(Code.TEXT_UNDECODABLE, "not utf-8 or cp932")


def _clean(text: str, removed: Counter[Removed]) -> str:
    """Drop control and bidi-override characters (shared.textsafe) and count them.

    Raises:
        Refused: ``EMPTY_FILE`` when nothing is left.
    """
    dropped = sum(n for ch, n in Counter(text).items() if ch != "\r" and clean_text(ch) == "")
    if dropped:
        removed[Removed.CONTROL_CHARS] += dropped
    cleaned = clean_text(text)
    if not cleaned:
        raise Refused(Code.EMPTY_FILE, "no text left after cleaning")
    return cleaned


def _check_size(untrusted: bytes, limits: Limits) -> None:
    if len(untrusted) > limits.max_text_bytes:
        raise Refused(Code.TOO_LARGE, "text larger than max_text_bytes")


def rebuild_text(untrusted: bytes, limits: Limits) -> Rebuilt:
    """Rebuild a plain-text file as UTF-8 (no BOM) with ``\\n`` line ends.

    Args:
        untrusted: the uploaded bytes.
        limits: size limits.

    Returns:
        The cleaned text and the tally of removed control characters.
    """
    _check_size(untrusted, limits)
    removed = counter()
    text = _clean(decode_untrusted_text(untrusted), removed)
    return Rebuilt(data=text.encode("utf-8"), kind="text", removed=removed)


def is_formula_like(cell: str) -> bool:
    """True when a spreadsheet could treat ``cell`` as a formula or a control sequence.

    Plain numbers (``-12``, ``+3.5e2``, ``-1,000``) and runs of dashes (``-``, ``ー``,
    used for "none" in Japanese tables) stay as they are; they cannot run anything.
    """
    if not cell:
        return False
    if cell[0] in _CONTROL_LEADS:
        return True
    visible = cell.lstrip(_LEADING_BLANKS)
    if not visible:
        return False
    folded = unicodedata.normalize("NFKC", visible)
    if folded[0] not in _FORMULA_LEADS:
        return False
    return not (_PLAIN_NUMBER_RE.fullmatch(folded.strip()) or _DASHES_ONLY_RE.fullmatch(folded.strip()))


def rebuild_csv(untrusted: bytes, limits: Limits, *, tab_separated: bool = False) -> Rebuilt:
    """Rebuild a CSV/TSV file as UTF-8 with BOM and CRLF, formula-like cells neutralised.

    Cells are split on commas (tabs for ``.tsv``), the way Japanese Excel opens them.

    The BOM is deliberate: Japanese Excel opens BOM-less CSV as cp932 and garbles it.

    Args:
        untrusted: the uploaded bytes.
        limits: size limits.
        tab_separated: the declared name said ``.tsv``.

    Returns:
        The rebuilt CSV and the tally of neutralised cells.

    Raises:
        Refused: ``TEXT_UNDECODABLE`` or ``CSV_MALFORMED``.
    """
    _check_size(untrusted, limits)
    removed = counter()
    text = _clean(decode_untrusted_text(untrusted), removed)
    # Excel in a Japanese locale splits .csv on commas (the system list separator) and
    # .tsv on tabs; neutralising cells under any other split would miss what Excel runs.
    delimiter = "\t" if tab_separated else ","
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    try:
        for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True):
            fixed = []
            for cell in row:
                if is_formula_like(cell):
                    removed[Removed.CSV_FORMULA] += 1
                    if _DDE_RE.search(unicodedata.normalize("NFKC", cell)):
                        removed[Removed.DDE] += 1
                    cell = "'" + cell
                fixed.append(cell)
            writer.writerow(fixed)
    except csv.Error as exc:
        raise Refused(Code.CSV_MALFORMED, "csv parse error") from exc
    kind = "tsv" if tab_separated else "csv"
    return Rebuilt(data=codecs.BOM_UTF8 + out.getvalue().encode("utf-8"), kind=kind, removed=removed)


def rebuild_tsv(untrusted: bytes, limits: Limits) -> Rebuilt:
    """:func:`rebuild_csv` with a tab delimiter (``.tsv`` uploads)."""
    return rebuild_csv(untrusted, limits, tab_separated=True)
