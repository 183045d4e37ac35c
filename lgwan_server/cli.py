"""Admin commands that run against the database without the web server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator

from . import backup as backup_mod
from .config import LgwanConfig
from .errors import AppError
from .hub import Hub
from .kernel import Kernel
from .services.actor import Actor
from .storage import org as org_store
from .storage.database import Database
from .storage.migrate import apply_migrations


@contextlib.asynccontextmanager
async def open_kernel(cfg: LgwanConfig) -> AsyncIterator[Kernel]:
    db = await Database.open(cfg.storage.db_path)
    try:
        await apply_migrations(db.conn)
        kernel = Kernel.build(cfg, db, Hub())
        await kernel.rooms.load_membership_index()
        yield kernel
    finally:
        await db.close()


async def run(cfg: LgwanConfig, command: str, args: argparse.Namespace) -> int:
    from .__main__ import dump, read_password

    system = Actor.system("cli")
    if command in ("backup", "restore"):
        return await _backup_restore(cfg, command, args)
    async with open_kernel(cfg) as k:
        try:
            if command == "migrate":
                dump({"status": "ok"})
            elif command == "create-org":
                dump({"org_id": await k.org.create_org(system, args.code, args.name)})
            elif command == "create-admin":
                org = await org_store.get_org_by_code(k.db, args.org)
                if org is None:
                    raise AppError("org_not_found")
                server_admin = Actor(None, None, "cli", "", "cli", "server_admin")
                staff_id = await k.org.create_staff(
                    server_admin, org.id, login=args.login, display_name=args.name, kana="", employee_no=None,
                    department_id=None, rank_id=None, title="", password=read_password(),
                    role="server_admin" if args.server_admin else "org_admin")
                dump({"staff_id": staff_id})
            elif command == "load-demo":
                from .demo import load_demo
                dump(await load_demo(k, staff_count=args.staff, password=args.password))
            elif command in ("import-departments", "import-staff"):
                org = await org_store.get_org_by_code(k.db, args.org)
                if org is None:
                    raise AppError("org_not_found")
                admin = Actor(None, org.id, "cli", "", "cli", "server_admin")
                data = args.csv.read_bytes()
                if command == "import-departments":
                    dump(await k.org.import_departments(admin, org.id, data))
                else:
                    dump(await k.org.import_staff(admin, org.id, data))
            elif command == "apply-transfers":
                dump({"applied": await k.org.apply_due_transfers(system)})
            elif command == "verify-audit":
                result = await k.audit.verify_chain()
                dump(result.__dict__)
                return 0 if result.ok else 1
        except AppError as exc:
            dump(exc.to_json())
            return 1
    return 0


async def _backup_restore(cfg: LgwanConfig, command: str, args: argparse.Namespace) -> int:
    from .__main__ import dump

    data_dir = cfg.storage.data_dir
    try:
        if command == "backup":
            result = await asyncio.to_thread(backup_mod.backup, data_dir, args.to)
            dump({"backup": str(result.path), "files": result.files, "bytes": result.bytes})
            return 0
        restored = await asyncio.to_thread(backup_mod.restore, args.source, data_dir, force=args.force)
    except backup_mod.BackupError as exc:
        dump({"error": str(exc)})
        return 1
    async with open_kernel(cfg) as k:
        chain = await k.audit.verify_chain()
        await k.audit.record_alone(Actor.system("cli"), "system.restore",
                                   detail={"source": args.source.name, "files": restored, "audit_chain_ok": chain.ok})
    dump({"restored_files": restored, "audit_chain": chain.__dict__})
    return 0 if chain.ok else 1
