"""Serving a tier's local web UI files: an extension allow-list and a traversal-proof path check.

Everything is local (no CDN, no build step), so asset URLs carry no content hash: responses say
``Cache-Control: no-cache`` and carry ``ETag``/``Last-Modified``, so a browser revalidates each
asset with a cheap 304 and an upgrade is picked up at the next reload.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aiohttp import web

CACHE_CONTROL = "no-cache"


class StaticFiles:
    """The files under ``root`` whose extension ``content_types`` lists; nothing else."""

    def __init__(self, root: Path, content_types: Mapping[str, str], cache_control: str = CACHE_CONTROL) -> None:
        self.root = root.resolve()
        # Extension -> Content-Type. The allow-list is also what keeps stray files (.py, dotfiles) unserved.
        self.content_types = content_types
        self.cache_control = cache_control

    def resolve(self, relative: str) -> Path | None:
        """The file a ``/static/{relative}`` URL names, or None when it must not be served.

        Refused: backslashes, NUL, empty, ``.``/``..`` and dot-file segments, anything that
        resolves outside ``root`` (symlinks included), extensions off the allow-list, non-files.
        """
        if "\\" in relative or "\x00" in relative or any(p in ("", ".", "..") or p.startswith(".")
                                                          for p in relative.split("/")):
            return None
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root) or path.suffix not in self.content_types or not path.is_file():
            return None
        return path

    def response(self, path: Path) -> web.FileResponse:
        """``path`` (allow-listed, e.g. from ``resolve``) with its Content-Type and cache policy."""
        return web.FileResponse(path, headers={"Content-Type": self.content_types[path.suffix],
                                               "Cache-Control": self.cache_control})
