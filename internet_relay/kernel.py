"""The relay's services, wired together once in the guest app's cleanup context."""

from __future__ import annotations

from dataclasses import dataclass

from shared.signing import KeyRing, Signer

from .config import RelayConfig
from .hub import Hub
from .services.accounts import AccountService
from .services.audit import AuditService
from .services.chat import ChatService
from .services.link import LinkService
from .services.outbox import Outbox
from .services.safety import SafetyService
from .services.uploads import UploadService
from .storage.database import Database


@dataclass(frozen=True)
class Relay:
    cfg: RelayConfig
    db: Database
    hub: Hub
    audit: AuditService
    outbox: Outbox
    accounts: AccountService
    chat: ChatService
    safety: SafetyService
    link: LinkService
    uploads: UploadService      # guest and phone files, through the sanitizer (issue 3)

    @classmethod
    def build(cls, cfg: RelayConfig, db: Database, hub: Hub, signer: Signer, keyring: KeyRing) -> Relay:
        audit = AuditService(db)
        outbox = Outbox(db)
        accounts = AccountService(db, cfg, audit, outbox, hub)
        chat = ChatService(db, cfg, audit, outbox, hub)
        safety = SafetyService(db, audit, outbox, hub)
        link = LinkService(db, cfg, audit, outbox, accounts, chat, hub, signer, keyring, safety)
        return cls(cfg, db, hub, audit, outbox, accounts, chat, safety, link,
                   UploadService(db, cfg, audit, outbox, hub, chat))
