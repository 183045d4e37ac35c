"""Both tiers as real processes on 127.0.0.1: keys, configs, seeding, process control and clients.

Everything binds to 127.0.0.1 on ports chosen at run time; nothing touches the internet. The LGWAN
database is seeded in this process through the services (as the CLI does) before the server starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pyotp

from shared.signing import Signer, encode_public_key, fingerprint, save_peers, write_signer
from shared.timeutil import now_iso

HOST = "127.0.0.1"
PASSWORD = "kakehashi-test-2026"
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def install_keys(root: Path) -> tuple[Path, Path, Signer, Signer]:
    """Each tier's key directory with its own key and the peer's public key (as kakehashi-keys does)."""
    lgwan_dir, relay_dir = root / "keys-lgwan", root / "keys-relay"
    lgwan, relay = Signer.generate(), Signer.generate()
    for own, peer, directory in ((lgwan, relay, lgwan_dir), (relay, lgwan, relay_dir)):
        write_signer(directory, own)
        save_peers(directory, [{"public_key": encode_public_key(peer.public_key),
                                "fingerprint": fingerprint(peer.public_key), "installed_at": now_iso(),
                                "not_after": None}])
    return lgwan_dir, relay_dir, lgwan, relay


@dataclass
class Ports:
    lgwan: int = field(default_factory=free_port)
    relay_web: int = field(default_factory=free_port)
    relay_queue: int = field(default_factory=free_port)


def lgwan_config(root: Path, ports: Ports, keys: Path, *, extra_bridge: str = "", scheme: str = "ws",
                 max_backoff: str = "1s") -> Path:
    path = root / "lgwan.toml"
    path.write_text(f"""
[server]
host = "{HOST}"
port = {ports.lgwan}
port_file = "lgwan.port"
[storage]
data_dir = "lgwan-data"
[auth]
argon2_time_cost = 1
argon2_memory_cost_kib = 8192
argon2_parallelism = 1
login_attempts_per_minute_per_ip = 10000
[limits]
post_burst = 100000
post_refill_per_second = 100000
[logging]
level = "WARNING"
[bridge]
enabled = true
relay_url = "{scheme}://{HOST}:{ports.relay_queue}/queue"
relay_public_url = "http://{HOST}:{ports.relay_web}"
keys_dir = "{keys}"
max_backoff = "{max_backoff}"
connect_timeout = "5s"
{extra_bridge}
""", encoding="utf-8")
    return path


def relay_config(root: Path, ports: Ports, keys: Path, *, extra: str = "", extra_queue: str = "") -> Path:
    path = root / "relay.toml"
    path.write_text(f"""
[web]
host = "{HOST}"
port = {ports.relay_web}
port_file = "relay-web.port"
[queue]
host = "{HOST}"
port = {ports.relay_queue}
port_file = "relay-queue.port"
keys_dir = "{keys}"
{extra_queue}
[storage]
data_dir = "relay-data"
[auth]
argon2_time_cost = 1
argon2_memory_cost_kib = 8192
argon2_parallelism = 1
login_attempts_per_minute_per_ip = 10000
[limits]
post_burst = 100000
post_refill_per_second = 100000
[guests]
organisation_name = "架橋市"
[logging]
level = "WARNING"
{extra}
""", encoding="utf-8")
    return path


# --- seeding the LGWAN side ----------------------------------------------------------------------

@dataclass
class Seed:
    org_id: int
    admin_id: int
    admin_totp: str
    staff: dict[str, int]             # login -> id
    rooms: dict[str, int]             # name -> id


async def seed_lgwan(config: Path, *, staff_logins: tuple[str, ...] = ("sato", "suzuki", "tanaka"),
                     rooms: tuple[tuple[str, str], ...] = (("guests-room", "guests"), ("mobile-room", "staff_mobile"),
                                                           ("secret-room", "lgwan_only"))) -> Seed:
    """An organisation, a server admin with TOTP, staff, and rooms of each policy (all staff in each)."""
    from lgwan_server.cli import open_kernel
    from lgwan_server.config import load_config
    from lgwan_server.services.actor import Actor
    from lgwan_server.storage import org as org_store

    cfg = load_config(config)
    async with open_kernel(cfg) as k:
        system = Actor.system("seed")
        org_id = await k.org.create_org(system, "999991", "架橋市")
        root = Actor(None, org_id, "seed", "", "seed", "server_admin")
        admin_id = await k.org.create_staff(root, org_id, login="admin", display_name="管理 太郎", kana="", employee_no=None,
                                            department_id=None, rank_id=None, title="", role="server_admin",
                                            password=PASSWORD)
        secret = pyotp.random_base32()
        async with k.db.transaction("seed_totp") as conn:
            await org_store.confirm_totp(conn, admin_id, secret, 0)
        staff = {}
        names = {"sato": "佐藤 花子", "suzuki": "鈴木 健太", "tanaka": "田中 陽子"}
        for login in staff_logins:
            staff[login] = await k.org.create_staff(root, org_id, login=login, display_name=names.get(login, login),
                                                    kana="", employee_no=None, department_id=None, rank_id=None,
                                                    title="", role="staff", password=PASSWORD)
        admin = Actor(admin_id, org_id, "admin", "", "seed", "server_admin")
        room_ids = {}
        for name, policy in rooms:
            room = await k.rooms.create_room(admin, kind="project", name=name, topic="", member_ids=list(staff.values()),
                                             crossing_policy=policy)
            room_ids[name] = room.id
            if "sato" in staff:   # sato owns every room, as a section's room owner would
                await k.rooms.set_member_role(admin, room.id, staff["sato"], "owner")
    return Seed(org_id, admin_id, secret, staff, room_ids)


# --- processes ---------------------------------------------------------------------------------------

class Tier:
    """One tier as a child process (``python -m lgwan_server`` / ``python -m internet_relay``)."""

    def __init__(self, module: str, config: Path, port_files: list[str], log_name: str) -> None:
        self.module = module
        self.config = config
        self.port_files = [config.parent / p for p in port_files]
        self.log_path = config.parent / log_name
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> None:
        for path in self.port_files:
            path.unlink(missing_ok=True)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        log = self.log_path.open("ab")
        command = [sys.executable, "-m", self.module, "--config", str(self.config)]
        profile_dir = os.environ.get("KAKEHASHI_PROFILE_DIR")     # benchmarks: cProfile each tier
        if profile_dir:
            command[1:1] = ["-m", "cProfile", "-o", f"{profile_dir}/{self.module}-{self.starts}.prof"]
        self.proc = subprocess.Popen(command, cwd=self.config.parent, stdout=log, stderr=log, env=env)
        log.close()
        self.starts += 1
        deadline = time.monotonic() + timeout
        while not all(p.exists() for p in self.port_files):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.module} exited with {self.proc.returncode}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.module} did not start:\n{self.tail()}")
            time.sleep(0.02)

    def tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush — what a power cut looks like to the process."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class TwoTiers:
    root: Path
    ports: Ports
    lgwan: Tier
    relay: Tier
    seed: Seed
    lgwan_signer: Signer
    relay_signer: Signer

    @property
    def lgwan_url(self) -> str:
        return f"http://{HOST}:{self.ports.lgwan}"

    @property
    def relay_url(self) -> str:
        return f"http://{HOST}:{self.ports.relay_web}"

    @property
    def queue_url(self) -> str:
        return f"http://{HOST}:{self.ports.relay_queue}"

    @property
    def lgwan_db(self) -> Path:
        return self.root / "lgwan-data" / "lgwan.sqlite3"

    @property
    def relay_db(self) -> Path:
        return self.root / "relay-data" / "relay.sqlite3"

    def stop(self) -> None:
        self.lgwan.stop()
        self.relay.stop()


def self_signed(root: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (the LGWAN side pins it with [bridge] ca_file)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kakehashi relay (test)")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = root / "queue-cert.pem", root / "queue-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def start_two_tiers(root: Path, *, lgwan_extra: str = "", relay_extra: str = "", start: bool = True,
                          tls: bool = False, max_backoff: str = "1s", clock_skew: str | None = None,
                          **seed_args: Any) -> TwoTiers:
    ports = Ports()
    lgwan_keys, relay_keys, lgwan_signer, relay_signer = install_keys(root)
    extra_queue = ""
    if clock_skew:
        lgwan_extra += f'\nclock_skew = "{clock_skew}"'
        extra_queue += f'clock_skew = "{clock_skew}"\n'
    if tls:
        cert, key = self_signed(root)
        lgwan_extra += f'\nca_file = "{cert}"'
        extra_queue += f'tls_cert = "{cert}"\ntls_key = "{key}"'
    lgwan_cfg = lgwan_config(root, ports, lgwan_keys, extra_bridge=lgwan_extra, scheme="wss" if tls else "ws",
                             max_backoff=max_backoff)
    relay_cfg = relay_config(root, ports, relay_keys, extra=relay_extra, extra_queue=extra_queue)
    seed = await seed_lgwan(lgwan_cfg, **seed_args)
    tiers = TwoTiers(root, ports, Tier("lgwan_server", lgwan_cfg, ["lgwan.port"], "lgwan.log"),
                     Tier("internet_relay", relay_cfg, ["relay-web.port", "relay-queue.port"], "relay.log"),
                     seed, lgwan_signer, relay_signer)
    if start:
        tiers.relay.start()
        tiers.lgwan.start()
    return tiers


def query(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read a tier's SQLite file directly (WAL lets us read while the server writes)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]
    finally:
        conn.close()


async def wait_for(predicate: Any, timeout: float = 20.0, interval: float = 0.05, what: str = "condition") -> Any:  # noqa: ASYNC109
    """Poll an (async or plain) predicate until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


# --- clients ------------------------------------------------------------------------------------------

class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body

    @property
    def code(self) -> str:
        return str(self.body.get("error", {}).get("code", "")) if isinstance(self.body, dict) else ""


class Client:
    """A browser-like JSON client: cookie jar, CSRF header, Origin header."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                          timeout=aiohttp.ClientTimeout(total=30))
        self.csrf = ""
        self.sockets: list[aiohttp.ClientWebSocketResponse] = []

    async def close(self) -> None:
        # Close our WebSockets first: a socket left to the garbage collector warns (ResourceWarning),
        # and the test settings turn every warning into an error.
        for ws in self.sockets:
            await ws.close()
        await self.http.close()

    async def call(self, method: str, path: str, body: Any = None, expect: int | None = None) -> Any:
        headers = {"Origin": self.base}
        if self.csrf:
            headers["X-CSRF-Token"] = self.csrf
        async with self.http.request(method, self.base + path, json=body, headers=headers) as resp:
            data = await resp.json(content_type=None)
            if resp.status >= 400 or (expect is not None and resp.status != expect):
                raise ApiError(resp.status, data)
            return data

    async def ws(self, path: str) -> aiohttp.ClientWebSocketResponse:
        ws = await self.http.ws_connect(self.base + path, headers={"Origin": self.base}, heartbeat=30)
        self.sockets.append(ws)
        return ws


# Each TOTP time step is accepted once per account (replay protection), so clients remember the
# last step they used per secret and take the next unused one (waiting when both are used).
_LAST_STEP: dict[str, int] = {}


async def fresh_code(secret: str) -> str:
    while True:
        current = int(time.time()) // 30
        for step in (current, current + 1):
            if step > _LAST_STEP.get(secret, 0):
                _LAST_STEP[secret] = step
                return str(pyotp.TOTP(secret).at(step * 30))
        await asyncio.sleep(0.5)


class Staff(Client):
    async def login(self, login: str, password: str = PASSWORD, totp_secret: str | None = None) -> None:
        body: dict[str, Any] = {"login": login, "password": password}
        if totp_secret:
            body["totp"] = await fresh_code(totp_secret)
        data = await self.call("POST", "/api/auth/login", body)
        self.csrf = data["csrf_token"]

    async def post(self, room_id: int, text: str, client_msg_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"body": text}
        if client_msg_id:
            body["client_msg_id"] = client_msg_id
        return await self.call("POST", f"/api/rooms/{room_id}/messages", body)  # type: ignore[no-any-return]


class Guest(Client):
    """A guest or staff phone on the relay."""

    totp_secret = ""
    login_id = ""
    password = ""

    async def fresh_code(self) -> str:
        return await fresh_code(self.totp_secret)

    async def enrol(self, token: str, login: str, password: str = PASSWORD, privacy_ack: bool = True) -> dict[str, Any]:
        info = await self.call("POST", "/api/enrol/info", {"token": token})
        totp = await self.call("POST", "/api/enrol/totp", {"token": token})
        self.totp_secret, self.login_id, self.password = totp["secret"], login, password
        await self.call("POST", "/api/enrol/complete", {"token": token, "login": login, "password": password,
                                                         "totp": await self.fresh_code(), "privacy_ack": privacy_ack})
        return info  # type: ignore[no-any-return]

    async def login(self) -> dict[str, Any]:
        data = await self.call("POST", "/api/login", {"login": self.login_id, "password": self.password,
                                                      "totp": await self.fresh_code()})
        if data["csrf_token"]:
            self.csrf = data["csrf_token"]
        return data  # type: ignore[no-any-return]

    async def post(self, room_id: int, text: str, client_msg_id: str) -> dict[str, Any]:
        return await self.call("POST", f"/api/rooms/{room_id}/messages",  # type: ignore[no-any-return]
                               {"body": text, "client_msg_id": client_msg_id})


async def ws_collect(ws: aiohttp.ClientWebSocketResponse, out: list[dict[str, Any]]) -> None:
    """Append every JSON frame of a WebSocket to ``out`` until it closes."""
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT:
            out.append(json.loads(msg.data))
