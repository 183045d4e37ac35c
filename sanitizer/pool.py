"""The parent side: an async pool that sends each file to fresh, confined children.

``SanitizerPool.sanitize`` is what the server calls. Per file, one child of the fork
server rebuilds the file and a second, different child re-parses the output with
``verify.py``, so the verdict never rests on the process that parsed the hostile input.
Children are forked ahead of demand and already confined when a job reaches them.
File bytes travel in memfds (``protocol.py``); the output is sealed before it is
verified, so what was verified is exactly what is returned. Each job runs under the
``Limits`` passed in (CPU, memory, wall clock); a crash, a breached limit or a
malformed reply is a refusal with its own code, never a hang. A semaphore sized to the
usable CPUs bounds how many files are in flight.

This module imports no parser: the server process that uses it never loads pikepdf,
openpyxl, Pillow or libmagic. ``sanitize_file`` is the synchronous wrapper the command
line uses.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import hashlib
import itertools
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sanitizer
from sanitizer.errors import Code
from sanitizer.kinds import KINDS
from sanitizer.limits import Limits
from sanitizer.protocol import (
    EXIT_CONFINEMENT,
    EXIT_MEMORY,
    EXIT_OK,
    MAX_META_BYTES,
    ProtocolError,
    Reply,
    empty_memfd,
    encode_job,
    parse_reply,
    read_exactly,
    seal,
    sealed_memfd,
)
from sanitizer.report import FINDINGS, Removed, Report
from shared.textsafe import safe_filename

log = logging.getLogger(__name__)

_KINDS = frozenset(KINDS)
_PACKAGE_ROOT = str(Path(sanitizer.__file__).resolve().parent.parent)
_START_TIMEOUT = 60.0
_EXIT_GRACE = 10.0
_MAX_PACKET = 65536


def _tmpdir_prefix(server_pid: int) -> str:
    # Must match forkserver.tmpdir_prefix; duplicated so that this module stays free of
    # the parser imports the fork server module pulls in.
    return f"kakehashi-sanitize-{server_pid}-"


def _remove_leftovers(server_pid: int) -> None:
    for leftover in Path(tempfile.gettempdir()).glob(_tmpdir_prefix(server_pid) + "*"):
        shutil.rmtree(leftover, ignore_errors=True)


class ForkServerGone(Exception):
    """The fork server died or never became ready."""


@dataclass(frozen=True, slots=True)
class Result:
    """Outcome of sanitising one file.

    Attributes:
        report: the verdict, what was removed, hashes, isolation (see ``report.Report``).
        data: the rebuilt and verified file; ``None`` when refused.
    """

    report: Report
    data: bytes | None = None

    @property
    def rebuilt(self) -> bool:
        """True when ``data`` holds a rebuilt file."""
        return self.data is not None and self.report.rebuilt

    @property
    def code(self) -> Code:
        """``Code.OK`` or the refusal reason."""
        return self.report.code


class _ForkServerClient:
    """Talks to one fork-server process over a SOCK_SEQPACKET control socket."""

    def __init__(self, python: str, test_hooks: bool, spares: int) -> None:
        self._python = python
        self._test_hooks = test_hooks
        self._spares = spares
        self._sock: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._jobs = itertools.count(1)
        self._exited: dict[int, asyncio.Future[int]] = {}
        self.alive = False
        self.isolation: dict[str, str] = {}

    async def start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ)
        # Find this very package even when it is run from a source tree.
        root = _PACKAGE_ROOT
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        # A worker is a fresh process: every buffer it allocates is first-touched page by
        # page (a 15 MB PDF costs tens of thousands of faults). Transparent huge pages for
        # malloc (glibc >= 2.35; ignored elsewhere) cut that roughly in half.
        tunables = env.get("GLIBC_TUNABLES", "")
        if "glibc.malloc.hugetlb" not in tunables:
            env["GLIBC_TUNABLES"] = (
                f"{tunables}:glibc.malloc.hugetlb=1" if tunables else "glibc.malloc.hugetlb=1"
            )
        args = [
            self._python,
            "-m",
            "sanitizer.forkserver",
            str(theirs.fileno()),
            "--spares",
            str(self._spares),
        ]
        if self._test_hooks:
            args.append("--test-hooks")
        self._process = subprocess.Popen(  # noqa: ASYNC220 - a short, non-blocking spawn
            args, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            env=env, cwd="/", start_new_session=True,
        )  # fmt: skip
        theirs.close()
        ours.setblocking(False)
        self._sock = ours
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(_START_TIMEOUT):
                ready = json.loads(await loop.sock_recv(ours, _MAX_PACKET) or b"{}")
        except (TimeoutError, ValueError, OSError) as exc:
            await self.close()
            raise ForkServerGone("fork server did not start") from exc
        if ready.get("op") != "ready":
            await self.close()
            raise ForkServerGone("fork server did not start")
        self.isolation = {
            "process": "one forked child per file (fork server), verified by a second child",
            "network": str(ready.get("network"))
            if ready.get("network") != "none"
            else "none in-process; rely on the unit's PrivateNetwork=yes",
            "user": str(ready.get("uid")),
        }
        self.alive = True
        self._reader = asyncio.create_task(self._read_loop())
        log.info("sanitizer fork server ready: network=%s user=%s", ready.get("network"), ready.get("uid"))

    async def _read_loop(self) -> None:
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        try:
            while True:
                packet = await loop.sock_recv(self._sock, _MAX_PACKET)
                if not packet:
                    break
                message = json.loads(packet)
                job = int(message.get("job", 0))
                if message.get("op") == "exited":
                    future = self._exited.pop(job, None)
                    if future is not None and not future.done():
                        future.set_result(int(message["status"]))
        except (OSError, ValueError):
            pass
        finally:
            if self.alive:
                log.warning("sanitizer fork server went away; it is restarted on the next file")
            self.alive = False
            for future in self._exited.values():
                if not future.done():
                    future.set_exception(ForkServerGone("fork server exited"))
            self._exited.clear()

    async def _send(self, message: dict[str, Any], fds: list[int] | None = None) -> None:
        assert self._sock is not None
        payload = json.dumps(message).encode("ascii")
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        while True:
            try:
                self._sock.sendmsg([payload], ancillary)
                return
            except BlockingIOError:
                await asyncio.sleep(0.001)

    async def fork(self, limits: Limits, job_fd: int) -> tuple[int, asyncio.Future[int]]:
        """Ask for a child bound to ``job_fd``; the caller may write the job right away.

        Returns:
            The job id and a future for the child's wait status. The future is handed
            out here because a fast child can exit (and be reported) before the caller
            gets round to waiting. The job socket buffers the input meanwhile, so there
            is no round trip to wait for before sending it.
        """
        if not self.alive:
            raise ForkServerGone("fork server not running")
        loop = asyncio.get_running_loop()
        job = next(self._jobs)
        exited: asyncio.Future[int] = loop.create_future()
        # Mark a ForkServerGone as seen even if this job has stopped listening, so
        # asyncio does not log "exception was never retrieved".
        exited.add_done_callback(_consume_exception)
        self._exited[job] = exited
        await self._send({"op": "fork", "job": job, "limits": limits.to_dict()}, [job_fd])
        return job, exited

    async def kill(self, job: int) -> None:
        """SIGKILL the job's process group (the fork server checks it is still its child)."""
        if self.alive:
            await self._send({"op": "kill", "job": job})

    async def wait_exit(self, job: int, future: asyncio.Future[int]) -> int | None:
        """Raw wait status of the job's child, or None if the fork server went away."""
        try:
            async with asyncio.timeout(_EXIT_GRACE):
                return await future
        except (TimeoutError, ForkServerGone):
            await self.kill(job)
            return None

    async def close(self) -> None:
        self.alive = False
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # shutting down either way
                await self._reader
            self._reader = None
        process = self._process
        self._process = None
        if process is not None:
            # Closing the socket makes the fork server kill its children and exit.
            for _ in range(100):
                if process.poll() is not None:
                    break
                await asyncio.sleep(0.02)
            else:
                process.send_signal(signal.SIGKILL)
                await asyncio.to_thread(process.wait)
            # A fork server that was killed could not remove its children's directories.
            await asyncio.to_thread(_remove_leftovers, process.pid)


def _consume_exception(future: asyncio.Future[int]) -> None:
    if not future.cancelled():
        future.exception()


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What the two children decided about one file."""

    code: Code
    detail: str = ""
    detected: str | None = None
    removed: dict[Removed, int] = field(default_factory=dict)
    kind: str | None = None
    output: bytes | None = None


class _ReplyTooLarge(Exception):
    pass


class SanitizerPool:
    """Sanitise uploads in confined child processes; safe to share across tasks.

    Args:
        limits: default limits for every file (override per call).
        workers: files processed at once; defaults to the number of usable CPUs.
        python: interpreter for the fork server; defaults to this one.
        test_hooks: let the isolation tests make children misbehave. Also requires
            ``KAKEHASHI_SANITIZER_TEST_HOOKS=1`` in the environment; never set in production.

    Example::

        async with SanitizerPool() as pool:
            result = await pool.sanitize(data, "見積書.xlsx")
    """

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        workers: int | None = None,
        python: str | None = None,
        test_hooks: bool = False,
    ) -> None:
        self.limits = limits or Limits()
        self.workers = workers or len(os.sched_getaffinity(0)) or 1
        self._python = python or sys.executable
        self._test_hooks = test_hooks
        self._slots = asyncio.Semaphore(self.workers)
        self._client: _ForkServerClient | None = None
        self._client_lock = asyncio.Lock()

    async def __aenter__(self) -> SanitizerPool:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start the fork server (it is also started, or restarted, on demand)."""
        await self._ensure_client()

    async def close(self) -> None:
        """Stop the fork server; running children are killed."""
        async with self._client_lock:
            if self._client is not None:
                await self._client.close()
                self._client = None

    @property
    def isolation(self) -> dict[str, str]:
        """How children are confined on this host (empty before ``start``)."""
        return dict(self._client.isolation) if self._client else {}

    async def _ensure_client(self) -> _ForkServerClient:
        async with self._client_lock:
            if self._client is None or not self._client.alive:
                if self._client is not None:
                    await self._client.close()
                # Each file uses two children (rebuild, verify); keep that many ready per slot.
                client = _ForkServerClient(self._python, self._test_hooks, spares=2 * self.workers)
                await client.start()
                self._client = client
            return self._client

    async def sanitize(self, data: bytes, declared_name: str, *, limits: Limits | None = None) -> Result:
        """Rebuild ``data`` in a confined child, verify it in another, and report.

        Args:
            data: the uploaded bytes (untrusted).
            declared_name: the name the sender gave it; the extension must match the content.
            limits: overrides the pool's default limits for this file.

        Returns:
            A ``Result``: rebuilt bytes plus report, or a refusal report. Never raises
            for anything about the file itself.
        """
        limits = limits or self.limits
        started = time.monotonic()
        name = safe_filename(declared_name)
        # Hash in a thread (hashlib releases the GIL) while the children work.
        input_digest = asyncio.ensure_future(_sha256(data))
        try:
            if len(data) > limits.max_input_bytes:
                outcome = _Outcome(Code.TOO_LARGE, "input over max_input_bytes")
            elif not data:
                outcome = _Outcome(Code.EMPTY_FILE)
            else:
                async with self._slots:
                    outcome = await self._rebuild_and_verify(data, name, limits)
            facts: dict[str, Any] = {
                "input_name": name,
                "input_bytes": len(data),
                "input_sha256": await input_digest,
                "detected_type": outcome.detected,
                "removed": outcome.removed,
            }
        except BaseException:
            input_digest.cancel()
            raise
        if outcome.code is Code.OK and outcome.output is not None and outcome.kind is not None:
            file_type = KINDS[outcome.kind]
            stem = name.rsplit(".", 1)[0] if "." in name else name
            facts.update(
                output_type=outcome.kind,
                output_extension=file_type.output_extension,
                output_name=safe_filename(f"{stem}.{file_type.output_extension}"),
                output_sha256=await _sha256(outcome.output),
                output_bytes=len(outcome.output),
            )
        # Ids and verdicts only: never names or content (STYLE rule 15).
        log.info(
            "sanitizer verdict=%s detected=%s input_sha256=%s detail=%s",
            outcome.code.value, outcome.detected, str(facts["input_sha256"])[:16], outcome.detail,
        )  # fmt: skip
        report = Report(
            code=outcome.code, detail=outcome.detail, isolation=self.isolation,
            elapsed_ms=(time.monotonic() - started) * 1000, **facts,
        )  # fmt: skip
        return Result(report=report, data=outcome.output if outcome.code is Code.OK else None)

    async def verify(self, data: bytes, kind: str, *, limits: Limits | None = None) -> tuple[Code, str]:
        """Re-check an already rebuilt file in a fresh confined child (``verify.py``), nothing else.

        This is what the receiving side runs on a file it got from elsewhere (issue 3, item 9): the
        libmagic type must be ``kind`` (text kinds are decoded instead) and the deny-list
        structure check must find nothing. The caller's process never parses the bytes.

        Returns:
            ``(Code.OK, "")`` or ``(refusal code, fixed detail phrase)``; never raises for the file.
        """
        limits = limits or self.limits
        if kind not in _KINDS:
            return Code.UNSUPPORTED_TYPE, "unknown kind"
        if not data:
            return Code.EMPTY_FILE, ""
        if len(data) > limits.max_output_bytes:
            return Code.TOO_LARGE, "over max_output_bytes"
        async with self._slots:
            input_fd = sealed_memfd(data)
            try:
                checked, output_fd = await self._run("verify", input_fd, len(data), limits, kind=kind)
                os.close(output_fd)
            finally:
                os.close(input_fd)
        if checked.code is not Code.OK:
            return checked.code, "verify: " + checked.detail
        if checked.size:
            return Code.WORKER_PROTOCOL, "verify: output on a verification"
        return Code.OK, ""

    async def _rebuild_and_verify(self, data: bytes, name: str, limits: Limits) -> _Outcome:
        input_fd = sealed_memfd(data)
        try:
            rebuilt, output_fd = await self._run("rebuild", input_fd, len(data), limits, declared_name=name)
        finally:
            os.close(input_fd)
        try:
            if rebuilt.code is not Code.OK:
                return _Outcome(rebuilt.code, rebuilt.detail, rebuilt.detected, rebuilt.removed)
            if rebuilt.kind is None or rebuilt.kind != rebuilt.detected or not rebuilt.size:
                return _Outcome(Code.WORKER_PROTOCOL, "rebuild reply inconsistent", rebuilt.detected)
            try:
                # Freeze the output before anyone reads it: even if the rebuild child is
                # still alive (or compromised), what is verified is what we return.
                seal(output_fd)
                if os.fstat(output_fd).st_size != rebuilt.size:
                    raise ProtocolError("output size differs from the announced size")
            except ProtocolError as exc:
                return _Outcome(Code.WORKER_PROTOCOL, str(exc), rebuilt.detected)
            checked, verify_output_fd = await self._run(
                "verify", output_fd, rebuilt.size, limits, kind=rebuilt.kind
            )
            os.close(verify_output_fd)
            if checked.code is not Code.OK or checked.size:
                code = checked.code if checked.code is not Code.OK else Code.WORKER_PROTOCOL
                return _Outcome(code, "verify: " + checked.detail, rebuilt.detected, rebuilt.removed)
            output = read_exactly(output_fd, rebuilt.size, limits.max_output_bytes)
        finally:
            os.close(output_fd)
        return _Outcome(Code.OK, "", rebuilt.detected, rebuilt.removed, rebuilt.kind, output)

    async def _run(
        self, role: str, input_fd: int, size: int, limits: Limits, *, declared_name: str = "", kind: str = ""
    ) -> tuple[Reply, int]:
        """One child, one job; every failure mode becomes a refusal ``Reply``.

        Returns:
            The validated reply and the output memfd (the caller closes it; its content
            is still untrusted and unsealed).
        """
        output_fd = empty_memfd()
        try:
            reply = await self._run_child(role, input_fd, output_fd, size, limits, declared_name, kind)
        except BaseException:
            os.close(output_fd)
            raise
        return reply, output_fd

    async def _run_child(
        self,
        role: str,
        input_fd: int,
        output_fd: int,
        size: int,
        limits: Limits,
        declared_name: str,
        kind: str,
    ) -> Reply:
        try:
            client = await self._ensure_client()
        except ForkServerGone:
            return Reply(Code.WORKER_CRASHED, "fork server unavailable")
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        timed_out = too_large = False
        frame = b""
        header = encode_job(role, size, declared_name=declared_name, kind=kind)
        try:
            ours.setblocking(False)
            try:
                job_id, exited = await client.fork(limits, theirs.fileno())
            except (ForkServerGone, OSError):
                return Reply(Code.WORKER_CRASHED, "could not start a worker")
            finally:
                theirs.close()
            try:
                async with asyncio.timeout(limits.wall_seconds):
                    try:
                        await _send_with_fds(loop, ours, header, [input_fd, output_fd])
                        ours.shutdown(socket.SHUT_WR)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the child died early; its exit status tells why
                    frame = await _read_all(loop, ours, MAX_META_BYTES + 64)
            except TimeoutError:
                timed_out = True
                await client.kill(job_id)
            except _ReplyTooLarge:
                too_large = True
                await client.kill(job_id)
            if not (timed_out or too_large):
                early = _complete_reply(frame, limits)
                if early is not None:
                    # A complete, well-formed reply decides the outcome; the child's exit
                    # (address-space teardown, reaping) need not delay the caller.
                    return early
            status = await client.wait_exit(job_id, exited)
        finally:
            ours.close()
        return _interpret(frame, status, timed_out=timed_out, too_large=too_large, limits=limits)


async def _send_with_fds(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, data: bytes, fds: list[int]
) -> None:
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
    while True:
        try:
            sent = sock.sendmsg([data], ancillary)
            break
        except BlockingIOError:
            await asyncio.sleep(0.001)
    if sent < len(data):
        await loop.sock_sendall(sock, data[sent:])


async def _read_all(loop: asyncio.AbstractEventLoop, sock: socket.socket, cap: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        try:
            chunk = await loop.sock_recv(sock, 65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        total += len(chunk)
        if total > cap:
            raise _ReplyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _complete_reply(frame: bytes, limits: Limits) -> Reply | None:
    """The reply if ``frame`` is one whole valid reply, else None (then the exit status decides)."""
    try:
        return parse_reply(frame, max_data=limits.max_output_bytes, kinds=_KINDS, findings=FINDINGS)
    except ProtocolError:
        return None


async def _sha256(data: bytes) -> str:
    if len(data) < 1 << 20:
        return hashlib.sha256(data).hexdigest()
    return await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())


def _interpret(
    frame: bytes, status: int | None, *, timed_out: bool, too_large: bool, limits: Limits
) -> Reply:
    """Turn what a child left behind into a Reply; everything from the child is untrusted."""
    if timed_out:
        return Reply(Code.LIMIT_TIME, "wall-clock limit")
    if too_large:
        return Reply(Code.WORKER_PROTOCOL, "reply larger than allowed")
    if status is None:
        return Reply(Code.WORKER_CRASHED, "worker lost")
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU:
            return Reply(Code.LIMIT_CPU, "cpu-time limit")
        if sig == signal.SIGKILL:
            # Not ours (we flag our own kills as timeouts): the kernel's OOM killer or
            # the hard CPU limit.
            return Reply(Code.LIMIT_MEMORY, "killed by the kernel")
        if sig == signal.SIGXFSZ:
            return Reply(Code.LIMIT_MEMORY, "file-size limit")
        return Reply(Code.WORKER_CRASHED, f"signal {sig}")
    exit_code = os.WEXITSTATUS(status)
    if exit_code == EXIT_MEMORY:
        return Reply(Code.LIMIT_MEMORY, "memory limit")
    if exit_code == EXIT_CONFINEMENT:
        return Reply(Code.WORKER_CRASHED, "worker could not confine itself")
    if exit_code != EXIT_OK:
        return Reply(Code.WORKER_CRASHED, f"exit status {exit_code}")
    try:
        return parse_reply(frame, max_data=limits.max_output_bytes, kinds=_KINDS, findings=FINDINGS)
    except ProtocolError as exc:
        return Reply(Code.WORKER_PROTOCOL, str(exc))


def read_bounded(path: Path, limit: int) -> tuple[bytes, str, int, bool]:
    """Read at most ``limit`` bytes of ``path`` while hashing all of it.

    Returns:
        (data, sha256 of the whole file, its size, whether it exceeded ``limit``).
    """
    digest = hashlib.sha256()
    kept = bytearray()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
            if size <= limit:
                kept += chunk
    return bytes(kept), digest.hexdigest(), size, size > limit


def sanitize_file(path: Path, *, declared_name: str | None = None, limits: Limits | None = None) -> Result:
    """Synchronously sanitise one file on disk (the command line's entry point).

    Args:
        path: file to read (it is only read, never modified).
        declared_name: the name to judge the extension by; defaults to ``path.name``.
        limits: resource limits; defaults to ``Limits()``.

    Returns:
        The ``Result``; write ``result.data`` wherever it belongs.

    Raises:
        OSError: ``path`` cannot be read.
    """
    limits = limits or Limits()
    name = declared_name or path.name
    data, digest, size, too_large = read_bounded(path, limits.max_input_bytes)
    if too_large:
        report = Report(
            code=Code.TOO_LARGE, detail="input over max_input_bytes", input_name=safe_filename(name),
            input_sha256=digest, input_bytes=size,
        )  # fmt: skip
        return Result(report=report)

    async def once() -> Result:
        async with SanitizerPool(limits, workers=1) as pool:
            return await pool.sanitize(data, name)

    return asyncio.run(once())
