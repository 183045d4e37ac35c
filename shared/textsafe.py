"""Normalise untrusted text and make it safe to store, display and cross tiers.

We keep line breaks and tabs; we drop C0/C1 controls (ANSI escapes start with ESC),
bidirectional overrides and isolates (U+202A–U+202E, U+2066–U+2069, the "Trojan Source"
class), lone surrogates and non-characters. ZWJ (U+200D) stays: emoji sequences need it.
"""

from __future__ import annotations

import re
import unicodedata

_BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
_STRIP_RE = re.compile(
    "["
    "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"   # C0 (except \t \n \r) and C1 controls
    + _BIDI_CONTROLS
    + "\ufeff"                               # BOM / zero-width no-break space
    + "\ud800-\udfff"                        # lone surrogates (only reachable from JSON \\u escapes)
    + "\ufdd0-\ufdef\ufffe\uffff"            # non-characters: U+FDD0–FDEF, U+FFFE/FFFF…
    + "".join(chr(plane << 16 | low) for plane in range(1, 17) for low in (0xFFFE, 0xFFFF))  # …and each plane's last two
    + "]"
)
_FILENAME_BAD_RE = re.compile(r'[\\/:*?"<>|]')


def clean_text(value: str, *, multiline: bool = True) -> str:
    """Return ``value`` NFC-normalised with unsafe characters removed.

    Args:
        value: untrusted text.
        multiline: keep ``\\n`` and ``\\t``; otherwise they become spaces.
    """
    text = unicodedata.normalize("NFC", _STRIP_RE.sub("", value))
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not multiline:
        text = " ".join(text.split())
    return text


def clean_line(value: str) -> str:
    """A single-line field (names, titles): cleaned, whitespace collapsed, trimmed."""
    return clean_text(value, multiline=False).strip()


def safe_filename(value: str, *, max_bytes: int = 255, fallback: str = "file") -> str:
    """A display/download filename that cannot traverse paths or hide its extension.

    Path separators and Windows-reserved characters become ``_``; leading dots are
    removed; the name is cut to ``max_bytes`` UTF-8 bytes while keeping the extension.
    """
    name = clean_line(value).replace("\x00", "")
    name = name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    name = _FILENAME_BAD_RE.sub("_", name).lstrip(". ")
    if not name:
        return fallback
    if len(name.encode("utf-8")) <= max_bytes:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext.encode("utf-8")) > 16:
        stem, ext = name, ""
    suffix = f".{ext}" if ext else ""
    budget = max_bytes - len(suffix.encode("utf-8"))
    if budget < 1:      # no room for any of the stem: cutting the whole name beats a bare ".ext" or an overrun
        stem, suffix, budget = name, "", max_bytes
    cut = stem.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    return (cut + suffix) or fallback
