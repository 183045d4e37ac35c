"""RelayConfig: one frozen dataclass from a TOML file plus ``KAKEHASHI_RELAY_*`` overrides."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared.config import ConfigError, Section, apply_env_overrides, load_toml

ENV_PREFIX = "KAKEHASHI_RELAY"


@dataclass(frozen=True)
class RelayConfig:
    host: str
    port: int
    port_file: Path | None
    data_dir: Path
    log_level: str
    log_format: str


def load_config(path: Path) -> RelayConfig:
    data = apply_env_overrides(load_toml(path), ENV_PREFIX)
    base = path.resolve().parent
    if unknown := set(data) - {"web", "storage", "logging"}:
        raise ConfigError(f"unknown sections: {', '.join(sorted(unknown))}")
    web = Section(data, "web")
    host, port = web.get("host", "127.0.0.1", str), web.get("port", 8450, int)
    port_file = web.get("port_file", "", str)
    web.finish()
    st = Section(data, "storage")
    data_dir = (base / st.get("data_dir", "var/relay", str)).resolve()
    st.finish()
    lg = Section(data, "logging")
    level, fmt = lg.get("level", "INFO", str), lg.get("format", "json", str)
    lg.finish()
    return RelayConfig(host, port, (base / port_file).resolve() if port_file else None, data_dir, level, fmt)
