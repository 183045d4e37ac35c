"""Helpers for the file tests (issue 3, item 9): a real sanitizer service, both tiers wired to it, uploads,
forged transfers written into a stopped relay's outbox, and a scan of the data directories.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from shared import envelope as env
from shared.signing import Signer, encode_public_key, fingerprint, save_peers, write_signer
from shared.timeutil import now_iso
from shared.verdict import encode_report, sign_verdict, split_chunks

from .harness import REPO, Client, TwoTiers, start_two_tiers

CORPUS = Path(os.environ.get("KAKEHASHI_CORPUS") or REPO.parent / "shared" / "corpus")


@dataclass
class SanitizerService:
    """``python -m sanitizer serve`` as its own process, with its own key (and that key trusted by LGWAN)."""

    proc: subprocess.Popen[bytes]
    socket: Path
    signer: Signer
    trust_dir: Path             # what LGWAN's [bridge] sanitizer_keys_dir points at
    log_path: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        with contextlib.suppress(OSError):
            self.socket.unlink()
            self.socket.parent.rmdir()


def start_sanitizer(root: Path) -> SanitizerService:
    signer = Signer.generate()
    keys = root / "keys-sanitizer"
    write_signer(keys, signer)
    trust = root / "keys-lgwan-sanitizer-trust"
    save_peers_dir(trust, signer)
    # A short directory: Unix socket paths are limited to 107 bytes.
    socket_path = Path(tempfile.mkdtemp(prefix="ks-")) / "sanitizer.sock"
    log_path = root / "sanitizer.log"
    env_vars = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with log_path.open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "sanitizer", "serve", "--socket", str(socket_path), "--keys",
                                 str(keys), "--workers", "1", "--log-format", "text"],
                                stdout=log, stderr=log, env=env_vars, cwd=root)
    deadline = time.monotonic() + 60
    while not socket_path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("sanitizer service did not start:\n" + log_path.read_text(errors="replace")[-3000:])
        time.sleep(0.02)
    return SanitizerService(proc, socket_path, signer, trust, log_path)


def save_peers_dir(directory: Path, signer: Signer) -> None:
    """What ``kakehashi-keys install-peer`` writes after the fingerprints were compared."""
    directory.mkdir(parents=True, exist_ok=True)
    save_peers(directory, [{"public_key": encode_public_key(signer.public_key),
                            "fingerprint": fingerprint(signer.public_key), "installed_at": now_iso(),
                            "not_after": None}])


async def start_file_tiers(root: Path, sanitizer: SanitizerService, **kwargs: Any) -> TwoTiers:
    return await start_two_tiers(root, lgwan_extra=f'sanitizer_keys_dir = "{sanitizer.trust_dir}"',
                                 relay_extra=f'[sanitizer]\nsocket = "{sanitizer.socket}"\n', **kwargs)


async def upload(client: Client, room_id: int, name: str, data: bytes, client_msg_id: str) -> tuple[int, Any]:
    """A browser-like multipart upload to the relay (session cookie, CSRF header, Origin)."""
    form = aiohttp.FormData(quote_fields=False)     # as browsers send names: UTF-8, not percent-encoded
    form.add_field("client_msg_id", client_msg_id)
    form.add_field("file", io.BytesIO(data), filename=name, content_type="application/octet-stream")
    headers = {"Origin": client.base, "X-CSRF-Token": client.csrf}
    async with client.http.post(f"{client.base}/api/rooms/{room_id}/files", data=form, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- a compromised relay: envelopes it signs with its own (valid) link key, carrying forged verdicts ---------

def forged_transfer(*, signer: Signer, origin_id: str, room_id: int, author: str, data: bytes, output_type: str,
                    name: str, signed_bytes: bytes | None = None, tamper_report: bool = False) -> list[env.Payload]:
    """file.sanitized + file.chunk payloads whose verdict ``signer`` signed over ``signed_bytes`` (default:
    ``data``), while the chunks carry ``data``."""
    signed = signed_bytes if signed_bytes is not None else data
    digest = sha256(signed)
    report: dict[str, Any] = {
        "status": "rebuilt", "code": "ok", "message": {"ja": "再構成しました。", "en": "Rebuilt."}, "detail": "",
        "input": {"name": name, "sha256": "0" * 64, "bytes": len(signed), "detected_type": output_type},
        "output": {"name": name, "type": output_type, "extension": name.rsplit(".", 1)[-1], "sha256": digest,
                   "bytes": len(signed)},
        "removed": [], "summary": {"ja": "除去した要素はありません。", "en": "Nothing needed removing."},
        "isolation": {}, "elapsed_ms": 1}
    verdict = sign_verdict(signer, input_sha256="0" * 64, input_bytes=len(signed), output=signed,
                           output_type=output_type, output_name=name, report=report)
    if tamper_report:
        report = {**report, "removed": [{"item": "javascript", "ja": "JavaScript", "en": "JavaScript", "count": 0}]}
    chunks = split_chunks(data)
    header = env.FileSanitized(
        origin_id=origin_id, room_id=room_id, author=author, posted_at=now_iso(), thread_root_id=None,
        job_id=verdict.job_id, signed_at=verdict.signed_at, input_sha256=verdict.input_sha256,
        input_bytes=verdict.input_bytes, output_sha256=verdict.output_sha256, output_bytes=verdict.output_bytes,
        output_type=output_type, output_name=name, report=encode_report(report), report_sha256=verdict.report_sha256,
        sanitizer_key_id=verdict.key_id, sanitizer_sig=verdict.signature_token, chunks=len(chunks))
    return [header, *(env.FileChunk(job_id=verdict.job_id, index=i, data=c) for i, c in enumerate(chunks))]


def inject_into_relay_outbox(relay_db: Path, payloads: list[env.Payload]) -> None:
    """Queue payloads in a *stopped* relay's outbox, as a compromised relay could; it signs them when it sends."""
    conn = sqlite3.connect(relay_db)
    try:
        with conn:
            for payload in payloads:
                conn.execute("INSERT INTO outbox(seq, envelope_id, kind, payload, created_at)"
                             " SELECT out_last_seq + 1, ?, ?, ?, ? FROM link_state WHERE id = 1",
                             (env.new_id(), payload.KIND, env.payload_json(payload), now_iso()))
    finally:
        conn.close()


# --- the scan: the original bytes are nowhere in a data directory --------------------------------------------

def forms_of(needle: bytes) -> list[bytes]:
    """``needle`` raw and as base64/base64url at every alignment (chunks and JSON carry base64url)."""
    out = [needle]
    for shift in range(3):
        piece = needle[shift:]
        piece = piece[: len(piece) - len(piece) % 3]
        if len(piece) >= 12:
            for encode in (base64.b64encode, base64.urlsafe_b64encode):
                out.append(encode(piece)[1:-1])
    return out


def _sqlite_cells(path: Path) -> list[bytes]:
    """Every cell of every table: long values sit in overflow pages, split up in the raw file."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        cells = []
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 - names from sqlite_master
                cells += [v if isinstance(v, bytes) else str(v).encode() for v in row if v is not None]
        return cells
    finally:
        conn.close()


def files_containing(directory: Path, needles: list[bytes]) -> list[str]:
    """Files under ``directory`` holding any needle in any form: raw bytes (blobs, free pages, WAL) and,
    for SQLite databases, every cell's value."""
    hits = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        content = path.read_bytes()
        parts = [content]
        if content.startswith(b"SQLite format 3\x00"):
            parts += _sqlite_cells(path)
        for needle in needles:
            if any(form in part for part in parts for form in forms_of(needle)):
                hits.append(f"{path.relative_to(directory)}: {needle[:24]!r}")
    return hits
