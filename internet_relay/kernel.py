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
    link: LinkService

    @classmethod
    def build(cls, cfg: RelayConfig, db: Database, hub: Hub, signer: Signer, keyring: KeyRing) -> Relay:
        audit = AuditService(db)
        outbox = Outbox(db)
        accounts = AccountService(db, cfg, audit, outbox, hub)
        chat = ChatService(db, cfg, audit, outbox, hub)
        link = LinkService(db, cfg, audit, outbox, accounts, chat, hub, signer, keyring)
        return cls(cfg, db, hub, audit, outbox, accounts, chat, link)
