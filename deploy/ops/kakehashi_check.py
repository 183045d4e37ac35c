#!/usr/bin/env python3
"""kakehashi-check: monitoring checks for Kakehashi, in the Nagios/Zabbix plugin convention.

Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; one line "KAKEHASHI <CHECK> <STATE> - text | perfdata".
Standard library only (any python3 on the host can run it); it reads, never writes.

  health URL        /healthz of either tier: link connected, paused, queue depth and lag
  logins DB         failed or refused logins in a time window (LGWAN audit_log or relay audit)
  events DB         any listed security event in a window (refused envelopes, link auth failures, …)
  sanitizer DB      uploads the sanitizer refused (by code) and its outages, from the relay's audit
  backup DIR        age of the newest encrypted archive (is the backup timer running?)
  counter T C       an nftables counter that must stay 0 (e.g. kakehashi_relay to_lgwan)

See docs/admin-guide.en.md, "Monitoring", for the thresholds and what to do on each alert.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import ssl
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
RANK = {OK: 0, WARNING: 1, UNKNOWN: 2, CRITICAL: 3}       # the worst finding decides
SECURITY_EVENTS = ("queue.envelope_rejected", "bridge.link_auth_failed", "bridge.envelope_rejected",
                   "bridge.envelope_refused", "bridge.replay")


def duration(text: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 15m, 26h)")
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def grade(value: float, warn: float | None, crit: float | None) -> int:
    if crit is not None and value >= crit:
        return CRITICAL
    if warn is not None and value >= warn:
        return WARNING
    return OK


class Result:
    def __init__(self, check: str) -> None:
        self.check, self.state = check, OK
        self.text: list[str] = []
        self.perf: list[str] = []

    def add(self, state: int, text: str) -> None:
        if RANK[state] > RANK[self.state]:
            self.state = state
        self.text.append(text)

    def metric(self, name: str, value: float, warn: float | None = None, crit: float | None = None) -> None:
        self.perf.append(f"{name}={value:g};{'' if warn is None else f'{warn:g}'};{'' if crit is None else f'{crit:g}'}")

    def finish(self) -> int:
        line = f"KAKEHASHI {self.check.upper()} {NAMES[self.state]} - {'; '.join(self.text) or 'ok'}"
        print(line + (" | " + " ".join(self.perf) if self.perf else ""))
        return self.state


def since_iso(window: float) -> str:
    moment = datetime.now(UTC) - timedelta(seconds=window)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")   # the tiers' storage format


def open_ro(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)


def audit_table(conn: sqlite3.Connection) -> str:
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "audit_log" in names:
        return "audit_log"        # LGWAN server
    if "audit" in names:
        return "audit"            # relay
    raise LookupError("no audit table in this database")


# --- checks --------------------------------------------------------------------------------------------

def check_health(args: argparse.Namespace) -> int:
    result = Result("health")
    context = ssl.create_default_context(cafile=args.cafile) if args.url.startswith("https") else None
    try:
        with urllib.request.urlopen(args.url, timeout=args.timeout, context=context) as resp:  # noqa: S310
            body: dict[str, Any] = json.loads(resp.read())
    except (OSError, ValueError) as exc:
        result.add(CRITICAL, f"{args.url} does not answer: {exc}")
        return result.finish()
    if body.get("status") != "ok":
        result.add(CRITICAL, f"status {body.get('status')!r}")
    link = body.get("bridge") if "bridge" in body else body.get("link")
    tier = body.get("tier", "?")
    result.add(OK, f"tier {tier}, schema {body.get('schema_version', '-')}")
    if isinstance(link, dict) and link.get("enabled", True):
        if link.get("paused"):
            result.add(WARNING, "link paused by an admin (緊急遮断)")
        elif not link.get("connected"):
            result.add(CRITICAL if args.require_link else WARNING,
                       f"link down (last error: {link.get('last_error') or '-'})")
        out = link.get("outbound", {})
        depth, lag = float(out.get("depth", 0)), float(out.get("lag_seconds", 0))
        result.add(grade(depth, args.warn_depth, args.crit_depth), f"queue depth {depth:g}")
        result.add(grade(lag, args.warn_lag, args.crit_lag), f"lag {lag:g}s")
        result.metric("depth", depth, args.warn_depth, args.crit_depth)
        result.metric("lag_seconds", lag, args.warn_lag, args.crit_lag)
        result.metric("connected", 1 if link.get("connected") else 0)
    if "websockets" in body:
        result.metric("websockets", float(body["websockets"]))
    return result.finish()


def _count_events(db: Path, actions: list[str], outcomes: list[str] | None, window: float) -> int:
    conn = open_ro(db)
    try:
        table = audit_table(conn)
        sql = f"SELECT count(*) FROM {table} WHERE at >= ? AND action IN ({','.join('?' * len(actions))})"  # noqa: S608
        params: list[Any] = [since_iso(window), *actions]
        if outcomes:
            sql += f" AND outcome IN ({','.join('?' * len(outcomes))})"
            params += outcomes
        return int(conn.execute(sql, params).fetchone()[0])
    finally:
        conn.close()


def check_logins(args: argparse.Namespace) -> int:
    result = Result("logins")
    try:
        failed = _count_events(args.db, ["auth.login"], ["failed", "denied"], args.window)
        ok = _count_events(args.db, ["auth.login"], ["ok"], args.window)
    except (sqlite3.Error, LookupError) as exc:
        result.add(UNKNOWN, f"{args.db}: {exc}")
        return result.finish()
    result.add(grade(failed, args.warn, args.crit), f"{failed} failed or refused and {ok} successful logins "
                                                   f"in the last {args.window / 60:g} min")
    result.metric("failed", failed, args.warn, args.crit)
    result.metric("ok", ok)
    return result.finish()


def check_events(args: argparse.Namespace) -> int:
    result = Result("events")
    actions = args.action or list(SECURITY_EVENTS)
    try:
        count = _count_events(args.db, actions, None, args.window)
    except (sqlite3.Error, LookupError) as exc:
        result.add(UNKNOWN, f"{args.db}: {exc}")
        return result.finish()
    result.add(grade(count, args.warn, args.crit), f"{count} of {', '.join(actions)} in the last "
                                                  f"{args.window / 60:g} min")
    result.metric("events", count, args.warn, args.crit)
    return result.finish()


def check_sanitizer(args: argparse.Namespace) -> int:
    """From the relay's audit: uploads the sanitizer refused (by code), and times it was unreachable."""
    result = Result("sanitizer")
    try:
        conn = open_ro(args.db)
        try:
            table = audit_table(conn)
            rows = conn.execute(f"SELECT action, detail FROM {table} WHERE at >= ? AND action IN "  # noqa: S608
                                "('file.upload', 'file.refused', 'file.sanitizer_unavailable')",
                                (since_iso(args.window),)).fetchall()
        finally:
            conn.close()
    except (sqlite3.Error, LookupError) as exc:
        result.add(UNKNOWN, f"{args.db}: {exc}")
        return result.finish()
    codes: dict[str, int] = {}
    for action, detail in rows:
        if action == "file.refused":
            try:
                code = str(json.loads(detail or "{}").get("code"))
            except ValueError:
                code = "?"
            codes[code] = codes.get(code, 0) + 1
    refused = sum(codes.values())
    rebuilt = sum(1 for action, _ in rows if action == "file.upload")
    unavailable = sum(1 for action, _ in rows if action == "file.sanitizer_unavailable")
    window = f"in the last {args.window / 60:g} min"
    detail = ", ".join(f"{c}×{n}" for c, n in sorted(codes.items()))
    result.add(grade(refused, args.warn, args.crit),
               f"{refused} uploads refused, {rebuilt} rebuilt {window}" + (f" ({detail})" if detail else ""))
    if unavailable:
        result.add(CRITICAL, f"the sanitizer service was unreachable {unavailable} times {window}")
    result.metric("refused", refused, args.warn, args.crit)
    result.metric("rebuilt", rebuilt)
    result.metric("unavailable", unavailable, None, 1)
    return result.finish()


def check_backup(args: argparse.Namespace) -> int:
    result = Result("backup")
    archives = sorted(args.dir.glob(f"kakehashi-{args.tier}-*.kkbackup"), key=lambda p: p.stat().st_mtime)
    if not archives:
        result.add(CRITICAL, f"no {args.tier} archive in {args.dir}")
        return result.finish()
    age = time.time() - archives[-1].stat().st_mtime
    result.add(grade(age, args.max_age * 0.9, args.max_age), f"newest {archives[-1].name}, {age / 3600:.1f} h old, "
                                                            f"{archives[-1].stat().st_size} bytes")
    result.metric("age_seconds", round(age), None, args.max_age)
    return result.finish()


def check_counter(args: argparse.Namespace) -> int:
    result = Result("counter")
    out = subprocess.run(["nft", "-j", "list", "counter", "inet", args.table, args.counter],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        result.add(UNKNOWN, f"nft: {out.stderr.strip()}")
        return result.finish()
    entry = next(e["counter"] for e in json.loads(out.stdout)["nftables"] if "counter" in e)
    packets = float(entry["packets"])
    result.add(grade(packets, None, args.crit), f"{args.table} {args.counter}: {packets:g} packets "
                                               "(reset after review: nft reset counter inet TABLE NAME)")
    result.metric("packets", packets, None, args.crit)
    return result.finish()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kakehashi_check.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="check", required=True)

    p = sub.add_parser("health")
    p.add_argument("url")
    p.add_argument("--cafile")
    p.add_argument("--timeout", type=float, default=10)
    p.add_argument("--require-link", action="store_true", help="link down is CRITICAL, not WARNING")
    p.add_argument("--warn-depth", type=float, default=100)
    p.add_argument("--crit-depth", type=float, default=1000)
    p.add_argument("--warn-lag", type=float, default=60)
    p.add_argument("--crit-lag", type=float, default=600)
    p.set_defaults(func=check_health)

    p = sub.add_parser("logins")
    p.add_argument("db", type=Path)
    p.add_argument("--window", type=duration, default=duration("15m"))
    p.add_argument("--warn", type=float, default=20)
    p.add_argument("--crit", type=float, default=100)
    p.set_defaults(func=check_logins)

    p = sub.add_parser("events")
    p.add_argument("db", type=Path)
    p.add_argument("--action", action="append", help=f"default: {', '.join(SECURITY_EVENTS)}")
    p.add_argument("--window", type=duration, default=duration("1h"))
    p.add_argument("--warn", type=float, default=None)
    p.add_argument("--crit", type=float, default=1)
    p.set_defaults(func=check_events)

    p = sub.add_parser("sanitizer")
    p.add_argument("db", type=Path, help="the relay's database (its audit records every upload verdict)")
    p.add_argument("--window", type=duration, default=duration("1h"))
    p.add_argument("--warn", type=float, default=1)
    p.add_argument("--crit", type=float, default=20)
    p.set_defaults(func=check_sanitizer)

    p = sub.add_parser("backup")
    p.add_argument("dir", type=Path)
    p.add_argument("--tier", choices=("lgwan", "relay"), default="lgwan")
    p.add_argument("--max-age", type=duration, default=duration("26h"))
    p.set_defaults(func=check_backup)

    p = sub.add_parser("counter")
    p.add_argument("table")
    p.add_argument("counter")
    p.add_argument("--crit", type=float, default=1)
    p.set_defaults(func=check_counter)

    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except Exception as exc:  # noqa: BLE001 - a monitoring plugin answers UNKNOWN, never a traceback
        print(f"KAKEHASHI {args.check.upper()} UNKNOWN - {type(exc).__name__}: {exc}")
        return UNKNOWN


if __name__ == "__main__":
    sys.exit(main())
