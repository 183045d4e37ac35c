"""A WebSocket load client: holds many staff connections and timestamps every delivery.

Run by bench_ws_fanout.py (one or more of these processes per phase); not meant to be run by hand.
It speaks just enough RFC 6455 over a plain asyncio.Protocol to be cheap per frame: at the target
load (100 posts/s into a 500-member room = 50,000 frames/s) a full client stack (aiohttp's
ClientWebSocketResponse, json.loads of each frame) costs more CPU than the server under test, and
on a 2-core machine the load generator would then be what is measured. What it does:

* opens the upgrade handshake with the staff cookie and an Origin header (the server checks both),
* treats the connection as ready once the first text frame (the server's ``hello``) arrives,
* for every text frame, finds ``MARKER<t_ns>`` (see _common.py) and records now − t_ns,
* answers pings with (masked) pongs so server heartbeats never close it, records close codes,
* with ``--deflate``, offers permessage-deflate as every current browser does and inflates
  compressed frames (aiohttp servers accept it by default and then deflate every frame per socket).

Control: JSON lines on stdin ``{"cmd": "status" | "report" | "quit"}``; answers are JSON lines on
stdout. The process exits on ``quit``, when stdin closes, or after ``--max-seconds`` in any case.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import sys
import time
import zlib
from array import array
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import HOST, MARKER, TIME_DIGITS, emit, raise_nofile  # noqa: E402

MLEN = len(MARKER)


class Stats:
    def __init__(self) -> None:
        self.open = 0                 # handshake done, not closed
        self.ready = 0                # ever became ready
        self.frames = 0               # text frames received
        self.marked = 0               # frames that carried a benchmark marker (deliveries)
        self.marked_bytes = 0         # payload bytes of those frames (after inflating)
        self.wire_bytes = 0           # payload bytes of all text frames as received
        self.first_rx_ns = 0
        self.last_rx_ns = 0
        self.latency_ns = array("q")  # one entry per delivery
        self.closes: Counter[str] = Counter()   # close codes sent by the server
        self.errors: Counter[str] = Counter()   # connect failures and unexpected disconnects
        self.pings = 0
        self.deflate = 0                        # connections that negotiated permessage-deflate
        self.inflated = 0                       # frames that arrived compressed
        self.sample: bytes | None = None        # the first delivered frame, kept as a size template


class WsConn(asyncio.Protocol):
    __slots__ = ("stats", "request", "member", "ready_fut", "transport", "upgraded", "buf", "is_ready",
                 "closed_by_server", "closing_by_us", "handshake", "deflate", "inflater", "reset_inflater")

    def __init__(self, stats: Stats, request: bytes, member: bool, ready_fut: asyncio.Future[str]) -> None:
        self.stats = stats
        self.request = request
        self.member = member
        self.ready_fut = ready_fut
        self.transport: asyncio.Transport | None = None
        self.upgraded = False
        self.buf = bytearray()
        self.is_ready = False
        self.closed_by_server = False
        self.closing_by_us = False
        self.handshake = bytearray()
        self.deflate = False               # permessage-deflate accepted by the server
        self.inflater: zlib._Decompress | None = None
        self.reset_inflater = False        # server_no_context_takeover: a fresh window per message

    # --- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.is_ready:
            self.stats.open -= 1
            if not self.closed_by_server and not self.closing_by_us:
                self.stats.errors["disconnected"] += 1
        if not self.ready_fut.done():
            self.ready_fut.set_result("closed_before_ready" if self.upgraded else "closed_during_handshake")

    def data_received(self, data: bytes) -> None:
        if not self.upgraded:
            self.handshake += data
            end = self.handshake.find(b"\r\n\r\n")
            if end < 0:
                if len(self.handshake) > 65536:
                    self._fail("handshake_too_long")
                return
            head = bytes(self.handshake[:end])
            rest = bytes(self.handshake[end + 4:])
            self.handshake = bytearray()
            status = head.split(b"\r\n", 1)[0].split(b" ", 2)
            if len(status) < 2 or status[1] != b"101":
                code = status[1].decode("ascii", "replace") if len(status) > 1 else "?"
                self._fail(f"http_{code}")
                return
            self.upgraded = True
            lower = head.lower()
            if b"permessage-deflate" in lower:
                self.deflate = True
                self.reset_inflater = b"server_no_context_takeover" in lower
                self.stats.deflate += 1
            if not rest:
                return
            data = rest
        buf = self.buf
        if buf:
            buf += data
            used = self._frames(buf)
            del buf[:used]
        else:
            used = self._frames(data)
            if used < len(data):
                buf += data[used:]

    # --- frames --------------------------------------------------------------------------------

    def _frames(self, data: bytes | bytearray) -> int:
        """Handle every complete frame in ``data``; return how many bytes were consumed."""
        n = len(data)
        pos = 0
        now = 0
        st = self.stats
        while n - pos >= 2:
            b1 = data[pos + 1]
            length = b1 & 0x7F
            hdr = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                hdr = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2:pos + 10], "big")
                hdr = 10
            if b1 & 0x80:            # a server must not mask its frames
                self._fail("masked_server_frame")
                return n
            start = pos + hdr
            end = start + length
            if end > n:
                break
            opcode = data[pos] & 0x0F
            if opcode <= 2:                       # text, binary or continuation
                st.frames += 1
                st.wire_bytes += length
                if data[pos] & 0x40 and self.deflate:   # RSV1: a compressed message (RFC 7692)
                    body: bytes | bytearray = self._inflate(bytes(data[start:end]))
                    bs, be = 0, len(body)
                else:
                    body, bs, be = data, start, end
                i = body.find(MARKER, bs, be)
                if i >= 0:
                    if not now:
                        now = time.time_ns()      # everything in this read arrived together
                    j = i + MLEN
                    try:
                        sent = int(body[j:j + TIME_DIGITS])
                    except ValueError:
                        st.errors["bad_marker"] += 1
                    else:
                        st.latency_ns.append(now - sent)
                        st.marked += 1
                        st.marked_bytes += be - bs
                        if not st.first_rx_ns:
                            st.first_rx_ns = now
                        st.last_rx_ns = now
                        if st.sample is None:
                            st.sample = bytes(body[bs:be])
                elif not self.is_ready:
                    self._ready()
            elif opcode == 9:                     # ping -> pong with the same payload
                st.pings += 1
                self._send(0xA, bytes(data[start:end]))
            elif opcode == 8:                     # close: remember the code, echo, hang up
                code = int.from_bytes(data[start:start + 2], "big") if length >= 2 else 1005
                st.closes[str(code)] += 1
                self.closed_by_server = True
                self._send(0x8, bytes(data[start:start + 2]))
                if self.transport is not None:
                    self.transport.close()
                return n
            pos = end
        return pos

    def _inflate(self, payload: bytes) -> bytes:
        if self.inflater is None or self.reset_inflater:
            self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        self.stats.inflated += 1
        return self.inflater.decompress(payload + b"\x00\x00\xff\xff")

    def _ready(self) -> None:
        self.is_ready = True
        self.stats.open += 1
        self.stats.ready += 1
        if not self.ready_fut.done():
            self.ready_fut.set_result("ok")

    def _send(self, opcode: int, payload: bytes) -> None:
        """A masked client frame (RFC 6455 §5.3); only small control frames are ever sent."""
        if self.transport is None or self.transport.is_closing():
            return
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
        self.transport.write(bytes((0x80 | opcode, 0x80 | len(payload))) + mask + masked)

    def _fail(self, reason: str) -> None:
        if not self.ready_fut.done():
            self.ready_fut.set_result(reason)
        else:
            self.stats.errors[reason] += 1
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self.closing_by_us = True
        self._send(0x8, (1000).to_bytes(2, "big"))
        if self.transport is not None:
            self.transport.close()


class Client:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stats = Stats()
        self.conns: list[WsConn] = []
        tokens = Path(args.tokens).read_text().splitlines() if args.tokens else []
        self.tokens = tokens
        members = Path(args.members).read_text().split() if args.members else []
        self.members = {int(x) for x in members}
        self.members_connected = 0

    def request(self, index: int) -> bytes:
        a = self.args
        path = a.path + ("?sub=1" if a.sub_query and index in self.members else "")
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}:{a.port}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13", f"Origin: http://{HOST}:{a.port}",
                 "User-Agent: kakehashi-bench"]
        if a.deflate:   # what Chrome, Edge and Firefox send
            lines.append("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
        token = self.tokens[index] if index < len(self.tokens) else ""
        if token:
            lines.append(f"Cookie: kk_session={token}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def connect_one(self, index: int, sem: asyncio.Semaphore) -> None:
        loop = asyncio.get_running_loop()
        a = self.args
        member = index in self.members
        async with sem:
            for attempt in range(a.retries + 1):
                fut: asyncio.Future[str] = loop.create_future()
                proto: WsConn | None = None
                try:
                    _, proto = await asyncio.wait_for(
                        loop.create_connection(lambda fut=fut: WsConn(self.stats, self.request(index), member, fut),
                                               HOST, a.port), a.connect_timeout)
                    result = await asyncio.wait_for(fut, a.connect_timeout)
                except (TimeoutError, OSError) as exc:
                    result = type(exc).__name__
                    if proto is not None and proto.transport is not None:
                        proto.transport.abort()
                    if attempt < a.retries:
                        await asyncio.sleep(0.5 * (attempt + 1))
                        continue
                if result == "ok":
                    assert proto is not None
                    self.conns.append(proto)
                    if member:
                        self.members_connected += 1
                else:
                    self.stats.errors[f"connect:{result}"] += 1
                return

    def status(self) -> dict[str, object]:
        st = self.stats
        return {"open": st.open, "members_open": sum(1 for c in self.conns if c.member and c.is_ready
                                                         and not c.closed_by_server
                                                         and c.transport is not None
                                                         and not c.transport.is_closing()),
                "frames": st.frames, "marked": st.marked, "last_rx_ns": st.last_rx_ns}

    def report(self) -> dict[str, object]:
        st = self.stats
        out = Path(self.args.out)
        with open(out.with_suffix(".lat"), "wb") as fh:
            st.latency_ns.tofile(fh)
        if st.sample is not None:
            out.with_suffix(".sample").write_bytes(st.sample)
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return {**self.status(), "ready": st.ready, "marked_bytes": st.marked_bytes, "wire_bytes": st.wire_bytes,
                "first_rx_ns": st.first_rx_ns, "closes": dict(st.closes), "errors": dict(st.errors),
                "pings": st.pings, "deflate_negotiated": st.deflate, "inflated": st.inflated, "cpu_s": round(ru.ru_utime + ru.ru_stime, 3), "maxrss_kib": ru.ru_maxrss,
                "latency_file": str(out.with_suffix(".lat"))}

    async def run(self) -> int:
        a = self.args
        loop = asyncio.get_running_loop()
        deadline = loop.time() + a.max_seconds
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

        started = time.monotonic()
        sem = asyncio.Semaphore(a.concurrency)
        connect = asyncio.gather(*(self.connect_one(i, sem) for i in range(a.start, a.end)))
        try:
            await asyncio.wait_for(connect, max(1.0, deadline - loop.time()))
        except TimeoutError:
            self.stats.errors["connect:phase_timeout"] += 1
        emit({"event": "connected", "ok": len(self.conns), "wanted": a.end - a.start,
              "members_connected": self.members_connected, "seconds": round(time.monotonic() - started, 2),
              "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0], "errors": dict(self.stats.errors)})

        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                emit({"event": "deadline"})
                break
            try:
                line = await asyncio.wait_for(reader.readline(), remaining)
            except TimeoutError:
                continue
            if not line:
                break                               # the harness went away
            try:
                cmd = json.loads(line).get("cmd")
            except ValueError:
                cmd = None
            if cmd == "status":
                emit({"event": "status", **self.status()})
            elif cmd == "report":
                emit({"event": "report", **self.report()})
            elif cmd == "quit":
                break
        for conn in self.conns:
            conn.close()
        await asyncio.sleep(0.2)
        emit({"event": "bye"})
        return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/api/ws")
    p.add_argument("--tokens", default="", help="file: one session token per staff index (blank = no cookie)")
    p.add_argument("--members", default="", help="file: the staff indices that are in the benchmark room")
    p.add_argument("--sub-query", action="store_true", help="append ?sub=1 for members (bare server)")
    p.add_argument("--start", type=int, required=True)
    p.add_argument("--end", type=int, required=True)
    p.add_argument("--concurrency", type=int, default=64, help="handshakes in flight")
    p.add_argument("--connect-timeout", type=float, default=60.0)
    p.add_argument("--retries", type=int, default=2, help="per connection, for TCP-level failures only")
    p.add_argument("--deflate", action="store_true", help="offer permessage-deflate like a browser")
    p.add_argument("--out", required=True, help="path prefix for the latency dump and the sample frame")
    p.add_argument("--max-seconds", type=float, default=900.0, help="hard lifetime cap")
    args = p.parse_args()
    nofile = raise_nofile()
    if nofile < (args.end - args.start) + 64:
        emit({"event": "fatal", "error": f"RLIMIT_NOFILE {nofile} is too low for {args.end - args.start} sockets"})
        return 2
    return asyncio.run(Client(args).run())


if __name__ == "__main__":
    sys.exit(main())
