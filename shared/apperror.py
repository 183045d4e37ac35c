"""The stable-code error every tier raises; each tier supplies its own catalogue.

A tier subclasses ``AppError`` with ``CATALOGUE = {code: (http status, 日本語, English)}``;
services raise ``AppError("code", **detail)`` and the error middleware (``shared.webedge``)
turns it into ``{"error": {"code", "message", "message_en", "detail"?}}``. Codes are part of the
API contract: never rename one, add a new one. The catalogues stay per tier because the
audiences differ (staff Japanese on LGWAN, やさしい日本語 for guests on the relay).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

# code: (http status, 日本語, English)
Catalogue = Mapping[str, tuple[int, str, str]]


class AppError(Exception):
    """A failure with a stable code. ``detail`` carries machine-readable context (never secrets).

    Raise a tier's subclass; this base has an empty catalogue, so every code is refused here.
    """

    CATALOGUE: ClassVar[Catalogue] = {}

    def __init__(self, code: str, **detail: Any) -> None:
        if code not in self.CATALOGUE:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(code)
        self.code = code
        self.detail = detail

    @property
    def status(self) -> int:
        return self.CATALOGUE[self.code][0]

    def to_json(self) -> dict[str, Any]:
        """The response body: ``{"error": {"code", "message", "message_en", "detail"?}}``."""
        status, ja, en = self.CATALOGUE[self.code]
        body: dict[str, Any] = {"code": self.code, "message": ja, "message_en": en}
        if self.detail:
            body["detail"] = self.detail
        return {"error": body}
