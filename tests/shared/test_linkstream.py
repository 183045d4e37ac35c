"""The streaming half of the queue link (shared by both tiers), over a real loopback WebSocket.

Two in-memory sides stand in for the tiers' databases; everything else is the real code: sealing,
verification, windows, batching, acks. The tiers' own sides are exercised end to end in tests/e2e.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from shared import envelope as env
from shared import link
from shared.linkstream import LinkCounters, LinkStream, OutboxFeed, Queued
from shared.signing import KeyRing, Signer, TrustedKey

LGWAN_KEY, RELAY_KEY = Signer.generate(), Signer.generate()


def receipt(direction: str, n: int) -> env.Payload:
    if direction == env.LGWAN:
        return env.ReceiptOut(room_id=1, member="s:1", seq=n)
    return env.ReceiptIn(room_id=1, member="g:1", seq=n)


@dataclass
class MemorySide:
    """A tier whose outbox table and inbox are lists."""

    me: str
    peer: str
    feed: OutboxFeed = field(default_factory=OutboxFeed)
    table: list[Queued] = field(default_factory=list)
    applied: list[env.Envelope] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)
    applied_ids: dict[int, str] = field(default_factory=dict)
    acks: list[int] = field(default_factory=list)
    reads: int = 0
    events: list[str] = field(default_factory=list)

    def queue(self, n: int, *, committed: bool) -> None:
        """``n`` more rows; ``committed`` ones also reach the feed, as Outbox.enqueue's after-commit does."""
        for _ in range(n):
            row = Queued(len(self.table) + 1, env.new_id(), receipt(self.me, len(self.table) + 1))
            self.table.append(row)
            if committed:
                self.feed.committed(row)

    async def outbox_from(self, first_seq: int, limit: int) -> list[Queued]:
        self.reads += 1
        return self.table[first_seq - 1:first_seq - 1 + limit]

    async def mark_acked(self, previous: int, acked: int) -> None:
        self.acks.append(acked)

    async def applied_id(self, seq: int) -> str | None:
        return self.applied_ids.get(seq)

    def batchable(self, envelope: env.Envelope) -> bool:
        return True

    async def apply(self, envelopes: list[env.Envelope]) -> None:
        await asyncio.sleep(0)
        self.applied.extend(envelopes)
        self.batches.append(len(envelopes))
        self.applied_ids.update((e.seq, e.id) for e in envelopes)

    async def consume(self, verdict: link.Verdict, raw: bytes) -> None:
        self.events.append(f"consume:{verdict.code}")

    async def replayed(self, verdict: link.Verdict, raw: bytes, applied: int) -> None:
        self.events.append(f"replay:{verdict.seq}")

    async def refused(self, verdict: link.Verdict, raw: bytes) -> None:
        self.events.append(f"refused:{verdict.code}")

    async def frame_too_large(self) -> None:
        self.events.append("too_large")

    def peer_refused(self, code: str, seq: int | None) -> None:
        self.events.append(f"peer_refused:{code}")


def stream(ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse, side: MemorySide, *, start: int = 1,
           applied: int = 0) -> LinkStream:
    signer, peer_key = (LGWAN_KEY, RELAY_KEY) if side.me == env.LGWAN else (RELAY_KEY, LGWAN_KEY)
    return LinkStream(ws, side, signer=signer, keyring=KeyRing([TrustedKey(peer_key.public_key)]),
                      skew=timedelta(minutes=5), counters=LinkCounters(), start=start, peer_acked=start - 1,
                      applied=applied)


async def linked(lgwan: MemorySide, relay: MemorySide, until: object, *, relay_applied: int = 0,
                 lgwan_start: int = 1) -> tuple[BaseException | None, BaseException | None]:
    """Run one session (LGWAN dials, the relay accepts) until ``until()`` holds or the link ends."""
    relay_result: list[BaseException | None] = []

    async def queue_port(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        try:
            await stream(ws, relay, applied=relay_applied).run()
            relay_result.append(None)
        except (link.LinkError, asyncio.CancelledError) as exc:
            relay_result.append(exc)     # aiohttp cancels the handler once the peer has gone
            if isinstance(exc, asyncio.CancelledError):
                raise
        return ws

    app = web.Application()
    app.router.add_get("/queue", queue_port)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(server.make_url("/queue"))
            task = asyncio.create_task(stream(ws, lgwan, start=lgwan_start).run())
            for _ in range(400):
                if until() or task.done():         # type: ignore[operator]
                    break
                await asyncio.sleep(0.025)
            await ws.close()
            try:
                await task
                lgwan_result: BaseException | None = None
            except link.LinkError as exc:
                lgwan_result = exc
            for _ in range(200):                   # the relay's session ends once it sees the close
                if relay_result:
                    break
                await asyncio.sleep(0.025)
    finally:
        await server.close()
    return lgwan_result, relay_result[0] if relay_result else None


def test_the_feed_serves_only_what_it_knows_in_order() -> None:
    feed = OutboxFeed(limit=4)
    assert feed.take(1, 10) is None                  # nothing seen yet: read the table
    rows = [Queued(seq, env.new_id(), receipt(env.RELAY, seq)) for seq in range(1, 7)]
    for row in rows[:3]:
        feed.committed(row)
    assert feed.take(1, 2) == rows[:2]
    assert feed.take(3, 10) == rows[2:3]
    assert feed.take(4, 10) == []                    # caught up: nothing newer was committed
    for row in rows[3:]:
        feed.committed(row)
    assert feed.take(2, 10) is None                  # behind the feed (a reconnect): read the table
    assert feed.take(4, 1) == rows[3:4]
    feed.reset()                                     # the outbox was renumbered
    assert feed.take(5, 10) is None
    for row in rows:                                 # more than the feed holds: the oldest are dropped
        feed.committed(row)
    assert feed.take(1, 10) is None and feed.take(3, 10) == rows[2:]


def test_the_feed_keeps_a_bounded_number_of_bytes() -> None:
    feed = OutboxFeed(limit=100, max_bytes=100_000)
    chunks = [Queued(seq, env.new_id(), receipt(env.RELAY, seq), 40_000) for seq in range(1, 5)]
    for row in chunks:
        feed.committed(row)
    assert feed.take(1, 10) is None                  # the first two went for space
    assert feed.take(3, 10) == chunks[2:] and feed.take(5, 10) == []


async def test_both_directions_cross_in_order_beyond_the_window() -> None:
    lgwan, relay = MemorySide(env.LGWAN, env.RELAY), MemorySide(env.RELAY, env.LGWAN)
    lgwan.queue(link.WINDOW + 188, committed=False)   # a backlog from before the session: read from the table
    relay.queue(5, committed=True)

    def done() -> bool:
        if len(relay.applied) == link.WINDOW + 188 and len(lgwan.table) < link.WINDOW + 400:
            lgwan.queue(212, committed=True)          # committed during the session: taken from the feed
        return len(relay.applied) == len(lgwan.table) == link.WINDOW + 400 and len(lgwan.applied) == 5

    lgwan_error, _ = await linked(lgwan, relay, done)   # the relay's handler is cancelled as LGWAN hangs up
    assert lgwan_error is None
    assert [e.seq for e in relay.applied] == list(range(1, link.WINDOW + 401))
    assert [e.id for e in relay.applied] == [row.envelope_id for row in lgwan.table]
    assert [e.payload for e in relay.applied] == [row.payload for row in lgwan.table]
    assert [e.seq for e in lgwan.applied] == [1, 2, 3, 4, 5] and relay.reads <= 1
    assert max(relay.batches) <= 128 and lgwan.acks[-1] == link.WINDOW + 400   # recorded as the link ended
    assert relay.acks[-1] == 5


async def test_a_resent_envelope_is_acknowledged_and_a_rewind_closes_the_link() -> None:
    lgwan, relay = MemorySide(env.LGWAN, env.RELAY), MemorySide(env.RELAY, env.LGWAN)
    lgwan.queue(6, committed=False)
    relay.applied_ids = {seq: row.envelope_id for seq, row in enumerate(lgwan.table[:3], start=1)}
    # The relay applied 1-3 already; LGWAN resends from 1 (it missed the ack): replays, then 4-6.
    lgwan_error, _ = await linked(lgwan, relay, lambda: len(relay.applied) == 3, relay_applied=3)
    assert lgwan_error is None
    assert relay.events == ["replay:1", "replay:2", "replay:3"] and [e.seq for e in relay.applied] == [4, 5, 6]
    assert lgwan.acks[-1] == 6
    # Another envelope claiming seq 2: refused, audited, and the link closes with the reject code.
    relay.applied_ids[2] = env.new_id()
    lgwan_error, relay_error = await linked(lgwan, relay, lambda: False, relay_applied=6, lgwan_start=2)
    assert relay.events[-1] == "refused:rewind" and lgwan.events[-1] == "peer_refused:rewind"
    assert relay_error is not None and relay.applied[-1].seq == 6          # nothing after the refusal
    assert isinstance(lgwan_error, link.LinkError) and lgwan_error.code == "relay_rejected"
