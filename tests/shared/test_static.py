"""shared.static: only allow-listed files under the root are served; traversal in any form is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.static import StaticFiles

TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


@pytest.fixture
def files(tmp_path: Path) -> StaticFiles:
    root = tmp_path / "static"
    (root / "js").mkdir(parents=True)
    (root / "js" / "main.js").write_text("export {};")
    (root / "app.css").write_text("body {}")
    (root / "notes.py").write_text("secret = 1")
    (root / ".env").write_text("x")
    (root / "js" / ".hidden.js").write_text("x")
    (root / "dir.js").mkdir()
    (tmp_path / "outside.js").write_text("x")
    (root / "link.js").symlink_to(tmp_path / "outside.js")
    return StaticFiles(root, TYPES)


def test_allow_listed_files_resolve(files: StaticFiles) -> None:
    assert files.resolve("js/main.js") == files.root / "js" / "main.js"
    assert files.resolve("app.css") == files.root / "app.css"


@pytest.mark.parametrize("relative", [
    "../outside.js", "js/../../outside.js", "js/./main.js", "js//main.js", "/etc/passwd", "js\\main.js",
    "js/main.js\x00", ".env", "js/.hidden.js", "notes.py", "js/", "", "missing.js", "dir.js", "link.js",
    "app.css/x", "%2e%2e/outside.js",
])
def test_everything_else_is_refused(files: StaticFiles, relative: str) -> None:
    assert files.resolve(relative) is None


def test_response_headers(files: StaticFiles) -> None:
    response = files.response(files.root / "app.css")
    assert response.headers["Content-Type"] == "text/css; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-cache"
    assert StaticFiles(files.root, TYPES, cache_control="max-age=60").response(
        files.root / "app.css").headers["Cache-Control"] == "max-age=60"
