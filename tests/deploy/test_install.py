"""Each tier installs from its own wheel into its own fresh virtual environment, offline, and runs (issue 8).

``deploy/packaging/make-wheelhouse.sh`` builds a tier's wheel (``build_wheels.py``) and downloads its
dependencies (the one step that uses the package index), then each tier is installed with
``pip install --no-index`` — as on an LGWAN host, which has no internet. The relay's environment holds
no LGWAN code and none of the LGWAN-only dependencies; the sanitizer's holds neither tier. Keys are
exchanged through the installed ``kakehashi-keys`` by fingerprint, both tiers start from their own
environments (no source tree on the path), answer /healthz, and the LGWAN server's link to the relay
comes up. Then ``kakehashi_ops.py upgrade`` installs a release beside the current one, backs up,
migrates and health-checks; ``rollback`` returns to the previous release and the pre-upgrade backup;
and an upgrade whose health check fails rolls itself back.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_lab import DEPLOY, REPO, Proc, exchange_keys, run, wait_until

pytestmark = pytest.mark.slow

NETWORK_ERRORS = ("Failed to establish a new connection", "Temporary failure in name resolution",
                  "Could not fetch URL", "NewConnectionError", "ConnectTimeout", "Network is unreachable",
                  "No route to host")
LGWAN_ONLY = ("jsonschema", "pyyaml", "python-magic", "openpyxl", "reportlab")
SANITIZER_ONLY = ("pikepdf", "pillow", "defusedxml")


def clean_env() -> dict[str, str]:
    """No source tree on the path: an installed tier must run from its own environment alone."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthz(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - a local test URL
            return dict(json.loads(resp.read()))
    except (OSError, ValueError):
        return None


class Installed:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.wheelhouse: dict[str, Path] = {}
        self.venv: dict[str, Path] = {}

    def bin(self, tier: str, name: str) -> Path:
        return self.venv[tier] / "bin" / name

    def py(self, tier: str, code: str) -> subprocess.CompletedProcess[str]:
        return run([self.bin(tier, "python"), "-c", code], env=clean_env(), cwd=self.root)

    def packages(self, tier: str) -> set[str]:
        out = run([self.bin(tier, "python"), "-m", "pip", "list", "--format=json"], env=clean_env(), check=True)
        return {p["name"].lower() for p in json.loads(out.stdout)}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    inst = Installed(tmp_path_factory.mktemp("install"))
    for tier in ("lgwan", "relay", "sanitizer"):
        wheelhouse = inst.root / f"wheelhouse-{tier}"
        made = run(["bash", DEPLOY / "packaging" / "make-wheelhouse.sh", tier, wheelhouse],
                   env={**os.environ, "PYTHON": sys.executable}, timeout=600)
        if made.returncode != 0 and any(e in made.stderr for e in NETWORK_ERRORS):
            pytest.skip(f"the package index is not reachable to fetch dependencies: {made.stderr[-300:]}")
        assert made.returncode == 0, made.stdout + made.stderr
        inst.wheelhouse[tier] = wheelhouse
        venv = inst.root / f"venv-{tier}"
        run([sys.executable, "-m", "venv", venv], check=True, timeout=120)
        run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--no-index", "--find-links", wheelhouse,
             f"kakehashi-{tier}"], env=clean_env(), check=True, timeout=600)
        inst.venv[tier] = venv
    return inst


def test_each_tier_carries_only_its_own_code_and_dependencies(installed: Installed) -> None:
    relay = installed.packages("relay")
    assert "kakehashi-relay" in relay and "aiohttp" in relay and "cryptography" in relay
    assert not relay & {*LGWAN_ONLY, *SANITIZER_ONLY, "kakehashi", "kakehashi-lgwan"}
    for module in ("lgwan_server", "sanitizer", "shared.manifest"):
        probe = installed.py("relay", f"import {module}")
        assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr, f"relay venv imports {module}"
    where = installed.py("relay", "import internet_relay, shared; print(internet_relay.__file__, shared.__file__)")
    assert str(installed.venv["relay"]) in where.stdout and str(REPO) not in where.stdout

    # The LGWAN server re-checks crossing files itself unless pointed at a sanitizer service, so its
    # environment carries the sanitizer (and its parsers) too — but never the relay.
    lgwan = installed.packages("lgwan")
    assert {"kakehashi-lgwan", *LGWAN_ONLY, *SANITIZER_ONLY} <= lgwan and "kakehashi-relay" not in lgwan
    assert installed.py("lgwan", "import internet_relay").returncode != 0
    checked = installed.py("lgwan", "import shared.manifest, lgwan_server.storage.migrate, sanitizer.pool, "
                                    "sanitizer.forkserver, sanitizer.verify")
    assert checked.returncode == 0, checked.stderr

    sanitizer = installed.packages("sanitizer")
    assert {"kakehashi-sanitizer", *SANITIZER_ONLY} <= sanitizer
    assert not sanitizer & {"aiohttp", "aiosqlite", "argon2-cffi", "pyotp", "kakehashi-lgwan", "kakehashi-relay"}
    for module in ("lgwan_server", "internet_relay"):
        assert installed.py("sanitizer", f"import {module}").returncode != 0

    # Every wheel says what it was built from and holds, and the dependencies match its imports.
    meta = installed.py("relay", "import importlib.metadata as m; print(m.distribution('kakehashi-relay')"
                                 ".read_text('kakehashi-build.json'))")
    build = json.loads(meta.stdout)
    assert build["tier"] == "relay" and all(not m.startswith(("lgwan_server", "sanitizer")) for m in build["modules"])


def test_the_sanitizer_installs_rebuilds_a_file_and_serves(installed: Installed, tmp_path: Path) -> None:
    source = tmp_path / "名簿.csv"
    source.write_text("氏名,所属\n山田 太郎,架橋病院\n", encoding="utf-8")
    out = run([installed.bin("sanitizer", "kakehashi-sanitize"), source, "-o", tmp_path / "out.csv",
               "--report", tmp_path / "report.json"], env=clean_env(), cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "report.json").read_text())["status"] == "rebuilt"
    assert "山田 太郎" in (tmp_path / "out.csv").read_text(encoding="utf-8")
    # The service, as its unit starts it: its own key (kakehashi-keys from its own wheel), a Unix socket.
    keys = run([installed.bin("sanitizer", "kakehashi-keys"), "generate", "--keys", tmp_path / "keys"],
               env=clean_env(), cwd=tmp_path)
    assert keys.returncode == 0, keys.stderr
    socket_path = tmp_path / "sanitizer.sock"
    service = Proc("sanitizer", [installed.bin("sanitizer", "kakehashi-sanitize"), "serve", "--socket", socket_path,
                                 "--keys", tmp_path / "keys"], tmp_path, [socket_path], env=clean_env())
    try:
        service.start(timeout=90)
        assert socket_path.is_socket() and socket_path.stat().st_mode & 0o777 == 0o660
    finally:
        service.stop()


@pytest.fixture(scope="module")
def running(installed: Installed) -> Iterator[dict[str, object]]:
    """Both tiers from their own environments, keys exchanged by fingerprint, link up."""
    root = installed.root / "run"
    root.mkdir()
    lgwan_keys, relay_keys = root / "keys-lgwan", root / "keys-relay"
    # kakehashi-keys from each tier's own environment (the relay's for its key, LGWAN's for its own)
    exchange_keys([str(installed.bin("lgwan", "kakehashi-keys"))], lgwan_keys, relay_keys)
    queue_port, lgwan_port = free_port(), free_port()
    (root / "relay.toml").write_text(f"""
[web]
port = 0
port_file = "relay-web.port"
[queue]
port = {queue_port}
port_file = "relay-queue.port"
keys_dir = "keys-relay"
[storage]
data_dir = "relay-data"
[logging]
level = "WARNING"
""", encoding="utf-8")
    (root / "lgwan.toml").write_text(f"""
[server]
port = {lgwan_port}
port_file = "lgwan.port"
[storage]
data_dir = "lgwan-data"
[logging]
level = "WARNING"
[bridge]
enabled = true
relay_url = "ws://127.0.0.1:{queue_port}/queue"
relay_public_url = "http://127.0.0.1:1"
keys_dir = "keys-lgwan"
max_backoff = "1s"
""", encoding="utf-8")
    migrate = run([installed.bin("lgwan", "kakehashi-lgwan"), "--config", root / "lgwan.toml", "migrate"],
                  env=clean_env(), cwd=root)
    assert migrate.returncode == 0, migrate.stderr
    relay = Proc("relay", [installed.bin("relay", "kakehashi-relay"), "--config", root / "relay.toml"], root,
                 [root / "relay-web.port", root / "relay-queue.port"], env=clean_env())
    lgwan = Proc("lgwan", [installed.bin("lgwan", "kakehashi-lgwan"), "--config", root / "lgwan.toml"], root,
                 [root / "lgwan.port"], env=clean_env())
    try:
        relay.start()
        lgwan.start()
        yield {"root": root, "lgwan": lgwan, "relay": relay, "lgwan_port": lgwan_port,
               "relay_web": int((root / "relay-web.port").read_text())}
    finally:
        lgwan.stop()
        relay.stop()


def test_both_tiers_start_from_their_own_environments_and_link(running: dict[str, object]) -> None:
    lgwan_url = f"http://127.0.0.1:{running['lgwan_port']}/healthz"
    relay_url = f"http://127.0.0.1:{running['relay_web']}/healthz"
    relay = wait_until(lambda: healthz(relay_url), "the relay's /healthz")
    assert relay["status"] == "ok" and relay["tier"] == "relay"
    health = wait_until(lambda: (h := healthz(lgwan_url)) and h.get("bridge", {}).get("connected") and h,
                        "the LGWAN server's link to the relay", timeout=60)
    assert health["status"] == "ok" and health["tier"] == "lgwan" and health["schema_version"]


def test_upgrade_rollback_and_failed_upgrade(installed: Installed, running: dict[str, object],
                                             tmp_path: Path) -> None:
    """Upgrade to a new release beside the current one, roll back, and a failed upgrade rolls itself back."""
    lgwan: Proc = running["lgwan"]  # type: ignore[assignment]
    lgwan.stop()                                  # from here on, "systemd" (the fake) runs the server
    root: Path = running["root"]  # type: ignore[assignment]
    prefix = tmp_path / "opt"
    prefix.mkdir()
    (prefix / "lgwan").symlink_to(installed.venv["lgwan"])
    config = root / "lgwan.toml"
    port = running["lgwan_port"]
    health = f"http://127.0.0.1:{port}/healthz"
    key = tmp_path / "backup.key"
    ops_py = str(installed.bin("lgwan", "python"))
    ops_script = str(DEPLOY / "ops" / "kakehashi_ops.py")
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(f"#!/bin/sh\nexec {sys.executable} {Path(__file__).with_name('fake_systemctl.py')} \"$@\"\n")
    systemctl.chmod(0o755)
    env = {**clean_env(), "KAKEHASHI_SYSTEMCTL": str(systemctl), "KK_FAKE_PIDFILE": str(tmp_path / "lgwan.pid"),
           "KK_FAKE_LOG": str(tmp_path / "lgwan-service.log"),
           "KK_FAKE_CMD": json.dumps([str(prefix / "lgwan" / "bin" / "kakehashi-lgwan"), "--config", str(config)])}

    def ops(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return run([ops_py, ops_script, *map(str, args)], env=env, cwd=tmp_path, timeout=600)

    common: list[str | Path] = ["--config", config, "--key", key, "--prefix", prefix, "--service", "kakehashi-lgwan",
              "--health-url", health, "--backup-dir", tmp_path / "backups"]
    try:
        assert ops("keygen", "--key", key).returncode == 0
        assert run([systemctl, "start", "kakehashi-lgwan"], env=env).returncode == 0
        before = wait_until(lambda: healthz(health), "the current release")
        original = (prefix / "lgwan").resolve()

        upgraded = ops("upgrade", "lgwan", *common, "--wheelhouse", installed.wheelhouse["lgwan"])
        assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
        state = json.loads(upgraded.stdout)
        new_release = (prefix / "lgwan").resolve()
        assert new_release != original and new_release == Path(state["release"])
        assert Path(state["backup"]).exists() and state["previous"] == str(original)
        after = wait_until(lambda: healthz(health), "the new release")
        assert after["schema_version"] == before["schema_version"]

        rolled = ops("rollback", "lgwan", *common)
        assert rolled.returncode == 0, rolled.stdout + rolled.stderr
        assert (prefix / "lgwan").resolve() == original
        assert wait_until(lambda: healthz(health), "the previous release")["status"] == "ok"

        # A release that does not start is rolled back: previous release, pre-upgrade backup, healthy.
        env["KK_FAKE_ONLY_RELEASE"] = str(original)
        failed = ops("upgrade", "lgwan", *common, "--wheelhouse", installed.wheelhouse["lgwan"])
        assert failed.returncode == 1 and "rolled back" in failed.stderr, failed.stdout + failed.stderr
        assert (prefix / "lgwan").resolve() == original
        assert wait_until(lambda: healthz(health), "the server after the automatic rollback")["status"] == "ok"
    finally:
        run([systemctl, "stop", "kakehashi-lgwan"], env=env)
        for release in prefix.glob("lgwan-*"):
            shutil.rmtree(release, ignore_errors=True)
