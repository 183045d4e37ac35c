"""RelayConfig: one frozen dataclass from a TOML file plus ``KAKEHASHI_RELAY_*`` overrides.

Every key is documented in ``deploy/internet_relay.example.toml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.config import ConfigError, Section, apply_env_overrides, load_toml

ENV_PREFIX = "KAKEHASHI_RELAY"
SECTIONS = ("web", "queue", "storage", "retention", "auth", "limits", "guests", "logging")


@dataclass(frozen=True)
class WebConfig:
    """The port guests and staff phones use (behind the organisation's TLS proxy on the internet side)."""

    host: str = "127.0.0.1"
    port: int = 8450
    port_file: Path | None = None
    public_origin: str = ""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    behind_tls_proxy: bool = False
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True)
class QueueConfig:
    """The port the LGWAN server dials into. Only the LGWAN server's address should reach it."""

    host: str = "127.0.0.1"
    port: int = 8451
    port_file: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    keys_dir: Path = Path("keys")
    clock_skew: float = 300.0
    handshake_timeout: float = 10.0
    keep_acked: float = 7 * 86400.0


@dataclass(frozen=True)
class RetentionConfig:
    messages: float = 30 * 86400.0
    audit: float = 400 * 86400.0
    purge_interval: float = 600.0


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


@dataclass(frozen=True)
class LimitsConfig:
    post_burst: int = 30
    post_refill_per_second: float = 3.0


@dataclass(frozen=True)
class GuestsConfig:
    organisation_name: str = ""
    privacy_notice_file: Path | None = None


@dataclass(frozen=True)
class RelayConfig:
    web: WebConfig
    queue: QueueConfig
    storage_dir: Path
    retention: RetentionConfig
    auth: AuthConfig
    limits: LimitsConfig
    guests: GuestsConfig
    log_level: str
    log_format: str

    @property
    def db_path(self) -> Path:
        return self.storage_dir / "relay.sqlite3"


def _opt_path(value: str, base: Path) -> Path | None:
    return (base / value).resolve() if value else None


def load_config(path: Path) -> RelayConfig:
    """Load and validate the config file; relative paths are relative to the file's folder."""
    data: dict[str, Any] = apply_env_overrides(load_toml(path), ENV_PREFIX)
    base = path.resolve().parent
    if unknown := set(data) - set(SECTIONS):
        raise ConfigError(f"unknown sections: {', '.join(sorted(unknown))}")

    w = Section(data, "web")
    web = WebConfig(host=w.get("host", "127.0.0.1", str), port=w.get("port", 8450, int),
                    port_file=_opt_path(w.get("port_file", "", str), base),
                    public_origin=w.get("public_origin", "", str).rstrip("/"),
                    tls_cert=_opt_path(w.get("tls_cert", "", str), base),
                    tls_key=_opt_path(w.get("tls_key", "", str), base),
                    behind_tls_proxy=w.get("behind_tls_proxy", False, bool),
                    trusted_proxies=tuple(w.get("trusted_proxies", [], list)))
    w.finish()

    q = Section(data, "queue")
    queue = QueueConfig(host=q.get("host", "127.0.0.1", str), port=q.get("port", 8451, int),
                        port_file=_opt_path(q.get("port_file", "", str), base),
                        tls_cert=_opt_path(q.get("tls_cert", "", str), base),
                        tls_key=_opt_path(q.get("tls_key", "", str), base),
                        keys_dir=(base / q.get("keys_dir", "keys", str)).resolve(),
                        clock_skew=q.duration("clock_skew", "5m"),
                        handshake_timeout=q.duration("handshake_timeout", "10s"),
                        keep_acked=q.duration("keep_acked", "7d"))
    q.finish()
    for name, cfg in (("web", web), ("queue", queue)):
        if bool(cfg.tls_cert) != bool(cfg.tls_key):
            raise ConfigError(f"{name}.tls_cert and {name}.tls_key go together")
    if web.port and web.port == queue.port and web.host == queue.host:
        raise ConfigError("web.port and queue.port must differ: the queue has its own port")

    st = Section(data, "storage")
    storage_dir = (base / st.get("data_dir", "var/relay", str)).resolve()
    st.finish()

    r = Section(data, "retention")
    retention = RetentionConfig(messages=r.duration("messages", "30d"), audit=r.duration("audit", "400d"),
                                purge_interval=r.duration("purge_interval", "10m"))
    r.finish()

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
        login_attempts_per_minute_per_ip=a.get("login_attempts_per_minute_per_ip", 30, int))
    a.finish()
    if auth.password_min_length < 8:
        raise ConfigError("auth.password_min_length must be at least 8")

    lim = Section(data, "limits")
    limits = LimitsConfig(post_burst=lim.get("post_burst", 30, int),
                          post_refill_per_second=float(lim.get("post_refill_per_second", 3.0, (int, float))))
    lim.finish()
    if limits.post_burst < 1 or limits.post_refill_per_second <= 0:
        raise ConfigError("limits.post_burst must be ≥ 1 and limits.post_refill_per_second > 0")

    g = Section(data, "guests")
    guests = GuestsConfig(organisation_name=g.get("organisation_name", "", str),
                          privacy_notice_file=_opt_path(g.get("privacy_notice_file", "", str), base))
    g.finish()

    lg = Section(data, "logging")
    level, fmt = lg.get("level", "INFO", str), lg.get("format", "json", str)
    lg.finish()
    return RelayConfig(web=web, queue=queue, storage_dir=storage_dir, retention=retention, auth=auth, limits=limits,
                       guests=guests, log_level=level, log_format=fmt)
