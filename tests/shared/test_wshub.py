"""shared.wshub: delivery in order per socket, resume hold-back, closing slow sockets without
disturbing the others, session and shutdown closes."""

from __future__ import annotations

import asyncio

from shared.wshub import CLOSE_SESSION_ENDED, CLOSE_TOO_SLOW, Socket, SocketHub


class FakeWs:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed: list[int] = []

    async def send_str(self, text: str) -> None:
        self.sent.append(text)

    async def close(self, *, code: int, message: bytes) -> bool:
        self.closed.append(code)
        return True


class Hub(SocketHub[str, Socket[str]]):
    def publish(self, owners: list[str], text: str, seq: int = 0) -> None:
        self._fan_out(owners, (seq, text))


def socket(owner: str, session_id: int = 1, queue_size: int = 10) -> Socket[str]:
    return Socket(owner, session_id, FakeWs(), queue_size)  # type: ignore[arg-type]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def ws(conn: Socket[str]) -> FakeWs:
    return conn.ws  # type: ignore[return-value]


async def test_frames_reach_every_socket_of_the_owners_in_order() -> None:
    hub = Hub()
    a1, a2, b = socket("a"), socket("a", 2), socket("b")
    for conn in (a1, a2, b):
        hub.register(conn)
        hub.start_writer(conn)
    assert hub.connection_count == 3
    hub.publish(["a"], "one")
    hub.publish(["a", "b", "nobody"], "two")
    await settle()
    assert ws(a1).sent == ws(a2).sent == ["one", "two"] and ws(b).sent == ["two"]
    assert hub.delivered == 5


async def test_frames_queue_until_the_writer_starts_and_replayed_ones_are_skipped() -> None:
    hub = Hub()
    conn = socket("a")
    hub.register(conn)
    for seq in (5, 6, 7):
        hub.publish(["a"], f"event {seq}", seq)
    await settle()
    assert ws(conn).sent == []
    hub.start_writer(conn, already_sent_up_to=6)        # the resume replay sent up to 6
    await settle()
    assert ws(conn).sent == ["event 7"]


async def test_a_slow_socket_is_closed_and_the_others_still_get_the_frame() -> None:
    """Regression: closing the slow socket used to change the set being iterated (RuntimeError),
    so the sockets after it in that publish missed the frame."""
    hub = Hub()
    slow = socket("a", queue_size=1)
    fast_same_owner, other = socket("a", 2), socket("b")
    for conn in (slow, fast_same_owner, other):
        hub.register(conn)                               # writers not started: queues fill up
    hub.publish(["a", "b"], "one")
    hub.publish(["a", "b"], "two")                       # overflows ``slow`` only
    await settle()
    assert ws(slow).closed == [CLOSE_TOO_SLOW] and slow.closing
    assert fast_same_owner.queue.qsize() == 2 and other.queue.qsize() == 2
    assert hub.connection_count == 2
    hub.publish(["a"], "three")                          # a closed socket gets nothing more
    assert slow.queue.qsize() == 1


async def test_close_session_and_unregister() -> None:
    hub = Hub()
    mine, mine_too, theirs = socket("a", 7), socket("b", 7), socket("a", 8)
    for conn in (mine, mine_too, theirs):
        hub.register(conn)
        hub.start_writer(conn)
    hub.close_session(7, "logged out")
    await settle()
    assert ws(mine).closed == ws(mine_too).closed == [CLOSE_SESSION_ENDED] and ws(theirs).closed == []
    assert mine.writer is not None and mine.writer.done()
    hub.unregister(theirs)
    await settle()
    assert hub.connection_count == 0 and theirs.writer is not None and theirs.writer.done()
    hub.unregister(theirs)                               # twice is harmless


async def test_close_all_says_going_away() -> None:
    hub = Hub()
    conns = [socket("a"), socket("b")]
    for conn in conns:
        hub.register(conn)
    await hub.close_all()
    assert [ws(c).closed for c in conns] == [[1001], [1001]]


async def test_the_tiers_build_on_it() -> None:
    from internet_relay.hub import Connection as RelayConnection
    from internet_relay.hub import Hub as RelayHub
    from lgwan_server.hub import Connection as StaffConnection
    from lgwan_server.hub import Hub as StaffHub

    staff_hub, relay_hub = StaffHub(), RelayHub()
    staff = StaffConnection(11, 1, FakeWs())  # type: ignore[arg-type]
    guest = RelayConnection("g:5", 2, "dev1", FakeWs())  # type: ignore[arg-type]
    assert (staff.staff_id, guest.member, guest.device_id) == (11, "g:5", "dev1")
    staff_hub.load_members([(1, 11)])
    staff_hub.register(staff)
    staff_hub.start_writer(staff, 0)
    relay_hub.register(guest)                            # the relay starts the writer on register
    staff_hub.publish(1, 1, None, "room event")
    staff_hub.publish(2, 2, None, "another room")
    relay_hub.publish(["g:5"], "guest frame")
    relay_hub.broadcast("resync")
    await settle()
    assert ws(staff).sent == ["room event"]  # type: ignore[arg-type]
    assert ws(guest).sent == ["guest frame", "resync"]  # type: ignore[arg-type]
    assert staff_hub.online([11, 12]) == [11]
    relay_hub.close_member("g:5", "device revoked", device_id="other")
    assert staff_hub.close_staff(11, "suspended") == 1
    await settle()
    assert ws(guest).closed == [] and ws(staff).closed == [CLOSE_SESSION_ENDED]  # type: ignore[arg-type]


# --- real sockets: the direct-write fast path ---------------------------------------------------

async def _real_hub_server(hub: Hub, ready: asyncio.Queue[Socket[str]]):  # type: ignore[no-untyped-def]
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        conn: Socket[str] = Socket("a", 1, ws, 10_000, request.transport)
        hub.register(conn)
        hub.start_writer(conn)
        await ready.put(conn)
        async for _ in ws:
            pass
        hub.unregister(conn)
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    return server


async def test_direct_frames_decode_at_every_length_boundary() -> None:
    """``text_frame`` against aiohttp's own reader: 7-bit, 16-bit and 64-bit lengths, non-ASCII."""
    import aiohttp

    hub, ready = Hub(), asyncio.Queue()  # type: ignore[var-annotated]
    server = await _real_hub_server(hub, ready)
    try:
        async with aiohttp.ClientSession() as session, session.ws_connect(server.make_url("/ws")) as client:
            conn = await ready.get()
            assert conn.transport is not None                  # uncompressed: direct writes enabled
            texts = ["", "x" * 125, "y" * 126, "z" * 65_535, "w" * 65_536, "架け橋" * 30_000]
            for text in texts:
                hub.publish(["a"], text)
            got = [await client.receive_str(timeout=10) for _ in texts]
            assert got == texts
            assert hub.delivered == len(texts)
    finally:
        await server.close()


class FakeTransport:
    """Records what is written; ``backlog`` stands for bytes the kernel has not taken yet."""

    def __init__(self, out: list[str]) -> None:
        self.out, self.backlog = out, 0

    def write(self, data: bytes) -> None:
        self.out.append(data[2:].decode())             # the tests' frames are < 126 bytes

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self.backlog


class DrainingWs(FakeWs):
    """An uncompressed socket whose ``send_str`` writes, then waits for drain like aiohttp's."""

    compress = 0

    def __init__(self, out: list[str]) -> None:
        super().__init__()
        self.out, self.drained = out, asyncio.Event()
        self.drained.set()

    async def send_str(self, text: str) -> None:
        self.out.append(text)
        await self.drained.wait()


async def test_a_direct_write_never_overtakes_a_queued_frame() -> None:
    """The fast path writes to the transport only when nothing is queued and the writer is idle:
    after a backlog, a frame published while the writer still waits for drain is queued behind."""
    from shared.wshub import DIRECT_WRITE_HIGH_WATER

    out: list[str] = []
    ws_, transport = DrainingWs(out), FakeTransport(out)
    hub = Hub()
    conn: Socket[str] = Socket("a", 1, ws_, 100, transport)  # type: ignore[arg-type]
    hub.register(conn)
    hub.start_writer(conn)
    await settle()
    hub.publish(["a"], "1")                              # idle, no backlog: written directly
    assert out == ["1"] and conn.queue.empty()
    # The writer is inside a send (waiting for drain) with nothing queued.
    transport.backlog = DIRECT_WRITE_HIGH_WATER          # the client stopped reading
    ws_.drained.clear()
    hub.publish(["a"], "2")                              # queued; the writer sends it, then waits
    await settle()
    assert out == ["1", "2"] and conn.busy and conn.queue.empty()
    transport.backlog = 0                                # the kernel took the bytes, the writer not yet
    hub.publish(["a"], "3")                              # must wait for the writer
    assert out == ["1", "2"] and conn.queue.qsize() == 1
    ws_.drained.set()
    await settle()
    assert out == ["1", "2", "3"] and not conn.busy
    # A frame is queued and the writer has not run yet.
    transport.backlog = DIRECT_WRITE_HIGH_WATER
    hub.publish(["a"], "4")
    transport.backlog = 0
    hub.publish(["a"], "5")                              # must not overtake "4"
    await settle()
    assert out == ["1", "2", "3", "4", "5"]
    hub.publish(["a"], "6")                              # idle again: direct
    assert out[-1] == "6" and conn.queue.empty() and hub.delivered == 6


async def test_held_frames_and_unstarted_writers_never_take_the_direct_path() -> None:
    out: list[str] = []
    hub = Hub()
    conn: Socket[str] = Socket("a", 1, DrainingWs(out), 100, FakeTransport(out))  # type: ignore[arg-type]
    hub.register(conn)
    hub.publish(["a"], "during replay", seq=5)          # the resume replay is still running
    assert out == [] and conn.queue.qsize() == 1
    hub.start_writer(conn, already_sent_up_to=5)
    await settle()
    hub.publish(["a"], "replayed already", seq=5)
    hub.publish(["a"], "new", seq=6)
    await settle()
    assert out == ["new"]
