"""Files from the relay, rebuilt by the sanitizer (issue 3, item 9): staging, state and the stored report."""

from __future__ import annotations

from dataclasses import dataclass

from shared.sqlite import Writer

from .database import Source, fetchall, fetchone


@dataclass(frozen=True)
class SanitizedFile:
    job_id: str
    origin_id: str
    room_id: int
    author_id: int
    thread_root_id: int | None
    output_name: str
    output_type: str
    output_sha256: str
    output_bytes: int
    input_sha256: str
    input_bytes: int
    report: str
    verdict: str
    sanitizer_key_id: str
    sanitizer_fingerprint: str
    chunks: int
    received: int
    state: str
    code: str | None
    attachment_id: int | None
    created_at: str
    checked_at: str | None


_COLS = ("job_id, origin_id, room_id, author_id, thread_root_id, output_name, output_type, output_sha256,"
         " output_bytes, input_sha256, input_bytes, report, verdict, sanitizer_key_id, sanitizer_fingerprint,"
         " chunks, received, state, code, attachment_id, created_at, checked_at")


async def insert_file(conn: Writer, f: SanitizedFile) -> None:
    await conn.execute(f"INSERT INTO sanitized_files({_COLS}) VALUES ({','.join('?' * 22)})",  # noqa: S608
                       tuple(f.__dict__.values()))


async def get_file(db: Source, job_id: str) -> SanitizedFile | None:
    row = await fetchone(db, f"SELECT {_COLS} FROM sanitized_files WHERE job_id = ?", (job_id,))  # noqa: S608
    return SanitizedFile(*tuple(row)) if row else None


async def get_by_attachment(db: Source, attachment_id: int) -> SanitizedFile | None:
    row = await fetchone(db, f"SELECT {_COLS} FROM sanitized_files WHERE attachment_id = ?",  # noqa: S608
                         (attachment_id,))
    return SanitizedFile(*tuple(row)) if row else None


async def list_received(db: Source) -> list[str]:
    """Job ids whose bytes are all here and wait for the re-check, oldest first."""
    return [str(r[0]) for r in await fetchall(db, "SELECT job_id FROM sanitized_files WHERE state = 'received'"
                                                  " ORDER BY created_at, job_id")]


async def list_stale(db: Source, before: str) -> list[str]:
    """Transfers still receiving that started before ``before`` (their relay was wiped, say)."""
    return [str(r[0]) for r in await fetchall(db, "SELECT job_id FROM sanitized_files WHERE state = 'receiving'"
                                                  " AND created_at < ? ORDER BY created_at", (before,))]


async def restart(conn: Writer, job_id: str) -> None:
    """The header arrived again before its bytes were complete (a resent transfer): start the bytes over."""
    await conn.execute("DELETE FROM sanitized_file_chunks WHERE job_id = ?", (job_id,))
    await conn.execute("UPDATE sanitized_files SET received = 0, state = 'receiving' WHERE job_id = ?", (job_id,))


async def insert_chunk(conn: Writer, job_id: str, index: int, data: bytes) -> int:
    """Stage chunk ``index``; returns how many chunks are now staged."""
    await conn.execute("INSERT INTO sanitized_file_chunks(job_id, idx, data) VALUES (?,?,?)", (job_id, index, data))
    rows = await conn.execute_fetchall(
        "UPDATE sanitized_files SET received = received + 1 WHERE job_id = ? RETURNING received", (job_id,))
    return int(next(iter(rows))[0])


async def staged_bytes(db: Source, job_id: str) -> int:
    row = await fetchone(db, "SELECT coalesce(sum(length(data)), 0) FROM sanitized_file_chunks WHERE job_id = ?",
                         (job_id,))
    return int(row[0]) if row else 0


async def read_chunks(db: Source, job_id: str) -> bytes:
    rows = await fetchall(db, "SELECT data FROM sanitized_file_chunks WHERE job_id = ? ORDER BY idx", (job_id,))
    return b"".join(bytes(r[0]) for r in rows)


async def set_state(conn: Writer, job_id: str, state: str, *, code: str | None = None,
                    attachment_id: int | None = None, checked_at: str | None = None) -> None:
    await conn.execute("UPDATE sanitized_files SET state = ?, code = ?, attachment_id = ?, checked_at = ?"
                       " WHERE job_id = ?", (state, code, attachment_id, checked_at, job_id))


async def drop_chunks(conn: Writer, job_id: str) -> None:
    await conn.execute("DELETE FROM sanitized_file_chunks WHERE job_id = ?", (job_id,))
