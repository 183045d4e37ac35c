"""LgwanConfig: one frozen dataclass built from a TOML file plus ``KAKEHASHI_LGWAN_*`` overrides.

Every key is documented in ``deploy/lgwan_server.example.toml`` (tests/test_docs.py checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared import limits
from shared.authconfig import AuthConfig, read_auth
from shared.config import ConfigError, Section, apply_env_overrides, load_toml

ENV_PREFIX = "KAKEHASHI_LGWAN"


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8440
    port_file: Path | None = None       # written with the bound port once listening (port 0 in tests)
    public_origin: str = ""             # e.g. "https://chat.city.lg.jp"; requests with another Origin are refused
    tls_cert: Path | None = None        # serve TLS directly (otherwise terminate TLS in nginx)
    tls_key: Path | None = None
    behind_tls_proxy: bool = False      # cookies get Secure when a TLS proxy fronts the server
    trusted_proxies: tuple[str, ...] = ()  # addresses whose X-Forwarded-For is believed


@dataclass(frozen=True)
class StorageConfig:
    data_dir: Path = Path("var/lgwan")

    @property
    def db_path(self) -> Path:
        return self.data_dir / "lgwan.sqlite3"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"


@dataclass(frozen=True)
class LimitsConfig:
    max_upload_bytes: int = limits.MAX_UPLOAD_BYTES
    max_json_body_bytes: int = limits.MAX_JSON_BODY_BYTES
    post_burst: int = 30                 # posts one person may make at once…
    post_refill_per_second: float = 3.0  # …and the sustained rate after that


@dataclass(frozen=True)
class BridgeConfig:
    """The link to the internet relay (issue 5). The LGWAN side always dials out; see deploy/README."""

    enabled: bool = False
    relay_url: str = ""                 # ws://host:queue_port/queue or wss://… (the relay's queue port)
    relay_public_url: str = ""          # what guests and phones open, for enrolment links
    keys_dir: Path | None = None        # this tier's signing.key and the relay's key(s) in peers.json
    ca_file: Path | None = None         # wss: CA bundle or the relay's own certificate (pinning)
    connect_timeout: float = 10.0
    max_backoff: float = 30.0
    clock_skew: float = 300.0
    keep_acked: float = 7 * 86400.0     # acked outbox rows and inbox records are kept this long
    resync_history: float = 7 * 86400.0
    resync_max_messages_per_room: int = 200
    guest_invite_ttl: float = 7 * 86400.0
    guest_account_ttl: float = 90 * 86400.0
    mobile_enrol_ttl: float = 7 * 86400.0
    guest_device_approval: bool = False
    # Files from guests and phones (issue 3): the sanitizer's public key(s) in <dir>/peers.json
    # (kakehashi-keys install-peer). None = every file from the relay is refused.
    sanitizer_keys_dir: Path | None = None
    # Re-check files through a sanitizer service (python -m sanitizer serve) on this socket instead of
    # a confined worker pool started by the server itself.
    sanitizer_socket: Path | None = None


@dataclass(frozen=True)
class RecordsConfig:
    signing_key_dir: Path | None = None   # None = <data_dir>/keys/records (created on first export)


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"
    format: str = "json"


@dataclass(frozen=True)
class LgwanConfig:
    server: ServerConfig
    storage: StorageConfig
    auth: AuthConfig
    limits: LimitsConfig
    logging: LoggingConfig
    records: RecordsConfig = RecordsConfig()
    bridge: BridgeConfig = BridgeConfig()

    @property
    def records_key_dir(self) -> Path:
        return self.records.signing_key_dir or self.storage.data_dir / "keys" / "records"


def _opt_path(value: str, base: Path) -> Path | None:
    return (base / value).resolve() if value else None


def load_config(path: Path) -> LgwanConfig:
    """Load and validate the config file; relative paths are relative to the file's folder."""
    data = apply_env_overrides(load_toml(path), ENV_PREFIX)
    base = path.resolve().parent
    known = {"server", "storage", "auth", "limits", "logging", "records", "bridge"}
    if unknown := set(data) - known:
        raise ConfigError(f"unknown sections: {', '.join(sorted(unknown))}")

    s = Section(data, "server")
    server = ServerConfig(
        host=s.get("host", "127.0.0.1", str),
        port=s.get("port", 8440, int),
        port_file=_opt_path(s.get("port_file", "", str), base),
        public_origin=s.get("public_origin", "", str).rstrip("/"),
        tls_cert=_opt_path(s.get("tls_cert", "", str), base),
        tls_key=_opt_path(s.get("tls_key", "", str), base),
        behind_tls_proxy=s.get("behind_tls_proxy", False, bool),
        trusted_proxies=tuple(s.get("trusted_proxies", [], list)),
    )
    s.finish()
    if bool(server.tls_cert) != bool(server.tls_key):
        raise ConfigError("server.tls_cert and server.tls_key go together")

    st = Section(data, "storage")
    storage = StorageConfig(data_dir=(base / st.get("data_dir", "var/lgwan", str)).resolve())
    st.finish()

    auth = read_auth(data)

    lim = Section(data, "limits")
    lim_cfg = LimitsConfig(
        max_upload_bytes=lim.size("max_upload_bytes", limits.MAX_UPLOAD_BYTES),
        max_json_body_bytes=lim.size("max_json_body_bytes", limits.MAX_JSON_BODY_BYTES),
        post_burst=lim.get("post_burst", 30, int),
        post_refill_per_second=float(lim.get("post_refill_per_second", 3.0, (int, float))),
    )
    lim.finish()
    if lim_cfg.post_burst < 1 or lim_cfg.post_refill_per_second <= 0:
        raise ConfigError("limits.post_burst must be ≥ 1 and limits.post_refill_per_second > 0")

    lg = Section(data, "logging")
    log_cfg = LoggingConfig(level=lg.get("level", "INFO", str), format=lg.get("format", "json", str))
    lg.finish()
    rec = Section(data, "records")
    rec_cfg = RecordsConfig(signing_key_dir=_opt_path(rec.get("signing_key_dir", "", str), base))
    rec.finish()
    return LgwanConfig(server=server, storage=storage, auth=auth, limits=lim_cfg, logging=log_cfg, records=rec_cfg,
                       bridge=_bridge_config(data, base))


def _bridge_config(data: dict[str, Any], base: Path) -> BridgeConfig:
    """[bridge]: the link to the internet relay (issue 5)."""
    b = Section(data, "bridge")
    cfg = BridgeConfig(
        enabled=b.get("enabled", False, bool),
        relay_url=b.get("relay_url", "", str),
        relay_public_url=b.get("relay_public_url", "", str).rstrip("/"),
        keys_dir=_opt_path(b.get("keys_dir", "", str), base),
        ca_file=_opt_path(b.get("ca_file", "", str), base),
        connect_timeout=b.duration("connect_timeout", "10s"),
        max_backoff=b.duration("max_backoff", "30s"),
        clock_skew=b.duration("clock_skew", "5m"),
        keep_acked=b.duration("keep_acked", "7d"),
        resync_history=b.duration("resync_history", "7d"),
        resync_max_messages_per_room=b.get("resync_max_messages_per_room", 200, int),
        guest_invite_ttl=b.duration("guest_invite_ttl", "7d"),
        guest_account_ttl=b.duration("guest_account_ttl", "90d"),
        mobile_enrol_ttl=b.duration("mobile_enrol_ttl", "7d"),
        guest_device_approval=b.get("guest_device_approval", False, bool),
        sanitizer_keys_dir=_opt_path(b.get("sanitizer_keys_dir", "", str), base),
        sanitizer_socket=_opt_path(b.get("sanitizer_socket", "", str), base),
    )
    b.finish()
    if cfg.enabled:
        if not cfg.relay_url.startswith(("ws://", "wss://")):
            raise ConfigError("bridge.relay_url must start with ws:// or wss://")
        if cfg.keys_dir is None:
            raise ConfigError("bridge.keys_dir is required when the bridge is enabled")
        if not cfg.relay_public_url.startswith(("http://", "https://")):
            raise ConfigError("bridge.relay_public_url must start with http:// or https://")
    if cfg.max_backoff < 0.1 or cfg.clock_skew < 1:
        raise ConfigError("bridge.max_backoff must be ≥ 100ms and bridge.clock_skew ≥ 1s")
    return cfg
