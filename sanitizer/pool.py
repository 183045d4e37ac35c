"""The parent side: an async pool that sends each file to fresh, confined children.

``SanitizerPool.sanitize`` is what the server calls. Per file, one child of the fork
server rebuilds the file and a second, different child re-parses the output with
``verify.py``, so the verdict never rests on the process that parsed the hostile input.
Children are forked ahead of demand and already confined when a job reaches them; the
fork server hands this process one end of a socket pair per child, so a job goes
straight to its child. Each child serves one job and exits. File bytes travel in
memfds (``protocol.py``) that the children map instead of copying; the output is
sealed before it is verified, so what was verified is exactly what is returned, and it
is copied and hashed here while the verify child runs. Each job runs under the
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
import collections
import contextlib
import hashlib
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
_SPARE_ATTEMPTS = 3  # spares tried per job when one turns out to have died while idle


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
    """Talks to one fork-server process over a SOCK_SEQPACKET control socket.

    The fork server keeps this client supplied with idle spares (a job socket each);
    ``take`` hands one out. Jobs go straight to the spare; the fork server only hears
    "take" (fork a replacement), "kill" and reports exits.
    """

    def __init__(self, python: str, test_hooks: bool, spares: int) -> None:
        self._python = python
        self._test_hooks = test_hooks
        self._spares = spares
        self._sock: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._idle: collections.deque[tuple[int, socket.socket]] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
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
        loop.add_reader(ours.fileno(), self._on_control)
        self._on_control()  # spares may already be queued behind "ready"
        log.info("sanitizer fork server ready: network=%s user=%s", ready.get("network"), ready.get("uid"))

    def _on_control(self) -> None:
        """Drain the control socket (called by the event loop when it is readable)."""
        sock = self._sock
        if sock is None:
            return
        while True:
            try:
                packet, fds, _flags, _addr = socket.recv_fds(sock, _MAX_PACKET, 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                packet, fds = b"", []
            if not packet:
                for fd in fds:
                    os.close(fd)
                self._gone()
                return
            try:
                message = json.loads(packet)
                op = message.get("op")
                pid = int(message.get("id", 0))
            except (ValueError, TypeError, AttributeError):
                op, pid = None, 0
            if op == "spare" and len(fds) == 1:
                spare = socket.socket(fileno=fds[0])
                spare.setblocking(False)
                self._idle.append((pid, spare))
                self._wake_one()
                continue
            for fd in fds:
                os.close(fd)
            if op == "exited":
                self._on_exit(pid, int(message.get("status", 0)))
            elif op == "fork_failed":
                for waiter in self._waiters:
                    if not waiter.done():
                        waiter.set_exception(ForkServerGone("no process for a worker"))
                self._waiters.clear()

    def _on_exit(self, pid: int, status: int) -> None:
        future = self._exited.pop(pid, None)
        if future is not None:
            if not future.done():
                future.set_result(status)
            return
        for index, (spare_pid, spare) in enumerate(self._idle):
            if spare_pid == pid:  # a spare that died before it got a job
                del self._idle[index]
                spare.close()
                break

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _gone(self) -> None:
        if self.alive:
            log.warning("sanitizer fork server went away; it is restarted on the next file")
        self.alive = False
        if self._sock is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
        pending: list[asyncio.Future[Any]] = [*self._exited.values(), *self._waiters]
        for future in pending:
            if not future.done():
                future.set_exception(ForkServerGone("fork server exited"))
        self._exited.clear()
        self._waiters.clear()
        while self._idle:
            self._idle.popleft()[1].close()

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._sock is not None
        payload = json.dumps(message).encode("ascii")
        while True:
            try:
                self._sock.send(payload)
                return
            except BlockingIOError:
                await asyncio.sleep(0.001)

    async def take(self) -> tuple[int, socket.socket, asyncio.Future[int]]:
        """An idle, confined spare for one job: its id, job socket and exit-status future.

        The future is handed out now because a fast child can exit (and be reported)
        before the caller gets round to waiting. Once the job is on its way, the caller
        calls ``taken`` so that the fork server forks a replacement.

        Raises:
            ForkServerGone: the fork server died, or could not fork a spare.
        """
        loop = asyncio.get_running_loop()
        while True:
            if not self.alive:
                raise ForkServerGone("fork server not running")
            if self._idle:
                pid, spare = self._idle.popleft()
                exited: asyncio.Future[int] = loop.create_future()
                # Mark a ForkServerGone as seen even if this job has stopped listening,
                # so asyncio does not log "exception was never retrieved".
                exited.add_done_callback(_consume_exception)
                self._exited[pid] = exited
                return pid, spare, exited
            waiter: asyncio.Future[None] = loop.create_future()
            waiter.add_done_callback(_consume_exception)
            self._waiters.append(waiter)
            await self._send({"op": "need"})
            await waiter

    async def taken(self, pid: int) -> None:
        """Tell the fork server that spare ``pid`` has its job (it forks a replacement).

        Sent after the job, so that the replacement's fork does not compete with the
        job's first milliseconds for the CPU.
        """
        if self.alive:
            with contextlib.suppress(OSError):
                await self._send({"op": "take", "id": pid})

    async def kill(self, pid: int) -> None:
        """SIGKILL the child's process group (the fork server checks it is still its child)."""
        if self.alive:
            with contextlib.suppress(OSError):
                await self._send({"op": "kill", "id": pid})

    async def wait_exit(self, pid: int, future: asyncio.Future[int]) -> int | None:
        """Raw wait status of the child, or None if the fork server went away."""
        try:
            async with asyncio.timeout(_EXIT_GRACE):
                return await future
        except (TimeoutError, ForkServerGone):
            await self.kill(pid)
            return None

    async def close(self) -> None:
        self.alive = False  # a deliberate stop: no warning
        self._gone()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
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


def _consume_exception(future: asyncio.Future[Any]) -> None:
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
    output_sha256: str | None = None


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

    def worker_cpu_seconds(self) -> float | None:
        """CPU time used so far by the fork server and every child it has reaped.

        For benchmarks and monitoring: together with this process's own CPU time it is
        the whole cost of the files sanitised. None when no fork server is running.
        """
        client = self._client
        process = client._process if client is not None else None
        if process is None:
            return None
        try:
            with open(f"/proc/{process.pid}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            return None
        # utime, stime, cutime, cstime: fields 14-17 of proc(5), counted after the ")".
        return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")

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
                output_sha256=outcome.output_sha256 or await _sha256(outcome.output),
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
            _close_later(input_fd, len(data))
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
            # The sealed output cannot change any more: copy and hash it here while the
            # verify child checks the very same pages. Nothing leaves this method unless
            # the verdict is OK.
            copied = _start_copy(output_fd, rebuilt.size, limits.max_output_bytes)
            try:
                checked, verify_output_fd = await self._run(
                    "verify", output_fd, rebuilt.size, limits, kind=rebuilt.kind
                )
                os.close(verify_output_fd)
            finally:
                output, digest = await copied
            if checked.code is not Code.OK or checked.size:
                code = checked.code if checked.code is not Code.OK else Code.WORKER_PROTOCOL
                return _Outcome(code, "verify: " + checked.detail, rebuilt.detected, rebuilt.removed)
            if output is None:
                return _Outcome(Code.WORKER_PROTOCOL, "output unreadable", rebuilt.detected)
        finally:
            _close_later(output_fd, rebuilt.size)
        return _Outcome(Code.OK, "", rebuilt.detected, rebuilt.removed, rebuilt.kind, output, digest)

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
        loop = asyncio.get_running_loop()
        header = encode_job(role, size, declared_name=declared_name, kind=kind, limits=limits.to_dict())
        for _attempt in range(_SPARE_ATTEMPTS):
            try:
                client = await self._ensure_client()
                async with asyncio.timeout(_START_TIMEOUT):
                    pid, spare, exited = await client.take()
            except (ForkServerGone, TimeoutError, OSError):
                return Reply(Code.WORKER_CRASHED, "could not start a worker")
            try:
                await _send_with_fds(loop, spare, header, [input_fd, output_fd])
                break
            except (BrokenPipeError, ConnectionResetError):
                # The spare was gone before the job reached it (killed while idle): it
                # has seen nothing of this file, so another spare may take the job.
                spare.close()
            except BaseException:
                spare.close()  # cancelled: the spare sees EOF and exits
                raise
            finally:
                await client.taken(pid)
        else:
            return Reply(Code.WORKER_CRASHED, "could not start a worker")
        timed_out = too_large = False
        frame = b""
        try:
            try:
                async with asyncio.timeout(limits.wall_seconds):
                    try:
                        spare.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass  # the child died early; its exit status tells why
                    frame = await _read_all(loop, spare, MAX_META_BYTES + 64)
            except TimeoutError:
                timed_out = True
                await client.kill(pid)
            except _ReplyTooLarge:
                too_large = True
                await client.kill(pid)
            if not (timed_out or too_large):
                early = _complete_reply(frame, limits)
                if early is not None:
                    # A complete, well-formed reply decides the outcome; the child's exit
                    # (address-space teardown, reaping) need not delay the caller.
                    return early
            status = await client.wait_exit(pid, exited)
        finally:
            spare.close()
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


_INLINE_COPY_BYTES = 1 << 20


def _start_copy(fd: int, size: int, limit: int) -> asyncio.Future[tuple[bytes | None, str]]:
    """Read and hash a sealed memfd; in a thread (on a duplicate descriptor) when it is large.

    The thread owns its own descriptor, so closing ``fd`` early (a cancelled upload)
    can never make it read some other file that reused the number.
    """
    loop = asyncio.get_running_loop()
    if size < _INLINE_COPY_BYTES:
        future: asyncio.Future[tuple[bytes | None, str]] = loop.create_future()
        future.set_result(_copy_and_hash(os.dup(fd), size, limit))
        return future
    return loop.run_in_executor(None, _copy_and_hash, os.dup(fd), size, limit)


def _copy_and_hash(fd: int, size: int, limit: int) -> tuple[bytes | None, str]:
    try:
        data = read_exactly(fd, size, limit)
    except (ProtocolError, OSError):
        return None, ""
    finally:
        os.close(fd)
    return data, hashlib.sha256(data).hexdigest()


def _close_later(fd: int, size: int) -> None:
    """Close a memfd; a large one in a thread: dropping the last reference frees its pages
    (about 2 ms for 15 MB here), which need not hold up the caller."""
    if size < _INLINE_COPY_BYTES:
        os.close(fd)
        return
    closing = asyncio.get_running_loop().run_in_executor(None, os.close, fd)
    closing.add_done_callback(lambda done: done.exception())


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
