"""shared.textsafe: what is stripped, what is kept, and safe filenames."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shared.textsafe import clean_line, clean_text, safe_filename

NONCHARACTERS = {chr(c) for c in range(0xFDD0, 0xFDF0)} | {
    chr(plane * 0x10000 + low) for plane in range(17) for low in (0xFFFE, 0xFFFF)}
BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
CONTROLS = {chr(c) for c in range(0x20) if chr(c) not in "\t\n"} | {chr(c) for c in range(0x7F, 0xA0)}
FORBIDDEN = NONCHARACTERS | BIDI | CONTROLS | {"\ufeff"} | {chr(c) for c in range(0xD800, 0xE000)}
# Text with a good share of the characters that matter here.
NASTY = st.text(st.one_of(
    st.sampled_from(sorted(FORBIDDEN | {"\t", "\n", "\u200d", "\u3099", "か", "ｶ", "a", "/", "\\", ".", " "})),
    st.characters(codec="utf-8"),
    st.characters(blacklist_categories=()),
), max_size=80)


@pytest.mark.parametrize(("raw", "expected"), [
    ("請求書\u202etxt.exe", "請求書txt.exe"),
    ("赤\x1b[31m字\x1b[0m", "赤[31m字[0m"),
    ("a\x00b\x07c\x7fd\x85e\x9bf", "abcdef"),
    ("x\u2066y\u2069z\u200e\u200f\u061cw", "xyzw"),
    ("\ufeff本文", "本文"),
    ("前\ud800後\udfff", "前後"),
    ("\ufdd0a\ufffeb\uffffc\U0001fffed\U0010ffff", "abcd"),
    ("家族👨\u200d👩\u200d👧", "家族👨\u200d👩\u200d👧"),
    ("か\u3099", "が"),
    ("ｶﾀｶﾅ　全角スペース", "ｶﾀｶﾅ　全角スペース"),
    ("一\r\n二\r三\n\t四", "一\n二\n三\n\t四"),
])
def test_clean_text(raw: str, expected: str) -> None:
    assert clean_text(raw) == expected


def test_clean_line_is_one_trimmed_line() -> None:
    assert clean_line("  危機\u202e管理\n課\t\r\n  ") == "危機管理 課"
    assert clean_line("佐藤　花子") == "佐藤 花子"       # full-width space is whitespace too
    assert clean_line("\u202e\x1b") == ""


@settings(max_examples=300, deadline=None)
@given(NASTY)
def test_clean_text_never_lets_forbidden_characters_through(value: str) -> None:
    out = clean_text(value)
    assert not (set(out) & FORBIDDEN)
    assert "\r" not in out
    assert unicodedata.is_normalized("NFC", out)
    out.encode("utf-8")                                  # storable: no lone surrogates
    assert clean_text(out) == out                        # idempotent
    line = clean_line(value)
    assert "\n" not in line and "\t" not in line and line == line.strip() and clean_line(line) == line


@pytest.mark.parametrize(("raw", "expected"), [
    ("report.pdf", "report.pdf"),
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\tanaka\\Desktop\\予算.xlsx", "予算.xlsx"),
    ("..", "file"),
    ("...hidden", "hidden"),
    ("  .bashrc", "bashrc"),
    ('a:b*c?d"e<f>g|h.txt', "a_b_c_d_e_f_g_h.txt"),
    ("請求書\u202etxt.exe", "請求書txt.exe"),
    ("x\x00y\x1b.txt", "xy.txt"),
    ("\u202e\x1b", "file"),
    ("", "file"),
    ("か\u3099いぎ.docx", "がいぎ.docx"),
])
def test_safe_filename(raw: str, expected: str) -> None:
    assert safe_filename(raw) == expected


def test_safe_filename_cuts_at_255_bytes_and_keeps_the_extension() -> None:
    name = safe_filename("議事録" * 40 + ".xlsx")                    # 360 + 5 bytes
    assert name.endswith(".xlsx") and len(name.encode()) <= 255
    assert name == "議事録" * 27 + "議事" + ".xlsx"                   # whole characters only
    long_ext = safe_filename("a" * 300 + "." + "b" * 40)
    assert len(long_ext.encode()) <= 255 and long_ext.startswith("aaa")


@settings(max_examples=300, deadline=None)
@given(NASTY, st.integers(min_value=1, max_value=300))
@example("abcdefghij.verylongext", 5)        # a suffix longer than the whole budget
@example("abcdefghij.pdfpdfpdf", 10)         # a suffix exactly the budget: must not become ".pdfpdfpdf"
def test_safe_filename_properties(value: str, max_bytes: int) -> None:
    name = safe_filename(value, max_bytes=max_bytes)
    assert name
    assert len(name.encode("utf-8")) <= max(max_bytes, len(b"file"))
    assert not (set(name) & (FORBIDDEN | set('\\/:*?"<>|')))
    assert not name.startswith((".", " "))
    assert "\n" not in name and "\t" not in name
