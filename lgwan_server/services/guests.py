"""Guests, staff phones and their devices: the LGWAN side of issue 5 (届け出制).

Guests: a room owner invites a guest to a room whose policy is ``guests``; the invitation crosses
to the relay as an account with the SHA-256 of a one-time enrolment token, and the owner hands the
link over out of band. On the relay the guest sets a password and TOTP and acknowledges the
organisation's 利用目的 notice; LGWAN hears of it (``account.enrolled``) and the owner approves.
Staff phones: an admin grants mobile use, the staff member enrols on the relay the same way, and
every new device waits for an admin's approval.

A guest has a row in ``staff`` with role ``guest`` and no password, so they can author messages,
be a member and have a read cursor, but can never log in to LGWAN or appear in the directory.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from shared import envelope as env
from shared.limits import MAX_DISPLAY_NAME_CHARS
from shared.textsafe import clean_line
from shared.timeutil import now_iso, to_iso, utcnow

from ..bridge.outbox import BridgeOutbox, guest_account, member_token, phone_account
from ..config import BridgeConfig
from ..errors import AppError
from ..storage import guests as store
from ..storage import org as org_store
from ..storage import rooms as room_store
from ..storage.database import Database
from ..storage.guests import Device, Guest, MobileGrant
from .actor import Actor
from .audit import AuditService
from .rooms import RoomService

MAX_AFFILIATION_CHARS = 200


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def guest_json(guest: Guest) -> dict[str, Any]:
    return {"id": guest.staff_id, "display_name": guest.display_name, "affiliation": guest.affiliation,
            "status": guest.status, "invited_by": guest.invited_by, "invite_expires_at": guest.invite_expires_at,
            "expires_at": guest.expires_at, "privacy_ack_at": guest.privacy_ack_at, "enrolled_at": guest.enrolled_at,
            "approved_at": guest.approved_at, "created_at": guest.created_at}


def grant_json(grant: MobileGrant) -> dict[str, Any]:
    return {"staff_id": grant.staff_id, "status": grant.status, "enrol_expires_at": grant.enrol_expires_at,
            "granted_by": grant.granted_by, "granted_at": grant.granted_at, "enrolled_at": grant.enrolled_at,
            "revoked_at": grant.revoked_at}


def device_json(device: Device) -> dict[str, Any]:
    return {"device_id": device.device_id, "staff_id": device.staff_id, "label": device.label,
            "status": device.status, "requested_at": device.requested_at, "decided_by": device.decided_by,
            "decided_at": device.decided_at}


class GuestService:
    def __init__(self, db: Database, cfg: BridgeConfig, rooms: RoomService, audit: AuditService,
                 outbox: BridgeOutbox | None) -> None:
        self.db = db
        self.cfg = cfg
        self.rooms = rooms
        self.audit = audit
        self.outbox = outbox

    def _bridge(self) -> BridgeOutbox:
        if self.outbox is None:
            raise AppError("bridge_disabled")
        return self.outbox

    def _link(self, token: str) -> str:
        # The token travels in the fragment, which browsers never send to a server or in a Referer.
        return f"{self.cfg.relay_public_url}/enrol#{token}"

    # --- guests ----------------------------------------------------------------------------------

    async def invite(self, actor: Actor, room_id: int, display_name: str, affiliation: str) -> dict[str, Any]:
        """Invite a new guest to a ``guests`` room (room owners). The link is returned once."""
        outbox = self._bridge()
        assert actor.staff_id is not None
        access = await self.rooms.require_owner(actor.staff_id, room_id)
        if access.room.crossing_policy != "guests":
            raise AppError("guest_room_required")
        name = clean_line(display_name)[:MAX_DISPLAY_NAME_CHARS]
        org_name = clean_line(affiliation)[:MAX_AFFILIATION_CHARS]
        if not name:
            raise AppError("invalid_request", field="display_name")
        token = secrets.token_urlsafe(32)
        now = utcnow()
        invite_expires = to_iso(now + timedelta(seconds=self.cfg.guest_invite_ttl))
        expires = to_iso(now + timedelta(seconds=self.cfg.guest_account_ttl))
        async with self.db.transaction("guest_invite") as conn:
            staff_id = await org_store.insert_staff(
                conn, org_id=access.room.org_id, login=f"guest.{secrets.token_hex(8)}", employee_no=None,
                display_name=name, kana="", department_id=None, rank_id=None,
                title=f"ゲスト（{org_name}）" if org_name else "ゲスト", role="guest", password_hash=None,
                now=to_iso(now))
            await store.insert_guest(conn, staff_id=staff_id, affiliation=org_name, invited_by=actor.staff_id,
                                     room_id=room_id, token_sha256=token_sha256(token),
                                     invite_expires_at=invite_expires, expires_at=expires, now=to_iso(now))
            guest = await store.get_guest(conn, staff_id)
            assert guest is not None
            # The account first, so the relay knows whom the membership names.
            await outbox.enqueue(conn, guest_account(guest, device_approval=self.cfg.guest_device_approval))
            await self.rooms.add_member_in_transaction(conn, access.room, staff_id)
            await self.audit.record(conn, actor, "guest.invite", target_type="guest", target_id=staff_id,
                                    detail={"room_id": room_id, "invite_expires_at": invite_expires,
                                            "expires_at": expires})
        return {"guest": guest_json(guest), "invite_url": self._link(token), "invite_token": token,
                "invite_expires_at": invite_expires}

    async def _manageable(self, actor: Actor, guest_id: int) -> Guest:
        """A guest the caller may manage: their inviter, an owner of a room they are in, or an org admin."""
        assert actor.staff_id is not None
        guest = await store.get_guest(self.db, guest_id)
        if guest is None:
            raise AppError("guest_not_found")
        staff = await org_store.get_staff(self.db, guest_id)
        assert staff is not None
        if actor.is_org_admin and (actor.org_id == staff.org_id or actor.is_server_admin):
            return guest
        if guest.invited_by == actor.staff_id:
            return guest
        for room_id in await room_store.room_ids_of_staff(self.db, guest_id):
            membership = await room_store.get_membership(self.db, room_id, actor.staff_id)
            if membership is not None and membership.role == "owner":
                return guest
        raise AppError("guest_not_found")

    async def list_room(self, staff_id: int, room_id: int) -> list[dict[str, Any]]:
        await self.rooms.access_room(staff_id, room_id)
        return [guest_json(g) for g in await store.list_guests_in_room(self.db, room_id)]

    async def get(self, actor: Actor, guest_id: int) -> dict[str, Any]:
        return guest_json(await self._manageable(actor, guest_id))

    async def approve(self, actor: Actor, guest_id: int) -> dict[str, Any]:
        """届け出制: the guest enrolled on the relay; an owner lets them read and post."""
        outbox = self._bridge()
        guest = await self._manageable(actor, guest_id)
        if guest.status != "enrolled":
            raise AppError("invalid_transition", status=guest.status)
        assert actor.staff_id is not None
        async with self.db.transaction("guest_approve") as conn:
            await store.mark_guest_approved(conn, guest_id, actor.staff_id, now_iso())
            updated = await store.get_guest(conn, guest_id)
            assert updated is not None
            await outbox.enqueue(conn, guest_account(updated, device_approval=self.cfg.guest_device_approval))
            await self.audit.record(conn, actor, "guest.approve", target_type="guest", target_id=guest_id)
        return guest_json(updated)

    async def reinvite(self, actor: Actor, guest_id: int) -> dict[str, Any]:
        """A new enrolment link (the old one stops working), e.g. after the relay was rebuilt."""
        outbox = self._bridge()
        guest = await self._manageable(actor, guest_id)
        if guest.status not in ("invited", "enrolled", "active"):
            raise AppError("invalid_transition", status=guest.status)
        token = secrets.token_urlsafe(32)
        invite_expires = to_iso(utcnow() + timedelta(seconds=self.cfg.guest_invite_ttl))
        async with self.db.transaction("guest_reinvite") as conn:
            await store.set_guest_invite(conn, guest_id, token_sha256(token), invite_expires)
            updated = await store.get_guest(conn, guest_id)
            assert updated is not None
            await outbox.enqueue(conn, guest_account(updated, device_approval=self.cfg.guest_device_approval))
            await self.audit.record(conn, actor, "guest.reinvite", target_type="guest", target_id=guest_id,
                                    detail={"invite_expires_at": invite_expires})
        return {"guest": guest_json(updated), "invite_url": self._link(token), "invite_token": token,
                "invite_expires_at": invite_expires}

    async def remove(self, actor: Actor, guest_id: int) -> None:
        """End a guest's account: out of every room, logged out on the relay, devices revoked."""
        outbox = self._bridge()
        guest = await self._manageable(actor, guest_id)
        if guest.status in ("removed", "expired"):
            return
        async with self.db.transaction("guest_remove") as conn:
            await self._end(conn, outbox, guest, "removed")
            await self.audit.record(conn, actor, "guest.remove", target_type="guest", target_id=guest_id)

    async def _end(self, conn: Any, outbox: BridgeOutbox, guest: Guest, status: str) -> None:
        now = now_iso()
        await self.rooms.remove_from_all_rooms(conn, guest.staff_id)
        await store.end_guest(conn, guest.staff_id, status, now)
        await store.revoke_devices_of(conn, guest.staff_id, now)
        await outbox.enqueue(conn, env.AccountRemove(account=member_token("guest", guest.staff_id)))

    async def expire_due(self) -> int:
        """Expire unused invitations and guest accounts whose time is up. Returns how many ended."""
        if self.outbox is None:
            return 0
        outbox = self.outbox
        system = Actor.system("maintenance")
        async with self.db.transaction("guest_expire") as conn:
            due = await store.due_guests(conn, now_iso())
            for guest in due:
                await self._end(conn, outbox, guest, "expired")
                await self.audit.record(conn, system, "guest.expire", target_type="guest", target_id=guest.staff_id,
                                        detail={"was": guest.status})
        return len(due)

    # --- staff phones ----------------------------------------------------------------------------

    async def _admin_target(self, actor: Actor, staff_id: int) -> org_store.Staff:
        staff = await org_store.get_staff(self.db, staff_id)
        if staff is None or staff.role == "guest" or not actor.is_org_admin:
            raise AppError("staff_not_found")
        if staff.org_id != actor.org_id and not actor.is_server_admin:
            raise AppError("staff_not_found")
        return staff

    async def grant_mobile(self, actor: Actor, staff_id: int) -> dict[str, Any]:
        """届け出制: an admin lets a staff member use the relay from a phone. Returns the enrolment link once."""
        outbox = self._bridge()
        staff = await self._admin_target(actor, staff_id)
        if staff.status != "active":
            raise AppError("invalid_transition", status=staff.status)
        assert actor.staff_id is not None
        token = secrets.token_urlsafe(32)
        enrol_expires = to_iso(utcnow() + timedelta(seconds=self.cfg.mobile_enrol_ttl))
        async with self.db.transaction("mobile_grant") as conn:
            await store.upsert_grant(conn, staff_id, token_sha256(token), enrol_expires, actor.staff_id, now_iso())
            grant = await store.get_grant(conn, staff_id)
            assert grant is not None
            affiliation = await org_store.department_path(conn, staff.department_id)
            await outbox.enqueue(conn, phone_account(grant, staff.display_name, affiliation))
            await self.audit.record(conn, actor, "mobile.grant", target_type="staff", target_id=staff_id,
                                    detail={"enrol_expires_at": enrol_expires})
        return {"grant": grant_json(grant), "enrol_url": self._link(token), "enrol_token": token,
                "enrol_expires_at": enrol_expires}

    async def revoke_mobile(self, actor: Actor, staff_id: int) -> None:
        outbox = self._bridge()
        await self._admin_target(actor, staff_id)
        grant = await store.get_grant(self.db, staff_id)
        if grant is None or grant.status == "revoked":
            return
        async with self.db.transaction("mobile_revoke") as conn:
            now = now_iso()
            await store.revoke_grant(conn, staff_id, now)
            await store.revoke_devices_of(conn, staff_id, now)
            await outbox.enqueue(conn, env.AccountRemove(account=member_token("staff", staff_id)))
            await self.audit.record(conn, actor, "mobile.revoke", target_type="staff", target_id=staff_id)

    async def list_mobile(self, actor: Actor) -> list[dict[str, Any]]:
        if not actor.is_org_admin or actor.org_id is None:
            raise AppError("forbidden")
        return [grant_json(g) for g in await store.list_grants(self.db, actor.org_id)]

    # --- devices ---------------------------------------------------------------------------------

    async def list_devices(self, actor: Actor, status: str | None, limit: int) -> list[dict[str, Any]]:
        if not actor.is_org_admin or actor.org_id is None:
            raise AppError("forbidden")
        return [device_json(d) for d in await store.list_devices(self.db, actor.org_id, status, limit)]

    async def decide_device(self, actor: Actor, device_id: str, approve: bool) -> dict[str, Any]:
        """An admin approves a device waiting for approval, or revokes one (its sessions end on the relay)."""
        outbox = self._bridge()
        device = await store.get_device(self.db, device_id)
        if device is None:
            raise AppError("device_not_found")
        staff = await org_store.get_staff(self.db, device.staff_id)
        if staff is None or not actor.is_org_admin or (staff.org_id != actor.org_id and not actor.is_server_admin):
            raise AppError("device_not_found")
        assert actor.staff_id is not None
        status = "approved" if approve else "revoked"
        if device.status == "revoked" and approve:
            raise AppError("invalid_transition", status=device.status)
        async with self.db.transaction("device_decide") as conn:
            await store.decide_device(conn, device_id, status, actor.staff_id, now_iso())
            await outbox.enqueue(conn, env.DeviceDecision(account=member_token(staff.role, staff.id),
                                                          device_id=device_id, decision=status))
            await self.audit.record(conn, actor, f"device.{'approve' if approve else 'revoke'}", target_type="device",
                                    target_id=device_id, detail={"staff_id": staff.id})
            updated = await store.get_device(conn, device_id)
        assert updated is not None
        return device_json(updated)
