"""The fork server (zygote): a clean interpreter with the parsers pre-loaded.

Started by the pool as ``python -m sanitizer.forkserver FD`` — a fresh interpreter, not
a fork of the server, so it inherits no event loop, sockets, threads or database
handles. It imports pikepdf, openpyxl, Pillow, defusedxml and libmagic once, opens the
magic database once, then serves requests on the control socket (``FD``, a
``SOCK_SEQPACKET`` Unix socket; one JSON message per packet):

- ``{"op": "fork", "job": N, "limits": {...}}`` with the job socket attached
  (SCM_RIGHTS): pass socket and limits to an idle *spare* child (forked earlier and
  already confined, see ``worker.child_main``), then fork a replacement spare. The
  parent writes the job into its end of that socket at once; no reply is needed.
- ``{"op": "kill", "job": N}``: SIGKILL the job's process group if it is still running.
  Only the fork server reaps its children, so a pid it kills cannot have been reused.

and reports ``{"op": "exited", "job": N, "status": S}`` when a child ends (S is the raw
``waitpid`` status). The server never touches file content; only children do. When the
control socket closes (the parent went away), it kills its children and exits.
"""

from __future__ import annotations

import gc
import json
import os
import selectors
import shutil
import signal
import socket
import sys
import tempfile

# The parsers every child needs. Importing them here means a child starts in
# milliseconds with all code already mapped (copy-on-write), instead of an interpreter
# start (~300 ms) per file.
import defusedxml.ElementTree  # noqa: F401
import defusedxml.minidom  # noqa: F401
import openpyxl  # noqa: F401
import pikepdf  # noqa: F401
import PIL.GifImagePlugin  # noqa: F401
import PIL.JpegImagePlugin  # noqa: F401
import PIL.PngImagePlugin  # noqa: F401

from sanitizer import worker
from sanitizer.libmagic import Detector
from sanitizer.limits import Limits
from sanitizer.warmup import warm_up

TEST_HOOKS_ENV = "KAKEHASHI_SANITIZER_TEST_HOOKS"
FORK_FAILED_STATUS = 0xFF00  # reads as "exited with status 255"
_MAX_PACKET = 65536


def tmpdir_prefix(server_pid: int) -> str:
    """Prefix of the per-child temporary directories of one fork server.

    If the fork server itself is killed it cannot clean up; the pool then removes
    what matches this prefix (``pool._ForkServerClient.close``).
    """
    return f"kakehashi-sanitize-{server_pid}-"


def probe_network_isolation() -> str:
    """Fork once and try to unshare the network there; report what works on this host."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            mode = worker.try_unshare_network()
            os.write(write_fd, mode.encode("ascii"))
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as fh:
        mode = fh.read(32).decode("ascii", "replace")
    os.waitpid(pid, 0)
    return mode if mode in ("netns", "userns+netns") else "none"


class _ParentGone(Exception):
    """The control socket closed: the pool went away, so the fork server ends."""


class ForkServer:
    """State of the zygote: live children and their job ids."""

    def __init__(self, control: socket.socket, test_hooks: bool, spare_count: int) -> None:
        self.control = control
        self.test_hooks = test_hooks
        self.spare_count = spare_count
        self.spares: list[tuple[int, socket.socket]] = []  # idle confined children
        self.detector = Detector()
        self.warmed = warm_up(self.detector)
        self.network_mode = probe_network_isolation()
        self.children: dict[int, tuple[int | None, str]] = {}  # pid -> (job id or None if idle, tmpdir)
        self.jobs: dict[int, int] = {}  # job id -> pid

    def send(self, message: dict[str, object]) -> None:
        try:
            self.control.send(json.dumps(message).encode("ascii"))
        except (BrokenPipeError, ConnectionResetError):
            raise _ParentGone from None

    def serve(self) -> None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        sel = selectors.DefaultSelector()
        sel.register(self.control, selectors.EVENT_READ, "control")
        sel.register(wake_r, selectors.EVENT_READ, "wake")
        # Children run for milliseconds and exit; a garbage-collection pass in one would
        # walk (and so copy-on-write) every inherited object. Freeze what exists now.
        gc.collect()
        gc.freeze()
        self.top_up()
        self.send(
            {"op": "ready", "pid": os.getpid(), "network": self.network_mode,
             "uid": "nobody" if os.geteuid() == 0 else "unchanged", "warmed": self.warmed}
        )  # fmt: skip
        try:
            while True:
                for key, _ in sel.select():
                    if key.data == "wake":
                        os.read(wake_r, 4096)
                        self.reap()
                    elif not self.handle_control():
                        return
                self.reap()
                # Replace used spares only after the job went out: the fork is off the
                # job's critical path.
                self.top_up()
        except _ParentGone:
            return
        finally:
            self.shutdown()

    def handle_control(self) -> bool:
        try:
            payload, fds, _flags, _addr = socket.recv_fds(self.control, _MAX_PACKET, 1)
        except InterruptedError:
            return True
        except (ConnectionResetError, BrokenPipeError):
            return False
        if not payload:
            for fd in fds:
                os.close(fd)
            return False
        message = json.loads(payload)
        op = message.get("op")
        if op == "fork" and len(fds) == 1:
            self.fork(int(message["job"]), Limits.from_dict(message["limits"]), fds[0])
        elif op == "kill":
            pid = self.jobs.get(int(message["job"]))
            if pid is not None:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        else:
            for fd in fds:
                os.close(fd)
        return True

    def spawn_spare(self) -> bool:
        """Fork one confined, idle child; False if the system refused a process."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        tmpdir = tempfile.mkdtemp(prefix=tmpdir_prefix(os.getpid()))
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            shutil.rmtree(tmpdir, ignore_errors=True)
            return False
        if pid == 0:
            worker.child_main(theirs.fileno(), self.detector, tmpdir, self.network_mode, self.test_hooks)
        theirs.close()
        self.spares.append((pid, ours))
        self.children[pid] = (None, tmpdir)
        return True

    def top_up(self) -> None:
        while len(self.spares) < self.spare_count and self.spawn_spare():
            pass

    def fork(self, job: int, limits: Limits, job_fd: int) -> None:
        """Hand ``job_fd`` and the job's limits to a spare child (forking one if none is idle)."""
        while True:
            if not self.spares and not self.spawn_spare():
                # No process for this job (EAGAIN, ENOMEM): the parent sees EOF on the
                # job socket and this status, a refusal.
                os.close(job_fd)
                self.send({"op": "exited", "job": job, "status": FORK_FAILED_STATUS})
                return
            pid, line = self.spares.pop(0)
            try:
                socket.send_fds(line, [json.dumps(limits.to_dict()).encode("ascii")], [job_fd])
            except OSError:
                line.close()  # that spare died meanwhile; reap() will collect it
                continue
            line.close()
            break
        os.close(job_fd)
        _, tmpdir = self.children[pid]
        self.children[pid] = (job, tmpdir)
        self.jobs[job] = pid

    def reap(self) -> None:
        while self.children:
            try:
                # Peek first (WNOWAIT): while the child is unreaped its pid cannot be
                # reused, so killing its process group cannot hit a stranger.
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            pid = info.si_pid
            try:
                os.killpg(pid, signal.SIGKILL)  # stragglers the child may have started
            except (ProcessLookupError, PermissionError):
                pass
            _, status = os.waitpid(pid, 0)
            job, tmpdir = self.children.pop(pid, (None, None))
            if tmpdir is not None:
                shutil.rmtree(tmpdir, ignore_errors=True)
            if job is None:
                # An idle spare died (killed from outside?): forget it.
                for index, (spare_pid, line) in enumerate(self.spares):
                    if spare_pid == pid:
                        line.close()
                        del self.spares[index]
                        break
                continue
            self.jobs.pop(job, None)
            self.send({"op": "exited", "job": job, "status": status})

    def shutdown(self) -> None:
        for pid, (_job, tmpdir) in list(self.children.items()):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            shutil.rmtree(tmpdir, ignore_errors=True)
        self.children.clear()


def main(argv: list[str] | None = None) -> int:
    """``python -m sanitizer.forkserver CONTROL_FD [--spares N] [--test-hooks]``."""
    args = sys.argv[1:] if argv is None else argv
    spares = int(args[args.index("--spares") + 1]) if "--spares" in args else 2
    control = socket.socket(fileno=int(args[0]))
    control.setblocking(True)
    # Test hooks (deliberate crashes, hangs...) need both the flag and the environment
    # variable, so a production start can never enable them by a stray argument.
    test_hooks = "--test-hooks" in args and os.environ.get(TEST_HOOKS_ENV) == "1"
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent; it closes us
    ForkServer(control, test_hooks, max(0, min(spares, 64))).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
