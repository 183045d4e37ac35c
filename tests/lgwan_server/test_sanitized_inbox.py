"""Files from the relay on the LGWAN side (issue 3, item 9), in-process: the rules for file.sanitized and
file.chunk envelopes, the re-check, and what is (not) stored. The re-check worker is a stand-in here
(``FakeVerifier``); tests/e2e/test_sanitized_files.py runs the real confined pool over real processes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lgwan_server.bridge.files import SanitizedFileInbox
from lgwan_server.bridge.inbox import BridgeInbox
from lgwan_server.cli import open_kernel
from lgwan_server.config import load_config
from lgwan_server.kernel import Kernel
from lgwan_server.services.actor import Actor
from lgwan_server.storage.database import fetchall, fetchval
from shared import envelope as env
from shared.signing import Signer, encode_public_key, fingerprint, save_peers
from shared.timeutil import now_iso, to_iso, utcnow
from shared.verdict import CHUNK_BYTES, encode_report, sign_verdict, split_chunks

SANITIZER = Signer.generate()
FILE = b"\x89PNG\r\n\x1a\n rebuilt bytes " + bytes(range(256)) * 400          # ~100 KB: three chunks


@dataclass
class FakeVerifier:
    answer: tuple[str, str] = ("ok", "")
    calls: list[tuple[int, str]] = field(default_factory=list)

    async def verify(self, data: bytes, kind: str) -> tuple[str, str]:
        self.calls.append((len(data), kind))
        return self.answer

    async def close(self) -> None:
        return None


@dataclass
class Lgwan:
    k: Kernel
    inbox: BridgeInbox
    files: SanitizedFileInbox
    verifier: FakeVerifier
    owner: Actor
    room_id: int
    guest: str
    trust: Path
    seq: int = 0

    async def send(self, *payloads: env.Payload) -> None:
        for payload in payloads:
            self.seq += 1
            await self.inbox.apply([env.Envelope(payload.KIND, env.new_id(), env.RELAY, self.seq, now_iso(), "0" * 16,
                                                 payload)])

    async def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await fetchall(self.k.db, sql, params)]

    async def refusals(self) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in await self.rows("SELECT detail FROM audit_log WHERE action ="
                                                          " 'bridge.file_refused' ORDER BY id")]

    async def told(self) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in await self.rows("SELECT payload FROM bridge_outbox WHERE kind ="
                                                          " 'post.refused' ORDER BY seq")]


@pytest.fixture
async def lgwan(tmp_path: Path) -> AsyncIterator[Lgwan]:
    trust = tmp_path / "sanitizer-trust"
    trust.mkdir()
    save_peers(trust, [{"public_key": encode_public_key(SANITIZER.public_key),
                        "fingerprint": fingerprint(SANITIZER.public_key), "installed_at": now_iso(), "not_after": None}])
    (tmp_path / "lgwan.toml").write_text(f"""
[storage]
data_dir = "data"
[bridge]
enabled = true
relay_url = "ws://127.0.0.1:9/queue"
relay_public_url = "http://127.0.0.1:9"
keys_dir = "keys"
sanitizer_keys_dir = "{trust}"
""", encoding="utf-8")
    cfg = load_config(tmp_path / "lgwan.toml")
    async with open_kernel(cfg) as k:
        system = Actor.system("test")
        org_id = await k.org.create_org(system, "999991", "架橋市")
        root = Actor(None, org_id, "seed", "", "test", "server_admin")
        owner_id = await k.org.create_staff(root, org_id, login="sato", display_name="佐藤 花子", kana="",
                                            employee_no=None, department_id=None, rank_id=None, title="",
                                            role="staff", password="kakehashi-test-2026")
        admin_id = await k.org.create_staff(root, org_id, login="admin", display_name="管理 太郎", kana="",
                                            employee_no=None, department_id=None, rank_id=None, title="",
                                            role="server_admin", password="kakehashi-test-2026")
        admin = Actor(admin_id, org_id, "admin", "", "test", "server_admin")
        owner = Actor(owner_id, org_id, "sato", "", "test", "staff")
        room = await k.rooms.create_room(admin, kind="project", name="外部連携", topic="", member_ids=[owner_id],
                                         crossing_policy="guests")
        await k.rooms.set_member_role(admin, room.id, owner_id, "owner")
        assert k.bridge is not None
        inbox = BridgeInbox(k.db, k.bridge, k.messages, k.events, k.audit, k.safety)
        verifier = FakeVerifier()
        files = SanitizedFileInbox(cfg.bridge, k.db, inbox, k.bridge, k.messages, k.files.blobs, k.audit,
                                   k.files.max_bytes, verifier=verifier)
        inbox.files = files
        invited = await k.guests.invite(owner, room.id, "山田 太郎", "架橋病院")
        guest_id = invited["guest"]["id"]
        under_test = Lgwan(k, inbox, files, verifier, owner, room.id, f"g:{guest_id}", trust)
        await under_test.send(env.AccountEnrolled(account=f"g:{guest_id}", privacy_notice_sha256="a" * 64,
                                                  acknowledged_at=now_iso()))
        await k.guests.approve(owner, guest_id)
        yield under_test


def transfer(lg: Lgwan, origin: str, data: bytes = FILE, *, signer: Signer = SANITIZER,
             output_type: str = "png") -> list[env.Payload]:
    name = f"{origin}.png"
    rep = {"status": "rebuilt", "code": "ok", "message": {"ja": "再構成しました。", "en": "Rebuilt."}, "detail": "",
           "input": {"name": name, "sha256": "e" * 64, "bytes": 5000, "detected_type": output_type},
           "output": {"name": name, "type": output_type, "extension": "png",
                      "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)},
           "removed": [{"item": "metadata", "ja": "メタデータ", "en": "metadata", "count": 1}],
           "summary": {"ja": "メタデータ ×1", "en": "metadata ×1"}, "isolation": {}, "elapsed_ms": 4}
    v = sign_verdict(signer, input_sha256="e" * 64, input_bytes=5000, output=data, output_type=output_type,
                     output_name=name, report=rep)
    chunks = split_chunks(data)
    header = env.FileSanitized(
        origin_id=f"{lg.guest}:{origin}", room_id=lg.room_id, author=lg.guest, posted_at=now_iso(), thread_root_id=None,
        job_id=v.job_id, signed_at=v.signed_at, input_sha256=v.input_sha256, input_bytes=v.input_bytes,
        output_sha256=v.output_sha256, output_bytes=v.output_bytes, output_type=output_type, output_name=name,
        report=encode_report(rep), report_sha256=v.report_sha256, sanitizer_key_id=v.key_id,
        sanitizer_sig=v.signature_token, chunks=len(chunks))
    return [header, *(env.FileChunk(job_id=v.job_id, index=i, data=c) for i, c in enumerate(chunks))]


async def test_a_signed_file_is_staged_rechecked_and_posted_once(lgwan: Lgwan) -> None:
    payloads = transfer(lgwan, "ok-1")
    header = payloads[0]
    assert isinstance(header, env.FileSanitized) and header.chunks == 3
    await lgwan.send(*payloads[:2])
    assert await lgwan.rows("SELECT state, received FROM sanitized_files") == [("receiving", 1)]
    await lgwan.send(*payloads[2:])
    assert await lgwan.rows("SELECT state, received FROM sanitized_files") == [("received", 3)]
    assert await lgwan.rows("SELECT count(*) FROM attachments") == [(0,)]     # nothing visible before the re-check
    await lgwan.files.finish(header.job_id)
    assert lgwan.verifier.calls == [(len(FILE), "png")]
    [(state, attachment_id)] = await lgwan.rows("SELECT state, attachment_id FROM sanitized_files")
    assert state == "posted"
    [(origin, sha, mime)] = await lgwan.rows("SELECT a.origin, a.sha256, b.mime FROM attachments a"
                                             " JOIN blobs b ON b.sha256 = a.sha256 WHERE a.id = ?", (attachment_id,))
    assert (origin, sha, mime) == ("sanitized", hashlib.sha256(FILE).hexdigest(), "image/png")
    assert lgwan.k.files.blobs.path_for(sha).read_bytes() == FILE
    assert await lgwan.rows("SELECT count(*) FROM sanitized_file_chunks") == [(0,)]
    # The message goes back to the relay as the confirmation of the upload (origin id, one attachment).
    [(payload,)] = await lgwan.rows("SELECT payload FROM bridge_outbox WHERE kind = 'message.new'")
    assert json.loads(payload)["origin_id"] == header.origin_id and json.loads(payload)["attachments"] == 1
    from lgwan_server.services.sanitized import SanitizedFileService
    report = await SanitizedFileService(lgwan.k.db, lgwan.k.rooms).report(lgwan.owner, attachment_id)
    assert report["verdict"]["fingerprint"] == fingerprint(SANITIZER.public_key)
    assert report["report"]["removed"][0]["item"] == "metadata"
    # The same transfer again (a rebuilt relay resending): a duplicate, nothing new.
    await lgwan.send(*payloads)
    await lgwan.files.finish(header.job_id)
    assert await lgwan.rows("SELECT count(*) FROM attachments") == [(1,)]
    assert await lgwan.rows("SELECT count(*) FROM audit_log WHERE action = 'bridge.file_duplicate'") == [(1,)]


async def test_chunks_must_come_in_order_whole_and_for_a_known_file(lgwan: Lgwan) -> None:
    gap = transfer(lgwan, "gap")
    await lgwan.send(gap[0], gap[2])                                  # chunk 1 before chunk 0
    short = transfer(lgwan, "short")
    bad_chunk = env.FileChunk(job_id=short[1].job_id, index=0, data=split_chunks(b"x" * (CHUNK_BYTES - 1))[0])  # type: ignore[attr-defined]
    await lgwan.send(short[0], bad_chunk, *short[2:])                # the rest of a refused file is dropped
    orphan = transfer(lgwan, "orphan")
    await lgwan.send(*orphan[1:])                                     # chunks with no header at all
    assert [r["code"] for r in await lgwan.refusals()] == ["chunk_gap", "size_mismatch"]
    assert [t["code"] for t in await lgwan.told()] == ["file_refused", "file_refused"]
    assert await lgwan.rows("SELECT count(*) FROM audit_log WHERE action = 'bridge.file_chunk_orphan'") == [(1,)]
    assert await lgwan.rows("SELECT count(*) FROM sanitized_file_chunks") == [(0,)]
    assert await lgwan.rows("SELECT count(*) FROM attachments") == [(0,)]


async def test_verdicts_are_checked_and_used_once(lgwan: Lgwan) -> None:
    forged = transfer(lgwan, "forged", signer=Signer.generate())
    await lgwan.send(*forged)
    first = transfer(lgwan, "first")
    await lgwan.send(*first[:2])
    header = first[0]
    assert isinstance(header, env.FileSanitized)
    # Another upload presenting the same verdict is refused …
    reuse = env.FileSanitized(**{**header.to_wire(), "origin_id": f"{lgwan.guest}:thief"})
    await lgwan.send(reuse)
    # … while the same upload sent again from the start restarts cleanly.
    await lgwan.send(*first)
    await lgwan.files.finish(header.job_id)
    assert [r["code"] for r in await lgwan.refusals()] == ["verdict_unknown_key", "verdict_reused"]
    assert await lgwan.rows("SELECT state FROM sanitized_files WHERE job_id = ?", (header.job_id,)) == [("posted",)]
    assert await lgwan.rows("SELECT count(*) FROM audit_log WHERE action = 'bridge.file_restarted'") == [(1,)]
    assert await lgwan.rows("SELECT count(*) FROM attachments") == [(1,)]


async def test_the_recheck_and_a_retired_key_refuse_at_the_end(lgwan: Lgwan) -> None:
    lgwan.verifier.answer = ("verify_failed", "verify: found: type.mismatch")
    bad = transfer(lgwan, "bad-type")
    await lgwan.send(*bad)
    await lgwan.files.finish(bad[0].job_id)  # type: ignore[attr-defined]
    lgwan.verifier.answer = ("ok", "")
    late = transfer(lgwan, "late")
    await lgwan.send(*late)
    # The admin retires the sanitizer key before the file is re-checked: it no longer counts.
    peers = json.loads((lgwan.trust / "peers.json").read_text())
    peers[0]["not_after"] = to_iso(utcnow())
    (lgwan.trust / "peers.json").write_text(json.dumps(peers))
    await lgwan.files.finish(late[0].job_id)  # type: ignore[attr-defined]
    refusals = await lgwan.refusals()
    assert [r["code"] for r in refusals] == ["recheck_verify_failed", "verdict_expired_key"]
    assert "type.mismatch" in refusals[0]["detail"]
    assert await fetchval(lgwan.k.db, "SELECT count(*) FROM blobs") == 0
    assert not any(p.is_file() for p in lgwan.k.files.blobs.root.rglob("*") if p.parent != lgwan.k.files.blobs.tmp)


async def test_the_author_must_still_be_allowed_when_it_is_posted(lgwan: Lgwan) -> None:
    payloads = transfer(lgwan, "left")
    await lgwan.send(*payloads)
    guest_id = int(lgwan.guest.split(":")[1])
    await lgwan.k.rooms.remove_member(lgwan.owner, lgwan.room_id, guest_id)
    await lgwan.files.finish(payloads[0].job_id)  # type: ignore[attr-defined]
    assert [r["code"] for r in await lgwan.refusals()] == ["not_member"]
    assert [t["code"] for t in await lgwan.told()] == ["not_member"]
    assert await lgwan.rows("SELECT count(*) FROM attachments") == [(0,)]


async def test_no_trusted_key_no_files_and_abandoned_transfers_expire(lgwan: Lgwan) -> None:
    import dataclasses

    untrusting = SanitizedFileInbox(dataclasses.replace(lgwan.files.cfg, sanitizer_keys_dir=None), lgwan.k.db,
                                    lgwan.inbox, lgwan.files.outbox, lgwan.k.messages, lgwan.k.files.blobs,
                                    lgwan.k.audit, lgwan.k.files.max_bytes, verifier=lgwan.verifier)
    lgwan.inbox.files = untrusting
    await lgwan.send(*transfer(lgwan, "nobody-trusted"))
    lgwan.inbox.files = lgwan.files
    half = transfer(lgwan, "half")
    await lgwan.send(*half[:2])
    await lgwan.files.expire_stale()                       # not old yet
    async with lgwan.k.db.transaction("age") as conn:
        await conn.execute("UPDATE sanitized_files SET created_at = '2000-01-01T00:00:00.000Z'")
    await lgwan.files.expire_stale()
    assert [r["code"] for r in await lgwan.refusals()] == ["sanitizer_not_trusted", "transfer_abandoned"]
    assert await lgwan.rows("SELECT count(*) FROM sanitized_file_chunks") == [(0,)]
