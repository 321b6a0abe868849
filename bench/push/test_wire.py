"""The benchmark clients' readers (bench/push/pushwire.py, peerwire.py) against real servers on
127.0.0.1, on uvloop and stdlib asyncio (tests/conftest.py's ``run`` fixture).

Every figure bench/push prints rests on what these readers count: deliveries taken in bulk by
strided slices, sequence numbers checked only at both ends of a read, timestamps unpacked by
``struct``.  So they are checked here: every push counted however the stream is split (scripted
servers writing cyserve's own encoder's frames in random pieces, with a PING, an ACK-requested
push and a GAP among them), a push out of sequence or repeated is reported, the members count
every publish of a real ``Hub``, and the peers' readers count what a real redis-server and a
real python-socketio server send.

    python -m pytest -q bench/push/test_wire.py

Not part of the test suite (``testpaths`` is tests/): it checks benchmark code, and runs in a
few seconds.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peerwire import RAW_CHANNEL, close_sio, open_resp, open_sio, sio_text  # noqa: E402
from pushwire import (  # noqa: E402
    GROUP, HOST, Tally, connect_one, goodbye, message, open_members,
)
from tests.conftest import run  # noqa: E402,F401  (the fixture: both loops, leaks fail the test)

from cyserve._core.push.frames import (  # noqa: E402
    FLAG_ACK_REQUESTED, FRAMING_BINARY, FRAMING_WS_BINARY, KIND_ACK, KIND_CALL, KIND_CLOSE, KIND_GAP,
    KIND_HELLO, KIND_PING, KIND_PONG, KIND_PUSH, KIND_REPLY, KIND_WELCOME, VERSION, Frame, FrameDecoder,
    PushTemplate, encode,
)

Run = Callable[..., Any]
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"   # RFC 6455 §1.3
WELCOME = {"client_id": "c" * 22, "resume_token": "t" * 43, "codec": "bytes", "resumed": False, "next_seq": 1,
           "heartbeat_s": 20, "idle_timeout_s": 50, "max_frame_bytes": 1 << 20, "resume_window_s": 60}


# ----------------------------------------------------------------- a scripted push server
class Scripted:
    """One client's connection to a scripted push server: frames out in the transport's form,
    the client's frames in, decoded by cyserve's server-side decoder."""

    def __init__(self, transport: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.transport = transport
        self.reader, self.writer = reader, writer
        self.framing = FRAMING_BINARY if transport == "tcp" else FRAMING_WS_BINARY
        self.decoder = FrameDecoder(1 << 20, self.framing)
        self.queue: list[Frame] = []     # decoded, not yet taken

    def wire(self, frame: bytes) -> bytes:
        """A frame as it goes on the wire (WebSocket: an unmasked binary message, §5.2)."""
        if self.transport == "tcp":
            return frame
        n = len(frame)
        return (bytes([0x82, n]) if n < 126 else bytes([0x82, 126]) + n.to_bytes(2, "big")) + frame

    def frame(self, kind: int, id: int = 0, name: str = "", payload: object = None, flags: int = 0) -> bytes:
        return self.wire(encode(kind, id, name, payload, flags, self.framing))

    async def upgrade(self) -> None:
        head = await self.reader.readuntil(b"\r\n\r\n")
        key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID.encode()).digest()).decode()
        self.writer.write(f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode())

    async def next_frame(self) -> Frame:
        """The client's next push frame (RFC 6455 §5.3: a client's messages are masked)."""
        while not self.queue:
            if self.transport == "tcp":
                data = await self.reader.read(65536)
                assert data, "the client closed"
            else:
                b0, b1 = await self.reader.readexactly(2)
                n = b1 & 0x7F
                if n == 126:
                    n = int.from_bytes(await self.reader.readexactly(2), "big")
                mask = await self.reader.readexactly(4)
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(await self.reader.readexactly(n)))
                assert b0 == 0x82, f"a binary message, not {b0:#x}"
            for frame in self.decoder.feed(data):
                assert isinstance(frame, Frame), frame
                self.queue.append(frame)
        return self.queue.pop(0)

    async def handshake(self) -> None:
        """HELLO -> WELCOME, CALL bench.join -> REPLY."""
        if self.transport == "ws":
            await self.upgrade()
        hello = await self.next_frame()
        assert (hello.kind, hello.name, hello.payload) == (KIND_HELLO, VERSION, {"codec": "bytes"})
        self.writer.write(self.frame(KIND_WELCOME, 0, VERSION, WELCOME))
        call = await self.next_frame()
        assert (call.kind, call.name) == (KIND_CALL, "bench.join")
        self.writer.write(self.frame(KIND_REPLY, call.id, "", b""))

    async def dribble(self, stream: bytes, rng: random.Random) -> None:
        """``stream`` in pieces of random sizes (1 byte to several frames), each its own write
        and, mostly, its own read at the client."""
        at = 0
        while at < len(stream):
            size = rng.choice((1, 3, 57, 119, 120, 121, 118, 240, 360, 1000, 4096))
            self.writer.write(stream[at:at + size])
            at += size
            await self.writer.drain()
            await asyncio.sleep(0.0005 if rng.random() < 0.5 else 0)


@asynccontextmanager
async def scripted_server(transport: str, script: Callable[[Scripted], Awaitable[None]]) -> AsyncIterator[int]:
    """A server on a free port whose one connection runs ``script``; its failure fails the test."""
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await script(Scripted(transport, reader, writer))
            done.set_result(None)
        except BaseException as exc:  # handed to the test, which raises it
            done.set_exception(exc)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, HOST, 0)
    try:
        yield server.sockets[0].getsockname()[1]
        await asyncio.wait_for(done, 10)
    finally:
        server.close()
        await server.wait_closed()


async def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


# ----------------------------------------------------------------- pushwire.Member
@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_member_counts_every_push_however_the_stream_is_split(run: Run, transport: str) -> None:
    """400 group pushes in random pieces, with a PING (answered), a direct push asking for an ACK
    (answered, counted) and a GAP of 3 (counted as lost, the sequence continuing after it)."""
    rng = random.Random(f"split-{transport}")
    answers: list[Frame] = []

    async def script(conn: Scripted) -> None:
        await conn.handshake()
        stream, seq = b"", 1
        for number in range(400):
            stream += conn.wire(PushTemplate(GROUP, message(number), 0, conn.framing).frame(seq))
            seq += 1
            if number == 100:
                stream += conn.frame(KIND_PING, 77)
            if number == 200:
                stream += conn.frame(KIND_PUSH, seq, "", message(999), FLAG_ACK_REQUESTED)
                seq += 1
            if number == 300:
                stream += conn.frame(KIND_GAP, seq, "", seq + 2)
                seq += 3
        await conn.dribble(stream, rng)
        answers.append(await conn.next_frame())
        answers.append(await conn.next_frame())
        close = await conn.next_frame()
        assert (close.kind, close.name) == (KIND_CLOSE, "normal")

    async def main() -> None:
        tally = Tally()
        async with scripted_server(transport, script) as port:
            members = await open_members(transport, [port], 1, tally)
            await wait_for(lambda: tally.received == 401 and len(answers) == 2, "every push")
            await goodbye(members, timeout_s=2.0)
        assert (tally.received, tally.gaps, tally.disorder, tally.errors) == (401, 3, 0, [])
        assert sum(tally.hist) == 401
        assert {(f.kind, f.id) for f in answers} == {(KIND_PONG, 77), (KIND_ACK, 202)}
        assert members[0].next_seq == 405

    run(main)


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_member_reports_pushes_out_of_sequence(run: Run, transport: str) -> None:
    """A skipped number and a repeated one are both seen, in a read of one push and in a bulk read."""
    async def script(conn: Scripted) -> None:
        await conn.handshake()

        def push(seq: int) -> bytes:
            return conn.wire(PushTemplate(GROUP, message(seq), 0, conn.framing).frame(seq))
        conn.writer.write(push(1))                      # one read of one push each (sleeps between)
        await asyncio.sleep(0.05)
        conn.writer.write(push(3))                      # 2 skipped
        await asyncio.sleep(0.05)
        conn.writer.write(push(4) + push(5) + push(5))  # a bulk read whose last repeats
        await asyncio.sleep(0.05)
        conn.writer.write(push(6) + push(8))            # a bulk read with a hole inside
        await conn.next_frame()                         # the client's CLOSE

    async def main() -> None:
        tally = Tally()
        async with scripted_server(transport, script) as port:
            members = await open_members(transport, [port], 1, tally)
            await wait_for(lambda: tally.received == 7, "every push")
            await goodbye(members, timeout_s=2.0)
        assert tally.disorder == 3, tally.report()

    run(main)


def test_members_count_every_publish_of_a_real_hub(run: Run) -> None:
    """Twenty members of a real ``Hub`` (TCP listener, in-process broker): each receives all 300
    publishes, in sequence; the push-to-one path (``hub.send``) reaches its target."""
    from cyserve.push import Hub

    async def main() -> None:
        hub = Hub()

        @hub.command("bench.join")
        async def join(conn: Any, data: bytes) -> bytes:
            await hub.join(conn.client_id, GROUP)
            return b""

        await hub.start()
        listener = await hub.listen(HOST, 0)
        try:
            port = listener.sockets[0].getsockname()[1]
            tally = Tally()
            members = await open_members("tcp", [port], 20, tally, batch=7)
            for number in range(300):
                await hub.publish(GROUP, message(number))
            await wait_for(lambda: tally.received == 20 * 300, "every delivery")
            target_tally = Tally()
            target = await connect_one("tcp", port, target_tally)
            pushed: list[bytes] = []
            target.on_push = lambda payload, flags: pushed.append(payload)
            assert await hub.send(str(target.welcome.result()["client_id"]), message(7), ack=True, timeout_s=5)
            await goodbye([*members, target], timeout_s=5.0)
        finally:
            listener.close()
            await hub.stop(1.0)
        assert (tally.disorder, tally.gaps, tally.errors) == (0, 0, [])
        assert [int.from_bytes(p[8:16], "little") for p in pushed] == [7]
        assert target_tally.received == 1

    run(main)


# ----------------------------------------------------------------- peerwire's readers
def test_resp_subscribers_count_what_redis_delivers(run: Run, tmp_path: Path) -> None:
    """Two raw subscribers of a real redis-server get every one of 2,000 pipelined PUBLISHes."""
    redis_support = pytest.importorskip("tests.push.redis_support")
    if redis_support.REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    import redis.asyncio as aioredis

    server = redis_support.RedisServer(tmp_path / "redis")
    server.start()

    async def main() -> None:
        tallies = [Tally(), Tally()]
        subs = await open_resp(server.port, tallies)
        client = aioredis.Redis(host=HOST, port=server.port)
        try:
            for first in range(0, 2000, 100):
                pipe = client.pipeline(transaction=False)
                for number in range(first, first + 100):
                    pipe.publish(RAW_CHANNEL, message(number))
                assert await pipe.execute() == [2] * 100
            await wait_for(lambda: all(t.received == 2000 for t in tallies), "every message")
        finally:
            await client.aclose()
            for sub in subs:
                sub.transport.close()
            await wait_for(lambda: all(s.lost for s in subs), "the subscribers' close")
        assert all(t.errors == [] and sum(t.hist) == 2000 for t in tallies)

    try:
        run(main)
    finally:
        server.kill()


def test_sio_members_count_what_socketio_emits(run: Run) -> None:
    """Five raw Socket.IO clients of a real python-socketio server (aiohttp) each count every
    one of 200 emits to the room their connect handler joined."""
    socketio = pytest.importorskip("socketio")
    from aiohttp import web

    async def main() -> None:
        sio = socketio.AsyncServer(async_mode="aiohttp")

        @sio.event
        async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
            await sio.enter_room(sid, GROUP)

        app = web.Application()
        sio.attach(app)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, HOST, 0)
        await site.start()
        try:
            port = runner.addresses[0][1]
            tally = Tally()
            members = await open_sio([port], 5, tally)
            for number in range(200):
                await sio.emit("m", sio_text(number), room=GROUP)
            await wait_for(lambda: tally.received == 5 * 200, "every event")
            await close_sio(members)
        finally:
            await sio.shutdown()
            await runner.cleanup()
            # engine.io leaves each closed socket's ping task asleep for the rest of its 25 s
            # interval (it exits when it wakes): end them now, the test owns the loop.
            leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()
                         and getattr(t.get_coro(), "__qualname__", "") == "AsyncSocket._send_ping"]
            for task in leftovers:
                task.cancel()
            await asyncio.gather(*leftovers, return_exceptions=True)
        assert tally.errors == [] and sum(tally.hist) == 1000

    run(main)
