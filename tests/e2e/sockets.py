"""What sockets a process holds, from /proc (no psutil): the relay must never dial out.

Every TCP socket of the relay must be a listening socket or a connection *accepted* on one of its
two ports (web, queue): a connection it had opened itself would have an ephemeral local port. And
none may have the LGWAN server's listening address as its remote end.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from dataclasses import dataclass

from .harness import HOST, TwoTiers


@dataclass(frozen=True)
class TcpSocket:
    local: tuple[str, int]
    remote: tuple[str, int]
    state: str      # hex state from /proc/net/tcp: 0A = LISTEN, 01 = ESTABLISHED


def _address(text: str) -> tuple[str, int]:
    host, port = text.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        ip = socket.inet_ntop(socket.AF_INET, struct.pack("<I", int(host, 16)))
    else:   # IPv6: four little-endian 32-bit words
        ip = socket.inet_ntop(socket.AF_INET6, b"".join(struct.pack("<I", int(host[i:i + 8], 16))
                                                         for i in range(0, 32, 8)))
    return ip, int(port, 16)


def tcp_sockets(pid: int) -> list[TcpSocket]:
    """TCP sockets whose descriptors ``pid`` holds (IPv4 and IPv6)."""
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as fh:
                next(fh)
                for line in fh:
                    fields = line.split()
                    if fields[9] in inodes:
                        found.append(TcpSocket(_address(fields[1]), _address(fields[2]), fields[3]))
        except FileNotFoundError:
            continue
    return found


def check_relay_sockets(tiers: TwoTiers) -> list[TcpSocket]:
    """Raise AssertionError if the relay holds a socket it could only have opened itself."""
    own_ports = {tiers.ports.relay_web, tiers.ports.relay_queue}
    sockets = tcp_sockets(tiers.relay.pid)
    for s in sockets:
        assert s.remote != (HOST, tiers.ports.lgwan), f"relay holds a socket to the LGWAN server: {s}"
        assert s.local[1] in own_ports, f"relay holds a socket it did not accept on its own ports: {s}"
    return sockets


async def assert_relay_never_dials(tiers: TwoTiers, until: asyncio.Task[object], interval: float = 0.2) -> int:
    """Sample the relay's sockets until ``until`` finishes; returns how many samples saw a live link."""
    with_link = 0
    while not until.done():
        if tiers.relay.alive():
            try:
                sockets = check_relay_sockets(tiers)
            except (FileNotFoundError, ProcessLookupError):   # killed between alive() and the read
                sockets = []
            if any(s.local[1] == tiers.ports.relay_queue and s.state == "01" for s in sockets):
                with_link += 1
        await asyncio.sleep(interval)
    return with_link
