"""Guest and staff-phone accounts on the relay: enrolment, login (password + TOTP), devices, sessions.

Who may have an account, its status and expiry come from LGWAN (``account.upsert``); the password
and TOTP secret exist only here. Enrolment uses a one-time link whose token LGWAN never stores or
sends — only its SHA-256 crosses. A guest must acknowledge the organisation's 利用目的 notice
before enrolment completes, so no message can be posted before it (acceptance statement 17).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pyotp
import segno
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from shared import envelope as env
from shared import totp
from shared.sqlite import Writer
from shared.textsafe import clean_line
from shared.timeutil import now_iso, parse_iso, to_iso, utcnow

from ..config import RelayConfig
from ..errors import AppError
from ..hub import Hub
from ..ratelimit import RateLimiter
from ..storage import accounts as store
from ..storage.accounts import Account, Session
from ..storage.database import Database
from .audit import AuditService
from .outbox import Outbox

TOTP_STEP = totp.TOTP_STEP
_LOGIN_RE = re.compile(r"^[A-Za-z0-9._-]{3,64}$")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,100}$")
DEFAULT_NOTICE = """{org}は、このチャットで、あなたの 名前・所属・書いた メッセージ・使った 日時と 端末の 情報を あつかいます。

■ 何のために 使うか（利用目的）
・{org}の 職員と 連絡を とるため
・不正な 利用を ふせぐため（記録を のこします）

■ どこに 保存するか
メッセージは {org}の サーバーに 行政文書として 保存されます。この 中継サーバーには 一定の 期間だけ 保存して、そのあと 消します。

■ ほかの 人に わたすか
法律で 決められた ときを のぞいて、ほかの 人には わたしません。

わからない ことは、あなたを 招待した 職員に 聞いて ください。"""


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def device_label(user_agent: str) -> str:
    """A short, harmless description of the browser for the admin's device list."""
    ua = user_agent.lower()
    system = next((name for key, name in (("iphone", "iPhone"), ("ipad", "iPad"), ("android", "Android"),
                                          ("windows", "Windows"), ("mac os", "Mac"), ("linux", "Linux"))
                   if key in ua), "")
    browser = next((name for key, name in (("edg/", "Edge"), ("chrome", "Chrome"), ("firefox", "Firefox"),
                                           ("safari", "Safari")) if key in ua), "")
    return clean_line(f"{system} {browser}".strip())[:100] or "不明な端末"


@dataclass(frozen=True)
class LoginResult:
    status: str                 # 'ok' or 'device_pending'
    token: str | None
    csrf_token: str | None
    account: Account


@dataclass(frozen=True)
class Authenticated:
    session: Session
    account: Account


class AccountService:
    def __init__(self, db: Database, cfg: RelayConfig, audit: AuditService, outbox: Outbox, hub: Hub) -> None:
        self.db = db
        self.cfg = cfg
        self.audit = audit
        self.outbox = outbox
        self.hub = hub
        a = cfg.auth
        self.hasher = PasswordHasher(time_cost=a.argon2_time_cost, memory_cost=a.argon2_memory_cost_kib,
                                     parallelism=a.argon2_parallelism)
        self._dummy = self.hasher.hash("kakehashi-relay-timing-equaliser")
        self.limiter = RateLimiter(a.login_attempts_per_minute_per_ip, 60)
        org = cfg.guests.organisation_name or "この団体"
        if cfg.guests.privacy_notice_file is not None:
            self.notice = cfg.guests.privacy_notice_file.read_text(encoding="utf-8").strip()
        else:
            self.notice = DEFAULT_NOTICE.format(org=org)
        self.notice_sha256 = sha256_hex(self.notice)

    # --- helpers ---------------------------------------------------------------------------------

    def _limit(self, ip: str) -> None:
        if not self.limiter.allow(ip):
            raise AppError("rate_limited")

    async def _verify_password(self, stored: str | None, password: str) -> bool:
        def verify() -> bool:
            try:
                return self.hasher.verify(stored or self._dummy, password) and stored is not None
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False
        return await asyncio.to_thread(verify)

    @staticmethod
    def match_totp(secret: str | None, code: str, last_step: int) -> int | None:
        """The time step ``code`` belongs to (±1 step for drift), if newer than ``last_step``."""
        return totp.match_totp(secret, code, last_step, time.time())   # this module's clock: tests set it

    def _check_password(self, password: str, login: str) -> None:
        reasons = []
        if len(password) < self.cfg.auth.password_min_length:
            reasons.append(f"min_length:{self.cfg.auth.password_min_length}")
        if len(password) > 256:
            reasons.append("max_length:256")
        if login.lower() in password.lower():
            reasons.append("contains_login")
        if len(set(password)) < 4:
            reasons.append("too_few_distinct_characters")
        if reasons:
            raise AppError("password_policy", reasons=reasons)

    @staticmethod
    def expired(account: Account) -> bool:
        return account.expires_at is not None and account.expires_at < now_iso()

    # --- enrolment -------------------------------------------------------------------------------

    async def _by_token(self, token: str, ip: str) -> Account:
        self._limit(ip)
        account = None
        if _TOKEN_RE.match(token):
            account = await store.get_by_enrol_token(self.db, sha256_hex(token))
        if account is None or account.status == "suspended" or self.expired(account) or (
                account.enrol_expires_at is not None and account.enrol_expires_at < now_iso()):
            await self.audit.record_alone("account.enrol", ip=ip, outcome="denied", detail={"reason": "invalid_link"})
            raise AppError("invite_invalid")
        return account

    async def enrol_info(self, token: str, ip: str) -> dict[str, Any]:
        account = await self._by_token(token, ip)
        guest = account.kind == "guest"
        return {"kind": account.kind, "display_name": account.display_name, "affiliation": account.affiliation,
                "organisation": self.cfg.guests.organisation_name, "login": account.login,
                "privacy_notice": self.notice if guest else None,
                "privacy_notice_sha256": self.notice_sha256 if guest else None,
                "password_min_length": self.cfg.auth.password_min_length}

    async def enrol_totp(self, token: str, ip: str) -> dict[str, str]:
        """Offer a TOTP secret (the QR code is drawn here as SVG; no external service)."""

        account = await self._by_token(token, ip)
        secret = pyotp.random_base32()
        name = account.display_name or account.member
        uri = pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=self.cfg.auth.totp_issuer)
        async with self.db.transaction("enrol_totp") as conn:
            await store.set_totp_pending(conn, account.member, secret, now_iso())
        # A data: URI for an <img>, so no markup from the server ever enters the page.
        qr = segno.make(uri, error="m").svg_data_uri(scale=4, dark="#000", light="#fff")
        return {"secret": secret, "otpauth_uri": uri, "qr_data_uri": qr}

    async def enrol_complete(self, token: str, *, login: str, password: str, totp_code: str, privacy_ack: bool,
                             ip: str) -> dict[str, Any]:
        account = await self._by_token(token, ip)
        if not _LOGIN_RE.match(login):
            raise AppError("login_invalid")
        other = await store.get_by_login(self.db, login)
        if other is not None and other.member != account.member:
            raise AppError("login_taken")
        self._check_password(password, login)
        guest = account.kind == "guest"
        if guest and not privacy_ack:
            raise AppError("privacy_required")
        fresh = await store.get_account(self.db, account.member)
        assert fresh is not None
        step = self.match_totp(fresh.totp_pending, totp_code, 0)
        if step is None:
            await self.audit.record_alone("account.enrol", actor=account.member, ip=ip, outcome="failed",
                                          detail={"reason": "bad_totp"})
            raise AppError("totp_invalid")
        digest = await asyncio.to_thread(self.hasher.hash, password)
        now = now_iso()
        async with self.db.transaction("enrol_complete") as conn:
            current = await store.get_account(conn, account.member)
            if current is None or current.enrol_token_sha256 != account.enrol_token_sha256:
                raise AppError("invite_invalid")    # used or replaced meanwhile
            assert fresh.totp_pending is not None
            await store.complete_enrolment(conn, account.member, login=login, password_hash=digest,
                                           totp_secret=fresh.totp_pending, totp_step=step,
                                           notice_sha256=self.notice_sha256 if guest else None,
                                           ack_at=now if guest else None, now=now)
            await self.outbox.enqueue(conn, env.AccountEnrolled(
                account=account.member, privacy_notice_sha256=self.notice_sha256 if guest else None,
                acknowledged_at=now))
            await self.audit.record(conn, "account.enrol", actor=account.member, ip=ip, target=account.member,
                                    detail={"kind": account.kind, "privacy_notice_sha256":
                                            self.notice_sha256 if guest else None})
        return {"status": account.status, "login": login}

    # --- login and sessions ----------------------------------------------------------------------

    async def login(self, login: str, password: str, totp_code: str, *, ip: str, user_agent: str,
                    device_cookie: str) -> LoginResult:
        if not self.limiter.allow(ip):
            await self.audit.record_alone("auth.login", ip=ip, outcome="denied", detail={"reason": "rate_limited"})
            raise AppError("rate_limited")
        account = await store.get_by_login(self.db, login) if _LOGIN_RE.match(login) else None
        password_ok = await self._verify_password(account.password_hash if account else None, password)
        if account is None:
            await self.audit.record_alone("auth.login", ip=ip, outcome="failed", detail={"reason": "unknown_login"})
            raise AppError("invalid_credentials")
        member = account.member
        if account.locked_until and parse_iso(account.locked_until) > utcnow():
            await self.audit.record_alone("auth.login", actor=member, ip=ip, outcome="denied",
                                          detail={"reason": "locked"})
            raise AppError("account_locked")
        step = self.match_totp(account.totp_secret, totp_code, account.totp_last_step) if password_ok else None
        if step is None:
            await self._fail(account, ip, "bad_password" if not password_ok else "bad_totp")
            raise AppError("invalid_credentials")
        if account.status == "suspended" or self.expired(account):
            await self.audit.record_alone("auth.login", actor=member, ip=ip, outcome="denied",
                                          detail={"reason": "disabled"})
            raise AppError("account_disabled")
        device_id = None
        if account.device_approval:
            device_id, status = await self._device(account, device_cookie, ip, user_agent)
            if status == "revoked":
                await self.audit.record_alone("auth.login", actor=member, ip=ip, outcome="denied",
                                              detail={"reason": "device_revoked", "device_id": device_id})
                raise AppError("device_revoked")
            if status == "pending":
                async with self.db.transaction("login_device_pending") as conn:
                    await store.record_login_success(conn, member, step)   # the code is used up all the same
                return LoginResult("device_pending", None, None, account)
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        now = now_iso()
        async with self.db.transaction("login") as conn:
            await store.record_login_success(conn, member, step)
            session_id = await store.insert_session(conn, sha256_hex(token), member, device_id, csrf, now, ip,
                                                    user_agent)
            await self.audit.record(conn, "auth.login", actor=member, ip=ip, target=f"session:{session_id}",
                                    detail={"device_id": device_id})
        return LoginResult("ok", token, csrf, account)

    async def _fail(self, account: Account, ip: str, reason: str) -> None:
        locked_until = None
        if account.failed_logins + 1 >= self.cfg.auth.lockout_threshold:
            locked_until = to_iso(utcnow() + timedelta(seconds=self.cfg.auth.lockout_duration))
        async with self.db.transaction("login_failed") as conn:
            await store.record_login_failure(conn, account.member, locked_until)
            await self.audit.record(conn, "auth.login", actor=account.member, ip=ip, outcome="failed",
                                    detail={"reason": reason, "locked": locked_until is not None})

    async def _device(self, account: Account, cookie: str, ip: str, user_agent: str) -> tuple[str, str]:
        """(device id, status) for this browser; a new one is registered and waits for approval."""
        cookie_sha = sha256_hex(cookie)
        known = await store.get_device_by_cookie(self.db, account.member, cookie_sha)
        if known is not None:
            return known.device_id, known.status
        device_id = secrets.token_hex(16)
        label = device_label(user_agent)
        async with self.db.transaction("device_request") as conn:
            await store.insert_device(conn, device_id, account.member, cookie_sha, label, now_iso())
            await self.outbox.enqueue(conn, env.DeviceRequest(account=account.member, device_id=device_id,
                                                              label=label, requested_at=now_iso()))
            await self.audit.record(conn, "device.request", actor=account.member, ip=ip, target=device_id,
                                    detail={"label": label})
        return device_id, "pending"

    async def authenticate(self, token: str) -> Authenticated:
        found = await store.get_session_and_account(self.db.inline, sha256_hex(token))
        if found is None:
            raise AppError("not_authenticated")
        session, account = found
        now = utcnow()
        idle = (now - parse_iso(session.last_seen_at)).total_seconds()
        age = (now - parse_iso(session.created_at)).total_seconds()
        if idle > self.cfg.auth.session_idle_timeout or age > self.cfg.auth.session_absolute_timeout:
            async with self.db.transaction("session_expire") as conn:
                await store.delete_session(conn, session.id)
            raise AppError("session_expired")
        if account is None or account.status == "suspended" or self.expired(account):
            raise AppError("not_authenticated")
        if account.device_approval:
            device = await store.get_device(self.db.inline, session.device_id) if session.device_id else None
            if device is None or device.status != "approved":
                raise AppError("not_authenticated")
        if idle > 30:
            async with self.db.transaction("session_touch") as conn:
                await store.touch_session(conn, session.id, now_iso())
        return Authenticated(session, account)

    async def logout(self, auth: Authenticated, ip: str) -> None:
        async with self.db.transaction("logout") as conn:
            await store.delete_session(conn, auth.session.id)
            await self.audit.record(conn, "auth.logout", actor=auth.account.member, ip=ip)
        self.hub.close_session(auth.session.id, "logged out")

    # --- what LGWAN says (inside the link's apply transaction) ----------------------------------

    async def apply_upsert(self, conn: Writer, p: env.AccountUpsert) -> None:
        await store.upsert_account(conn, member=p.account, kind=p.kind, display_name=p.display_name,
                                   affiliation=p.affiliation, status=p.status, enrol_token_sha256=p.enrol_token_sha256,
                                   enrol_expires_at=p.enrol_expires_at, expires_at=p.expires_at,
                                   device_approval=p.device_approval, now=now_iso(),
                                   safety_manager=p.kind == "staff" and p.safety_manager)
        if p.status == "suspended":
            await store.delete_sessions_of(conn, p.account)
            self.db.after_commit(lambda: self.hub.close_member(p.account, "account suspended"))
        else:
            frame = json.dumps({"type": "account", "status": p.status}, separators=(",", ":"))
            self.db.after_commit(lambda: self.hub.publish([p.account], frame))

    async def apply_remove(self, conn: Writer, p: env.AccountRemove) -> None:
        await store.delete_account(conn, p.account)
        self.db.after_commit(lambda: self.hub.close_member(p.account, "account ended"))

    async def apply_device(self, conn: Writer, p: env.DeviceDecision) -> None:
        if not await store.decide_device(conn, p.device_id, p.account, p.decision, now_iso()):
            return    # unknown here (e.g. the relay was rebuilt): the device registers again
        if p.decision == "revoked":
            await store.delete_sessions_of(conn, p.account, p.device_id)
            self.db.after_commit(lambda: self.hub.close_member(p.account, "device revoked", p.device_id))
