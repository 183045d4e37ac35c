"""The child side: confine this process, wait for one job, do it, reply, exit.

The fork server (``forkserver.py``) forks these children *ahead* of demand ("spares"),
so a file does not wait for a fork. A spare confines itself at once, before it has
any job, let alone untrusted bytes:

1. new session (the parent kills the whole process group on a timeout);
2. stdin/stdout/stderr to /dev/null, every other inherited descriptor closed except
   its private socket to the fork server (libraries cannot log file content anywhere);
3. ``PR_SET_PDEATHSIG``: dies with the fork server;
4. no network: ``unshare(CLONE_NEWNET)`` when the process may (root, e.g. in CI),
   else ``unshare(CLONE_NEWUSER | CLONE_NEWNET)`` when unprivileged user namespaces
   are enabled, else nothing, and the deploy unit's ``PrivateNetwork=yes`` has to
   provide it (the fork server reports which one applied). One namespace per child,
   so two workers cannot reach each other through abstract Unix sockets either;
5. when running as root: drop to nobody/nogroup; ``PR_SET_NO_NEW_PRIVS``;
   ``PR_SET_DUMPABLE=0`` (no ptrace or /proc/PID/mem between workers).

Then it blocks until the fork server hands it a job socket and that job's limits,
closes its line to the fork server, applies the rlimits (RLIMIT_AS, RLIMIT_CPU,
RLIMIT_FSIZE, RLIMIT_CORE=0, RLIMIT_NOFILE; lowering is always allowed) and only then
reads the job. A step that should work but fails ends the child with
``EXIT_CONFINEMENT`` before it reads anything: fail closed.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
import signal
import socket
import tempfile
from typing import NoReturn

from sanitizer.core import rebuild_untrusted, verify_untrusted
from sanitizer.errors import Code
from sanitizer.libmagic import Detector
from sanitizer.limits import Limits
from sanitizer.protocol import (
    EXIT_CONFINEMENT,
    EXIT_INTERNAL,
    EXIT_MEMORY,
    EXIT_OK,
    EXIT_PROTOCOL,
    IncompleteFrame,
    Job,
    ProtocolError,
    decode_job,
    encode_reply,
    read_exactly,
    write_all,
)

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
NOBODY_UID = 65534
NOBODY_GID = 65534
_MAX_FD_SCAN = 65536


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def try_unshare_network() -> str:
    """Put this process in an empty network namespace.

    Returns:
        ``"netns"``, ``"userns+netns"`` or ``"none"`` (no privilege for either).
    """
    libc = _libc()
    if libc.unshare(CLONE_NEWNET) == 0:
        return "netns"
    if ctypes.get_errno() in (errno.EPERM, errno.EINVAL, errno.ENOSPC, errno.EUSERS):
        uid, gid = os.getuid(), os.getgid()
        if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0:
            # Map ourselves so that file access keeps working inside the user namespace.
            try:
                with open("/proc/self/setgroups", "w") as fh:
                    fh.write("deny")
                with open("/proc/self/uid_map", "w") as fh:
                    fh.write(f"{uid} {uid} 1")
                with open("/proc/self/gid_map", "w") as fh:
                    fh.write(f"{gid} {gid} 1")
            except OSError:
                pass
            return "userns+netns"
    return "none"


def _prctl(option: int, value: int) -> None:
    if _libc().prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl failed")


def _close_inherited(keep: int) -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if devnull > 2:
        os.close(devnull)
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    top = min(soft if soft != resource.RLIM_INFINITY else _MAX_FD_SCAN, _MAX_FD_SCAN)
    os.closerange(3, keep)
    os.closerange(keep + 1, top)


def _lower_limit(kind: int, soft: int, hard: int | None = None) -> None:
    """Set an rlimit, never above what the process already has (we may only lower it)."""
    _current_soft, current_hard = resource.getrlimit(kind)
    hard = soft if hard is None else hard
    if current_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, current_hard), min(hard, current_hard)
    resource.setrlimit(kind, (soft, hard))


def _apply_rlimits(limits: Limits) -> None:
    cpu = int(limits.cpu_seconds)
    # Soft CPU limit delivers SIGXCPU (default action: terminate); the hard limit one
    # second later is SIGKILL in case something blocks or catches it.
    _lower_limit(resource.RLIMIT_CPU, cpu, cpu + 1)
    _lower_limit(resource.RLIMIT_AS, int(limits.memory_bytes))
    _lower_limit(resource.RLIMIT_FSIZE, int(limits.file_bytes))
    _lower_limit(resource.RLIMIT_CORE, 0)
    _lower_limit(resource.RLIMIT_NOFILE, 64)


def _drop_privileges(tmpdir: str) -> str:
    if os.geteuid() != 0:
        return "unchanged"
    os.chown(tmpdir, NOBODY_UID, NOBODY_GID)
    os.setgroups([])
    os.setgid(NOBODY_GID)
    os.setuid(NOBODY_UID)
    return "nobody"


def confine(keep_fd: int, tmpdir: str, network_mode: str) -> None:
    """Apply every job-independent confinement step; raise if one that should work does not.

    Args:
        keep_fd: the socket to the fork server (kept open).
        tmpdir: private temporary directory prepared by the fork server.
        network_mode: what the fork server's probe achieved; the child must match it.
    """
    os.setsid()
    _close_inherited(keep_fd)
    signal.set_wakeup_fd(-1)
    # Python ignores SIGPIPE by default; restoring the default makes a vanished parent end us.
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGPIPE, signal.SIGXCPU):
        signal.signal(sig, signal.SIG_DFL)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if network_mode != "none" and try_unshare_network() != network_mode:
        raise OSError("network namespace unavailable in child")
    _drop_privileges(tmpdir)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    # Not dumpable: another worker running as the same user cannot ptrace this one or
    # read its memory through /proc.
    _prctl(PR_SET_DUMPABLE, 0)
    # openpyxl spools worksheets through temporary files; keep them in the job's directory.
    tempfile.tempdir = tmpdir
    os.environ["TMPDIR"] = tmpdir
    os.chdir(tmpdir)


def _await_assignment(control: socket.socket) -> tuple[int, Limits]:
    """Block until the fork server sends the job socket and its limits."""
    payload, fds, _flags, _addr = socket.recv_fds(control, 65536, 1)
    control.close()
    if not payload or len(fds) != 1:
        raise ProtocolError("fork server closed before assigning a job")
    return fds[0], Limits.from_dict(json.loads(payload))


def _read_job(sock: socket.socket) -> tuple[Job, int]:
    """Receive the job header with its two memfds; return the job and the output fd."""
    buffer = bytearray()
    fds: list[int] = []
    while True:
        chunk, received, _flags, _addr = socket.recv_fds(sock, 65536, 2)
        fds += received
        if not chunk:
            raise ProtocolError("eof before the job header")
        buffer += chunk
        try:
            job, size = decode_job(bytes(buffer))
            break
        except IncompleteFrame:
            continue
    if len(fds) != 2:
        raise ProtocolError("job without its input and output files")
    input_fd, output_fd = fds
    data = read_exactly(input_fd, size, size)
    os.close(input_fd)
    return Job(role=job.role, data=data, declared_name=job.declared_name, kind=job.kind), output_fd


def _test_hook(job: Job) -> bytes | None:
    """Deliberate misbehaviour for the isolation tests; only reachable when enabled."""
    action = job.declared_name.removeprefix("__test_hook__-")
    if action == "cpu":
        while True:
            pass
    if action == "memory":
        hog = [bytearray(64 * 1024 * 1024) for _ in range(1024)]
        return encode_reply(Code.INTERNAL_ERROR, detail=f"allocated {len(hog)}")
    if action == "sleep":
        signal.pause()
    if action == "crash":
        os.abort()
    if action == "garbage":
        return b"KSR1\xff\xff\xff\xffnot a reply"
    if action == "network":
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        probe.settimeout(2)
        try:
            # A bytes host: a str would need the lazily imported "idna" codec.
            probe.connect((b"192.0.2.1", 80))
            state = "connected"
        except OSError as exc:
            state = errno.errorcode.get(exc.errno or 0, "timeout")
        finally:
            probe.close()
        return encode_reply(Code.INTERNAL_ERROR, detail=f"network={state}")
    if action == "probe":
        fds = len(os.listdir("/proc/self/fd"))
        as_limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        return encode_reply(
            Code.INTERNAL_ERROR,
            detail=f"uid={os.geteuid()} fds={fds} as={as_limit} cpu={resource.getrlimit(resource.RLIMIT_CPU)[0]}",
        )
    if action == "write":
        with open("/etc/kakehashi-sanitizer-test", "w") as fh:
            fh.write("x")
        return encode_reply(Code.INTERNAL_ERROR, detail="wrote")
    return None


def run_job(sock: socket.socket, detector: Detector, limits: Limits, test_hooks: bool) -> bytes:
    """Read one job from ``sock``, write any output to its output memfd, return the reply frame."""
    job, output_fd = _read_job(sock)
    if test_hooks and job.declared_name.startswith("__test_hook__-"):
        hooked = _test_hook(job)
        if hooked is not None:
            return hooked
    if job.role == "rebuild":
        out = rebuild_untrusted(job.data, job.declared_name, limits, detector)
    elif job.role == "verify":
        out = verify_untrusted(job.data, job.kind, limits, detector)
    else:
        raise ProtocolError("unknown role")
    if out.data:
        write_all(output_fd, out.data)
    os.close(output_fd)
    return encode_reply(
        out.code, detail=out.detail, detected=out.detected, kind=out.kind,
        removed=dict(out.removed), findings=out.findings, size=len(out.data or b""),
    )  # fmt: skip


def child_main(
    control_fd: int, detector: Detector, tmpdir: str, network_mode: str, test_hooks: bool
) -> NoReturn:
    """Entry point of a forked spare worker; never returns."""
    try:
        confine(control_fd, tmpdir, network_mode)
    except BaseException:  # noqa: BLE001 - cannot confine: exit before any job arrives
        os._exit(EXIT_CONFINEMENT)
    try:
        job_fd, limits = _await_assignment(socket.socket(fileno=control_fd))
    except BaseException:  # noqa: BLE001 - the fork server is shutting down: nothing to do
        os._exit(EXIT_OK)
    try:
        _apply_rlimits(limits)
    except BaseException:  # noqa: BLE001 - limits that cannot be applied: refuse the job
        os._exit(EXIT_CONFINEMENT)
    try:
        sock = socket.socket(fileno=job_fd)
        reply = run_job(sock, detector, limits, test_hooks)
        sock.sendall(reply)
        sock.shutdown(socket.SHUT_WR)
        os._exit(EXIT_OK)
    except MemoryError:
        os._exit(EXIT_MEMORY)
    except ProtocolError:
        os._exit(EXIT_PROTOCOL)
    except BaseException:  # noqa: BLE001 - never a traceback on stderr; the exit code says enough
        os._exit(EXIT_INTERNAL)
