"""Signed manifests for export bundles (行政文書 exports, audit-log exports).

A bundle is a zip holding the exported files and ``manifest.json``: the SHA-256 and size of
every file plus an Ed25519 signature (purpose ``kakehashi/records-export/v1``) by the LGWAN
server's records key. ``python -m shared.manifest verify BUNDLE.zip [--fingerprint FP]`` checks
every byte; a changed, missing or added file, or a signature by another key, fails.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

from .signing import (
    KeyRing,
    SignatureError,
    Signer,
    TrustedKey,
    decode_public_key,
    encode_public_key,
    fingerprint,
    normalise_fingerprint,
)

PURPOSE = "kakehashi/records-export/v1"
FORMAT = "kakehashi-export/1"
MANIFEST = "manifest.json"
MAX_BUNDLE_FILES = 64


class ManifestError(Exception):
    pass


def build_bundle(files: dict[str, bytes], meta: dict[str, Any], signer: Signer) -> bytes:
    """Zip ``files`` with a signed manifest. ``meta`` (strings/ints only) describes the export."""
    if MANIFEST in files:
        raise ValueError("reserved file name")
    manifest: dict[str, Any] = {
        "format": FORMAT, "meta": meta,
        "files": [{"name": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                  for name, data in sorted(files.items())],
        "key_id": signer.key_id, "public_key": encode_public_key(signer.public_key),
        "fingerprint": fingerprint(signer.public_key),
    }
    manifest["signature"] = signer.sign(PURPOSE, manifest)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in sorted(files.items()):
            zf.writestr(name, data)
        zf.writestr(MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=2))
    return buffer.getvalue()


def verify_bundle(data: bytes, expected_fingerprint: str | None = None) -> dict[str, Any]:
    """Return the manifest if every file and the signature check out; raise ManifestError otherwise."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ManifestError("not a zip bundle") from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_BUNDLE_FILES + 1:
            raise ManifestError("too many files")
        names = [i.filename for i in infos]
        if MANIFEST not in names:
            raise ManifestError("manifest.json is missing")
        try:
            manifest = json.loads(zf.read(MANIFEST))
            signature = manifest.pop("signature")
            listed = {f["name"]: f for f in manifest["files"]}
            public_key = decode_public_key(manifest["public_key"])
        except (ValueError, KeyError, TypeError, SignatureError) as exc:
            raise ManifestError("manifest.json is malformed") from exc
        if manifest.get("format") != FORMAT:
            raise ManifestError("unknown bundle format")
        try:
            KeyRing([TrustedKey(public_key)]).verify(PURPOSE, manifest, signature, manifest.get("key_id", ""))
        except (SignatureError, ValueError) as exc:
            raise ManifestError(f"signature does not verify ({exc})") from exc
        actual = fingerprint(public_key)
        if expected_fingerprint and normalise_fingerprint(expected_fingerprint) != normalise_fingerprint(actual):
            raise ManifestError(f"signed by another key: {actual}")
        extra = set(names) - set(listed) - {MANIFEST}
        if extra:
            raise ManifestError(f"files not in the manifest: {sorted(extra)}")
        for name, entry in listed.items():
            if name not in names:
                raise ManifestError(f"missing file: {name}")
            content = zf.read(name)
            if len(content) != entry["size"] or hashlib.sha256(content).hexdigest() != entry["sha256"]:
                raise ManifestError(f"file changed: {name}")
    manifest["signature"] = signature
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.manifest", description="verify a Kakehashi export bundle")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("verify", help="check every file's SHA-256 and the Ed25519 signature")
    p.add_argument("bundle", type=Path)
    p.add_argument("--fingerprint", help="the LGWAN server's records-key fingerprint, as published by its admin")
    args = parser.parse_args(argv)
    try:
        manifest = verify_bundle(args.bundle.read_bytes(), args.fingerprint)
    except (ManifestError, OSError) as exc:
        print(f"NG: {exc}", file=sys.stderr)
        return 1
    print(f"OK: {len(manifest['files'])} files verified; signed by {manifest['fingerprint']}")
    if not args.fingerprint:
        print("note: compare this fingerprint with the one your LGWAN admin publishes (--fingerprint to check)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
