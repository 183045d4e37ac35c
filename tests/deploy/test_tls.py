"""The TLS policy of deploy/tls/kakehashi-tls.conf (acceptance statement 19) and the nginx site configs.

Always: the policy's cipher strings, expanded by OpenSSL itself, hold only TLS 1.2+ ECDHE suites with
AES-GCM or AES-CCM (AEAD) and TLS 1.3 AES-GCM/CCM suites — no CBC, RC4, 3DES, SHA-1 MAC, ChaCha20.
Where nginx is installed: both tiers' site configs pass ``nginx -t``, and a running nginx with the
LGWAN site config completes a handshake with exactly the configured suites out of every suite OpenSSL
knows, and refuses TLS 1.0 and 1.1 (the scan the acceptance test asks for).
"""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_lab import DEPLOY, run

POLICY = DEPLOY / "tls" / "kakehashi-tls.conf"
SITES = {"lgwan": DEPLOY / "lgwan" / "nginx" / "kakehashi-lgwan.conf",
         "relay": DEPLOY / "relay" / "nginx" / "kakehashi-relay.conf"}
TLS13_ALLOWED = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_AES_128_CCM_SHA256"}
TLS13_ALL = TLS13_ALLOWED | {"TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_CCM_8_SHA256"}


def directive(name: str) -> list[str]:
    found = []
    for line in POLICY.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith(name + " "):
            found.append(line[len(name):].strip().rstrip(";").strip())
    return found


def conf_command(name: str) -> str:
    return next(v.split(None, 1)[1] for v in directive("ssl_conf_command") if v.split()[0] == name)


def openssl_suites(tls12: str, tls13: str) -> list[dict[str, str]]:
    out = run(["openssl", "ciphers", "-v", "-ciphersuites", tls13, tls12], check=True).stdout
    suites = []
    for line in out.splitlines():
        name, proto, *fields = line.split()
        suites.append({"name": name, "proto": proto, **dict(f.split("=", 1) for f in fields)})
    return suites


@pytest.fixture(scope="module")
def need_openssl() -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")


def test_policy_offers_only_cryptrec_aead_suites(need_openssl: None) -> None:
    assert directive("ssl_protocols") == ["TLSv1.2 TLSv1.3"]
    suites = openssl_suites(directive("ssl_ciphers")[0], conf_command("Ciphersuites"))
    tls12 = [s for s in suites if s["proto"] == "TLSv1.2"]
    tls13 = {s["name"] for s in suites if s["proto"] == "TLSv1.3"}
    assert len(tls12) == 6 and tls13 == TLS13_ALLOWED
    for suite in tls12:
        assert suite["Kx"] == "ECDH", suite                                   # ECDHE only: forward secrecy
        assert re.fullmatch(r"AES(GCM|CCM)\((128|256)\)", suite["Enc"]), suite  # AES-GCM / AES-CCM
        assert suite["Mac"] == "AEAD", suite                                   # no CBC + HMAC (incl. SHA-1)
    names = " ".join(s["name"] for s in suites)
    for banned in ("CBC", "RC4", "3DES", "DES-", "CHACHA", "CAMELLIA-CBC", "NULL", "EXPORT", "MD5", "CCM8"):
        assert banned not in names
    assert "prime256v1:secp384r1" in directive("ssl_ecdh_curve")
    assert directive("ssl_session_tickets") == ["off"]
    for site in SITES.values():
        assert "include /etc/nginx/snippets/kakehashi-tls.conf;" in site.read_text()


# --- with nginx -------------------------------------------------------------------------------------------

def _cert(root: Path, kind: str) -> tuple[Path, Path]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1()) if kind == "ec" else rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    crt, pem = root / f"{kind}.crt", root / f"{kind}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return crt, pem


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def instantiate(site: Path, root: Path, port: int, queue_port: int) -> Path:
    """The site config with test ports, certificates and log paths; nothing else changed."""
    ec_crt, ec_key = _cert(root, "ec")
    rsa_crt, rsa_key = _cert(root, "rsa")
    text = site.read_text()
    text = text.replace("include /etc/nginx/snippets/kakehashi-tls.conf;", f"include {POLICY};")
    text = re.sub(r"^\s*listen \[::\]:443 ssl;\n", "", text, flags=re.M)
    text = re.sub(r"listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;", text)
    text = re.sub(r"listen [0-9.]+:8451 ssl;", f"listen 127.0.0.1:{queue_port} ssl;", text)
    # every server block: an ECDSA and an RSA certificate, so every configured suite can be negotiated
    text = re.sub(r"ssl_certificate\s+\S+;", f"ssl_certificate {ec_crt};\n    ssl_certificate {rsa_crt};", text)
    text = re.sub(r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {ec_key};\n    ssl_certificate_key {rsa_key};",
                  text)
    text = re.sub(r"(access|error)_log /var/log/nginx/", rf"\1_log {root}/", text)
    main = root / f"nginx-{site.stem}.conf"
    main.write_text(f"""
pid {root}/nginx-{site.stem}.pid;
error_log {root}/error.log warn;
events {{ worker_connections 64; }}
http {{
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    {text}
}}
""")
    return main


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if binary is None:
        pytest.skip("nginx is not installed (Debian package nginx-light): the site configs are not exercised")
    root = tmp_path_factory.mktemp("nginx")
    for name, site in SITES.items():
        conf = instantiate(site, root, _free_port(), _free_port())
        checked = run([binary, "-t", "-p", root, "-c", conf])
        assert checked.returncode == 0, f"nginx -t {name}: {checked.stderr}"
    port = _free_port()
    conf = instantiate(SITES["lgwan"], root, port, _free_port())
    proc = subprocess.Popen([binary, "-p", str(root), "-c", str(conf), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _handshake(port: int, cipher: str, version: ssl.TLSVersion) -> bool:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = version
    try:
        ctx.set_ciphers(f"{cipher}:@SECLEVEL=0")
    except ssl.SSLError:
        return False            # this OpenSSL cannot even offer it
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return tls.cipher() is not None
    except (ssl.SSLError, OSError):
        return False


def test_nginx_negotiates_exactly_the_policy(nginx: int, need_openssl: None) -> None:
    every = run(["openssl", "ciphers", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"], check=True).stdout.strip().split(":")
    tls12 = [c for c in every if not c.startswith("TLS_")]
    accepted = {c for c in tls12 if _handshake(nginx, c, ssl.TLSVersion.TLSv1_2)}
    configured = {s["name"] for s in openssl_suites(directive("ssl_ciphers")[0], conf_command("Ciphersuites"))
                  if s["proto"] == "TLSv1.2"}
    assert accepted == configured, f"accepted {sorted(accepted)}"
    for old in ("-tls1", "-tls1_1"):        # (Python's ssl deprecates even asking for these)
        out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{nginx}", old, "-cipher",
                              "ALL:@SECLEVEL=0"], input="", capture_output=True, text=True, timeout=20)
        assert out.returncode != 0 and "Cipher is (NONE)" in out.stdout, f"{old} accepted:\n{out.stdout[-500:]}"
    accepted13 = set()
    for suite in sorted(TLS13_ALL):
        out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{nginx}", "-tls1_3",
                              "-ciphersuites", suite], input="", capture_output=True, text=True, timeout=20)
        if re.search(rf"Cipher is {suite}\b", out.stdout):
            accepted13.add(suite)
    assert accepted13 == TLS13_ALLOWED
