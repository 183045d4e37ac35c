"""Real signals: SIGTERM shuts down cleanly (sockets told GOING_AWAY); SIGKILL loses nothing acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable

import aiohttp
from lgwan_harness import ClientFactory, Roster, ServerProcess, StaffClient


async def test_sigterm_closes_sockets_with_going_away(make_server: Callable[..., ServerProcess], roster: Roster,
                                                      clients: ClientFactory) -> None:
    server = make_server()
    person = roster.one()
    c = await clients.staff(server, person)
    ws = await c.ws()
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    assert await ws.wait_closed(timeout=8) == aiohttp.WSCloseCode.GOING_AWAY
    code = server.stop(timeout=10)       # already exiting: this only waits
    assert code == 0
    assert time.monotonic() - started < 10
    assert "shutting down" in server.log_text()


async def _post_until_killed(client: StaffClient, room: int, acked: list[int], stop: asyncio.Event) -> None:
    i = 0
    while not stop.is_set():
        try:
            reply = await client.post(f"/api/rooms/{room}/messages", json={"body": f"停電前 {i}"})
        except (aiohttp.ClientError, ConnectionError):
            return
        if reply.status != 201:
            return
        acked.append(reply.data["id"])
        i += 1
        await asyncio.sleep(0.02)   # stay inside the per-person posting rate


async def test_sigkill_loses_nothing_acknowledged(make_server: Callable[..., ServerProcess], roster: Roster,
                                                  clients: ClientFactory) -> None:
    server = make_server()
    alice, bob = roster.take(2)
    a = await clients.staff(server, alice)
    b = await clients.staff(server, bob)
    room = (await a.create_room("障害試験", [bob]))["id"]
    ws = await b.ws()
    resume_from = ws.hello["last_event_id"] if ws.hello else 0

    acked: list[int] = []
    stop = asyncio.Event()
    poster = asyncio.create_task(_post_until_killed(a, room, acked, stop))
    while len(acked) < 15:
        await asyncio.sleep(0.01)
        assert not poster.done(), "poster stopped early"
    assert server.kill() == -signal.SIGKILL         # mid-stream, no shutdown code runs
    stop.set()
    await asyncio.wait_for(poster, 10)
    with contextlib.suppress(Exception):
        await ws.close()

    server.start()      # same data directory, new port
    # Every acknowledged post is there, room seqs have no holes, the file is sound.
    rows = server.query("SELECT id, seq FROM messages WHERE room_id = ? ORDER BY seq", (room,))
    assert set(acked) <= {r[0] for r in rows}
    assert [r[1] for r in rows] == list(range(1, len(rows) + 1))
    assert server.scalar("SELECT last_seq FROM rooms WHERE id = ?", (room,)) == len(rows)
    assert server.scalar("PRAGMA integrity_check") == "ok"

    # Sessions survive the restart; the resume replays every message from before the kill exactly once.
    b2 = clients.new(server, bob)
    b2.use_token(b.token or "", b.csrf)
    ws2 = await b2.ws(since=resume_from)
    replayed = [f["data"]["id"] for f in ws2.replayed if f["type"] == "message.new" and f["room_id"] == room]
    assert replayed == [r[0] for r in rows]
    # Work continues where it stopped: the next message takes the next seq.
    a2 = clients.new(server, alice)
    a2.use_token(a.token or "", a.csrf)
    after = await a2.say(room, "復旧しました")
    assert after["seq"] == len(rows) + 1
    frame = await ws2.wait_for(lambda f: f.get("type") == "message.new" and f["data"]["id"] == after["id"])
    assert frame["id"] > max(f["id"] for f in ws2.replayed)
    # The audit chain is intact across the crash.
    admin = await clients.admin(server)
    verified = (await admin.post("/api/admin/audit/verify", expect=200)).data
    assert verified["ok"] is True, verified
