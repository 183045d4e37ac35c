"""The relay's audit log: hash-chained entries written in the caller's transaction.

Entries never carry message text, passwords, tokens or 個人番号 — ids, codes and counts only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from shared.sqlite import Writer
from shared.timeutil import now_iso

from ..storage import audit as store
from ..storage.database import Database

GENESIS = "0" * 64


def entry_hash(prev_hash: str, fields: Sequence[Any]) -> str:
    canonical = json.dumps(fields, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


class AuditService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, conn: Writer, action: str, *, actor: str = "", ip: str = "",
                     target: str = "", outcome: str = "ok", detail: dict[str, Any] | None = None) -> None:
        """Append an entry inside the caller's transaction."""
        last = await store.last_entry(conn)
        next_id, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS)
        # A tuple, so mypy checks each field against AuditEntry; json hashes it exactly as it did a list.
        fields = (next_id, now_iso(), actor, ip, action, target, outcome,
                  json.dumps(detail or {}, ensure_ascii=False, sort_keys=True, separators=(",", ":")))
        await store.insert_entry(conn, store.AuditEntry(*fields, prev_hash, entry_hash(prev_hash, fields)))

    async def record_alone(self, action: str, **kwargs: Any) -> None:
        """Append an entry in a transaction of its own (refusals, failed logins)."""
        async with self.db.transaction(f"audit:{action}") as conn:
            await self.record(conn, action, **kwargs)
