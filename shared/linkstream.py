"""One authenticated queue-link session, both directions at once: the part both tiers share.

The tiers differ in who connects (the LGWAN dialler opens the WebSocket; the relay only accepts
it: ``shared/link.py`` has the handshake) and in what an envelope does to their database. The rest
is here, and nothing here opens a connection: ``LinkStream`` sends the durable outbox in seq
order with at most ``link.WINDOW`` envelopes unacknowledged, receives envelopes, verifies them
(``link.judge``), applies each run of good ones in one transaction with their inbox records, and
exchanges cumulative acks. A tier plugs in through ``LinkSide``.

``OutboxFeed`` hands rows a tier has just committed to its outbox to the sender in memory, so
the sender neither re-reads nor re-parses what it was just told about; the table stays the
source of truth and the sender reads it for anything the feed does not hold (a backlog, a
reconnect, a renumbered outbox).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import aiohttp
from aiohttp import WSMsgType, web

from . import envelope as env
from . import link
from .limits import MAX_ENVELOPE_BYTES
from .signing import KeyRing, Signer
from .tasks import finish

# A frame up to twice the envelope limit still reaches the envelope check (and its audited
# "too_large" refusal); anything bigger is cut off by aiohttp itself (close 1009), also audited.
MAX_FRAME_BYTES = 2 * MAX_ENVELOPE_BYTES
HEARTBEAT_SECONDS = 10.0
ACK_PERSIST_INTERVAL = 0.5     # the peer's acks are recorded at most this often (and when the session ends)
MAX_BATCH = 128                # envelopes taken at once by the applier when a backlog has built up
SEND_BATCH = 256               # outbox rows read at once by the sender
FEED_BYTES = 4 * 1024 * 1024   # payload bytes an OutboxFeed keeps in memory at most
_SEND_ERRORS = (ConnectionResetError, RuntimeError, aiohttp.ClientError)

Socket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


@dataclass(frozen=True)
class Queued:
    """One outbox row as the sender needs it: sealed afresh (signed, timestamped) on every send."""

    seq: int
    envelope_id: str
    payload: env.Payload
    size: int = 0               # bytes of its stored JSON (what the feed may hold is bounded)


class OutboxFeed:
    """Rows just committed to a tier's outbox, in seq order, and the sender's wake-up.

    ``committed`` and ``reset`` are after-commit callbacks (``Database.after_commit``), so the feed
    only ever holds committed rows, in commit order, which is seq order: the single writer numbers
    the rows inside its transaction. Whatever empties or renumbers the outbox calls ``reset`` the
    same way, before the rows it queues itself. The feed is bounded (rows and bytes); what it drops
    (an outage, a backlog of file chunks) is read from the table instead.
    """

    def __init__(self, limit: int = 2 * link.WINDOW, max_bytes: int = FEED_BYTES) -> None:
        self.wake = asyncio.Event()
        self._rows: deque[Queued] = deque()
        self._bytes = 0
        self._limit, self._max_bytes = limit, max_bytes
        self._last: int | None = None      # the newest seq committed since the start or the last reset

    def committed(self, row: Queued) -> None:
        self._rows.append(row)
        self._bytes += row.size
        while len(self._rows) > self._limit or (self._bytes > self._max_bytes and len(self._rows) > 1):
            self._bytes -= self._rows.popleft().size
        self._last = row.seq
        self.wake.set()

    def reset(self) -> None:
        self._rows.clear()
        self._bytes = 0
        self._last = None
        self.wake.set()

    def take(self, first_seq: int, limit: int) -> list[Queued] | None:
        """Consecutive rows from ``first_seq`` on. ``[]`` when nothing from there on has been committed
        (every commit passes through here); None when the feed cannot tell: read the table."""
        rows = self._rows
        while rows and rows[0].seq < first_seq:
            self._bytes -= rows.popleft().size
        if not rows:
            return [] if self._last == first_seq - 1 else None
        if rows[0].seq != first_seq:
            return None      # dropped for space, or committed before the feed started
        taken: list[Queued] = []
        while rows and len(taken) < limit and rows[0].seq == first_seq + len(taken):
            taken.append(rows.popleft())
            self._bytes -= taken[-1].size
        return taken


class LinkSide(Protocol):
    """What a tier supplies to its link sessions."""

    @property
    def peer(self) -> str:
        """Who sends to us: ``env.LGWAN`` or ``env.RELAY``."""

    @property
    def feed(self) -> OutboxFeed:
        """This tier's outbox feed (the sender's wake-up and the rows just committed)."""

    async def outbox_from(self, first_seq: int, limit: int) -> list[Queued]:
        """Outbox rows from ``first_seq`` on, in order (a reader connection)."""

    async def mark_acked(self, previous: int, acked: int) -> None:
        """Record, in its own transaction, that the peer applied everything up to ``acked``."""

    async def applied_id(self, seq: int) -> str | None:
        """The id of the envelope applied here at ``seq`` (tells a replay from a rewind)."""

    def batchable(self, envelope: env.Envelope) -> bool:
        """Whether ``envelope`` may share a transaction with the envelopes around it."""

    async def apply(self, envelopes: list[env.Envelope]) -> None:
        """Apply verified, consecutive envelopes and their inbox records in one transaction."""

    async def consume(self, verdict: link.Verdict, raw: bytes) -> None:
        """Record and audit a signed, in-sequence envelope whose payload breaks the schema."""

    async def replayed(self, verdict: link.Verdict, raw: bytes, applied: int) -> None:
        """Audit an envelope that was already applied (it is acknowledged again, nothing else)."""

    async def refused(self, verdict: link.Verdict, raw: bytes) -> None:
        """Audit an envelope that cannot be trusted or is out of order (the link closes next)."""

    async def frame_too_large(self) -> None:
        """Audit a frame aiohttp cut off for its size."""

    def peer_refused(self, code: str, seq: int | None) -> None:
        """The peer sent a ``reject`` frame (it closes the link next)."""


@dataclass
class LinkCounters:
    """Envelopes sent and received over all sessions (``/healthz``)."""

    sent: int = 0
    received: int = 0


class LinkStream:
    """Both directions of one authenticated session, from the handshake's resume points to the close.

    ``peer_acked`` is the highest seq the peer confirmed (``/healthz`` reads it), ``applied`` the
    highest seq applied here; both start from the handshake.
    """

    def __init__(self, ws: Socket, side: LinkSide, *, signer: Signer, keyring: KeyRing, skew: timedelta,
                 counters: LinkCounters, start: int, peer_acked: int, applied: int) -> None:
        self.ws = ws
        self.side = side
        self.signer = signer
        self.keyring = keyring
        self.skew = skew
        self.counters = counters
        self.start = start
        self.peer_acked = peer_acked
        self.applied = applied
        self._persisted_ack = peer_acked
        self._acked = asyncio.Event()      # an ack arrived: the sender's window may open
        self._ack_due = asyncio.Event()    # something was applied here: tell the peer

    async def run(self) -> None:
        """Send, receive and apply at once; the first of them to end ends the session. The peer's
        last ack is recorded on the way out, whatever ended it."""
        frames: asyncio.Queue[bytes] = asyncio.Queue(maxsize=2 * link.WINDOW)
        main = [asyncio.create_task(self._receive_loop(frames)), asyncio.create_task(self._apply_loop(frames)),
                asyncio.create_task(self._send_loop())]
        helpers = [asyncio.create_task(self._ack_loop()), asyncio.create_task(self._persist_loop())]
        try:
            await asyncio.wait(main, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in main + helpers:
                task.cancel()
            results = await asyncio.gather(*main, *helpers, return_exceptions=True)
            await self.persist_ack()
        for result in results:
            if isinstance(result, link.LinkError):
                raise result

    # --- sending -------------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        next_seq = self.start
        feed = self.side.feed
        try:
            while True:
                in_flight = next_seq - 1 - self.peer_acked
                if in_flight >= link.WINDOW:
                    self._acked.clear()
                    await self._acked.wait()
                    continue
                feed.wake.clear()
                limit = min(SEND_BATCH, link.WINDOW - in_flight)
                rows = feed.take(next_seq, limit)
                if rows is None:
                    rows = await self.side.outbox_from(next_seq, limit)
                if not rows:
                    await feed.wake.wait()
                    continue
                for row in rows:
                    if row.seq != next_seq:   # unacked rows are never deleted: a bug, not an attack
                        raise link.LinkError("outbox_gap", f"expected {next_seq}, found {row.seq}")
                    await self.ws.send_bytes(env.seal(row.payload, seq=row.seq, signer=self.signer,
                                                      envelope_id=row.envelope_id))
                    self.counters.sent += 1
                    next_seq += 1
        except _SEND_ERRORS:
            await self.ws.close()

    async def _ack_loop(self) -> None:
        with contextlib.suppress(*_SEND_ERRORS):
            while True:
                await self._ack_due.wait()
                self._ack_due.clear()
                await self.ws.send_str(link.control("ack", seq=self.applied))

    async def _persist_loop(self) -> None:
        while True:
            await asyncio.sleep(ACK_PERSIST_INTERVAL)
            await self.persist_ack()

    async def persist_ack(self) -> None:
        """Record the peer's acks (coalesced: the next handshake re-reads the authoritative value)."""
        acked = self.peer_acked
        if acked > self._persisted_ack:
            await finish(self.side.mark_acked(self._persisted_ack, acked))
            self._persisted_ack = acked

    # --- receiving -----------------------------------------------------------------------------

    async def _receive_loop(self, frames: asyncio.Queue[bytes]) -> None:
        """Read frames: control frames act at once; envelopes queue for the applier (bounded)."""
        async for msg in self.ws:
            if msg.type == WSMsgType.BINARY:
                await frames.put(msg.data)
            elif msg.type == WSMsgType.TEXT:
                self._on_control(str(msg.data))
            elif msg.type == WSMsgType.ERROR:
                exc = msg.data if isinstance(msg.data, BaseException) else self.ws.exception()
                if getattr(exc, "code", None) == aiohttp.WSCloseCode.MESSAGE_TOO_BIG:
                    await finish(self.side.frame_too_large())
                    raise link.LinkError("frame_too_large")
                raise link.LinkError("link_error", str(exc)[:120])
        if self.ws.close_code == link.CLOSE_REJECTED:
            raise link.LinkError(f"{self.side.peer}_rejected")

    def _on_control(self, text: str) -> None:
        frame = link.parse_control(text, expect=("ack", "reject"))
        if frame["type"] == "ack":
            seq = int(frame["seq"])
            if seq > self.peer_acked:
                self.peer_acked = seq
                self._acked.set()
        else:
            self.side.peer_refused(str(frame["code"]), frame["seq"])

    async def _apply_loop(self, frames: asyncio.Queue[bytes]) -> None:
        """Take whatever has arrived (up to MAX_BATCH) and handle it; consecutive envelopes share a
        transaction unless the tier keeps one apart (``LinkSide.batchable``)."""
        while True:
            batch = [await frames.get()]
            while len(batch) < MAX_BATCH and not frames.empty():
                batch.append(frames.get_nowait())
            await self._handle(batch)

    async def _handle(self, batch: list[bytes]) -> None:
        ready: list[env.Envelope] = []
        for raw in batch:
            self.counters.received += 1
            verdict = await link.judge(raw, expect_sender=self.side.peer, keyring=self.keyring, skew=self.skew,
                                       applied_seq=ready[-1].seq if ready else self.applied,
                                       applied_id=self.side.applied_id)
            if verdict.action == link.APPLY and verdict.envelope is not None:
                if self.side.batchable(verdict.envelope):
                    ready.append(verdict.envelope)
                else:
                    await self._apply(ready)
                    ready = []
                    await self._apply([verdict.envelope])
                continue
            await self._apply(ready)
            ready = []
            await self._refuse(verdict, raw)
        await self._apply(ready)

    async def _apply(self, envelopes: list[env.Envelope]) -> None:
        if envelopes:
            await finish(self.side.apply(envelopes))
            self.applied = envelopes[-1].seq
            self._ack_due.set()

    async def _refuse(self, verdict: link.Verdict, raw: bytes) -> None:
        """Everything but a clean apply: consume, acknowledge a replay, or reject and close."""
        if verdict.action == link.CONSUME:
            assert verdict.seq is not None
            await finish(self.side.consume(verdict, raw))
            self.applied = verdict.seq
            self._ack_due.set()
        elif verdict.action == link.DUPLICATE:
            await finish(self.side.replayed(verdict, raw, self.applied))
            self._ack_due.set()     # acknowledge again; nothing is applied
        else:
            await finish(self.side.refused(verdict, raw))
            with contextlib.suppress(*_SEND_ERRORS):
                await self.ws.send_str(link.control("reject", seq=verdict.seq, code=verdict.code[:60]))
            await self.ws.close(code=link.CLOSE_REJECTED, message=verdict.code.encode()[:100])
            raise link.LinkError("rejected_" + verdict.code)
