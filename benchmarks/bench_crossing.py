"""Crossing latency and throughput of the signed queue between the two tiers, next to a bare baseline.

Both tiers run as real processes on 127.0.0.1 (the e2e harness: keys, configs, seeding). One
guest is enrolled and approved in a ``guests`` room; a staff member and the guest each hold a
WebSocket. Measured in the same run:

* ``bare``: a loopback HTTP round trip to the bare aiohttp server (benchmarks/bare_broadcast.py),
  and its post → WebSocket latency with one subscriber — what aiohttp alone costs.
* ``latency``: guest post (relay HTTP) → staff WebSocket (LGWAN), and staff post (LGWAN HTTP) →
  guest WebSocket (relay), at ``--rate`` messages per second each way at once, for ``--seconds``.
  The send time travels in the body; latency = arrival on the other tier's socket − send.
* ``queue age``: both tiers' ``/healthz`` sampled every 100 ms: the age of the oldest envelope
  not yet confirmed by the other side (target: never above 1 s).
* ``throughput``: ``--burst`` posts each way as fast as the clients can send them; envelopes
  applied per second on the receiving tier, from the first to the last.

Figures are reported, never asserted. Target from issue 5: p99 < 100 ms at 200 messages/s each way.

    python benchmarks/bench_crossing.py --rate 200 --seconds 20 --burst 3000 [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
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

from tests.e2e.harness import ApiError, Guest, Staff, start_two_tiers, wait_for  # noqa: E402

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
                      health: dict[str, str]) -> dict[str, Any]:
    to_staff, to_guest = [], []
    staff_ws, guest_ws = await staff.ws("/api/ws"), await guest.ws("/api/ws")
    listeners = [asyncio.create_task(listen(staff_ws, "guest", to_staff)),
                 asyncio.create_task(listen(guest_ws, "staff", to_guest))]
    stop = asyncio.Event()
    ages: dict[str, list[float]] = {name: [] for name in health}
    sampler = asyncio.create_task(health_sampler(health, stop, ages))
    errors = {"guest": 0, "staff": 0}

    async def guest_send(n: int) -> None:
        try:
            await guest.post(room, stamp("guest", n), f"b{n}")
        except (ApiError, aiohttp.ClientError):
            errors["guest"] += 1

    async def staff_send(n: int) -> None:
        try:
            await staff.post(room, stamp("staff", n))
        except (ApiError, aiohttp.ClientError):
            errors["staff"] += 1

    sent = await asyncio.gather(paced(rate, seconds, guest_send), paced(rate, seconds, staff_send))
    await asyncio.sleep(2.0)     # let the last ones arrive
    stop.set()
    await sampler
    for task in listeners:
        task.cancel()
    await staff_ws.close()
    await guest_ws.close()
    return {"rate_per_direction": rate, "seconds": seconds,
            "guest_to_staff_ws": {**summary(to_staff), "sent": sent[0], "errors": errors["guest"]},
            "staff_to_guest_ws": {**summary(to_guest), "sent": sent[1], "errors": errors["staff"]},
            "max_queue_age_s": {name: round(max(v, default=0.0), 3) for name, v in ages.items()}}


async def throughput_run(tiers: Any, staff: Staff, guest: Guest, room: int, burst: int) -> dict[str, Any]:
    """Post ``burst`` each way with 32 in flight per side; rate at which the other tier applies them."""
    from tests.e2e.harness import query

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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="messages per second each way")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--burst", type=int, default=3000, help="posts each way for the throughput run")
    parser.add_argument("--bare-requests", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kk-bench-") as tmp:
        root = Path(tmp)
        import os
        report: dict[str, Any] = {"host": {"cpus": os.cpu_count(), "load_average_before": os.getloadavg()}}
        report["bare"] = await bare_baseline(root, args.bare_requests)
        (root / "tiers").mkdir()
        tiers, staff, guest, room = await setup(root / "tiers")
        try:
            health = {"lgwan": f"{tiers.lgwan_url}/healthz", "relay": f"{tiers.relay_url}/healthz"}
            pids = {"lgwan": tiers.lgwan.pid, "relay": tiers.relay.pid, "client": __import__("os").getpid()}
            before = {k: proc_cpu_seconds(v) or 0.0 for k, v in pids.items()}
            t0 = time.perf_counter()
            report["latency"] = await latency_run(staff, guest, room, args.rate, args.seconds, health)
            wall = time.perf_counter() - t0
            report["latency"]["cpu_share"] = {k: round(((proc_cpu_seconds(v) or 0.0) - before[k]) / wall, 2)
                                              for k, v in pids.items()}
            report["throughput"] = await throughput_run(tiers, staff, guest, room, args.burst)
        finally:
            await staff.close()
            await guest.close()
            tiers.stop()
    report["host"]["load_average_after"] = __import__("os").getloadavg()
    print(json.dumps(report, ensure_ascii=False, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    (ROOT / "tests").exists() or sys.exit("run from a checkout: the harness lives in tests/e2e")
    asyncio.run(main())
