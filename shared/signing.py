"""Ed25519 signing over canonical JSON, key files, fingerprints and a key ring with rotation.

Each tier holds its own private key and the peer's public key(s), so a compromised relay can
never speak for the LGWAN side. EdDSA (Ed25519) is on the CRYPTREC 電子政府推奨暗号リスト
(since 2023). A signature always covers a *purpose* string as well as the content, so bytes
signed for one use (a queue envelope) can never be replayed as another (a sanitizer verdict).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .timeutil import parse_iso, utcnow


class SignatureError(Exception):
    """The signature, key or key file is not acceptable. ``code`` is stable."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code


def canonical_json(value: Any) -> bytes:
    """The one byte encoding that gets signed: sorted keys, no spaces, UTF-8, no floats."""
    _reject_floats(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _reject_floats(value: Any) -> None:
    # Floats have more than one textual form; signed content uses integers and strings only.
    if isinstance(value, float):
        raise ValueError("floats are not allowed in signed content")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError("object keys must be strings")
            _reject_floats(item)
    elif isinstance(value, list):
        for item in value:
            _reject_floats(item)


def signing_input(purpose: str, content: Any) -> bytes:
    """``purpose`` NUL ``canonical content``: domain separation between uses of one key."""
    if "\x00" in purpose:
        raise ValueError("purpose must not contain NUL")
    return purpose.encode("utf-8") + b"\x00" + canonical_json(content)


def public_key_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """Short id carried in signed messages to select the verifying key (16 hex digits)."""
    return hashlib.sha256(public_key_raw(key)).hexdigest()[:16]


def fingerprint(key: Ed25519PublicKey) -> str:
    """What two admins read to each other over the phone: 32 hex digits in groups of four."""
    digest = hashlib.sha256(public_key_raw(key)).hexdigest()[:32].upper()
    return " ".join(digest[i:i + 4] for i in range(0, 32, 4))


def normalise_fingerprint(text: str) -> str:
    return "".join(ch for ch in text.upper() if ch in "0123456789ABCDEF")


def encode_public_key(key: Ed25519PublicKey) -> str:
    return base64.b64encode(public_key_raw(key)).decode("ascii")


def decode_public_key(text: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError) as exc:
        raise SignatureError("bad_public_key", "not a base64 Ed25519 public key") from exc


@dataclass(frozen=True)
class Signer:
    """This tier's private key."""

    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)

    def sign(self, purpose: str, content: Any) -> str:
        return base64.b64encode(self.private_key.sign(signing_input(purpose, content))).decode("ascii")

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate())


@dataclass(frozen=True)
class TrustedKey:
    """A peer public key, valid until ``not_after`` (None = no end): the rotation overlap."""

    key: Ed25519PublicKey
    not_after: datetime | None = None

    @property
    def key_id(self) -> str:
        return key_id(self.key)


class KeyRing:
    """The peer keys this tier accepts, looked up by key id."""

    def __init__(self, keys: list[TrustedKey]) -> None:
        self._keys = {k.key_id: k for k in keys}

    def __len__(self) -> int:
        return len(self._keys)

    def verify(self, purpose: str, content: Any, signature: str, signer_key_id: str,
               now: datetime | None = None) -> None:
        """Raise SignatureError unless ``signature`` by a currently trusted key covers purpose+content."""
        trusted = self._keys.get(signer_key_id)
        if trusted is None:
            raise SignatureError("unknown_key", "the signing key is not trusted")
        if trusted.not_after is not None and (now or utcnow()) > trusted.not_after:
            raise SignatureError("expired_key", "the signing key's overlap period has ended")
        try:
            raw = base64.b64decode(signature, validate=True)
        except (ValueError, TypeError) as exc:
            raise SignatureError("bad_signature", "signature is not base64") from exc
        if len(raw) != 64:
            raise SignatureError("bad_signature", "wrong signature length")
        try:
            trusted.key.verify(raw, signing_input(purpose, content))
        except InvalidSignature as exc:
            raise SignatureError("bad_signature", "signature does not verify") from exc


# --- key files --------------------------------------------------------------------------------
#
# A tier's key directory holds:
#   signing.key   this tier's private key (PKCS#8 PEM, mode 0600)
#   signing.pub   its public key (base64, one line) — what the peer's admin installs
#   peers.json    [{"public_key": base64, "fingerprint": "...", "installed_at": ..., "not_after": ...|null}]

PRIVATE_FILE = "signing.key"
PUBLIC_FILE = "signing.pub"
PEERS_FILE = "peers.json"


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_signer(key_dir: Path, signer: Signer) -> None:
    key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = signer.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption())
    _write_atomic(key_dir / PRIVATE_FILE, pem, 0o600)
    _write_atomic(key_dir / PUBLIC_FILE, (encode_public_key(signer.public_key) + "\n").encode(), 0o644)


def load_signer(key_dir: Path) -> Signer:
    path = key_dir / PRIVATE_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise SignatureError("no_private_key", f"no private key at {path}") from exc
    if path.stat().st_mode & 0o077:
        raise SignatureError("key_file_mode", f"{path} must not be readable by group or others (chmod 600)")
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError("bad_private_key", "not an Ed25519 private key")
    return Signer(key)


def load_peers(key_dir: Path) -> list[dict[str, Any]]:
    path = key_dir / PEERS_FILE
    if not path.exists():
        return []
    entries = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(entries, list):
        raise SignatureError("bad_peers_file", f"{path} must hold a list")
    return entries


def load_key_ring(key_dir: Path) -> KeyRing:
    keys = []
    for entry in load_peers(key_dir):
        not_after = entry.get("not_after")
        keys.append(TrustedKey(decode_public_key(entry["public_key"]), parse_iso(not_after) if not_after else None))
    return KeyRing(keys)


def save_peers(key_dir: Path, entries: list[dict[str, Any]]) -> None:
    _write_atomic(key_dir / PEERS_FILE, (json.dumps(entries, ensure_ascii=False, indent=2) + "\n").encode(), 0o644)
