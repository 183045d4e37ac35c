"""Restore drill through the running LGWAN server with the ops tooling (issue 8; acceptance statements 19, 22).

Post messages and a file, back up *while the server runs and keeps taking posts* with
``deploy/ops/kakehashi_ops.py backup`` (the server's online backup, then AES-256-CCM encryption),
post more, cut the power (SIGKILL), destroy the data directory, restore with
``kakehashi_ops.py restore``, start again and check through the API: every message and file posted
before the backup began and every audit entry written before it is back, byte for byte, the audit
chain verifies, and what was posted after the backup finished is not there (that is the RPO). The
archive does not decrypt with another key and does not contain the messages in clear.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from e2e.harness import Staff, Tier, seed_lgwan

REPO = Path(__file__).resolve().parents[2]
OPS = REPO / "deploy" / "ops" / "kakehashi_ops.py"


def ops(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(OPS), *map(str, args)], capture_output=True, text=True, timeout=300)


def write_config(root: Path) -> Path:
    path = root / "lgwan.toml"
    path.write_text("""
[server]
host = "127.0.0.1"
port = 0
port_file = "lgwan.port"
[storage]
data_dir = "lgwan-data"
[auth]
argon2_time_cost = 1
argon2_memory_cost_kib = 8192
argon2_parallelism = 1
[limits]
post_burst = 100000
post_refill_per_second = 100000
[logging]
level = "WARNING"
""", encoding="utf-8")
    return path


async def all_messages(client: Staff, room: int) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    after = 0
    while True:
        page = (await client.call("GET", f"/api/rooms/{room}/messages?after_seq={after}&limit=200"))["messages"]
        if not page:
            return out
        for message in page:
            out[message["id"]] = message
        after = max(m["seq"] for m in page)


async def all_audit(admin: Staff) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    before = ""
    while True:
        page = (await admin.call("GET", f"/api/admin/audit?limit=200{before}"))["entries"]
        if not page:
            return out
        for entry in page:
            out[entry["id"]] = entry
        before = f"&before_id={min(e['id'] for e in page)}"


async def upload(client: Staff, room: int, data: bytes, name: str) -> dict[str, Any]:
    form = aiohttp.FormData()
    form.add_field("body", "訓練用の添付")
    form.add_field("file", data, filename=name, content_type="application/octet-stream")
    async with client.http.post(f"{client.base}/api/rooms/{room}/files", data=form,
                                headers={"Origin": client.base, "X-CSRF-Token": client.csrf}) as resp:
        assert resp.status == 201, await resp.text()
        return dict(await resp.json())


async def test_restore_drill_through_the_running_server(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    seed = await seed_lgwan(config, rooms=(("訓練ルーム", "lgwan_only"),))
    room = seed.rooms["訓練ルーム"]
    server = Tier("lgwan_server", config, ["lgwan.port"], "lgwan.log")
    server.start()
    url = f"http://127.0.0.1:{(tmp_path / 'lgwan.port').read_text()}"
    key, wrong_key, backups = tmp_path / "backup.key", tmp_path / "other.key", tmp_path / "backups"
    assert ops("keygen", "--key", key).returncode == 0 and ops("keygen", "--key", wrong_key).returncode == 0
    clients: list[Staff] = []
    try:
        sato, suzuki, admin = Staff(url), Staff(url), Staff(url)
        clients += [sato, suzuki, admin]
        await sato.login("sato")
        await suzuki.login("suzuki")
        await admin.login("admin", totp_secret=seed.admin_totp)

        posted = [await sato.post(room, f"訓練メッセージ {i}：避難所の開設を確認") for i in range(30)]
        await sato.call("PATCH", f"/api/messages/{posted[3]['id']}", {"body": "訓練メッセージ 3（訂正）"})
        blob = "備蓄品リスト\n毛布 120\n飲料水 300\n".encode() * 200
        attachment = (await upload(sato, room, blob, "bichiku.txt"))["attachments"][0]
        audit_before = await all_audit(admin)
        messages_before = await all_messages(suzuki, room)

        # Back up while the server runs, with a colleague posting the whole time.
        stop, during = asyncio.Event(), list[dict[str, Any]]()

        async def keep_posting() -> None:
            while not stop.is_set():
                during.append(await suzuki.post(room, f"バックアップ中の投稿 {len(during)}"))
                await asyncio.sleep(0.02)

        writer = asyncio.create_task(keep_posting())
        result = await asyncio.to_thread(ops, "backup", "lgwan", "--config", config, "--to", backups, "--key", key)
        stop.set()
        await writer
        assert result.returncode == 0, result.stdout + result.stderr
        archive = Path(json.loads(result.stdout)["archive"])
        assert during, "the server took no posts while the backup ran"
        lost = [await sato.post(room, f"バックアップ後の投稿 {i}") for i in range(5)]     # after the RPO point

        server.kill()                                                   # power cut
        shutil.rmtree(tmp_path / "lgwan-data")                          # the disaster
        assert not (tmp_path / "lgwan-data").exists()

        raw = await asyncio.to_thread(archive.read_bytes)
        assert "訓練メッセージ".encode() not in raw and blob[:40] not in raw and b"SQLite format" not in raw
        refused = ops("verify", archive, "--key", wrong_key)
        assert refused.returncode == 1 and "another backup key" in refused.stderr
        assert ops("verify", archive, "--key", key).returncode == 0

        restored = ops("restore", "lgwan", archive, "--config", config, "--key", key)
        assert restored.returncode == 0, restored.stdout + restored.stderr
        server.start()
        url = f"http://127.0.0.1:{(tmp_path / 'lgwan.port').read_text()}"
        for client in clients:
            await client.close()
        sato, admin = Staff(url), Staff(url)
        clients = [sato, admin]
        await sato.login("sato")
        await admin.login("admin", totp_secret=seed.admin_totp)

        messages_after = await all_messages(sato, room)
        for message_id, message in messages_before.items():     # every message, as it was (edit included)
            again = messages_after[message_id]
            assert (again["body"], again["seq"], again["sender"], again["created_at"]) == (
                message["body"], message["seq"], message["sender"], message["created_at"])
        assert messages_after[posted[3]["id"]]["body"] == "訓練メッセージ 3（訂正）"
        extra = set(messages_after) - set(messages_before)
        assert extra <= {m["id"] for m in during}       # posts during the backup: in it or not, nothing else
        assert not {m["id"] for m in lost} & set(messages_after), "posts after the backup cannot be in it"

        async with sato.http.get(f"{url}/api/files/{attachment['id']}", headers={"Origin": url}) as resp:
            assert resp.status == 200
            assert hashlib.sha256(await resp.read()).hexdigest() == attachment["sha256"]

        audit_after = await all_audit(admin)
        for entry_id, entry in audit_before.items():            # every audit entry, hash chain included
            assert audit_after[entry_id] == entry
        assert any(e["action"] == "system.restore" for e in audit_after.values())
        verified = await admin.call("POST", "/api/admin/audit/verify")
        assert verified["ok"] is True, verified
    finally:
        for client in clients:
            await client.close()
        server.stop()


def test_root_must_name_the_service_user(tmp_path: Path) -> None:
    """Run as root without --user, the tools would leave root-owned files the service cannot open."""
    if os.geteuid() != 0:
        pytest.skip("only meaningful as root")
    config = write_config(tmp_path)
    data = tmp_path / "lgwan-data"
    data.mkdir()
    os.chown(data, 65534, 65534)
    key = tmp_path / "backup.key"
    assert ops("keygen", "--key", key).returncode == 0
    for args in (("backup", "lgwan", "--config", config, "--to", tmp_path / "b", "--key", key),
                 ("restore", "lgwan", tmp_path / "x.kkbackup", "--config", config, "--key", key)):
        refused = ops(*args)
        assert refused.returncode == 1 and "pass --user nobody" in refused.stderr, refused.stderr
