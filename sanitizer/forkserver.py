"""The fork server (zygote): a clean interpreter with the parsers pre-loaded.

Started by the pool as ``python -m sanitizer.forkserver FD`` — a fresh interpreter, not
a fork of the server, so it inherits no event loop, sockets, threads or database
handles. It imports pikepdf, openpyxl, Pillow, defusedxml and libmagic once, opens the
magic database once, then keeps the pool supplied with *spares*: children forked ahead
of demand, each already confined (``worker.child_main``) and waiting for one job on a
socket pair whose other end goes to the pool. The pool writes a job straight to a
spare, so no message passes through this process on a file's critical path.

Messages on the control socket (``FD``, a ``SOCK_SEQPACKET`` Unix socket; one JSON
message per packet):

- to the pool: ``{"op": "spare", "id": PID}`` with the pool's end of the spare's job
  socket attached (SCM_RIGHTS); ``{"op": "exited", "id": PID, "status": S}`` when a
  child ends (S is the raw ``waitpid`` status); ``{"op": "fork_failed"}`` when the
  system refused a process and no spare is on its way.
- from the pool: ``{"op": "take", "id": PID}``: the pool gave that spare a job, so
  fork a replacement; ``{"op": "kill", "id": PID}``: SIGKILL the child's process group
  if it is still running. Only the fork server reaps its children, so a pid it kills
  cannot have been reused.

The server never touches file content; only children do. When the control socket
closes (the parent went away), it kills its children and exits.
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
from sanitizer.warmup import warm_up

TEST_HOOKS_ENV = "KAKEHASHI_SANITIZER_TEST_HOOKS"
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
    """State of the zygote: live children, and how many idle spares the pool holds."""

    def __init__(self, control: socket.socket, test_hooks: bool, spare_count: int) -> None:
        self.control = control
        self.test_hooks = test_hooks
        self.spare_count = spare_count
        self.idle: set[int] = set()  # spares handed to the pool and not taken yet
        self.detector = Detector()
        self.warmed = warm_up(self.detector)
        self.network_mode = probe_network_isolation()
        self.children: dict[int, str] = {}  # pid -> its private temporary directory

    def send(self, message: dict[str, object], fds: list[int] | None = None) -> None:
        try:
            socket.send_fds(self.control, [json.dumps(message).encode("ascii")], fds or [])
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
        self.send(
            {"op": "ready", "pid": os.getpid(), "network": self.network_mode,
             "uid": "nobody" if os.geteuid() == 0 else "unchanged", "warmed": self.warmed}
        )  # fmt: skip
        try:
            self.top_up()
            while True:
                for key, _ in sel.select():
                    if key.data == "wake":
                        os.read(wake_r, 4096)
                        self.reap()
                    elif not self.handle_control():
                        return
                self.reap()
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
        for fd in fds:
            os.close(fd)  # the pool never sends descriptors
        if not payload:
            return False
        message = json.loads(payload)
        op = message.get("op")
        pid = int(message.get("id", 0))
        if op == "take":
            self.idle.discard(pid)  # top_up() replaces it
        elif op == "kill" and pid in self.children:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return True

    def spawn_spare(self) -> bool:
        """Fork one confined, idle child and hand its job socket to the pool."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        tmpdir = tempfile.mkdtemp(prefix=tmpdir_prefix(os.getpid()))
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            shutil.rmtree(tmpdir, ignore_errors=True)
            return False
        if pid == 0:  # the spare; child_main never returns (it closes ``ours`` with the rest)
            worker.child_main(theirs.fileno(), self.detector, tmpdir, self.network_mode, self.test_hooks)
        theirs.close()
        self.children[pid] = tmpdir
        self.idle.add(pid)
        try:
            self.send({"op": "spare", "id": pid}, [ours.fileno()])
        finally:
            ours.close()
        return True

    def top_up(self) -> None:
        while len(self.idle) < self.spare_count:
            if not self.spawn_spare():
                # No process now (EAGAIN, ENOMEM). If the pool holds no spare either,
                # tell it, so a waiting file is refused instead of hanging; the next
                # message or child exit retries.
                if not self.idle:
                    self.send({"op": "fork_failed"})
                return

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
            tmpdir = self.children.pop(pid, None)
            if tmpdir is not None:
                shutil.rmtree(tmpdir, ignore_errors=True)
            self.idle.discard(pid)  # a spare that died idle (killed from outside?)
            self.send({"op": "exited", "id": pid, "status": status})

    def shutdown(self) -> None:
        for pid, tmpdir in list(self.children.items()):
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
    worker.set_process_name("ksan-forkserver")
    ForkServer(control, test_hooks, max(0, min(spares, 64))).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
