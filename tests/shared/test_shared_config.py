"""shared.config: TOML loading, typed sections that refuse unknown keys, sizes, durations, env overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.config import ConfigError, Section, apply_env_overrides, load_toml, parse_duration, parse_size


@pytest.mark.parametrize(("value", "expected"), [
    (0, 0), (1234, 1234), ("10", 10), ("10B", 10), ("1 KB", 1000), ("1KiB", 1024), ("50 MiB", 50 * 1024**2),
    ("2 GiB", 2 * 1024**3), ("3gb", 3_000_000_000), ("  256 kib ", 256 * 1024),
])
def test_parse_size(value: int | str, expected: int) -> None:
    assert parse_size(value, "limits.x") == expected


@pytest.mark.parametrize("value", ["1.5 MiB", "-1", "ten", "10 MB extra", "", "1 TB", -1, True, 2.5])
def test_parse_size_refuses(value: Any) -> None:
    with pytest.raises(ConfigError, match="limits.x"):
        parse_size(value, "limits.x")


@pytest.mark.parametrize(("value", "expected"), [
    ("30m", 1800.0), ("12h", 43200.0), ("7d", 604800.0), ("250ms", 0.25), ("45", 45.0), ("45s", 45.0), (5, 5.0),
    (2.5, 2.5), (0, 0.0),
])
def test_parse_duration(value: int | float | str, expected: float) -> None:
    assert parse_duration(value, "auth.x") == expected


@pytest.mark.parametrize("value", ["5 min", "1.5h", "-30m", "30M", "", "forever", -1, -0.5, True, False])
def test_parse_duration_refuses(value: Any) -> None:
    with pytest.raises(ConfigError, match="auth.x"):
        parse_duration(value, "auth.x")


def test_section_types_defaults_and_unknown_keys() -> None:
    data = {"server": {"port": 8440, "host": "127.0.0.1", "debug": True, "size": "1 MiB", "wait": "2m"}}
    s = Section(data, "server")
    assert s.get("port", 0, int) == 8440
    assert s.get("host", "", str) == "127.0.0.1"
    assert s.get("debug", False, bool) is True
    assert s.get("missing", "fallback", str) == "fallback"
    assert s.size("size", 0) == 1024**2
    assert s.duration("wait", "1s") == 120.0
    s.finish()
    extra = Section({"server": {"port": 1, "prot": 2}}, "server")
    extra.get("port", 0, int)
    with pytest.raises(ConfigError, match=r"\[server\] unknown keys: prot"):
        extra.finish()
    assert Section({}, "absent").get("x", 3, int) == 3


@pytest.mark.parametrize(("value", "kind"), [
    ("8440", int), (True, int), (1, bool), (1, str), (["a"], str), ("x", (int, float)), (False, (int, float)),
])
def test_section_refuses_wrong_types(value: Any, kind: Any) -> None:
    with pytest.raises(ConfigError, match="server.key"):
        Section({"server": {"key": value}}, "server").get("key", None, kind)


def test_section_must_be_a_table() -> None:
    with pytest.raises(ConfigError, match=r"\[server\] must be a table"):
        Section({"server": 5}, "server")


def test_booleans_are_not_sizes_or_durations() -> None:
    s = Section({"limits": {"max_upload_bytes": True, "timeout": True}}, "limits")
    with pytest.raises(ConfigError, match="limits.max_upload_bytes"):
        s.size("max_upload_bytes", "1 MiB")
    with pytest.raises(ConfigError, match="limits.timeout"):
        s.duration("timeout", "1s")


def test_load_toml(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[server]\nport = 1\nname = "架橋市"\n', encoding="utf-8")
    assert load_toml(good) == {"server": {"port": 1, "name": "架橋市"}}
    with pytest.raises(ConfigError, match="not found"):
        load_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nport = ", encoding="utf-8")
    with pytest.raises(ConfigError, match="bad.toml"):
        load_toml(bad)


def test_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KKTEST_SERVER__PORT", "9000")
    monkeypatch.setenv("KKTEST_SERVER__HOST", "10.0.0.5")             # not TOML: kept as a string
    monkeypatch.setenv("KKTEST_AUTH__BEHIND", "true")
    monkeypatch.setenv("KKTEST_SERVER__TRUSTED_PROXIES", '["10.0.0.1", "10.0.0.2"]')
    monkeypatch.setenv("KKTEST_NOSECTION", "1")                       # no "__": ignored
    monkeypatch.setenv("KKTESTX_SERVER__PORT", "1")                   # another prefix: ignored
    data = apply_env_overrides({"server": {"port": 8440, "keep": "x"}}, "KKTEST")
    assert data == {"server": {"port": 9000, "keep": "x", "host": "10.0.0.5",
                               "trusted_proxies": ["10.0.0.1", "10.0.0.2"]},
                    "auth": {"behind": True}}
