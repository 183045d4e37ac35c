"""``python -m sanitizer serve --socket PATH --keys DIR``: the sanitizer as a local service (issue 3, item 9).

The relay hands each guest or staff-phone upload to this service over a Unix socket and gets back
the rebuilt bytes, the report, and a **verdict signed with the sanitizer's own Ed25519 key**
(``DIR/signing.key``, made with ``kakehashi-keys generate --keys DIR``). The relay never holds that
key, so a compromised relay cannot make the LGWAN side believe that bytes of its choosing were
rebuilt: LGWAN trusts only this key (installed there by fingerprint) and re-checks every file.

Deploy it as its own user with no network (``PrivateNetwork=yes``; see docs/sanitizer.md). The
socket is the only way in; its file mode (``--socket-mode``, default 0660) and the directory decide
who may connect (the relay's group). One request per connection; the protocol and the signed
content are in ``shared/verdict.py``. Parsing happens only in the pool's confined children; this
process only moves bytes, hashes and signs. The service also answers ``verify`` (re-check a rebuilt
file), which a LGWAN-side instance uses when ``[bridge] sanitizer_socket`` points at it.

Logs carry ids, hashes (shortened) and codes, never names or content.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import stat
import sys
from pathlib import Path
from typing import Any

from sanitizer.errors import Code
from sanitizer.limits import Limits, limits_from_cli
from sanitizer.pool import SanitizerPool
from shared.logsetup import setup_logging
from shared.segment import refuse_wrong_segment
from shared.signing import SignatureError, Signer, fingerprint, load_signer
from shared.verdict import (
    VERSION,
    FrameError,
    encode_frame,
    read_frame,
    report_for_crossing,
    sign_verdict,
)

log = logging.getLogger("sanitizer.service")
REQUEST_TIMEOUT = 60.0          # a peer that takes longer to send its request is cut off
MAX_NAME_CHARS = 1000


class SanitizerService:
    """Answers ``sanitize`` and ``verify`` requests with a shared ``SanitizerPool``."""

    def __init__(self, pool: SanitizerPool, signer: Signer, *, max_connections: int) -> None:
        self.pool = pool
        self.signer = signer
        self.max_connections = max_connections
        self.active = 0
        self.handled = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection, one request, one answer."""
        self.active += 1
        try:
            if self.active > self.max_connections:
                await self._answer(writer, {"status": "error", "code": "busy"})
                return
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    header, body = await read_frame(reader, self.pool.limits.max_input_bytes)
            except (FrameError, TimeoutError) as exc:
                log.warning("sanitizer service: bad request (%s)", type(exc).__name__)
                await self._answer(writer, {"status": "error", "code": "bad_request"})
                return
            answer, data = await self._dispatch(header, body)
            del body        # the upload is not kept a moment longer than the answer needs
            await self._answer(writer, answer, data)
            self.handled += 1
        except (ConnectionError, OSError):
            pass
        finally:
            self.active -= 1
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    @staticmethod
    async def _answer(writer: asyncio.StreamWriter, header: dict[str, Any], data: bytes = b"") -> None:
        writer.write(encode_frame({"v": VERSION, **header}, data))
        await writer.drain()

    async def _dispatch(self, header: dict[str, Any], body: bytes) -> tuple[dict[str, Any], bytes]:
        op = header.get("op")
        if header.get("v") != VERSION:
            return {"status": "error", "code": "bad_request"}, b""
        if op == "sanitize":
            name = header.get("name")
            if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_CHARS:
                return {"status": "error", "code": "bad_request"}, b""
            return await self.sanitize(body, name)
        if op == "verify":
            kind = header.get("kind")
            if not isinstance(kind, str) or len(kind) > 20:
                return {"status": "error", "code": "bad_request"}, b""
            code, detail = await self.pool.verify(body, kind)
            log.info("sanitizer service: verify kind=%s code=%s", kind, code.value)
            return {"status": "verified" if code is Code.OK else "refused", "code": code.value,
                    "detail": detail}, b""
        return {"status": "error", "code": "bad_request"}, b""

    async def sanitize(self, data: bytes, name: str) -> tuple[dict[str, Any], bytes]:
        """Rebuild, then sign what was rebuilt; a refusal carries its report and no bytes."""
        result = await self.pool.sanitize(data, name)
        report = report_for_crossing(result.report.to_dict())
        if not result.rebuilt or result.data is None:
            return {"status": "refused", "code": result.code.value, "report": report}, b""
        r = result.report
        assert r.output_type is not None and r.output_name is not None
        verdict = sign_verdict(self.signer, input_sha256=r.input_sha256, input_bytes=r.input_bytes,
                               output=result.data, output_type=r.output_type, output_name=r.output_name,
                               report=report)
        log.info("sanitizer service: signed job=%s type=%s output_sha256=%s", verdict.job_id,
                 verdict.output_type, verdict.output_sha256[:16])
        return {"status": "rebuilt", "code": "ok", "report": report, "verdict": verdict.to_json()}, result.data


def _remove_stale_socket(path: Path) -> None:
    """Remove a socket left by a previous run (never any other kind of file)."""
    try:
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise SystemExit(f"{path} exists and is not a socket; refusing to replace it")
        path.unlink()
    except FileNotFoundError:
        pass


async def serve(socket_path: Path, signer: Signer, limits: Limits, *, workers: int, mode: int,
                ready: asyncio.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or cancellation)."""
    _remove_stale_socket(socket_path)
    async with SanitizerPool(limits, workers=workers) as pool:
        service = SanitizerService(pool, signer, max_connections=4 * pool.workers + 4)
        old_umask = os.umask(0o777 & ~mode)
        try:
            server = await asyncio.start_unix_server(service.handle, str(socket_path), limit=1 << 20)
        finally:
            os.umask(old_umask)
        os.chmod(socket_path, mode)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("sanitizer service listening: key=%s isolation=%s", fingerprint(signer.public_key),
                 pool.isolation.get("network"))
        if ready is not None:
            ready.set()
        try:
            async with server:
                await stop.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(socket_path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sanitizer serve",
        description="Serve 無害化 over a Unix socket; sign every rebuilt file with the sanitizer key.")
    parser.add_argument("--socket", type=Path, required=True, help="Unix socket path to listen on")
    parser.add_argument("--keys", type=Path, required=True,
                        help="key directory with signing.key (kakehashi-keys generate --keys DIR)")
    parser.add_argument("--socket-mode", default="0660", help="file mode of the socket (octal, default 0660)")
    parser.add_argument("--workers", type=int, default=0, help="files processed at once (default: CPUs)")
    parser.add_argument("--timeout", type=float, help="wall-clock limit per file, seconds")
    parser.add_argument("--cpu-seconds", type=int, help="CPU-time limit per file")
    parser.add_argument("--memory-mb", type=int, help="address-space limit per worker, MiB")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--log-format", default="json", choices=("json", "text"))
    args = parser.parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    if refused := refuse_wrong_segment("sanitizer", "python -m sanitizer serve"):
        return refused      # 三層分離: LGWAN接続系 or インターネット接続系, never マイナンバー利用事務系
    try:
        limits = limits_from_cli(args.timeout, args.cpu_seconds, args.memory_mb)
        mode = int(args.socket_mode, 8)
        signer = load_signer(args.keys)
    except (ValueError, SignatureError, OSError) as exc:
        print(f"python -m sanitizer serve: {exc}", file=sys.stderr)
        return 2
    if not args.socket.parent.is_dir():
        print(f"python -m sanitizer serve: directory does not exist: {args.socket.parent}", file=sys.stderr)
        return 2
    asyncio.run(serve(args.socket, signer, limits, workers=args.workers or 0, mode=mode))
    return 0
