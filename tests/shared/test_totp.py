"""shared.totp: a code matches its time step ±1, once, and malformed input is simply wrong."""

from __future__ import annotations

import pyotp
import pytest

from shared.totp import TOTP_STEP, match_totp

SECRET = "QEFTOW3L6HQ5P4TLQZFUAZU2CV5NFKLV"
NOW = 1_800_000_015.0           # inside step 60_000_000
STEP = int(NOW) // TOTP_STEP


def code(step: int) -> str:
    return pyotp.TOTP(SECRET).generate_otp(step)


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_current_step_and_one_either_side(offset: int) -> None:
    assert match_totp(SECRET, code(STEP + offset), 0, NOW) == STEP + offset


@pytest.mark.parametrize("offset", [-2, 2])
def test_further_steps_are_refused(offset: int) -> None:
    assert match_totp(SECRET, code(STEP + offset), 0, NOW) is None


def test_a_code_is_good_once() -> None:
    step = match_totp(SECRET, code(STEP), 0, NOW)
    assert step == STEP
    assert match_totp(SECRET, code(STEP), step, NOW) is None
    assert match_totp(SECRET, code(STEP - 1), step, NOW) is None      # nor an older one
    assert match_totp(SECRET, code(STEP + 1), step, NOW) == STEP + 1


def test_spaces_are_ignored() -> None:
    c = code(STEP)
    assert match_totp(SECRET, f" {c[:3]} {c[3:]} ", 0, NOW) == STEP


@pytest.mark.parametrize("typed", ["", "12345", "1234567", "12a456", "１２３４５６", "١٢٣٤٥٦", "12345\x00"])
def test_malformed_codes_are_wrong_not_errors(typed: str) -> None:
    # Full-width digits (a Japanese IME) pass str.isdigit() but not compare_digest(): wrong, never a 500.
    assert match_totp(SECRET, typed, 0, NOW) is None


@pytest.mark.parametrize("secret", [None, ""])
def test_no_secret_never_matches(secret: str | None) -> None:
    assert match_totp(secret, code(STEP), 0, NOW) is None
