"""My Number guard: find 12-digit 個人番号 with a valid check digit in free text.

The chat must not become a channel for 個人番号 (REQUIREMENTS-JP D-36, acceptance statement 16):
text that would cross to the internet side is refused when it contains one. Only a yes/no
leaves this module — callers audit *that* a number was found, never the number itself.

Check digit (行政手続における特定の個人を識別するための番号の利用等に関する法律施行令 第8条):
for the first 11 digits, P(n) is the n-th digit counted from the right and Q(n) = n + 1 for
n ≤ 6, n − 5 for 7 ≤ n ≤ 11; with r = Σ P(n)·Q(n) mod 11 the check digit is 0 when r ≤ 1,
else 11 − r.
"""

from __future__ import annotations

import re
import unicodedata

# Twelve digits written plainly or in 4-4-4 groups with a space or hyphen, not part of a longer
# digit run. NFKC first, so full-width digits (１２３４…) and full-width hyphens are caught too.
_CANDIDATE = re.compile(r"(?<![0-9])([0-9]{4})[ \-\u2010\u2212]?([0-9]{4})[ \-\u2010\u2212]?([0-9]{4})(?![0-9])")


def check_digit(first11: str) -> int:
    """The 個人番号 check digit for 11 leading digits."""
    if len(first11) != 11 or not first11.isdigit():
        raise ValueError("need 11 digits")
    total = 0
    for n in range(1, 12):
        p = int(first11[11 - n])
        q = n + 1 if n <= 6 else n - 5
        total += p * q
    remainder = total % 11
    return 0 if remainder <= 1 else 11 - remainder


def is_my_number(digits: str) -> bool:
    """True for a 12-digit string whose last digit is the valid check digit."""
    return len(digits) == 12 and digits.isascii() and digits.isdigit() and check_digit(digits[:11]) == int(digits[11])


def contains_my_number(text: str) -> bool:
    """True when ``text`` contains something that is a valid 個人番号 (check digit included)."""
    normal = unicodedata.normalize("NFKC", text)
    if sum(ch.isdigit() for ch in normal) < 12:
        return False
    return any(is_my_number("".join(m.groups())) for m in _CANDIDATE.finditer(normal))
