"""WebSocket fan-out benchmark: the real LGWAN server against a bare aiohttp broadcast server.

    .venv/bin/python benchmarks/bench_ws_fanout.py                       # 10,000 staff, 500-member room, 100 posts/s, 20 s
    .venv/bin/python benchmarks/bench_ws_fanout.py --clients 1000 --seconds 5   # a quick check

Phase "kakehashi": a fresh data dir; ``create-org``/``import-departments``/``import-staff`` through
the real CLI; one session row per staff member inserted with sqlite3 (SHA-256 of a random token,
exactly as services/auth.py stores it — N argon2id logins would take N × ~0.1–0.5 s and are not
what is measured); the server started as its own process on 127.0.0.1 with an ephemeral port; a
project room of ``--room-size`` members created through POST /api/rooms (+ /members); N staff
WebSockets opened from ``--client-procs`` client processes (benchmarks/ws_clients.py); then
``--rate`` posts/s for ``--seconds`` s through POST /api/rooms/{id}/messages by enough distinct
posters to stay under the per-person limit (30 burst, 3/s). Each post's body carries its send time;
every client records receive time − send time for every delivery.

Phase "bare": the same client program with the same N connections (the same indices subscribed)
against benchmarks/bare_broadcast.py, and the same posting schedule, posting a body the size of a
real Kakehashi ``message.new`` frame. Results are printed side by side and as ratios.

Output: a table on stdout and, as the last line, one JSON object. The exit code is non-zero only
when the harness itself fails (a process would not start, seeding failed, …), never because a
figure missed a target. Every loop is bounded in count and time; children are stopped on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import math
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    HOST,
    MARKER,
    MARKER_WIDTH,
    REPO,
    machine_busy_seconds,
    marker_text,
    percentile,
    proc_cpu_seconds,
    proc_status,
    raise_nofile,
    stop_process,
    wait_for_port_file,
)

try:
    import aiohttp
except ImportError:  # pragma: no cover - the project venv always has it
    sys.exit("aiohttp is missing: run this with the project's venv, e.g. .venv/bin/python benchmarks/bench_ws_fanout.py")

BENCH_DIR = Path(__file__).resolve().parent
ORG_CODE = "999990"              # not a real 地方公共団体コード
ORG_NAME = "ベンチ市"
BODY_TEXT = "本日の庁議資料を共有フォルダに置きました。確認をお願いします。"


class HarnessError(Exception):
    """Something the harness needed did not work; the run cannot produce figures."""




# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------

@dataclass
class PhaseResult:
    name: str
    clients_wanted: int = 0
    clients_connected: int = 0           # ready (hello received) at the end of the connect phase
    connect_seconds: float = 0.0
    connect_errors: dict[str, int] = field(default_factory=dict)
    members_connected: int = 0
    posts_planned: int = 0
    posts_sent: int = 0
    posts_accepted: int = 0
    post_status: dict[str, int] = field(default_factory=dict)
    post_window_s: float = 0.0           # first send .. last response
    post_http_ms: list[float] = field(default_factory=list)
    poster_lag_ms: list[float] = field(default_factory=list)
    deliveries: int = 0
    expected_deliveries: int = 0
    delivery_window_s: float = 0.0       # first send .. last delivery
    latencies_ms: list[float] = field(default_factory=list)
    drain_s: float = 0.0
    frame_bytes_avg: float = 0.0
    wire_bytes_avg: float = 0.0          # as received: smaller than frame_bytes_avg when deflated
    deflate_sockets: int = 0             # connections that negotiated permessage-deflate
    held_server: int | None = None       # /healthz websockets at the end
    held_client: int = 0                 # client-side open sockets at the end
    closes: dict[str, int] = field(default_factory=dict)
    client_errors: dict[str, int] = field(default_factory=dict)
    server_pid: int = 0
    rss_idle_kib: int = 0                # after seeding/room creation, before clients
    rss_connected_kib: int = 0           # all clients connected
    rss_end_kib: int = 0
    hwm_end_kib: int = 0
    server_cpu_s: float = 0.0            # during post + drain
    client_cpu_s: float = 0.0            # all client processes, during post + drain
    harness_cpu_s: float = 0.0           # this process, during post + drain
    other_cpu_s: float = 0.0             # everything else on the machine, during post + drain
    measure_s: float = 0.0               # wall time of post + drain (the CPU figures' window)
    server_log: dict[str, int] = field(default_factory=dict)
    profile: str = ""
    notes: list[str] = field(default_factory=list)

    # derived
    def pct(self, q: float) -> float | None:
        return percentile(self.latencies_ms, q)

    @property
    def accepted_per_s(self) -> float:
        return self.posts_accepted / self.post_window_s if self.post_window_s else 0.0

    @property
    def deliveries_per_s(self) -> float:
        return self.deliveries / self.delivery_window_s if self.delivery_window_s else 0.0

    def summary(self) -> dict[str, Any]:
        http = sorted(self.post_http_ms)
        lag = sorted(self.poster_lag_ms)
        r = lambda v, n=2: None if v is None else round(v, n)  # noqa: E731
        busy = self.measure_s
        return {
            "clients_wanted": self.clients_wanted, "clients_connected": self.clients_connected,
            "connect_seconds": r(self.connect_seconds), "connect_errors": self.connect_errors,
            "room_members_connected": self.members_connected,
            "posts_planned": self.posts_planned, "posts_sent": self.posts_sent, "posts_accepted": self.posts_accepted,
            "post_status": self.post_status, "posts_accepted_per_s": r(self.accepted_per_s),
            "post_http_ms": {"p50": r(percentile(http, 50)), "p99": r(percentile(http, 99)),
                             "max": r(http[-1] if http else None)},
            "poster_lag_ms_p99": r(percentile(lag, 99)),
            "deliveries": self.deliveries, "expected_deliveries": self.expected_deliveries,
            "delivery_ratio": r(self.deliveries / self.expected_deliveries, 4) if self.expected_deliveries else None,
            "deliveries_per_s": r(self.deliveries_per_s, 1),
            "latency_ms": {"p50": r(self.pct(50)), "p90": r(self.pct(90)), "p99": r(self.pct(99)),
                           "p999": r(self.pct(99.9)),
                           "max": r(self.latencies_ms[-1] if self.latencies_ms else None)},
            "frame_bytes_avg": r(self.frame_bytes_avg, 1), "wire_bytes_avg": r(self.wire_bytes_avg, 1),
            "permessage_deflate_sockets": self.deflate_sockets,
            "connections_held": {"server": self.held_server, "client": self.held_client},
            "server_close_codes": self.closes, "client_errors": self.client_errors,
            "server_rss_mib": {"idle": r(self.rss_idle_kib / 1024, 1), "connected": r(self.rss_connected_kib / 1024, 1),
                               "end": r(self.rss_end_kib / 1024, 1), "hwm": r(self.hwm_end_kib / 1024, 1)},
            "server_cpu_pct": r(100 * self.server_cpu_s / busy, 1) if busy else None,
            "server_cpu_ms_per_1k_deliveries": r(1e6 * self.server_cpu_s / self.deliveries, 1)
            if self.deliveries else None,
            "client_cpu_pct": r(100 * self.client_cpu_s / busy, 1) if busy else None,
            "harness_cpu_pct": r(100 * self.harness_cpu_s / busy, 1) if busy else None,
            "other_processes_cpu_pct": r(100 * self.other_cpu_s / busy, 1) if busy else None,
            "server_log": self.server_log, "profile": self.profile or None, "notes": self.notes,
        }


# --------------------------------------------------------------------------------------------
# Client processes
# --------------------------------------------------------------------------------------------

class ClientProc:
    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name

    async def read_event(self, wait: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + wait
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HarnessError(f"{self.name}: no answer within {wait:.0f}s")
            line = await asyncio.wait_for(self.proc.stdout.readline(), remaining)
            if not line:
                raise HarnessError(f"{self.name}: exited (code {await self.proc.wait()})")
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "fatal":
                raise HarnessError(f"{self.name}: {event.get('error')}")
            return event

    async def ask(self, cmd: str, wait: float = 60.0) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd}).encode() + b"\n")
        await self.proc.stdin.drain()
        while True:
            event = await self.read_event(wait)
            if event.get("event") == cmd:
                return event

    async def quit(self) -> None:
        if self.proc.returncode is not None:
            return
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.write(b'{"cmd":"quit"}\n')
            await self.proc.stdin.drain()
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


# --------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------

class Bench:
    def __init__(self, args: argparse.Namespace, run_dir: Path) -> None:
        self.args = args
        self.dir = run_dir
        self.py = sys.executable
        self.children: list[subprocess.Popen[Any]] = []
        self.clients: list[ClientProc] = []
        n, m = args.clients, args.room_size
        # Room members spread evenly over the staff indices, so every client process holds a share.
        self.member_idx = sorted({(k * n) // m for k in range(m)})
        self.posters = self.member_idx[: args.posters]
        self.staff_ids: list[int] = []
        self.tokens: list[str] = []
        self.csrf: list[str] = []
        self.sample_frame: bytes | None = None
        self.notes: list[str] = []

    # --- processes -----------------------------------------------------------------------------

    def popen(self, cmd: list[str], log_name: str, cwd: Path | None = None) -> subprocess.Popen[Any]:
        log = open(self.dir / log_name, "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(cmd, cwd=cwd or self.dir, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=self.env())
        log.close()
        self.children.append(proc)
        return proc

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
        env.pop("PYTHONASYNCIODEBUG", None)
        return env

    def cli(self, *argv: str) -> Any:
        cmd = [self.py, "-m", "lgwan_server", "--config", str(self.dir / "lgwan.toml"), *argv]
        done = subprocess.run(cmd, cwd=self.dir, env=self.env(), capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            raise HarnessError(f"{' '.join(argv[:1])} failed ({done.returncode}): {done.stdout[-2000:]}"
                               f"{done.stderr[-2000:]}")
        try:
            return json.loads(done.stdout)
        except ValueError:
            return done.stdout

    async def start_clients(self, port: int, path: str, tokens_file: Path | None, sub_query: bool,
                            phase: str) -> PhaseResult:
        a = self.args
        n, k = a.clients, a.client_procs
        members_file = self.dir / "members.txt"
        members_file.write_text("\n".join(map(str, self.member_idx)) + "\n")
        bounds = [(i * n) // k for i in range(k + 1)]
        max_seconds = self.connect_timeout() + a.seconds + a.drain_seconds + 600
        self.clients = []
        for i in range(k):
            cmd = [self.py, str(BENCH_DIR / "ws_clients.py"), "--port", str(port), "--path", path,
                   "--members", str(members_file), "--start", str(bounds[i]), "--end", str(bounds[i + 1]),
                   "--concurrency", str(a.connect_concurrency), "--out", str(self.dir / f"{phase}-client{i}"),
                   "--max-seconds", str(int(max_seconds))]
            if tokens_file is not None:
                cmd += ["--tokens", str(tokens_file)]
            if sub_query:
                cmd.append("--sub-query")
            if a.deflate:
                cmd.append("--deflate")
            err = open(self.dir / f"{phase}-client{i}.stderr", "wb")  # noqa: SIM115, ASYNC230
            proc = await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.PIPE,
                                                        stdout=asyncio.subprocess.PIPE, stderr=err,
                                                        env=self.env(), limit=2**20)
            err.close()
            self.clients.append(ClientProc(proc, f"{phase} client {i}"))
        res = PhaseResult(phase, clients_wanted=n)
        started = time.monotonic()
        connected = await asyncio.gather(*(c.read_event(self.connect_timeout() + 30) for c in self.clients))
        res.connect_seconds = time.monotonic() - started
        errors: Counter[str] = Counter()
        for ev in connected:
            if ev.get("event") != "connected":
                raise HarnessError(f"unexpected client event {ev}")
            res.clients_connected += ev["ok"]
            res.members_connected += ev["members_connected"]
            errors.update(ev.get("errors", {}))
        res.connect_errors = dict(errors)
        return res

    def connect_timeout(self) -> float:
        return max(120.0, self.args.clients / 20)

    async def stop_clients(self) -> None:
        await asyncio.gather(*(c.quit() for c in self.clients), return_exceptions=True)
        self.clients = []

    def cleanup(self) -> None:
        for proc in self.children:
            stop_process(proc)

    # --- seeding -------------------------------------------------------------------------------

    def write_config(self) -> Path:
        cfg = self.dir / "lgwan.toml"
        cfg.write_text(
            '[server]\nhost = "127.0.0.1"\nport = 0\nport_file = "port"\n\n'
            '[storage]\ndata_dir = "data"\n\n'
            f'[logging]\nlevel = "{self.args.server_log_level}"\nformat = "json"\n', encoding="utf-8")
        return cfg

    def seed(self) -> dict[str, float]:
        n = self.args.clients
        timings: dict[str, float] = {}
        self.write_config()
        t = time.monotonic()
        self.cli("create-org", "--code", ORG_CODE, "--name", ORG_NAME)
        depts = [["部署コード", "部署名", "上位部署コード", "種別", "表示順"], ["100", "ベンチ部", "", "部", "0"]]
        sections = [f"1{i:02d}" for i in range(1, 21)]
        depts += [[code, f"第{i}課", "100", "課", str(i)] for i, code in enumerate(sections, start=1)]
        staff = [["職員番号", "氏名", "よみがな", "ログインID", "部署コード", "職層コード", "職層", "職層順位", "役職", "権限"]]
        ranks = [("06", "係長級", 6), ("07", "主査", 7), ("08", "主事", 8)]
        for i in range(n):
            rank = ranks[i % len(ranks)]
            staff.append([f"B{i:06d}", f"職員 {i:05d}", f"しょくいん {i:05d}", f"bench{i:06d}", sections[i % len(sections)],
                          rank[0], rank[1], str(rank[2]), "", "一般"])
        for name, rows in (("departments.csv", depts), ("staff.csv", staff)):
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\r\n").writerows(rows)
            (self.dir / name).write_text(buf.getvalue(), encoding="utf-8")
        self.cli("import-departments", "--org", ORG_CODE, str(self.dir / "departments.csv"))
        self.cli("import-staff", "--org", ORG_CODE, str(self.dir / "staff.csv"))
        timings["import_s"] = time.monotonic() - t
        t = time.monotonic()
        self.insert_sessions()
        timings["sessions_s"] = time.monotonic() - t
        return timings

    def insert_sessions(self) -> None:
        """One live session per staff member, written the way services/auth.py writes a login's."""
        from lgwan_server.services.auth import token_hash  # the server's own hashing, so the two never drift
        from shared.timeutil import now_iso

        db = sqlite3.connect(self.dir / "data" / "lgwan.sqlite3", timeout=30)
        try:
            org = db.execute("SELECT id FROM organisations WHERE code = ?", (ORG_CODE,)).fetchone()
            if org is None:
                raise HarnessError("the benchmark organisation was not created")
            ids = [r[0] for r in db.execute(
                "SELECT id FROM staff WHERE org_id = ? AND login LIKE 'bench%' ORDER BY login", (org[0],))]
            if len(ids) != self.args.clients:
                raise HarnessError(f"expected {self.args.clients} staff, found {len(ids)}")
            self.staff_ids = ids
            self.tokens = [secrets.token_urlsafe(32) for _ in ids]
            self.csrf = [secrets.token_urlsafe(24) for _ in ids]
            now = now_iso()
            with db:
                db.executemany(
                    "INSERT INTO sessions(token_hash, staff_id, csrf_token, mfa_pending, created_at, last_seen_at,"
                    " source_ip, user_agent) VALUES (?,?,?,?,?,?,?,?)",
                    [(token_hash(tok), sid, csrf, 0, now, now, HOST, "kakehashi-bench")
                     for tok, sid, csrf in zip(self.tokens, ids, self.csrf, strict=True)])
        finally:
            db.close()

    # --- HTTP helpers --------------------------------------------------------------------------

    def staff_headers(self, idx: int, port: int) -> dict[str, str]:
        return {"Cookie": f"kk_session={self.tokens[idx]}", "X-CSRF-Token": self.csrf[idx],
                "Origin": f"http://{HOST}:{port}"}

    async def create_room(self, port: int) -> int:
        owner = self.member_idx[0]
        others = [self.staff_ids[i] for i in self.member_idx[1:]]
        base = f"http://{HOST}:{port}"
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            async with http.post(f"{base}/api/rooms", headers=self.staff_headers(owner, port),
                                 json={"kind": "project", "name": "ベンチマーク連絡室", "member_ids": others[:499]}) as r:
                body = await r.json(content_type=None)
                if r.status != 201:
                    raise HarnessError(f"POST /api/rooms → {r.status} {body}")
                room_id = int(body["id"])
            for start in range(499, len(others), 500):
                chunk = others[start:start + 500]
                async with http.post(f"{base}/api/rooms/{room_id}/members", headers=self.staff_headers(owner, port),
                                     json={"staff_ids": chunk}) as r:
                    body = await r.json(content_type=None)
                    if r.status != 200:
                        raise HarnessError(f"POST /api/rooms/{room_id}/members → {r.status} {body}")
        return room_id

    async def healthz(self, port: int) -> dict[str, Any]:
        try:
            async with aiohttp.ClientSession() as http, \
                    http.get(f"http://{HOST}:{port}/healthz", timeout=aiohttp.ClientTimeout(total=30)) as r:
                return dict(await r.json(content_type=None))
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            return {"error": type(exc).__name__}

    # --- posting and measuring -----------------------------------------------------------------

    async def post_and_measure(self, res: PhaseResult, port: int, server_pid: int, make_request: Any) -> None:
        """Post at --rate for --seconds (open loop: post i is due at t0 + i/rate), then drain."""
        a = self.args
        loop = asyncio.get_running_loop()
        total = int(a.rate * a.seconds)
        res.posts_planned = total
        status: Counter[str] = Counter()
        inflight = asyncio.Semaphore(a.max_inflight)
        first_send = [0]
        last_resp = [0.0]

        async def post_one(http: aiohttp.ClientSession, i: int, due: float) -> None:
            async with inflight:
                res.poster_lag_ms.append((loop.time() - due) * 1000)
                t_ns = time.time_ns()
                if not first_send[0]:
                    first_send[0] = t_ns
                url, kwargs = make_request(i, t_ns)
                started = loop.time()
                try:
                    async with http.post(url, **kwargs) as r:
                        await r.read()
                        status[str(r.status)] += 1
                        if r.status == 201:
                            res.posts_accepted += 1
                            res.post_http_ms.append((loop.time() - started) * 1000)
                except (TimeoutError, aiohttp.ClientError) as exc:
                    status[type(exc).__name__] += 1
                last_resp[0] = time.time_ns()
                res.posts_sent += 1

        cpu0 = self.cpu_snapshot(server_pid)
        measure_start = time.monotonic()
        connector = aiohttp.TCPConnector(limit=a.max_inflight, force_close=False)
        timeout = aiohttp.ClientTimeout(total=a.seconds + a.drain_seconds + 30)
        profiler = self.start_profiler(server_pid, res.name)
        async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                         timeout=timeout) as http:
            t0 = loop.time() + 0.2
            tasks = []
            for i in range(total):
                due = t0 + i / a.rate
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(post_one(http, i, due)))
            await asyncio.gather(*tasks)
        res.post_status = dict(status)
        res.post_window_s = (last_resp[0] - first_send[0]) / 1e9 if first_send[0] else 0.0

        # Drain: until every accepted post reached every connected member, or nothing moved for
        # --quiet-seconds, or --drain-seconds passed.
        drain_start = time.monotonic()
        last_total, last_change = -1, time.monotonic()
        while True:
            statuses = await asyncio.gather(*(c.ask("status") for c in self.clients))
            marked = sum(s["marked"] for s in statuses)
            members_open = sum(s["members_open"] for s in statuses)
            if marked >= res.posts_accepted * members_open and members_open:
                break
            now = time.monotonic()
            if marked != last_total:
                last_total, last_change = marked, now
            elif now - last_change > a.quiet_seconds:
                break
            if now - drain_start > a.drain_seconds:
                res.notes.append(f"drain stopped after {a.drain_seconds:.0f}s")
                break
            await asyncio.sleep(0.25)
        res.drain_s = time.monotonic() - drain_start
        cpu1 = self.cpu_snapshot(server_pid)
        res.measure_s = time.monotonic() - measure_start
        res.server_cpu_s = cpu1["server"] - cpu0["server"]
        res.client_cpu_s = cpu1["clients"] - cpu0["clients"]
        res.harness_cpu_s = cpu1["harness"] - cpu0["harness"]
        ours = res.server_cpu_s + res.client_cpu_s + res.harness_cpu_s
        res.other_cpu_s = max(0.0, cpu1["machine"] - cpu0["machine"] - ours)
        if res.other_cpu_s > 0.1 * res.measure_s:
            res.notes.append(f"{res.name}: other processes used {100 * res.other_cpu_s / res.measure_s:.0f}% of a CPU "
                             "during the measurement; figures are disturbed, re-run on a quiet machine")
        if profiler is not None:
            await self.stop_profiler(profiler, res)

        reports = await asyncio.gather(*(c.ask("report") for c in self.clients))
        lat = array("q")
        closes: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        marked_bytes = wire_bytes = frames = 0
        last_rx = 0
        members_open = 0
        for rep in reports:
            data = Path(rep["latency_file"]).read_bytes()  # noqa: ASYNC240 - nothing else runs now
            chunk = array("q")
            chunk.frombytes(data)
            lat.extend(chunk)
            closes.update(rep["closes"])
            errors.update(rep["errors"])
            marked_bytes += rep["marked_bytes"]
            wire_bytes += rep["wire_bytes"]
            frames += rep["frames"]
            res.deflate_sockets += rep["deflate_negotiated"]
            last_rx = max(last_rx, rep["last_rx_ns"])
            res.held_client += rep["open"]
            members_open += rep["members_open"]
        res.deliveries = len(lat)
        res.latencies_ms = sorted(v / 1e6 for v in lat)
        res.frame_bytes_avg = marked_bytes / len(lat) if len(lat) else 0.0
        res.wire_bytes_avg = wire_bytes / frames if frames else 0.0
        res.expected_deliveries = res.posts_accepted * res.members_connected
        res.delivery_window_s = (last_rx - first_send[0]) / 1e9 if last_rx and first_send[0] else 0.0
        res.closes = dict(closes)
        res.client_errors = dict(errors)
        for i in range(len(self.clients)):
            sample = self.dir / f"{res.name}-client{i}.sample"
            if res.name == "kakehashi" and sample.exists() and self.sample_frame is None:
                self.sample_frame = sample.read_bytes()

    def cpu_snapshot(self, server_pid: int) -> dict[str, float]:
        return {"server": proc_cpu_seconds(server_pid) or 0.0,
                "clients": sum(proc_cpu_seconds(c.proc.pid) or 0.0 for c in self.clients),
                "harness": proc_cpu_seconds(os.getpid()) or 0.0, "machine": machine_busy_seconds()}

    # --- profiling (optional) ------------------------------------------------------------------

    def start_profiler(self, pid: int, phase: str) -> tuple[subprocess.Popen[Any], Path] | None:
        if not self.args.profile:
            return None
        spy = shutil.which("py-spy") or str(Path(self.py).parent / "py-spy")
        if not Path(spy).exists():
            self.notes.append("--profile: py-spy not found (pip install py-spy into the venv)")
            return None
        out = Path(f"{self.args.profile}-{phase}.txt").resolve()
        duration = int(self.args.seconds + 2)
        cmd = [spy, "record", "--pid", str(pid), "--duration", str(duration), "--rate", "200", "--format", "raw",
               "--output", str(out), "--nonblocking"]
        return self.popen(cmd, f"py-spy-{phase}.log"), out

    async def stop_profiler(self, prof: tuple[subprocess.Popen[Any], Path], res: PhaseResult) -> None:
        proc, out = prof
        for _ in range(200):                      # ≤ 20 s after the window it was asked to record
            if proc.poll() is not None:
                break
            await asyncio.sleep(0.1)
        stop_process(proc)
        if out.exists():
            res.profile = str(out)
        else:
            res.notes.append(f"py-spy wrote nothing; see {self.dir / f'py-spy-{res.name}.log'}")

    # --- phases --------------------------------------------------------------------------------

    async def phase_kakehashi(self) -> tuple[PhaseResult, dict[str, float]]:
        a = self.args
        timings = self.seed()
        server = self.popen([self.py, "-m", "lgwan_server", "--config", str(self.dir / "lgwan.toml"), "serve"],
                            "kakehashi-server.log")
        port = wait_for_port_file(self.dir / "port", server, 120)
        t = time.monotonic()
        room_id = await self.create_room(port)
        timings["room_s"] = time.monotonic() - t
        tokens_file = self.dir / "tokens.txt"
        tokens_file.write_text("\n".join(self.tokens) + "\n")
        rss_idle = proc_status(server.pid).get("VmRSS", 0)
        res = await self.start_clients(port, "/api/ws", tokens_file, sub_query=False, phase="kakehashi")
        res.server_pid, res.rss_idle_kib = server.pid, rss_idle
        res.rss_connected_kib = proc_status(server.pid).get("VmRSS", 0)
        posters = self.posters
        base = f"http://{HOST}:{port}/api/rooms/{room_id}/messages"

        def make_request(i: int, t_ns: int) -> tuple[str, dict[str, Any]]:
            poster = posters[i % len(posters)]
            body = {"body": f"{marker_text(t_ns, poster, i)} {BODY_TEXT}"}
            if not a.no_client_msg_id:
                body["client_msg_id"] = f"bench-{i:07d}"
            return base, {"json": body, "headers": self.staff_headers(poster, port)}

        await self.post_and_measure(res, port, server.pid, make_request)
        health = await self.healthz(port)
        res.held_server = health.get("websockets")
        st = proc_status(server.pid)
        res.rss_end_kib, res.hwm_end_kib = st.get("VmRSS", 0), st.get("VmHWM", 0)
        await self.stop_clients()
        stop_process(server)
        res.server_log = summarize_log(self.dir / "kakehashi-server.log")
        return res, timings

    async def phase_bare(self) -> PhaseResult:
        port_file = self.dir / "bare.port"
        server = self.popen([self.py, str(BENCH_DIR / "bare_broadcast.py"), "--port", "0",
                             "--port-file", str(port_file)], "bare-server.log")
        port = wait_for_port_file(port_file, server, 60)
        rss_idle = proc_status(server.pid).get("VmRSS", 0)
        res = await self.start_clients(port, "/ws", None, sub_query=True, phase="bare")
        res.server_pid, res.rss_idle_kib = server.pid, rss_idle
        res.rss_connected_kib = proc_status(server.pid).get("VmRSS", 0)
        template = self.sample_frame
        if template is not None and template.find(MARKER) >= 0:
            i = template.find(MARKER)
            prefix, suffix = template[:i], template[i + MARKER_WIDTH:]
            res.notes.append(f"bare frames use a real Kakehashi frame ({len(template)} B) as template")
        else:
            prefix = b'{"id":1,"type":"message.new","room_id":1,"data":{"body":"'
            filler = "x" * max(0, self.args.bare_bytes - len(prefix) - MARKER_WIDTH - 4)
            suffix = f' {filler}"}}}}'.encode()
            res.notes.append(f"bare frames are synthetic (~{self.args.bare_bytes} B): no Kakehashi sample frame")
        posters = self.posters
        url = f"http://{HOST}:{port}/broadcast"
        headers = {"Content-Type": "application/json"}

        def make_request(i: int, t_ns: int) -> tuple[str, dict[str, Any]]:
            body = prefix + marker_text(t_ns, posters[i % len(posters)], i).encode() + suffix
            return url, {"data": body, "headers": headers}

        await self.post_and_measure(res, port, server.pid, make_request)
        health = await self.healthz(port)
        res.held_server = health.get("websockets")
        st = proc_status(server.pid)
        res.rss_end_kib, res.hwm_end_kib = st.get("VmRSS", 0), st.get("VmHWM", 0)
        await self.stop_clients()
        stop_process(server)
        res.server_log = summarize_log(self.dir / "bare-server.log")
        return res

    async def run(self) -> dict[str, Any]:
        a = self.args
        out: dict[str, Any] = {}
        try:
            if "kakehashi" in a.phases:
                out["kakehashi"], out["setup"] = await self.phase_kakehashi()
            if "bare" in a.phases:
                if self.tokens == []:
                    self.tokens = [""] * a.clients
                out["bare"] = await self.phase_bare()
        finally:
            await self.stop_clients()
            self.cleanup()
        return out


def summarize_log(path: Path) -> dict[str, int]:
    """WARNING-and-above server log lines, counted by message."""
    counts: Counter[str] = Counter()
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return {}
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            if "Traceback" in line or "Error" in line:
                counts["(non-JSON error output)"] += 1
            continue
        if isinstance(entry, dict) and entry.get("level") in ("WARNING", "ERROR", "CRITICAL"):
            counts[f"{entry['level']}: {entry.get('msg', '')}"[:80]] += 1
    return dict(counts)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

def fmt(v: Any, unit: str = "", nd: int = 1) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.{nd}f}{unit}"
    if isinstance(v, int):
        return f"{v:,}{unit}"
    return f"{v}{unit}"


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b:
        return None
    return a / b


def report(args: argparse.Namespace, results: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    k: PhaseResult | None = results.get("kakehashi")
    b: PhaseResult | None = results.get("bare")
    ks = k.summary() if k else None
    bs = b.summary() if b else None
    cpus = os.cpu_count() or 0
    lines = [f"Kakehashi WebSocket fan-out: {args.clients:,} staff sockets, {args.room_size}-member room, "
             f"{args.rate:g} posts/s for {args.seconds:g} s, {args.posters} posters, "
             f"{args.client_procs} client process(es)"
             f"{', clients offer permessage-deflate' if args.deflate else ''}; "
             f"{cpus} CPUs shared by server, clients and harness"]
    if "setup" in results:
        s = results["setup"]
        lines.append(f"setup: CLI import {s['import_s']:.1f}s, {args.clients:,} session rows inserted with sqlite3 "
                     f"(no argon2 logins) {s['sessions_s']:.1f}s, room via API {s['room_s']:.1f}s")
    rows: list[tuple[str, str, str, str]] = []

    def row(label: str, kv: Any, bv: Any, rv: Any = None, unit: str = "", nd: int = 1) -> None:
        rows.append((label, fmt(kv, unit, nd), fmt(bv, unit, nd), fmt(rv, "×", 2) if rv is not None else ""))

    def g(s: dict[str, Any] | None, *path: str) -> Any:
        cur: Any = s
        for p in path:
            if cur is None:
                return None
            cur = cur.get(p)
        return cur

    row("clients connected", g(ks, "clients_connected"), g(bs, "clients_connected"))
    row("connect time", g(ks, "connect_seconds"), g(bs, "connect_seconds"), unit=" s")
    row("held at end (server /healthz)", g(ks, "connections_held", "server"), g(bs, "connections_held", "server"))
    row("held at end (client count)", g(ks, "connections_held", "client"), g(bs, "connections_held", "client"))
    row("room members connected", g(ks, "room_members_connected"), g(bs, "room_members_connected"))
    row("posts sent / planned", f"{g(ks, 'posts_sent')}/{g(ks, 'posts_planned')}" if ks else None,
        f"{g(bs, 'posts_sent')}/{g(bs, 'posts_planned')}" if bs else None)
    row("posts accepted", g(ks, "posts_accepted"), g(bs, "posts_accepted"))
    row("posts accepted/s", g(ks, "posts_accepted_per_s"), g(bs, "posts_accepted_per_s"))
    row("post HTTP p50", g(ks, "post_http_ms", "p50"), g(bs, "post_http_ms", "p50"), unit=" ms")
    row("post HTTP p99", g(ks, "post_http_ms", "p99"), g(bs, "post_http_ms", "p99"), unit=" ms")
    row("poster lag p99 (harness late)", g(ks, "poster_lag_ms_p99"), g(bs, "poster_lag_ms_p99"), unit=" ms")
    row("deliveries / expected", f"{fmt(g(ks, 'deliveries'))}/{fmt(g(ks, 'expected_deliveries'))}" if ks else None,
        f"{fmt(g(bs, 'deliveries'))}/{fmt(g(bs, 'expected_deliveries'))}" if bs else None)
    rate_ratio = ratio(g(ks, "deliveries_per_s"), g(bs, "deliveries_per_s"))
    row("deliveries/s", g(ks, "deliveries_per_s"), g(bs, "deliveries_per_s"), rate_ratio, nd=0)
    row("delivery latency p50", g(ks, "latency_ms", "p50"), g(bs, "latency_ms", "p50"),
        ratio(g(ks, "latency_ms", "p50"), g(bs, "latency_ms", "p50")), unit=" ms")
    row("delivery latency p90", g(ks, "latency_ms", "p90"), g(bs, "latency_ms", "p90"), unit=" ms")
    p99_ratio = ratio(g(ks, "latency_ms", "p99"), g(bs, "latency_ms", "p99"))
    row("delivery latency p99", g(ks, "latency_ms", "p99"), g(bs, "latency_ms", "p99"), p99_ratio, unit=" ms")
    row("delivery latency max", g(ks, "latency_ms", "max"), g(bs, "latency_ms", "max"), unit=" ms")
    row("frame size (avg)", g(ks, "frame_bytes_avg"), g(bs, "frame_bytes_avg"), unit=" B", nd=0)
    row("on the wire (avg, all frames)", g(ks, "wire_bytes_avg"), g(bs, "wire_bytes_avg"), unit=" B", nd=0)
    row("sockets with permessage-deflate", g(ks, "permessage_deflate_sockets"), g(bs, "permessage_deflate_sockets"))
    row("server RSS idle", g(ks, "server_rss_mib", "idle"), g(bs, "server_rss_mib", "idle"), unit=" MiB")
    row("server RSS connected", g(ks, "server_rss_mib", "connected"), g(bs, "server_rss_mib", "connected"),
        unit=" MiB")
    row("server RSS end / HWM", f"{fmt(g(ks, 'server_rss_mib', 'end'))} / {fmt(g(ks, 'server_rss_mib', 'hwm'))}"
        if ks else None, f"{fmt(g(bs, 'server_rss_mib', 'end'))} / {fmt(g(bs, 'server_rss_mib', 'hwm'))}"
        if bs else None, unit=" MiB")
    row("server CPU (post+drain)", g(ks, "server_cpu_pct"), g(bs, "server_cpu_pct"), unit=" %")
    cost_ratio = ratio(g(ks, "server_cpu_ms_per_1k_deliveries"), g(bs, "server_cpu_ms_per_1k_deliveries"))
    row("server CPU per 1k deliveries", g(ks, "server_cpu_ms_per_1k_deliveries"),
        g(bs, "server_cpu_ms_per_1k_deliveries"), cost_ratio, unit=" ms")
    row("client procs CPU (sum)", g(ks, "client_cpu_pct"), g(bs, "client_cpu_pct"), unit=" %")
    row("harness CPU", g(ks, "harness_cpu_pct"), g(bs, "harness_cpu_pct"), unit=" %")
    row("other processes CPU (noise)", g(ks, "other_processes_cpu_pct"), g(bs, "other_processes_cpu_pct"), unit=" %")

    def errs(s: dict[str, Any] | None) -> str | None:
        if s is None:
            return None
        e: Counter[str] = Counter()
        e.update(s["connect_errors"])
        e.update(s["client_errors"])
        e.update({f"close {c}": v for c, v in s["server_close_codes"].items()})
        e.update({f"HTTP {c}": v for c, v in s["post_status"].items() if c != "201"})
        return ", ".join(f"{k}={v}" for k, v in sorted(e.items())) or "none"

    row("errors", errs(ks), errs(bs))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(12, *(len(r[1]) for r in rows))
    w2 = max(12, *(len(r[2]) for r in rows))
    lines.append(f"{'':<{w0}}  {'kakehashi':>{w1}}  {'bare aiohttp':>{w2}}  {'ours/bare':>9}")
    for label, kv, bv, rv in rows:
        lines.append(f"{label:<{w0}}  {kv:>{w1}}  {bv:>{w2}}  {rv:>9}")

    # Targets: reported, never asserted.
    p99 = g(ks, "latency_ms", "p99")
    held = g(ks, "connections_held", "server")
    targets = {
        "connections_10000": None if ks is None else (args.clients >= 10_000 and held is not None
                                                       and held >= 10_000 and g(ks, "connections_held", "client")
                                                       >= 10_000),
        "p99_under_100ms_at_100_posts_s_room_500": None if p99 is None else (
            p99 < 100 and args.rate >= 100 and args.room_size >= 500
            and (g(ks, "delivery_ratio") or 0) >= 0.999),
        "delivery_rate_at_least_half_of_bare": None if rate_ratio is None else rate_ratio >= 0.5,
    }
    lines.append("targets (reported, not asserted):")
    explain = {
        "connections_10000": "10,000 staff connected and still held at the end",
        "p99_under_100ms_at_100_posts_s_room_500": "p99 delivery < 100 ms at ≥100 posts/s, room ≥500, nothing lost",
        "delivery_rate_at_least_half_of_bare": "deliveries/s ≥ 0.5 × bare",
    }
    for key, ok in targets.items():
        verdict = "n/a" if ok is None else ("MET" if ok else "MISSED")
        if ok is False and key == "connections_10000" and args.clients < 10_000:
            verdict = "n/a (run with --clients 10000)"
        if ok is False and key.startswith("p99") and (args.rate < 100 or args.room_size < 500):
            verdict = "n/a (run at --rate 100 --room-size 500)"
        lines.append(f"  {verdict:<8} {explain[key]}")
    for note in notes + (k.notes if k else []) + (b.notes if b else []):
        lines.append(f"note: {note}")
    if k and k.server_log:
        lines.append("kakehashi server log (WARNING+): " + ", ".join(f"{m} ×{c}" for m, c in k.server_log.items()))
    print("\n".join(lines), flush=True)
    return {"benchmark": "ws_fanout",
            "params": {"clients": args.clients, "room_size": args.room_size, "rate": args.rate,
                       "seconds": args.seconds, "posters": args.posters, "client_procs": args.client_procs,
                       "cpus": cpus, "client_msg_id": not args.no_client_msg_id,
                       "permessage_deflate_offered": args.deflate,
                       "sessions": "inserted directly with sqlite3 (SHA-256 token hash), not via argon2 login"},
            "setup": results.get("setup"), "kakehashi": ks, "bare": bs,
            "ratios": {"delivery_rate": None if rate_ratio is None else round(rate_ratio, 3),
                       "p99_latency": None if p99_ratio is None else round(p99_ratio, 3),
                       "server_cpu_per_delivery": None if cost_ratio is None else round(cost_ratio, 3)},
            "targets": targets}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Kakehashi WebSocket fan-out benchmark (see benchmarks/README.md)")
    p.add_argument("--clients", type=int, default=10_000, help="staff WebSocket connections (default 10000)")
    p.add_argument("--room-size", type=int, default=500, help="members of the project room posted into (default 500)")
    p.add_argument("--rate", type=float, default=100.0, help="posts per second (default 100)")
    p.add_argument("--seconds", type=float, default=20.0, help="posting window (default 20)")
    p.add_argument("--posters", type=int, default=0,
                   help="distinct posting staff (default: enough for ≤2 posts/s each; the server allows 3/s)")
    p.add_argument("--client-procs", type=int, default=2, help="WebSocket client processes (default 2)")
    p.add_argument("--connect-concurrency", type=int, default=64, help="handshakes in flight per client process")
    p.add_argument("--max-inflight", type=int, default=1000,
                   help="HTTP posts in flight at most (beyond this the harness posts late: see poster lag)")
    p.add_argument("--drain-seconds", type=float, default=30.0, help="longest wait for deliveries after posting")
    p.add_argument("--quiet-seconds", type=float, default=3.0, help="stop draining after this long without a delivery")
    p.add_argument("--phases", default="kakehashi,bare", help="comma list: kakehashi,bare (default both)")
    p.add_argument("--bare-bytes", type=int, default=530,
                   help="bare frame size when there is no Kakehashi sample (default 530, a typical message.new)")
    p.add_argument("--no-client-msg-id", action="store_true", help="post without client_msg_id (skips the dedupe step)")
    p.add_argument("--deflate", action="store_true",
                   help="clients offer permessage-deflate as browsers do (costly for both sides; see README)")
    p.add_argument("--server-log-level", default="WARNING", help="LGWAN server log level (default WARNING)")
    p.add_argument("--profile", default="", metavar="PREFIX",
                   help="py-spy record each server during posting into PREFIX-<phase>.txt (collapsed stacks)")
    p.add_argument("--keep", action="store_true", help="keep the run directory (data, logs, latency dumps)")
    args = p.parse_args(argv)
    if args.clients < 1 or args.room_size < 2 or args.rate <= 0 or args.seconds <= 0 or args.client_procs < 1:
        p.error("--clients ≥1, --room-size ≥2, --rate >0, --seconds >0, --client-procs ≥1")
    if args.room_size > args.clients:
        p.error("--room-size cannot exceed --clients")
    if args.posters <= 0:
        args.posters = max(2, math.ceil(args.rate / 2))
    args.posters = min(args.posters, args.room_size)
    if args.rate / args.posters > 3:
        print(f"warning: {args.rate / args.posters:.1f} posts/s per poster exceeds the server's 3/s per person; "
              "expect 429s", file=sys.stderr)
    args.client_procs = min(args.client_procs, args.clients)
    args.phases = {x.strip() for x in args.phases.split(",") if x.strip()}
    if not args.phases <= {"kakehashi", "bare"} or not args.phases:
        p.error("--phases takes kakehashi and/or bare")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    nofile = raise_nofile()
    try:
        import lgwan_server  # noqa: F401
    except ImportError:
        print("lgwan_server is not importable: run with the project's venv python", file=sys.stderr)
        return 2
    run_dir = Path(tempfile.mkdtemp(prefix="kk-bench-"))
    bench = Bench(args, run_dir)
    notes = [f"run directory: {run_dir}" + ("" if args.keep else " (removed at exit; --keep to keep it)")]
    if nofile < 4096:
        notes.append(f"harness RLIMIT_NOFILE is only {nofile}")
    try:
        results = asyncio.run(bench.run())
    except (TimeoutError, HarnessError, RuntimeError, OSError) as exc:
        print(f"harness failure: {exc}", file=sys.stderr)
        traceback.print_exc()
        print(f"logs in {run_dir}", file=sys.stderr)
        bench.cleanup()
        return 1
    except KeyboardInterrupt:
        bench.cleanup()
        return 130
    summary = report(args, results, notes + bench.notes)
    print(json.dumps(summary, ensure_ascii=False, separators=(",", ":")), flush=True)
    if not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
