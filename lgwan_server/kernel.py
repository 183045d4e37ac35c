"""The services of one running server, wired together once in the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from .bridge.outbox import BridgeOutbox
from .config import LgwanConfig
from .hub import Hub
from .services.audit import AuditService
from .services.auth import AuthService
from .services.broadcasts import BroadcastService
from .services.events import EventService
from .services.files import FileService
from .services.guests import GuestService
from .services.messages import MessageService
from .services.notices import NoticeService
from .services.org import OrgService
from .services.polls import PollService
from .services.records import RecordsService
from .services.rooms import RoomService
from .services.safety import SafetyService
from .services.tasks import TaskService
from .storage.blobs import BlobStore
from .storage.database import Database


@dataclass(frozen=True)
class Kernel:
    db: Database
    hub: Hub
    audit: AuditService
    auth: AuthService
    events: EventService
    rooms: RoomService
    messages: MessageService
    org: OrgService
    files: FileService
    records: RecordsService
    safety: SafetyService
    broadcasts: BroadcastService
    notices: NoticeService
    tasks: TaskService
    polls: PollService
    guests: GuestService
    bridge: BridgeOutbox | None     # the internet relay's outbox; None when no relay is configured (issue 5)

    @classmethod
    def build(cls, cfg: LgwanConfig, db: Database, hub: Hub) -> Kernel:
        audit = AuditService(db)
        events = EventService(db, hub)
        auth = AuthService(db, cfg.auth, audit, hub)
        rooms = RoomService(db, hub, events, audit)
        messages = MessageService(db, rooms, events, audit, post_burst=cfg.limits.post_burst,
                                  post_refill_per_second=cfg.limits.post_refill_per_second)
        # The relay outbox hooks into every event, for the CLI (load-demo, imports) as well as the
        # server, so nothing that changes a crossing room can bypass the queue (issue 5).
        bridge = BridgeOutbox(db, cfg.bridge) if cfg.bridge.enabled else None
        if bridge is not None:
            events.outbox = bridge.on_event
        org = OrgService(db, hub, rooms, events, audit, auth.passwords)
        files = FileService(db, BlobStore(cfg.storage.files_dir), rooms, messages, audit, cfg.limits.max_upload_bytes)
        records = RecordsService(db, rooms, events, audit, cfg.records_key_dir)
        messages.deletion_guard = records.deletion_blocked
        return cls(db, hub, audit, auth, events, rooms, messages, org, files, records,
                   SafetyService(db, events, audit), BroadcastService(db, hub, events, audit, rooms),
                   NoticeService(db, events, audit, files), TaskService(db, hub, rooms, events),
                   PollService(db, rooms, events), GuestService(db, cfg.bridge, rooms, audit, bridge), bridge)
