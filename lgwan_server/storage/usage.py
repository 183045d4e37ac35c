"""利用状況: active staff and messages per 所属 per JST day, for the admin dashboard (SQL only)."""

from __future__ import annotations

from dataclasses import dataclass

from .database import Source, fetchall

# Stored times are UTC ISO text ("…Z"); SQLite's date() understands them, and '+9 hours' gives the JST day.
_JST_DAY = "date({column}, '+9 hours')"


@dataclass(frozen=True)
class DayCount:
    day: str          # JST calendar date 'YYYY-MM-DD'
    count: int


@dataclass(frozen=True)
class AffiliationDayCount:
    affiliation: str  # 所属 at the time of posting (messages.sender_affiliation), so 人事異動 keeps history
    day: str
    count: int


async def active_staff_per_day(db: Source, org_id: int, since_utc: str) -> list[DayCount]:
    """Distinct staff per JST day who posted a message or logged in successfully.

    Args:
        db: database or connection.
        org_id: the organisation whose staff are counted.
        since_utc: ISO UTC lower bound (inclusive).
    """
    rows = await fetchall(db, f"""
        SELECT day, count(DISTINCT staff_id) FROM (
            SELECT {_JST_DAY.format(column='m.created_at')} AS day, m.sender_id AS staff_id
              FROM messages m JOIN staff s ON s.id = m.sender_id
             WHERE s.org_id = ? AND m.created_at >= ?
            UNION ALL
            SELECT {_JST_DAY.format(column='a.at')} AS day, a.actor_id AS staff_id
              FROM audit_log a
             WHERE a.org_id = ? AND a.action = 'auth.login' AND a.outcome = 'ok'
               AND a.actor_id IS NOT NULL AND a.at >= ?
        ) GROUP BY day ORDER BY day""", (org_id, since_utc, org_id, since_utc))
    return [DayCount(str(r[0]), int(r[1])) for r in rows]


async def messages_per_affiliation_day(db: Source, org_id: int, since_utc: str) -> list[AffiliationDayCount]:
    """Messages (thread replies included, deleted ones too: they were sent) per 所属 and JST day."""
    rows = await fetchall(db, f"""
        SELECT m.sender_affiliation, {_JST_DAY.format(column='m.created_at')} AS day, count(*)
          FROM messages m JOIN staff s ON s.id = m.sender_id
         WHERE s.org_id = ? AND m.created_at >= ?
         GROUP BY m.sender_affiliation, day ORDER BY m.sender_affiliation, day""", (org_id, since_utc))
    return [AffiliationDayCount(str(r[0]), str(r[1]), int(r[2])) for r in rows]


async def count_active_accounts(db: Source, org_id: int) -> int:
    """Accounts whose status is 'active' (the denominator for the active-user ratio)."""
    rows = await fetchall(db, "SELECT count(*) FROM staff WHERE org_id = ? AND status = 'active'", (org_id,))
    return int(rows[0][0]) if rows else 0
