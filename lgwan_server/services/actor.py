"""Who is acting: carried from the HTTP layer into every service call and audit entry."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    staff_id: int | None
    org_id: int | None
    login: str
    affiliation: str
    ip: str
    role: str = "staff"

    @classmethod
    def system(cls, ip: str = "") -> Actor:
        return cls(None, None, "system", "", ip, "system")

    @property
    def is_org_admin(self) -> bool:
        return self.role in ("org_admin", "server_admin")

    @property
    def is_server_admin(self) -> bool:
        return self.role == "server_admin"
