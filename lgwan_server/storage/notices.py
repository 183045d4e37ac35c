"""お知らせ / 掲示板: posts with an audience, read confirmation, expiry and LGWAN-only attachments."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiosqlite

from shared.sqlite import Writer

from .database import Source, fetchall, fetchone


@dataclass(frozen=True)
class Notice:
    id: int
    org_id: int
    author_id: int
    author_affiliation: str
    title: str
    body: str
    target: dict[str, Any]
    read_confirmation: bool
    expires_at: str | None
    created_at: str


def _notice(row: aiosqlite.Row) -> Notice:
    v = tuple(row)
    return Notice(v[0], v[1], v[2], v[3], v[4], v[5], json.loads(v[6]), bool(v[7]), v[8], v[9])


async def insert_notice(conn: Writer, *, org_id: int, author_id: int, author_affiliation: str,
                        title: str, body: str, target: dict[str, Any], read_confirmation: bool,
                        expires_at: str | None, now: str) -> int:
    cur = await conn.execute(
        "INSERT INTO notices(org_id, author_id, author_affiliation, title, body, target, read_confirmation,"
        " expires_at, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
        (org_id, author_id, author_affiliation, title, body, json.dumps(target, ensure_ascii=False),
         int(read_confirmation), expires_at, now))
    return int(cur.lastrowid or 0)


async def get_notice(db: Source, notice_id: int) -> Notice | None:
    row = await fetchone(db, "SELECT * FROM notices WHERE id = ?", (notice_id,))
    return _notice(row) if row else None


async def list_notices(db: Source, org_id: int, now: str, limit: int) -> list[Notice]:
    rows = await fetchall(db, "SELECT * FROM notices WHERE org_id = ? AND (expires_at IS NULL OR expires_at > ?)"
                              " ORDER BY id DESC LIMIT ?", (org_id, now, limit))
    return [_notice(r) for r in rows]


async def add_read(conn: Writer, notice_id: int, staff_id: int, now: str) -> bool:
    cur = await conn.execute("INSERT OR IGNORE INTO notice_reads(notice_id, staff_id, read_at) VALUES (?,?,?)",
                             (notice_id, staff_id, now))
    return cur.rowcount == 1


async def read_ids(db: Source, notice_id: int) -> set[int]:
    return {int(r[0]) for r in await fetchall(db, "SELECT staff_id FROM notice_reads WHERE notice_id = ?",
                                              (notice_id,))}


async def read_by(db: Source, staff_id: int, notice_ids: list[int]) -> set[int]:
    if not notice_ids:
        return set()
    marks = ",".join("?" * len(notice_ids))
    rows = await fetchall(db, f"SELECT notice_id FROM notice_reads WHERE staff_id = ? AND notice_id IN ({marks})",
                          [staff_id, *notice_ids])
    return {int(r[0]) for r in rows}


async def insert_attachment(conn: Writer, notice_id: int, filename: str, sha256: str, now: str) -> int:
    cur = await conn.execute("INSERT INTO notice_attachments(notice_id, filename, sha256, created_at) VALUES (?,?,?,?)",
                             (notice_id, filename, sha256, now))
    return int(cur.lastrowid or 0)


async def attachments(db: Source, notice_id: int) -> list[aiosqlite.Row]:
    return await fetchall(db, "SELECT a.id, a.filename, a.sha256, b.size, b.mime FROM notice_attachments a"
                              " JOIN blobs b ON b.sha256 = a.sha256 WHERE a.notice_id = ? ORDER BY a.id", (notice_id,))


async def get_attachment(db: Source, notice_id: int, attachment_id: int) -> aiosqlite.Row | None:
    return await fetchone(db, "SELECT a.id, a.filename, a.sha256, b.size, b.mime FROM notice_attachments a"
                              " JOIN blobs b ON b.sha256 = a.sha256 WHERE a.notice_id = ? AND a.id = ?",
                          (notice_id, attachment_id))
