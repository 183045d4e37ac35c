"""操作ログ: append-only, hash-chained entries, written in the same transaction as the change.

hash_n = SHA-256(hash_{n-1} || "\\n" || canonical JSON of entry n without its hash). Editing,
deleting or reordering any stored row breaks every later link, and ``verify_chain`` names the
first entry whose stored hash no longer matches.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.sqlite import Writer
from shared.timeutil import now_iso

from ..storage import audit as store
from ..storage.database import Database
from .actor import Actor

GENESIS = "0" * 64


def entry_hash(prev_hash: str, fields: Sequence[Any]) -> str:
    """The chain hash of one entry (fields in column order, without prev_hash/hash)."""
    canonical = json.dumps(fields, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_id: int | None
    reason: str


class AuditService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, conn: Writer, actor: Actor, action: str, *, target_type: str = "",
                     target_id: object = "", outcome: str = "ok", detail: dict[str, Any] | None = None) -> None:
        """Append an entry inside the caller's transaction."""
        last = await store.last_entry(conn)
        next_id, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS)
        # A tuple, so mypy checks each field against AuditEntry; json hashes it exactly as it did a list.
        fields = (next_id, now_iso(), actor.org_id, actor.staff_id, actor.login, actor.affiliation, actor.ip,
                  action, target_type, str(target_id), outcome,
                  json.dumps(detail or {}, ensure_ascii=False, sort_keys=True, separators=(",", ":")))
        digest = entry_hash(prev_hash, fields)
        await store.insert_entry(conn, store.AuditEntry(*fields, prev_hash, digest))

    async def record_alone(self, actor: Actor, action: str, **kwargs: Any) -> None:
        """Append an entry in a transaction of its own (refusals, failed logins, reads)."""
        async with self.db.transaction(f"audit:{action}") as conn:
            await self.record(conn, actor, action, **kwargs)

    async def verify_chain(self, batch: int = 5000) -> VerifyResult:
        """Walk the whole chain; stop at the first entry whose link or hash is wrong."""
        prev_hash, expected_id, checked = GENESIS, 1, 0
        while True:
            rows = await store.iter_entries(self.db, expected_id - 1, batch)
            if not rows:
                return VerifyResult(True, checked, None, "")
            for row in rows:
                if row.id != expected_id:
                    return VerifyResult(False, checked, expected_id, "missing entry (gap in the chain)")
                if row.prev_hash != prev_hash:
                    return VerifyResult(False, checked, row.id, "prev_hash does not match the previous entry")
                fields = [row.id, row.at, row.org_id, row.actor_id, row.actor_login, row.actor_affiliation,
                          row.source_ip, row.action, row.target_type, row.target_id, row.outcome, row.detail]
                if entry_hash(prev_hash, fields) != row.hash:
                    return VerifyResult(False, checked, row.id, "stored content does not match its hash")
                prev_hash, expected_id, checked = row.hash, expected_id + 1, checked + 1
