"""Resolve an audience (everyone, chosen departments with their sub-departments, or named people)."""

from __future__ import annotations

from .database import Source, fetchall


async def resolve(db: Source, org_id: int, *, department_ids: list[int] | None = None,
                  staff_ids: list[int] | None = None) -> list[tuple[int, int | None]]:
    """(staff id, department id) of active staff (not guests) in the audience, ordered by id."""
    base = "SELECT id, department_id FROM staff WHERE org_id = ? AND status = 'active' AND role != 'guest'"
    if staff_ids is not None:
        marks = ",".join("?" * len(staff_ids)) or "NULL"
        rows = await fetchall(db, f"{base} AND id IN ({marks}) ORDER BY id", [org_id, *staff_ids])
    elif department_ids is not None:
        marks = ",".join("?" * len(department_ids)) or "NULL"
        rows = await fetchall(
            db, "WITH RECURSIVE sub(id) AS (SELECT id FROM departments WHERE org_id = ? AND id IN (" + marks + ")"
                " UNION SELECT d.id FROM departments d JOIN sub ON d.parent_id = sub.id)"
                f" {base} AND department_id IN (SELECT id FROM sub) ORDER BY id", [org_id, *department_ids, org_id])
    else:
        rows = await fetchall(db, f"{base} ORDER BY id", (org_id,))
    return [(int(r[0]), r[1]) for r in rows]


async def department_names(db: Source, org_id: int) -> dict[int, str]:
    rows = await fetchall(db, "SELECT id, name FROM departments WHERE org_id = ?", (org_id,))
    return {int(r[0]): str(r[1]) for r in rows}
