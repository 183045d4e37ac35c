"""RelayConfig: one frozen dataclass from a TOML file plus ``KAKEHASHI_RELAY_*`` overrides.

Every key is documented in ``deploy/internet_relay.example.toml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.authconfig import AuthConfig, read_auth
from shared.config import ConfigError, Section, apply_env_overrides, load_toml

ENV_PREFIX = "KAKEHASHI_RELAY"
SECTIONS = ("web", "queue", "storage", "retention", "auth", "limits", "guests", "logging", "sanitizer")


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
class LimitsConfig:
    post_burst: int = 30
    post_refill_per_second: float = 3.0


@dataclass(frozen=True)
class GuestsConfig:
    organisation_name: str = ""
    privacy_notice_file: Path | None = None


@dataclass(frozen=True)
class SanitizerConfig:
    """Guest and staff-phone file uploads (issue 3, item 9): every file goes through the sanitizer service."""

    socket: Path | None = None          # the sanitizer service's Unix socket; None = uploads are off
    timeout: float = 180.0              # give up on one file after this long (nothing crosses)
    max_upload_bytes: int = 20 * 1024 * 1024
    uploads_per_hour: int = 30          # per account


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
    sanitizer: SanitizerConfig = SanitizerConfig()

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

    auth = read_auth(data)

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
                       guests=guests, log_level=level, log_format=fmt,
                       sanitizer=_sanitizer_config(data, base))


def _sanitizer_config(data: dict[str, Any], base: Path) -> SanitizerConfig:
    """[sanitizer]: where uploads are rebuilt before anything may cross (issue 3, item 9)."""
    sz = Section(data, "sanitizer")
    cfg = SanitizerConfig(socket=_opt_path(sz.get("socket", "", str), base),
                          timeout=sz.duration("timeout", "3m"),
                          max_upload_bytes=sz.size("max_upload_bytes", "20MiB"),
                          uploads_per_hour=sz.get("uploads_per_hour", 30, int))
    sz.finish()
    if not 0 < cfg.max_upload_bytes <= 50 * 1024 * 1024:
        raise ConfigError("sanitizer.max_upload_bytes must be between 1 byte and 50MiB (the sanitizer's limit)")
    if cfg.uploads_per_hour < 1 or cfg.timeout < 1:
        raise ConfigError("sanitizer.uploads_per_hour must be ≥ 1 and sanitizer.timeout ≥ 1s")
    return cfg
