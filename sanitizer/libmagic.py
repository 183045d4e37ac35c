"""libmagic handles, opened once per process.

The fork server opens them before forking, so each worker starts with the magic database
already loaded (and shares its pages copy-on-write).
"""

from __future__ import annotations

import ctypes

import magic


class Detector:
    """Two libmagic handles: one for MIME types, one for descriptions."""

    def __init__(self) -> None:
        self._mime = magic.Magic(mime=True)
        self._describe = magic.Magic()

    def mime(self, data: bytes | ctypes.Array[ctypes.c_char]) -> str:
        """MIME type libmagic assigns to ``data`` (bytes, or a ctypes view of a mapped file: python-magic
        hands either to libmagic as a pointer, whatever its stub says)."""
        return str(self._mime.from_buffer(data))  # type: ignore[arg-type]

    def description(self, data: bytes) -> str:
        """libmagic's human description (used to spot encrypted Office containers)."""
        return str(self._describe.from_buffer(data))
