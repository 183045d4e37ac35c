"""Staff files inside LGWAN: upload into a room, download with an access check.

The type is what libmagic finds in the bytes, never the client's claim. These files never go
to the relay (the relay tier has no file path at all).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import magic

from shared.textsafe import safe_filename
from shared.timeutil import now_iso

from ..errors import AppError
from ..storage import files as store
from ..storage.blobs import BlobStore, TooLarge
from ..storage.database import Database
from ..storage.org import Staff
from .actor import Actor
from .audit import AuditService
from .messages import MessageService, NewMessage
from .rooms import RoomService

# Programs and scripts have no business in a chat room, even inside LGWAN.
BLOCKED_MIME_PREFIXES = (
    "application/x-dosexec", "application/x-executable", "application/x-sharedlib", "application/x-mach-binary",
    "application/x-pie-executable",     # what libmagic ≥ 5.33 calls most Linux programs (PIE ELF)
    "application/vnd.microsoft.portable-executable", "application/x-msi", "application/x-ms-shortcut",
    "text/x-shellscript", "text/x-msdos-batch", "application/hta", "application/x-bat",
)
# Served inline for previews; everything else is a download.
INLINE_MIME = ("image/png", "image/jpeg", "image/gif", "image/webp")


@dataclass(frozen=True)
class Download:
    path: Path
    filename: str
    mime: str
    size: int
    inline_ok: bool


class FileService:
    def __init__(self, db: Database, blobs: BlobStore, rooms: RoomService, messages: MessageService,
                 audit: AuditService, max_bytes: int) -> None:
        self.db = db
        self.blobs = blobs
        self.rooms = rooms
        self.messages = messages
        self.audit = audit
        self.max_bytes = max_bytes

    async def upload(self, actor: Actor, sender: Staff, room_id: int, filename: str, chunks: AsyncIterator[bytes],
                     new: NewMessage) -> dict[str, Any]:
        assert actor.staff_id is not None
        await self.rooms.require_post(actor.staff_id, room_id)   # before reading a single byte
        sha256 = await self.store_blob(actor, chunks, {"room_id": room_id})
        return await self.messages.post(actor, sender, room_id, new, attachment=(safe_filename(filename), sha256))

    async def store_blob(self, actor: Actor, chunks: AsyncIterator[bytes], context: dict[str, Any]) -> str:
        """Receive, size-check, type-check (libmagic) and store a file; returns its SHA-256."""
        try:
            received = await self.blobs.receive(chunks, self.max_bytes)
        except TooLarge as exc:
            raise AppError("file_too_large", max_bytes=self.max_bytes) from exc
        try:
            if received.size == 0:
                raise AppError("empty_file")
            mime = await asyncio.to_thread(magic.from_file, str(received.tmp_path), mime=True)
            if mime.startswith(BLOCKED_MIME_PREFIXES):
                await self.audit.record_alone(actor, "file.upload", outcome="denied",
                                              detail={**context, "mime": mime, "sha256": received.sha256})
                raise AppError("file_type_not_allowed", mime=mime)
            await self.blobs.commit(received)
        except BaseException:
            self.blobs.discard(received)
            raise
        async with self.db.transaction("insert_blob") as conn:
            await store.insert_blob(conn, received.sha256, received.size, mime, now_iso())
        return received.sha256

    async def download(self, actor: Actor, attachment_id: int) -> Download:
        assert actor.staff_id is not None
        att = await store.get_attachment(self.db, attachment_id)
        if att is None:
            raise AppError("file_not_found")
        try:
            await self.rooms.access_room(actor.staff_id, att.room_id)
        except AppError as exc:
            raise AppError("file_not_found") from exc
        path = self.blobs.path_for(att.sha256)
        if not path.exists():
            raise AppError("file_not_found")
        await self.audit.record_alone(actor, "file.download", target_type="attachment", target_id=attachment_id,
                                      detail={"room_id": att.room_id, "sha256": att.sha256})
        return Download(path, att.filename, att.mime, att.size, att.mime in INLINE_MIME)
