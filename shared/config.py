"""TOML config helpers shared by the tiers: typed lookups, sizes, durations, env overrides."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMG]i?B|B)?\s*$", re.IGNORECASE)
_DURATION_RE = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)?\s*$")
_SIZE_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


class ConfigError(Exception):
    """A configuration file or value is invalid; the message names the key."""


def load_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file, turning syntax errors into ConfigError."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def apply_env_overrides(data: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Override ``section.key`` from ``{PREFIX}_{SECTION}__{KEY}`` environment variables.

    Values are parsed as TOML scalars when possible (``true``, ``8080``), else kept as strings.
    """
    for name, raw in os.environ.items():
        if not name.startswith(prefix + "_") or "__" not in name:
            continue
        section, _, key = name[len(prefix) + 1 :].lower().partition("__")
        try:
            value: Any = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        data.setdefault(section, {})[key] = value
    return data


def parse_size(value: int | str, key: str) -> int:
    """``"50 MiB"`` → bytes."""
    if isinstance(value, bool) or (isinstance(value, int) and value < 0):
        raise ConfigError(f"{key}: not a size: {value!r}")
    if isinstance(value, int):
        return value
    match = _SIZE_RE.match(str(value))
    if not match:
        raise ConfigError(f"{key}: not a size: {value!r}")
    return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "B").lower()]


def parse_duration(value: int | float | str, key: str) -> float:
    """``"30m"`` → seconds."""
    if isinstance(value, bool) or (isinstance(value, (int, float)) and not value >= 0):   # also refuses NaN
        raise ConfigError(f"{key}: not a duration: {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    match = _DURATION_RE.match(str(value))
    if not match:
        raise ConfigError(f"{key}: not a duration: {value!r}")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]


class Section:
    """Typed access to one TOML table; records which keys were read so unknown ones are errors."""

    def __init__(self, data: dict[str, Any], name: str) -> None:
        raw = data.get(name, {})
        if not isinstance(raw, dict):
            raise ConfigError(f"[{name}] must be a table")
        self._data = raw
        self._name = name
        self._seen: set[str] = set()

    def get(self, key: str, default: Any, kind: type | tuple[type, ...]) -> Any:
        self._seen.add(key)
        value = self._data.get(key, default)
        # bool is a subclass of int: a `true` where a number belongs is a mistake unless bool was asked for.
        bool_ok = kind is bool or (isinstance(kind, tuple) and bool in kind)
        if not isinstance(value, kind) or (isinstance(value, bool) and not bool_ok):
            raise ConfigError(f"{self._name}.{key}: expected {kind}, got {type(value).__name__}")
        return value

    def size(self, key: str, default: int | str) -> int:
        return parse_size(self.get(key, default, (int, str)), f"{self._name}.{key}")

    def duration(self, key: str, default: float | int | str) -> float:
        return parse_duration(self.get(key, default, (int, float, str)), f"{self._name}.{key}")

    def finish(self) -> None:
        """Raise if the table holds a key nobody asked for (a typo must not pass silently)."""
        unknown = set(self._data) - self._seen
        if unknown:
            raise ConfigError(f"[{self._name}] unknown keys: {', '.join(sorted(unknown))}")
