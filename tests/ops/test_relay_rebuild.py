"""The relay's disaster drill (issue 8; acceptance statement 22): lose the whole relay, rebuild it from
its encrypted keys-and-config backup plus LGWAN.

The relay keeps the minimum, so its backup holds only what LGWAN cannot give back: its signing key, the
trusted LGWAN key and its configuration. Both tiers run; staff post in a crossing room; the relay is
backed up with ``kakehashi_ops.py backup relay``, killed, and its database, keys and config deleted.
``kakehashi_ops.py restore relay --with-config`` puts keys and config back and starts from an empty
database; the LGWAN server re-links with the same keys (no new exchange) and rebuilds the relay's copy
of the crossing room; a room that never crosses stays absent.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from e2e.harness import Staff, query, start_two_tiers, wait_for

OPS = Path(__file__).resolve().parents[2] / "deploy" / "ops" / "kakehashi_ops.py"


def ops(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(OPS), *map(str, args)], capture_output=True, text=True, timeout=300)


async def test_relay_rebuilt_from_its_backup_and_lgwan(tmp_path: Path) -> None:
    tiers = await start_two_tiers(tmp_path)
    staff = Staff(tiers.lgwan_url)
    try:
        await staff.login("sato")
        room = tiers.seed.rooms["guests-room"]
        text = "避難所Aは17時に開設します。"
        await staff.post(room, text)
        await wait_for(lambda: query(tiers.relay_db, "SELECT count(*) FROM messages WHERE body = ?", (text,))[0][0],
                       what="the message on the relay")
        key = tmp_path / "backup.key"
        assert ops("keygen", "--key", key).returncode == 0
        made = ops("backup", "relay", "--config", tiers.relay.config, "--to", tmp_path / "backups", "--key", key)
        assert made.returncode == 0, made.stdout + made.stderr
        archive = Path(json.loads(made.stdout)["archive"])
        relay_keys = tmp_path / "keys-relay"
        fingerprint_before = (relay_keys / "signing.pub").read_text()

        tiers.relay.kill()                                                        # the relay host is lost
        shutil.rmtree(tmp_path / "relay-data")
        shutil.rmtree(relay_keys)
        saved_config = tiers.relay.config.read_text()
        tiers.relay.config.unlink()

        restored = ops("restore", "relay", archive, "--config", tiers.relay.config, "--key", key, "--with-config")
        assert restored.returncode == 0, restored.stdout + restored.stderr
        assert tiers.relay.config.read_text() == saved_config
        assert (relay_keys / "signing.pub").read_text() == fingerprint_before
        assert (relay_keys / "signing.key").stat().st_mode & 0o777 == 0o600
        assert not tiers.relay_db.exists()

        tiers.relay.start()
        await wait_for(lambda: tiers.relay_db.exists() and query(
            tiers.relay_db, "SELECT count(*) FROM messages WHERE body = ?", (text,))[0][0],
            timeout=60, what="LGWAN to rebuild the relay's copy of the crossing room")
        names = {r[0] for r in query(tiers.relay_db, "SELECT name FROM rooms")}
        assert "guests-room" in names and "secret-room" not in names
        health = await staff.call("GET", "/healthz")
        assert health["bridge"]["connected"] is True
    finally:
        await staff.close()
        tiers.stop()
