"""Content-addressed blobs and the attachments that point at them."""

from __future__ import annotations

from dataclasses import dataclass

from shared.sqlite import Writer

from .database import Source, fetchall, fetchone


@dataclass(frozen=True)
class Attachment:
    id: int
    room_id: int
    message_id: int | None
    uploader_id: int
    filename: str
    sha256: str
    origin: str
    created_at: str
    size: int
    mime: str


_COLS = ("a.id, a.room_id, a.message_id, a.uploader_id, a.filename, a.sha256, a.origin, a.created_at,"
         " b.size, b.mime")


async def insert_blob(conn: Writer, sha256: str, size: int, mime: str, now: str) -> None:
    await conn.execute("INSERT OR IGNORE INTO blobs(sha256, size, mime, created_at) VALUES (?,?,?,?)",
                       (sha256, size, mime, now))


async def insert_attachment(conn: Writer, *, room_id: int, message_id: int | None, uploader_id: int,
                            filename: str, sha256: str, origin: str, now: str) -> int:
    cur = await conn.execute(
        "INSERT INTO attachments(room_id, message_id, uploader_id, filename, sha256, origin, created_at)"
        " VALUES (?,?,?,?,?,?,?)", (room_id, message_id, uploader_id, filename, sha256, origin, now))
    return int(cur.lastrowid or 0)


async def get_attachment(db: Source, attachment_id: int) -> Attachment | None:
    row = await fetchone(db, f"SELECT {_COLS} FROM attachments a JOIN blobs b ON b.sha256 = a.sha256"
                             " WHERE a.id = ?", (attachment_id,))
    return Attachment(*tuple(row)) if row else None


async def attachments_of(db: Source, message_ids: list[int]) -> dict[int, list[Attachment]]:
    if not message_ids:
        return {}
    marks = ",".join("?" * len(message_ids))
    out: dict[int, list[Attachment]] = {}
    for row in await fetchall(db, f"SELECT {_COLS} FROM attachments a JOIN blobs b ON b.sha256 = a.sha256"
                                  f" WHERE a.message_id IN ({marks}) ORDER BY a.id", message_ids):
        att = Attachment(*tuple(row))
        out.setdefault(att.message_id or 0, []).append(att)
    return out
