"""The ``[auth]`` config table: sessions, lockout, password hashing and TOTP, the same on both tiers.

Staff on LGWAN and guests/staff phones on the relay log in the same way (argon2id password, TOTP,
lockout, idle and absolute session limits), so both tiers read the same keys with the same defaults
and checks; deploy/lgwan_server.example.toml and deploy/internet_relay.example.toml document them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import ConfigError, Section


@dataclass(frozen=True)
class AuthConfig:
    session_idle_timeout: float = 30 * 60
    session_absolute_timeout: float = 12 * 3600
    lockout_threshold: int = 5
    lockout_duration: float = 15 * 60
    password_min_length: int = 12
    argon2_time_cost: int = 3
    argon2_memory_cost_kib: int = 64 * 1024
    argon2_parallelism: int = 2
    totp_issuer: str = "Kakehashi"
    login_attempts_per_minute_per_ip: int = 30


def read_auth(data: dict[str, Any]) -> AuthConfig:
    """The ``[auth]`` table of a loaded config file (every key optional).

    Raises:
        ConfigError: a key is unknown or has the wrong type, or the password policy is too weak.
    """
    a = Section(data, "auth")
    auth = AuthConfig(
        session_idle_timeout=a.duration("session_idle_timeout", "30m"),
        session_absolute_timeout=a.duration("session_absolute_timeout", "12h"),
        lockout_threshold=a.get("lockout_threshold", 5, int),
        lockout_duration=a.duration("lockout_duration", "15m"),
        password_min_length=a.get("password_min_length", 12, int),
        argon2_time_cost=a.get("argon2_time_cost", 3, int),
        argon2_memory_cost_kib=a.get("argon2_memory_cost_kib", 64 * 1024, int),
        argon2_parallelism=a.get("argon2_parallelism", 2, int),
        totp_issuer=a.get("totp_issuer", "Kakehashi", str),
        login_attempts_per_minute_per_ip=a.get("login_attempts_per_minute_per_ip", 30, int),
    )
    a.finish()
    if auth.password_min_length < 8:
        raise ConfigError("auth.password_min_length must be at least 8")
    return auth
