"""Summarise a ``py-spy record --format raw`` profile (collapsed stacks) of the LGWAN server.

    .venv/bin/python benchmarks/profile_summary.py /tmp/prof-kakehashi.txt [--top 25]

Prints where the samples went, grouped the way the fan-out benchmark needs them: the event-loop
thread split into fan-out (hub writer tasks and socket writes), ``Hub.publish``, the post request
(auth, validation, transaction), the WebSocket handler, and the loop itself; the aiosqlite worker
threads (SQLite running in C) separately; then the top self-time frames. py-spy samples only
threads that are not idle, so percentages are of busy samples, not of wall time.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

# (label, substring of a frame) — the first category whose frame appears in a stack wins.
CATEGORIES = [
    ("aiosqlite worker threads (SQLite in C + row conversion)", "_connection_worker_thread"),
    ("fan-out: Hub._write_loop (queue.get, send_str, socket write)", "Hub._write_loop"),
    ("fan-out: Hub.publish (enqueue / direct write per socket)", "Hub.publish"),
    ("post: MessageService.post (transaction, round trips)", "MessageService.post"),
    ("auth middleware: session lookup per request", "AuthService.authenticate"),
    ("request validation (jsonschema)", "read_json"),
    ("WebSocket handler (handshake, replay, reading)", "websocket (lgwan_server/web/ws.py"),
    ("bare: broadcast loop (send_str per socket)", "broadcast (bare_broadcast.py"),
    ("bare: WebSocket handler", "ws_handler (bare_broadcast.py"),
    ("other HTTP request handling (aiohttp)", "RequestHandler"),
    ("event loop: epoll wait / self-pipe wake-ups", "EpollSelector.select"),
    ("event loop: thread hand-off (call_soon_threadsafe)", "_read_from_self"),
]
# py-spy sometimes records a task's stack without the event-loop frames beneath it; these roots
# only occur inside the hub's writer tasks (or the bare broadcast loop's sends).
TRUNCATED_SEND_ROOTS = ("Queue.get (", "WebSocketResponse.send_str (", "WebSocketWriter.send_frame (")
LINE_NO = re.compile(r":\d+\)")


def summarise(path: Path, top: int) -> str:
    total = 0
    cats: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        for label, needle in CATEGORIES:
            if needle in stack:
                cats[label] += n
                break
        else:
            if stack.startswith(TRUNCATED_SEND_ROOTS):
                cats["socket sends with a truncated stack (writer task / send loop)"] += n
            else:
                cats["other"] += n
        self_time[LINE_NO.sub(")", stack.rsplit(";", 1)[-1])] += n
    if not total:
        return f"{path}: no samples"
    out = [f"{path}: {total:,} busy samples"]
    out += [f"  {100 * c / total:5.1f}%  {label}" for label, c in cats.most_common()]
    out.append(f"top {top} frames by self time:")
    out += [f"  {100 * c / total:5.1f}%  {frame}" for frame, c in self_time.most_common(top)]
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description="summarise a py-spy raw profile of the LGWAN server")
    p.add_argument("profiles", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=20)
    args = p.parse_args()
    for path in args.profiles:
        print(summarise(path, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
