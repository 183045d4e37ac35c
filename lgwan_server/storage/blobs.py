"""Content-addressed files on disk: ``files/ab/cd/abcd…`` named by SHA-256.

A blob is written to a temporary file, hashed while streaming, fsynced and renamed into place
*before* the database row that points to it commits, so a row never names a missing file.
An orphan blob (process died between rename and commit) is harmless and can be swept.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path


class TooLarge(Exception):
    pass


@dataclass(frozen=True)
class Received:
    tmp_path: Path
    sha256: str
    size: int


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError("not a sha256 hex digest")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    async def receive(self, chunks: AsyncIterator[bytes], max_bytes: int) -> Received:
        """Stream chunks to a temporary file; raise TooLarge (and delete it) past ``max_bytes``."""
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="up-")
        digest, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as fh:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise TooLarge
                    digest.update(chunk)
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            Path(name).unlink(missing_ok=True)  # noqa: ASYNC240 - one unlink on the error path
            raise
        return Received(Path(name), digest.hexdigest(), size)

    async def commit(self, received: Received) -> Path:
        """Move a received file into its content address (a no-op if that content exists)."""
        final = self.path_for(received.sha256)

        def _move() -> None:
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                received.tmp_path.unlink(missing_ok=True)
            else:
                os.replace(received.tmp_path, final)
        await asyncio.to_thread(_move)
        return final

    @staticmethod
    def discard(received: Received) -> None:
        received.tmp_path.unlink(missing_ok=True)
