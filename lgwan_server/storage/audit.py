"""The 操作ログ table: append and read. The hash chain itself is computed in services/audit.py."""

from __future__ import annotations

from dataclasses import dataclass

from shared.sqlite import Writer

from .database import Source, fetchall, fetchone


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    org_id: int | None
    actor_id: int | None
    actor_login: str
    actor_affiliation: str
    source_ip: str
    action: str
    target_type: str
    target_id: str
    outcome: str
    detail: str
    prev_hash: str
    hash: str


_COLS = ("id, at, org_id, actor_id, actor_login, actor_affiliation, source_ip, action, target_type, target_id,"
         " outcome, detail, prev_hash, hash")


async def last_entry(conn: Writer) -> tuple[int, str] | None:
    row = await fetchone(conn, "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
    return (int(row[0]), str(row[1])) if row else None


async def insert_entry(conn: Writer, entry: AuditEntry) -> None:
    await conn.execute(f"INSERT INTO audit_log({_COLS}) VALUES ({','.join('?' * 14)})", tuple(entry.__dict__.values()))


async def iter_entries(db: Source, after_id: int, limit: int) -> list[AuditEntry]:
    rows = await fetchall(db, f"SELECT {_COLS} FROM audit_log WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit))
    return [AuditEntry(*tuple(r)) for r in rows]


async def query_entries(db: Source, *, org_id: int | None, actor_id: int | None, action: str | None,
                        since: str | None, until: str | None, before_id: int | None, limit: int) -> list[AuditEntry]:
    sql = f"SELECT {_COLS} FROM audit_log WHERE 1=1"
    params: list[object] = []
    for clause, value in (("org_id = ?", org_id), ("actor_id = ?", actor_id), ("at >= ?", since),
                          ("at < ?", until), ("id < ?", before_id)):
        if value is not None:
            sql += f" AND {clause}"
            params.append(value)
    if action:
        sql += " AND (action = ? OR action LIKE ?)"
        params += [action, action + ".%"]
    sql += " ORDER BY id DESC LIMIT ?"
    return [AuditEntry(*tuple(r)) for r in await fetchall(db, sql, params + [limit])]
