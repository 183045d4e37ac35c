"""UI tests: a real ``lgwan_server`` process with the demo city (架橋市), driven by Debian's chromium
through Playwright's Python API. Playwright never downloads a browser here: we launch /usr/bin/chromium.

The server listens on 127.0.0.1 port 0 and writes the bound port to ``port_file``. Demo data is loaded
with ``python -m lgwan_server --config X load-demo``; one extra staff member with a hostile display name is
imported through the ordinary HR CSV path (``import-staff``), as an HR system could send it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("KAKEHASHI_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
PASSWORD = "kakehashi-demo-2026"
ORG_CODE = "999991"
# U+202E (RIGHT-TO-LEFT OVERRIDE) hides a file's real extension; the rest tries to become markup.
RLO = "\u202e"
HOSTILE_NAME = f'<img src=x onerror="window.__pwned=1">{RLO}gpj.exe'

playwright_sync = pytest.importorskip("playwright.sync_api")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)


def _csv(rows: list[list[str]]) -> bytes:
    return ("\r\n".join(",".join(f'"{c}"' if "," in c or '"' in c else c for c in (x.replace('"', '""') for x in r))
                        for r in rows) + "\r\n").encode("utf-8")


@dataclass
class Server:
    base_url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("lgwan")
    cfg = base / "lgwan.toml"
    # Cheap argon2 keeps the many logins fast; everything else is the production default.
    cfg.write_text("""
[server]
host = "127.0.0.1"
port = 0
port_file = "port"
[storage]
data_dir = "data"
[auth]
argon2_time_cost = 1
argon2_memory_cost_kib = 8192
argon2_parallelism = 1
login_attempts_per_minute_per_ip = 10000
[logging]
level = "WARNING"
format = "text"
""", encoding="utf-8")
    run = [sys.executable, "-m", "lgwan_server", "--config", str(cfg)]
    subprocess.run([*run, "load-demo", "--staff", "40"], check=True, cwd=ROOT, capture_output=True, timeout=120)
    hostile = base / "hostile.csv"
    hostile.write_bytes(_csv([
        ["職員番号", "氏名", "よみがな", "ログインID", "部署コード", "職層コード", "職層", "職層順位", "役職", "権限"],
        ["X00001", HOSTILE_NAME, "あくい", "evil", "110", "08", "主事", "8", '<script>alert("title")</script>', "一般"],
    ]))
    subprocess.run([*run, "import-staff", "--org", ORG_CODE, str(hostile)], check=True, cwd=ROOT, capture_output=True,
                   timeout=60)
    log_path = base / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([*run, "serve"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    port_file = base / "port"
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"server did not start:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.05)
    url = f"http://127.0.0.1:{int(port_file.read_text())}"
    with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:  # noqa: S310 - loopback only
        assert response.status == 200
    srv = Server(url, base / "data", process, log_path)
    yield srv
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@dataclass
class Staff:
    """One signed-in person: a browser context (its own cookie jar), a page, and API access."""

    login: str
    context: Any
    page: Any
    csrf: str
    staff_id: int
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        if method != "GET":
            headers["X-CSRF-Token"] = self.csrf
        response = self.context.request.fetch(path, method=method, headers=headers, **kwargs)
        assert response.ok, f"{method} {path}: {response.status} {response.text()}"
        return response.json()

    def close(self) -> None:
        self.context.close()


def new_context(browser: Any, server: Server, **kwargs: Any) -> Any:
    options = {"base_url": server.base_url, "viewport": {"width": 1280, "height": 800}, "locale": "ja-JP",
               "timezone_id": "Asia/Tokyo", "reduced_motion": "reduce", **kwargs}
    return browser.new_context(**options)


def watch(page: Any, errors: list[str], dialogs: list[str]) -> None:
    """Collect script errors (CSP violations are console errors too) and any alert/confirm/prompt."""
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def on_dialog(d: Any) -> None:
        dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", on_dialog)


def sign_in(browser: Any, server: Server, login: str, *, open_page: bool = True, **ctx: Any) -> Staff:
    """Log in through the API (cookie lands in the context's jar), then open the app."""
    context = new_context(browser, server, **ctx)
    response = context.request.post("/api/auth/login", data={"login": login, "password": PASSWORD})
    assert response.ok, response.text()
    body = response.json()
    page = context.new_page()
    person = Staff(login, context, page, body["csrf_token"], body["staff_id"])
    watch(page, person.errors, person.dialogs)
    if open_page:
        page.goto("/")
        page.locator(".room-link").first.wait_for(state="attached")
    return person


def real_errors(errors: list[str]) -> list[str]:
    """Console errors that matter: network 4xx answers the UI handles itself are not script failures."""
    return [e for e in errors if "Failed to load resource" not in e]


def shot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def room_id(person: Staff, name: str) -> int:
    rooms = person.api("GET", "/api/rooms")["rooms"]
    return next(r["id"] for r in rooms if r["name"] == name)


AXE_RESULTS: dict[str, list[dict[str, Any]]] = {}


def axe_check(page: Any, name: str) -> list[dict[str, Any]]:
    """Run axe-core (shipped inside the axe-playwright-python wheel) in the page; keep serious/critical ones.

    The script is injected through the DevTools protocol, which the page's CSP does not govern, so the
    product's CSP stays strict. Results are collected for tests/ui/test_a11y.py and the JSON artifact.
    """
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:   # test_a11y.py skips loudly; other tests go on without the axe pass
        return []
    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a",
                                                                            "wcag21aa", "best-practice"]},
                                       "resultTypes": ["violations"]})
    violations = [{"id": v["id"], "impact": v["impact"], "help": v["help"],
                   "nodes": [n["target"] for n in v["nodes"]][:5]} for v in results.response["violations"]]
    AXE_RESULTS[name] = violations
    return [v for v in violations if v["impact"] in ("serious", "critical")]


@pytest.fixture(scope="session")
def admin(browser: Any, server: Server) -> Iterator[Staff]:
    """The demo admin, signed in through the UI: first login enrols TOTP with the locally drawn QR code."""
    import pyotp

    context = new_context(browser, server)
    page = context.new_page()
    errors: list[str] = []
    dialogs: list[str] = []
    watch(page, errors, dialogs)
    page.goto("/")
    page.fill("#login-id", "admin")
    page.fill("#login-password", PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    secret_el = page.locator("#totp-secret")
    secret_el.wait_for()
    qr = page.locator("img.qr")
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0"), "the QR code image did not render"
    assert qr.get_attribute("src").startswith("data:image/svg+xml")
    assert page.locator(".qr-box svg").count() == 0, "the SVG must not be injected into the document"
    shot(page, "02-totp-enrolment")
    axe_check(page, "totp-enrolment")
    secret = secret_el.get_attribute("data-secret")
    assert secret and secret.replace(" ", "") == secret_el.inner_text().replace(" ", "")
    page.fill("#enrol-code", pyotp.TOTP(secret).now())
    page.get_by_role("button", name="設定を完了").click()
    page.locator("#admin-link").wait_for()
    me = context.request.get("/api/auth/me").json()
    person = Staff("admin", context, page, me["csrf_token"], me["staff"]["id"], errors, dialogs)
    person.totp_secret = secret  # type: ignore[attr-defined]
    yield person
    context.close()


def _api_status(self: Staff, method: str, path: str) -> int:
    return int(self.context.request.fetch(path, method=method).status)


Staff.api_status = _api_status  # type: ignore[attr-defined]


@dataclass
class Officers:
    """Two extra accounts made through the admin API: a 安否確認担当 and a 文書管理担当 (demo has neither)."""

    safety_login: str = "anzen"
    records_login: str = "bunsho"


@pytest.fixture(scope="session")
def officers(admin: Staff) -> Officers:
    departments = admin.api("GET", "/api/departments")["departments"]
    dept = {d["name"]: d["id"] for d in departments}
    existing = {s["login"] for s in admin.api("GET", "/api/admin/staff?limit=200")["staff"]}
    for login, name, kana, role, department in (
            ("anzen", "防災 一郎", "ぼうさい いちろう", "safety_manager", "危機管理課"),
            ("bunsho", "文書 花子", "ぶんしょ はなこ", "records_officer", "総務課")):
        if login not in existing:
            admin.api("POST", "/api/admin/staff", data={"login": login, "display_name": name, "kana": kana,
                                                        "role": role, "department_id": dept[department],
                                                        "password": PASSWORD})
    return Officers()


@pytest.fixture(scope="session", autouse=True)
def axe_artifact() -> Iterator[None]:
    """Every axe result of the run (main and new screens) in test-artifacts/axe-results.json."""
    yield
    if AXE_RESULTS:
        import json

        out = ROOT / "test-artifacts" / "axe-results.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(AXE_RESULTS, ensure_ascii=False, indent=2), encoding="utf-8")


def expect_no_serious(page: Any, name: str) -> None:
    """axe on the current screen: no serious or critical violation."""
    serious = axe_check(page, name)
    assert serious == [], f"{name}: {serious}"
