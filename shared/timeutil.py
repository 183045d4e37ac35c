"""UTC-aware timestamps for storage and JST rendering for people (audit, exports)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

JST = timezone(timedelta(hours=9), "JST")


def utcnow() -> datetime:
    """The current time, UTC-aware."""
    return datetime.now(UTC)


def to_iso(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, the storage format (sorts as text)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    """``to_iso(utcnow())``."""
    return to_iso(utcnow())


def parse_iso(text: str) -> datetime:
    """Parse a stored timestamp back to an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def to_jst_display(text: str) -> str:
    """A stored UTC timestamp as JST to the second, e.g. ``2026-04-01 09:00:00 JST``."""
    return parse_iso(text).astimezone(JST).strftime("%Y-%m-%d %H:%M:%S JST")
