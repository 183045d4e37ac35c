"""The TLS server context both tiers use when they terminate TLS themselves (nginx is the usual front).

TLS 1.2+ and, for 1.2, only ECDHE with AES-GCM/AES-CCM: suites built from algorithms on the
CRYPTREC 電子政府推奨暗号リスト (no CBC, no RC4/3DES, no SHA-1 MACs). Python 3.11 cannot narrow the
TLS 1.3 suites; OpenSSL's defaults there are AES-GCM plus ChaCha20 — deploy/tls/ restricts them in nginx.
"""

from __future__ import annotations

import ssl
from pathlib import Path

TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+AESCCM"


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.load_cert_chain(cert, key)
    return ctx
