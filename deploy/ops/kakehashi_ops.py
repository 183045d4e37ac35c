#!/usr/bin/env python3
"""kakehashi-ops: encrypted backup, restore drill, upgrade and rollback of one Kakehashi tier (issue 8).

Run it with the tier's own Python, which has ``cryptography`` and the tier's package::

    /opt/kakehashi/lgwan/bin/python /usr/local/lib/kakehashi/kakehashi_ops.py COMMAND ...

Commands (``--help`` on each for every option):
  keygen    make a backup key (32 random bytes, base64) — keep a second copy offline
  backup    lgwan: the server's online backup (database, files, keys), then encrypt it
            relay: its keys and configuration (the database is rebuilt from LGWAN, so it is not kept)
  verify    decrypt an archive and check every file against its manifest, without restoring
  restore   decrypt an archive and put it back (LGWAN: database, files, keys; relay: keys and config)
  upgrade   install a new release beside the current one, back up, migrate, start, health-check;
            on failure roll back by itself
  rollback  the previous release and the pre-upgrade backup (migrations are forward-only)

Archives (``*.kkbackup``) are AES-256-CCM (CRYPTREC 電子政府推奨暗号リスト) in 1 MiB chunks: each chunk's
nonce holds a per-archive random prefix, its index and a last-chunk flag, and every chunk authenticates
the archive header, so a changed, reordered, truncated or extended archive does not decrypt.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

MAGIC = b"KAKEHASHI-BACKUP/1\n"
CHUNK = 1 << 20
SUFFIX = ".kkbackup"
TIERS = ("lgwan", "relay")
CLI = {"lgwan": "kakehashi-lgwan", "relay": "kakehashi-relay"}
SERVICE_MANAGER = os.environ.get("KAKEHASHI_SYSTEMCTL", "systemctl")   # a test seam; systemd in production


class OpsError(Exception):
    pass


def log(event: str, **fields: Any) -> None:
    """One JSON line per step on stderr (journald keeps it when run from a unit)."""
    print(json.dumps({"event": event, **fields}, ensure_ascii=False, default=str), file=sys.stderr, flush=True)


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


# --- encryption ------------------------------------------------------------------------------------------

def read_key(path: Path) -> bytes:
    try:
        key = base64.b64decode(path.read_text(encoding="ascii").strip(), validate=True)
    except (OSError, ValueError) as exc:
        raise OpsError(f"cannot read the backup key {path}: {exc}") from exc
    if len(key) != 32:
        raise OpsError(f"{path}: a backup key is 32 bytes (base64); run keygen")
    return key


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"kakehashi-backup-key-id\x00" + key).hexdigest()[:16]


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")      # 7 + 4 + 1 = 12 bytes


class EncryptingWriter(io.RawIOBase):
    """A write-only stream that encrypts into ``out`` chunk by chunk."""

    def __init__(self, out: IO[bytes], key: bytes, header: dict[str, Any]) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESCCM

        self.out, self.aead = out, AESCCM(key, tag_length=16)
        self.prefix = os.urandom(7)
        header = {**header, "cipher": "AES-256-CCM", "chunk_bytes": CHUNK, "key_id": key_id(key),
                  "nonce_prefix": base64.b64encode(self.prefix).decode()}
        self.header = json.dumps(header, sort_keys=True, ensure_ascii=False).encode() + b"\n"
        out.write(MAGIC + self.header)
        self.buffer, self.index = bytearray(), 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.buffer += data
        while len(self.buffer) > CHUNK:       # keep at least one byte back: the last chunk is flagged on close
            self._emit(bytes(self.buffer[:CHUNK]), last=False)
            del self.buffer[:CHUNK]
        return len(data)

    def _emit(self, plain: bytes, last: bool) -> None:
        sealed = self.aead.encrypt(_nonce(self.prefix, self.index, last), plain, self.header)
        self.out.write(len(sealed).to_bytes(4, "big") + sealed)
        self.index += 1

    def close(self) -> None:
        if not self.closed:
            self._emit(bytes(self.buffer), last=True)
            self.buffer.clear()
        super().close()


def decrypt_chunks(source: IO[bytes], key: bytes) -> Iterator[bytes]:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESCCM

    if source.read(len(MAGIC)) != MAGIC:
        raise OpsError("not a Kakehashi backup archive")
    header_line = source.readline(65536)
    header = json.loads(header_line)
    if header.get("key_id") != key_id(key):
        raise OpsError(f"this archive was made with another backup key (key id {header.get('key_id')})")
    aead, prefix = AESCCM(key, tag_length=16), base64.b64decode(header["nonce_prefix"])
    index = 0
    while True:
        size_bytes = source.read(4)
        if len(size_bytes) != 4:
            raise OpsError("the archive is truncated (no last chunk)")
        sealed = source.read(int.from_bytes(size_bytes, "big"))
        for last in (False, True):
            try:
                plain = aead.decrypt(_nonce(prefix, index, last), sealed, header_line)
                break
            except InvalidTag:
                continue
        else:
            raise OpsError(f"chunk {index} does not authenticate: wrong key, or the archive was changed")
        yield plain
        index += 1
        if last:
            if source.read(1):
                raise OpsError("data after the last chunk: the archive was changed")
            return


class _ChunkReader(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.pending = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.pending:
            try:
                self.pending = next(self.chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n


def header_of(archive: Path) -> dict[str, Any]:
    with archive.open("rb") as fh:
        if fh.read(len(MAGIC)) != MAGIC:
            raise OpsError(f"{archive}: not a Kakehashi backup archive")
        return dict(json.loads(fh.readline(65536)))


def seal(folder: Path, archive: Path, key: bytes, header: dict[str, Any]) -> None:
    """tar ``folder`` into an encrypted archive (written under a temporary name, then renamed)."""
    tmp = archive.with_name(archive.name + ".partial")
    with tmp.open("wb") as raw:
        os.chmod(tmp, 0o600)
        writer = EncryptingWriter(raw, key, header)
        with io.BufferedWriter(writer, CHUNK) as buffered, tarfile.open(fileobj=buffered, mode="w|") as tar:
            tar.add(folder, arcname=folder.name)
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(tmp, archive)


def unseal(archive: Path, key: bytes, target: Path) -> Path:
    """Decrypt and untar into ``target``; returns the one top-level folder."""
    with archive.open("rb") as fh, io.BufferedReader(_ChunkReader(decrypt_chunks(fh, key)), CHUNK) as stream, \
            tarfile.open(fileobj=stream, mode="r|") as tar:
        tar.extractall(target, filter="data")       # no absolute paths, no "..", no devices or links out
    entries = list(target.iterdir())
    if len(entries) != 1 or not entries[0].is_dir():
        raise OpsError("the archive does not hold exactly one backup folder")
    return entries[0]


# --- helpers ----------------------------------------------------------------------------------------------

def tier_cli(tier: str, bin_dir: Path) -> Path:
    path = bin_dir / CLI[tier]
    if not path.exists():
        raise OpsError(f"{path} not found: run this script with the {tier} tier's own Python, or pass --bin")
    return path


def as_user(cmd: list[str], user: str | None) -> list[str]:
    """Run tier commands as the service user, so files they create stay the service's own."""
    if user and os.geteuid() == 0:
        return ["runuser", "-u", user, "--", *cmd]
    return cmd


def run(cmd: list[str], what: str) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise OpsError(f"{what} failed ({result.returncode}): {result.stdout.strip()} {result.stderr.strip()}")
    return result.stdout


def service(action: str, unit: str | None) -> None:
    if unit:
        run([SERVICE_MANAGER, action, unit], f"{SERVICE_MANAGER} {action} {unit}")
        log(f"service.{action}", unit=unit)


def wait_healthy(url: str | None, cafile: str | None = None, timeout: float | None = None) -> dict[str, Any] | None:
    if not url:
        return None
    import ssl

    context = ssl.create_default_context(cafile=cafile) if url.startswith("https") else None
    timeout = timeout or float(os.environ.get("KAKEHASHI_HEALTH_TIMEOUT", "120"))
    deadline, last = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5, context=context) as resp:  # noqa: S310 - admin-given URL
                body = json.loads(resp.read())
                if body.get("status") == "ok":
                    log("health.ok", url=url, schema_version=body.get("schema_version"))
                    return dict(body)
                last = str(body)
        except (OSError, ValueError) as exc:
            last = str(exc)
        time.sleep(1)
    raise OpsError(f"{url} did not report status ok within {timeout:.0f}s: {last}")


def private_dir(parent: Path, name: str, owner: str | None = None) -> Path:
    path = parent / name
    path.mkdir(mode=0o700, parents=True)
    if owner and os.geteuid() == 0:
        shutil.chown(path, owner)
    return path


def chown_tree(path: Path, owner: str | None) -> None:
    if owner and os.geteuid() == 0:
        user, _, group = owner.partition(":")
        for p in [path, *path.rglob("*")]:
            shutil.chown(p, user, group or None)


def _owner(path: Path) -> dict[str, str]:
    """Names (not numbers: a rebuilt host may number its users differently) of a file's owner and group."""
    import grp
    import pwd

    st = path.stat()
    try:
        return {"owner": pwd.getpwuid(st.st_uid).pw_name, "group": grp.getgrgid(st.st_gid).gr_name}
    except KeyError:
        return {}


def _restore_owner(target: Path, entry: dict[str, str]) -> None:
    """As root, give a restored file (or a folder made for it) back to the file's recorded owner."""
    if os.geteuid() != 0 or "owner" not in entry:
        return
    try:
        shutil.chown(target, entry["owner"], entry["group"])
    except (LookupError, OSError) as exc:
        log("restore.owner_not_set", path=target, error=str(exc))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def relay_keys_dir(config: Path) -> Path:
    from internet_relay.config import load_config  # the relay venv has it

    return load_config(config).queue.keys_dir


def data_dir_of(tier: str, config: Path) -> Path:
    if tier == "lgwan":
        from lgwan_server.config import load_config as load_lgwan

        return load_lgwan(config).storage.data_dir
    from internet_relay.config import load_config as load_relay

    return load_relay(config).storage_dir


def check_owner(args: argparse.Namespace) -> None:
    """As root, tier commands must run as the service user, or files they create (SQLite's -wal/-shm,
    restored files) would be root's and the service could no longer open its own database."""
    if os.geteuid() != 0 or args.user or not args.config.exists():     # (a relay's config may be restored)
        return
    data_dir = data_dir_of(args.tier, args.config)
    if data_dir.exists() and data_dir.stat().st_uid != 0:
        import pwd

        owner = pwd.getpwuid(data_dir.stat().st_uid).pw_name
        raise OpsError(f"running as root: pass --user {owner} (the owner of {data_dir})")


# --- backup -----------------------------------------------------------------------------------------------

def backup(args: argparse.Namespace) -> dict[str, Any]:
    if args.tier == "lgwan":           # the relay's backup only reads keys and configuration
        check_owner(args)
    key = read_key(args.key)
    args.to.mkdir(parents=True, exist_ok=True)
    name = f"kakehashi-{args.tier}-{stamp()}"
    work = Path(tempfile.mkdtemp(prefix=".staging-", dir=args.to))
    try:
        if args.tier == "lgwan":
            staging = private_dir(work, "out", args.user)
            out = run(as_user([str(tier_cli("lgwan", args.bin)), "--config", str(args.config), "backup",
                               "--to", str(staging)], args.user), "kakehashi-lgwan backup")
            folder = Path(json.loads(out)["backup"])
            folder = folder.rename(work / name)
        else:
            folder = private_dir(work, name)
            files: list[dict[str, str]] = []
            manifest = {"format": "kakehashi-relay-backup/1", "created_at": datetime.now(UTC).isoformat(),
                        "files": files}
            sources = [("config", args.config.resolve()), ("keys", relay_keys_dir(args.config))]
            sources += [(f"include-{i}", Path(p).resolve()) for i, p in enumerate(args.include or [])]
            for label, source in sources:
                if not source.exists():
                    raise OpsError(f"{source} does not exist")
                target = folder / label / source.name
                target.parent.mkdir(parents=True)
                (shutil.copytree if source.is_dir() else shutil.copy2)(source, target)
                for path in sorted([target] if target.is_file() else target.rglob("*")):
                    if path.is_file():
                        rel = path.relative_to(folder / label / source.name)
                        original = source / rel if source.is_dir() else source
                        files.append({"label": label, "restore_to": str(original),
                                      "path": path.relative_to(folder).as_posix(), "sha256": sha256(path),
                                      "mode": oct(path.stat().st_mode & 0o777), **_owner(original)})
            (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
        archive = args.to / f"{name}{SUFFIX}"
        seal(folder, archive, key, {"tier": args.tier, "created_at": datetime.now(UTC).isoformat(),
                                    "host": os.uname().nodename})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.verify:
        verify_archive(archive, key)
    pruned = prune(args.to, args.tier, args.keep)
    log("backup.done", archive=archive, bytes=archive.stat().st_size, pruned=pruned)
    return {"archive": str(archive), "bytes": archive.stat().st_size, "pruned": pruned}


def prune(folder: Path, tier: str, keep: int) -> list[str]:
    if keep <= 0:
        return []
    archives = sorted(folder.glob(f"kakehashi-{tier}-*{SUFFIX}"))
    gone = archives[:-keep]
    for path in gone:
        path.unlink()
    return [p.name for p in gone]


def verify_archive(archive: Path, key: bytes) -> dict[str, Any]:
    """Decrypt into a private temporary folder and check every file against the manifest inside."""
    with tempfile.TemporaryDirectory(prefix="kakehashi-verify-") as tmp:
        folder = unseal(archive, key, Path(tmp))
        files = _check_manifest(folder)
    result = {"archive": str(archive), "tier": header_of(archive).get("tier"), "files": files, "ok": True}
    log("verify.ok", **result)
    return result


def _check_manifest(folder: Path) -> int:
    if (folder / "backup-manifest.json").exists():                    # the LGWAN server's own manifest
        entries = json.loads((folder / "backup-manifest.json").read_text())["files"]
        pairs = list(entries.items())
    else:
        pairs = [(f["path"], f["sha256"]) for f in json.loads((folder / "manifest.json").read_text())["files"]]
    for rel, digest in pairs:
        if not (folder / rel).is_file() or sha256(folder / rel) != digest:
            raise OpsError(f"{rel} is missing or differs from the manifest")
    return len(pairs)


# --- restore ----------------------------------------------------------------------------------------------

def restore(args: argparse.Namespace) -> dict[str, Any]:
    check_owner(args)
    key = read_key(args.key)
    tier = header_of(args.archive).get("tier")
    if tier != args.tier:
        raise OpsError(f"{args.archive} is a {tier} backup, not {args.tier}")
    work = Path(tempfile.mkdtemp(prefix="kakehashi-restore-"))
    try:
        if args.user and os.geteuid() == 0:
            shutil.chown(work, args.user)
        folder = unseal(args.archive, key, work)
        _check_manifest(folder)
        chown_tree(work, args.user)
        service("stop", args.service)
        if args.tier == "lgwan":
            out = run(as_user([str(tier_cli("lgwan", args.bin)), "--config", str(args.config), "restore",
                               "--from", str(folder), "--force"], args.user), "kakehashi-lgwan restore")
            log("restore.lgwan", result=json.loads(out))
        else:
            manifest = json.loads((folder / "manifest.json").read_text())
            for entry in manifest["files"]:
                if entry["label"] == "config" and not args.with_config:
                    continue
                target = Path(entry["restore_to"])
                made = [p for p in [target.parent, *target.parent.parents] if not p.exists()]
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(folder / entry["path"], target)
                target.chmod(int(entry["mode"], 8))
                for path in [target, *made]:
                    _restore_owner(path, entry)
            # The relay's database is not in the backup: start from none, LGWAN rebuilds it at the next link.
            wipe = [str(tier_cli("relay", args.bin)), "--config", str(args.config), "wipe", "--yes"]
            if args.force_wipe:
                wipe.append("--force")
            log("restore.relay", files=len(manifest["files"]), wipe=run(as_user(wipe, args.user), "wipe").strip())
        service("start", args.service)
        wait_healthy(args.health_url, cafile=args.cafile)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"restored": str(args.archive), "tier": args.tier}


# --- upgrade and rollback ---------------------------------------------------------------------------------

def _state_file(prefix: Path, tier: str) -> Path:
    return prefix / f"{tier}.upgrade.json"


def upgrade(args: argparse.Namespace) -> dict[str, Any]:
    check_owner(args)
    current_link = args.prefix / args.tier
    previous = current_link.resolve()
    if not (previous / "bin" / CLI[args.tier]).exists():
        raise OpsError(f"{current_link} is not a {args.tier} release (no bin/{CLI[args.tier]})")
    release = args.prefix / f"{args.tier}-{stamp()}"
    log("upgrade.install", release=release)
    run([args.python, "-m", "venv", str(release)], "python -m venv")
    run([str(release / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-index", "--find-links",
         str(args.wheelhouse), f"kakehashi-{args.tier}"], "pip install (offline, from the wheelhouse)")
    version = run([str(release / "bin" / "python"), "-c",
                   f"import importlib.metadata as m; print(m.version('kakehashi-{args.tier}'))"], "version").strip()

    # Stopped before the backup: nothing is written between the backup and the switch, so a rollback
    # loses nothing that was written before the upgrade.
    service("stop", args.service)
    backup_args = argparse.Namespace(tier=args.tier, config=args.config, to=args.backup_dir, key=args.key,
                                     keep=0, user=args.user, bin=previous / "bin", include=args.include,
                                     verify=True)
    archive = backup(backup_args)["archive"]
    state = {"tier": args.tier, "previous": str(previous), "release": str(release), "version": version,
             "backup": str(archive), "at": datetime.now(UTC).isoformat()}
    _state_file(args.prefix, args.tier).write_text(json.dumps(state, indent=2))
    try:
        _switch(current_link, release)
        if args.tier == "lgwan":   # forward-only migrations, each in its own transaction
            out = run(as_user([str(release / "bin" / CLI["lgwan"]), "--config", str(args.config), "migrate"],
                              args.user), "migrate")
            log("upgrade.migrated", result=out.strip())
        service("start", args.service)
        wait_healthy(args.health_url, cafile=args.cafile)
    except OpsError as exc:
        log("upgrade.failed", error=str(exc))
        if args.no_rollback:
            raise
        rollback(argparse.Namespace(**{**vars(args), "force_wipe": False}))
        raise OpsError(f"upgrade to {version} failed and was rolled back: {exc}") from exc
    log("upgrade.done", version=version, release=release, previous=previous)
    return state


def _switch(link: Path, target: Path) -> None:
    tmp = link.with_name(link.name + ".switch")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(target)
    os.replace(tmp, link)                    # atomic: the unit's ExecStart path never dangles
    log("release.switch", link=link, target=target)


def rollback(args: argparse.Namespace) -> dict[str, Any]:
    check_owner(args)
    state_path = _state_file(args.prefix, args.tier)
    if not state_path.exists():
        raise OpsError(f"no upgrade to roll back ({state_path} missing)")
    state = json.loads(state_path.read_text())
    service("stop", args.service)
    _switch(args.prefix / args.tier, Path(state["previous"]))
    previous_bin = Path(state["previous"]) / "bin"
    if args.tier == "lgwan":
        restore(argparse.Namespace(tier="lgwan", archive=Path(state["backup"]), config=args.config, key=args.key,
                                   user=args.user, bin=previous_bin, service=None, health_url=None, cafile=None,
                                   with_config=False, force_wipe=False))
    else:
        # The relay's schema may be newer than the old code: wipe; LGWAN rebuilds it at the next link.
        wipe = [str(previous_bin / CLI["relay"]), "--config", str(args.config), "wipe", "--yes"]
        if args.force_wipe:
            wipe.append("--force")
        run(as_user(wipe, args.user), "kakehashi-relay wipe")
    service("start", args.service)
    wait_healthy(args.health_url, cafile=args.cafile)
    state_path.rename(state_path.with_name(state_path.name + f".rolled-back-{stamp()}"))
    log("rollback.done", release=state["previous"], backup=state["backup"])
    return {"rolled_back_to": state["previous"], "restored": state["backup"]}


# --- command line -------------------------------------------------------------------------------------------

def keygen(args: argparse.Namespace) -> dict[str, Any]:
    if args.key.exists():
        raise OpsError(f"{args.key} exists; a new key cannot read old archives — keep it")
    fd = os.open(args.key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.b64encode(os.urandom(32)).decode() + "\n")
    return {"key": str(args.key), "key_id": key_id(read_key(args.key))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kakehashi_ops.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    here_bin = Path(sys.executable).parent

    def common(p: argparse.ArgumentParser, tier: bool = True) -> None:
        if tier:
            p.add_argument("tier", choices=TIERS)
            p.add_argument("--config", type=Path, required=True, help="the tier's TOML configuration")
        p.add_argument("--key", type=Path, required=True, help="backup key file (keygen)")
        p.add_argument("--bin", type=Path, default=here_bin, help="the tier's bin/ (default: this Python's)")
        p.add_argument("--user", help="run tier commands as this service user (when run as root)")

    def service_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument("--service", help="systemd unit to stop before and start after (e.g. kakehashi-lgwan)")
        p.add_argument("--health-url", help="wait until this /healthz reports status ok")
        p.add_argument("--cafile", help="CA or pinned certificate for an https --health-url")

    p = sub.add_parser("keygen", help="create a backup key")
    p.add_argument("--key", type=Path, required=True)
    p.set_defaults(func=keygen)

    p = sub.add_parser("backup", help="back up and encrypt")
    common(p)
    p.add_argument("--to", type=Path, required=True, help="folder for the archives")
    p.add_argument("--keep", type=int, default=14, help="archives of this tier to keep (0 = all)")
    p.add_argument("--include", action="append", help="relay: a further file or folder to keep (TLS, nft site)")
    p.add_argument("--no-verify", dest="verify", action="store_false", help="skip the read-back check")
    p.set_defaults(func=backup)

    p = sub.add_parser("verify", help="decrypt and check an archive without restoring it")
    p.add_argument("archive", type=Path)
    p.add_argument("--key", type=Path, required=True)
    p.set_defaults(func=lambda a: verify_archive(a.archive, read_key(a.key)))

    p = sub.add_parser("restore", help="decrypt and restore (stops and starts --service)")
    common(p)
    service_opts(p)
    p.add_argument("archive", type=Path)
    p.add_argument("--with-config", action="store_true", help="relay: also put the configuration file back")
    p.add_argument("--force-wipe", action="store_true",
                   help="relay: wipe even if guest posts have not reached LGWAN yet (they are lost)")
    p.set_defaults(func=restore)

    for name, func in (("upgrade", upgrade), ("rollback", rollback)):
        p = sub.add_parser(name)
        common(p)
        service_opts(p)
        p.add_argument("--prefix", type=Path, default=Path("/opt/kakehashi"),
                       help="where releases live; PREFIX/<tier> is a symlink to the current one")
        p.add_argument("--backup-dir", type=Path, default=None, help="where the pre-upgrade backup goes")
        p.add_argument("--include", action="append", help="relay: further files for the pre-upgrade backup")
        p.add_argument("--force-wipe", action="store_true", help=argparse.SUPPRESS)
        if name == "upgrade":
            p.add_argument("--wheelhouse", type=Path, required=True, help="folder from make-wheelhouse.sh")
            p.add_argument("--python", default=sys.executable, help="interpreter for the new virtual environment")
            p.add_argument("--no-rollback", action="store_true", help="leave a failed upgrade in place")
        p.set_defaults(func=func)

    args = parser.parse_args(argv)
    if getattr(args, "backup_dir", "unset") is None:
        args.backup_dir = Path(f"/var/backups/kakehashi-{args.tier}")
    try:
        result = args.func(args)
    except OpsError as exc:
        log("error", message=str(exc))
        print(f"kakehashi-ops: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
