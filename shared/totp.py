"""TOTP (RFC 6238) code matching with replay protection by time step."""

from __future__ import annotations

import secrets

import pyotp

TOTP_STEP = 30          # seconds per code (the authenticator apps' default)
CODE_DIGITS = 6


def match_totp(secret: str | None, code: str, last_step: int, now: float) -> int | None:
    """The time step ``code`` belongs to (±1 step for clock drift), if newer than ``last_step``.

    Args:
        secret: the base32 TOTP secret; None or empty never matches.
        code: what the person typed; spaces are ignored.
        last_step: the step of the last code accepted for this secret (0 when none), so a code
            is good once only.
        now: the current Unix time (the caller passes ``time.time()``; tests pass their clock).

    Returns:
        The matching step, to be stored as the new ``last_step``; None when the code is wrong,
        malformed or already used.
    """
    code = code.strip().replace(" ", "")
    # isascii(): str.isdigit() also accepts full-width and other Unicode digits ("１２３４５６" from a
    # Japanese IME), which secrets.compare_digest() refuses with TypeError; such a code is wrong.
    if not secret or len(code) != CODE_DIGITS or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = int(now) // TOTP_STEP
    for step in (current - 1, current, current + 1):
        if step > last_step and secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None
