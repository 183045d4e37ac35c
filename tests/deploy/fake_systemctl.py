"""A stand-in for ``systemctl start|stop UNIT`` in the upgrade tests (``KAKEHASHI_SYSTEMCTL`` points here).

It runs the command in ``KK_FAKE_CMD`` (JSON list) the way the unit's ExecStart would — through the
``/opt/kakehashi/<tier>`` symlink, so a switched release is what starts — and keeps its pid in
``KK_FAKE_PIDFILE``. With ``KK_FAKE_ONLY_RELEASE`` set, any other release fails to start (a broken
upgrade).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def stop(pidfile: Path) -> None:
    if not pidfile.exists():
        return
    pid = int(pidfile.read_text())
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        for _ in range(300):
            if not running(pid):
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
    pidfile.unlink()


def running(pid: int) -> bool:
    """Alive and not a zombie (whoever adopted it may not have reaped it yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def main() -> int:
    action = sys.argv[1]
    pidfile = Path(os.environ["KK_FAKE_PIDFILE"])
    if action == "stop":
        stop(pidfile)
        return 0
    if action == "start":
        stop(pidfile)
        command = json.loads(os.environ["KK_FAKE_CMD"])
        only = os.environ.get("KK_FAKE_ONLY_RELEASE")
        if only and not Path(command[0]).resolve().is_relative_to(Path(only).resolve()):
            print(f"fake systemctl: {command[0]} is a broken release", file=sys.stderr)
            return 1
        with open(os.environ["KK_FAKE_LOG"], "ab") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=log,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        pidfile.write_text(str(proc.pid))
        time.sleep(0.3)
        return 0 if proc.poll() is None else 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
