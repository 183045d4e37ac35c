"""argon2id hashing (argon2-cffi) and the password policy."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ..config import AuthConfig
from ..errors import AppError

# A few passwords that appear in every breach list; the length rule does most of the work (NIST SP 800-63B).
_COMMON = {"password1234", "123456789012", "qwertyuiop12", "p@ssw0rd1234", "passw0rd1234", "administrator"}


class Passwords:
    def __init__(self, cfg: AuthConfig) -> None:
        self.cfg = cfg
        self.hasher = PasswordHasher(time_cost=cfg.argon2_time_cost, memory_cost=cfg.argon2_memory_cost_kib,
                                     parallelism=cfg.argon2_parallelism)
        # Verifying against this when the login is unknown keeps timing the same as for a real user.
        self._dummy = self.hasher.hash("kakehashi-timing-equaliser")

    def check_policy(self, password: str, login: str) -> None:
        """Raise ``password_policy`` with the reasons that apply."""
        reasons = []
        if len(password) < self.cfg.password_min_length:
            reasons.append(f"min_length:{self.cfg.password_min_length}")
        if len(password) > 256:
            reasons.append("max_length:256")
        if login and login.lower() in password.lower():
            reasons.append("contains_login")
        if len(set(password)) < 4:
            reasons.append("too_few_distinct_characters")
        if password.lower() in _COMMON:
            reasons.append("common_password")
        if reasons:
            raise AppError("password_policy", reasons=reasons)

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """Constant-effort verify; False for a missing or unusable hash."""
        def _verify() -> bool:
            try:
                return self.hasher.verify(stored or self._dummy, password) and stored is not None
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False
        return await asyncio.to_thread(_verify)
