"""公文書管理: mark chat as 行政文書, keep it for its retention period, hold, dispose, export.

Retention follows the 行政文書 rule: the period starts on 1 April of the fiscal year after the
message was written (翌年度4月1日起算) and the organisation's own table sets the years.
Marked messages cannot be deleted before their period ends; a legal hold stops disposal
whatever the class; disposal needs a second person's approval and leaves a tombstone.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from shared import limits
from shared.manifest import build_bundle
from shared.signing import SignatureError, Signer, fingerprint, load_signer, write_signer
from shared.sqlite import Writer
from shared.textsafe import clean_line
from shared.timeutil import JST, now_iso

from ..errors import AppError
from ..storage import audit as audit_store
from ..storage import files as file_store
from ..storage import messages as message_store
from ..storage import records as store
from ..storage import rooms as room_store
from ..storage.database import Database
from ..storage.records import Mark, RecordRow
from . import records_export as export
from . import records_pdf
from .actor import Actor
from .audit import AuditService
from .events import EventService
from .rooms import RoomService

RECORDS_ROLES = ("records_officer", "org_admin", "server_admin")
MAX_EXPORT_ROWS = 100_000


def fiscal_year(moment: date) -> int:
    return moment.year if moment.month >= 4 else moment.year - 1


def retain_until(created: date, years: int) -> date:
    """Last day of retention: 31 March, ``years`` after the 翌年度4月1日 start. 1年未満 (0): no minimum."""
    if years <= 0:
        return created
    return date(fiscal_year(created) + 1 + years, 3, 31)


def today_jst() -> date:
    return datetime.now(JST).date()


@dataclass(frozen=True)
class ExportRequest:
    room_id: int
    thread_root_id: int | None = None
    since: str | None = None
    until: str | None = None
    marked_only: bool = False
    wareki: bool = False


class RecordsService:
    def __init__(self, db: Database, rooms: RoomService, events: EventService, audit: AuditService,
                 key_dir: Path) -> None:
        self.db = db
        self.rooms = rooms
        self.events = events
        self.audit = audit
        self.key_dir = key_dir
        self._signer: Signer | None = None

    # --- signing key ---------------------------------------------------------------------------

    def signer(self) -> Signer:
        """The records key, created on first use (its fingerprint is shown to admins)."""
        if self._signer is None:
            try:
                self._signer = load_signer(self.key_dir)
            except SignatureError as exc:
                if exc.code != "no_private_key":
                    raise
                signer = Signer.generate()
                write_signer(self.key_dir, signer)
                self._signer = signer
        return self._signer

    def key_fingerprint(self) -> str:
        return fingerprint(self.signer().public_key)

    # --- guards --------------------------------------------------------------------------------

    @staticmethod
    def require_records_role(actor: Actor) -> None:
        if actor.role not in RECORDS_ROLES:
            raise AppError("forbidden")

    async def _room_for_records(self, actor: Actor, room_id: int) -> room_store.Room:
        """Members, the room's 文書管理者, and records officers/admins of its organisation."""
        assert actor.staff_id is not None
        room = await room_store.get_room(self.db, room_id)
        if room is None:
            raise AppError("room_not_found")
        if actor.role in RECORDS_ROLES and actor.org_id == room.org_id:
            return room
        if await store.get_room_officer(self.db, room_id) == actor.staff_id:
            return room
        return (await self.rooms.access_room(actor.staff_id, room_id)).room

    # --- classes and officers ------------------------------------------------------------------

    async def classes(self, org_id: int) -> list[store.RetentionClass]:
        async with self.db.transaction("records_classes") as conn:
            await store.ensure_default_classes(conn, org_id)
        return await store.list_classes(self.db, org_id)

    async def set_classes(self, actor: Actor, items: list[dict[str, Any]]) -> list[store.RetentionClass]:
        if not actor.is_org_admin or actor.org_id is None:
            raise AppError("forbidden")
        async with self.db.transaction("records_set_classes") as conn:
            await store.ensure_default_classes(conn, actor.org_id)
            for i, item in enumerate(items):
                await store.upsert_class(conn, actor.org_id, item["code"], clean_line(item["label"]),
                                         item["years"], i, item.get("active", True))
            await self.audit.record(conn, actor, "records.classes", target_type="org", target_id=actor.org_id,
                                    detail={"codes": [i["code"] for i in items]})
        return await store.list_classes(self.db, actor.org_id)

    async def set_room_officer(self, actor: Actor, room_id: int, staff_id: int) -> None:
        assert actor.staff_id is not None
        room = await room_store.get_room(self.db, room_id)
        if room is None:
            raise AppError("room_not_found")
        if not (actor.is_org_admin and actor.org_id == room.org_id):
            await self.rooms.require_owner(actor.staff_id, room_id)
        rows = await self.db.fetchall("SELECT org_id, status FROM staff WHERE id = ?", (staff_id,))
        if not rows or rows[0][0] != room.org_id or rows[0][1] != "active":
            raise AppError("staff_not_found")
        async with self.db.transaction("records_officer") as conn:
            await store.set_room_officer(conn, room_id, staff_id, actor.staff_id, now_iso())
            await self.audit.record(conn, actor, "records.officer", target_type="room", target_id=room_id,
                                    detail={"staff_id": staff_id})

    # --- marking -------------------------------------------------------------------------------

    async def mark(self, actor: Actor, message_id: int, class_id: int, scope: str, title: str) -> Mark:
        """Mark a message (or a whole thread, on its root) as 行政文書; audited; notifies the 文書管理者."""
        assert actor.staff_id is not None
        msg = await message_store.get_message(self.db, message_id)
        if msg is None:
            raise AppError("message_not_found")
        try:
            room = await self._room_for_records(actor, msg.room_id)
        except AppError as exc:
            raise AppError("message_not_found") from exc
        if scope not in ("message", "thread") or (scope == "thread" and msg.thread_root_id is not None):
            raise AppError("invalid_request", field="scope")
        if msg.deleted:
            raise AppError("message_deleted")
        cls = await store.get_class(self.db, class_id)
        if cls is None or cls.org_id != room.org_id or not cls.active:
            raise AppError("invalid_request", field="class_id")
        until = retain_until(export.jst(msg.created_at).date(), cls.years).isoformat()
        now = now_iso()
        async with self.db.transaction("records_mark") as conn:
            existing = await store.get_mark_for_message(conn, message_id)
            if existing is not None:
                raise AppError("already_marked", mark_id=existing.id)
            mark_id = await store.insert_mark(conn, message_id=message_id, room_id=msg.room_id, scope=scope,
                                              class_id=cls.id, retain_until=until,
                                              title=clean_line(title)[:200], marked_by=actor.staff_id, now=now)
            await self.audit.record(conn, actor, "records.mark", target_type="message", target_id=message_id,
                                    detail={"mark_id": mark_id, "class": cls.code, "scope": scope,
                                            "retain_until": until, "room_id": msg.room_id})
            officer = await store.get_room_officer(conn, msg.room_id)
            data = {"mark_id": mark_id, "message_id": message_id, "room_id": msg.room_id, "class": cls.label,
                    "scope": scope, "retain_until": until, "marked_by": actor.staff_id}
            await self.events.emit(conn, "records.marked", data, room_id=msg.room_id)
            if officer is not None:
                await self.events.emit(conn, "records.notice", data, staff_id=officer)
        mark = await store.get_mark(self.db, mark_id)
        assert mark is not None
        return mark

    async def deletion_blocked(self, conn: Writer, room_id: int, message_id: int,
                               thread_root_id: int | None) -> str | None:
        """Why a message may not be deleted now: 'retention' or 'legal_hold'; None if it may."""
        today = today_jst().isoformat()
        for mark in await store.marks_covering(conn, message_id, thread_root_id):
            if mark.retain_until >= today:
                return "retention"
        if await store.held(conn, room_id, message_id, thread_root_id):
            return "legal_hold"
        return None

    # --- legal holds ---------------------------------------------------------------------------

    async def place_hold(self, actor: Actor, room_id: int | None, message_id: int | None, reason: str) -> int:
        self.require_records_role(actor)
        assert actor.staff_id is not None and actor.org_id is not None
        if (room_id is None) == (message_id is None):
            raise AppError("invalid_request", field="room_id|message_id")
        target_room = room_id
        if message_id is not None:
            msg = await message_store.get_message(self.db, message_id)
            if msg is None:
                raise AppError("message_not_found")
            target_room = msg.room_id
        room = await room_store.get_room(self.db, target_room or 0)
        if room is None or room.org_id != actor.org_id:
            raise AppError("room_not_found")
        async with self.db.transaction("records_hold") as conn:
            hold_id = await store.insert_hold(conn, actor.org_id, room_id, message_id, clean_line(reason)[:500],
                                              actor.staff_id, now_iso())
            await self.audit.record(conn, actor, "records.hold", target_type="hold", target_id=hold_id,
                                    detail={"room_id": room_id, "message_id": message_id})
        return hold_id

    async def release_hold(self, actor: Actor, hold_id: int) -> None:
        self.require_records_role(actor)
        assert actor.staff_id is not None
        hold = await store.get_hold(self.db, hold_id)
        if hold is None or hold.org_id != actor.org_id:
            raise AppError("not_found")
        async with self.db.transaction("records_release") as conn:
            if not await store.release_hold(conn, hold_id, actor.staff_id, now_iso()):
                raise AppError("invalid_transition", reason="already_released")
            await self.audit.record(conn, actor, "records.hold_release", target_type="hold", target_id=hold_id)

    # --- disposal ------------------------------------------------------------------------------

    async def disposal_candidates(self, actor: Actor) -> list[tuple[Mark, bool]]:
        """Marks whose retention has ended, each with whether a hold currently blocks it."""
        self.require_records_role(actor)
        assert actor.org_id is not None
        marks = await store.list_marks(self.db, actor.org_id, None, today_jst().isoformat(), 1000)
        out = []
        for mark in marks:
            msg = await message_store.get_message(self.db, mark.message_id)
            assert msg is not None
            out.append((mark, await store.held(self.db, mark.room_id, mark.message_id, msg.thread_root_id)))
        return out

    async def propose_disposal(self, actor: Actor, mark_ids: list[int]) -> int:
        self.require_records_role(actor)
        assert actor.staff_id is not None and actor.org_id is not None
        today = today_jst().isoformat()
        for mark_id in mark_ids:
            mark = await store.get_mark(self.db, mark_id)
            room = await room_store.get_room(self.db, mark.room_id) if mark else None
            if mark is None or room is None or room.org_id != actor.org_id or mark.disposed_at:
                raise AppError("not_found", mark_id=mark_id)
            if mark.retain_until >= today:
                raise AppError("retention_active", mark_id=mark_id, retain_until=mark.retain_until)
        async with self.db.transaction("records_propose") as conn:
            disposal_id = await store.insert_disposal(conn, actor.org_id, actor.staff_id, now_iso(),
                                                      sorted(set(mark_ids)))
            await self.audit.record(conn, actor, "records.disposal_propose", target_type="disposal",
                                    target_id=disposal_id, detail={"marks": sorted(set(mark_ids))})
        return disposal_id

    async def approve_disposal(self, actor: Actor, disposal_id: int) -> None:
        self.require_records_role(actor)
        assert actor.staff_id is not None
        disposal = await self._disposal(actor, disposal_id)
        if disposal.state != "proposed":
            raise AppError("invalid_transition", state=disposal.state)
        if disposal.proposed_by == actor.staff_id:
            raise AppError("forbidden", reason="approver_must_differ_from_proposer")
        async with self.db.transaction("records_approve") as conn:
            await store.set_disposal_state(conn, disposal_id, "approved", by=actor.staff_id, now=now_iso())
            await self.audit.record(conn, actor, "records.disposal_approve", target_type="disposal",
                                    target_id=disposal_id)

    async def execute_disposal(self, actor: Actor, disposal_id: int) -> int:
        """Remove approved, expired, unheld items; all or nothing. Returns messages removed."""
        self.require_records_role(actor)
        disposal = await self._disposal(actor, disposal_id)
        if disposal.state != "approved" or disposal.approved_by is None:
            await self.audit.record_alone(actor, "records.disposal_execute", outcome="denied",
                                          target_type="disposal", target_id=disposal_id,
                                          detail={"reason": "not_approved", "state": disposal.state})
            raise AppError("disposal_not_approved")
        today, now, removed = today_jst().isoformat(), now_iso(), 0
        async with self.db.transaction("records_execute", offload=True) as conn:
            for mark_id in await store.disposal_mark_ids(conn, disposal_id):
                mark = await store.get_mark(conn, mark_id)
                assert mark is not None
                cls = await store.get_class(conn, mark.class_id)
                assert cls is not None
                if mark.retain_until >= today:
                    raise AppError("retention_active", mark_id=mark_id)
                for message_id in await store.covered_message_ids(conn, mark):
                    msg = await message_store.get_message(conn, message_id)
                    assert msg is not None
                    if await store.held(conn, msg.room_id, msg.id, msg.thread_root_id):
                        raise AppError("legal_hold", message_id=msg.id)
                    await store.insert_tombstone(
                        conn, disposal_id=disposal_id, message_id=msg.id, room_id=msg.room_id,
                        sender_id=msg.sender_id, sender_affiliation=msg.sender_affiliation, created_at=msg.created_at,
                        body_sha256=hashlib.sha256(msg.body.encode()).hexdigest(), class_code=cls.code,
                        retain_until=mark.retain_until, approved_by=disposal.approved_by, now=now)
                    await store.remove_message_content(conn, msg.id, now)
                    await self.events.emit(conn, "message.delete", {"id": msg.id, "room_id": msg.room_id},
                                           room_id=msg.room_id)
                    removed += 1
                await store.mark_disposed(conn, mark_id, now)
            await store.set_disposal_state(conn, disposal_id, "executed", now=now)
            await self.audit.record(conn, actor, "records.disposal_execute", target_type="disposal",
                                    target_id=disposal_id,
                                    detail={"messages_removed": removed, "approved_by": disposal.approved_by})
        return removed

    async def _disposal(self, actor: Actor, disposal_id: int) -> store.Disposal:
        disposal = await store.get_disposal(self.db, disposal_id)
        if disposal is None or disposal.org_id != actor.org_id:
            raise AppError("not_found")
        return disposal

    # --- exports -------------------------------------------------------------------------------

    async def export_room(self, actor: Actor, req: ExportRequest) -> tuple[str, bytes]:
        room = await self._room_for_records(actor, req.room_id)
        rows = await store.record_rows(self.db, room_id=room.id, thread_root_id=req.thread_root_id, since=req.since,
                                       until=req.until, marked_only=req.marked_only, limit=MAX_EXPORT_ROWS + 1)
        if len(rows) > MAX_EXPORT_ROWS:
            raise AppError("invalid_request", reason="too_many_rows", max=MAX_EXPORT_ROWS)
        members = await store.room_member_lines(self.db, room.id)
        info = [("団体", str(actor.org_id)), ("ルーム", room.name), ("ルームID", str(room.id)),
                ("メンバー", "、".join(f"{name}（{dept}）" if dept else name for name, dept in members)),
                ("条件", self._conditions(req)), ("出力日時", export.jst(now_iso()).strftime("%Y-%m-%d %H:%M:%S JST")),
                ("出力者", f"{actor.login}（{actor.affiliation}）"), ("件数", str(len(rows)))]
        bundle = await self._bundle(rows, info, req.wareki, {"kind": "room", "room_id": room.id,
                                                             "conditions": self._conditions(req)})
        await self.audit.record_alone(actor, "records.export", target_type="room", target_id=room.id,
                                      detail={"rows": len(rows), "marked_only": req.marked_only,
                                              "thread_root_id": req.thread_root_id,
                                              "sha256": hashlib.sha256(bundle).hexdigest()})
        return f"kakehashi-room{room.id}-{datetime.now(JST):%Y%m%d%H%M%S}.zip", bundle

    @staticmethod
    def _conditions(req: ExportRequest) -> str:
        parts = ["行政文書のみ" if req.marked_only else "すべて"]
        if req.thread_root_id:
            parts.append(f"スレッド {req.thread_root_id}")
        if req.since or req.until:
            parts.append(f"期間 {req.since or ''}〜{req.until or ''}")
        return " / ".join(parts)

    async def _bundle(self, rows: list[RecordRow], info: list[tuple[str, str]], with_wareki: bool,
                      meta: dict[str, Any]) -> bytes:
        ids = [r.message_id for r in rows]
        history = await store.edit_versions(self.db, ids)
        attachments = await file_store.attachments_of(self.db, ids)
        export_rows = [self._export_row(r, history.get(r.message_id, []), attachments.get(r.message_id, []))
                       for r in rows]
        pdf = len(export_rows) <= records_pdf.MAX_PDF_ROWS
        info = [*info, ("PDF", "records.pdf" if pdf else
                        f"{records_pdf.MAX_PDF_ROWS:,} 件を超えるため作成していません（期間を分けて書き出してください）")]
        # Building the files is CPU work on pure data: a worker thread, so the loop keeps serving.
        files = await asyncio.to_thread(self._files, export_rows, info, with_wareki, pdf)
        signer = self.signer()
        return build_bundle(files, {**meta, "rows": len(rows), "generated_at": now_iso()}, signer)

    @staticmethod
    def _files(rows: list[export.ExportRow], info: list[tuple[str, str]], with_wareki: bool,
               pdf: bool) -> dict[str, bytes]:
        files = {"records.xlsx": export.to_xlsx(rows, info, with_wareki=with_wareki),
                 "records.csv": export.to_csv(rows, with_wareki=with_wareki)}
        if pdf:
            files["records.pdf"] = records_pdf.to_pdf(rows, info, with_wareki=with_wareki)
        return files

    @staticmethod
    def _export_row(r: RecordRow, versions: list[tuple[int, str, str]],
                    atts: list[file_store.Attachment]) -> export.ExportRow:
        at = export.jst(r.created_at)
        history = "\n".join(f"第{v}版 {export.jst(ts).strftime('%Y-%m-%d %H:%M:%S')}: {body}" for v, body, ts in versions)
        return export.ExportRow(
            at=at.strftime("%Y-%m-%d %H:%M:%S"), wareki=export.wareki(at.date()) + at.strftime(" %H:%M:%S"),
            room=r.room_name, message_id=r.message_id, thread_root_id=r.thread_root_id, sender=r.sender_name,
            affiliation=r.sender_affiliation, body=r.body, important="重要" if r.important else "",
            history=history, deleted="削除済み" if r.deleted_at else "",
            attachments="\n".join(a.filename for a in atts), attachment_sha256="\n".join(a.sha256 for a in atts),
            record_class=r.mark_class or "", retain_until=r.retain_until or "")

    # --- audit log export ------------------------------------------------------------------------

    async def export_audit(self, actor: Actor, *, actor_id: int | None, action: str | None, since: str | None,
                           until: str | None) -> tuple[str, bytes]:
        """The 操作ログ (filtered) as a signed bundle for the organisation's periodic review."""
        if actor.role not in ("org_admin", "server_admin", "auditor"):
            raise AppError("forbidden")
        entries = await audit_store.query_entries(self.db, org_id=None if actor.is_server_admin else actor.org_id,
                                                  actor_id=actor_id, action=action, since=since, until=until,
                                                  before_id=None, limit=MAX_EXPORT_ROWS)
        entries.reverse()
        headings = ["ID", "日時（JST）", "ログインID", "所属", "送信元", "操作", "対象種別", "対象ID", "結果", "詳細",
                    "前ハッシュ", "ハッシュ"]
        rows = [[e.id, export.jst(e.at).strftime("%Y-%m-%d %H:%M:%S"), e.actor_login, e.actor_affiliation,
                 e.source_ip, e.action, e.target_type, e.target_id, e.outcome, e.detail, e.prev_hash, e.hash]
                for e in entries]
        conditions = f"操作者ID {actor_id or ''} 操作 {action or ''} 期間 {since or ''}〜{until or ''}"
        info = [("種別", "操作ログ"), ("条件", conditions), ("件数", str(len(rows))),
                ("出力日時", export.jst(now_iso()).strftime("%Y-%m-%d %H:%M:%S JST")),
                ("出力者", f"{actor.login}（{actor.affiliation}）")]
        files = {"audit.xlsx": export.table_xlsx("操作ログ", headings, rows, info),
                 "audit.csv": export.table_csv(headings, rows)}
        bundle = build_bundle(files, {"kind": "audit", "conditions": conditions, "rows": len(rows),
                                      "generated_at": now_iso()}, self.signer())
        await self.audit.record_alone(actor, "audit.export", detail={"rows": len(rows),
                                                                     "sha256": hashlib.sha256(bundle).hexdigest()})
        return f"kakehashi-audit-{datetime.now(JST):%Y%m%d%H%M%S}.zip", bundle

    # --- disclosure-request search (情報公開請求) ---------------------------------------------------

    async def disclosure_search(self, actor: Actor, *, text: str, since: str | None, until: str | None,
                                sender_id: int | None, affiliation: str, limit: int) -> list[RecordRow]:
        if actor.role != "records_officer":
            await self.audit.record_alone(actor, "records.disclosure_search", outcome="denied")
            raise AppError("forbidden")
        assert actor.org_id is not None
        query = clean_line(text)[: limits.MAX_SEARCH_QUERY_CHARS]
        rows = await store.disclosure_rows(self.db, org_id=actor.org_id, text=query, since=since, until=until,
                                           sender_id=sender_id, affiliation=clean_line(affiliation)[:100], limit=limit)
        # An officer's search is itself accountable: the terms are recorded (they are not message text).
        await self.audit.record_alone(actor, "records.disclosure_search",
                                      detail={"q": query, "since": since, "until": until, "sender_id": sender_id,
                                              "affiliation": affiliation[:100], "results": len(rows)})
        return rows

    async def disclosure_export(self, actor: Actor, *, text: str, since: str | None, until: str | None,
                                sender_id: int | None, affiliation: str, wareki: bool) -> tuple[str, bytes]:
        rows = await self.disclosure_search(actor, text=text, since=since, until=until, sender_id=sender_id,
                                            affiliation=affiliation, limit=MAX_EXPORT_ROWS)
        conditions = f"検索語「{text}」 期間 {since or ''}〜{until or ''} 所属 {affiliation} 送信者 {sender_id or ''}"
        info = [("団体", str(actor.org_id)), ("種別", "情報公開請求 検索結果"), ("条件", conditions),
                ("出力日時", export.jst(now_iso()).strftime("%Y-%m-%d %H:%M:%S JST")),
                ("出力者", f"{actor.login}（{actor.affiliation}）"), ("件数", str(len(rows)))]
        bundle = await self._bundle(rows, info, wareki, {"kind": "disclosure", "conditions": conditions})
        await self.audit.record_alone(actor, "records.disclosure_export",
                                      detail={"rows": len(rows), "sha256": hashlib.sha256(bundle).hexdigest()})
        return f"kakehashi-disclosure-{datetime.now(JST):%Y%m%d%H%M%S}.zip", bundle
