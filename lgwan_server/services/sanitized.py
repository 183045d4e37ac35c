"""Files the sanitizer rebuilt (issue 3, item 9): the report staff open from the 「無害化済み」 badge."""

from __future__ import annotations

import json
from typing import Any

from ..errors import AppError
from ..storage import files as file_store
from ..storage import sanitized as store
from ..storage.database import Database
from .actor import Actor
from .rooms import RoomService


class SanitizedFileService:
    def __init__(self, db: Database, rooms: RoomService) -> None:
        self.db = db
        self.rooms = rooms

    async def report(self, actor: Actor, attachment_id: int) -> dict[str, Any]:
        """What the sanitizer removed and what LGWAN checked, for someone who may see the file.

        A missing attachment, one in a room the caller cannot open, and one that did not come through
        the sanitizer all answer ``file_not_found``.
        """
        assert actor.staff_id is not None
        att = await file_store.get_attachment(self.db, attachment_id)
        if att is None:
            raise AppError("file_not_found")
        try:
            await self.rooms.access_room(actor.staff_id, att.room_id)
        except AppError as exc:
            raise AppError("file_not_found") from exc
        row = await store.get_by_attachment(self.db, attachment_id)
        if att.origin != "sanitized" or row is None or row.state != "posted":
            raise AppError("file_not_found")
        return {
            "attachment_id": att.id,
            "filename": att.filename,
            "report": json.loads(row.report),
            "verdict": {"job_id": row.job_id, "signed_at": json.loads(row.verdict)["signed_at"],
                        "key_id": row.sanitizer_key_id, "fingerprint": row.sanitizer_fingerprint,
                        "input_sha256": row.input_sha256, "input_bytes": row.input_bytes,
                        "output_sha256": row.output_sha256, "output_bytes": row.output_bytes,
                        "output_type": row.output_type},
            # What this server checked before anyone could see the file (bridge/files.py).
            "lgwan_check": {"checked_at": row.checked_at, "signature": True, "sha256": True, "type": True,
                            "structure": True},
        }
