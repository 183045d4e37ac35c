"""Small helpers shared by the benchmark harness, the WebSocket client processes and the bare server.

Standard library only (plus nothing): the client processes and the bare server must not import
``lgwan_server``, so that the same load generator measures both servers the same way.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"          # the benchmark never listens on or connects to anything else
REPO = Path(__file__).resolve().parent.parent

# Every post carries ``MARKER<send time in ns since the epoch> p=<poster> n=<seq>`` in its body.
# Receivers find it with bytes.find, so neither server's frame has to be JSON-decoded by the client.
MARKER = b"bench t="
TIME_DIGITS = 19            # time.time_ns() has 19 digits until the year 2286


def marker_text(t_ns: int, poster: int, seq: int) -> str:
    """``bench t=<19 digits> p=<5> n=<7>``: fixed width, so a bare frame built from a real Kakehashi
    frame as template has exactly the real frame's size."""
    return f"{MARKER.decode()}{t_ns:019d} p={poster:05d} n={seq:07d}"


MARKER_WIDTH = len(marker_text(0, 0, 0))


def raise_nofile(want: int = 1_048_576) -> int:
    """Lift the soft RLIMIT_NOFILE towards the hard limit; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM / Threads of a process from /proc (KiB for the Vm* fields); {} if it is gone."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "Threads"):
                    out[key] = int(value.split()[0])
    except (OSError, ValueError):
        return {}
    return out


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float | None:
    """user+system CPU seconds a process (all its threads) has used so far; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            data = fh.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent not idle since boot (from /proc/stat), to spot other load on the box."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list (q in 0..100)."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


def wait_for_port_file(path: Path, proc: subprocess.Popen[Any], timeout: float) -> int:
    """The port a child wrote to ``path`` once listening; RuntimeError if it died or took too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before listening")
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            text = ""
        if text.isdigit():
            return int(text)
        time.sleep(0.05)
    raise RuntimeError(f"no port in {path} after {timeout:.0f}s")


def stop_process(proc: subprocess.Popen[Any], grace: float = 10.0) -> int | None:
    """SIGTERM this one child, wait, then SIGKILL it if it is still there. Returns its exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                return None
    return proc.returncode


def emit(obj: dict[str, Any]) -> None:
    """One JSON line on stdout (the client processes' report channel)."""
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()
