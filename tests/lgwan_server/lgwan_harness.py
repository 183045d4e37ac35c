"""Real-process test harness for the LGWAN server (issue 2).

Servers are real ``python -m lgwan_server`` processes on 127.0.0.1 with port 0 and a port file,
each with its own SQLite file under the test's tmp_path. Tests drive them with aiohttp's client
and inspect the database read-only with ``sqlite3``. Nothing is mocked.

The module name is unusual on purpose: tests/ has no ``__init__.py``, so a helper called
``harness.py`` here could collide with one in another test folder.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import json as _json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pyotp
from yarl import URL

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_PASSWORD = "kakehashi-demo-2026"
JST = timezone(timedelta(hours=9))
# Cheap argon2 so logins cost milliseconds on a 2-core CI box; the demo hashes with these too.
FAST_AUTH = {"argon2_time_cost": 1, "argon2_memory_cost_kib": 8192, "argon2_parallelism": 1}
# Tables whose contents a rejected request must leave alone.
CONTENT_TABLES = ("organisations", "departments", "ranks", "staff", "staff_assignments", "rooms", "room_orgs",
                  "room_members", "messages", "message_edits", "mentions", "reactions", "pins", "blobs",
                  "attachments", "events", "event_recipients", "audit_log")
_MISSING: Any = object()


# Hostile fixtures (handbook rule 13). Each entry: (raw input, what the server must store/show).
HOSTILE_CASES: dict[str, tuple[str, str]] = {
    "rlo": ("請求書\u202etxt.exe", "請求書txt.exe"),                     # "Trojan Source" / filename spoofing
    "ansi": ("赤\x1b[31m字\x1b[0m", "赤[31m字[0m"),                        # terminal escape sequences
    "c1_and_nul": ("a\x00b\x85c\x9bd", "abcd"),                           # NUL and C1 controls
    "bidi_isolates": ("x\u2066y\u2069z\u200fw", "xyzw"),
    "bom": ("\ufeff本文", "本文"),
    "zwj_kept": ("家族👨\u200d👩\u200d👧です", "家族👨\u200d👩\u200d👧です"),  # emoji sequences need ZWJ
    "nfd_to_nfc": ("か\u3099き\u3099", "がぎ"),                             # NFC normalisation
    "halfwidth_kana_kept": ("ｶﾀｶﾅとカタカナ", "ｶﾀｶﾅとカタカナ"),            # no NFKC: half-width stays
    "crlf": ("一行目\r\n二行目\r三行目", "一行目\n二行目\n三行目"),
}


def today_jst() -> str:
    return datetime.now(JST).strftime("%Y-%m-%d")


# --- config ------------------------------------------------------------------------------------

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def toml_text(sections: dict[str, dict[str, Any]]) -> str:
    lines = []
    for name, table in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in table.items()]
        lines.append("")
    return "\n".join(lines)


def merge_config(base: dict[str, dict[str, Any]], extra: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    out = {name: dict(table) for name, table in base.items()}
    for name, table in (extra or {}).items():
        out.setdefault(name, {}).update(table)
    return out


def base_config() -> dict[str, dict[str, Any]]:
    return {
        "server": {"host": "127.0.0.1", "port": 0, "port_file": "port"},
        "storage": {"data_dir": "data"},
        "auth": dict(FAST_AUTH),
        "logging": {"level": "INFO", "format": "json"},
    }


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test's environment without KAKEHASHI_LGWAN_* overrides that could change a server's config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAKEHASHI_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


# --- the server process ------------------------------------------------------------------------

_RUNNING: weakref.WeakSet[ServerProcess] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    """If pytest itself is interrupted before fixture teardown, leave no server behind."""
    for server in list(_RUNNING):
        server.kill()


class ServerProcess:
    """One ``python -m lgwan_server`` in its own folder: config, data dir, port file and stderr log."""

    def __init__(self, root: Path, config: dict[str, dict[str, Any]] | None = None, name: str = "lgwan") -> None:
        self.root = root
        self.name = name
        self.config = merge_config(base_config(), config)
        root.mkdir(parents=True, exist_ok=True)
        self.config_path = root / "lgwan.toml"
        self.config_path.write_text(toml_text(self.config), encoding="utf-8")
        self.data_dir = root / "data"
        self.db_path = self.data_dir / "lgwan.sqlite3"
        self.port_file = root / "port"
        self.log_path = root / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.starts = 0
        # Admin login state kept across tests (TOTP codes cannot be replayed, so one enrolment per server).
        self.admin_token: str | None = None
        self.admin_csrf: str | None = None
        self.admin_totp_secret: str | None = None
        self.admin_totp_step = 0

    # lifecycle

    def copy_data_from(self, data_dir: Path) -> None:
        shutil.copytree(data_dir, self.data_dir, dirs_exist_ok=True)

    def start(self, timeout: float = 20.0) -> None:
        assert self.proc is None, "already running"
        self.port_file.unlink(missing_ok=True)
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start #{self.starts} ---\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lgwan_server", "--config", str(self.config_path)],
                cwd=self.root, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                env=clean_env(), start_new_session=True)
        _RUNNING.add(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise RuntimeError(f"{self.name} exited with {code} while starting:\n{self.log_tail()}")
            text = self.port_file.read_text().strip() if self.port_file.exists() else ""
            if text.isdigit():
                self.port = int(text)
                return
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"{self.name} did not write its port file in {timeout}s:\n{self.log_tail()}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``. Returns the exit code."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def kill(self) -> int | None:
        """SIGKILL: no shutdown code runs, as after a power cut of the process."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        return proc.returncode

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # addresses

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def origin(self) -> str:
        return self.base_url

    # logs

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, offset: int) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def error_lines_since(self, offset: int) -> list[str]:
        """Log lines that mean a bug: unhandled errors, tracebacks, ERROR/CRITICAL records."""
        bad = []
        for line in self.log_since(offset).splitlines():
            if ("unhandled error" in line or "Traceback" in line or '"level": "ERROR"' in line
                    or '"level": "CRITICAL"' in line or "Error handling request" in line):
                bad.append(line)
        return bad

    # the command line

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lgwan_server", "--config", str(self.config_path), *args],
                              cwd=self.root, capture_output=True, text=True, timeout=timeout, env=clean_env(env),
                              check=False)

    # the database, read-only

    @contextlib.contextmanager
    def db(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            yield conn
        finally:
            conn.close()

    @contextlib.contextmanager
    def db_rw(self) -> Iterator[sqlite3.Connection]:
        """Write access, as an attacker with the file would have. Autocommit."""
        conn = sqlite3.connect(self.db_path, timeout=10, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.db() as conn:
            return list(conn.execute(sql, params).fetchall())

    def scalar(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def fingerprint(self, tables: tuple[str, ...] = CONTENT_TABLES) -> dict[str, tuple[int, int]]:
        """(row count, max rowid) per table: any insert or delete changes it."""
        out = {}
        with self.db() as conn:
            for table in tables:
                key = "rowid" if table not in ("room_members", "mentions", "reactions", "pins", "blobs", "room_orgs",
                                               "event_recipients") \
                    else "0"
                out[table] = tuple(conn.execute(f"SELECT count(*), coalesce(max({key}), 0) FROM {table}").fetchone())
        return out  # type: ignore[return-value]

    def latest_event_id(self) -> int:
        return int(self.scalar("SELECT coalesce(max(id), 0) FROM events"))


# --- the demo city roster ----------------------------------------------------------------------

@dataclass(frozen=True)
class Person:
    id: int
    login: str
    name: str
    department_id: int
    department: str
    bu_id: int          # the enclosing 部
    affiliation: str    # "総務部 総務課", as stored with messages


class Roster:
    """The demo staff, handed out so that tests on a shared server never share a person."""

    def __init__(self, people: list[Person], department_rooms: dict[int, int]) -> None:
        self.people = people
        self.department_rooms = department_rooms    # department id -> its generated room id
        self._used: set[str] = set()

    @classmethod
    def from_db(cls, db_path: Path) -> Roster:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            rows = conn.execute(
                "SELECT s.id, s.login, s.display_name, d.id, d.name, p.id, p.name FROM staff s"
                " JOIN departments d ON d.id = s.department_id JOIN departments p ON p.id = d.parent_id"
                " WHERE s.login LIKE 'staff%' AND s.status = 'active' ORDER BY s.id").fetchall()
            rooms = dict(conn.execute("SELECT department_id, id FROM rooms WHERE kind = 'department'").fetchall())
        finally:
            conn.close()
        people = [Person(r[0], r[1], r[2], r[3], r[4], r[5], f"{r[6]} {r[4]}") for r in rows]
        return cls(people, rooms)

    def fork(self) -> Roster:
        """A fresh roster over the same people (for a server of its own)."""
        return Roster(self.people, self.department_rooms)

    def take(self, count: int = 1, *, same_department: bool = False, department_id: int | None = None,
             outside: tuple[Person, ...] = ()) -> list[Person]:
        """``count`` unused people; optionally all of one 課, or none sharing a 部 with ``outside``."""
        avoid_bu = {p.bu_id for p in outside}
        free = [p for p in self.people if p.login not in self._used and p.bu_id not in avoid_bu
                and (department_id is None or p.department_id == department_id)]
        if same_department:
            by_dept: dict[int, list[Person]] = {}
            for p in free:
                by_dept.setdefault(p.department_id, []).append(p)
            groups = sorted((g for g in by_dept.values() if len(g) >= count), key=len, reverse=True)
            if not groups:
                raise RuntimeError(f"no department with {count} unused people left")
            chosen = groups[0][:count]
        else:
            if len(free) < count:
                raise RuntimeError(f"only {len(free)} unused people left")
            chosen = free[:count]
        self._used.update(p.login for p in chosen)
        return chosen

    def one(self, **kwargs: Any) -> Person:
        return self.take(1, **kwargs)[0]


# --- HTTP and WebSocket clients ----------------------------------------------------------------

@dataclass
class Reply:
    status: int
    headers: Any
    raw: bytes
    data: Any = None

    @property
    def code(self) -> str | None:
        if isinstance(self.data, dict) and isinstance(self.data.get("error"), dict):
            return self.data["error"].get("code")
        return None

    @property
    def detail(self) -> dict[str, Any]:
        return (self.data or {}).get("error", {}).get("detail", {}) if isinstance(self.data, dict) else {}

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.raw[:400]!r}>"


class StaffClient:
    """One browser: a cookie jar, the CSRF token and helpers that add it to unsafe requests."""

    def __init__(self, server: ServerProcess, person: Person | str | None = None) -> None:
        self.server = server
        self.login_name = person.login if isinstance(person, Person) else person
        self.person = person if isinstance(person, Person) else None
        self.http = aiohttp.ClientSession(base_url=server.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf: str | None = None
        self.staff_id: int | None = self.person.id if self.person else None
        self._sockets: list[WsClient] = []

    async def close(self) -> None:
        for ws in self._sockets:
            await ws.close()
        await self.http.close()

    @property
    def token(self) -> str | None:
        cookie = self.http.cookie_jar.filter_cookies(URL(self.server.base_url)).get("kk_session")
        return cookie.value if cookie else None

    def use_token(self, token: str, csrf: str | None) -> None:
        self.http.cookie_jar.update_cookies({"kk_session": token}, URL(self.server.base_url))
        self.csrf = csrf

    async def login(self, login: str | None = None, password: str = DEMO_PASSWORD, totp: str | None = None,
                    expect: int | None = 200, code: str | None = None) -> Reply:
        body: dict[str, Any] = {"login": login or self.login_name, "password": password}
        if totp is not None:
            body["totp"] = totp
        reply = await self.post("/api/auth/login", json=body, csrf=False, expect=expect, code=code)
        if reply.status == 200:
            self.login_name = body["login"]
            self.csrf = reply.data["csrf_token"]
            self.staff_id = reply.data["staff_id"]
        return reply

    async def request(self, method: str, path: str, *, json: Any = _MISSING, data: Any = None,
                      headers: dict[str, str] | None = None, params: Any = None, csrf: bool = True,
                      expect: int | None = None, code: str | None = None) -> Reply:
        hdrs = dict(headers or {})
        if csrf and method in ("POST", "PUT", "PATCH", "DELETE") and self.csrf:
            hdrs.setdefault("X-CSRF-Token", self.csrf)
        kwargs: dict[str, Any] = {"headers": hdrs, "params": params}
        if json is not _MISSING:
            kwargs["json"] = json
        if data is not None:
            kwargs["data"] = data
        async with self.http.request(method, path, **kwargs) as resp:
            raw = await resp.read()
            reply = Reply(resp.status, resp.headers, raw)
            if resp.content_type == "application/json":
                reply.data = _json.loads(raw)
        if expect is not None:
            assert reply.status == expect, f"{method} {path}: expected {expect}, got {reply!r}"
        if code is not None:
            assert reply.code == code, f"{method} {path}: expected error {code}, got {reply!r}"
        return reply

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> Reply:
        return await self.request("POST", path, **kw)

    async def put(self, path: str, **kw: Any) -> Reply:
        return await self.request("PUT", path, **kw)

    async def patch(self, path: str, **kw: Any) -> Reply:
        return await self.request("PATCH", path, **kw)

    async def delete(self, path: str, **kw: Any) -> Reply:
        return await self.request("DELETE", path, **kw)

    # conveniences used by many tests

    async def create_room(self, name: str, members: list[Person | int] = (), kind: str = "project",  # type: ignore[assignment]
                          **extra: Any) -> dict[str, Any]:
        ids = [m.id if isinstance(m, Person) else m for m in members]
        reply = await self.post("/api/rooms", json={"kind": kind, "name": name, "member_ids": ids, **extra},
                                expect=201)
        return reply.data

    async def say(self, room_id: int, body: str, **extra: Any) -> dict[str, Any]:
        reply = await self.post(f"/api/rooms/{room_id}/messages", json={"body": body, **extra}, expect=201)
        return reply.data

    async def timeline(self, room_id: int, **params: Any) -> list[dict[str, Any]]:
        reply = await self.get(f"/api/rooms/{room_id}/messages", params=params or None, expect=200)
        return reply.data["messages"]

    async def rooms(self) -> dict[int, dict[str, Any]]:
        reply = await self.get("/api/rooms", expect=200)
        return {r["id"]: r for r in reply.data["rooms"]}

    async def ws(self, since: int | None = None, origin: str | None = None, wait_hello: bool = True) -> WsClient:
        params = {} if since is None else {"since": str(since)}
        sock = await self.http.ws_connect("/api/ws", params=params, origin=origin or self.server.origin,
                                          autoping=True)
        client = WsClient(sock)
        self._sockets.append(client)
        if wait_hello:
            await client.until_hello()
        return client


class WsClient:
    """A staff WebSocket: reads frames with timeouts and remembers everything it saw.

    The ``timeout`` arguments are deadlines spanning several receives (hence the ASYNC109 noqa).
    """

    def __init__(self, sock: aiohttp.ClientWebSocketResponse) -> None:
        self.sock = sock
        self.frames: list[dict[str, Any]] = []      # every frame, in arrival order
        self.hello: dict[str, Any] | None = None
        self.replayed: list[dict[str, Any]] = []    # events that arrived before the hello
        self.close_code: int | None = None

    @property
    def events(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if "id" in f and "type" in f and "data" in f]

    async def next(self, timeout: float = 5.0) -> dict[str, Any] | None:  # noqa: ASYNC109
        """The next frame, or None once the socket is closed. Raises TimeoutError."""
        if self.close_code is not None or self.sock.closed:
            self.close_code = self.close_code or self.sock.close_code
            return None
        msg = await self.sock.receive(timeout=timeout)
        if msg.type == aiohttp.WSMsgType.TEXT:
            frame = json.loads(msg.data)
            self.frames.append(frame)
            return frame
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
            self.close_code = self.sock.close_code if self.sock.close_code is not None else msg.data
            return None
        if msg.type == aiohttp.WSMsgType.ERROR:
            raise AssertionError(f"websocket error: {msg.data!r}")
        raise AssertionError(f"unexpected websocket message {msg.type}")

    async def until_hello(self, timeout: float = 10.0) -> dict[str, Any]:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.next(max(0.01, deadline - time.monotonic()))
            if frame is None:
                raise AssertionError(f"socket closed before hello (code {self.close_code})")
            if frame.get("type") in ("hello", "resync_required"):
                self.hello = frame
                return frame
            self.replayed.append(frame)

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> dict[str, Any]:  # noqa: ASYNC109
        """Read until a frame matches (frames read on the way stay in ``frames``)."""
        deadline = time.monotonic() + timeout
        for frame in self.frames:
            if predicate(frame) and frame.get("_consumed") is None:
                frame["_consumed"] = True
                return frame
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no matching frame in {timeout}s; saw {[f.get('type') for f in self.frames]}")
            frame = await self.next(remaining)
            if frame is None:
                raise AssertionError(f"socket closed (code {self.close_code}) while waiting")
            if predicate(frame):
                frame["_consumed"] = True
                return frame

    async def wait_closed(self, timeout: float = 5.0) -> int | None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while self.close_code is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"socket still open after {timeout}s")
            await self.next(remaining)
        return self.close_code

    async def close(self) -> None:
        if not self.sock.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.sock.close(), 5)


def is_event(type_: str, room_id: int | None = None) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f.get("type") == type_ and (room_id is None or f.get("room_id") == room_id)


# --- admins and TOTP ---------------------------------------------------------------------------

def totp_step() -> int:
    return int(time.time()) // 30


async def next_totp(server: ServerProcess) -> str:
    """A code the server will accept for the admin: a step after the last one used (replays are refused)."""
    assert server.admin_totp_secret is not None
    step = max(totp_step(), server.admin_totp_step + 1)
    if step > totp_step() + 1:             # the server accepts one step of drift; wait for the clock
        await asyncio.sleep(max(0.0, (step - 1) * 30 - time.time()) + 0.1)
    server.admin_totp_step = step
    return pyotp.TOTP(server.admin_totp_secret).generate_otp(step)


async def enrol_totp(client: StaffClient) -> tuple[str, int]:
    """Complete the mandatory TOTP enrolment of a freshly logged-in admin; returns (secret, step used)."""
    begun = await client.post("/api/auth/totp/begin", expect=200)
    secret = begun.data["secret"]
    step = totp_step()
    await client.post("/api/auth/totp/confirm", json={"code": pyotp.TOTP(secret).generate_otp(step)}, expect=200)
    return secret, step


@dataclass
class ClientFactory:
    """Creates StaffClients for a test and closes them (and their sockets) afterwards."""

    made: list[StaffClient] = field(default_factory=list)

    def new(self, server: ServerProcess, person: Person | str | None = None) -> StaffClient:
        client = StaffClient(server, person)
        self.made.append(client)
        return client

    async def staff(self, server: ServerProcess, person: Person | str) -> StaffClient:
        client = self.new(server, person)
        await client.login()
        return client

    async def admin(self, server: ServerProcess) -> StaffClient:
        """The demo org admin, TOTP enrolled once per server; later calls reuse that session."""
        client = self.new(server, "admin")
        if server.admin_token is not None:
            client.use_token(server.admin_token, server.admin_csrf)
            me = await client.get("/api/auth/me")
            if me.status == 200:
                client.csrf = me.data["csrf_token"]
                return client
            await client.login(totp=await next_totp(server), expect=200)
        else:
            reply = await client.login(expect=200)
            assert reply.data["status"] == "totp_enrolment_required", reply
            secret, step = await enrol_totp(client)
            server.admin_totp_secret, server.admin_totp_step = secret, step
        server.admin_token, server.admin_csrf = client.token, client.csrf
        return client

    async def close(self) -> None:
        for client in self.made:
            await client.close()
