"""お知らせ / 掲示板: posts to everyone or to departments, with read confirmation and expiry.

Attachments stay inside LGWAN (they use the staff file store and never cross to the relay).
Organisation-wide notices need an admin or safety manager; anyone may post to their own
department and the departments below it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from shared import limits
from shared.textsafe import clean_line, clean_text, safe_filename
from shared.timeutil import now_iso

from ..errors import AppError
from ..storage import notices as store
from ..storage import org as org_store
from ..storage import targets
from ..storage.database import Database
from ..storage.notices import Notice
from .actor import Actor
from .audit import AuditService
from .events import EventService
from .files import FileService
from .messages import card_json
from .safety import MANAGER_ROLES


def notice_json(n: Notice) -> dict[str, Any]:
    return {"id": n.id, "author_id": n.author_id, "author_affiliation": n.author_affiliation, "title": n.title,
            "body": n.body, "target": n.target, "read_confirmation": n.read_confirmation, "expires_at": n.expires_at,
            "created_at": n.created_at}


class NoticeService:
    def __init__(self, db: Database, events: EventService, audit: AuditService, files: FileService) -> None:
        self.db = db
        self.events = events
        self.audit = audit
        self.files = files

    async def _audience(self, org_id: int, target: dict[str, Any]) -> list[int]:
        departments = None if target.get("all") else list(target.get("departments", []))
        return [s for s, _ in await targets.resolve(self.db, org_id, department_ids=departments)]

    async def _visible(self, staff: org_store.Staff, notice: Notice) -> bool:
        if notice.org_id != staff.org_id:
            return False
        if notice.target.get("all") or notice.author_id == staff.id:
            return True
        if staff.department_id is None:
            return False
        mine = set(await org_store.ancestor_department_ids(self.db.reader(), staff.department_id))
        return bool(mine & set(notice.target.get("departments", [])))

    async def post(self, actor: Actor, staff: org_store.Staff, *, title: str, body: str,
                   department_ids: list[int] | None, read_confirmation: bool, expires_at: str | None) -> Notice:
        assert actor.staff_id is not None and actor.org_id is not None
        if department_ids is None and actor.role not in MANAGER_ROLES:
            raise AppError("forbidden", reason="organisation_wide_notice_needs_manager")
        if department_ids is not None and actor.role not in MANAGER_ROLES:
            own = set(await org_store.descendant_department_ids(self.db.reader(), staff.department_id or 0))
            if not set(department_ids) <= own:
                raise AppError("forbidden", reason="only_own_departments")
        text = clean_text(body).strip()
        if not text or len(text) > limits.MAX_MESSAGE_CHARS:
            raise AppError("empty_message" if not text else "message_too_long")
        target: dict[str, Any] = {"all": True} if department_ids is None else {"departments": sorted(set(department_ids))}
        audience = await self._audience(actor.org_id, target)
        async with self.db.transaction("notice_post") as conn:
            notice_id = await store.insert_notice(
                conn, org_id=actor.org_id, author_id=actor.staff_id, author_affiliation=actor.affiliation,
                title=clean_line(title)[:200], body=text, target=target, read_confirmation=read_confirmation,
                expires_at=expires_at, now=now_iso())
            notice = await store.get_notice(conn, notice_id)
            assert notice is not None
            await self.events.emit_to_staff(conn, "notice.new", notice_json(notice), audience)
            await self.audit.record(conn, actor, "notice.post", target_type="notice", target_id=notice_id,
                                    detail={"audience": len(audience), "target": target})
        return notice

    async def list(self, staff: org_store.Staff) -> list[dict[str, Any]]:
        notices = [n for n in await store.list_notices(self.db, staff.org_id, now_iso(), 200)
                   if await self._visible(staff, n)]
        read = await store.read_by(self.db, staff.id, [n.id for n in notices])
        return [{**notice_json(n), "read": n.id in read} for n in notices]

    async def get(self, staff: org_store.Staff, notice_id: int) -> dict[str, Any]:
        notice = await store.get_notice(self.db, notice_id)
        if notice is None or not await self._visible(staff, notice):
            raise AppError("not_found")
        atts = [{"id": a[0], "filename": a[1], "sha256": a[2], "size": a[3], "mime": a[4]}
                for a in await store.attachments(self.db, notice_id)]
        return {**notice_json(notice), "attachments": atts}

    async def mark_read(self, staff: org_store.Staff, notice_id: int) -> None:
        await self.get(staff, notice_id)
        async with self.db.transaction("notice_read") as conn:
            await store.add_read(conn, notice_id, staff.id, now_iso())

    async def reads(self, actor: Actor, notice_id: int) -> dict[str, Any]:
        """Read confirmation: who has and has not read, by department (author or managers)."""
        notice = await store.get_notice(self.db, notice_id)
        if notice is None or not (notice.author_id == actor.staff_id or
                                  (actor.role in MANAGER_ROLES and actor.org_id == notice.org_id)):
            raise AppError("not_found")
        audience = await self._audience(notice.org_id, notice.target)
        read = await store.read_ids(self.db, notice_id)
        cards = await org_store.get_cards(self.db, audience)
        by_dept: dict[str, dict[str, int]] = {}
        for card in cards:
            entry = by_dept.setdefault(card.department_name or "（所属なし）", {"audience": 0, "read": 0})
            entry["audience"] += 1
            entry["read"] += card.id in read
        pending = [card_json(c) for c in cards if c.id not in read]
        return {"notice_id": notice_id, "audience": len(cards), "read_count": len(cards) - len(pending),
                "departments": [{"department": k, **v} for k, v in sorted(by_dept.items())],
                "pending": pending[:500]}

    async def attach(self, actor: Actor, notice_id: int, filename: str, chunks: AsyncIterator[bytes]) -> int:
        notice = await store.get_notice(self.db, notice_id)
        if notice is None or notice.author_id != actor.staff_id:
            raise AppError("not_found")
        sha256 = await self.files.store_blob(actor, chunks, {"notice_id": notice_id})
        async with self.db.transaction("notice_attach") as conn:
            attachment_id = await store.insert_attachment(conn, notice_id, safe_filename(filename), sha256, now_iso())
            await self.audit.record(conn, actor, "file.upload", target_type="notice_attachment",
                                    target_id=attachment_id, detail={"notice_id": notice_id, "sha256": sha256})
        return attachment_id

    async def download(self, actor: Actor, staff: org_store.Staff, notice_id: int,
                       attachment_id: int) -> tuple[Path, str]:
        await self.get(staff, notice_id)
        row = await store.get_attachment(self.db, notice_id, attachment_id)
        if row is None:
            raise AppError("file_not_found")
        await self.audit.record_alone(actor, "file.download", target_type="notice_attachment",
                                      target_id=attachment_id, detail={"notice_id": notice_id})
        return self.files.blobs.path_for(row[2]), row[1]
