"""Staff login, TOTP, sessions and the network (IP allowlist) check.

Only the SHA-256 of a session token is stored, so a copy of the database cannot be replayed as
cookies. Every failure is audited with the login as typed and the source address.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

import pyotp
import segno

from shared import totp
from shared.timeutil import now_iso, parse_iso, to_iso, utcnow

from ..config import AuthConfig
from ..errors import AppError
from ..hub import Hub
from ..ratelimit import RateLimiter
from ..storage import org as org_store
from ..storage import sessions as session_store
from ..storage.database import Database
from ..storage.org import Organisation, Staff
from ..storage.sessions import Session
from .actor import Actor
from .audit import AuditService
from .passwords import Passwords

TOTP_STEP = totp.TOTP_STEP


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def ip_allowed(allowlist: tuple[str, ...], ip: str) -> bool:
    """True when the list is empty or ``ip`` falls in one of its networks."""
    if not allowlist:
        return True
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in ipaddress.ip_network(cidr, strict=False) for cidr in allowlist)


def validate_cidrs(cidrs: list[str]) -> list[str]:
    out = []
    for cidr in cidrs:
        try:
            out.append(str(ipaddress.ip_network(cidr.strip(), strict=False)))
        except ValueError as exc:
            raise AppError("invalid_cidr", value=cidr[:64]) from exc
    return out


def mfa_required(staff: Staff, org: Organisation) -> bool:
    return staff.is_admin or org.mfa_policy == "all" or staff.totp_secret is not None


@dataclass(frozen=True)
class LoginResult:
    token: str
    session: Session
    staff: Staff
    mfa_pending: bool


@dataclass(frozen=True)
class Authenticated:
    """A validated request's session and staff member."""

    session: Session
    staff: Staff
    org: Organisation
    affiliation: str

    def actor(self, ip: str) -> Actor:
        s = self.staff
        return Actor(s.id, s.org_id, s.login, self.affiliation, ip, s.role)


class AuthService:
    def __init__(self, db: Database, cfg: AuthConfig, audit: AuditService, hub: Hub) -> None:
        self.db = db
        self.cfg = cfg
        self.audit = audit
        self.hub = hub
        self.passwords = Passwords(cfg)
        self.login_limiter = RateLimiter(cfg.login_attempts_per_minute_per_ip, 60)
        self._touch_interval = 30.0

    # --- login / logout ----------------------------------------------------------------------

    async def login(self, login: str, password: str, totp_code: str | None, ip: str, user_agent: str) -> LoginResult:
        anon = Actor(None, None, login[:64], "", ip)
        if not self.login_limiter.allow(ip):
            await self.audit.record_alone(anon, "auth.login", outcome="denied", detail={"reason": "rate_limited"})
            raise AppError("rate_limited")
        staff = await org_store.get_staff_by_login(self.db, login)
        password_ok = await self.passwords.verify(staff.password_hash if staff else None, password)
        if staff is None:
            await self.audit.record_alone(anon, "auth.login", outcome="failed", detail={"reason": "unknown_login"})
            raise AppError("invalid_credentials")
        affiliation = await org_store.department_path(self.db.inline, staff.department_id)
        actor = Actor(staff.id, staff.org_id, staff.login, affiliation, ip, staff.role)
        if staff.locked_until and parse_iso(staff.locked_until) > utcnow():
            await self.audit.record_alone(actor, "auth.login", outcome="denied", detail={"reason": "locked"})
            raise AppError("account_locked")
        if not password_ok:
            await self._fail(staff, actor, "bad_password")
            raise AppError("invalid_credentials")
        if staff.role == "guest":
            # A guest's identity row (issue 5) never logs in to LGWAN; guests use the internet relay.
            await self.audit.record_alone(actor, "auth.login", outcome="denied", detail={"reason": "guest"})
            raise AppError("invalid_credentials")
        if staff.status != "active":
            await self.audit.record_alone(actor, "auth.login", outcome="denied", detail={"reason": staff.status})
            raise AppError("account_disabled")
        org = await org_store.get_org(self.db.inline, staff.org_id)
        assert org is not None
        if not ip_allowed(org.ip_allowlist, ip):
            await self.audit.record_alone(actor, "auth.login", outcome="denied", detail={"reason": "ip_not_allowed"})
            raise AppError("ip_not_allowed")
        step: int | None = None
        if staff.totp_secret:
            if not totp_code:
                raise AppError("totp_required")
            step = self._match_totp(staff.totp_secret, totp_code, staff.totp_last_step)
            if step is None:
                await self._fail(staff, actor, "bad_totp")
                raise AppError("totp_invalid")
        pending = mfa_required(staff, org) and staff.totp_secret is None
        token = secrets.token_urlsafe(32)
        now = now_iso()
        async with self.db.transaction("login") as conn:
            await org_store.reset_login_failures(conn, staff.id)
            if step is not None:
                await org_store.set_totp_last_step(conn, staff.id, step)
            session_id = await session_store.insert_session(conn, token_hash(token), staff.id,
                                                            secrets.token_urlsafe(24), pending, now, ip, user_agent)
            await self.audit.record(conn, actor, "auth.login", target_type="session", target_id=session_id,
                                    detail={"mfa": step is not None, "mfa_enrolment_pending": pending})
        session = await session_store.get_session_by_token_hash(self.db.inline, token_hash(token))
        assert session is not None
        return LoginResult(token, session, staff, pending)

    async def _fail(self, staff: Staff, actor: Actor, reason: str) -> None:
        locked_until = None
        if staff.failed_logins + 1 >= self.cfg.lockout_threshold:
            locked_until = to_iso(utcnow() + timedelta(seconds=self.cfg.lockout_duration))
        async with self.db.transaction("login_failed") as conn:
            await org_store.record_login_failure(conn, staff.id, locked_until)
            await self.audit.record(conn, actor, "auth.login", outcome="failed",
                                    detail={"reason": reason, "locked": locked_until is not None})

    async def logout(self, auth: Authenticated, ip: str) -> None:
        async with self.db.transaction("logout") as conn:
            await session_store.delete_session(conn, auth.session.id)
            await self.audit.record(conn, auth.actor(ip), "auth.logout", target_type="session",
                                    target_id=auth.session.id)
        self.hub.close_session(auth.session.id, "logged out")

    # --- per-request validation ----------------------------------------------------------------

    async def authenticate(self, token: str, ip: str) -> Authenticated:
        """Resolve a cookie token; raise ``not_authenticated``/``session_expired``/``ip_not_allowed``."""
        session = await session_store.get_session_by_token_hash(self.db.inline, token_hash(token))
        if session is None:
            raise AppError("not_authenticated")
        now = utcnow()
        idle = (now - parse_iso(session.last_seen_at)).total_seconds()
        age = (now - parse_iso(session.created_at)).total_seconds()
        if idle > self.cfg.session_idle_timeout or age > self.cfg.session_absolute_timeout:
            async with self.db.transaction("session_expire") as conn:
                await session_store.delete_session(conn, session.id)
            raise AppError("session_expired")
        staff = await org_store.get_staff(self.db.inline, session.staff_id)
        if staff is None or staff.status != "active" or staff.role == "guest":
            raise AppError("not_authenticated")
        org = await org_store.get_org(self.db.inline, staff.org_id)
        assert org is not None
        if not ip_allowed(org.ip_allowlist, ip):
            raise AppError("ip_not_allowed")
        if idle > self._touch_interval:   # one write per half-minute per session, not per request
            async with self.db.transaction("session_touch") as conn:
                await session_store.touch_session(conn, session.id, to_iso(now))
        affiliation = await org_store.department_path(self.db.inline, staff.department_id)
        return Authenticated(session, staff, org, affiliation)

    # --- TOTP --------------------------------------------------------------------------------

    def _match_totp(self, secret: str, code: str, last_step: int) -> int | None:
        """The time step ``code`` belongs to (±1 step for clock drift), if not used before."""
        return totp.match_totp(secret, code, last_step, time.time())

    async def begin_totp(self, auth: Authenticated, ip: str) -> dict[str, str]:
        """Offer a new secret; the QR code is rendered here as SVG (no external service)."""
        secret = pyotp.random_base32()
        uri = pyotp.TOTP(secret).provisioning_uri(name=auth.staff.login, issuer_name=self.cfg.totp_issuer)
        async with self.db.transaction("totp_begin") as conn:
            await org_store.set_totp_pending(conn, auth.staff.id, secret)
            await self.audit.record(conn, auth.actor(ip), "auth.totp_begin", target_type="staff",
                                    target_id=auth.staff.id)
        svg = segno.make(uri, error="m").svg_inline(scale=4, dark="#000", light="#fff")
        return {"secret": secret, "otpauth_uri": uri, "qr_svg": svg}

    async def confirm_totp(self, auth: Authenticated, code: str, ip: str) -> None:
        staff = await org_store.get_staff(self.db, auth.staff.id)
        assert staff is not None
        if not staff.totp_pending:
            raise AppError("totp_not_pending")
        step = self._match_totp(staff.totp_pending, code, 0)
        if step is None:
            await self.audit.record_alone(auth.actor(ip), "auth.totp_confirm", outcome="failed")
            raise AppError("totp_invalid")
        async with self.db.transaction("totp_confirm") as conn:
            await org_store.confirm_totp(conn, staff.id, staff.totp_pending, step)
            await session_store.clear_mfa_pending(conn, auth.session.id)
            await self.audit.record(conn, auth.actor(ip), "auth.totp_confirm", target_type="staff", target_id=staff.id)

    # --- password ----------------------------------------------------------------------------

    async def change_password(self, auth: Authenticated, current: str, new: str, ip: str) -> None:
        staff = await org_store.get_staff(self.db, auth.staff.id)
        assert staff is not None
        if not await self.passwords.verify(staff.password_hash, current):
            await self.audit.record_alone(auth.actor(ip), "auth.password_change", outcome="failed")
            # 400, not 401: the session is fine, only the typed password is wrong.
            raise AppError("wrong_current_password")
        self.passwords.check_policy(new, staff.login)
        digest = await self.passwords.hash(new)
        async with self.db.transaction("password_change") as conn:
            await org_store.set_password_hash(conn, staff.id, digest, now_iso())
            await self.audit.record(conn, auth.actor(ip), "auth.password_change", target_type="staff",
                                    target_id=staff.id)
