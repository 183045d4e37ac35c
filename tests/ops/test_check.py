"""deploy/ops/kakehashi_check.py: the monitoring checks answer OK, WARNING, CRITICAL as documented."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

CHECK = Path(__file__).resolve().parents[2] / "deploy" / "ops" / "kakehashi_check.py"


def check(*args: str | Path) -> tuple[int, str]:
    out = subprocess.run([sys.executable, str(CHECK), *map(str, args)], capture_output=True, text=True, timeout=60)
    return out.returncode, out.stdout.strip()


def iso(minutes_ago: float) -> str:
    moment = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.fixture
def health_server() -> Iterator[tuple[str, dict[str, object]]]:
    body: dict[str, object] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/healthz", body
    server.shutdown()
    server.server_close()


def test_health(health_server: tuple[str, dict[str, object]]) -> None:
    url, body = health_server
    link: dict[str, object] = {"enabled": True, "connected": True, "paused": False, "last_error": None,
            "outbound": {"depth": 3, "lag_seconds": 0.4}}
    body.update({"status": "ok", "tier": "lgwan", "schema_version": 5, "websockets": 12, "bridge": link})
    code, line = check("health", url)
    assert code == 0 and "depth=3" in line and line.startswith("KAKEHASHI HEALTH OK")
    link["outbound"] = {"depth": 150, "lag_seconds": 0.4}
    assert check("health", url)[0] == 1
    link["outbound"] = {"depth": 5, "lag_seconds": 900}
    assert check("health", url)[0] == 2
    link.update({"connected": False, "last_error": "ClientConnectorError", "outbound": {"depth": 0, "lag_seconds": 0}})
    assert check("health", url)[0] == 1 and check("health", url, "--require-link")[0] == 2
    body.clear()
    body.update({"status": "ok", "tier": "relay", "link": {"connected": True, "outbound": {"depth": 0}}})
    assert check("health", url)[0] == 0
    assert check("health", "http://127.0.0.1:1/healthz")[0] == 2


def test_logins_and_events(tmp_path: Path) -> None:
    lgwan = tmp_path / "lgwan.sqlite3"
    with sqlite3.connect(lgwan) as conn:
        conn.execute("CREATE TABLE audit_log (id INTEGER PRIMARY KEY, at TEXT, action TEXT, outcome TEXT)")
        rows = [(iso(1), "auth.login", "failed")] * 25 + [(iso(2), "auth.login", "ok")] * 3 + \
               [(iso(120), "auth.login", "failed")] * 500
        conn.executemany("INSERT INTO audit_log (at, action, outcome) VALUES (?, ?, ?)", rows)
    code, line = check("logins", lgwan)
    assert code == 1 and "25 failed" in line and "3 successful" in line
    assert check("logins", lgwan, "--window", "3h")[0] == 2
    assert check("events", lgwan)[0] == 0
    relay = tmp_path / "relay.sqlite3"
    with sqlite3.connect(relay) as conn:
        conn.execute("CREATE TABLE audit (id INTEGER PRIMARY KEY, at TEXT, action TEXT, outcome TEXT)")
        conn.execute("INSERT INTO audit (at, action, outcome) VALUES (?, 'queue.envelope_rejected', 'denied')",
                     (iso(5),))
    assert check("events", relay)[0] == 2
    assert check("logins", relay)[0] == 0
    assert check("logins", tmp_path / "missing.sqlite3")[0] == 3


def test_sanitizer_and_backup(tmp_path: Path) -> None:
    relay = tmp_path / "relay.sqlite3"
    with sqlite3.connect(relay) as conn:
        conn.execute("CREATE TABLE audit (id INTEGER PRIMARY KEY, at TEXT, action TEXT, outcome TEXT, detail TEXT)")
        conn.execute("INSERT INTO audit (at, action, outcome, detail) VALUES (?, 'file.upload', 'ok', '{}')",
                     (iso(3),))
    assert check("sanitizer", relay)[0] == 0
    with sqlite3.connect(relay) as conn:
        conn.execute("INSERT INTO audit (at, action, outcome, detail) VALUES (?, 'file.refused', 'denied', ?)",
                     (iso(2), json.dumps({"code": "type_mismatch"})))
    code, line = check("sanitizer", relay)
    assert code == 1 and "type_mismatch×1" in line and "1 rebuilt" in line
    with sqlite3.connect(relay) as conn:
        conn.execute("INSERT INTO audit (at, action, outcome, detail) VALUES (?, 'file.sanitizer_unavailable', "
                     "'failed', '{}')", (iso(1),))
    assert check("sanitizer", relay)[0] == 2
    backups = tmp_path / "backups"
    backups.mkdir()
    assert check("backup", backups)[0] == 2
    archive = backups / "kakehashi-lgwan-20260101T000000Z.kkbackup"
    archive.write_bytes(b"x")
    assert check("backup", backups)[0] == 0
    old = time.time() - 30 * 3600
    os.utime(archive, (old, old))
    assert check("backup", backups)[0] == 2
