"""LgwanConfig: one frozen dataclass built from a TOML file plus ``KAKEHASHI_LGWAN_*`` overrides.

Every key is documented in ``deploy/lgwan_server.example.toml`` (tests/test_docs.py checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared import limits
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
    max_upload_bytes: int = limits.MAX_UPLOAD_BYTES
    max_json_body_bytes: int = limits.MAX_JSON_BODY_BYTES


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

    @property
    def records_key_dir(self) -> Path:
        return self.records.signing_key_dir or self.storage.data_dir / "keys" / "records"


def _opt_path(value: str, base: Path) -> Path | None:
    return (base / value).resolve() if value else None


def load_config(path: Path) -> LgwanConfig:
    """Load and validate the config file; relative paths are relative to the file's folder."""
    data = apply_env_overrides(load_toml(path), ENV_PREFIX)
    base = path.resolve().parent
    known = {"server", "storage", "auth", "limits", "logging", "records"}
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

    lim = Section(data, "limits")
    lim_cfg = LimitsConfig(
        max_upload_bytes=lim.size("max_upload_bytes", limits.MAX_UPLOAD_BYTES),
        max_json_body_bytes=lim.size("max_json_body_bytes", limits.MAX_JSON_BODY_BYTES),
    )
    lim.finish()

    lg = Section(data, "logging")
    log_cfg = LoggingConfig(level=lg.get("level", "INFO", str), format=lg.get("format", "json", str))
    lg.finish()
    rec = Section(data, "records")
    rec_cfg = RecordsConfig(signing_key_dir=_opt_path(rec.get("signing_key_dir", "", str), base))
    rec.finish()
    return LgwanConfig(server=server, storage=storage, auth=auth, limits=lim_cfg, logging=log_cfg, records=rec_cfg)
