"""安否確認 on staff phones (issue 6): answer in one tap, and start a check while LGWAN is down.

Checks started on LGWAN arrive as ``safety.request`` naming only the phone-registered targets; a
phone sees a check only when it is one of them (or started it), and only its own answer — never
anybody else's. An answer is stored here (the latest counts) and queued for LGWAN as
``safety.answer`` in the same transaction, with an origin id LGWAN applies once.

A staff phone whose LGWAN role lets it (``account.upsert`` ``safety_manager``: org_admin or
safety_manager) may start a check here at any time — meant for when LGWAN is unreachable. It asks
every active staff phone, is queued for LGWAN as ``safety.start`` (LGWAN re-checks the role and
the targets at hand-over and creates it once), and its starter sees the live roll-up by 所属 as
the relay knows it. Guests never see any of this.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from shared import envelope as env
from shared.sqlite import Writer
from shared.textsafe import clean_line, clean_text
from shared.timeutil import now_iso

from ..errors import AppError
from ..hub import Hub
from ..ratelimit import RateLimiter
from ..storage import safety as store
from ..storage.accounts import Account
from ..storage.database import Database
from ..storage.safety import SafetyAnswer, SafetyCheck
from .audit import AuditService
from .outbox import Outbox

_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
TEMPLATES: dict[str, dict[str, Any]] = {
    # The same three as on LGWAN (lgwan_server/services/safety.py); titles follow the 【安否確認】 label.
    "disaster": {"title": "災害発生", "questions": list(env.SAFETY_QUESTIONS),
                 "message": "ご自身とご家族の安全を確保したうえで、状況を回答してください。"},
    "drill": {"title": "訓練", "questions": ["condition", "attend", "eta"], "message": "これは訓練です。回答してください。"},
    "simple": {"title": "状況確認", "questions": ["condition"], "message": "状況を回答してください。"},
}
ATTENTION_LIST = 200        # people answering 重傷/要支援 listed for the starter


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def check_json(check: SafetyCheck, member: str) -> dict[str, Any]:
    return {"id": check.id, "origin": check.origin, "title": check.title, "message": check.message,
            "questions": list(check.questions), "started_at": check.started_at, "closed_at": check.closed_at,
            "mine": check.started_by == member}


def answer_json(a: SafetyAnswer | None) -> dict[str, Any] | None:
    if a is None:
        return None
    return {"condition": a.condition, "attend": a.attend, "eta_minutes": a.eta_minutes, "location": a.location,
            "note": a.note, "answered_at": a.answered_at}


class SafetyService:
    def __init__(self, db: Database, audit: AuditService, outbox: Outbox, hub: Hub) -> None:
        self.db = db
        self.audit = audit
        self.outbox = outbox
        self.hub = hub
        self.answer_limiter = RateLimiter(20, 60)      # taps per phone per minute
        self.start_limiter = RateLimiter(5, 3600)      # checks started per person per hour

    # --- who may see what --------------------------------------------------------------------------

    @staticmethod
    def _phone(account: Account) -> None:
        """Only active staff phones take part; to a guest, 安否確認 does not exist."""
        if account.kind != "staff":
            raise AppError("not_found")
        if account.status != "active":
            raise AppError("not_approved")

    async def _visible(self, account: Account, check_id: int) -> SafetyCheck:
        """The check, or ``not_found`` alike for a missing one and one this phone is not asked in."""
        self._phone(account)
        check = await store.get_check(self.db, check_id)
        if check is None:
            raise AppError("not_found")
        if check.started_by != account.member and not await store.is_target(self.db, check.id, account.member):
            raise AppError("not_found")
        return check

    # --- the phone ---------------------------------------------------------------------------------

    async def mine(self, account: Account) -> dict[str, Any]:
        self._phone(account)
        checks = [{**check_json(c, account.member), "asked": asked, "answer": answer_json(a)}
                  for c, a, asked in await store.checks_of(self.db, account.member, 20)]
        return {"checks": checks, "can_start": account.safety_manager, "templates": TEMPLATES}

    async def answer(self, account: Account, ip: str, check_id: int, *, condition: str, attend: str,
                     eta_minutes: int | None, location: str, note: str, client_id: str | None) -> dict[str, Any]:
        """One tap (本人の状況) plus the optional details; queued for LGWAN in the same transaction."""
        check = await self._visible(account, check_id)
        if not await store.is_target(self.db, check.id, account.member):
            raise AppError("not_found")
        if check.closed_at is not None:
            raise AppError("invalid_request", field="check", reason="closed")
        if condition not in env.SAFETY_CONDITIONS:
            raise AppError("invalid_request", field="condition")
        if attend not in env.SAFETY_ATTEND:
            raise AppError("invalid_request", field="attend")
        if eta_minutes is not None and not 0 <= eta_minutes <= env.MAX_SAFETY_ETA_MINUTES:
            raise AppError("invalid_request", field="eta_minutes")
        if client_id is not None and not _CLIENT_ID.match(client_id):
            raise AppError("invalid_request", field="client_id")
        location = clean_line(location)[:env.MAX_SAFETY_LOCATION_CHARS]
        note = clean_text(note).strip()[:env.MAX_SAFETY_NOTE_CHARS]
        await self._crossable(account, ip, f"safety:{check.id}", location, note)
        origin_id = f"{account.member}:{client_id or secrets.token_hex(12)}"
        existing = await store.get_answer(self.db, check.id, account.member)
        if existing is not None and existing.origin_id == origin_id:
            return {"answer": answer_json(existing)}       # the same tap sent again (a retry)
        if not self.answer_limiter.allow(account.member):
            raise AppError("rate_limited")
        answer = SafetyAnswer(check.id, account.member, condition, attend, eta_minutes, location, note, now_iso(),
                              origin_id)
        async with self.db.transaction("safety_answer") as conn:
            current = await store.get_check(conn, check.id)
            if current is None or current.closed_at is not None:
                raise AppError("invalid_request", field="check", reason="closed")
            await store.upsert_answer(conn, answer)
            await self.outbox.enqueue(conn, env.SafetyAnswer(
                origin_id=origin_id, check_id=None if check.origin_id else check.lgwan_check_id,
                check_origin_id=check.origin_id, member=account.member, condition=condition, attend=attend,
                eta_minutes=eta_minutes, location=location, note=note, answered_at=answer.answered_at))
            await self.audit.record(conn, "safety.answer", actor=account.member, ip=ip, target=f"safety:{check.id}",
                                    detail={"origin": check.origin})
            mine = dumps({"type": "safety.answered", "check_id": check.id})
            to_starter = dumps({"type": "safety.rollup", "check_id": check.id})
            starter = check.started_by

            def publish() -> None:
                self.hub.publish([account.member], mine)
                if starter:
                    self.hub.publish([starter], to_starter)
            self.db.after_commit(publish)
        return {"answer": answer_json(answer)}

    async def _crossable(self, account: Account, ip: str, target: str, *texts: str) -> None:
        """Refuse, before anything is written, what the queue would refuse (as chat posts do)."""
        for value in texts:
            problem = env.crossing_text_problem(value)
            if problem == "my_number":
                # The audit says that a 個人番号 was found, never which (acceptance statement 16).
                await self.audit.record_alone("safety.my_number_blocked", actor=account.member, ip=ip,
                                              outcome="denied", target=target)
                raise AppError("my_number_blocked")
            if problem is not None:
                raise AppError("markup_not_allowed")

    # --- a check started here ----------------------------------------------------------------------

    async def start(self, account: Account, ip: str, *, template: str, title: str, message: str | None) -> dict[str, Any]:
        """Ask every active staff phone; the check and its answers go to LGWAN when the link allows."""
        self._phone(account)
        if not account.safety_manager:
            raise AppError("not_found")
        chosen = TEMPLATES.get(template)
        if chosen is None:
            raise AppError("invalid_request", field="template")
        title = clean_line(title)[:env.MAX_SAFETY_TITLE_CHARS] or str(chosen["title"])
        text = clean_text(chosen["message"] if message is None else message).strip()[:env.MAX_SAFETY_MESSAGE_CHARS]
        await self._crossable(account, ip, "safety:start", title, text)
        if not self.start_limiter.allow(account.member):
            raise AppError("rate_limited")
        questions = tuple(q for q in env.SAFETY_QUESTIONS if q in chosen["questions"])
        now = now_iso()
        async with self.db.transaction("safety_start") as conn:
            members = list(dict.fromkeys([account.member, *await store.phone_staff(conn)]))
            origin_id = f"r:{secrets.token_hex(16)}"
            check_id = await store.insert_check(conn, origin="relay", lgwan_check_id=None, origin_id=origin_id,
                                                title=title, message=text, questions=questions,
                                                started_by=account.member, started_at=now, now=now)
            await store.add_targets(conn, check_id, members)
            for start in range(0, len(members), env.MAX_SAFETY_MEMBERS):
                await self.outbox.enqueue(conn, env.SafetyStart(
                    origin_id=origin_id, started_by=account.member, title=title, message=text, questions=questions,
                    started_at=now, members=tuple(members[start:start + env.MAX_SAFETY_MEMBERS])))
            await self.audit.record(conn, "safety.start", actor=account.member, ip=ip, target=f"safety:{check_id}",
                                    detail={"targets": len(members), "template": template})
            check = await store.get_check(conn, check_id)
            assert check is not None
            self._publish(members, {"type": "safety.request", "check_id": check_id})
        return check_json(check, account.member)

    async def rollup(self, account: Account, check_id: int) -> dict[str, Any]:
        """The starter's live view of a check started here: counts by 所属, and who needs help."""
        check = await self._visible(account, check_id)
        if check.started_by != account.member:
            raise AppError("not_found")
        rows = [{"affiliation": t.affiliation or "（所属なし）", "targets": t.targets, "answered": t.answered,
                 "unanswered": t.targets - t.answered, "safe": t.safe, "minor": t.minor, "serious": t.serious,
                 "need_help": t.need_help, "needs_attention": t.serious + t.need_help, "attend_yes": t.attend_yes}
                for t in await store.tally(self.db, check.id)]
        keys = ("targets", "answered", "unanswered", "safe", "minor", "serious", "need_help", "needs_attention",
                "attend_yes")
        attention = [{"display_name": a.display_name, "affiliation": a.affiliation, "condition": a.condition,
                      "attend": a.attend, "location": a.location, "note": a.note, "answered_at": a.answered_at}
                     for a in await store.needing_attention(self.db, check.id, ATTENTION_LIST)]
        totals = {k: sum(int(r[k]) for r in rows) for k in keys}    # type: ignore[call-overload]
        return {"check": check_json(check, account.member), "totals": totals,
                "affiliations": rows, "attention": attention}

    async def remind(self, account: Account, ip: str, check_id: int) -> int:
        """The starter reminds the phones that have not answered a check started here."""
        check = await self._visible(account, check_id)
        if check.started_by != account.member:
            raise AppError("not_found")
        if check.closed_at is not None:
            raise AppError("invalid_request", field="check", reason="closed")
        async with self.db.transaction("safety_remind") as conn:
            pending = await store.unanswered(conn, check.id)
            await store.mark_reminded(conn, check.id, pending, now_iso())
            await self.audit.record(conn, "safety.remind", actor=account.member, ip=ip, target=f"safety:{check.id}",
                                    detail={"reminded": len(pending)})
            self._publish(pending, {"type": "safety.remind", "check_id": check.id})
        return len(pending)

    def _publish(self, members: list[str], event: dict[str, Any]) -> None:
        frame = dumps(event)
        self.db.after_commit(lambda: self.hub.publish(members, frame))

    # --- what LGWAN says (inside the link's apply transaction) ----------------------------------

    async def _find(self, conn: Writer, check_id: int, origin_id: str | None) -> SafetyCheck | None:
        found = await store.get_by_origin(conn, origin_id) if origin_id is not None else None
        return found or await store.get_by_lgwan_id(conn, check_id)

    async def apply(self, conn: Writer, p: env.Payload) -> None:
        now = now_iso()
        if isinstance(p, env.SafetyRequest):
            check = await self._find(conn, p.check_id, p.origin_id)
            if check is None:
                check_id = await store.insert_check(conn, origin="lgwan", lgwan_check_id=p.check_id, origin_id=None,
                                                    title=p.title, message=p.message, questions=p.questions,
                                                    started_by=None, started_at=p.started_at, now=now)
            else:
                check_id = check.id
                await store.update_check(conn, check_id, lgwan_check_id=p.check_id, title=p.title, message=p.message,
                                         questions=p.questions, now=now)
            new = await store.add_targets(conn, check_id, list(p.members))
            self._publish(new, {"type": "safety.request", "check_id": check_id})
        elif isinstance(p, env.SafetyRemind):
            check = await self._find(conn, p.check_id, p.origin_id)
            if check is None or check.closed_at is not None:
                return
            # Who answered here already is waiting for the link, not for a reminder.
            pending = await store.unanswered(conn, check.id, list(p.members))
            await store.mark_reminded(conn, check.id, pending, now)
            self._publish(pending, {"type": "safety.remind", "check_id": check.id})
        elif isinstance(p, env.SafetyClose):
            check = await self._find(conn, p.check_id, p.origin_id)
            if check is not None and await store.close_check(conn, check.id, p.closed_at, now):
                members = [m for m in [check.started_by] if m] + await store.target_members(conn, check.id)
                self._publish(list(dict.fromkeys(members)), {"type": "safety.close", "check_id": check.id})
