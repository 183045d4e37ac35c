"""``python -m sanitizer serve`` (issue 3, item 9): rebuilt bytes come back with a verdict signed by the
service's own key; refusals carry a report and no bytes; ``verify`` re-checks a rebuilt file in a confined
child; anything off-protocol gets an error and nothing else."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sanitizer.limits import Limits
from sanitizer.service import serve
from shared.signing import KeyRing, Signer, TrustedKey, write_signer
from shared.verdict import FRAME_MAGIC, SanitizerClient, check_report, check_verdict, encode_frame, read_frame


@pytest.fixture
async def service() -> AsyncIterator[tuple[SanitizerClient, Signer, Path]]:
    signer = Signer.generate()
    directory = Path(tempfile.mkdtemp(prefix="ks-"))
    socket_path = directory / "s.sock"
    ready = asyncio.Event()
    task = asyncio.create_task(serve(socket_path, signer, Limits(), workers=1, mode=0o600, ready=ready))
    await asyncio.wait_for(ready.wait(), 60)
    yield SanitizerClient(socket_path, timeout=60), signer, socket_path
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not socket_path.exists()
    os.rmdir(directory)


async def raw_exchange(socket_path: Path, payload: bytes) -> dict[str, object]:
    reader, writer = await asyncio.open_unix_connection(str(socket_path))
    writer.write(payload)
    await writer.drain()
    header, _ = await read_frame(reader, 1024)
    writer.close()
    await writer.wait_closed()
    return header


async def test_rebuilt_files_are_signed_refusals_are_not(service: tuple[SanitizerClient, Signer, Path],
                                                       corpus_dir: Path) -> None:
    client, signer, socket_path = service
    assert socket_path.stat().st_mode & 0o777 == 0o600
    hostile = (corpus_dir / "threats" / "pdfium-js.pdf").read_bytes()
    result = await client.sanitize(hostile, "申請書.pdf")
    assert result.rebuilt and result.verdict is not None and result.data is not None and result.report is not None
    check_verdict(result.verdict, KeyRing([TrustedKey(signer.public_key)]))
    check_report(result.report, result.verdict)
    assert result.verdict.input_sha256 == hashlib.sha256(hostile).hexdigest() != result.verdict.output_sha256
    assert result.verdict.output_type == "pdf" and result.verdict.output_name == "申請書.pdf"
    assert "javascript" in {r["item"] for r in result.report["removed"]}
    # Each verdict is its own: a second run of the same file gets a new job id.
    again = await client.sanitize(hostile, "申請書.pdf")
    assert again.verdict is not None and again.verdict.job_id != result.verdict.job_id

    refused = await client.sanitize((corpus_dir / "threats" / "qpdf-enc-aes256-userpw-view.pdf").read_bytes(), "x.pdf")
    assert (refused.code, refused.verdict, refused.data) == ("pdf_encrypted", None, None)
    assert refused.report is not None and refused.report["status"] == "refused"

    # verify: the bytes must be what they claim to be, and clean.
    assert await client.verify(result.data, "pdf") == ("ok", "")
    code, detail = await client.verify(result.data, "png")
    assert code == "verify_failed" and "type.mismatch" in detail
    assert (await client.verify(hostile, "pdf"))[0] == "verify_failed"       # the original still has its JavaScript


async def test_off_protocol_requests_get_an_error(service: tuple[SanitizerClient, Signer, Path]) -> None:
    _, _, socket_path = service
    for payload in (b"GET / HTTP/1.1\r\n\r\n" + b"x" * 8, FRAME_MAGIC + b"\xff\xff\xff\xff",
                    encode_frame({"v": 1, "op": "exec", "size": 0}), encode_frame({"v": 2, "op": "sanitize"}),
                    encode_frame({"v": 1, "op": "sanitize", "name": ""}, b"abc")):
        header = await raw_exchange(socket_path, payload)
        assert header["status"] == "error" and header["code"] == "bad_request", payload[:20]


def test_the_command_line_needs_its_key(tmp_path: Path) -> None:
    base = [sys.executable, "-m", "sanitizer", "serve", "--socket", str(tmp_path / "s.sock")]
    missing = subprocess.run([*base, "--keys", str(tmp_path / "none")], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no private key" in missing.stderr
    write_signer(tmp_path / "k", Signer.generate())
    (tmp_path / "k" / "signing.key").chmod(0o644)
    loose = subprocess.run([*base, "--keys", str(tmp_path / "k")], capture_output=True, text=True, timeout=60)
    assert loose.returncode == 2 and "chmod 600" in loose.stderr
