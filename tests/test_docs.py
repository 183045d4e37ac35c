"""Docs are tested (handbook rule 14): the OpenAPI document, the example config and the error catalogue
agree with the code."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from lgwan_server.app import create_app
from lgwan_server.config import load_config
from lgwan_server.errors import CATALOGUE
from shared.config import ConfigError, Section

ROOT = Path(__file__).resolve().parents[1]
OPENAPI = ROOT / "lgwan_server" / "openapi.yaml"
EXAMPLE = ROOT / "deploy" / "lgwan_server.example.toml"
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(autouse=True)
def _no_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("KAKEHASHI_LGWAN_"):
            monkeypatch.delenv(name)


def _minimal_config(tmp_path: Path) -> Path:
    path = tmp_path / "lgwan.toml"
    path.write_text('[storage]\ndata_dir = "data"\n', encoding="utf-8")
    return path


# --- routes and openapi.yaml -------------------------------------------------------------------

def app_routes(tmp_path: Path) -> set[tuple[str, str]]:
    app = create_app(load_config(_minimal_config(tmp_path)))
    out = set()
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        # "/static/{path:.+}" is canonically "/static/{path}", as OpenAPI writes it.
        out.add((route.method, re.sub(r"\{(\w+):[^}]+\}", r"{\1}", route.resource.canonical)))
    return out


def documented_routes() -> set[tuple[str, str]]:
    spec = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    return {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops if method in METHODS}


def test_every_route_is_documented_and_every_documented_route_exists(tmp_path: Path) -> None:
    routes, documented = app_routes(tmp_path), documented_routes()
    assert len(routes) > 30
    assert sorted(routes - documented) == [], "routes missing from openapi.yaml"
    assert sorted(documented - routes) == [], "openapi.yaml documents routes the app does not have"


def test_openapi_request_schemas_reject_unknown_fields() -> None:
    """The server validates bodies against these schemas; each object schema must be closed."""
    spec = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    schemas = spec["components"]["schemas"]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if method not in METHODS or "requestBody" not in op:
                continue
            for ctype, media in op["requestBody"]["content"].items():
                ref = media.get("schema", {}).get("$ref")
                if ctype != "application/json" or ref is None:
                    continue
                schema = schemas[ref.rsplit("/", 1)[-1]]
                assert schema.get("additionalProperties") is False, f"{method.upper()} {path}: {ref} is open"


# --- the example config and the loader ---------------------------------------------------------

_COMMENTED_KEY = re.compile(r"^#\s*([a-z_][a-z0-9_]*)\s*=(.*)$")


def _commented_key(line: str) -> str | None:
    """``# key = value`` where the value is TOML (prose such as "# true = a guest's…" is not a key)."""
    match = _COMMENTED_KEY.match(line)
    if match is None:
        return None
    try:
        tomllib.loads(f"{match.group(1)} = {match.group(2).strip()}")
    except tomllib.TOMLDecodeError:
        return None
    return match.group(1)


def example_keys() -> dict[str, set[str]]:
    """Keys set in the example, plus keys shown commented out (``# key = value``) in their table."""
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    keys = {section: set(table) for section, table in data.items()}
    section = None
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        if match := re.match(r"^\[([a-z_]+)\]", line):
            section = match.group(1)
            keys.setdefault(section, set())
        elif section and (key := _commented_key(line.strip())):
            keys[section].add(key)
    return keys


def loader_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, set[str]]:
    """Every (table, key) the loader asks for, recorded while it loads a config that sets nothing."""
    asked: dict[str, set[str]] = {}
    original = Section.get

    def spy(self: Section, key: str, default: Any, kind: Any) -> Any:
        asked.setdefault(self._name, set()).add(key)
        return original(self, key, default, kind)

    monkeypatch.setattr(Section, "get", spy)
    load_config(_minimal_config(tmp_path))
    monkeypatch.setattr(Section, "get", original)
    return asked


def test_example_config_loads() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.server.port == 8440 and cfg.auth.lockout_threshold == 5


def test_every_example_key_is_read_and_every_read_key_is_in_the_example(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    example, loader = example_keys(), loader_keys(tmp_path, monkeypatch)
    undocumented = sorted(f"[{s}] {k}" for s, keys in loader.items() for k in keys - example.get(s, set()))
    unknown = sorted(f"[{s}] {k}" for s, keys in example.items() for k in keys - loader.get(s, set()))
    assert undocumented == [], ("keys the loader reads but deploy/lgwan_server.example.toml does not show: "
                                + ", ".join(undocumented))
    assert unknown == [], "keys in the example that the loader does not read: " + ", ".join(unknown)


def test_unknown_keys_and_tables_are_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for section in loader_keys(tmp_path, monkeypatch):
        path = tmp_path / f"{section}.toml"
        path.write_text(f'[{section}]\nno_such_key_typo = 1\n', encoding="utf-8")
        with pytest.raises(ConfigError, match="no_such_key_typo"):
            load_config(path)
    path = tmp_path / "section.toml"
    path.write_text("[sever]\nport = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="sever"):
        load_config(path)


# --- error codes -------------------------------------------------------------------------------

def raised_codes() -> dict[str, list[str]]:
    """Every ``AppError("literal", …)`` call in lgwan_server (calls, not mentions in docstrings)."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "lgwan_server").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            first = node.args[0]
            if name == "AppError" and isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.setdefault(first.value, []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_raised_error_code_is_in_the_catalogue() -> None:
    from lgwan_server.middlewares import _HTTP_CODES

    found = raised_codes()
    assert len(found) > 40
    missing = {code: where for code, where in found.items() if code not in CATALOGUE}
    assert missing == {}
    assert set(_HTTP_CODES.values()) <= set(CATALOGUE)


def test_catalogue_entries_are_complete() -> None:
    for code, (status, ja, en) in CATALOGUE.items():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", code), code
        assert 400 <= status <= 599, code
        assert ja.strip() and en.strip(), code
        assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", ja), f"{code}: the Japanese message is not Japanese"
