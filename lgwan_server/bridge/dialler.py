"""The link to the relay. The LGWAN side always dials out; the relay never connects anywhere.

One session: connect to ``ws(s)://relay:queue_port/queue``, answer the relay's challenge, check the
relay's proof (``shared.link``), agree where each direction resumes, then stream both ways
(``shared.linkstream``, the same code as the relay's; this class is the LGWAN ``LinkSide``):
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
from shared import link, linkstream
from shared.linkstream import HEARTBEAT_SECONDS, MAX_FRAME_BYTES
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

FIRST_BACKOFF = 0.2
STABLE_AFTER = 30.0            # a session that lasted this long resets the backoff


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
        self.counters = linkstream.LinkCounters()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._stream: linkstream.LinkStream | None = None
        self._control = asyncio.Event()       # pause/resume: wakes the backoff sleep

    # --- LinkSide ----------------------------------------------------------------------------------

    peer = env.RELAY

    @property
    def feed(self) -> linkstream.OutboxFeed:
        return self.outbox.feed

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
        stream = self._stream
        acked = max(state.out_acked_seq, stream.peer_acked if stream is not None else 0)
        oldest = await store.oldest_unacked_created_at(self.db, acked)
        lag = max(0.0, (utcnow() - parse_iso(oldest)).total_seconds()) if oldest else 0.0
        return {"enabled": True, "connected": self.connected, "paused": state.paused,
                "connected_since": self.connected_since, "sessions": self.sessions,
                "last_error": self.last_error, "last_error_at": self.last_error_at,
                "outbound": {"last_seq": state.out_last_seq, "acked_seq": acked,
                             "depth": max(0, state.out_last_seq - acked), "lag_seconds": round(lag, 3),
                             "sent": self.counters.sent},
                "inbound": {"applied_seq": state.in_applied_seq, "received": self.counters.received}}

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
            peer_ack, applied = await self._handshake(ws)
            self.sessions += 1
            self.connected, self.connected_since = True, now_iso()
            self.last_error = None
            log.info("bridge link up", extra={"resume_from": peer_ack + 1, "applied": applied})
            self._stream = linkstream.LinkStream(
                ws, self, signer=self.signer, keyring=self.keyring, skew=timedelta(seconds=self.cfg.clock_skew),
                counters=self.counters, start=peer_ack + 1, peer_acked=peer_ack, applied=applied)
            await self._stream.run()      # records the relay's last ack however it ends
        finally:
            self._stream = None
            await ws.close()

    async def _receive_text(self, ws: aiohttp.ClientWebSocketResponse) -> str:
        msg = await ws.receive(timeout=self.cfg.connect_timeout)
        if msg.type != WSMsgType.TEXT:
            raise link.LinkError("handshake_failed", f"got {msg.type.name}")
        return str(msg.data)

    async def _handshake(self, ws: aiohttp.ClientWebSocketResponse) -> tuple[int, int]:
        """Authenticate both ways and agree where each direction resumes: (the relay's ack of what we
        sent, the highest relay seq applied here)."""
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
        peer_ack, applied, reset = await finish(self._resume(welcome["epoch"], welcome["ack"]))
        await ws.send_str(link.control("ready", ack=applied, reset=reset))
        return peer_ack, applied

    async def _resume(self, epoch: str, peer_ack: int) -> tuple[int, int, bool]:
        """(the relay's ack to resume after, our ack to send, whether the relay must rebuild)."""
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
            async with self.db.transaction("bridge_resync", offload=True) as conn:
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
        return peer_ack, state.in_applied_seq, reason is not None

    # --- streaming (shared.linkstream) ------------------------------------------------------------------

    async def outbox_from(self, first_seq: int, limit: int) -> list[linkstream.Queued]:
        return [linkstream.Queued(row.seq, row.envelope_id, env.payload_from_json(row.kind, row.payload))
                for row in await store.outbox_from(self.db, first_seq, limit)]

    async def mark_acked(self, previous: int, acked: int) -> None:
        async with self.db.transaction("bridge_ack") as conn:
            await store.mark_acked(conn, previous, acked, now_iso())

    async def applied_id(self, seq: int) -> str | None:
        return await store.inbox_envelope_id(self.db, seq)

    def batchable(self, envelope: env.Envelope) -> bool:
        return self.inbox.batchable(envelope)

    async def apply(self, envelopes: list[env.Envelope]) -> None:
        await self.inbox.apply(envelopes)

    def peer_refused(self, code: str, seq: int | None) -> None:
        log.warning("relay rejected an envelope", extra={"code": code, "seq": seq})
        self._failed("relay_rejected_" + code[:40])

    async def frame_too_large(self) -> None:
        await self.audit.record_alone(BRIDGE_ACTOR, "bridge.envelope_rejected", outcome="denied",
                                      target_type="envelope", detail={"code": "frame_too_large"})

    async def consume(self, verdict: link.Verdict, raw: bytes) -> None:
        assert verdict.seq is not None and verdict.envelope_id is not None and verdict.kind is not None
        await self.inbox.consume_rejected(verdict.seq, verdict.envelope_id, verdict.kind, verdict.code, verdict.detail)

    async def replayed(self, verdict: link.Verdict, raw: bytes, applied: int) -> None:
        await self.audit.record_alone(BRIDGE_ACTOR, "bridge.replay", outcome="denied", target_type="envelope",
                                      target_id=verdict.envelope_id or "",
                                      detail={"seq": verdict.seq, "kind": verdict.kind, "applied": applied})

    async def refused(self, verdict: link.Verdict, raw: bytes) -> None:
        await self.audit.record_alone(BRIDGE_ACTOR, "bridge.envelope_rejected", outcome="denied",
                                      target_type="envelope", target_id=verdict.envelope_id or "",
                                      detail={"code": verdict.code, "seq": verdict.seq, "kind": verdict.kind,
                                              "reason": verdict.detail[:120], "bytes": len(raw)})
