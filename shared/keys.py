"""``kakehashi-keys``: generate a tier's key pair, exchange public keys by fingerprint, rotate.

Exchange (each tier's admin, on their own host):
  1. ``kakehashi-keys generate --keys DIR``  → prints this tier's fingerprint.
  2. Carry ``DIR/signing.pub`` to the other segment (USB, paper, approved channel).
  3. ``kakehashi-keys install-peer --keys DIR --public-key PEER.pub --fingerprint "…"`` — the admin
     types the fingerprint the *other* admin read out; a mismatch installs nothing.
Rotation without downtime:
  ``rotate`` stages a next key (prints its fingerprint) → the peer installs it (both keys trusted)
  → ``activate`` switches this tier to the next key → the peer runs ``retire-peer`` on the old one
  with an overlap (e.g. 7d) so envelopes already queued still verify.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta
from pathlib import Path

from .config import ConfigError, parse_duration
from .signing import (
    PRIVATE_FILE,
    PUBLIC_FILE,
    SignatureError,
    Signer,
    decode_public_key,
    fingerprint,
    load_peers,
    load_signer,
    normalise_fingerprint,
    save_peers,
    write_signer,
)
from .timeutil import now_iso, to_iso, utcnow

NEXT_DIR = "next"


def _print_key(label: str, signer: Signer) -> None:
    print(f"{label}: {fingerprint(signer.public_key)}  (key id {signer.key_id})")


def cmd_generate(args: argparse.Namespace) -> int:
    if (args.keys / PRIVATE_FILE).exists() and not args.force:
        print(f"{args.keys / PRIVATE_FILE} exists; use --force to replace it (peers must then reinstall)",
              file=sys.stderr)
        return 1
    signer = Signer.generate()
    write_signer(args.keys, signer)
    _print_key("fingerprint / フィンガープリント", signer)
    print(f"public key to hand to the peer admin: {args.keys / PUBLIC_FILE}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    _print_key("this tier", load_signer(args.keys))
    if (args.keys / NEXT_DIR / PRIVATE_FILE).exists():
        _print_key("staged next key", load_signer(args.keys / NEXT_DIR))
    for entry in load_peers(args.keys):
        until = entry.get("not_after") or "no end"
        print(f"trusted peer: {entry['fingerprint']}  (installed {entry['installed_at']}, valid until {until})")
    return 0


def cmd_install_peer(args: argparse.Namespace) -> int:
    text = args.public_key
    path = Path(text)
    if path.exists():
        text = path.read_text(encoding="ascii").strip()
    key = decode_public_key(text)
    actual = fingerprint(key)
    if normalise_fingerprint(actual) != normalise_fingerprint(args.fingerprint):
        print(f"fingerprint mismatch — nothing installed.\n  expected (typed): {args.fingerprint}\n"
              f"  actual (file):    {actual}", file=sys.stderr)
        return 1
    entries = [e for e in load_peers(args.keys) if e["fingerprint"] != actual]
    entries.append({"public_key": text, "fingerprint": actual, "installed_at": now_iso(), "not_after": None})
    args.keys.mkdir(parents=True, exist_ok=True)
    save_peers(args.keys, entries)
    print(f"installed peer key {actual}; trusted peer keys: {len(entries)}")
    return 0


def cmd_retire_peer(args: argparse.Namespace) -> int:
    overlap = timedelta(seconds=parse_duration(args.overlap, "--overlap"))
    entries = load_peers(args.keys)
    wanted = normalise_fingerprint(args.fingerprint)
    hits = [e for e in entries if normalise_fingerprint(e["fingerprint"]) == wanted]
    if not hits:
        print("no trusted peer key has that fingerprint", file=sys.stderr)
        return 1
    for entry in hits:
        entry["not_after"] = to_iso(utcnow() + overlap)
    save_peers(args.keys, entries)
    print(f"peer key {hits[0]['fingerprint']} accepted until {hits[0]['not_after']}")
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    signer = Signer.generate()
    write_signer(args.keys / NEXT_DIR, signer)
    _print_key("next key (install it at the peer, then run activate)", signer)
    print(f"next public key: {args.keys / NEXT_DIR / PUBLIC_FILE}")
    return 0


def cmd_activate(args: argparse.Namespace) -> int:
    nxt = args.keys / NEXT_DIR
    if not (nxt / PRIVATE_FILE).exists():
        print("no staged key; run rotate first", file=sys.stderr)
        return 1
    old = load_signer(args.keys)
    retired = args.keys / f"retired-{old.key_id}"
    retired.mkdir(mode=0o700, exist_ok=True)
    for name in (PRIVATE_FILE, PUBLIC_FILE):
        os.replace(args.keys / name, retired / name)
        os.replace(nxt / name, args.keys / name)
    nxt.rmdir()
    _print_key("now signing with", load_signer(args.keys))
    print(f"old key kept in {retired}; ask the peer admin to retire {fingerprint(old.public_key)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kakehashi-keys", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, help_text in (
        ("generate", cmd_generate, "generate this tier's key pair and print its fingerprint"),
        ("show", cmd_show, "print this tier's and the trusted peers' fingerprints"),
        ("install-peer", cmd_install_peer, "trust the peer's public key after comparing fingerprints"),
        ("retire-peer", cmd_retire_peer, "stop trusting a peer key after an overlap period"),
        ("rotate", cmd_rotate, "stage a next key pair"),
        ("activate", cmd_activate, "switch to the staged key pair"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--keys", type=Path, required=True, help="this tier's key directory")
        p.set_defaults(func=func)
        if name == "generate":
            p.add_argument("--force", action="store_true")
        if name == "install-peer":
            p.add_argument("--public-key", required=True, help="file or base64 text of the peer's signing.pub")
            p.add_argument("--fingerprint", required=True, help="fingerprint read out by the peer's admin")
        if name == "retire-peer":
            p.add_argument("--fingerprint", required=True)
            p.add_argument("--overlap", default="7d", help="how long the old key stays valid (e.g. 7d, 12h)")
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (SignatureError, ConfigError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
