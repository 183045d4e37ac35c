"""The relay's durable queue bookkeeping, retention, configuration, and that it never dials out."""

from __future__ import annotations

import ast
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from relay_fixtures import ROOM, RelayUnderTest, account, message, write_config

from internet_relay.app import purge_once
from internet_relay.config import load_config
from internet_relay.storage import link as link_store
from internet_relay.storage.database import Database, apply_migrations, fetchall
from shared import envelope as env
from shared.config import Section
from shared.timeutil import now_iso, to_iso, utcnow

PACKAGE = Path(__file__).resolve().parents[2] / "internet_relay"


@pytest.fixture
async def db(tmp_path: Path) -> Database:
    database = await Database.open(tmp_path / "relay.sqlite3")
    await apply_migrations(database.conn)
    yield database   # type: ignore[misc]
    await database.close()


async def _queue(db: Database, n: int) -> None:
    async with db.transaction("t") as conn:
        for i in range(n):
            await link_store.insert_outbox(conn, env.new_id(), "receipt.relay", f'{{"i":{i}}}', now_iso())


async def _seqs(db: Database) -> list[tuple[int, bool]]:
    return [(r[0], r[1] is not None) for r in await fetchall(db, "SELECT seq, acked_at FROM outbox ORDER BY seq")]


async def test_outbox_resumes_after_lgwan_ack(db: Database) -> None:
    await _queue(db, 5)
    async with db.transaction("t") as conn:
        assert await link_store.align_outbox(conn, 3, now_iso()) == 0      # the normal case: send 4 and 5
    state = await link_store.get_state(db)
    assert (state.out_last_seq, state.out_acked_seq) == (5, 3)
    assert await _seqs(db) == [(1, True), (2, True), (3, True), (4, False), (5, False)]


async def test_lgwan_restored_from_backup_gets_the_rows_again(db: Database) -> None:
    """LGWAN reports fewer applied than we recorded: resend from there (pruned rows are renumbered)."""
    await _queue(db, 6)
    async with db.transaction("t") as conn:
        await link_store.align_outbox(conn, 6, now_iso())
        await conn.execute("DELETE FROM outbox WHERE seq <= 2")            # pruned after keep_acked
        renumbered = await link_store.align_outbox(conn, 1, now_iso())
    assert renumbered == 4
    assert await _seqs(db) == [(2, False), (3, False), (4, False), (5, False)]
    assert (await link_store.get_state(db)).out_last_seq == 5


async def test_relay_restored_from_backup_follows_lgwan(db: Database) -> None:
    """LGWAN applied more than we ever sent (we were restored): our unsent rows follow its count."""
    await _queue(db, 3)
    async with db.transaction("t") as conn:
        assert await link_store.align_outbox(conn, 10, now_iso()) == 3
        seq = await link_store.insert_outbox(conn, env.new_id(), "receipt.relay", "{}", now_iso())
    assert [s for s, _ in await _seqs(db)] == [11, 12, 13, 14] and seq == 14


async def test_retention_purges_old_text_only(relay: RelayUnderTest) -> None:
    old = env.MessageNew(message_id=1, room_id=ROOM, seq=1, sender="s:1", sender_name="佐藤 花子",
                         sender_affiliation="総務課", body="古いお知らせ", created_at=to_iso(utcnow() - timedelta(days=40)),
                         thread_root_id=None, origin_id=None, attachments=0)
    await relay.from_lgwan(old, message(2, 2, "新しいお知らせ"))
    result = await purge_once(relay.relay)
    assert result["messages"] == 1
    bodies = [r[0] for r in await fetchall(relay.relay.db, "SELECT body FROM messages")]
    assert bodies == ["新しいお知らせ"]
    assert (await relay.audit("retention.purge"))[-1]["messages"] == 1


async def test_room_removal_purges_everything_of_the_room(relay: RelayUnderTest) -> None:
    await relay.from_lgwan(message(1, 1, "本文"), env.RoomRemove(room_id=ROOM))
    for table in ("rooms WHERE id = 10", "members WHERE room_id = 10", "messages WHERE room_id = 10"):
        assert await fetchall(relay.relay.db, f"SELECT 1 FROM {table}") == []  # noqa: S608
    await relay.from_lgwan(account(status="active", token=None))      # accounts are not room data


async def test_a_run_of_messages_and_receipts_is_written_together_with_the_same_effects(relay: RelayUnderTest) -> None:
    """One link transaction with text, a confirmation, 既読, a room the relay does not hold and a member
    change in the middle: what the guest sees and what is stored is what one envelope at a time gives."""
    guest = relay.browser()
    try:
        await guest.enrol("yamada")
        await guest.login("yamada")
        await relay.from_lgwan(account(status="active", token=None))
        status, _ = await guest.call("POST", f"/api/rooms/{ROOM}/messages", {"body": "了解です", "client_msg_id": "c1"})
        assert status == 202
        ws = await guest.http.ws_connect(guest.base.replace("http", "ws") + "/api/ws", headers={"Origin": guest.base})
        assert (await ws.receive_json())["type"] == "hello"
        await relay.from_lgwan(
            message(1, 1, "ようこそ"),
            message(2, 2, "了解です", sender="g:5", origin="g:5:c1"),       # LGWAN confirms the guest's post
            env.ReceiptOut(room_id=ROOM, member="s:1", seq=2),
            message(3, 1, "別のルーム", room=999),                           # not held here: skipped
            env.MemberUpsert(room_id=ROOM, member="s:2", display_name="鈴木 健太", affiliation="危機管理課"),
            message(4, 3, "お疲れさまです"),
            message(2, 2, "了解です", sender="g:5", origin="g:5:c1"))       # sent again (a rebuild): read by s:1 now
        frames = [await ws.receive_json(timeout=5) for _ in range(6)]
        await ws.close()
        seen = [(f["type"], f["message"]["id"], f["message"]["mine"], f["message"]["client_msg_id"],
                 f["message"]["read_count"]) if f["type"] == "message.new" else (f["type"], f.get("seq"))
                for f in frames]
        assert seen == [("message.new", 1, False, None, 0), ("message.new", 2, True, "c1", 0), ("receipt", 2),
                        ("member.update", None), ("message.new", 4, False, None, 0), ("message.new", 2, True, "c1", 1)]
        db = relay.relay.db
        assert [r[0] for r in await fetchall(db, "SELECT id FROM messages ORDER BY id")] == [1, 2, 4]
        assert await fetchall(db, "SELECT 1 FROM pending") == []
        cursors = {r[0]: r[1] for r in await fetchall(db, "SELECT member, last_read_seq FROM members WHERE room_id = ?",
                                                      (ROOM,))}
        assert cursors == {"s:1": 3, "g:5": 2, "s:2": 0}
        assert (await link_store.get_state(db)).in_applied_seq == relay.lgwan_seq
        assert {r[0] for r in await fetchall(db, "SELECT outcome FROM inbox")} == {"applied"}
    finally:
        await guest.close()


def test_every_config_key_is_documented(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every key the loader reads appears in deploy/internet_relay.example.toml, and the example loads."""
    import tomllib
    read: set[tuple[str, str]] = set()
    original = Section.get

    def recording(self: Section, key: str, default: object, kind: object) -> object:
        read.add((self._name, key))
        return original(self, key, default, kind)  # type: ignore[arg-type]

    monkeypatch.setattr(Section, "get", recording)
    example = PACKAGE.parent / "deploy" / "internet_relay.example.toml"
    load_config(example)
    documented = {(section, key) for section, table in tomllib.loads(example.read_text()).items() for key in table}
    assert read == documented
    text = example.read_text()
    for section, key in documented:     # and each key has a comment right above it (or above its group)
        assert f"\n{key} = " in text, (section, key)


def test_the_relay_has_no_code_path_that_connects_anywhere() -> None:
    """Acceptance statement 2: no client sockets, HTTP clients or DNS lookups in internet_relay/."""
    forbidden_names = {"ClientSession", "ws_connect", "open_connection", "create_connection", "urlopen",
                       "HTTPConnection", "HTTPSConnection", "getaddrinfo", "request"}
    forbidden_modules = {"urllib", "http.client", "requests", "httpx", "socket", "smtplib", "ftplib"}
    found = []
    # The relay's end of the queue link runs the shared streaming code too.
    shared_link = [PACKAGE.parent / "shared" / "link.py", PACKAGE.parent / "shared" / "linkstream.py"]
    for path in [*PACKAGE.rglob("*.py"), *shared_link]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
                found += [f"{path.name}: import {n}" for n in names if n.split(".")[0] in {m.split(".")[0] for m in forbidden_modules}
                          or n in forbidden_modules]
            elif isinstance(node, ast.Attribute) and node.attr in forbidden_names - {"request"}:
                found.append(f"{path.name}:{node.lineno}: .{node.attr}")
            elif isinstance(node, ast.Name) and node.id in forbidden_names - {"request"}:
                found.append(f"{path.name}:{node.lineno}: {node.id}")
    assert found == []


def test_wipe_refuses_while_posts_wait_for_lgwan(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    import sqlite3
    with sqlite3.connect(data / "relay.sqlite3") as conn:
        conn.execute("CREATE TABLE outbox (seq INTEGER PRIMARY KEY, acked_at TEXT)")
        conn.execute("INSERT INTO outbox(seq) VALUES (1)")

    def wipe(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "internet_relay", "--config", str(config), "wipe", *args],
                              capture_output=True, text=True, timeout=60)

    refused = wipe("--yes")
    assert refused.returncode == 1 and "have not reached LGWAN" in refused.stderr
    assert (data / "relay.sqlite3").exists()
    done = wipe("--yes", "--force")
    assert done.returncode == 0 and not (data / "relay.sqlite3").exists()
