"""Helpers for the deployment tests: configs from deploy/, certificates, key exchange through the CLI,
tier processes and the lab agents."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import re
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
AGENT = Path(__file__).with_name("lab_agent.py")


def run(cmd: Sequence[str | Path], *, timeout: float = 60, check: bool = False, **kw: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def source_env() -> dict[str, str]:
    """The environment for a tier or agent run from the source tree."""
    paths = [str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH")]    # tests/ for e2e.harness
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}


# --- configs ------------------------------------------------------------------------------------------

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | list):
        return json.dumps(value, ensure_ascii=False)     # JSON strings and string lists are valid TOML
    raise TypeError(f"cannot write {value!r} as TOML")


def adapt_config(source: Path, target: Path, overrides: dict[str, dict[str, Any]]) -> Path:
    """Write ``source`` (a deploy/ production config) with ``overrides`` applied, table by table."""
    data = tomllib.loads(source.read_text(encoding="utf-8"))
    for table, values in overrides.items():
        data.setdefault(table, {}).update(values)
    lines = []
    for table, values in data.items():
        lines.append(f"[{table}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
        lines.append("")
    target.write_text("\n".join(lines), encoding="utf-8")
    return target


def self_signed(root: Path, ips: Sequence[str], name: str = "lab") -> tuple[Path, Path]:
    """One EC P-256 certificate for the given addresses (a CA to itself, so clients can pin it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"kakehashi {name} (test)")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = root / f"{name}-cert.pem", root / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


# --- keys: the documented exchange, through kakehashi-keys ----------------------------------------------

_FINGERPRINT = re.compile(r":\s+([0-9A-F]{4}(?: [0-9A-F]{4})+)\s+\(key id")


def keys_cli(python: Sequence[str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return run([*python, *args], env=source_env())


def generate_key(python: Sequence[str], keys: Path) -> str:
    """``kakehashi-keys generate``; returns the fingerprint it prints (what the admin reads out)."""
    out = keys_cli(python, "generate", "--keys", keys)
    assert out.returncode == 0, out.stderr
    match = _FINGERPRINT.search(out.stdout)
    assert match, out.stdout
    return match.group(1)


def exchange_keys(python: Sequence[str], lgwan_keys: Path, relay_keys: Path) -> tuple[str, str]:
    """Generate both key pairs and install each public key at the peer after comparing fingerprints."""
    lgwan_fp, relay_fp = generate_key(python, lgwan_keys), generate_key(python, relay_keys)
    wrong = keys_cli(python, "install-peer", "--keys", lgwan_keys, "--public-key", relay_keys / "signing.pub",
                     "--fingerprint", lgwan_fp)          # the wrong fingerprint read out: nothing installed
    assert wrong.returncode == 1 and "mismatch" in wrong.stderr
    for own, peer, fp in ((lgwan_keys, relay_keys, relay_fp), (relay_keys, lgwan_keys, lgwan_fp)):
        out = keys_cli(python, "install-peer", "--keys", own, "--public-key", peer / "signing.pub", "--fingerprint", fp)
        assert out.returncode == 0, out.stderr
    return lgwan_fp, relay_fp


# --- processes -----------------------------------------------------------------------------------------

class Proc:
    """A tier started with a command line; waits for its port files, keeps its log."""

    def __init__(self, name: str, cmd: Sequence[str | Path], cwd: Path, port_files: Sequence[Path],
                 env: dict[str, str] | None = None) -> None:
        self.name, self.cmd, self.cwd, self.port_files = name, [str(c) for c in cmd], cwd, list(port_files)
        self.env = env if env is not None else source_env()
        self.log_path = cwd / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        for path in self.port_files:
            path.unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, stdout=log, stderr=log, env=self.env)
        deadline = time.monotonic() + timeout
        while not all(p.exists() for p in self.port_files):
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not start:\n{self.tail()}")
            time.sleep(0.05)

    def tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Agent:
    """tests/deploy/lab_agent.py inside a namespace; ``rpc`` sends one operation and reads the reply."""

    def __init__(self, namespace: str, log: Path) -> None:
        self.namespace = namespace
        with log.open("ab") as err:
            self.proc = subprocess.Popen(["ip", "netns", "exec", namespace, sys.executable, "-u", str(AGENT)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                         env=source_env(), cwd=REPO, text=True)

    def rpc(self, op: str, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}, ensure_ascii=False) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"the agent in {self.namespace} died")
        return json.loads(line)  # type: ignore[no-any-return]

    def tcp(self, host: str, port: int, timeout: float = 2.0) -> dict[str, Any]:
        return self.rpc("tcp", host=host, port=port, timeout=timeout)

    def call(self, name: str, method: str, path: str, body: Any = None) -> dict[str, Any]:
        return self.rpc("call", name=name, method=method, path=path, body=body)

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.write('{"op": "quit"}\n')
            self.proc.stdin.flush()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError, ValueError):
                if pipe is not None:
                    pipe.close()


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 30.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)
