"""The link to the relay. The LGWAN side always dials out; the relay never connects anywhere.

One session: connect to ``ws(s)://relay:queue_port/queue``, answer the relay's challenge, check the
relay's proof (``shared.link``), agree where each direction resumes, then stream both ways:
envelopes from ``bridge_outbox`` (sealed afresh on each send), envelopes from the relay applied
through ``BridgeInbox``, cumulative acks both ways. Any failure ends the session; the next one
starts after an exponential backoff with jitter (capped by ``[bridge] max_backoff``), for outages
of any length. An admin can cut the link (緊急遮断) and restore it; the cut survives restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from datetime import timedelta
from typing import Any

import aiohttp
from aiohttp import WSMsgType

from shared import envelope as env
from shared import link
from shared.limits import MAX_ENVELOPE_BYTES
from shared.signing import KeyRing, SignatureError, Signer, load_key_ring, load_signer
from shared.tasks import finish
from shared.timeutil import now_iso, parse_iso, utcnow

from ..config import BridgeConfig
from ..services.actor import Actor
from ..services.audit import AuditService
from ..storage import bridge as store
from ..storage.database import Database
from .inbox import BRIDGE_ACTOR, BridgeInbox
from .outbox import BridgeOutbox

log = logging.getLogger(__name__)

# A frame up to twice the envelope limit still reaches the envelope check (and its audited
# "too_large" refusal); anything bigger is cut off by aiohttp itself (close 1009), also audited.
MAX_FRAME_BYTES = 2 * MAX_ENVELOPE_BYTES
HEARTBEAT_SECONDS = 10.0
FIRST_BACKOFF = 0.2
STABLE_AFTER = 30.0            # a session that lasted this long resets the backoff
ACK_PERSIST_INTERVAL = 0.5
MAX_BATCH = 64                 # envelopes applied in one transaction when a backlog has built up


class Dialler:
    def __init__(self, cfg: BridgeConfig, db: Database, outbox: BridgeOutbox, inbox: BridgeInbox,
                 audit: AuditService, signer: Signer, keyring: KeyRing) -> None:
        self.cfg = cfg
        self.db = db
        self.outbox = outbox
        self.inbox = inbox
        self.audit = audit
        self.signer = signer
        self.keyring = keyring
        self.paused = False
        self.connected = False
        self.connected_since: str | None = None
        self.last_error: str | None = None
        self.last_error_at: str | None = None
        self.sessions = 0
        self.sent = 0
        self.received = 0
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._control = asyncio.Event()       # pause/resume: wakes the backoff sleep
        self._acked_event = asyncio.Event()   # an ack arrived: the sender's window may open
        self._ack_due = asyncio.Event()       # something was applied: tell the relay
        self._peer_acked = 0                  # highest LGWAN→relay seq the relay confirmed (this session)
        self._persisted_ack = 0
        self._applied = 0                     # highest relay→LGWAN seq applied here

    # --- admin controls --------------------------------------------------------------------------

    async def load(self) -> None:
        state = await store.get_state(self.db)
        self.paused = state.paused

    async def set_paused(self, actor: Actor, paused: bool) -> None:
        """緊急遮断: cut the link now and keep it down (across restarts) until resumed."""
        async with self.db.transaction("bridge_pause") as conn:
            await store.set_paused(conn, paused, now_iso())
            await self.audit.record(conn, actor, "bridge.pause" if paused else "bridge.resume", target_type="bridge")
        self.paused = paused
        self._control.set()
        if paused and self._ws is not None:
            await self._ws.close(code=link.CLOSE_PAUSED, message=b"paused by admin")

    async def request_resync(self, actor: Actor) -> None:
        """Rebuild the relay's copy from LGWAN at the next handshake (after a suspected tampering)."""
        async with self.db.transaction("bridge_resync_request") as conn:
            await store.set_resync_pending(conn, True, now_iso())
            await self.audit.record(conn, actor, "bridge.resync_request", target_type="bridge")
        if self._ws is not None:
            await self._ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"resync")

    async def health(self) -> dict[str, Any]:
        """Queue depth and lag for /healthz: lag is the age of the oldest envelope the relay has not confirmed."""
        state = await store.get_state(self.db)
        acked = max(state.out_acked_seq, self._peer_acked if self.connected else 0)
        oldest = await store.oldest_unacked_created_at(self.db, acked)
        lag = max(0.0, (utcnow() - parse_iso(oldest)).total_seconds()) if oldest else 0.0
        return {"enabled": True, "connected": self.connected, "paused": state.paused,
                "connected_since": self.connected_since, "sessions": self.sessions,
                "last_error": self.last_error, "last_error_at": self.last_error_at,
                "outbound": {"last_seq": state.out_last_seq, "acked_seq": acked,
                             "depth": max(0, state.out_last_seq - acked), "lag_seconds": round(lag, 3),
                             "sent": self.sent},
                "inbound": {"applied_seq": state.in_applied_seq, "received": self.received}}

    # --- the loop ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep a session up for as long as the server runs."""
        await self.load()
        backoff = FIRST_BACKOFF
        timeout = aiohttp.ClientTimeout(total=None, connect=self.cfg.connect_timeout,
                                        sock_connect=self.cfg.connect_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while True:
                self._control.clear()
                if self.paused:
                    await self._control.wait()
                    backoff = FIRST_BACKOFF
                    continue
                started = asyncio.get_running_loop().time()
                try:
                    await self._session(http)
                except asyncio.CancelledError:
                    raise
                except link.LinkError as exc:
                    self._failed(exc.code)
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    self._failed(type(exc).__name__)
                except Exception:
                    log.exception("bridge session failed")
                    self._failed("internal_error")
                finally:
                    self.connected = False
                    self._ws = None
                if asyncio.get_running_loop().time() - started > STABLE_AFTER:
                    backoff = FIRST_BACKOFF
                delay = backoff * random.uniform(0.5, 1.0)   # noqa: S311 — jitter, not security
                backoff = min(backoff * 2, self.cfg.max_backoff)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._control.wait(), delay)

    def _failed(self, code: str) -> None:
        if code != self.last_error:
            log.warning("bridge link down", extra={"code": code})
        self.last_error, self.last_error_at = code, now_iso()

    def _ssl(self) -> ssl.SSLContext | bool:
        if not self.cfg.relay_url.startswith("wss://"):
            return False
        ctx = ssl.create_default_context(cafile=str(self.cfg.ca_file) if self.cfg.ca_file else None)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    def _reload_keys(self) -> None:
        """Pick up a rotated key pair or a newly installed/retired peer key at each new session
        (kakehashi-keys activate / install-peer / retire-peer), without a restart."""
        if self.cfg.keys_dir is None:
            return
        try:
            signer, keyring = load_signer(self.cfg.keys_dir), load_key_ring(self.cfg.keys_dir)
        except (SignatureError, OSError, ValueError, KeyError) as exc:
            log.error("could not reload the bridge keys; keeping the loaded ones", extra={"error": str(exc)[:200]})
            return
        if len(keyring):
            self.signer, self.keyring = signer, keyring

    async def _session(self, http: aiohttp.ClientSession) -> None:
        self._reload_keys()
        ws = await http.ws_connect(self.cfg.relay_url, heartbeat=HEARTBEAT_SECONDS, max_msg_size=MAX_FRAME_BYTES,
                                   ssl=self._ssl(), compress=0, autoping=True)
        self._ws = ws
        try:
            start = await self._handshake(ws)
            self.sessions += 1
            self.connected, self.connected_since = True, now_iso()
            self.last_error = None
            log.info("bridge link up", extra={"resume_from": start, "applied": self._applied})
            await self._stream(ws, start)
        finally:
            await ws.close()

    async def _receive_text(self, ws: aiohttp.ClientWebSocketResponse) -> str:
        msg = await ws.receive(timeout=self.cfg.connect_timeout)
        if msg.type != WSMsgType.TEXT:
            raise link.LinkError("handshake_failed", f"got {msg.type.name}")
        return str(msg.data)

    async def _handshake(self, ws: aiohttp.ClientWebSocketResponse) -> int:
        """Authenticate both ways and agree where each direction resumes; returns the first seq to send."""
        challenge = link.parse_control(await self._receive_text(ws), expect=("challenge",))
        lgwan_nonce = link.new_nonce()
        ids = {"relay_nonce": challenge["nonce"], "lgwan_nonce": lgwan_nonce, "relay_key_id": challenge["key_id"],
               "lgwan_key_id": self.signer.key_id}
        await ws.send_str(link.control("auth", v=link.LINK_VERSION, nonce=lgwan_nonce, key_id=self.signer.key_id,
                                       proof=link.prove(self.signer, "lgwan", **ids)))
        welcome = link.parse_control(await self._receive_text(ws), expect=("welcome", "reject"))
        if welcome["type"] == "reject":
            raise link.LinkError("relay_refused_" + welcome["code"][:40])
        try:
            link.check_proof(self.keyring, "relay", welcome["proof"], **ids)
        except link.LinkError as exc:
            await finish(self.audit.record_alone(BRIDGE_ACTOR, "bridge.link_auth_failed", outcome="denied",
                                                 target_type="bridge", detail={"code": exc.code,
                                                                               "relay_key_id": challenge["key_id"]}))
            raise
        # Every write of the link runs to its end even if the session is cancelled (shared/tasks.py).
        ack, reset, start = await finish(self._resume(welcome["epoch"], welcome["ack"]))
        await ws.send_str(link.control("ready", ack=ack, reset=reset))
        return start

    async def _resume(self, epoch: str, peer_ack: int) -> tuple[int, bool, int]:
        """(our ack to send, whether the relay must rebuild, first seq to send)."""
        state = await store.get_state(self.db)
        oldest = await store.oldest_outbox_seq(self.db)
        reason = None
        if state.relay_epoch != epoch:
            reason = "new_relay" if state.relay_epoch else "first_link"
        elif state.resync_pending:
            reason = "requested"
        elif peer_ack > state.out_last_seq or (
                peer_ack < state.out_last_seq and (oldest is None or oldest > peer_ack + 1)):
            reason = "diverged"   # a restore from backup on either side: the histories no longer meet
        if reason is not None:
            async with self.db.transaction("bridge_resync") as conn:
                size = await self.outbox.rebuild(conn, reset_inbound=reason in ("new_relay", "first_link"))
                await store.set_relay_epoch(conn, epoch, now_iso())
                await store.set_resync_pending(conn, False, now_iso())
                await self.audit.record(conn, BRIDGE_ACTOR, "bridge.resync", target_type="bridge",
                                        detail={"reason": reason, "envelopes": size, "relay_ack": peer_ack})
            log.info("bridge resync", extra={"reason": reason, "envelopes": size})
            peer_ack = 0
        elif peer_ack != state.out_acked_seq:
            async with self.db.transaction("bridge_ack") as conn:
                await store.mark_acked(conn, state.out_acked_seq, peer_ack, now_iso())
        state = await store.get_state(self.db)
        self._peer_acked = self._persisted_ack = peer_ack
        self._applied = state.in_applied_seq
        return state.in_applied_seq, reason is not None, peer_ack + 1

    # --- streaming ---------------------------------------------------------------------------------

    async def _stream(self, ws: aiohttp.ClientWebSocketResponse, start: int) -> None:
        """Send, receive and apply at once; the first of them to end ends the session."""
        frames: asyncio.Queue[bytes] = asyncio.Queue(maxsize=2 * link.WINDOW)
        main = [asyncio.create_task(self._receive_loop(ws, frames)), asyncio.create_task(self._apply_loop(ws, frames)),
                asyncio.create_task(self._send_loop(ws, start))]
        helpers = [asyncio.create_task(self._ack_loop(ws)), asyncio.create_task(self._persist_loop())]
        try:
            await asyncio.wait(main, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in main + helpers:
                task.cancel()
            results = await asyncio.gather(*main, *helpers, return_exceptions=True)
            await self._persist_ack()
        for result in results:
            if isinstance(result, link.LinkError):
                raise result

    async def _send_loop(self, ws: aiohttp.ClientWebSocketResponse, start: int) -> None:
        next_seq = start
        try:
            while True:
                in_flight = next_seq - 1 - self._peer_acked
                if in_flight >= link.WINDOW:
                    self._acked_event.clear()
                    await self._acked_event.wait()
                    continue
                self.outbox.wake.clear()
                rows = await store.outbox_from(self.db, next_seq, min(256, link.WINDOW - in_flight))
                if not rows:
                    await self.outbox.wake.wait()
                    continue
                for row in rows:
                    if row.seq != next_seq:   # unacked rows are never deleted; this is a bug, not an attack
                        raise link.LinkError("outbox_gap", f"expected {next_seq}, found {row.seq}")
                    raw = env.seal(env.payload_from_json(row.kind, row.payload), seq=row.seq, signer=self.signer,
                                   envelope_id=row.envelope_id)
                    await ws.send_bytes(raw)
                    self.sent += 1
                    next_seq += 1
        except (ConnectionResetError, RuntimeError, aiohttp.ClientError):
            await ws.close()

    async def _ack_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        with contextlib.suppress(ConnectionResetError, RuntimeError, aiohttp.ClientError):
            while True:
                await self._ack_due.wait()
                self._ack_due.clear()
                await ws.send_str(link.control("ack", seq=self._applied))

    async def _persist_loop(self) -> None:
        while True:
            await asyncio.sleep(ACK_PERSIST_INTERVAL)
            await self._persist_ack()

    async def _persist_ack(self) -> None:
        """Record the relay's acks (coalesced: the handshake re-reads the authoritative value anyway)."""
        acked = self._peer_acked
        if acked > self._persisted_ack:
            await finish(self._mark_acked(self._persisted_ack, acked))
            self._persisted_ack = acked

    async def _mark_acked(self, previous: int, acked: int) -> None:
        async with self.db.transaction("bridge_ack") as conn:
            await store.mark_acked(conn, previous, acked, now_iso())

    async def _receive_loop(self, ws: aiohttp.ClientWebSocketResponse, frames: asyncio.Queue[bytes]) -> None:
        """Read frames: control frames act at once; envelopes queue for the applier (bounded)."""
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await frames.put(msg.data)
            elif msg.type == WSMsgType.TEXT:
                self._on_control(str(msg.data))
            elif msg.type == WSMsgType.ERROR:
                exc = msg.data if isinstance(msg.data, BaseException) else ws.exception()
                too_big = getattr(exc, "code", None) == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
                code = "frame_too_large" if too_big else "link_error"
                if code == "frame_too_large":
                    await finish(self.audit.record_alone(BRIDGE_ACTOR, "bridge.envelope_rejected", outcome="denied",
                                                         target_type="envelope", detail={"code": code}))
                raise link.LinkError(code, str(exc)[:120])
        if ws.close_code == link.CLOSE_REJECTED:
            raise link.LinkError("relay_rejected")

    def _on_control(self, text: str) -> None:
        frame = link.parse_control(text, expect=("ack", "reject"))
        if frame["type"] == "ack":
            seq = int(frame["seq"])
            if seq > self._peer_acked:
                self._peer_acked = seq
                self._acked_event.set()
        else:
            log.warning("relay rejected an envelope", extra={"code": frame["code"], "seq": frame["seq"]})
            self._failed("relay_rejected_" + frame["code"][:40])

    async def _apply_loop(self, ws: aiohttp.ClientWebSocketResponse, frames: asyncio.Queue[bytes]) -> None:
        """Take whatever has arrived (up to MAX_BATCH) and handle it; consecutive posts share a transaction."""
        while True:
            batch = [await frames.get()]
            while len(batch) < MAX_BATCH and not frames.empty():
                batch.append(frames.get_nowait())
            await self._handle(ws, batch)

    async def _handle(self, ws: aiohttp.ClientWebSocketResponse, batch: list[bytes]) -> None:
        ready: list[env.Envelope] = []
        for raw in batch:
            self.received += 1
            applied = ready[-1].seq if ready else self._applied
            verdict = await link.judge(raw, expect_sender=env.RELAY, keyring=self.keyring,
                                       skew=timedelta(seconds=self.cfg.clock_skew), applied_seq=applied,
                                       applied_id=lambda seq: store.inbox_envelope_id(self.db, seq))
            if verdict.action == link.APPLY and verdict.envelope is not None:
                if not self.inbox.batchable(verdict.envelope):
                    await self._apply(ready)
                    ready = []
                    await self._apply([verdict.envelope])
                else:
                    ready.append(verdict.envelope)
                continue
            await self._apply(ready)
            ready = []
            await self._refuse(ws, verdict, raw)
        await self._apply(ready)

    async def _apply(self, envelopes: list[env.Envelope]) -> None:
        if envelopes:
            await finish(self.inbox.apply(envelopes))
            self._applied = envelopes[-1].seq
            self._ack_due.set()

    async def _refuse(self, ws: aiohttp.ClientWebSocketResponse, verdict: link.Verdict, raw: bytes) -> None:
        """Everything but a clean apply: consume, acknowledge a replay, or reject and close."""
        if verdict.action == link.CONSUME:
            assert verdict.seq is not None and verdict.envelope_id is not None and verdict.kind is not None
            await finish(self.inbox.consume_rejected(verdict.seq, verdict.envelope_id, verdict.kind, verdict.code,
                                                     verdict.detail))
            self._applied = verdict.seq
            self._ack_due.set()
        elif verdict.action == link.DUPLICATE:
            await finish(self.audit.record_alone(
                BRIDGE_ACTOR, "bridge.replay", outcome="denied", target_type="envelope",
                target_id=verdict.envelope_id or "",
                detail={"seq": verdict.seq, "kind": verdict.kind, "applied": self._applied}))
            self._ack_due.set()     # acknowledge again; nothing is applied
        else:
            await finish(self.audit.record_alone(
                BRIDGE_ACTOR, "bridge.envelope_rejected", outcome="denied", target_type="envelope",
                target_id=verdict.envelope_id or "",
                detail={"code": verdict.code, "seq": verdict.seq, "kind": verdict.kind,
                        "reason": verdict.detail[:120], "bytes": len(raw)}))
            with contextlib.suppress(ConnectionResetError, RuntimeError, aiohttp.ClientError):
                await ws.send_str(link.control("reject", seq=verdict.seq, code=verdict.code[:60]))
            await ws.close(code=link.CLOSE_REJECTED, message=verdict.code.encode()[:100])
            raise link.LinkError("rejected_" + verdict.code)
