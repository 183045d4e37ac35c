"""安否確認 (safety confirmation) for all staff, chosen departments or a custom list.

The audience is fixed when the check starts (who was asked, and their 所属 then), so the
dashboard's numbers per department are exact and do not drift with later transfers. Answers
are one tap (本人の状況) plus optional 参集可否, 到着見込み, 現在地 and free text; the latest
answer counts. Answers that arrive later from the relay carry an origin id and apply once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared import limits
from shared.sqlite import Writer
from shared.textsafe import clean_line, clean_text
from shared.timeutil import now_iso

from ..errors import AppError
from ..storage import safety as store
from ..storage import targets
from ..storage.database import Database
from ..storage.safety import SafetyCheck
from . import records_export as export
from .actor import Actor
from .audit import AuditService
from .events import EventService

CONDITIONS = ("safe", "minor", "serious", "need_help")       # 無事 / 軽傷 / 重傷 / 要支援
CONDITION_LABELS = {"safe": "無事", "minor": "軽傷", "serious": "重傷", "need_help": "要支援"}
ATTEND = ("yes", "no", "unknown")
ATTEND_LABELS = {"yes": "参集可", "no": "参集不可", "unknown": "未定"}
QUESTIONS = ("condition", "attend", "eta", "location", "note")
MANAGER_ROLES = ("org_admin", "server_admin", "safety_manager")
# Titles are shown after the 【安否確認】 label the UI adds, so they do not repeat it.
TEMPLATES = {
    "disaster": {"title": "災害発生", "questions": list(QUESTIONS),
                 "message": "ご自身とご家族の安全を確保したうえで、状況を回答してください。"},
    "drill": {"title": "訓練", "questions": ["condition", "attend", "eta"],
              "message": "これは訓練です。回答してください。"},
    "simple": {"title": "状況確認", "questions": ["condition"], "message": "状況を回答してください。"},
}


def check_json(check: SafetyCheck) -> dict[str, Any]:
    return {"id": check.id, "title": check.title, "message": check.message, "questions": list(check.questions),
            "target": check.target, "started_by": check.started_by, "started_at": check.started_at,
            "closed_at": check.closed_at, "origin": check.origin}


@dataclass(frozen=True)
class Answer:
    condition: str
    attend: str = "unknown"
    eta_minutes: int | None = None
    location: str = ""
    note: str = ""


class SafetyService:
    def __init__(self, db: Database, events: EventService, audit: AuditService) -> None:
        self.db = db
        self.events = events
        self.audit = audit

    async def _to_relay(self, conn: Writer, type_: str, data: dict[str, Any]) -> None:
        """Tell the relay outbox hook (lgwan_server/bridge/outbox.py), when a relay is configured, in this
        transaction: phones registered for mobile use get checks, reminders and closings (issue 6)."""
        if self.events.outbox is not None:
            await self.events.outbox(conn, type_, data, None, None)

    @staticmethod
    def require_manager(actor: Actor) -> None:
        if actor.role not in MANAGER_ROLES:
            raise AppError("forbidden")

    async def _managed(self, actor: Actor, check_id: int) -> SafetyCheck:
        self.require_manager(actor)
        check = await store.get_check(self.db, check_id)
        if check is None or check.org_id != actor.org_id:
            raise AppError("not_found")
        return check

    async def start(self, actor: Actor, *, title: str, message: str, questions: list[str],
                    department_ids: list[int] | None, staff_ids: list[int] | None, via: str = "lgwan",
                    origin_id: str | None = None) -> SafetyCheck:
        """Start a check and notify every target at once (one batch of personal events)."""
        self.require_manager(actor)
        assert actor.org_id is not None
        if "condition" not in questions or any(q not in QUESTIONS for q in questions):
            raise AppError("invalid_request", field="questions")
        if origin_id is not None and (existing := await store.get_check_by_origin(self.db, origin_id)):
            return existing
        audience = await targets.resolve(self.db, actor.org_id, department_ids=department_ids, staff_ids=staff_ids)
        if not audience:
            raise AppError("invalid_request", field="target", reason="nobody_selected")
        target: dict[str, Any] = ({"staff": staff_ids} if staff_ids is not None else
                                  {"departments": department_ids} if department_ids is not None else {"all": True})
        async with self.db.transaction("safety_start") as conn:
            return await self.start_in_transaction(conn, actor, title=title, message=message, questions=questions,
                                                   audience=audience, target=target, via=via, origin_id=origin_id)

    async def start_in_transaction(self, conn: Writer, actor: Actor, *, title: str, message: str,
                                   questions: list[str], audience: list[tuple[int, int | None]],
                                   target: dict[str, Any], via: str, origin_id: str | None,
                                   started_at: str | None = None) -> SafetyCheck:
        """Create the check with its target snapshot and notify the targets, in the caller's transaction.

        The relay bridge uses this for a check started on the relay (``via='relay'``, its origin id and
        start time); the caller has checked the actor's role and resolved the audience.
        """
        assert actor.org_id is not None
        check_id = await store.insert_check(conn, org_id=actor.org_id, title=clean_line(title)[:200],
                                            message=clean_text(message)[:2000], questions=questions, target=target,
                                            started_by=actor.staff_id, now=started_at or now_iso(), origin=via,
                                            origin_id=origin_id)
        await store.insert_targets(conn, check_id, audience)
        check = await store.get_check(conn, check_id)
        assert check is not None
        await self.events.emit_to_staff(conn, "safety.request", check_json(check), [s for s, _ in audience])
        await self.audit.record(conn, actor, "safety.start", target_type="safety_check", target_id=check_id,
                                detail={"targets": len(audience), "target": target, "origin": via})
        await self._to_relay(conn, "safety.request", {"check_id": check_id})
        return check

    async def add_targets_in_transaction(self, conn: Writer, check: SafetyCheck,
                                         audience: list[tuple[int, int | None]]) -> int:
        """Add people to a check's targets (the later parts of a long relay hand-over); returns how many."""
        known = set(await store.target_ids(conn, check.id))
        new = [(s, d) for s, d in audience if s not in known]
        if new:
            await store.insert_targets(conn, check.id, new)
            await self.events.emit_to_staff(conn, "safety.request", check_json(check), [s for s, _ in new])
        return len(new)

    async def answer(self, actor: Actor, check_id: int, answer: Answer, *, via: str = "web",
                     origin_id: str | None = None, answered_at: str | None = None) -> None:
        assert actor.staff_id is not None
        check = await store.get_check(self.db, check_id)
        if check is None or not await store.is_target(self.db, check_id, actor.staff_id):
            raise AppError("not_found")
        if check.closed_at is not None:
            raise AppError("invalid_transition", reason="closed")
        if answer.condition not in CONDITIONS or answer.attend not in ATTEND:
            raise AppError("invalid_request", field="condition")
        if answer.eta_minutes is not None and not 0 <= answer.eta_minutes <= 7 * 24 * 60:
            raise AppError("invalid_request", field="eta_minutes")
        if origin_id is not None and await store.answer_by_origin(self.db, origin_id):
            return   # already applied (a relay answer delivered twice)
        async with self.db.transaction("safety_answer") as conn:
            await self.answer_in_transaction(conn, actor.staff_id, check, answer, via=via, origin_id=origin_id,
                                             answered_at=answered_at)

    async def answer_in_transaction(self, conn: Writer, staff_id: int, check: SafetyCheck,
                                    answer: Answer, *, via: str, origin_id: str | None,
                                    answered_at: str | None) -> bool:
        """Record an answer in the caller's transaction (the latest ``answered_at`` wins).

        The caller has checked that ``staff_id`` is a target. False when this origin id was already
        applied. A relay answer given before the check closed still counts (it was answered in time).
        """
        if answer.condition not in CONDITIONS or answer.attend not in ATTEND:
            raise AppError("invalid_request", field="condition")
        if answer.eta_minutes is not None and not 0 <= answer.eta_minutes <= 7 * 24 * 60:
            raise AppError("invalid_request", field="eta_minutes")
        at = answered_at or now_iso()
        if check.closed_at is not None and at > check.closed_at:
            raise AppError("invalid_transition", reason="closed")
        if origin_id is not None and await store.answer_by_origin(conn, origin_id):
            return False
        await store.upsert_answer(conn, check_id=check.id, staff_id=staff_id, condition=answer.condition,
                                  attend=answer.attend, eta_minutes=answer.eta_minutes,
                                  location=clean_line(answer.location)[:200],
                                  note=clean_text(answer.note)[: limits.MAX_MESSAGE_CHARS // 10], via=via,
                                  now=at, origin_id=origin_id)
        if check.started_by is not None:
            await self.events.emit(conn, "safety.answer", {"check_id": check.id, "staff_id": staff_id,
                                                           "condition": answer.condition},
                                   staff_id=check.started_by)
        return True

    async def dashboard(self, actor: Actor, check_id: int) -> dict[str, Any]:
        check = await self._managed(actor, check_id)
        names = await targets.department_names(self.db, check.org_id)
        rows = await store.tally(self.db, check_id)
        departments: list[dict[str, Any]] = [
            {"department_id": t.department_id, "department": names.get(t.department_id or 0, "（所属なし）"),
             "targets": t.targets, "answered": t.answered, "unanswered": t.targets - t.answered,
             "safe": t.safe, "minor": t.minor, "serious": t.serious, "need_help": t.need_help,
             "needs_attention": t.serious + t.need_help, "attend_yes": t.attend_yes} for t in rows]
        total_keys = ("targets", "answered", "unanswered", "safe", "minor", "serious", "need_help", "needs_attention",
                      "attend_yes")
        totals = {k: sum(int(d[k]) for d in departments) for k in total_keys}
        return {"check": check_json(check), "totals": totals, "departments": departments}

    async def remind(self, actor: Actor, check_id: int) -> int:
        check = await self._managed(actor, check_id)
        if check.closed_at is not None:
            raise AppError("invalid_transition", reason="closed")
        pending = await store.unanswered(self.db, check_id)
        async with self.db.transaction("safety_remind") as conn:
            await self.events.emit_to_staff(conn, "safety.reminder", check_json(check), pending)
            await store.mark_reminded(conn, check_id, pending, now_iso())
            await self.audit.record(conn, actor, "safety.remind", target_type="safety_check", target_id=check_id,
                                    detail={"reminded": len(pending)})
            await self._to_relay(conn, "safety.reminder", {"check_id": check_id})
        return len(pending)

    async def close(self, actor: Actor, check_id: int) -> None:
        await self._managed(actor, check_id)
        async with self.db.transaction("safety_close") as conn:
            if not await store.close_check(conn, check_id, now_iso()):
                raise AppError("invalid_transition", reason="already_closed")
            await self.audit.record(conn, actor, "safety.close", target_type="safety_check", target_id=check_id)
            await self._to_relay(conn, "safety.close", {"check_id": check_id})

    async def export(self, actor: Actor, check_id: int, fmt: str) -> tuple[str, bytes, str]:
        """Every target with their answer, as xlsx or CSV (name, 所属 at the start, answer)."""
        check = await self._managed(actor, check_id)
        headings = ["氏名", "職員番号", "所属", "本人の状況", "参集可否", "到着見込み（分）", "現在地", "連絡事項",
                    "回答経路", "回答日時（JST）"]
        rows = []
        for r in await store.detail_rows(self.db, check_id):
            rows.append([r[0], r[9] or "", r[1], CONDITION_LABELS.get(r[2] or "", "未回答"),
                         ATTEND_LABELS.get(r[3] or "", ""), r[4] if r[4] is not None else "", r[5] or "", r[6] or "",
                         {"web": "庁内", "relay": "スマートフォン"}.get(r[7] or "", ""),
                         export.jst(r[8]).strftime("%Y-%m-%d %H:%M:%S") if r[8] else ""])
        await self.audit.record_alone(actor, "safety.export", target_type="safety_check", target_id=check_id,
                                      detail={"rows": len(rows), "format": fmt})
        stamp = export.jst(now_iso()).strftime("%Y%m%d%H%M%S")
        if fmt == "csv":
            return f"anpi-{check_id}-{stamp}.csv", export.table_csv(headings, rows), "text/csv"
        info = [("安否確認", check.title), ("開始", export.jst(check.started_at).strftime("%Y-%m-%d %H:%M:%S JST")),
                ("対象者数", str(len(rows)))]
        return (f"anpi-{check_id}-{stamp}.xlsx", export.table_xlsx("安否確認", headings, rows, info),
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")

    async def mine(self, staff_id: int) -> list[dict[str, Any]]:
        return [{**check_json(c), "answered": answered} for c, answered in await store.checks_for_staff(self.db,
                                                                                                       staff_id, 20)]

    async def list(self, actor: Actor) -> list[dict[str, Any]]:
        self.require_manager(actor)
        assert actor.org_id is not None
        return [check_json(c) for c in await store.list_checks(self.db, actor.org_id, 100)]
