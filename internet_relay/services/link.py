"""The relay's end of the queue link: it only ever *accepts* the LGWAN server's connection.

There is no code path here (or anywhere in ``internet_relay``) that opens a connection: the
relay answers on its queue port, and only a peer that proves it holds the LGWAN key (installed
with ``kakehashi-keys install-peer``) gets past the handshake — so nobody else can pull guest
messages. One link at a time: a newly authenticated one replaces the old.

Envelopes from LGWAN are verified (``shared.link.judge``) and applied each in one transaction
with the inbox record; posts, receipts and enrolments queued here stream the other way from the
durable outbox, sealed afresh on every send. See ``shared/link.py`` for the protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from shared import envelope as env
from shared import link
from shared.limits import MAX_ENVELOPE_BYTES
from shared.signing import KeyRing, SignatureError, Signer, load_key_ring, load_signer
from shared.tasks import finish
from shared.timeutil import now_iso, parse_iso, utcnow

from ..config import RelayConfig
from ..hub import Hub
from ..storage import link as store
from ..storage import mirror as mirror_store
from ..storage.database import Database
from .accounts import AccountService
from .audit import AuditService
from .chat import ChatService
from .outbox import Outbox
from .safety import SafetyService

log = logging.getLogger(__name__)
MAX_FRAME_BYTES = 2 * MAX_ENVELOPE_BYTES    # bigger frames are cut off by aiohttp (close 1009), and audited
HEARTBEAT_SECONDS = 10.0
ACK_PERSIST_INTERVAL = 0.5
MAX_BATCH = 64                 # envelopes applied in one transaction when a backlog has built up
LINK_ACTOR = "lgwan"


class LinkService:
    def __init__(self, db: Database, cfg: RelayConfig, audit: AuditService, outbox: Outbox,
                 accounts: AccountService, chat: ChatService, hub: Hub, signer: Signer, keyring: KeyRing,
                 safety: SafetyService) -> None:
        self.db = db
        self.safety = safety
        self.cfg = cfg
        self.audit = audit
        self.outbox = outbox
        self.accounts = accounts
        self.chat = chat
        self.hub = hub
        self.signer = signer
        self.keyring = keyring
        self.skew = timedelta(seconds=cfg.queue.clock_skew)
        self.connected = False
        self.connected_since: str | None = None
        self.peer = ""
        self.sessions = 0
        self.sent = 0
        self.received = 0
        self.last_error: str | None = None
        self._ws: web.WebSocketResponse | None = None
        self._session_lock = asyncio.Lock()
        self._acked_event = asyncio.Event()
        self._ack_due = asyncio.Event()
        self._peer_acked = 0
        self._persisted_ack = 0
        self._applied = 0

    async def health(self) -> dict[str, Any]:
        state = await store.get_state(self.db)
        acked = max(state.out_acked_seq, self._peer_acked if self.connected else 0)
        oldest = await store.oldest_unacked_created_at(self.db, acked)
        lag = max(0.0, (utcnow() - parse_iso(oldest)).total_seconds()) if oldest else 0.0
        return {"connected": self.connected, "connected_since": self.connected_since, "sessions": self.sessions,
                "last_error": self.last_error,
                "outbound": {"last_seq": state.out_last_seq, "acked_seq": acked,
                             "depth": max(0, state.out_last_seq - acked), "lag_seconds": round(lag, 3),
                             "sent": self.sent},
                "inbound": {"applied_seq": state.in_applied_seq, "received": self.received}}

    # --- one connection --------------------------------------------------------------------------

    def _reload_keys(self) -> None:
        """Pick up a rotated key pair or a newly installed/retired LGWAN key for each new connection
        (kakehashi-keys activate / install-peer / retire-peer), without a restart."""
        try:
            signer, keyring = load_signer(self.cfg.queue.keys_dir), load_key_ring(self.cfg.queue.keys_dir)
        except (SignatureError, OSError, ValueError, KeyError) as exc:
            log.error("could not reload the queue keys; keeping the loaded ones", extra={"error": str(exc)[:200]})
            return
        if len(keyring):
            self.signer, self.keyring = signer, keyring

    async def serve(self, ws: web.WebSocketResponse, ip: str) -> None:
        """Handle one connection to the queue port, from handshake to close."""
        self._reload_keys()
        try:
            ids = await self._authenticate(ws)
        except (link.LinkError, TimeoutError) as exc:
            code = exc.code if isinstance(exc, link.LinkError) else "handshake_timeout"
            await finish(self.audit.record_alone("link.auth_failed", actor="", ip=ip, outcome="denied",
                                                 detail={"code": code}))
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                await ws.send_str(link.control("reject", seq=None, code=code[:60]))
            await ws.close(code=link.CLOSE_AUTH_FAILED, message=b"authentication failed")
            return
        previous = self._ws
        if previous is not None and not previous.closed:
            await previous.close(code=link.CLOSE_REPLACED, message=b"replaced by a newer link")
        async with self._session_lock:     # the old session has finished applying before this one starts
            self._ws = ws
            try:
                await self._run(ws, ip, ids)
            except link.LinkError as exc:
                self.last_error = exc.code
                log.warning("queue link ended", extra={"code": exc.code})
            finally:
                self._ws = None
                self.connected = False
                await self._persist_ack()

    async def _receive_text(self, ws: web.WebSocketResponse) -> str:
        msg = await ws.receive(timeout=self.cfg.queue.handshake_timeout)
        if msg.type != WSMsgType.TEXT:
            raise link.LinkError("handshake_failed", msg.type.name)
        return str(msg.data)

    async def _authenticate(self, ws: web.WebSocketResponse) -> dict[str, str]:
        nonce = link.new_nonce()
        await ws.send_str(link.control("challenge", v=link.LINK_VERSION, nonce=nonce, key_id=self.signer.key_id))
        auth = link.parse_control(await self._receive_text(ws), expect=("auth",))
        ids = {"relay_nonce": nonce, "lgwan_nonce": auth["nonce"], "relay_key_id": self.signer.key_id,
               "lgwan_key_id": auth["key_id"]}
        link.check_proof(self.keyring, "lgwan", auth["proof"], **ids)
        return ids

    async def _run(self, ws: web.WebSocketResponse, ip: str, ids: dict[str, str]) -> None:
        state = await store.get_state(self.db)
        epoch = await store.get_epoch(self.db)
        assert epoch is not None
        await ws.send_str(link.control("welcome", proof=link.prove(self.signer, "relay", **ids), epoch=epoch,
                                       ack=state.in_applied_seq))
        ready = link.parse_control(await self._receive_text(ws), expect=("ready",))
        # Every write of the link runs to its end even if the session is cancelled (shared/tasks.py).
        await finish(self._ready(ready, ip, ids))
        state = await store.get_state(self.db)
        self._applied = state.in_applied_seq
        self._peer_acked = self._persisted_ack = int(ready["ack"])
        self.connected, self.connected_since, self.peer = True, now_iso(), ip
        self.sessions += 1
        self.last_error = None
        log.info("queue link up", extra={"peer": ip, "reset": ready["reset"], "resume_from": ready["ack"] + 1})
        await self._stream(ws, int(ready["ack"]) + 1, ip)

    async def _ready(self, ready: dict[str, Any], ip: str, ids: dict[str, str]) -> None:
        now = now_iso()
        async with self.db.transaction("link_ready") as conn:
            if ready["reset"]:
                # LGWAN rebuilds our copy from scratch: forget the rooms (accounts and queued posts stay).
                await mirror_store.purge_mirror(conn)
                await store.reset_inbound(conn, now)
                self.db.after_commit(lambda: self.hub.broadcast('{"type":"resync"}'))
            renumbered = await store.align_outbox(conn, int(ready["ack"]), now)
            await self.audit.record(conn, "link.up", actor=LINK_ACTOR, ip=ip,
                                    detail={"reset": ready["reset"], "lgwan_ack": ready["ack"],
                                            "renumbered": renumbered, "lgwan_key_id": ids["lgwan_key_id"]})

    # --- streaming -------------------------------------------------------------------------------

    async def _stream(self, ws: web.WebSocketResponse, start: int, ip: str) -> None:
        """Send, receive and apply at once; the first of them to end ends the session."""
        frames: asyncio.Queue[bytes] = asyncio.Queue(maxsize=2 * link.WINDOW)
        main = [asyncio.create_task(self._receive_loop(ws, ip, frames)),
                asyncio.create_task(self._apply_loop(ws, ip, frames)), asyncio.create_task(self._send_loop(ws, start))]
        helpers = [asyncio.create_task(self._ack_loop(ws)), asyncio.create_task(self._persist_loop())]
        try:
            await asyncio.wait(main, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in main + helpers:
                task.cancel()
            results = await asyncio.gather(*main, *helpers, return_exceptions=True)
        for result in results:
            if isinstance(result, link.LinkError):
                raise result

    async def _send_loop(self, ws: web.WebSocketResponse, start: int) -> None:
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
                    if row.seq != next_seq:
                        raise link.LinkError("outbox_gap", f"expected {next_seq}, found {row.seq}")
                    raw = env.seal(env.payload_from_json(row.kind, row.payload), seq=row.seq, signer=self.signer,
                                   envelope_id=row.envelope_id)
                    await ws.send_bytes(raw)
                    self.sent += 1
                    next_seq += 1
        except (ConnectionResetError, RuntimeError):
            await ws.close()

    async def _ack_loop(self, ws: web.WebSocketResponse) -> None:
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            while True:
                await self._ack_due.wait()
                self._ack_due.clear()
                await ws.send_str(link.control("ack", seq=self._applied))

    async def _persist_loop(self) -> None:
        while True:
            await asyncio.sleep(ACK_PERSIST_INTERVAL)
            await self._persist_ack()

    async def _persist_ack(self) -> None:
        acked = self._peer_acked
        if acked > self._persisted_ack:
            await finish(self._mark_acked(self._persisted_ack, acked))
            self._persisted_ack = acked

    async def _mark_acked(self, previous: int, acked: int) -> None:
        async with self.db.transaction("link_ack") as conn:
            await store.mark_acked(conn, previous, acked, now_iso())

    async def _receive_loop(self, ws: web.WebSocketResponse, ip: str, frames: asyncio.Queue[bytes]) -> None:
        """Read frames: control frames act at once; envelopes queue for the applier (bounded)."""
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await frames.put(msg.data)
            elif msg.type == WSMsgType.TEXT:
                self._on_control(str(msg.data))
            elif msg.type == WSMsgType.ERROR:
                exc = msg.data if isinstance(msg.data, BaseException) else ws.exception()
                if getattr(exc, "code", None) == WSCloseCode.MESSAGE_TOO_BIG:
                    await finish(self.audit.record_alone("queue.envelope_rejected", actor=LINK_ACTOR, ip=ip,
                                                         outcome="denied", detail={"code": "frame_too_large"}))
                    raise link.LinkError("frame_too_large")
                raise link.LinkError("link_error", str(exc)[:120])

    def _on_control(self, text: str) -> None:
        frame = link.parse_control(text, expect=("ack", "reject"))
        if frame["type"] == "ack":
            seq = int(frame["seq"])
            if seq > self._peer_acked:
                self._peer_acked = seq
                self._acked_event.set()
        else:
            log.warning("LGWAN rejected an envelope", extra={"code": frame["code"], "seq": frame["seq"]})
            self.last_error = "lgwan_rejected_" + str(frame["code"])[:40]

    async def _apply_loop(self, ws: web.WebSocketResponse, ip: str, frames: asyncio.Queue[bytes]) -> None:
        """Take whatever has arrived (up to MAX_BATCH); consecutive good envelopes share a transaction."""
        while True:
            batch = [await frames.get()]
            while len(batch) < MAX_BATCH and not frames.empty():
                batch.append(frames.get_nowait())
            ready: list[env.Envelope] = []
            for raw in batch:
                self.received += 1
                verdict = await link.judge(raw, expect_sender=env.LGWAN, keyring=self.keyring, skew=self.skew,
                                           applied_seq=ready[-1].seq if ready else self._applied,
                                           applied_id=lambda seq: store.inbox_envelope_id(self.db, seq))
                if verdict.action == link.APPLY and verdict.envelope is not None:
                    ready.append(verdict.envelope)
                    continue
                await self._apply(ready)
                ready = []
                await self._refuse(ws, verdict, raw, ip)
            await self._apply(ready)

    async def _refuse(self, ws: web.WebSocketResponse, verdict: link.Verdict, raw: bytes, ip: str) -> None:
        """Everything but a clean apply: consume, acknowledge a replay, or reject and close."""
        detail = {"code": verdict.code, "seq": verdict.seq, "kind": verdict.kind, "reason": verdict.detail[:120],
                  "bytes": len(raw)}
        if verdict.action == link.CONSUME:
            await finish(self._consume(verdict, ip, detail))
            assert verdict.seq is not None
            self._applied = verdict.seq
            self._ack_due.set()
        elif verdict.action == link.DUPLICATE:
            await finish(self.audit.record_alone("queue.replay", actor=LINK_ACTOR, ip=ip, outcome="denied",
                                                 target=verdict.envelope_id or "",
                                                 detail={**detail, "applied": self._applied}))
            self._ack_due.set()
        else:
            await finish(self.audit.record_alone("queue.envelope_rejected", actor=LINK_ACTOR, ip=ip,
                                                 outcome="denied", target=verdict.envelope_id or "", detail=detail))
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                await ws.send_str(link.control("reject", seq=verdict.seq, code=verdict.code[:60]))
            await ws.close(code=link.CLOSE_REJECTED, message=verdict.code.encode()[:100])
            raise link.LinkError("rejected_" + verdict.code)

    async def _consume(self, verdict: link.Verdict, ip: str, detail: dict[str, Any]) -> None:
        assert verdict.seq is not None and verdict.envelope_id is not None and verdict.kind is not None
        async with self.db.transaction("link_reject") as conn:
            await store.record_inbox(conn, verdict.seq, verdict.envelope_id, verdict.kind,
                                     f"rejected:{verdict.code}", now_iso())
            await self.audit.record(conn, "queue.envelope_rejected", actor=LINK_ACTOR, ip=ip, outcome="denied",
                                    target=verdict.envelope_id, detail=detail)

    async def _apply(self, envelopes: list[env.Envelope]) -> None:
        """Apply verified, consecutive envelopes together with their inbox records, in one transaction."""
        if not envelopes:
            return
        await finish(self._apply_now(envelopes))
        self._applied = envelopes[-1].seq
        self._ack_due.set()

    async def _apply_now(self, envelopes: list[env.Envelope]) -> None:
        async with self.db.transaction("link_apply") as conn:
            for envelope in envelopes:
                p = envelope.payload
                if isinstance(p, env.AccountUpsert):
                    await self.accounts.apply_upsert(conn, p)
                elif isinstance(p, env.AccountRemove):
                    await self.accounts.apply_remove(conn, p)
                elif isinstance(p, env.DeviceDecision):
                    await self.accounts.apply_device(conn, p)
                elif isinstance(p, (env.SafetyRequest, env.SafetyRemind, env.SafetyClose)):
                    await self.safety.apply(conn, p)
                else:
                    await self.chat.apply(conn, p)
                await store.record_inbox(conn, envelope.seq, envelope.id, envelope.kind, "applied", now_iso())
