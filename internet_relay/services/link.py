"""The relay's end of the queue link: it only ever *accepts* the LGWAN server's connection.

There is no code path here (or anywhere in ``internet_relay``) that opens a connection: the
relay answers on its queue port, and only a peer that proves it holds the LGWAN key (installed
with ``kakehashi-keys install-peer``) gets past the handshake — so nobody else can pull guest
messages. One link at a time: a newly authenticated one replaces the old.

Envelopes from LGWAN are verified (``shared.link.judge``) and applied, each run of them in one
transaction with its inbox records; posts, receipts and enrolments queued here stream the other way
from the durable outbox, sealed afresh on every send. The streaming itself is ``shared.linkstream``
(the same code as the LGWAN side's); this module is the relay's ``LinkSide``. See
``shared/link.py`` for the protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Any

from aiohttp import WSMsgType, web

from shared import envelope as env
from shared import link, linkstream
from shared.linkstream import HEARTBEAT_SECONDS, MAX_FRAME_BYTES
from shared.signing import KeyRing, SignatureError, Signer, load_key_ring, load_signer
from shared.sqlite import Writer
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

__all__ = ["HEARTBEAT_SECONDS", "MAX_FRAME_BYTES", "LinkService"]

log = logging.getLogger(__name__)
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
        self.peer_ip = ""
        self.sessions = 0
        self.counters = linkstream.LinkCounters()
        self.last_error: str | None = None
        self._ws: web.WebSocketResponse | None = None
        self._session_lock = asyncio.Lock()
        self._stream_now: linkstream.LinkStream | None = None

    # --- LinkSide ------------------------------------------------------------------------------------

    peer = env.LGWAN

    @property
    def feed(self) -> linkstream.OutboxFeed:
        return self.outbox.feed

    async def health(self) -> dict[str, Any]:
        state = await store.get_state(self.db)
        stream = self._stream_now
        acked = max(state.out_acked_seq, stream.peer_acked if stream is not None else 0)
        oldest = await store.oldest_unacked_created_at(self.db, acked)
        lag = max(0.0, (utcnow() - parse_iso(oldest)).total_seconds()) if oldest else 0.0
        return {"connected": self.connected, "connected_since": self.connected_since, "sessions": self.sessions,
                "last_error": self.last_error,
                "outbound": {"last_seq": state.out_last_seq, "acked_seq": acked,
                             "depth": max(0, state.out_last_seq - acked), "lag_seconds": round(lag, 3),
                             "sent": self.counters.sent},
                "inbound": {"applied_seq": state.in_applied_seq, "received": self.counters.received}}

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
        self.connected, self.connected_since, self.peer_ip = True, now_iso(), ip
        self.sessions += 1
        self.last_error = None
        log.info("queue link up", extra={"peer": ip, "reset": ready["reset"], "resume_from": ready["ack"] + 1})
        await self._stream(ws, int(ready["ack"]) + 1, int(ready["ack"]), state.in_applied_seq)

    async def _ready(self, ready: dict[str, Any], ip: str, ids: dict[str, str]) -> None:
        now = now_iso()
        async with self.db.transaction("link_ready") as conn:
            # The outbox may be renumbered below: the sender reads it afresh from the table.
            self.db.after_commit(self.outbox.feed.reset)
            if ready["reset"]:
                # LGWAN rebuilds our copy from scratch: forget the rooms (accounts and queued posts stay).
                await mirror_store.purge_mirror(conn)
                await store.reset_inbound(conn, now)
                self.db.after_commit(lambda: self.hub.broadcast('{"type":"resync"}'))
            renumbered = await store.align_outbox(conn, int(ready["ack"]), now)
            await self.audit.record(conn, "link.up", actor=LINK_ACTOR, ip=ip,
                                    detail={"reset": ready["reset"], "lgwan_ack": ready["ack"],
                                            "renumbered": renumbered, "lgwan_key_id": ids["lgwan_key_id"]})

    # --- streaming (shared.linkstream) ------------------------------------------------------------

    async def _stream(self, ws: web.WebSocketResponse, start: int, peer_acked: int, applied: int) -> None:
        self._stream_now = linkstream.LinkStream(ws, self, signer=self.signer, keyring=self.keyring, skew=self.skew,
                                                 counters=self.counters, start=start, peer_acked=peer_acked,
                                                 applied=applied)
        try:
            await self._stream_now.run()
        finally:
            self._stream_now = None

    async def outbox_from(self, first_seq: int, limit: int) -> list[linkstream.Queued]:
        return [linkstream.Queued(row.seq, row.envelope_id, env.payload_from_json(row.kind, row.payload))
                for row in await store.outbox_from(self.db, first_seq, limit)]

    async def mark_acked(self, previous: int, acked: int) -> None:
        async with self.db.transaction("link_ack") as conn:
            await store.mark_acked(conn, previous, acked, now_iso())

    async def applied_id(self, seq: int) -> str | None:
        return await store.inbox_envelope_id(self.db, seq)

    def batchable(self, envelope: env.Envelope) -> bool:
        return True

    def peer_refused(self, code: str, seq: int | None) -> None:
        log.warning("LGWAN rejected an envelope", extra={"code": code, "seq": seq})
        self.last_error = "lgwan_rejected_" + code[:40]

    async def frame_too_large(self) -> None:
        await self.audit.record_alone("queue.envelope_rejected", actor=LINK_ACTOR, ip=self.peer_ip, outcome="denied",
                                      detail={"code": "frame_too_large"})

    @staticmethod
    def _detail(verdict: link.Verdict, raw: bytes) -> dict[str, Any]:
        return {"code": verdict.code, "seq": verdict.seq, "kind": verdict.kind, "reason": verdict.detail[:120],
                "bytes": len(raw)}

    async def consume(self, verdict: link.Verdict, raw: bytes) -> None:
        assert verdict.seq is not None and verdict.envelope_id is not None and verdict.kind is not None
        async with self.db.transaction("link_reject") as conn:
            await store.record_inbox(conn, verdict.seq, verdict.envelope_id, verdict.kind,
                                     f"rejected:{verdict.code}", now_iso())
            await self.audit.record(conn, "queue.envelope_rejected", actor=LINK_ACTOR, ip=self.peer_ip, outcome="denied",
                                    target=verdict.envelope_id, detail=self._detail(verdict, raw))

    async def replayed(self, verdict: link.Verdict, raw: bytes, applied: int) -> None:
        await self.audit.record_alone("queue.replay", actor=LINK_ACTOR, ip=self.peer_ip, outcome="denied",
                                      target=verdict.envelope_id or "", detail={**self._detail(verdict, raw),
                                                                                "applied": applied})

    async def refused(self, verdict: link.Verdict, raw: bytes) -> None:
        await self.audit.record_alone("queue.envelope_rejected", actor=LINK_ACTOR, ip=self.peer_ip, outcome="denied",
                                      target=verdict.envelope_id or "", detail=self._detail(verdict, raw))

    async def apply(self, envelopes: list[env.Envelope]) -> None:
        """Apply verified, consecutive envelopes together with their inbox records, in one transaction.

        Runs of messages and receipts go through ``ChatService.apply_run`` (a few statements for the
        whole run); every other kind is applied on its own, in order, between them.
        """
        if not envelopes:
            return
        async with self.db.transaction("link_apply") as conn:
            run = self.chat.run(conn)
            for envelope in envelopes:
                p = envelope.payload
                if run.takes(p):
                    await run.add(p)
                else:
                    await run.flush()
                    await self._apply_one(conn, p)
            await run.flush()
            now = now_iso()
            await store.record_inbox_many(conn, [(e.seq, e.id, e.kind, "applied", now) for e in envelopes])

    async def _apply_one(self, conn: Writer, p: env.Payload) -> None:
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
