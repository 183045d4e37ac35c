"""一斉送信 to every connected staff member (issue 6), next to a bare aiohttp broadcast in the same run.

From pressing 「送信」 (POST /api/broadcasts by an org admin, audience = everyone) to the
``broadcast.new`` event on N connected staff WebSockets: p50/p99 and the time until the last
delivery (max). The bare server broadcasts the same-size frame to the same N sockets.

    .venv/bin/python benchmarks/bench_broadcast.py                  # 10,000 staff, 5 broadcasts
    .venv/bin/python benchmarks/bench_broadcast.py --clients 2000   # quick check

Built on bench_ws_fanout.py's harness (seeding, session rows, client processes, drain and report):
only the audience and the request differ. Exit code 0 whenever the harness worked.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import marker_text, proc_status, raise_nofile, stop_process, wait_for_port_file
from bench_ws_fanout import (
    BODY_TEXT,
    HOST,
    Bench,
    HarnessError,
    PhaseResult,
    parse_args,
    report,
    summarize_log,
)


class BroadcastBench(Bench):
    """Every staff member is in the audience; the admin (staff index 0) sends."""

    def __init__(self, args: argparse.Namespace, run_dir: Path) -> None:
        super().__init__(args, run_dir)
        self.member_idx = list(range(args.clients))
        self.posters = [0]

    def make_sender_admin(self) -> None:
        # The sender needs an organisation-admin role; its session row was written without MFA,
        # which is what a completed TOTP login leaves behind.
        db = sqlite3.connect(self.dir / "data" / "lgwan.sqlite3", timeout=30)
        try:
            with db:
                db.execute("UPDATE staff SET role = 'org_admin' WHERE id = ?", (self.staff_ids[0],))
        finally:
            db.close()

    async def phase_kakehashi(self) -> tuple[PhaseResult, dict[str, float]]:
        timings = self.seed()
        self.make_sender_admin()
        timings["room_s"] = 0.0        # no room: the audience is the whole organisation
        server = self.popen([self.py, "-m", "lgwan_server", "--config", str(self.dir / "lgwan.toml"), "serve"],
                            "kakehashi-server.log")
        port = wait_for_port_file(self.dir / "port", server, 120)
        tokens_file = self.dir / "tokens.txt"
        tokens_file.write_text("\n".join(self.tokens) + "\n")
        rss_idle = proc_status(server.pid).get("VmRSS", 0)
        res = await self.start_clients(port, "/api/ws", tokens_file, sub_query=False, phase="kakehashi")
        res.server_pid, res.rss_idle_kib = server.pid, rss_idle
        res.rss_connected_kib = proc_status(server.pid).get("VmRSS", 0)
        url = f"http://{HOST}:{port}/api/broadcasts"

        def make_request(i: int, t_ns: int) -> tuple[str, dict[str, Any]]:
            marker = marker_text(t_ns, 0, i)
            body = {"title": f"【訓練】一斉送信 {i + 1}", "body": f"{marker} {BODY_TEXT}", "important": True}
            return url, {"json": body, "headers": self.staff_headers(0, port)}

        await self.post_and_measure(res, port, server.pid, make_request)
        health = await self.healthz(port)
        res.held_server = health.get("websockets")
        st = proc_status(server.pid)
        res.rss_end_kib, res.hwm_end_kib = st.get("VmRSS", 0), st.get("VmHWM", 0)
        await self.stop_clients()
        stop_process(server)
        res.server_log = summarize_log(self.dir / "kakehashi-server.log")
        return res, timings


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    defaults = {"--rate": "1", "--seconds": "5", "--room-size": "2"}   # room size is unused here
    for flag, value in defaults.items():
        if flag not in argv:
            argv += [flag, value]
    args = parse_args(argv)
    raise_nofile()
    run_dir = Path(tempfile.mkdtemp(prefix="kk-bench-broadcast-"))
    bench = BroadcastBench(args, run_dir)
    notes = [f"run directory: {run_dir}" + ("" if args.keep else " (removed at exit; --keep to keep it)"),
             "each 'post' is one 一斉送信 to every staff member; 'deliveries' counts broadcast.new frames",
             "latency max = time from pressing 送信 until the last of the N sockets had it"]
    started = time.monotonic()
    try:
        results = asyncio.run(bench.run())
    except (TimeoutError, HarnessError, RuntimeError, OSError) as exc:
        print(f"harness failure: {exc} (logs in {run_dir})", file=sys.stderr)
        bench.cleanup()
        return 1
    summary = report(args, results, notes + bench.notes)
    summary["wall_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(summary, ensure_ascii=False, separators=(",", ":")), flush=True)
    if not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
