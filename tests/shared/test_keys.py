"""kakehashi-keys: generate, exchange by fingerprint (mismatch installs nothing), rotate."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shared import envelope as env
from shared.signing import fingerprint, load_key_ring, load_signer


def keys(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared.keys", *map(str, args)], capture_output=True, text=True,
                          timeout=60)


def test_exchange_and_rotation(tmp_path: Path) -> None:
    lgwan, relay = tmp_path / "lgwan", tmp_path / "relay"
    for d in (lgwan, relay):
        result = keys("generate", "--keys", d)
        assert result.returncode == 0, result.stderr
    assert os.stat(lgwan / "signing.key").st_mode & 0o777 == 0o600
    lgwan_fp = fingerprint(load_signer(lgwan).public_key)
    assert lgwan_fp in keys("show", "--keys", lgwan).stdout

    wrong = keys("install-peer", "--keys", relay, "--public-key", lgwan / "signing.pub",
                 "--fingerprint", "0000 0000 0000 0000 0000 0000 0000 0000")
    assert wrong.returncode == 1 and "mismatch" in wrong.stderr
    assert len(load_key_ring(relay)) == 0
    ok = keys("install-peer", "--keys", relay, "--public-key", lgwan / "signing.pub",
              "--fingerprint", lgwan_fp.lower().replace(" ", ""))
    assert ok.returncode == 0, ok.stderr

    raw = env.seal(env.RoomRemove(room_id=1), seq=1, signer=load_signer(lgwan))
    env.open_envelope(raw, expect_sender=env.LGWAN, keyring=load_key_ring(relay))

    # rotation: stage, install at the peer, activate, retire the old key with an overlap
    assert keys("rotate", "--keys", lgwan).returncode == 0
    next_fp = fingerprint(load_signer(lgwan / "next").public_key)
    assert keys("install-peer", "--keys", relay, "--public-key", lgwan / "next" / "signing.pub",
                "--fingerprint", next_fp).returncode == 0
    assert keys("activate", "--keys", lgwan).returncode == 0
    assert fingerprint(load_signer(lgwan).public_key) == next_fp
    assert keys("retire-peer", "--keys", relay, "--fingerprint", lgwan_fp, "--overlap", "1h").returncode == 0
    ring = load_key_ring(relay)
    assert len(ring) == 2
    env.open_envelope(env.seal(env.RoomRemove(room_id=1), seq=2, signer=load_signer(lgwan)),
                      expect_sender=env.LGWAN, keyring=ring)


def test_private_key_with_loose_permissions_is_refused(tmp_path: Path) -> None:
    assert keys("generate", "--keys", tmp_path).returncode == 0
    os.chmod(tmp_path / "signing.key", 0o644)
    result = keys("show", "--keys", tmp_path)
    assert result.returncode == 1 and "chmod 600" in result.stderr
