"""An organisation with departments and many staff phones, for the 安否確認 tests (issue 6).

Hundreds of phones going through enrolment, device approval and TOTP login one by one would
spend the test budget on what tests/e2e/test_two_tier.py already proves. So the people are
seeded on both tiers *before they start*, as a city that registered its phones last month would
be: on LGWAN (in this process, through the storage layer) the staff, their 所属, active mobile
grants and approved devices; in the relay's database the matching credentials, devices and
logged-in sessions. Everything after that — who may log in, the accounts, the role, the device
decisions — comes over the real link at the first handshake (LGWAN's full resync), and every
answer goes through the real HTTP APIs of both running tiers.

One HTTP session serves many people (``Pool``): each request carries the person's own session
cookie and CSRF token, so 300 phones do not need 300 connection pools.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pyotp

from .harness import PASSWORD, ApiError, TwoTiers, query, wait_for

DEPARTMENT_NAMES = ("総務課", "危機管理課", "健康推進課", "土木課", "上下水道課", "子育て支援課", "税務課", "市民課")


@dataclass
class Person:
    login: str
    staff_id: int
    department_id: int
    department: str
    phone: bool
    role: str = "staff"
    relay_token: str = ""            # the phone's relay session (seeded as already logged in)
    relay_csrf: str = ""
    device_cookie: str = ""
    totp_secret: str = ""
    lgwan_cookie: str = ""           # set by Pool.login_lgwan
    lgwan_csrf: str = ""

    @property
    def member(self) -> str:
        return f"s:{self.staff_id}"


@dataclass
class City:
    tiers: TwoTiers
    departments: dict[int, str]      # id -> name
    people: list[Person]
    chief: Person                    # safety_manager with a phone: starts checks on LGWAN and, in an outage, on the relay

    @property
    def phones(self) -> list[Person]:
        return [p for p in self.people if p.phone]

    @property
    def web_only(self) -> list[Person]:
        return [p for p in self.people if not p.phone]


async def seed_city(tiers: TwoTiers, *, phones: int, web_only: int, departments: int = 6) -> City:
    """Seed both tiers (before they start): ``phones`` phone-registered staff (plus the chief) and
    ``web_only`` staff, spread round-robin over ``departments`` departments."""
    from argon2 import PasswordHasher

    from internet_relay.config import load_config as load_relay_config
    from internet_relay.storage.database import Database as RelayDatabase
    from internet_relay.storage.database import apply_migrations as relay_migrations
    from lgwan_server.cli import open_kernel
    from lgwan_server.config import load_config
    from lgwan_server.storage import guests as guest_store
    from lgwan_server.storage import org as org_store
    from shared.timeutil import now_iso

    assert not tiers.lgwan.alive() and not tiers.relay.alive(), "seed before the tiers start"
    cfg = load_config(tiers.lgwan.config)
    now = now_iso()
    people: list[Person] = []
    dept_names: dict[int, str] = {}
    async with open_kernel(cfg) as k:
        digest = await k.auth.passwords.hash(PASSWORD)
        async with k.db.transaction("seed_city") as conn:
            dept_ids = []
            for i in range(departments):
                dept_id, _ = await org_store.upsert_department(conn, tiers.seed.org_id, f"D{i:02}",
                                                               DEPARTMENT_NAMES[i % len(DEPARTMENT_NAMES)], "ka", None, i)
                dept_ids.append(dept_id)
                dept_names[dept_id] = DEPARTMENT_NAMES[i % len(DEPARTMENT_NAMES)]
            plan = [("chief", True, "safety_manager")] + [(f"p{n:04}", True, "staff") for n in range(phones)] + [
                (f"w{n:04}", False, "staff") for n in range(web_only)]
            for n, (login, phone, role) in enumerate(plan):
                dept_id = dept_ids[n % len(dept_ids)]
                staff_id = await org_store.insert_staff(
                    conn, org_id=tiers.seed.org_id, login=login, employee_no=f"E{n:05}", display_name=f"職員 {login}",
                    kana="", department_id=dept_id, rank_id=None, title="", role=role, password_hash=digest, now=now)
                person = Person(login, staff_id, dept_id, dept_names[dept_id], phone, role)
                if phone:
                    person.device_cookie = secrets.token_urlsafe(32)
                    person.totp_secret = pyotp.random_base32()
                    person.relay_token, person.relay_csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
                    await guest_store.upsert_grant(conn, staff_id, secrets.token_hex(32), "2099-01-01T00:00:00.000Z",
                                                   tiers.seed.admin_id, now)
                    await guest_store.mark_grant_enrolled(conn, staff_id, now)
                    await guest_store.insert_device(conn, _device_id(person), staff_id, "Android Chrome", now)
                    await guest_store.decide_device(conn, _device_id(person), "approved", tiers.seed.admin_id, now)
                people.append(person)

    relay_cfg = load_relay_config(tiers.relay.config)
    hasher = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    relay_digest = hasher.hash(PASSWORD)
    db = await RelayDatabase.open(relay_cfg.db_path)
    try:
        await relay_migrations(db.conn)
        async with db.transaction("seed_phones") as conn:
            for p in people:
                if not p.phone:
                    continue
                # What LGWAN will say about them comes at the first handshake; the credentials exist only here.
                await conn.execute(
                    "INSERT INTO accounts(member, kind, display_name, affiliation, status, login, password_hash,"
                    " totp_secret, device_approval, updated_at) VALUES (?, 'staff', ?, ?, 'invited', ?, ?, ?, 1, ?)",
                    (p.member, f"職員 {p.login}", p.department, f"{p.login}-phone", relay_digest, p.totp_secret, now))
                await conn.execute(
                    "INSERT INTO devices(device_id, member, cookie_sha256, label, status, created_at)"
                    " VALUES (?, ?, ?, 'Android Chrome', 'pending', ?)",
                    (_device_id(p), p.member, hashlib.sha256(p.device_cookie.encode()).hexdigest(), now))
                await conn.execute(
                    "INSERT INTO sessions(token_sha256, member, device_id, csrf_token, created_at, last_seen_at,"
                    " source_ip) VALUES (?, ?, ?, ?, ?, ?, '127.0.0.1')",
                    (hashlib.sha256(p.relay_token.encode()).hexdigest(), p.member, _device_id(p), p.relay_csrf, now,
                     now))
    finally:
        await db.close()
    chief = people[0]
    return City(tiers, dept_names, people, chief)


def _device_id(person: Person) -> str:
    return hashlib.sha256(f"device-{person.staff_id}".encode()).hexdigest()[:32]


async def city_synced(city: City) -> bool:
    """The first handshake's resync has reached the relay: every phone active with its device approved,
    and the chief may start a check there (the role came over the link)."""
    rows = query(city.tiers.relay_db, "SELECT count(*) FROM accounts a JOIN devices d ON d.member = a.member"
                                      " WHERE a.status = 'active' AND d.status = 'approved'")
    chief = query(city.tiers.relay_db, "SELECT safety_manager FROM accounts WHERE member = ?", (city.chief.member,))
    return rows[0][0] == len(city.phones) and chief == [(1,)]


async def start_city(city: City) -> None:
    city.tiers.relay.start()
    city.tiers.lgwan.start()
    await wait_for(lambda: city_synced(city), timeout=60, what="the phones on the relay")


@dataclass
class Pool:
    """Many people over one HTTP session; the person's own cookie and CSRF token on each request."""

    tiers: TwoTiers
    http: aiohttp.ClientSession = field(init=False)
    retries: int = 0

    def __post_init__(self) -> None:
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(),
                                          timeout=aiohttp.ClientTimeout(total=30))

    async def close(self) -> None:
        await self.http.close()

    async def _call(self, base: str, method: str, path: str, body: Any, cookie: str, csrf: str) -> Any:
        headers = {"Origin": base, "Cookie": cookie}
        if csrf:
            headers["X-CSRF-Token"] = csrf
        async with self.http.request(method, base + path, json=body, headers=headers) as resp:
            data = await resp.json(content_type=None)
            if resp.status >= 400:
                raise ApiError(resp.status, data)
            return data

    async def relay(self, person: Person, method: str, path: str, body: Any = None) -> Any:
        return await self._call(self.tiers.relay_url, method, path, body, f"kr_session={person.relay_token}",
                                person.relay_csrf)

    async def relay_retrying(self, person: Person, method: str, path: str, body: Any = None) -> Any:
        """As a phone in a disaster does: try again until the relay answers (through a restart)."""
        while True:
            try:
                return await self.relay(person, method, path, body)
            except (aiohttp.ClientError, ConnectionError, TimeoutError):
                pass
            except ApiError as exc:
                if exc.status < 500:
                    raise
            self.retries += 1
            await asyncio.sleep(0.1)

    async def login_lgwan(self, person: Person) -> None:
        async with self.http.post(self.tiers.lgwan_url + "/api/auth/login", json={"login": person.login,
                                                                                  "password": PASSWORD},
                                  headers={"Origin": self.tiers.lgwan_url}) as resp:
            data = await resp.json(content_type=None)
            assert resp.status == 200, data
            person.lgwan_cookie = f"kk_session={resp.cookies['kk_session'].value}"
            person.lgwan_csrf = data["csrf_token"]

    async def lgwan(self, person: Person, method: str, path: str, body: Any = None) -> Any:
        if not person.lgwan_cookie:
            await self.login_lgwan(person)
        return await self._call(self.tiers.lgwan_url, method, path, body, person.lgwan_cookie, person.lgwan_csrf)


async def gather_limited(limit: int, *jobs: Any) -> list[Any]:
    """Run coroutines with at most ``limit`` at once (two shared cores: keep the load honest, not wild)."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Any) -> Any:
        async with gate:
            return await job

    return list(await asyncio.gather(*(one(j) for j in jobs)))
