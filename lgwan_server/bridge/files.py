"""relay→LGWAN files (issue 3, item 9; invariant 3): only what the sanitizer rebuilt and signed, re-checked here.

A guest's or phone's upload reaches LGWAN as ``file.sanitized`` (the sanitizer's verdict and report)
followed by ``file.chunk`` envelopes with the rebuilt bytes (``shared/envelope.py``). Each envelope is
applied inside the bridge inbox's transaction, together with its inbox record, so every chunk is
staged exactly once whatever crashes, and a resent transfer starts over cleanly. Nothing is visible
to staff until every check below has passed:

1. at ``file.sanitized``: the author may post in the room (the same rules as a text post); the verdict
   is signed by a **trusted sanitizer key** (``[bridge] sanitizer_keys_dir``, installed by fingerprint;
   the relay's key is not enough); the report's digest is the signed one and the report says what the
   verdict says; a verdict (``job_id``) is used once;
2. at each ``file.chunk``: in order, well-formed, never beyond the signed size;
3. when all bytes are here, outside the writer's transaction (``run``): the size and SHA-256 are the
   signed ones, the signature is checked again (a key retired meanwhile no longer counts), and the
   bytes are re-checked in a **confined worker**, never in this process — libmagic must find the
   signed type and ``sanitizer/verify.py`` must find nothing (``SanitizerPool.verify``, or a LGWAN-side
   sanitizer service when ``[bridge] sanitizer_socket`` is set);
4. then, in one transaction, the author's right to post is checked once more, the blob is recorded,
   the message is posted with the attachment (origin ``'sanitized'``) and the report is kept with it.

Any failure refuses the file: it is audited (codes and hashes only), its staged bytes are dropped,
nothing is stored or shown, and the relay is told with ``post.refused`` so the author sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, Protocol

from shared import envelope as env
from shared.signing import KeyRing, decode_public_key, fingerprint, key_id, load_key_ring, load_peers
from shared.sqlite import Writer
from shared.timeutil import now_iso, to_iso, utcnow
from shared.verdict import (
    CHUNK_BYTES,
    OUTPUT_MIME,
    SanitizerClient,
    SanitizerUnavailable,
    Verdict,
    VerdictError,
    check_bytes,
    check_report,
    check_verdict,
    decode_report,
    decode_token,
)

from ..config import BridgeConfig
from ..errors import AppError
from ..services.actor import Actor
from ..services.audit import AuditService
from ..services.messages import MessageService, NewMessage
from ..storage import bridge as bridge_store
from ..storage import files as file_store
from ..storage import org as org_store
from ..storage import rooms as room_store
from ..storage import sanitized as store
from ..storage.blobs import BlobStore, TooLarge
from ..storage.database import Database
from ..storage.sanitized import SanitizedFile
from .inbox import BRIDGE_ACTOR, BridgeInbox, Refused
from .outbox import BridgeOutbox

log = logging.getLogger(__name__)
RETRY_SECONDS = 5.0
IDLE_SECONDS = 30.0
# Refusals the relay has a message for; every other reason reaches the author as "file_refused"
# (the specific code is in LGWAN's audit log, not on the internet side).
_TELL_AS_IS = frozenset({"not_member", "room_not_crossing", "guest_inactive", "room_archived", "read_only_member",
                         "author_inactive", "mobile_not_granted", "announcement_owner_only", "invalid_thread"})


class Verifier(Protocol):
    async def verify(self, data: bytes, kind: str) -> tuple[str, str]: ...

    async def close(self) -> None: ...


class PoolVerifier:
    """Re-checks in children of a fork server this server starts (``sanitizer.pool``; no parser here)."""

    def __init__(self) -> None:
        self._pool: Any = None

    async def verify(self, data: bytes, kind: str) -> tuple[str, str]:
        if self._pool is None:
            # Imported on first use: sanitizer.pool loads no parser (those live in the fork server).
            from sanitizer.pool import SanitizerPool

            self._pool = SanitizerPool(workers=1)
        code, detail = await self._pool.verify(data, kind)
        if code.value == "worker_crashed" and "fork server unavailable" in detail:
            raise SanitizerUnavailable("fork server unavailable")   # the host's problem, not the file's: retry
        return str(code.value), detail

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


class SocketVerifier:
    """Re-checks through a LGWAN-side sanitizer service (its own user, no network)."""

    def __init__(self, socket_path: Any) -> None:
        self._client = SanitizerClient(socket_path, timeout=300.0)

    async def verify(self, data: bytes, kind: str) -> tuple[str, str]:
        return await self._client.verify(data, kind)

    async def close(self) -> None:
        return None


class SanitizedFileInbox:
    """Stages, checks and posts files from the relay (see the module docstring)."""

    def __init__(self, cfg: BridgeConfig, db: Database, inbox: BridgeInbox, outbox: BridgeOutbox,
                 messages: MessageService, blobs: BlobStore, audit: AuditService, max_bytes: int,
                 verifier: Verifier | None = None) -> None:
        self.cfg = cfg
        self.db = db
        self.inbox = inbox
        self.outbox = outbox
        self.messages = messages
        self.blobs = blobs
        self.audit = audit
        self.max_bytes = max_bytes
        self.verifier: Verifier = verifier or (SocketVerifier(cfg.sanitizer_socket) if cfg.sanitizer_socket
                                               else PoolVerifier())
        self.wake = asyncio.Event()
        self._orphans: set[str] = set()

    # --- trust ------------------------------------------------------------------------------------

    def trusted_keys(self) -> tuple[KeyRing, dict[str, str]]:
        """The sanitizer keys installed by the admin, read afresh (install-peer/retire-peer need no restart)."""
        directory = self.cfg.sanitizer_keys_dir
        if directory is None:
            return KeyRing([]), {}
        try:
            ring = load_key_ring(directory)
            prints = {key_id(decode_public_key(e["public_key"])): fingerprint(decode_public_key(e["public_key"]))
                      for e in load_peers(directory)}
        except (OSError, ValueError, KeyError) as exc:
            log.error("cannot read the sanitizer keys", extra={"error": str(exc)[:200]})
            return KeyRing([]), {}
        return ring, prints

    def _check_verdict(self, verdict: Verdict) -> str:
        """The fingerprint of the trusted key that signed ``verdict``; raises VerdictError otherwise."""
        ring, prints = self.trusted_keys()
        if len(ring) == 0:
            raise VerdictError("sanitizer_not_trusted")
        check_verdict(verdict, ring)
        return prints.get(verdict.key_id, "")

    # --- applying envelopes (inside the bridge inbox's transaction) ---------------------------------

    async def apply(self, conn: Writer, payload: env.Payload) -> None:
        if isinstance(payload, env.FileSanitized):
            await self._header(conn, payload)
        elif isinstance(payload, env.FileChunk):
            await self._chunk(conn, payload)

    async def _may_post(self, conn: Writer, author: str,
                        room_id: int) -> tuple[org_store.Staff, str, room_store.Room]:
        """The text-post rules, for a file: an active author, a member of a crossing room who may write."""
        kind, staff, affiliation = await self.inbox._author(conn, author)    # noqa: SLF001 - same rules as posts
        room, membership = await self.inbox._room_for(conn, kind, staff.id, room_id)  # noqa: SLF001
        if room.archived:
            raise Refused("room_archived")
        if membership.role == "readonly":
            raise Refused("read_only_member")
        if room.kind == "announcement" and membership.role != "owner":
            raise Refused("announcement_owner_only")
        return staff, affiliation, room

    async def _header(self, conn: Writer, p: env.FileSanitized) -> None:
        known = await store.get_file(conn, p.job_id)
        if known is not None:
            if known.origin_id != p.origin_id:
                # Someone else's verdict: a verdict is good for one upload only.
                await self._tell(conn, p, "verdict_reused", {"known_origin": known.origin_id})
            elif known.state == "receiving":
                await store.restart(conn, p.job_id)       # the relay sends the file again from the start
                await self.audit.record(conn, BRIDGE_ACTOR, "bridge.file_restarted", target_type="sanitized_file",
                                        target_id=p.job_id, detail={"received": known.received})
            else:
                await self.audit.record(conn, BRIDGE_ACTOR, "bridge.file_duplicate", target_type="sanitized_file",
                                        target_id=p.job_id, detail={"state": known.state})
            return
        try:
            staff, _, room = await self._may_post(conn, p.author, p.room_id)
        except Refused as exc:
            await self._tell(conn, p, exc.code)
            return
        if await bridge_store.origin_taken(conn, staff.id, f"relay:{p.origin_id}"):
            await self.audit.record(conn, BRIDGE_ACTOR, "bridge.file_duplicate", target_type="sanitized_file",
                                    target_id=p.job_id, detail={"state": "origin_taken"})
            return
        verdict = Verdict(job_id=p.job_id, signed_at=p.signed_at, input_sha256=p.input_sha256,
                          input_bytes=p.input_bytes, output_sha256=p.output_sha256, output_bytes=p.output_bytes,
                          output_type=p.output_type, output_name=p.output_name, report_sha256=p.report_sha256,
                          key_id=p.sanitizer_key_id, signature="")
        code, report, key_print = "", {}, ""
        try:
            verdict = Verdict(**{**verdict.__dict__, "signature": Verdict.signature_from_token(p.sanitizer_sig)})
            key_print = self._check_verdict(verdict)
            report = decode_report(p.report)
            check_report(report, verdict)
            if p.output_bytes > self.max_bytes:
                raise VerdictError("too_large")
            if p.chunks != -(-p.output_bytes // CHUNK_BYTES):
                raise VerdictError("chunk_count")
        except VerdictError as exc:
            code = exc.code
        row = SanitizedFile(
            job_id=p.job_id, origin_id=p.origin_id, room_id=room.id, author_id=staff.id,
            thread_root_id=p.thread_root_id, output_name=p.output_name, output_type=p.output_type,
            output_sha256=p.output_sha256, output_bytes=p.output_bytes, input_sha256=p.input_sha256,
            input_bytes=p.input_bytes, report=json.dumps(report, ensure_ascii=False) if not code else "{}",
            verdict=json.dumps(verdict.to_json()), sanitizer_key_id=p.sanitizer_key_id,
            sanitizer_fingerprint="" if code else key_print, chunks=p.chunks, received=0,
            state="refused" if code else "receiving", code=code or None, attachment_id=None,
            created_at=now_iso(), checked_at=now_iso() if code else None)
        # The row is kept for a refusal too: its job id is then spent, and the chunks that follow are dropped.
        await store.insert_file(conn, row)
        if code:
            await self._tell(conn, p, code)

    async def _chunk(self, conn: Writer, p: env.FileChunk) -> None:
        f = await store.get_file(conn, p.job_id)
        if f is None:
            if p.job_id not in self._orphans:       # once per file, not once per chunk
                self._orphans.add(p.job_id)
                await self.audit.record(conn, BRIDGE_ACTOR, "bridge.file_chunk_orphan", outcome="denied",
                                        target_type="sanitized_file", target_id=p.job_id, detail={"index": p.index})
            return
        if f.state != "receiving" or p.index < f.received:
            return      # the rest of a refused file, or a chunk already staged
        try:
            if p.index > f.received:
                raise VerdictError("chunk_gap")
            if p.index >= f.chunks:
                raise VerdictError("chunk_count")
            data = decode_token(p.data, CHUNK_BYTES)
            last = p.index == f.chunks - 1
            if (not last and len(data) != CHUNK_BYTES) or (last and p.index * CHUNK_BYTES + len(data) != f.output_bytes):
                raise VerdictError("size_mismatch")
        except VerdictError as exc:
            await self._refuse(conn, f, exc.code)
            return
        if await store.insert_chunk(conn, f.job_id, p.index, data) == f.chunks:
            await store.set_state(conn, f.job_id, "received")
            self.db.after_commit(self.wake.set)

    # --- refusing ---------------------------------------------------------------------------------

    async def _tell(self, conn: Writer, p: env.FileSanitized, code: str,
                    extra: dict[str, Any] | None = None) -> None:
        """Refuse a file at its header: audit and tell the author (its chunks are then dropped quietly)."""
        self._orphans.add(p.job_id)
        await self.audit.record(conn, BRIDGE_ACTOR, "bridge.file_refused", outcome="denied",
                                target_type="sanitized_file", target_id=p.job_id,
                                detail={"code": code, "origin": p.origin_id, "room_id": p.room_id, "author": p.author,
                                        "input_sha256": p.input_sha256, "output_sha256": p.output_sha256,
                                        "output_type": p.output_type, "sanitizer_key_id": p.sanitizer_key_id,
                                        **(extra or {})})
        await self.outbox.enqueue(conn, env.PostRefused(origin_id=p.origin_id, room_id=p.room_id,
                                                        code=code if code in _TELL_AS_IS else "file_refused"),
                                  p.room_id)

    async def _refuse(self, conn: Writer, f: SanitizedFile, code: str, detail: str = "") -> None:
        """Refuse a staged file: nothing stored or shown, bytes dropped, audited, the author told."""
        await store.set_state(conn, f.job_id, "refused", code=code, checked_at=now_iso())
        await store.drop_chunks(conn, f.job_id)
        await self.audit.record(conn, BRIDGE_ACTOR, "bridge.file_refused", outcome="denied",
                                target_type="sanitized_file", target_id=f.job_id,
                                detail={"code": code, "detail": detail[:120], "origin": f.origin_id,
                                        "room_id": f.room_id, "author_id": f.author_id, "input_sha256": f.input_sha256,
                                        "output_sha256": f.output_sha256, "output_type": f.output_type,
                                        "sanitizer_key_id": f.sanitizer_key_id})
        await self.outbox.enqueue(conn, env.PostRefused(origin_id=f.origin_id, room_id=f.room_id,
                                                        code=code if code in _TELL_AS_IS else "file_refused"),
                                  f.room_id)

    # --- the re-check and the post (outside the inbox's transaction) --------------------------------

    async def run(self) -> None:
        """Finish every file whose bytes are all here, now and whenever more arrive (also after a restart)."""
        while True:
            self.wake.clear()
            try:
                for job_id in await store.list_received(self.db):
                    await self.finish(job_id)
                await self.expire_stale()
            except SanitizerUnavailable as exc:
                log.warning("the sanitizer re-check is unavailable; files wait", extra={"error": str(exc)[:80]})
                await asyncio.sleep(RETRY_SECONDS)
                continue
            except Exception:
                log.exception("sanitized file processing failed")
                await asyncio.sleep(RETRY_SECONDS)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), IDLE_SECONDS)

    async def expire_stale(self) -> None:
        """Drop transfers that stopped half-way long ago (the relay was wiped or restored): refused, told."""
        before = to_iso(utcnow() - timedelta(seconds=self.cfg.keep_acked))
        for job_id in await store.list_stale(self.db, before):
            async with self.db.transaction("sanitized_file_expire") as conn:
                f = await store.get_file(conn, job_id)
                if f is not None and f.state == "receiving":
                    await self._refuse(conn, f, "transfer_abandoned")

    async def finish(self, job_id: str) -> None:
        f = await store.get_file(self.db, job_id)
        if f is None or f.state != "received":
            return
        data = await store.read_chunks(self.db, job_id)
        code, detail = "", ""
        try:
            verdict = Verdict.from_json(json.loads(f.verdict))
            check_bytes(verdict, data)
            self._check_verdict(verdict)
        except VerdictError as exc:
            code = exc.code
        if not code:
            # Parsing untrusted bytes happens in a confined child, never here.
            result, detail = await self.verifier.verify(data, f.output_type)
            if result != "ok":
                code = f"recheck_{result}"
        if not code:
            code = await self._store_blob(f, data)
        del data
        async with self.db.transaction("sanitized_file") as conn:
            current = await store.get_file(conn, job_id)
            if current is None or current.state != "received":
                return
            if code:
                await self._refuse(conn, current, code, detail)
            else:
                await self._post(conn, current)

    async def _store_blob(self, f: SanitizedFile, data: bytes) -> str:
        """Write the checked bytes to their content address before the row that names them commits."""

        async def one() -> AsyncIterator[bytes]:
            yield data

        try:
            received = await self.blobs.receive(one(), self.max_bytes)
        except TooLarge:
            return "too_large"
        if received.sha256 != f.output_sha256:
            self.blobs.discard(received)
            return "sha256_mismatch"
        await self.blobs.commit(received)
        return ""

    async def _post(self, conn: Writer, f: SanitizedFile) -> None:
        author = await org_store.get_staff(conn, f.author_id)
        token = f"{'g' if author is not None and author.role == 'guest' else 's'}:{f.author_id}"
        try:
            staff, affiliation, room = await self._may_post(conn, token, f.room_id)
        except Refused as exc:
            await self._refuse(conn, f, exc.code)
            return
        client_msg_id = f"relay:{f.origin_id}"
        if await bridge_store.origin_taken(conn, staff.id, client_msg_id):
            await store.set_state(conn, f.job_id, "refused", code="duplicate_origin", checked_at=now_iso())
            await store.drop_chunks(conn, f.job_id)
            return
        now = now_iso()
        await file_store.insert_blob(conn, f.output_sha256, f.output_bytes, OUTPUT_MIME[f.output_type], now)
        actor = Actor(staff.id, staff.org_id, staff.login, affiliation, "relay", staff.role)
        try:
            message = await self.messages.post_in_transaction(
                conn, actor, staff.display_name, room.id,
                NewMessage(body="", thread_root_id=f.thread_root_id, client_msg_id=client_msg_id), "", [],
                attachment=(f.output_name, f.output_sha256), attachment_origin="sanitized")
        except AppError as exc:
            await self._refuse(conn, f, exc.code)
            return
        attachment_id = int(message["attachments"][0]["id"])
        await store.set_state(conn, f.job_id, "posted", attachment_id=attachment_id, checked_at=now)
        await store.drop_chunks(conn, f.job_id)
        await self.audit.record(conn, actor, "bridge.file_accepted", target_type="attachment", target_id=attachment_id,
                                detail={"job_id": f.job_id, "room_id": room.id, "input_sha256": f.input_sha256,
                                        "output_sha256": f.output_sha256, "output_type": f.output_type,
                                        "sanitizer_key_id": f.sanitizer_key_id,
                                        "sanitizer_fingerprint": f.sanitizer_fingerprint})
        log.info("sanitized file posted", extra={"job_id": f.job_id, "attachment_id": attachment_id})
