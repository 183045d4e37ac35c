"""Backup and restore of the LGWAN tier: database, file store and keys.

``backup`` runs while the server is up: SQLite's online backup API copies a consistent snapshot
(WAL included) page by page, so the RPO is the moment the command starts. Blobs are
content-addressed and never change, so a file copy is consistent by construction. A manifest
records the SHA-256 of every copied file; ``restore`` checks it, refuses to overwrite live data
unless told to, and finishes with ``PRAGMA integrity_check`` and an audit-chain verification.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from shared.timeutil import JST, now_iso

MANIFEST = "backup-manifest.json"
DB_NAME = "lgwan.sqlite3"


class BackupError(Exception):
    pass


@dataclass(frozen=True)
class BackupResult:
    path: Path
    files: int
    bytes: int


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def backup(data_dir: Path, dest_root: Path) -> BackupResult:
    """Write ``dest_root/kakehashi-lgwan-<JST time>/`` with db, files/ and keys/; returns its path."""
    db_path = data_dir / DB_NAME
    if not db_path.exists():
        raise BackupError(f"no database at {db_path}")
    target = dest_root / f"kakehashi-lgwan-{datetime.now(JST):%Y%m%d-%H%M%S}"
    tmp = target.with_name(target.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    source = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        dest = sqlite3.connect(tmp / DB_NAME)
        with dest:
            source.backup(dest, pages=4096)
        dest.close()
    finally:
        source.close()
    for sub in ("files", "keys"):
        src = data_dir / sub
        if src.exists():
            shutil.copytree(src, tmp / sub, ignore=shutil.ignore_patterns("tmp"), copy_function=shutil.copy2)
    entries, total = {}, 0
    for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
        rel = path.relative_to(tmp).as_posix()
        entries[rel] = _sha256(path)
        total += path.stat().st_size
    (tmp / MANIFEST).write_text(json.dumps({"format": "kakehashi-lgwan-backup/1", "created_at": now_iso(),
                                            "files": entries}, indent=2), encoding="utf-8")
    os.replace(tmp, target)   # a backup folder without ".partial" is complete
    return BackupResult(target, len(entries), total)


def verify_backup(source: Path) -> dict[str, str]:
    try:
        manifest = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(f"{source}: no readable {MANIFEST}") from exc
    files: dict[str, str] = manifest["files"]
    if DB_NAME not in files:
        raise BackupError("the backup has no database")
    for rel, digest in files.items():
        path = source / rel
        if not path.is_file() or _sha256(path) != digest:
            raise BackupError(f"{rel} is missing or changed since the backup")
    return files


def restore(source: Path, data_dir: Path, *, force: bool = False) -> int:
    """Copy a verified backup into ``data_dir`` (server stopped). Returns the number of files restored."""
    files = verify_backup(source)
    if (data_dir / DB_NAME).exists() and not force:
        raise BackupError(f"{data_dir} already holds a database; stop the server and pass --force to replace it")
    data_dir.mkdir(parents=True, exist_ok=True)
    for stale in (DB_NAME + "-wal", DB_NAME + "-shm"):
        (data_dir / stale).unlink(missing_ok=True)
    for rel in files:
        target = data_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / rel, target)
    if (source / "keys").exists():
        for path in (data_dir / "keys").rglob("*"):
            if path.is_file() and path.name.endswith(".key"):
                path.chmod(0o600)
    conn = sqlite3.connect(data_dir / DB_NAME)
    try:
        result = conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()
    if result != "ok":
        raise BackupError(f"integrity_check after restore: {result}")
    return len(files)
