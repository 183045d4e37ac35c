"""My Number guard: 12 digits with a valid 個人番号 check digit, however they are written."""

from __future__ import annotations

import pytest

from shared.mynumber import check_digit, contains_my_number, is_my_number

VALID = "123456789018"      # check digit 8 (a well-known test value)


def test_check_digit_follows_the_ordinance() -> None:
    assert check_digit(VALID[:11]) == 8
    assert check_digit("00000000000") == 0            # remainder 0 → 0
    assert all(is_my_number(f"{n:011d}" + str(check_digit(f"{n:011d}"))) for n in range(0, 10**11, 7_777_777_777))


@pytest.mark.parametrize("text", [
    f"番号は{VALID}です", f"{VALID[:4]} {VALID[4:8]} {VALID[8:]}", f"{VALID[:4]}-{VALID[4:8]}-{VALID[8:]}",
    "".join(chr(ord(c) + 0xFEE0) for c in VALID),     # full-width digits
    f"a{VALID}b", f"{VALID}\n",
])
def test_found_however_written(text: str) -> None:
    assert contains_my_number(text)


@pytest.mark.parametrize("text", [
    "123456789012",                   # wrong check digit
    "0" + VALID,                      # part of a longer number (13 digits)
    VALID + "5",
    "電話 03-1234-5678、郵便 100-0001",
    "注文番号 2026-0401-1234",          # 12 digits, wrong check digit
    "",
])
def test_not_found(text: str) -> None:
    assert not contains_my_number(text)
