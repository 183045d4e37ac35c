"""Read-only access to the bytes of one file: a ``bytes`` object, or a sealed memfd mapped in place.

A worker receives its input (and the verifier the rebuilt output) as a memfd the parent
sealed: nobody can write, shrink or grow it any more. Copying 15 MB out of it into a
fresh process costs thousands of page faults; mapping it costs almost nothing, and the
parsers that can work on a mapping (libmagic, qpdf) read the shared pages directly.
Parsers that need a ``bytes`` object (zip, Pillow, text) get one copy, made once.

``Source.of`` wraps plain ``bytes`` the same way, so the rebuilders, ``detect`` and
``verify`` have one code path whether they run in a worker or in a test. This module
decides nothing about content; it only hands bytes out.
"""

from __future__ import annotations

import ctypes
import fcntl
import io
import mmap
import os
from typing import BinaryIO

from sanitizer.protocol import ProtocolError

# Seals that make a memfd immutable; a mapping of it can then neither change under the
# reader nor fault (SIGBUS) because the file shrank.
_IMMUTABLE = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_libc.munmap.restype = ctypes.c_int
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_MAP_FAILED = ctypes.c_void_p(-1).value


class Source:
    """The bytes of one file. Build with ``of`` (bytes) or ``from_memfd`` (a sealed memfd).

    Attributes:
        size: length in bytes.
    """

    __slots__ = ("_address", "_data", "_fd", "_view", "size")

    def __init__(self, data: bytes | None, fd: int | None, size: int) -> None:
        self._data = data
        self._fd = fd
        self._address: int | None = None
        self._view: ctypes.Array[ctypes.c_char] | None = None
        self.size = size

    @classmethod
    def of(cls, data: bytes | Source) -> Source:
        """``data`` itself if it is a ``Source``, else a ``Source`` over the bytes (no copy)."""
        if isinstance(data, Source):
            return data
        return cls(bytes(data), None, len(data))

    @classmethod
    def from_memfd(cls, fd: int, size: int) -> Source:
        """Map a sealed memfd of exactly ``size`` bytes (the ``Source`` owns ``fd`` from now on).

        Raises:
            ProtocolError: the file is not sealed against writing and resizing, or its
                size is not ``size``.
        """
        try:
            seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
            actual = os.fstat(fd).st_size
        except OSError as exc:
            raise ProtocolError("input is not a memfd") from exc
        if seals & _IMMUTABLE != _IMMUTABLE:
            raise ProtocolError("input memfd is not sealed")
        if actual != size:
            raise ProtocolError("input size differs from the announced size")
        source = cls(None, fd, size)
        if size:
            # Read-only and shared: the pages of the memfd itself, never written. (The
            # mmap module would keep a second descriptor open; libc's mmap does not.)
            address = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
            if address is None or address == _MAP_FAILED:
                raise ProtocolError("input memfd cannot be mapped")
            source._address = address
        return source

    def __len__(self) -> int:
        return self.size

    def buffer(self) -> bytes | ctypes.Array[ctypes.c_char]:
        """The whole content without copying: ``bytes``, or a ctypes array over the mapping.

        Both can be passed to libmagic (``Detector.mime``). The mapping is read-only:
        this is for C code that only reads.
        """
        if self._data is not None:
            return self._data
        if self._address is None:
            return b""
        if self._view is None:
            self._view = (ctypes.c_char * self.size).from_address(self._address)
        return self._view

    def read(self) -> bytes:
        """The whole content as ``bytes`` (copied once from a memfd, then cached)."""
        if self._data is None:
            self._data = ctypes.string_at(self._address, self.size) if self._address is not None else b""
        return self._data

    def stream(self) -> BinaryIO:
        """A new seekable binary stream over the content, for parsers that read files.

        Over a memfd it is a real file (``fileno()`` works), so qpdf can map it
        (``pikepdf.AccessMode.mmap``) instead of reading it through Python calls.
        """
        if self._fd is None:
            return io.BytesIO(self.read())
        stream = os.fdopen(os.dup(self._fd), "rb")
        # The descriptor shares its offset with the sender's (which wrote the file), so
        # start from the beginning; nobody relies on that offset (the parent uses pread).
        stream.seek(0)
        return stream

    def count(self, needle: bytes) -> int:
        """Non-overlapping occurrences of ``needle`` (like ``bytes.count``)."""
        return self.read().count(needle)

    def close(self) -> None:
        """Unmap and close a memfd source (a bytes source has nothing to release)."""
        self._view = None
        if self._address is not None:
            _libc.munmap(self._address, self.size)
            self._address = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
