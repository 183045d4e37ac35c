"""The port matrix, proved on a network of namespaces (issue 8; acceptance statements 1 and 2).

``scripts/netns-lab.sh`` builds an LGWAN segment (LGWAN server, staff terminal), an internet segment
(relay, guest) and an unfiltering router between them, and loads the host rule sets from deploy/ into
the LGWAN server's and the relay's namespaces. Both tiers then run in their namespaces from the
production configs in deploy/ (adapted: lab addresses, TLS served by the tiers themselves with a
certificate made here, keys exchanged through ``kakehashi-keys`` by fingerprint), and agents in each
namespace act as the staff terminal, the guest, the relay host and the LGWAN host.

Proved here:
* the link comes up through both firewalls (LGWAN → relay queue port 8451, TLS, pinned);
* a guest on the internet and staff on an LGWAN terminal chat both ways, end to end;
* the relay cannot open a TCP connection into LGWAN: its own rule set refuses it (counted, logged), and
  with the relay's rule set removed — a compromised relay — the LGWAN server's rule set drops it
  (counted, logged);
* from the LGWAN server nothing is reachable but the relay's queue port: not the relay's web port, not
  the guest host (each target is shown reachable from elsewhere, so the failure is the rule set's);
* guests reach only the relay's web port; the host's own interfaces, routes and rule set are untouched.

Runs as root with iproute2 and nftables (CI: ``bash .ci/run``); elsewhere it skips and says why.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from deploy_lab import DEPLOY, REPO, Agent, Proc, adapt_config, exchange_keys, run, self_signed, wait_until

LAB = REPO / "scripts" / "netns-lab.sh"
LAB_ID = f"t{os.getpid() % 100000}"
ROLES = ("gw", "lgwan", "term", "relay", "guest")
GUEST_PROBE_PORT = 8080


def ns(role: str) -> str:
    return f"kk-{LAB_ID}-{role}"


def preflight() -> str | None:
    """Why the lab cannot run here, or None."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "needs root to create network namespaces and load nftables rules (CI runs as root)"
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian package {package})"
    probe = ns("probe")
    made = run(["ip", "netns", "add", probe])
    if made.returncode != 0:
        return f"cannot create a network namespace here: {made.stderr.strip()}"
    try:
        table = run(["ip", "netns", "exec", probe, "nft", "add", "table", "inet", "kakehashi_probe"])
        if table.returncode != 0:
            return f"nftables does not work inside a network namespace here: {table.stderr.strip()}"
    finally:
        run(["ip", "netns", "del", probe])
    return None


def host_state() -> dict[str, str]:
    """The host namespace's interfaces, routes and rule set: the lab must not change any of them."""
    return {"links": run(["ip", "-o", "link", "show"]).stdout,
            "routes": run(["ip", "route", "show", "table", "all"]).stdout,
            "ruleset": run(["nft", "list", "ruleset"]).stdout}


def counter(role: str, table: str, name: str) -> int:
    out = run(["ip", "netns", "exec", ns(role), "nft", "-j", "list", "counter", "inet", table, name], check=True)
    entries = [e["counter"] for e in json.loads(out.stdout)["nftables"] if "counter" in e]
    return int(entries[0]["packets"])


@dataclass
class Lab:
    root: Path
    addr: dict[str, str]
    cert: Path
    seed: Any = None
    tiers: list[Proc] = field(default_factory=list)
    agents: dict[str, Agent] = field(default_factory=dict)

    @property
    def lgwan_url(self) -> str:
        return f"https://{self.addr['LGWAN']}"

    @property
    def relay_url(self) -> str:
        return f"https://{self.addr['RELAY']}"

    def agent(self, role: str) -> Agent:
        if role not in self.agents:
            self.agents[role] = Agent(ns(role), self.root / f"agent-{role}.log")
        return self.agents[role]

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.tail()}" for p in self.tiers)


def start_tiers(lab: Lab) -> None:
    root, a = lab.root, lab.addr
    lgwan_keys, relay_keys = root / "keys-lgwan", root / "keys-relay"
    exchange_keys([sys.executable, "-m", "shared.keys"], lgwan_keys, relay_keys)
    tls = {"tls_cert": str(lab.cert), "tls_key": str(lab.cert.with_name("lab-key.pem"))}
    lgwan_cfg = adapt_config(DEPLOY / "lgwan" / "lgwan_server.toml", root / "lgwan.toml", {
        # The lab has no nginx: the tier serves TLS itself on the address and port nginx would hold.
        "server": {"host": a["LGWAN"], "port": 443, "port_file": "lgwan.port", "public_origin": lab.lgwan_url,
                   "behind_tls_proxy": False, "trusted_proxies": [], **tls},
        "storage": {"data_dir": str(root / "lgwan-data")},
        # No sanitizer service in the lab: files are not part of this test (uploads off on the relay).
        "bridge": {"relay_url": f"wss://{a['RELAY']}:8451/queue", "relay_public_url": lab.relay_url,
                   "keys_dir": str(lgwan_keys), "ca_file": str(lab.cert), "max_backoff": "1s",
                   "sanitizer_socket": "", "sanitizer_keys_dir": ""},
    })
    relay_cfg = adapt_config(DEPLOY / "relay" / "internet_relay.toml", root / "relay.toml", {
        "web": {"host": a["RELAY"], "port": 443, "port_file": "relay-web.port", "public_origin": lab.relay_url,
                "behind_tls_proxy": False, "trusted_proxies": [], **tls},
        "queue": {"host": a["RELAY"], "port": 8451, "port_file": "relay-queue.port", "keys_dir": str(relay_keys),
                  **tls},
        "storage": {"data_dir": str(root / "relay-data")},
        "sanitizer": {"socket": ""},
    })
    from e2e.harness import seed_lgwan  # the same organisation, staff and rooms as the e2e tests

    lab.seed = asyncio.run(seed_lgwan(lgwan_cfg))
    relay = Proc("relay", ["ip", "netns", "exec", ns("relay"), sys.executable, "-m", "internet_relay",
                           "--config", relay_cfg], root, [root / "relay-web.port", root / "relay-queue.port"])
    lgwan = Proc("lgwan", ["ip", "netns", "exec", ns("lgwan"), sys.executable, "-m", "lgwan_server",
                           "--config", lgwan_cfg], root, [root / "lgwan.port"])
    lab.tiers += [relay, lgwan]
    relay.start()
    lgwan.start()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    reason = preflight()
    if reason:
        pytest.skip(f"namespace lab not available: {reason}")
    before = host_state()
    root = tmp_path_factory.mktemp("netns-lab")
    up = run(["bash", LAB, "up", LAB_ID])
    lab = None
    try:
        assert up.returncode == 0, f"netns-lab.sh up failed:\n{up.stdout}\n{up.stderr}"
        addr = dict(line.split("=", 1) for line in up.stdout.splitlines() if "=" in line)
        cert, _ = self_signed(root, [addr["LGWAN"], addr["RELAY"]], "lab")
        lab = Lab(root, addr, cert)
        start_tiers(lab)
        term = lab.agent("term")

        def linked() -> bool:
            health = term.rpc("get", url=f"{lab.lgwan_url}/healthz", ca=str(cert))
            return bool(health.get("ok") and health["body"].get("bridge", {}).get("connected"))

        try:
            wait_until(linked, "the LGWAN server's link to the relay", timeout=60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{lab.logs()}") from None
        assert host_state() == before, "the lab changed the host's interfaces, routes or rule set"
        yield lab
    finally:
        # Runs on failure too. Problems found here are raised below only if nothing else failed first.
        if lab is not None:
            for agent in lab.agents.values():
                agent.close()
            for tier in lab.tiers:
                tier.stop()
        down = run(["bash", LAB, "down", LAB_ID])
        left = [r for r in ROLES if Path(f"/run/netns/{ns(r)}").exists()]
        unchanged = host_state() == before
    assert down.returncode == 0 and not left, f"lab not cleaned up: {left}\n{down.stderr}"
    assert unchanged, "the host's interfaces, routes or rule set differ after the lab"


def test_the_link_comes_up_through_both_firewalls(lab: Lab) -> None:
    lgwan = lab.agent("lgwan")
    # The relay's queue port answers the LGWAN server (and only it; see below), over pinned TLS.
    queue = lgwan.rpc("get", url=f"https://{lab.addr['RELAY']}:8451/healthz", ca=str(lab.cert))
    assert queue["ok"], queue
    assert queue["body"]["port"] == "queue" and queue["body"]["link"]
    health = lab.agent("term").rpc("get", url=f"{lab.lgwan_url}/healthz", ca=str(lab.cert))
    assert health["body"]["bridge"]["connected"] is True
    assert health["body"]["bridge"]["outbound"]["depth"] >= 0


def test_guest_and_staff_chat_end_to_end(lab: Lab) -> None:
    term, guest = lab.agent("term"), lab.agent("guest")
    room = lab.seed.rooms["guests-room"]
    ca = str(lab.cert)
    for login in ("sato", "suzuki"):
        assert term.rpc("client", name=login, kind="staff", base=lab.lgwan_url, ca=ca)["ok"]
        assert term.rpc("staff_login", name=login, login=login)["ok"]
    invite = term.call("sato", "POST", f"/api/rooms/{room}/guests", {"display_name": "山田 太郎",
                                                                      "affiliation": "架橋病院"})
    assert invite["ok"], invite
    token, guest_id = invite["body"]["invite_token"], invite["body"]["guest"]["id"]
    assert invite["body"]["invite_url"] == f"{lab.relay_url}/enrol#{token}"

    assert guest.rpc("client", name="yamada", kind="guest", base=lab.relay_url, ca=ca)["ok"]
    wait_until(lambda: guest.call("yamada", "POST", "/api/enrol/info", {"token": token})["ok"],
               "the invitation to cross to the relay")
    enrolled = guest.rpc("guest_enrol", name="yamada", token=token, login="yamada-hosp")
    assert enrolled["ok"], enrolled
    wait_until(lambda: term.call("sato", "GET", f"/api/guests/{guest_id}")["body"].get("status") == "enrolled",
               "the enrolment to reach LGWAN")
    assert term.call("sato", "POST", f"/api/guests/{guest_id}/approve")["ok"]
    assert guest.rpc("guest_login", name="yamada")["ok"]
    wait_until(lambda: any(r["id"] == room for r in guest.call("yamada", "GET", "/api/rooms")
                           .get("body", {}).get("rooms", [])), "the approved guest's room on the relay")

    # guest (internet) → staff (LGWAN terminal)
    question = "明日の搬送は何時からですか。"
    assert guest.call("yamada", "POST", f"/api/rooms/{room}/messages", {"body": question, "client_msg_id": "lab-1"})["ok"]

    def on_lgwan(text: str) -> bool:
        page = term.call("suzuki", "GET", f"/api/rooms/{room}/messages")
        return any(m.get("body") == text for m in page["body"]["messages"])

    wait_until(lambda: on_lgwan(question), "the guest's message on the staff terminal")

    # staff (LGWAN terminal) → guest (internet)
    answer = "9時からです。受付でお名前をどうぞ。"
    assert term.call("suzuki", "POST", f"/api/rooms/{room}/messages", {"body": answer})["ok"]

    def on_relay(text: str) -> bool:
        page = guest.call("yamada", "GET", f"/api/rooms/{room}/messages")
        return any(m.get("body") == text for m in page["body"]["messages"])

    wait_until(lambda: on_relay(answer), "the staff reply on the guest's side")


def test_the_relay_cannot_connect_into_lgwan(lab: Lab) -> None:
    relay, term = lab.agent("relay"), lab.agent("term")
    lgwan_ip = lab.addr["LGWAN"]
    assert term.tcp(lgwan_ip, 443)["ok"], "control: the LGWAN server's port 443 is up for staff terminals"
    before_relay = counter("relay", "kakehashi_relay", "to_lgwan")
    before_lgwan = counter("lgwan", "kakehashi_lgwan", "from_internet_segment")
    for port in (443, 8440, 22):
        result = relay.tcp(lgwan_ip, port)
        assert not result["ok"], f"relay → LGWAN {port} connected"
    # The relay's own rule set refused every attempt (and logged it) before a SYN left the relay.
    assert counter("relay", "kakehashi_relay", "to_lgwan") >= before_relay + 3
    assert counter("lgwan", "kakehashi_lgwan", "from_internet_segment") == before_lgwan

    # A compromised relay: root there removes its rule set. The LGWAN server's own rule set still drops.
    assert run(["bash", LAB, "firewall", LAB_ID, "relay", "off"]).returncode == 0
    try:
        for port in (443, 8440):
            result = relay.tcp(lgwan_ip, port, timeout=1.5)
            assert not result["ok"], f"relay (no firewall) → LGWAN {port} connected"
        assert counter("lgwan", "kakehashi_lgwan", "from_internet_segment") >= before_lgwan + 2
    finally:
        assert run(["bash", LAB, "firewall", LAB_ID, "relay", "on"]).returncode == 0
    rules = run(["ip", "netns", "exec", ns("lgwan"), "nft", "list", "chain", "inet", "kakehashi_lgwan",
                 "drop_from_internet_segment"], check=True).stdout
    assert 'log prefix "kakehashi-lgwan DROP from-internet: "' in rules and "limit rate 10/second" in rules
    rules = run(["ip", "netns", "exec", ns("relay"), "nft", "list", "chain", "inet", "kakehashi_relay",
                 "refuse_to_lgwan"], check=True).stdout
    assert 'log prefix "kakehashi-relay REFUSE to-lgwan: "' in rules and "limit rate 10/second" in rules


def test_the_lgwan_server_reaches_only_the_relay_queue_port(lab: Lab) -> None:
    lgwan, guest, gw = lab.agent("lgwan"), lab.agent("guest"), lab.agent("gw")
    relay_ip, guest_ip = lab.addr["RELAY"], lab.addr["GUEST"]
    assert guest.rpc("listen", port=GUEST_PROBE_PORT)["ok"]
    # controls: each target is up and routed (the router has no rules)
    assert guest.tcp(relay_ip, 443)["ok"], "control: guests reach the relay's web port"
    assert gw.tcp(guest_ip, GUEST_PROBE_PORT)["ok"], "control: the guest host's port is up"

    assert lgwan.tcp(relay_ip, 8451)["ok"], "the LGWAN server reaches the relay's queue port"
    refused_before = counter("lgwan", "kakehashi_lgwan", "out_denied")
    for host, port in ((relay_ip, 443), (relay_ip, 22), (guest_ip, GUEST_PROBE_PORT), (guest_ip, 443),
                       ("10.201.1.1", 53)):
        result = lgwan.tcp(host, port)
        assert not result["ok"], f"LGWAN → {host}:{port} connected"
    assert counter("lgwan", "kakehashi_lgwan", "out_denied") >= refused_before + 5


def test_guests_reach_only_the_relay_web_port(lab: Lab) -> None:
    guest = lab.agent("guest")
    in_denied = counter("relay", "kakehashi_relay", "in_denied")
    from_internet = counter("lgwan", "kakehashi_lgwan", "from_internet_segment")
    assert guest.tcp(lab.addr["RELAY"], 443)["ok"]
    assert not guest.tcp(lab.addr["RELAY"], 8451, timeout=1.5)["ok"], "a guest reached the queue port"
    assert not guest.tcp(lab.addr["RELAY"], 22, timeout=1.5)["ok"]
    assert not guest.tcp(lab.addr["LGWAN"], 443, timeout=1.5)["ok"], "a guest reached the LGWAN server"
    assert counter("relay", "kakehashi_relay", "in_denied") >= in_denied + 2
    assert counter("lgwan", "kakehashi_lgwan", "from_internet_segment") >= from_internet + 1
