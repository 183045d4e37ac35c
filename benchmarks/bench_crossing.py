"""Crossing latency and throughput of the signed queue between the two tiers, next to a bare baseline.

Both tiers run as real processes on 127.0.0.1 (the e2e harness: keys, configs, seeding). One
guest is enrolled and approved in a ``guests`` room; a staff member and the guest each hold a
WebSocket. Measured in the same run:

* ``bare``: a loopback HTTP round trip to the bare aiohttp server (benchmarks/bare_broadcast.py),
  and its post → WebSocket latency with one subscriber — what aiohttp alone costs.
* ``latency``: guest post (relay HTTP) → staff WebSocket (LGWAN), and staff post (LGWAN HTTP) →
  guest WebSocket (relay), at ``--rate`` messages per second each way at once, for ``--seconds``.
  The send time travels in the body; latency = arrival on the other tier's socket − send. Staff
  posts carry a ``client_msg_id`` as the staff UI's do (``--no-client-msg-id`` to leave it out).
* ``queue``: the time each envelope of the latency run spent between the sender's outbox (row
  written, in the post's transaction) and the receiver's inbox record (applied), from the two
  databases; and both tiers' ``/healthz`` sampled every 100 ms: the age of the oldest envelope
  not yet confirmed by the other side (target: never above 1 s).
* ``cpu``: CPU milliseconds per crossing message of each tier and of this harness, and the
  harness's own event-loop lag (a late harness inflates every latency it measures).
* ``throughput``: ``--burst`` posts each way as fast as the clients can send them (32 in flight per
  side); envelopes applied per second on the receiving tiers, from the first to the last.

Figures are reported, never asserted; ``targets`` says MET or MISSED. Target from issue 5: p99 <
100 ms at 200 messages/s each way, with no message older than 1 s in the queue at any time.

    python benchmarks/bench_crossing.py --rate 200 --seconds 20 --burst 3000 [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import HOST, percentile, proc_cpu_seconds, stop_process, wait_for_port_file  # noqa: E402

from shared.timeutil import parse_iso  # noqa: E402
from tests.e2e.harness import ApiError, Guest, Staff, query, start_two_tiers, wait_for  # noqa: E402

MARK = "bench t="


def summary(values_ms: list[float]) -> dict[str, Any]:
    values = sorted(values_ms)
    return {"n": len(values), "p50_ms": _r(percentile(values, 50)), "p99_ms": _r(percentile(values, 99)),
            "max_ms": _r(values[-1] if values else None)}


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def stamp(side: str, n: int) -> str:
    return f"{MARK}{time.time_ns()} {side} n={n}"


def arrival(body: str) -> float | None:
    """Milliseconds since the send time carried in ``body``."""
    if not body.startswith(MARK):
        return None
    sent = int(body[len(MARK):].split(" ", 1)[0])
    return (time.time_ns() - sent) / 1e6


# --- baseline ---------------------------------------------------------------------------------------

def spawn_bare(port_file: Path) -> tuple[subprocess.Popen[bytes], int]:
    """The bare aiohttp server (benchmarks/bare_broadcast.py) and its port."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "bare_broadcast.py"), "--port", "0",
                             "--port-file", str(port_file)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, wait_for_port_file(port_file, proc, 20)


async def bare_baseline(tmp: Path, requests: int) -> dict[str, Any]:
    proc, port = await asyncio.to_thread(spawn_bare, tmp / "bare.port")
    try:
        base = f"http://{HOST}:{port}"
        rtt, ws_lat = [], []
        async with aiohttp.ClientSession() as http:
            for _ in range(requests):
                t0 = time.perf_counter()
                async with http.get(base + "/healthz") as resp:
                    await resp.read()
                rtt.append((time.perf_counter() - t0) * 1000)
            async with http.ws_connect(base + "/ws?sub=1") as ws:
                await ws.receive()      # hello
                for n in range(requests):
                    body = stamp("bare", n)
                    async with http.post(base + "/broadcast", data=body.encode()) as resp:
                        await resp.read()
                    msg = await ws.receive()
                    ws_lat.append(arrival(msg.data) or 0.0)
        return {"http_round_trip": summary(rtt), "post_to_websocket": summary(ws_lat)}
    finally:
        stop_process(proc)


# --- the two tiers ------------------------------------------------------------------------------------

async def setup(tmp: Path) -> tuple[Any, Staff, Guest, int]:
    tiers = await start_two_tiers(tmp, lgwan_extra="", relay_extra="")
    room = tiers.seed.rooms["guests-room"]
    staff = Staff(tiers.lgwan_url)
    await staff.login("sato")
    invite = await staff.call("POST", f"/api/rooms/{room}/guests", {"display_name": "ベンチ 太郎", "affiliation": "架橋病院"})
    guest = Guest(tiers.relay_url)

    async def ready() -> bool:
        try:
            await guest.call("POST", "/api/enrol/info", {"token": invite["invite_token"]})
            return True
        except ApiError:
            return False

    await wait_for(ready)
    await guest.enrol(invite["invite_token"], "bench-guest")

    async def enrolled() -> bool:
        return (await staff.call("GET", f"/api/guests/{invite['guest']['id']}"))["status"] == "enrolled"

    await wait_for(enrolled)
    await staff.call("POST", f"/api/guests/{invite['guest']['id']}/approve")
    await guest.login()

    async def sees() -> bool:
        try:
            return bool((await guest.call("GET", "/api/rooms"))["rooms"])
        except ApiError:
            return False

    await wait_for(sees)
    return tiers, staff, guest, room


async def listen(ws: aiohttp.ClientWebSocketResponse, side: str, out: list[float]) -> None:
    """Latencies of the other side's marked posts arriving on this socket."""
    async for msg in ws:
        if msg.type != aiohttp.WSMsgType.TEXT or MARK not in msg.data:
            continue
        event = json.loads(msg.data)
        if event.get("type") != "message.new":
            continue
        body = (event.get("data") or event.get("message") or {}).get("body", "")
        if side not in body:
            continue
        latency = arrival(body)
        if latency is not None:
            out.append(latency)


async def health_sampler(urls: dict[str, str], stop: asyncio.Event, ages: dict[str, list[float]]) -> None:
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            for name, url in urls.items():
                try:
                    async with http.get(url) as resp:
                        data = await resp.json()
                    link = data.get("bridge") or data.get("link") or {}
                    ages[name].append(float(link.get("outbound", {}).get("lag_seconds", 0.0)))
                except (aiohttp.ClientError, ValueError):
                    pass
            await asyncio.sleep(0.1)


async def loop_lag(stop: asyncio.Event, out: list[float], every: float = 0.005) -> None:
    """How late this process's event loop wakes a sleeper (ms): the harness's own delay."""
    while not stop.is_set():
        t0 = time.perf_counter()
        await asyncio.sleep(every)
        out.append((time.perf_counter() - t0 - every) * 1000)


async def paced(rate: float, seconds: float, send: Any) -> int:
    """Start one send every 1/rate seconds (not waiting for the previous one), for ``seconds``."""
    interval, start, n, tasks = 1.0 / rate, time.perf_counter(), 0, set()
    while time.perf_counter() - start < seconds:
        n += 1
        task = asyncio.create_task(send(n))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        delay = start + n * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    await asyncio.gather(*tasks, return_exceptions=True)
    return n


async def latency_run(staff: Staff, guest: Guest, room: int, rate: float, seconds: float,
                      health: dict[str, str], client_msg_id: bool) -> dict[str, Any]:
    to_staff, to_guest, lag = [], [], []
    staff_ws, guest_ws = await staff.ws("/api/ws"), await guest.ws("/api/ws")
    listeners = [asyncio.create_task(listen(staff_ws, "guest", to_staff)),
                 asyncio.create_task(listen(guest_ws, "staff", to_guest))]
    stop = asyncio.Event()
    ages: dict[str, list[float]] = {name: [] for name in health}
    sampler = asyncio.create_task(health_sampler(health, stop, ages))
    lagger = asyncio.create_task(loop_lag(stop, lag))
    errors = {"guest": 0, "staff": 0}

    async def guest_send(n: int) -> None:
        try:
            await guest.post(room, stamp("guest", n), f"b{n}")
        except (ApiError, aiohttp.ClientError):
            errors["guest"] += 1

    async def staff_send(n: int) -> None:
        try:
            await staff.post(room, stamp("staff", n), f"s{n}" if client_msg_id else None)
        except (ApiError, aiohttp.ClientError):
            errors["staff"] += 1

    sent = await asyncio.gather(paced(rate, seconds, guest_send), paced(rate, seconds, staff_send))
    await asyncio.sleep(2.0)     # let the last ones arrive
    stop.set()
    await asyncio.gather(sampler, lagger)
    for task in listeners:
        task.cancel()
    await staff_ws.close()
    await guest_ws.close()
    return {"rate_per_direction": rate, "seconds": seconds,
            "guest_to_staff_ws": {**summary(to_staff), "sent": sent[0], "errors": errors["guest"]},
            "staff_to_guest_ws": {**summary(to_guest), "sent": sent[1], "errors": errors["staff"]},
            "max_queue_age_s": {name: round(max(v, default=0.0), 3) for name, v in ages.items()},
            "harness_loop_lag": summary(lag)}


def queue_times(tiers: Any, before: dict[str, int], after: dict[str, int]) -> dict[str, Any]:
    """Outbox row written → applied on the other tier (its inbox record), for the envelopes the latency
    run queued; from the two databases (millisecond timestamps, one clock)."""
    def crossing(out_db: Path, out_sql: str, in_db: Path, in_sql: str, first: int, last: int) -> dict[str, Any]:
        queued = dict(query(out_db, out_sql, (first, last)))
        applied = dict(query(in_db, in_sql, (first, last)))
        return summary([(parse_iso(applied[seq]) - parse_iso(at)).total_seconds() * 1000
                        for seq, at in queued.items() if seq in applied])

    return {
        "relay_to_lgwan": crossing(tiers.relay_db, "SELECT seq, created_at FROM outbox WHERE seq > ? AND seq <= ?",
                                   tiers.lgwan_db, "SELECT seq, received_at FROM bridge_inbox WHERE seq > ? AND seq <= ?",
                                   before["relay"], after["relay"]),
        "lgwan_to_relay": crossing(tiers.lgwan_db, "SELECT seq, created_at FROM bridge_outbox WHERE seq > ? AND seq <= ?",
                                   tiers.relay_db, "SELECT seq, received_at FROM inbox WHERE seq > ? AND seq <= ?",
                                   before["lgwan"], after["lgwan"])}


def out_last_seqs(tiers: Any) -> dict[str, int]:
    return {"lgwan": int(query(tiers.lgwan_db, "SELECT out_last_seq FROM bridge_state")[0][0]),
            "relay": int(query(tiers.relay_db, "SELECT out_last_seq FROM link_state")[0][0])}


def ratios(report: dict[str, Any]) -> dict[str, Any]:
    """Crossing latency as a multiple of the bare post → WebSocket latency of the same run."""
    bare = report["bare"]["post_to_websocket"]
    out: dict[str, Any] = {}
    for way in ("guest_to_staff_ws", "staff_to_guest_ws"):
        ours = report["latency"][way]
        out[way] = {q: round(ours[q] / bare[q], 1) if ours[q] and bare[q] else None for q in ("p50_ms", "p99_ms")}
    return out


def targets(report: dict[str, Any], rate: float) -> dict[str, str]:
    lat = report["latency"]
    p99 = [lat[w]["p99_ms"] for w in ("guest_to_staff_ws", "staff_to_guest_ws")]
    delivered = all(lat[w]["n"] == lat[w]["sent"] and not lat[w]["errors"]
                    for w in ("guest_to_staff_ws", "staff_to_guest_ws"))
    verdict = {"p99_under_100ms_at_200_per_s_each_way": rate >= 200 and delivered
               and all(v is not None and v < 100 for v in p99),
               "queue_age_under_1s": max(lat["max_queue_age_s"].values(), default=0.0) < 1.0}
    return {k: "MET" if v else "MISSED" for k, v in verdict.items()}


async def throughput_run(tiers: Any, staff: Staff, guest: Guest, room: int, burst: int) -> dict[str, Any]:
    """Post ``burst`` each way with 32 in flight per side; rate at which the other tier applies them."""
    def lgwan_applied() -> int:
        return int(query(tiers.lgwan_db, "SELECT in_applied_seq FROM bridge_state")[0][0])

    def relay_applied() -> int:
        return int(query(tiers.relay_db, "SELECT in_applied_seq FROM link_state")[0][0])

    start_l, start_r = lgwan_applied(), relay_applied()
    gate = asyncio.Semaphore(32)

    async def one(client: Any, n: int) -> None:
        async with gate:
            if isinstance(client, Guest):
                await client.post(room, f"throughput g {n}", f"t{n}")
            else:
                await client.post(room, f"throughput s {n}")

    t0 = time.perf_counter()
    await asyncio.gather(*(one(guest, n) for n in range(burst)), *(one(staff, n) for n in range(burst)))
    posted = time.perf_counter() - t0
    # Each staff post is one envelope to the relay; each guest post one to LGWAN (plus its echo back).
    await wait_for(lambda: lgwan_applied() - start_l >= burst and relay_applied() - start_r >= 2 * burst,
                   timeout=300, interval=0.05)
    done = time.perf_counter() - t0
    envelopes = (lgwan_applied() - start_l) + (relay_applied() - start_r)
    return {"posts_each_way": burst, "seconds_to_post": round(posted, 2), "seconds_until_applied": round(done, 2),
            "envelopes": envelopes, "envelopes_per_second": round(envelopes / done, 1),
            "posts_per_second_each_way": round(burst / done, 1)}


def start_profilers(prefix: str, pids: dict[str, int], seconds: float) -> list[tuple[subprocess.Popen[bytes], Path]]:
    """``py-spy record`` on each tier for ``seconds`` (collapsed stacks in PREFIX-<tier>.txt)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("--profile: py-spy not found (.venv/bin/pip install py-spy)", file=sys.stderr)
        return []
    running = []
    for name, pid in pids.items():
        out = Path(f"{prefix}-{name}.txt").resolve()
        cmd = [spy, "record", "--pid", str(pid), "--duration", str(int(seconds) + 1), "--rate", "200",
               "--format", "raw", "--output", str(out), "--nonblocking", "--threads"]
        running.append((subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out))
    return running


async def stop_profilers(running: list[tuple[subprocess.Popen[bytes], Path]]) -> list[str]:
    written = []
    for proc, out in running:
        for _ in range(200):            # at most 20 s after the window it was asked to record
            if proc.poll() is not None:
                break
            await asyncio.sleep(0.1)
        stop_process(proc)
        if out.exists():
            written.append(str(out))
    return written


def text_summary(r: dict[str, Any]) -> str:
    """A few lines for people; the JSON that follows has everything."""
    lat, bare, q = r["latency"], r["bare"], r["latency"]["queue_ms"]
    lines = [f"load average {r['host']['load_average_before'][0]:.2f} before, {r['host']['load_average_after'][0]:.2f} after"
             f" ({r['host']['cpus']} CPUs)",
             f"bare: HTTP round trip p50/p99 {bare['http_round_trip']['p50_ms']}/{bare['http_round_trip']['p99_ms']} ms,"
             f" post→WebSocket p50/p99 {bare['post_to_websocket']['p50_ms']}/{bare['post_to_websocket']['p99_ms']} ms"]
    for way, label, queue in (("guest_to_staff_ws", "guest→staff", "relay_to_lgwan"),
                              ("staff_to_guest_ws", "staff→guest", "lgwan_to_relay")):
        w, ratio = lat[way], r["ratios_to_bare"][way]
        lines.append(f"{label} at {lat['rate_per_direction']:g}/s: p50/p99/max {w['p50_ms']}/{w['p99_ms']}/{w['max_ms']} ms"
                     f" ({ratio['p50_ms']}×/{ratio['p99_ms']}× bare), {w['n']}/{w['sent']} arrived;"
                     f" in the queue p50/p99 {q[queue]['p50_ms']}/{q[queue]['p99_ms']} ms")
    lines.append(f"max queue age: {lat['max_queue_age_s']} s; CPU ms per message: {lat['cpu_ms_per_message']};"
                 f" harness loop lag p99 {lat['harness_loop_lag']['p99_ms']} ms")
    t = r["throughput"]
    lines.append(f"throughput: {t['envelopes_per_second']} envelopes/s ({t['posts_per_second_each_way']} posts/s each way)")
    lines.append("targets: " + ", ".join(f"{k} {v}" for k, v in r["targets"].items()))
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="messages per second each way")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--burst", type=int, default=3000, help="posts each way for the throughput run")
    parser.add_argument("--bare-requests", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--no-client-msg-id", action="store_true", help="staff posts without a client_msg_id")
    parser.add_argument("--profile", default="", metavar="PREFIX",
                        help="py-spy record both tiers during the latency run into PREFIX-lgwan.txt / PREFIX-relay.txt")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kk-bench-") as tmp:
        root = Path(tmp)
        report: dict[str, Any] = {"host": {"cpus": os.cpu_count(), "load_average_before": os.getloadavg()}}
        report["bare"] = await bare_baseline(root, args.bare_requests)
        (root / "tiers").mkdir()
        tiers, staff, guest, room = await setup(root / "tiers")
        try:
            health = {"lgwan": f"{tiers.lgwan_url}/healthz", "relay": f"{tiers.relay_url}/healthz"}
            pids = {"lgwan": tiers.lgwan.pid, "relay": tiers.relay.pid, "harness": os.getpid()}
            before = {k: proc_cpu_seconds(v) or 0.0 for k, v in pids.items()}
            seqs = out_last_seqs(tiers)
            profilers = start_profilers(args.profile, {"lgwan": pids["lgwan"], "relay": pids["relay"]},
                                        args.seconds) if args.profile else []
            t0 = time.perf_counter()
            report["latency"] = await latency_run(staff, guest, room, args.rate, args.seconds, health,
                                                  not args.no_client_msg_id)
            wall = time.perf_counter() - t0
            used = {k: (proc_cpu_seconds(v) or 0.0) - before[k] for k, v in pids.items()}
            messages = sum(report["latency"][w]["sent"] for w in ("guest_to_staff_ws", "staff_to_guest_ws"))
            report["latency"]["cpu_share"] = {k: round(v / wall, 2) for k, v in used.items()}
            report["latency"]["cpu_ms_per_message"] = {k: round(1000 * v / max(messages, 1), 2) for k, v in used.items()}
            report["latency"]["queue_ms"] = queue_times(tiers, seqs, out_last_seqs(tiers))
            report["ratios_to_bare"] = ratios(report)
            if profilers:
                report["profiles"] = await stop_profilers(profilers)
            report["throughput"] = await throughput_run(tiers, staff, guest, room, args.burst)
            report["targets"] = targets(report, args.rate)
        finally:
            await staff.close()
            await guest.close()
            tiers.stop()
    report["host"]["load_average_after"] = os.getloadavg()
    print(text_summary(report), file=sys.stderr)
    print(json.dumps(report, ensure_ascii=False, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    (ROOT / "tests").exists() or sys.exit("run from a checkout: the harness lives in tests/e2e")
    asyncio.run(main())
