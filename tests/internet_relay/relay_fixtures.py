"""Helpers and the ``relay`` fixture: the relay in-process on 127.0.0.1:0 (aiohttp's TestServer), with envelopes from LGWAN fed to its link
service directly — the transport itself is exercised by tests/e2e over real processes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pyotp
import pytest
from aiohttp.test_utils import TestServer

from internet_relay.app import create_app
from internet_relay.appkeys import relay_key
from internet_relay.config import load_config
from internet_relay.kernel import Relay
from shared import envelope as env
from shared.signing import Signer, encode_public_key, fingerprint, save_peers, write_signer
from shared.timeutil import now_iso

PASSWORD = "guest-pass-2026!"
TOKEN = "invitation-token-for-tests-0123456789"
ROOM, STAFF_ROOM = 10, 11


def write_config(root: Path, extra: str = "") -> Path:
    keys = root / "keys"
    write_signer(keys, Signer.generate())
    lgwan = Signer.generate()
    save_peers(keys, [{"public_key": encode_public_key(lgwan.public_key), "fingerprint": fingerprint(lgwan.public_key),
                       "installed_at": now_iso(), "not_after": None}])
    path = root / "relay.toml"
    path.write_text(f"""
[web]
port = 0
[queue]
port = 0
keys_dir = "keys"
[storage]
data_dir = "data"
[auth]
argon2_time_cost = 1
argon2_memory_cost_kib = 8192
argon2_parallelism = 1
lockout_threshold = 3
[guests]
organisation_name = "架橋市"
{extra}
""", encoding="utf-8")
    return path


class Clock:
    """The relay's TOTP clock in these tests: each time step is accepted once, so a test that logs in
    more often than twice per 30 s moves this clock on instead of waiting."""

    offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset


CLOCK = Clock()


class Browser:
    """Cookie jar, CSRF header and Origin, like the relay's page."""

    def __init__(self, server: TestServer) -> None:
        self.base = str(server.make_url("")).rstrip("/")
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""
        self.secret = ""
        self.last_step = 0

    async def call(self, method: str, path: str, body: Any = None, *, csrf: bool = True,
                   origin: str | None = None) -> tuple[int, Any]:
        headers = {"Origin": origin or self.base}
        if csrf and self.csrf:
            headers["X-CSRF-Token"] = self.csrf
        async with self.http.request(method, self.base + path, json=body, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)

    def code(self) -> str:
        current = int(CLOCK.time()) // 30
        step = max(current, self.last_step + 1)
        if step > current + 1:
            CLOCK.offset += 30.0
            current += 1
        self.last_step = step
        return str(pyotp.TOTP(self.secret).at(step * 30))

    async def enrol(self, login: str, token: str = TOKEN, privacy_ack: bool = True) -> tuple[int, Any]:
        status, totp = await self.call("POST", "/api/enrol/totp", {"token": token})
        assert status == 200, totp
        self.secret = totp["secret"]
        return await self.call("POST", "/api/enrol/complete", {"token": token, "login": login, "password": PASSWORD,
                                                                "totp": self.code(), "privacy_ack": privacy_ack})

    async def login(self, login: str) -> tuple[int, Any]:
        status, data = await self.call("POST", "/api/login", {"login": login, "password": PASSWORD,
                                                              "totp": self.code()})
        if status == 200 and data.get("csrf_token"):
            self.csrf = data["csrf_token"]
        return status, data

    async def close(self) -> None:
        await self.http.close()


@dataclass
class RelayUnderTest:
    server: TestServer
    relay: Relay
    lgwan_seq: int = 0

    async def from_lgwan(self, *payloads: env.Payload) -> None:
        """Apply envelopes as if they had arrived over the link (verified, in sequence)."""
        envelopes = []
        for payload in payloads:
            self.lgwan_seq += 1
            envelopes.append(env.Envelope(payload.KIND, env.new_id(), env.LGWAN, self.lgwan_seq, now_iso(), "0" * 16,
                                          payload))
        await self.relay.link.apply(envelopes)

    def browser(self) -> Browser:
        return Browser(self.server)

    async def outbox(self) -> list[tuple[str, dict[str, Any]]]:
        import json

        from internet_relay.storage.database import fetchall
        rows = await fetchall(self.relay.db, "SELECT kind, payload FROM outbox ORDER BY seq")
        return [(r[0], json.loads(r[1])) for r in rows]

    async def audit(self, action: str) -> list[dict[str, Any]]:
        import json

        from internet_relay.storage.database import fetchall
        rows = await fetchall(self.relay.db, "SELECT actor, outcome, detail FROM audit WHERE action = ? ORDER BY id",
                              (action,))
        return [{"actor": r[0], "outcome": r[1], **json.loads(r[2])} for r in rows]


def account(member: str = "g:5", *, status: str = "invited", token: str | None = TOKEN, kind: str = "guest",
            device_approval: bool = False, expires_at: str | None = "2099-01-01T00:00:00.000Z") -> env.AccountUpsert:
    import hashlib
    return env.AccountUpsert(account=member, kind=kind, display_name="山田 太郎" if kind == "guest" else "鈴木 健太",
                             affiliation="架橋病院" if kind == "guest" else "危機管理課", status=status,
                             enrol_token_sha256=hashlib.sha256(token.encode()).hexdigest() if token else None,
                             enrol_expires_at="2099-01-01T00:00:00.000Z" if token else None, expires_at=expires_at,
                             device_approval=device_approval)


def message(message_id: int, seq: int, body: str, sender: str = "s:1", room: int = ROOM,
            origin: str | None = None) -> env.MessageNew:
    return env.MessageNew(message_id=message_id, room_id=room, seq=seq, sender=sender, sender_name="佐藤 花子",
                          sender_affiliation="総務課", body=body, created_at=now_iso(), thread_root_id=None,
                          origin_id=origin, attachments=0)


@pytest.fixture
async def relay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RelayUnderTest]:
    import types

    from internet_relay.services import accounts as accounts_module
    monkeypatch.setattr(accounts_module, "time", types.SimpleNamespace(time=CLOCK.time))
    app = create_app(load_config(write_config(tmp_path)))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    under_test = RelayUnderTest(server, app[relay_key])
    await under_test.from_lgwan(
        env.RoomUpsert(room_id=ROOM, name="外部連携ルーム", policy="guests"),
        env.RoomUpsert(room_id=STAFF_ROOM, name="職員スマホ連絡", policy="staff_mobile"),
        env.MemberUpsert(room_id=ROOM, member="s:1", display_name="佐藤 花子", affiliation="総務課"),
        env.MemberUpsert(room_id=ROOM, member="g:5", display_name="山田 太郎", affiliation="架橋病院"),
        env.MemberUpsert(room_id=STAFF_ROOM, member="s:1", display_name="佐藤 花子", affiliation="総務課"),
        env.MemberUpsert(room_id=STAFF_ROOM, member="g:5", display_name="山田 太郎", affiliation="架橋病院"),
        account())
    yield under_test
    await server.close()
