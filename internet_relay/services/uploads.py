"""Files from guests and staff phones (issue 3, item 9): rebuilt by the sanitizer before anything crosses.

An upload is held in memory only for the length of the request: it goes to the sanitizer service
(``[sanitizer] socket``; ``python -m sanitizer serve``), and the relay keeps **only what the sanitizer
rebuilt** — the rebuilt bytes, the report and the sanitizer's signed verdict — as outbox rows
(``file.sanitized`` then ``file.chunk`` × n, see ``shared/envelope.py``), queued in one transaction
with the author's pending copy. The original is never written anywhere and never crosses. LGWAN
verifies the verdict with the sanitizer's key (the relay does not have it), re-checks the bytes and
posts the file; its ``message.new`` replaces the pending copy, or ``post.refused`` says why not.

A refusal never crosses either: the guest gets the sanitizer's reason in やさしい日本語, and the
relay's audit records the code and the upload's SHA-256 (hashes only; no name, no content).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from shared import envelope as env
from shared.textsafe import safe_filename
from shared.timeutil import now_iso
from shared.verdict import SanitizerClient, SanitizerUnavailable, encode_report, split_chunks

from ..config import RelayConfig
from ..errors import AppError
from ..hub import Hub
from ..ratelimit import RateLimiter
from ..storage import mirror as store
from ..storage.accounts import Account
from ..storage.database import Database
from ..storage.mirror import Pending
from .audit import AuditService
from .chat import ChatService, dumps, pending_json
from .outbox import Outbox

log = logging.getLogger(__name__)
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")    # as for text posts
MAX_IN_FLIGHT = 4       # uploads held in memory at once (each up to [sanitizer] max_upload_bytes)

# Why a file was not accepted, in やさしい日本語 (short sentences, common words) and English. Keys are the
# sanitizer's stable codes (sanitizer/errors.py); a code missing here gets the general message.
SANITIZER_REASONS: dict[str, tuple[str, str]] = {
    "empty_file": ("ファイルが 空です。", "The file is empty."),
    "too_large": ("ファイルが 大きすぎます。", "The file is too large."),
    "unsupported_type": (
        "この しゅるいの ファイルは 送れません。送れるのは PDF、Word・Excel・PowerPoint（.docx .xlsx .pptx）、"
        "画像（PNG・JPEG・GIF）、テキスト・CSV です。",
        "This type of file cannot be sent. You can send PDF, Word/Excel/PowerPoint (.docx .xlsx .pptx), "
        "images (PNG, JPEG, GIF), text and CSV."),
    "type_mismatch": ("ファイルの 名前の 終わり（.pdf など）と、ファイルの 中身が ちがいます。",
                      "The file name's extension does not match what is inside the file."),
    "legacy_office": ("古い 形の Office ファイル（.doc .xls .ppt）は 送れません。"
                      ".docx .xlsx .pptx の 形で 保存して から、もう一度 送って ください。",
                      "Old Office files (.doc .xls .ppt) cannot be sent. Save as .docx .xlsx .pptx and send again."),
    "active_markup": ("SVG や HTML の ファイルは 送れません。PNG か PDF に して から 送って ください。",
                      "SVG and HTML files cannot be sent. Convert to PNG or PDF first."),
    "pdf_encrypted": ("パスワードが かかった PDF は 送れません。パスワードを はずして から 送って ください。",
                      "Password-protected PDFs cannot be sent. Remove the password and send again."),
    "pdf_malformed": ("PDF が こわれて いるので 送れません。", "The PDF is damaged."),
    "pdf_too_many_pages": ("PDF の ページが 多すぎます。", "The PDF has too many pages."),
    "office_encrypted": ("パスワードが かかった Office ファイルは 送れません。パスワードを はずして から 送って ください。",
                         "Password-protected Office files cannot be sent. Remove the password and send again."),
    "ooxml_malformed": ("Office ファイルが こわれて いるので 送れません。", "The Office file is damaged."),
    "ooxml_unknown_part": ("ファイルの 中に、安全か どうか わからない ものが あるので 送れません。",
                           "The file contains something whose safety cannot be checked."),
    "xml_forbidden_construct": ("ファイルの 中に、使えない 書き方が あるので 送れません。",
                                "The file uses a construct that is not allowed."),
    "zip_bomb": ("ファイルの 中身が 大きすぎるので 送れません。", "The file expands to an abnormal size."),
    "zip_too_many_entries": ("ファイルの 中身が 多すぎるので 送れません。", "The file has too many parts."),
    "zip_unsafe_name": ("ファイルの 中に、おかしな 名前の ものが あるので 送れません。",
                        "The file contains a part with an unsafe name."),
    "xlsx_too_many_cells": ("Excel の セルが 多すぎます。", "The workbook has too many cells."),
    "image_malformed": ("画像が こわれて いるので 送れません。", "The image is damaged."),
    "image_too_large": ("画像が 大きすぎます。小さく して から 送って ください。", "The image is too large."),
    "text_undecodable": ("文字コードが わかりません。UTF-8 で 保存して から 送って ください。",
                         "The text encoding is unknown. Save as UTF-8 and send again."),
    "csv_malformed": ("CSV の 形が おかしいので 送れません。", "The CSV file is malformed."),
    "limit_cpu": ("ファイルの 確認に 時間が かかりすぎたので 送れません。", "Checking the file took too long."),
    "limit_memory": ("ファイルの 確認に 時間が かかりすぎたので 送れません。", "Checking the file took too much memory."),
    "limit_time": ("ファイルの 確認に 時間が かかりすぎたので 送れません。", "Checking the file took too long."),
    "verify_failed": ("ファイルに 危ない ものが 残って いたので 送れません。",
                      "Something dangerous remained in the file, so it was not sent."),
}
GENERAL_REASON = ("ファイルを 確認 できなかったので 送れません。", "The file could not be checked, so it was not sent.")

# The relay's own upload errors: (HTTP status, やさしい日本語, English).
ERRORS: dict[str, tuple[int, str, str]] = {
    "uploads_off": (503, "いまは ファイルを 送れません。", "File uploads are not available."),
    "file_missing": (400, "ファイルを えらんで ください。", "Please choose a file."),
    "file_too_large": (413, "ファイルが 大きすぎます。{mb}MB までに して ください。",
                       "The file is too large (at most {mb} MB)."),
    "file_name_not_allowed": (400, "ファイルの 名前に 使えない 文字が あります。名前を 変えて から 送って ください。",
                              "The file name cannot be used. Rename the file and send again."),
    "file_name_my_number": (422, "ファイルの 名前に マイナンバー（個人番号）のような 12けたの 番号が あります。"
                                 "名前を 変えて ください。",
                            "The file name contains what looks like a My Number. Rename the file."),
    "sanitizer_unavailable": (503, "いま ファイルを 確認 できません。少し 待って から、もう一度 送って ください。",
                              "Files cannot be checked right now. Please try again later."),
    "file_refused": (422, "{reason}", "{reason_en}"),
}


class UploadRefused(Exception):
    """An upload that does not go any further; ``to_json`` is what the uploader sees."""

    def __init__(self, code: str, *, reason: str | None = None, **values: Any) -> None:
        super().__init__(code)
        self.code = code
        self.reason = reason
        self.values = values

    @property
    def status(self) -> int:
        return ERRORS[self.code][0]

    def to_json(self) -> dict[str, Any]:
        _, ja, en = ERRORS[self.code]
        values = dict(self.values)
        if self.reason is not None:
            values["reason"], values["reason_en"] = SANITIZER_REASONS.get(self.reason, GENERAL_REASON)
        body: dict[str, Any] = {"code": self.code, "message": ja.format(**values), "message_en": en.format(**values)}
        if self.reason is not None:
            body["detail"] = {"reason": self.reason}
        return {"error": body}


@dataclass(frozen=True)
class Admitted:
    """An upload that may be read: the caller is in the room and under the rate limit."""

    account: Account
    room_id: int
    origin_id: str
    thread_root_id: int | None


class UploadService:
    def __init__(self, db: Database, cfg: RelayConfig, audit: AuditService, outbox: Outbox, hub: Hub,
                 chat: ChatService) -> None:
        self.db = db
        self.cfg = cfg.sanitizer
        self.audit = audit
        self.outbox = outbox
        self.hub = hub
        self.chat = chat
        self.client = SanitizerClient(self.cfg.socket, self.cfg.timeout) if self.cfg.socket else None
        self.limiter = RateLimiter(self.cfg.uploads_per_hour, 3600.0)
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)

    @property
    def enabled(self) -> bool:
        return self.client is not None

    async def admit(self, account: Account, ip: str, room_id: int, client_msg_id: str,
                    thread_root_id: int | None) -> Admitted | dict[str, Any]:
        """Everything that can be decided before reading a byte of the file.

        Returns the upload's ``Admitted`` state, or, for a ``client_msg_id`` already taken (a retry),
        what the first attempt produced.
        """
        if self.client is None:
            raise UploadRefused("uploads_off")
        # The same chokepoint as text posts: guests only in `guests` rooms, phones also in `staff_mobile`.
        room = await self.chat.access_room(account, room_id)
        if not _CLIENT_ID.match(client_msg_id):
            raise AppError("invalid_request", field="client_msg_id")
        origin_id = f"{account.member}:{client_msg_id}"
        existing = await store.get_pending(self.db, origin_id)
        if existing is not None:
            return pending_json(existing, account.member)
        if await store.message_by_origin(self.db, origin_id) is not None:
            raise AppError("conflict")
        if thread_root_id is not None:
            root = await store.get_message(self.db, thread_root_id)
            if root is None or root.room_id != room.id or root.thread_root_id is not None:
                raise AppError("invalid_request", field="thread_root_id")
        if not self.limiter.allow(account.member):
            await self.audit.record_alone("file.rate_limited", actor=account.member, ip=ip, outcome="denied",
                                          target=f"room:{room.id}")
            raise AppError("rate_limited")
        return Admitted(account, room.id, origin_id, thread_root_id)

    async def too_large(self, admitted: Admitted, ip: str) -> UploadRefused:
        await self.audit.record_alone("file.refused", actor=admitted.account.member, ip=ip, outcome="denied",
                                      target=f"room:{admitted.room_id}", detail={"code": "too_large_at_relay"})
        return UploadRefused("file_too_large", mb=self.cfg.max_upload_bytes // (1024 * 1024))

    async def upload(self, admitted: Admitted, ip: str, filename: str, data: bytes) -> dict[str, Any]:
        """Sanitize ``data``; queue only the rebuilt file for LGWAN, or refuse with the reason.

        ``data`` is the upload as received (untrusted). It is passed to the sanitizer and dropped; it is
        never stored.
        """
        assert self.client is not None
        member = admitted.account.member
        target = f"room:{admitted.room_id}"
        if not data:
            raise UploadRefused("file_missing")
        name = safe_filename(filename or "file")
        problem = env.crossing_text_problem(name, multiline=False)
        if problem == "my_number":
            await self.audit.record_alone("file.my_number_blocked", actor=member, ip=ip, outcome="denied",
                                          target=target)
            raise UploadRefused("file_name_my_number")
        if problem is not None:
            raise UploadRefused("file_name_not_allowed")
        input_sha256 = hashlib.sha256(data).hexdigest()
        try:
            async with self._in_flight:
                result = await self.client.sanitize(data, name)
        except SanitizerUnavailable as exc:
            log.warning("sanitizer service unavailable", extra={"error": str(exc)[:80], "member": member})
            await self.audit.record_alone("file.sanitizer_unavailable", actor=member, ip=ip, outcome="failed",
                                          target=target, detail={"input_sha256": input_sha256,
                                                                 "input_bytes": len(data)})
            raise UploadRefused("sanitizer_unavailable") from exc
        finally:
            del data        # the upload itself goes no further than the sanitizer
        if not result.rebuilt:
            report = result.report or {}
            await self.audit.record_alone(
                "file.refused", actor=member, ip=ip, outcome="denied", target=target,
                detail={"code": result.code, "input_sha256": input_sha256,
                        "input_bytes": (report.get("input") or {}).get("bytes"),
                        "detected_type": (report.get("input") or {}).get("detected_type")})
            raise UploadRefused("file_refused", reason=result.code)
        assert result.verdict is not None and result.data is not None and result.report is not None
        verdict = result.verdict
        if env.crossing_text_problem(verdict.output_name, multiline=False) is not None:
            raise UploadRefused("file_name_not_allowed")
        chunks = split_chunks(result.data)
        now = now_iso()
        header = env.FileSanitized(
            origin_id=admitted.origin_id, room_id=admitted.room_id, author=member, posted_at=now,
            thread_root_id=admitted.thread_root_id, job_id=verdict.job_id, signed_at=verdict.signed_at,
            input_sha256=verdict.input_sha256, input_bytes=verdict.input_bytes, output_sha256=verdict.output_sha256,
            output_bytes=verdict.output_bytes, output_type=verdict.output_type, output_name=verdict.output_name,
            report=encode_report(result.report), report_sha256=verdict.report_sha256,
            sanitizer_key_id=verdict.key_id, sanitizer_sig=verdict.signature_token, chunks=len(chunks))
        # What the author sees until LGWAN confirms (never crosses: the envelopes above are what crosses).
        pending = Pending(admitted.origin_id, admitted.room_id, member, f"📎 {verdict.output_name}",
                          admitted.thread_root_id, now, "queued", None)
        removed = [{"item": r["item"], "count": r["count"]} for r in result.report.get("removed", [])]
        async with self.db.transaction("file_upload", offload=True) as conn:
            if await store.get_pending(conn, admitted.origin_id) is not None:
                raise AppError("conflict")
            await store.insert_pending(conn, pending)
            await self.outbox.enqueue(conn, header)
            for index, token in enumerate(chunks):
                await self.outbox.enqueue(conn, env.FileChunk(job_id=verdict.job_id, index=index, data=token))
            await self.audit.record(conn, "file.upload", actor=member, ip=ip, target=target, detail={
                "job_id": verdict.job_id, "input_sha256": verdict.input_sha256, "output_sha256": verdict.output_sha256,
                "output_type": verdict.output_type, "output_bytes": verdict.output_bytes, "chunks": len(chunks),
                "removed": removed})
            out = pending_json(pending, member)
            frame = dumps({"type": "pending", "pending": out})
            self.db.after_commit(lambda: self.hub.publish([member], frame))
        summary = result.report.get("summary") or {}
        return {**out, "file": {"name": verdict.output_name, "type": verdict.output_type,
                                "bytes": verdict.output_bytes, "sha256": verdict.output_sha256,
                                "removed": summary.get("ja", ""), "removed_en": summary.get("en", "")}}


def refusal_body(exc: UploadRefused) -> str:
    return json.dumps(exc.to_json(), ensure_ascii=False)
