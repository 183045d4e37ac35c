"""Static serving (lgwan_server/web/pages.py) and the catalogues, without a browser."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .conftest import ROOT, Server

STATIC = ROOT / "lgwan_server" / "static"


def fetch(server: Server, path: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(server.base_url + path, timeout=5) as r:  # noqa: S310 - loopback only
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def test_index_and_assets_have_types_and_cache_headers(server: Server) -> None:
    status, headers, body = fetch(server, "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert headers["cache-control"] == "no-cache"
    assert "script-src 'self'" in headers["content-security-policy"]
    assert b"<script" in body and b'src="/static/js/main.js"' in body
    assert not re.search(rb"<script(?![^>]*\bsrc=)", body), "no inline script"
    assert b"style=" not in body and b"<style" not in body
    for path, kind in (("/static/js/main.js", "text/javascript"), ("/static/css/app.css", "text/css"),
                       ("/static/i18n/ja.json", "application/json"), ("/static/img/icon.svg", "image/svg+xml")):
        status, headers, _ = fetch(server, path)
        assert status == 200, path
        assert headers["content-type"].startswith(kind), (path, headers["content-type"])
        assert headers["cache-control"] == "no-cache"
        assert "etag" in headers or "last-modified" in headers
        assert headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", ["/static/../app.py", "/static/%2e%2e/app.py", "/static/js/../../app.py",
                                  "/static/.hidden", "/static/js/", "/static/index.html/x", "/static/nope.js",
                                  "/static/..%2fapp.py", "/static/js/main.py"])
def test_static_refuses_traversal_and_unknown_files(server: Server, path: str) -> None:
    status, _, body = fetch(server, path)
    assert status == 404
    assert b"import " not in body


def test_no_external_references_in_assets() -> None:
    """Every asset is local: no CDN, web font or remote URL (the SVG namespace is a name, not a fetch)."""
    allowed = {"http://www.w3.org/2000/svg"}
    for path in STATIC.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            urls = set(re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}[^\s\"'`)]*", text)) - allowed
            assert not urls, f"{path.relative_to(ROOT)}: {urls}"
            assert "@import" not in text and "@font-face" not in text


def _code(path: Path) -> str:
    """A script without its comments (which may well mention innerHTML to forbid it)."""
    return re.sub(r"(?<![:\\])//[^\n]*|/\*.*?\*/", "", path.read_text(encoding="utf-8"), flags=re.S)


def test_no_inner_html_or_inline_styles_in_scripts() -> None:
    for path in (STATIC / "js").rglob("*.js"):
        text = _code(path)
        for pattern in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                        ".style.cssText", 'setAttribute("style"'):
            assert pattern not in text, f"{path.name} uses {pattern}"


def test_catalogues_match_and_cover_every_key() -> None:
    ja = json.loads((STATIC / "i18n" / "ja.json").read_text(encoding="utf-8"))
    en = json.loads((STATIC / "i18n" / "en.json").read_text(encoding="utf-8"))
    assert set(ja) == set(en)
    for key in ja:
        assert set(re.findall(r"\{(\w+)\}", ja[key])) == set(re.findall(r"\{(\w+)\}", en[key])), key
    source = "\n".join(p.read_text(encoding="utf-8") for p in (STATIC / "js").rglob("*.js"))
    used = set(re.findall(r"\bt\(\"([a-zA-Z0-9_.]+)\"", source))
    # Keys handed to helpers (field(id, "key", …)) are string literals in a catalogue namespace.
    namespaces = {k.split(".")[0] for k in ja}
    pattern = r"\"((?:" + "|".join(sorted(namespaces)) + r")\.[a-zA-Z0-9_.]+)\""
    literals = set(re.findall(pattern, source))
    openapi = (ROOT / "lgwan_server" / "openapi.yaml").read_text(encoding="utf-8")
    events = set(re.findall(r"\b([a-z]+\.[a-z_]+)\b", openapi.split("Server frames:")[1].split("parameters:")[0]))
    missing = sorted(k for k in used | (literals - events) if k not in ja)
    assert missing == []
    # No Japanese or English UI text hard-coded in scripts: every Japanese character lives in the catalogue.
    for path in (STATIC / "js").rglob("*.js"):
        code = _code(path)
        assert not re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", code), f"{path.name} has Japanese text outside the catalogue"
