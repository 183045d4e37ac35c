"""Restore drill: back up a live data dir, destroy it, restore, and every message and audit entry is back."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lgwan_server", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120)


def counts(db: Path) -> dict[str, object]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {
            "messages": conn.execute("SELECT count(*), group_concat(body, '|') FROM messages").fetchone(),
            "audit": conn.execute("SELECT count(*), max(hash) FROM audit_log").fetchone(),
            "staff": conn.execute("SELECT count(*) FROM staff").fetchone()[0],
            "marks": conn.execute("SELECT count(*) FROM record_marks").fetchone()[0],
        }
    finally:
        conn.close()


def test_backup_destroy_restore(tmp_path: Path) -> None:
    config = tmp_path / "lgwan.toml"
    config.write_text('[storage]\ndata_dir = "data"\n[logging]\nformat = "text"\nlevel = "WARNING"\n')
    assert cli(config, "load-demo", "--staff", "40").returncode == 0
    data = tmp_path / "data"
    (data / "keys" / "records").mkdir(parents=True)
    (data / "keys" / "records" / "signing.key").write_bytes(b"placeholder")   # keys travel with the backup
    before = counts(data / "lgwan.sqlite3")

    result = cli(config, "backup", "--to", str(tmp_path / "backups"))
    assert result.returncode == 0, result.stderr
    folder = Path(json.loads(result.stdout)["backup"])
    assert not list((tmp_path / "backups").glob("*.partial"))

    shutil.rmtree(data)                                                     # the disaster
    result = cli(config, "restore", "--from", str(folder))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["audit_chain"]["ok"] is True

    after = counts(data / "lgwan.sqlite3")
    assert after["messages"] == before["messages"]
    assert after["staff"] == before["staff"]
    audit_before, audit_after = before["audit"], after["audit"]
    assert isinstance(audit_before, tuple) and isinstance(audit_after, tuple)
    assert audit_after[0] == audit_before[0] + 1        # every entry back, plus the restore itself
    assert (data / "keys" / "records" / "signing.key").stat().st_mode & 0o777 == 0o600
    assert cli(config, "verify-audit").returncode == 0


def test_restore_refuses_a_changed_backup_and_live_data(tmp_path: Path) -> None:
    config = tmp_path / "lgwan.toml"
    config.write_text('[storage]\ndata_dir = "data"\n[logging]\nformat = "text"\nlevel = "WARNING"\n')
    assert cli(config, "load-demo", "--staff", "20").returncode == 0
    folder = Path(json.loads(cli(config, "backup", "--to", str(tmp_path / "b")).stdout)["backup"])

    refused = cli(config, "restore", "--from", str(folder))                 # live data present
    assert refused.returncode == 1 and "--force" in refused.stdout

    with (folder / "lgwan.sqlite3").open("r+b") as fh:                      # one flipped byte
        fh.seek(200)
        byte = fh.read(1)
        fh.seek(200)
        fh.write(bytes([byte[0] ^ 0xFF]))
    changed = cli(config, "restore", "--from", str(folder), "--force")
    assert changed.returncode == 1 and "changed" in changed.stdout
