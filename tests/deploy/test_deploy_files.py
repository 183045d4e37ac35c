"""deploy/ is tested like the docs (handbook rule 14): the production configs load with the tiers'
own loaders, the units are valid and sandboxed, and configs, units, nginx and nftables agree on ports
and paths. The admin guides and deploy/README.md say what acceptance statements 18, 22 and 25 and
rule 14 ask them to say."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from deploy_lab import DEPLOY, REPO

from internet_relay.config import load_config as load_relay
from lgwan_server.config import load_config as load_lgwan

UNITS = sorted(DEPLOY.glob("*/systemd/*.service"))
SERVICE_UNITS = {"kakehashi-lgwan.service", "kakehashi-relay.service"}


def unit_values(path: Path, key: str) -> list[str]:
    text = path.read_text().replace("\\\n", " ")
    return [m.group(1).strip() for m in re.finditer(rf"^{key}=(.*)$", text, flags=re.M)]


def test_production_configs_load_and_sit_behind_nginx() -> None:
    lgwan = load_lgwan(DEPLOY / "lgwan" / "lgwan_server.toml")
    assert (lgwan.server.host, lgwan.server.port) == ("127.0.0.1", 8440)
    assert lgwan.server.behind_tls_proxy and lgwan.server.trusted_proxies == ("127.0.0.1",)
    assert lgwan.bridge.enabled and lgwan.bridge.relay_url.startswith("wss://") and ":8451/" in lgwan.bridge.relay_url
    assert lgwan.storage.data_dir == Path("/var/lib/kakehashi-lgwan")
    # every key the LGWAN tier holds is inside data_dir, so `backup` carries it
    assert lgwan.bridge.keys_dir is not None and lgwan.bridge.keys_dir.is_relative_to(lgwan.storage.data_dir)
    assert lgwan.records_key_dir.is_relative_to(lgwan.storage.data_dir)

    relay = load_relay(DEPLOY / "relay" / "internet_relay.toml")
    assert (relay.web.host, relay.web.port, relay.queue.host, relay.queue.port) == ("127.0.0.1", 8450, "127.0.0.1", 8451)
    assert relay.web.behind_tls_proxy and relay.storage_dir == Path("/var/lib/kakehashi-relay")


def test_units_point_at_the_configs_and_write_only_the_data_directory() -> None:
    lgwan_unit = DEPLOY / "lgwan" / "systemd" / "kakehashi-lgwan.service"
    relay_unit = DEPLOY / "relay" / "systemd" / "kakehashi-relay.service"
    assert "--config /etc/kakehashi/lgwan_server.toml" in unit_values(lgwan_unit, "ExecStart")[0]
    assert "--config /etc/kakehashi/internet_relay.toml" in unit_values(relay_unit, "ExecStart")[0]
    assert unit_values(lgwan_unit, "ReadWritePaths") == ["/var/lib/kakehashi-lgwan"]
    assert unit_values(relay_unit, "ReadWritePaths") == ["/var/lib/kakehashi-relay"]
    for unit in UNITS:
        for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("PrivateTmp", "yes"),
                           ("ProtectHome", "yes"), ("SystemCallArchitectures", "native")):
            assert unit_values(unit, key) == [value], f"{unit.name}: {key}"
        assert unit_values(unit, "RestrictAddressFamilies"), unit.name
        assert unit_values(unit, "SystemCallFilter")[0] == "@system-service", unit.name
        assert unit_values(unit, "ReadWritePaths"), unit.name
        if unit.name not in SERVICE_UNITS:          # backups and the sanitizer need no network at all
            assert unit_values(unit, "PrivateNetwork") == ["yes"], unit.name
            assert unit_values(unit, "RestrictAddressFamilies") == ["AF_UNIX"], unit.name
        else:
            assert unit_values(unit, "IPAddressDeny") == ["any"] and unit_values(unit, "IPAddressAllow") == ["localhost"]
    sanitizer = DEPLOY / "sanitizer" / "systemd" / "kakehashi-sanitizer.service"
    assert unit_values(sanitizer, "User") == ["kakehashi-sanitizer"]
    assert unit_values(sanitizer, "RestrictNamespaces") == ["user net"]      # each parsing child: its own netns
    socket = "/run/kakehashi-sanitizer/sanitizer.sock"
    assert f"--socket {socket}" in unit_values(sanitizer, "ExecStart")[0]
    # both tiers' production configs point at that socket
    assert load_lgwan(DEPLOY / "lgwan" / "lgwan_server.toml").bridge.sanitizer_socket == Path(socket)
    assert load_relay(DEPLOY / "relay" / "internet_relay.toml").sanitizer.socket == Path(socket)


def test_units_verify_and_score_well_with_systemd_analyze(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    stub = tmp_path / "opt" / "kakehashi"
    for tier in ("lgwan", "relay", "sanitizer"):
        (stub / tier / "bin").mkdir(parents=True)
        for name in ("python", f"kakehashi-{tier}", "kakehashi-sanitize"):
            (stub / tier / "bin" / name).write_text("#!/bin/sh\n")
            (stub / tier / "bin" / name).chmod(0o755)
    for unit in sorted(DEPLOY.glob("*/systemd/*.service")) + sorted(DEPLOY.glob("*/systemd/*.timer")) + \
            sorted(DEPLOY.glob("*/systemd/*.path")):
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace("/opt/kakehashi/", f"{stub}/"))
        out = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
        problems = [line for line in (out.stdout + out.stderr).splitlines()
                    if "not found" not in line or "Unit " not in line]   # a timer's unit is a sibling file
        assert out.returncode == 0 and problems == [], f"{unit.name}:\n{out.stdout}{out.stderr}"
        if unit.suffix != ".service":
            continue
        security = subprocess.run(["systemd-analyze", "security", "--offline=true", str(copy)],
                                  capture_output=True, text=True, timeout=60)
        level = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout)
        assert level, security.stdout + security.stderr
        assert float(level.group(1)) <= 2.0, f"{unit.name} exposure {level.group(1)}"


def test_nginx_nftables_and_configs_agree_on_ports() -> None:
    lgwan_site = (DEPLOY / "lgwan" / "nginx" / "kakehashi-lgwan.conf").read_text()
    relay_site = (DEPLOY / "relay" / "nginx" / "kakehashi-relay.conf").read_text()
    assert "server 127.0.0.1:8440;" in lgwan_site and "listen 443 ssl;" in lgwan_site
    assert "server 127.0.0.1:8450;" in relay_site and "server 127.0.0.1:8451;" in relay_site
    assert re.search(r"listen [0-9.]+:8451 ssl;", relay_site), "the queue listener must name the relay's address"
    lgwan_nft = (DEPLOY / "lgwan" / "nftables" / "kakehashi-lgwan.nft").read_text()
    relay_nft = (DEPLOY / "relay" / "nftables" / "kakehashi-relay.nft").read_text()
    assert "ip saddr @staff_nets tcp dport 443 ct state new accept" in lgwan_nft
    assert "ip daddr @relay_queue tcp dport 8451 ct state new accept" in lgwan_nft
    assert "ip saddr @lgwan_servers tcp dport 8451 ct state new accept" in relay_nft
    assert "ip daddr @lgwan_segment ct state new jump refuse_to_lgwan" in relay_nft
    for text in (lgwan_nft, relay_nft):
        rules = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
        assert "policy drop;" in rules and rules.count("limit rate 10/second") >= 2
        assert "8440" not in rules and "8450" not in rules     # the tiers' own ports are loopback-only


def test_deploy_readme_lists_the_three_trust_boundaries() -> None:
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    for boundary in ("LGWAN↔relay", "upload→sanitizer", "guest→relay"):
        assert boundary in readme, boundary


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_admin_guide_covers_what_it_must(lang: str) -> None:
    guide = (REPO / "docs" / f"admin-guide.{lang}.md").read_text(encoding="utf-8")
    # the port matrix: every allowed flow
    for port in ("443", "8451", "8440", "8450"):
        assert port in guide
    # every data store with its location (acceptance statement 18)
    for location in ("/var/lib/kakehashi-lgwan/lgwan.sqlite3", "/var/lib/kakehashi-lgwan/files/",
                     "/var/lib/kakehashi-lgwan/keys/", "/var/lib/kakehashi-relay/relay.sqlite3",
                     "/var/lib/kakehashi-relay/keys/", "/var/backups/kakehashi-lgwan/", "/var/backups/kakehashi-relay/",
                     "/etc/kakehashi/backup.key", "/var/lib/kakehashi-sanitizer/", "journald"):
        assert location in guide, location
    # RPO/RTO (22), the conformity table referencing every acceptance statement (25)
    assert "RPO" in guide and "RTO" in guide
    for n in range(1, 26):
        assert re.search(rf"(?<![0-9.])AS{n}(?![0-9])", guide), f"acceptance statement {n} is not referenced"
    for needed in ("EDR", "CISO", "mermaid"):
        assert needed in guide
    assert ("セキュリティクラウド" in guide) if lang == "ja" else ("security cloud" in guide.lower())
