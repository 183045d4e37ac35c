"""The child side: confine this process, wait for one job, do it, reply, exit.

The fork server (``forkserver.py``) forks these children *ahead* of demand ("spares")
and hands the pool one end of a socket pair per spare, so a file waits neither for a
fork nor for a message through the fork server. A spare confines itself at once,
before it has any job, let alone untrusted bytes:

1. new session (the parent kills the whole process group on a timeout);
2. stdin/stdout/stderr to /dev/null, every other inherited descriptor closed except
   its job socket to the pool (libraries cannot log file content anywhere);
3. ``PR_SET_PDEATHSIG``: dies with the fork server;
4. no network: ``unshare(CLONE_NEWNET)`` when the process may (root, e.g. in CI),
   else ``unshare(CLONE_NEWUSER | CLONE_NEWNET)`` when unprivileged user namespaces
   are enabled, else nothing, and the deploy unit's ``PrivateNetwork=yes`` has to
   provide it (the fork server reports which one applied). One namespace per child,
   so two workers cannot reach each other through abstract Unix sockets either;
5. when running as root: drop to nobody/nogroup; ``PR_SET_NO_NEW_PRIVS``;
   ``PR_SET_DUMPABLE=0`` (no ptrace or /proc/PID/mem between workers).

Then it blocks until the pool sends one job: a small header (role, name, size and
the job's limits) with the input and output memfds attached. It applies the rlimits
(RLIMIT_AS, RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_CORE=0, RLIMIT_NOFILE; lowering is always
allowed) and only then maps the input. A step that should work but fails ends the
child with ``EXIT_CONFINEMENT`` before it touches any file byte: fail closed. One job
per process: after its reply the child exits, and the next file gets a new spare.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
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
)
from sanitizer.source import Source

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
NOBODY_UID = 65534
NOBODY_GID = 65534
_MAX_FD_SCAN = 65536


_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded once, in the fork server, before any fork


def _libc() -> ctypes.CDLL:
    return _LIBC


def set_process_name(name: str) -> None:
    """Name this process for ``ps``/``top`` (``PR_SET_NAME``, at most 15 bytes); best effort."""
    _LIBC.prctl(PR_SET_NAME, name.encode("ascii", "replace")[:15], 0, 0, 0)


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


class _NoJob(Exception):
    """The pool closed the spare's socket without sending a job (shutdown, or a spare it
    no longer needs)."""


def _await_job(sock: socket.socket) -> tuple[Job, int, int, int]:
    """Block until the pool sends a job header with its two memfds attached.

    Returns:
        The job (limits as a dict, no data), the input size, the input and output fds.
    """
    buffer = bytearray()
    fds: list[int] = []
    while True:
        chunk, received, _flags, _addr = socket.recv_fds(sock, 65536, 2)
        fds += received
        if not chunk:
            if not buffer and not fds:
                raise _NoJob
            raise ProtocolError("eof before the job header")
        buffer += chunk
        try:
            job, size = decode_job(bytes(buffer))
            break
        except IncompleteFrame:
            continue
    if len(fds) != 2:
        raise ProtocolError("job without its input and output files")
    return job, size, fds[0], fds[1]


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
    if action == "fds":
        return encode_reply(Code.INTERNAL_ERROR, detail=_describe_descriptors())
    return None


def _describe_descriptors() -> str:
    """What this process can reach through its descriptors (test hook "fds")."""
    kinds: dict[str, int] = {}
    input_digest = ""
    with os.scandir("/proc/self/fd") as listing:
        entries = [(int(e.name), e.path) for e in listing]
    for fd, path in entries:
        try:
            target = os.readlink(path)
        except OSError:
            continue  # the listing's own descriptor, closed by now
        if target.startswith("socket:"):
            kind = "sockets"
        elif target.startswith("/memfd:kakehashi-input"):
            kind = "inputs"
            size = os.fstat(fd).st_size
            input_digest = hashlib.sha256(os.pread(fd, size, 0)).hexdigest()[:16]
        elif target.startswith("/memfd:"):
            kind = "memfds"
        elif target == os.devnull:
            kind = "devnull"
        else:
            kind = "other"
        kinds[kind] = kinds.get(kind, 0) + 1
    counts = " ".join(f"{k}={kinds.get(k, 0)}" for k in ("sockets", "inputs", "memfds", "devnull", "other"))
    return f"pid={os.getpid()} {counts} input={input_digest}"


def run_job(
    job: Job, source: Source, output_fd: int, detector: Detector, limits: Limits, test_hooks: bool
) -> bytes:
    """Do one job: write any output to its output memfd and return the reply frame."""
    if test_hooks and job.declared_name.startswith("__test_hook__-"):
        hooked = _test_hook(job)
        if hooked is not None:
            return hooked
    if job.role == "rebuild":
        # The rebuilder writes straight into the output memfd (qpdf through its
        # descriptor); the parent checks the size announced here against the file.
        with os.fdopen(output_fd, "wb", closefd=False) as sink:
            out = rebuild_untrusted(source, job.declared_name, limits, detector, sink)
        if out.code is not Code.OK:
            os.ftruncate(output_fd, 0)  # a refusal carries no output, not even a partial one
    elif job.role == "verify":
        out = verify_untrusted(source, job.kind, limits, detector)
    else:
        raise ProtocolError("unknown role")
    os.close(output_fd)
    return encode_reply(
        out.code, detail=out.detail, detected=out.detected, kind=out.kind,
        removed=dict(out.removed), findings=out.findings, size=out.size if out.code is Code.OK else 0,
    )  # fmt: skip


def child_main(job_fd: int, detector: Detector, tmpdir: str, network_mode: str, test_hooks: bool) -> NoReturn:
    """Entry point of a forked spare worker; never returns (it must never fall back into
    the fork server's code), whatever happens."""
    try:
        _serve_one_job(job_fd, detector, tmpdir, network_mode, test_hooks)
    finally:
        os._exit(EXIT_INTERNAL)


def _serve_one_job(job_fd: int, detector: Detector, tmpdir: str, network_mode: str, test_hooks: bool) -> None:
    try:
        confine(job_fd, tmpdir, network_mode)
    except BaseException:  # noqa: BLE001 - cannot confine: exit before any job arrives
        os._exit(EXIT_CONFINEMENT)
    set_process_name("ksan-spare")
    try:
        sock = socket.socket(fileno=job_fd)
        job, size, input_fd, output_fd = _await_job(sock)
    except _NoJob:
        os._exit(EXIT_OK)
    except BaseException:  # noqa: BLE001 - a malformed job: nothing was read
        os._exit(EXIT_PROTOCOL)
    set_process_name("ksan-" + job.role)
    try:
        limits = Limits.from_dict(job.limits)
        _apply_rlimits(limits)
    except BaseException:  # noqa: BLE001 - limits that cannot be applied: refuse the job
        os._exit(EXIT_CONFINEMENT)
    try:
        # Only now, under the job's limits, is the (untrusted) input mapped.
        source = Source.from_memfd(input_fd, size)
        reply = run_job(job, source, output_fd, detector, limits, test_hooks)
        sock.sendall(reply)
        sock.shutdown(socket.SHUT_WR)
        os._exit(EXIT_OK)
    except MemoryError:
        os._exit(EXIT_MEMORY)
    except ProtocolError:
        os._exit(EXIT_PROTOCOL)
    except BaseException:  # noqa: BLE001 - never a traceback on stderr; the exit code says enough
        os._exit(EXIT_INTERNAL)
