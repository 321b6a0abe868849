"""The TCP push role (``cyserve._core.push.role``) on real sockets on 127.0.0.1, uvloop and stdlib
asyncio: framing detection, frames however the stream is split, frames before ``start``, limits
and violations, byte-exact output, corked fan-out, write backpressure and ``link_drained``, the
idle watch, closing, aborting, ``link_lost``, the server's shutdown, and the receive buffer's
growth and release.

The handler is ``Recorder`` below: the hub's side of the ``Link`` boundary, reduced to writing
down what the real role tells it.  Client bytes are built with ``frames.encode`` (whose own tests
check it byte for byte against docs/push-protocol.md) and, where a frame must be broken, by hand.
"""
from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

import pytest
import trustme

from cyserve._core.io.stream import Stream
from cyserve._core.push.frames import (
    FLAG_ACK_REQUESTED, FRAMING_AUTO, FRAMING_BINARY, FRAMING_JSON_LINES, KIND_ACK, KIND_CALL,
    KIND_CLOSE, KIND_ERROR, KIND_GAP, KIND_HELLO, KIND_PING, KIND_PONG, KIND_PUSH, KIND_REPLY,
    KIND_WELCOME, PUSH_HEAD_MAX, VERSION, VIOLATION_PROTOCOL_ERROR, VIOLATION_TOO_LARGE, Frame,
    FrameDecoder, PushTemplate, Violation, encode,
)
from cyserve._core.push.role import (
    DEFAULT_RECV_INITIAL, DEFAULT_RECV_MAX, PY_K_IDLE, PushRole, push_listener,
)

Run = Callable[..., Any]
MIB = 1 << 20
TCP_FRAMINGS = {"binary": FRAMING_BINARY, "json-lines": FRAMING_JSON_LINES}


# ---------------------------------------------------------------- the test's LinkHandler
class Recorder:
    """Writes down every report of its link, in order.  ``on_frames`` (optional) runs inside the
    read pass, as a hub answering a frame would."""

    __slots__ = ("link", "calls", "on_frames")

    def __init__(self, link: PushRole) -> None:
        self.link = link
        self.calls: list[tuple[Any, ...]] = []
        self.on_frames: Callable[[PushRole, list[Frame]], None] | None = None

    def link_frames(self, frames: list[Frame]) -> None:
        assert frames, "link_frames with no frame"
        self.calls.append(("frames", list(frames)))
        if self.on_frames is not None:
            self.on_frames(self.link, frames)

    def link_violation(self, violation: Violation) -> None:
        self.calls.append(("violation", violation))

    def link_idle(self) -> None:
        self.calls.append(("idle",))

    def link_drained(self) -> None:
        self.calls.append(("drained",))

    def link_shutdown(self, abort: bool) -> None:
        self.calls.append(("shutdown", abort))

    def link_lost(self) -> None:
        self.calls.append(("lost",))

    # ---- reading the record
    def frames(self) -> list[Frame]:
        return [f for call in self.calls if call[0] == "frames" for f in call[1]]

    def passes(self) -> list[list[Frame]]:
        return [call[1] for call in self.calls if call[0] == "frames"]

    def count(self, what: str) -> int:
        return sum(1 for call in self.calls if call[0] == what)

    def kinds(self) -> list[str]:
        return [call[0] for call in self.calls]


@dataclass
class Served:
    port: int
    roles: list[PushRole] = field(default_factory=list)
    handlers: list[Recorder] = field(default_factory=list)


@contextlib.asynccontextmanager
async def listening(*, start: bool = True, on_link: Callable[[PushRole], None] | None = None,
                    tls: ssl.SSLContext | None = None, **options: Any) -> AsyncIterator[Served]:
    """A push listener on 127.0.0.1:0 whose connections each get a ``Recorder`` (started at
    once unless ``start`` is False).  Every connection is aborted at the end."""
    loop = asyncio.get_running_loop()
    served = Served(0)

    def link(role: PushRole) -> None:
        served.roles.append(role)
        served.handlers.append(Recorder(role))
        if on_link is not None:
            on_link(role)
        if start:
            role.start(served.handlers[-1])

    options.setdefault("max_frame_bytes", MIB)
    server = await loop.create_server(push_listener(loop, link, **options), "127.0.0.1", 0,
                                      ssl=tls)
    served.port = server.sockets[0].getsockname()[1]
    try:
        yield served
    finally:
        server.close()
        for role in served.roles:
            role.abort()
        await server.wait_closed()
        await until(lambda: all(r.stream.lost for r in served.roles))


async def until(check: Callable[[], Any], timeout_s: float = 5.0, what: str = "") -> None:
    """Wait (polling every 5 ms) until ``check()`` is true; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.005)


async def turns(n: int = 4) -> None:
    """Let the loop run ``n`` iterations (reads, the corked flush two turns on)."""
    for _ in range(n):
        await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def connected(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def raw_client(port: int, rcvbuf: int | None = None) -> socket.socket:
    """A non-blocking socket connected to ``port`` (``rcvbuf``: a small receive buffer, set
    before connecting so the window is small from the start)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def read_exactly(sock: socket.socket, n: int, timeout_s: float = 5.0) -> bytes:
    loop = asyncio.get_running_loop()
    out = bytearray()
    async with asyncio.timeout(timeout_s):
        while len(out) < n:
            chunk = await loop.sock_recv(sock, min(n - len(out), 1 << 16))
            assert chunk, f"EOF after {len(out)} of {n} bytes"
            out += chunk
    return bytes(out)


async def read_to_eof(reader: asyncio.StreamReader, timeout_s: float = 5.0) -> bytes:
    return await asyncio.wait_for(reader.read(), timeout_s)


def hello(framing: int, credentials: object = None) -> bytes:
    return encode(KIND_HELLO, 0, VERSION, {"credentials": credentials}, 0, framing)


def call(framing: int, id: int, name: str, data: object) -> bytes:
    payload = data if framing == FRAMING_JSON_LINES else repr(data).encode()
    return encode(KIND_CALL, id, name, payload, 0, framing)


def client_pieces(framing: int) -> list[bytes]:
    """What a client might send in its first seconds, frame by frame."""
    return [
        hello(framing, {"token": "s3cret", "é": "中文"}),
        call(framing, 1, "chat.join", {"room": "lobby"}),
        encode(KIND_PING, 7, "", None, 0, framing),
        encode(KIND_ACK, 42, "", None, 0, framing),
        call(framing, 2, "chat.send", {"room": "lobby", "text": "hi"}),
        encode(KIND_PONG, 9, "", None, 0, framing),
        encode(KIND_CLOSE, 0, "normal", "bye", 0, framing),
    ]


def decode(data: bytes, framing: int, *, client: bool = False) -> list[Frame]:
    """Every frame in ``data`` (which holds nothing broken)."""
    got = FrameDecoder(MIB, framing, client=client).feed(data)
    frames = [f for f in got if isinstance(f, Frame)]
    assert len(frames) == len(got), got
    return frames


def client_stream(framing: int, count: int = 7) -> tuple[bytes, list[Frame]]:
    """The first ``count`` client pieces as one stream, and the frames the role must report."""
    data = b"".join(client_pieces(framing)[:count])
    return data, decode(data, framing)


def binary_prefix(length: int) -> bytes:
    return length.to_bytes(4, "big")


# ---------------------------------------------------------------- framing detection (§2)
@pytest.mark.parametrize("framing", TCP_FRAMINGS.values(), ids=TCP_FRAMINGS.keys())
def test_first_byte_selects_the_framing_and_frames_come_in_order(run: Run, framing: int) -> None:
    async def main() -> None:
        data, expected = client_stream(framing)
        async with listening() as served, connected(served.port) as (_, writer):
            await until(lambda: served.roles, what="connection_made")
            role = served.roles[0]
            assert role.framing == FRAMING_AUTO          # nothing arrived: undecided
            assert role.peer == writer.get_extra_info("sockname")
            writer.write(data)
            await until(lambda: len(served.handlers[0].frames()) == len(expected))
            assert role.framing == framing
            assert served.handlers[0].frames() == expected
            assert served.handlers[0].kinds() == ["frames"] * len(served.handlers[0].passes())
    run(main)


def test_json_lines_typed_at_nc_with_crlf_and_blank_lines(run: Run) -> None:
    async def main() -> None:
        typed = (b'{"t":"hello","name":"cyserve-push/1","data":{"credentials":null}}\r\n'
                 b"\r\n   \n"
                 b'{"t":"call","id":1,"name":"chat.join","data":{"room":"lobby"}}\r\n'
                 b'{"t":"ping","id":9}\n')
        async with listening() as served, connected(served.port) as (_, writer):
            writer.write(typed)
            await until(lambda: len(served.handlers and served.handlers[0].frames()) == 3)
            got = served.handlers[0].frames()
            assert [f.kind for f in got] == [KIND_HELLO, KIND_CALL, KIND_PING]
            assert got[1].payload == {"room": "lobby"} and got[2].id == 9
            assert served.roles[0].framing == FRAMING_JSON_LINES
    run(main)


# ---------------------------------------------------------------- splits and merges
@pytest.mark.parametrize("framing", TCP_FRAMINGS.values(), ids=TCP_FRAMINGS.keys())
def test_a_client_writing_byte_by_byte_gets_each_frame_once_in_its_own_pass(
        run: Run, framing: int) -> None:
    async def main() -> None:
        data, expected = client_stream(framing)
        async with listening() as served, connected(served.port) as (_, writer):
            for i in range(len(data)):
                writer.write(data[i:i + 1])
                await turns(2)   # the server reads each byte on its own
            await until(lambda: len(served.handlers[0].frames()) == len(expected))
            assert served.handlers[0].frames() == expected
            # A frame completes on its last byte: one frame per pass, never a frame twice.
            assert all(len(p) == 1 for p in served.handlers[0].passes())
            assert served.roles[0].stream.buffer.pending() == b""
    run(main)


@pytest.mark.parametrize("framing", TCP_FRAMINGS.values(), ids=TCP_FRAMINGS.keys())
def test_the_stream_split_in_two_at_every_byte_gives_the_same_frames(
        run: Run, framing: int) -> None:
    async def main() -> None:
        data, expected = client_stream(framing, 4)   # 4 frames suffice: a shorter loop
        async with listening() as served:
            for cut in range(1, len(data)):
                async with connected(served.port) as (_, writer):
                    writer.write(data[:cut])
                    await turns(2)
                    writer.write(data[cut:])
                    await until(lambda: len(served.handlers) == cut
                                and len(served.handlers[-1].frames()) == len(expected))
                    handler = served.handlers[-1]
                    assert handler.frames() == expected, f"split at {cut}"
                    assert "violation" not in handler.kinds()
    run(main, timeout_s=60)


@pytest.mark.parametrize("framing", TCP_FRAMINGS.values(), ids=TCP_FRAMINGS.keys())
def test_frames_merged_in_one_write_come_in_one_pass(run: Run, framing: int) -> None:
    async def main() -> None:
        data, expected = client_stream(framing)
        async with listening() as served, connected(served.port) as (_, writer):
            await until(lambda: served.roles)
            writer.write(data * 20)   # ~4 KiB: more than the first read's buffer (1 KiB)
            await until(lambda: len(served.handlers[0].frames()) == 20 * len(expected))
            assert served.handlers[0].frames() == expected * 20
            passes = served.handlers[0].passes()
            # Each pass hands over every frame its read completed, in one call.
            assert len(passes) < 20 * len(expected) and max(map(len, passes)) > 1
    run(main)


# ---------------------------------------------------------------- before start
def test_frames_before_start_wait_for_it_with_reading_held(run: Run) -> None:
    async def main() -> None:
        data, expected = client_stream(FRAMING_BINARY)
        async with listening(start=False) as served, connected(served.port) as (_, writer):
            writer.write(data)
            await until(lambda: served.roles and served.roles[0].framing == FRAMING_BINARY)
            await asyncio.sleep(0.05)
            role, handler = served.roles[0], served.handlers[0]
            assert handler.calls == []
            assert role.stream.reading_paused          # one frame waits; the kernel holds the rest
            assert not role.started
            role.start(handler)
            await until(lambda: len(handler.frames()) == len(expected))
            assert handler.frames() == expected
            assert handler.passes()[0] == expected[:1]
            assert not role.stream.reading_paused
            with pytest.raises(RuntimeError):
                role.start(handler)
    run(main)


def test_a_violation_before_start_is_reported_after_the_frames_on_start(run: Run) -> None:
    async def main() -> None:
        async with listening(start=False) as served, connected(served.port) as (_, writer):
            writer.write(hello(FRAMING_BINARY))
            await until(lambda: served.roles and served.roles[0].stream.reading_paused)
            served.roles[0].start(served.handlers[0])
            await turns()
            writer.write(binary_prefix(5))           # shorter than the 11-byte header
            await until(lambda: "violation" in served.handlers[0].kinds())
            assert served.handlers[0].kinds() == ["frames", "violation"]
        async with listening(start=False) as served, connected(served.port) as (_, writer):
            writer.write(hello(FRAMING_BINARY) + binary_prefix(5))
            await until(lambda: served.roles and served.roles[0].stream.reading_paused)
            await asyncio.sleep(0.02)
            served.roles[0].start(served.handlers[0])
            calls = served.handlers[0].calls
            assert [c[0] for c in calls] == ["frames", "violation"]
            assert calls[1][1].kind == VIOLATION_PROTOCOL_ERROR
    run(main)


def test_a_connection_lost_before_start_reports_only_link_lost(run: Run) -> None:
    async def main() -> None:
        async with listening(start=False) as served:
            async with connected(served.port):
                await until(lambda: served.roles)
            # The client hung up (its FIN is read: no frame held reading back).
            await until(lambda: served.roles[0].stream.lost)
            role, handler = served.roles[0], served.handlers[0]
            assert role.closing
            role.start(handler)
            assert handler.calls == [("lost",)]
            async with connected(served.port) as (_, writer):
                writer.write(hello(FRAMING_BINARY))
                await until(lambda: len(served.roles) == 2 and served.roles[1].stream.reading_paused)
                served.roles[1].abort()                  # the server dropped it, a frame waiting
                await until(lambda: served.roles[1].stream.lost)
                served.roles[1].start(served.handlers[1])
                assert served.handlers[1].calls == [("lost",)]
    run(main)


# ---------------------------------------------------------------- limits and violations (§11)
def test_too_large_is_decided_on_the_length_bytes_with_nothing_buffered(run: Run) -> None:
    async def main() -> None:
        async with listening(max_frame_bytes=1024) as served, \
                connected(served.port) as (_, writer):
            writer.write(hello(FRAMING_BINARY) + binary_prefix(1025))
            await until(lambda: "violation" in served.handlers[0].kinds())
            handler, role = served.handlers[0], served.roles[0]
            assert handler.kinds() == ["frames", "violation"]
            assert handler.calls[1][1].kind == VIOLATION_TOO_LARGE
            assert handler.calls[1][1].code == "too_large"
            assert role.stream.reading_paused                # nothing more is read
            writer.write(b"\x00" * 4096 + encode(KIND_PING, 1))
            await asyncio.sleep(0.05)
            assert handler.kinds() == ["frames", "violation"]
            assert role.stream.buffer.pending() == b""
    run(main)


def test_a_frame_at_the_limit_is_accepted(run: Run) -> None:
    async def main() -> None:
        # 11 header bytes + 9 of name + the rest of payload = exactly max_frame_bytes.
        frame = encode(KIND_CALL, 1, "chat.send", b"x" * (1024 - 11 - 9))
        assert len(frame) == 4 + 1024
        async with listening(max_frame_bytes=1024) as served, \
                connected(served.port) as (_, writer):
            writer.write(frame)
            await until(lambda: served.handlers and served.handlers[0].calls)
            assert served.handlers[0].frames()[0].payload == b"x" * (1024 - 20)
    run(main)


def test_a_json_line_over_the_limit_is_a_protocol_error(run: Run) -> None:
    async def main() -> None:
        async with listening(max_frame_bytes=256) as served, \
                connected(served.port) as (_, writer):
            writer.write(b'{"t":"ping","id":1}\n{"t":"call","id":1,"name":"x","data":"'
                         + b"y" * 300)
            await until(lambda: served.handlers and "violation" in served.handlers[0].kinds())
            handler = served.handlers[0]
            assert handler.kinds() == ["frames", "violation"]
            assert handler.calls[1][1].kind == VIOLATION_PROTOCOL_ERROR
    run(main)


def test_after_a_violation_nothing_more_is_decoded_and_close_sends_the_answer(run: Run) -> None:
    async def main() -> None:
        async with listening() as served, connected(served.port) as (reader, writer):
            answer = encode(KIND_CLOSE, 0, "protocol_error", "frame shorter than its header")

            def on_violation(role: PushRole) -> None:
                role.send(answer)
                role.close(2.0)

            writer.write(hello(FRAMING_BINARY) + binary_prefix(3) + b"\x00\x00\x00"
                         + encode(KIND_PING, 5))
            await until(lambda: served.handlers and "violation" in served.handlers[0].kinds())
            on_violation(served.roles[0])
            writer.write(encode(KIND_PING, 6) * 100)        # still sending: read and dropped
            assert await read_to_eof(reader) == answer
            writer.close()
            await until(lambda: served.handlers[0].count("lost") == 1, timeout_s=1)
            assert [f.kind for f in served.handlers[0].frames()] == [KIND_HELLO]
            assert served.handlers[0].count("violation") == 1
    run(main)


# ---------------------------------------------------------------- output
def expected_output(framing: int) -> tuple[list[bytes], list[tuple[PushTemplate, int]]]:
    json = framing == FRAMING_JSON_LINES
    data: Callable[[object], object] = (lambda v: v) if json else (lambda v: repr(v).encode())
    frames = [
        encode(KIND_WELCOME, 0, VERSION, {"client_id": "Xq2", "next_seq": 1}, 0, framing),
        encode(KIND_REPLY, 1, "", data({"ok": True}), 0, framing),
        encode(KIND_ERROR, 2, "unknown_command", "no command named so", 0, framing),
        encode(KIND_GAP, 3, "", 5, 0, framing),
        encode(KIND_PING, 77, "", None, 0, framing),
    ]
    pushes = [(PushTemplate("room:a", data({"x": 1}), 0, framing), 6),
              (PushTemplate("", data("to you"), FLAG_ACK_REQUESTED, framing), 7),
              (PushTemplate("room:a", data({"x": 1}), 0, framing), (1 << 64) - 1)]
    return frames, pushes


@pytest.mark.parametrize("framing", TCP_FRAMINGS.values(), ids=TCP_FRAMINGS.keys())
def test_send_and_send_push_write_exactly_the_encoders_bytes(run: Run, framing: int) -> None:
    async def main() -> None:
        frames, pushes = expected_output(framing)
        expected = b"".join(frames) + b"".join(t.frame(seq) for t, seq in pushes)
        async with listening() as served, connected(served.port) as (reader, writer):
            writer.write(hello(framing))
            await until(lambda: served.handlers and served.handlers[0].calls)
            role = served.roles[0]
            assert not role.take_sent()
            for frame in frames:
                role.send(frame)
            for template, seq in pushes:
                role.send_push(template, seq)
            assert role.take_sent() and not role.take_sent()
            got = await asyncio.wait_for(reader.readexactly(len(expected)), 5)
            assert got == expected
            decoded = decode(got, framing, client=True)
            assert [f.kind for f in decoded] == [KIND_WELCOME, KIND_REPLY, KIND_ERROR, KIND_GAP,
                                                 KIND_PING, KIND_PUSH, KIND_PUSH, KIND_PUSH]
            assert decoded[-2].flags == FLAG_ACK_REQUESTED and decoded[-1].id == (1 << 64) - 1
    run(main)


def test_send_push_refuses_another_framing_and_sequence_zero(run: Run) -> None:
    async def main() -> None:
        async with listening() as served, connected(served.port) as (_, writer):
            writer.write(hello(FRAMING_BINARY))
            await until(lambda: served.handlers and served.handlers[0].calls)
            role = served.roles[0]
            with pytest.raises(ValueError):
                role.send_push(PushTemplate("g", {"x": 1}, 0, FRAMING_JSON_LINES), 1)
            with pytest.raises(ValueError):
                role.send_push(PushTemplate("g", b"x", 0, FRAMING_BINARY), 0)
            with pytest.raises(OverflowError):
                role.send_push(PushTemplate("g", b"x", 0, FRAMING_BINARY), -1)
            assert not role.take_sent()
    run(main)


def test_a_reply_sent_inside_the_read_pass_leaves_with_the_pass(run: Run) -> None:
    async def main() -> None:
        def answer(role: PushRole, frames: list[Frame]) -> None:
            assert role.stream.outbox.corked            # the stream corks its read pass
            for f in frames:
                if f.kind == KIND_PING:
                    role.send(encode(KIND_PONG, f.id))

        async with listening(on_link=lambda role: None) as served, \
                connected(served.port) as (reader, writer):
            await until(lambda: served.handlers)
            served.handlers[0].on_frames = answer
            writer.write(hello(FRAMING_BINARY) + encode(KIND_PING, 1) + encode(KIND_PING, 2))
            got = await asyncio.wait_for(reader.readexactly(30), 5)
            assert got == encode(KIND_PONG, 1) + encode(KIND_PONG, 2)
    run(main)


def test_pushes_outside_a_pass_are_corked_and_leave_together_a_turn_later(run: Run) -> None:
    async def main() -> None:
        members = 5
        template = PushTemplate("room:a", b"m" * 100, 0, FRAMING_BINARY)
        async with listening() as served:
            socks = [await raw_client(served.port) for _ in range(members)]
            try:
                for sock in socks:
                    sock.send(hello(FRAMING_BINARY))
                await until(lambda: len(served.handlers) == members
                            and all(h.calls for h in served.handlers))
                # A burst of publishes, each fanned out to every member, from no read pass.
                for seq in range(1, 201):
                    for role in served.roles:
                        role.send_push(template, seq)
                expected = b"".join(template.frame(seq) for seq in range(1, 201))
                for role in served.roles:
                    assert role.stream.outbox.corked
                    assert role.buffered() == len(expected)   # corked bytes count
                for sock in socks:
                    with pytest.raises(BlockingIOError):
                        sock.recv(1)                           # nothing written yet
                for sock in socks:
                    assert await read_exactly(sock, len(expected)) == expected
                for role in served.roles:
                    assert not role.stream.outbox.corked
            finally:
                for sock in socks:
                    sock.close()
    run(main)


# ---------------------------------------------------------------- write backpressure
def test_a_client_that_stops_reading_pauses_then_drains(run: Run) -> None:
    async def main() -> None:
        def small_sndbuf(role: PushRole) -> None:
            transport = role.stream.transport
            assert transport is not None
            transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

        frame = encode(KIND_PUSH, 1, "g", b"p" * 1000)
        async with listening(on_link=small_sndbuf, write_high=8192, write_low=2048) as served:
            sock = await raw_client(served.port, rcvbuf=4096)
            try:
                sock.send(hello(FRAMING_BINARY))
                await until(lambda: served.handlers and served.handlers[0].calls)
                role, handler = served.roles[0], served.handlers[0]
                sent = 0
                for _ in range(2000):                   # at most 2 MB
                    if role.stream.outbox.paused:
                        break
                    for _ in range(8):
                        role.send(frame)
                        sent += len(frame)
                    await turns(3)
                assert role.stream.outbox.paused, "the transport never passed write_high"
                assert role.buffered() >= 8192
                assert handler.count("drained") == 0
                await asyncio.sleep(0.05)
                assert handler.count("drained") == 0        # nothing drains while it reads nothing
                got = await read_exactly(sock, sent, timeout_s=10)
                assert got == frame * (sent // len(frame))
                await until(lambda: handler.count("drained") == 1)
                assert role.buffered() == 0 and not role.stream.outbox.paused
            finally:
                sock.close()
    run(main)


def test_a_write_stall_aborts_and_reports_link_lost(run: Run) -> None:
    async def main() -> None:
        def small_sndbuf(role: PushRole) -> None:
            transport = role.stream.transport
            assert transport is not None
            transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

        frame = encode(KIND_PUSH, 1, "g", b"p" * 1000)
        async with listening(on_link=small_sndbuf, write_high=8192, write_low=2048,
                             write_timeout_s=0.2) as served:
            sock = await raw_client(served.port, rcvbuf=4096)
            try:
                sock.send(hello(FRAMING_BINARY))
                await until(lambda: served.handlers and served.handlers[0].calls)
                role, handler = served.roles[0], served.handlers[0]
                for _ in range(2000):
                    if role.stream.outbox.paused:
                        break
                    for _ in range(8):
                        role.send(frame)
                    await turns(3)
                assert role.stream.outbox.paused
                await until(lambda: handler.count("lost") == 1, timeout_s=3)
                assert role.closing and role.buffered() == 0
                role.send(frame)                         # dropped, no error
            finally:
                sock.close()
    run(main)


# ---------------------------------------------------------------- the idle watch
def test_expect_idle_fires_after_silence_and_each_byte_rearms_it(run: Run) -> None:
    async def main() -> None:
        async with listening() as served, connected(served.port) as (_, writer):
            writer.write(hello(FRAMING_BINARY))
            await until(lambda: served.handlers and served.handlers[0].calls)
            role, handler = served.roles[0], served.handlers[0]
            role.expect_idle(0.5)
            assert role.stream.input_kind == PY_K_IDLE
            ping = encode(KIND_PING, 1)
            for i in range(8):                           # 0.8 s of bytes every 0.1 s
                await asyncio.sleep(0.1)
                writer.write(ping[i:i + 1])
            assert handler.count("idle") == 0
            started = time.monotonic()
            await until(lambda: handler.count("idle") == 1, timeout_s=3)
            assert time.monotonic() - started >= 0.35
            await asyncio.sleep(0.4)
            assert handler.count("idle") == 1            # once per expect_idle
            role.expect_idle(0.1)
            role.expect_idle(0)                          # switched off
            await asyncio.sleep(0.3)
            assert handler.count("idle") == 1
    run(main)


def test_expect_idle_is_suspended_while_reading_is_paused(run: Run) -> None:
    async def main() -> None:
        async with listening() as served, connected(served.port) as (_, writer):
            writer.write(hello(FRAMING_BINARY))
            await until(lambda: served.handlers and served.handlers[0].calls)
            role, handler = served.roles[0], served.handlers[0]
            role.expect_idle(0.2)
            role.pause_reading()
            assert role.stream.reading_paused
            writer.write(encode(KIND_PING, 3))           # stays in the kernel while paused
            await asyncio.sleep(0.5)
            assert handler.count("idle") == 0
            assert handler.frames()[1:] == []
            role.resume_reading()
            await until(lambda: len(handler.frames()) == 2)
            assert handler.frames()[1].id == 3
            await until(lambda: handler.count("idle") == 1, timeout_s=3)
    run(main)


# ---------------------------------------------------------------- closing
def test_close_flushes_everything_then_closes(run: Run) -> None:
    async def main() -> None:
        async with listening() as served, connected(served.port) as (reader, writer):
            writer.write(hello(FRAMING_BINARY))
            await until(lambda: served.handlers and served.handlers[0].calls)
            role, handler = served.roles[0], served.handlers[0]
            body = encode(KIND_PUSH, 1, "g", b"z" * 60000)
            for _ in range(40):                          # 2.4 MB: past every buffer
                role.send(body)
            last = encode(KIND_CLOSE, 0, "going_away", "bye")
            role.send(last)
            role.close(5.0)
            role.close(5.0)                              # idempotent
            assert role.closing
            role.send(encode(KIND_PING, 1))              # after close: dropped
            got = await read_to_eof(reader, 10)
            assert got == body * 40 + last
            assert handler.count("lost") == 0        # half-closed: waits for the client's FIN
            writer.close()                           # the client hangs up on our CLOSE
            await until(lambda: handler.count("lost") == 1, timeout_s=2)
            assert handler.kinds()[-1] == "lost" and handler.count("lost") == 1
    run(main)


def test_close_gives_up_after_its_timeout_when_the_client_reads_nothing(run: Run) -> None:
    async def main() -> None:
        def small_sndbuf(role: PushRole) -> None:
            transport = role.stream.transport
            assert transport is not None
            transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

        async with listening(on_link=small_sndbuf) as served:
            sock = await raw_client(served.port, rcvbuf=4096)
            try:
                sock.send(hello(FRAMING_BINARY))
                await until(lambda: served.handlers and served.handlers[0].calls)
                role, handler = served.roles[0], served.handlers[0]
                for _ in range(20):
                    role.send(encode(KIND_PUSH, 1, "g", b"z" * 60000))
                await turns()
                assert role.buffered() > 0
                started = time.monotonic()
                role.close(0.3)
                await until(lambda: handler.count("lost") == 1, timeout_s=3)
                assert 0.25 <= time.monotonic() - started < 2.5
            finally:
                sock.close()
    run(main)


def test_abort_drops_the_connection_and_link_lost_comes_once(run: Run) -> None:
    async def main() -> None:
        async with listening() as served, connected(served.port) as (reader, writer):
            writer.write(hello(FRAMING_BINARY))
            await until(lambda: served.handlers and served.handlers[0].calls)
            role, handler = served.roles[0], served.handlers[0]
            role.send(encode(KIND_PING, 1))             # corked: dropped with the abort
            role.abort()
            assert role.closing
            role.abort()
            role.close(1.0)
            role.send(encode(KIND_PING, 2))
            with contextlib.suppress(ConnectionError):
                assert await read_to_eof(reader) == b""
            await until(lambda: handler.count("lost") == 1)
            await asyncio.sleep(0.02)
            assert handler.kinds() == ["frames", "lost"]
            assert role.buffered() == 0
    run(main)


def test_the_peer_hanging_up_reports_link_lost_once(run: Run) -> None:
    async def main() -> None:
        async with listening() as served:
            async with connected(served.port) as (_, writer):
                writer.write(hello(FRAMING_BINARY))
                await until(lambda: served.handlers and served.handlers[0].calls)
            role, handler = served.roles[0], served.handlers[0]
            await until(lambda: handler.count("lost") == 1)
            assert role.closing and role.stream.lost
            role.close(1.0)
            role.abort()
            role.expect_idle(1.0)
            await asyncio.sleep(0.02)
            assert handler.kinds() == ["frames", "lost"]
    run(main)


# ---------------------------------------------------------------- the server's shutdown
class Registry:
    """The server's side of ``registry=``: the streams it would shut down."""

    def __init__(self) -> None:
        self.streams: set[Stream] = set()
        self.joined = 0
        self.left = 0

    def join(self, stream: Stream) -> None:
        self.streams.add(stream)
        self.joined += 1

    def leave(self, stream: Stream) -> None:
        self.streams.discard(stream)
        self.left += 1


def test_shutdown_reaches_the_handler_through_the_registry(run: Run) -> None:
    async def main() -> None:
        registry = Registry()
        async with listening(registry=registry) as served, \
                connected(served.port) as (reader, writer):
            writer.write(hello(FRAMING_BINARY))
            await until(lambda: served.handlers and served.handlers[0].calls)
            handler = served.handlers[0]
            assert registry.joined == 1 and len(registry.streams) == 1
            for stream in list(registry.streams):
                stream.begin_shutdown()                 # graceful: the handler says going_away
            assert handler.calls[-1] == ("shutdown", False)
            for stream in list(registry.streams):
                stream.abort_now()                      # the grace period ran out
            assert handler.calls[-1] == ("shutdown", True)
            await until(lambda: handler.count("lost") == 1)
            assert registry.left == 1 and not registry.streams
            with contextlib.suppress(ConnectionError):
                assert await read_to_eof(reader) == b""
    run(main)


def test_graceful_shutdown_of_a_connection_never_started_closes_it(run: Run) -> None:
    async def main() -> None:
        registry = Registry()
        async with listening(start=False, registry=registry) as served, \
                connected(served.port) as (reader, _):
            await until(lambda: registry.streams)
            for stream in list(registry.streams):
                stream.begin_shutdown()
            assert await read_to_eof(reader) == b""
            await until(lambda: not registry.streams)
            assert served.handlers[0].calls == []
    run(main)


# ---------------------------------------------------------------- the receive buffer
def test_a_1_mib_frame_arrives_whole_while_the_buffer_grows_and_is_given_back(run: Run) -> None:
    async def main() -> None:
        payload = bytes(range(256)) * 4096                   # 1 MiB
        frame = encode(KIND_CALL, 1, "upload", payload)
        async with listening(max_frame_bytes=MIB + 64) as served, \
                connected(served.port) as (_, writer):
            writer.write(hello(FRAMING_BINARY))
            await until(lambda: served.handlers and served.handlers[0].calls)
            role, handler = served.roles[0], served.handlers[0]
            buffer = role.stream.buffer
            assert buffer.capacity_bytes == 0                # idle: no receive buffer held
            capacities: set[int] = set()
            writer.write(frame)
            deadline = time.monotonic() + 10
            while len(handler.frames()) < 2 and time.monotonic() < deadline:
                capacities.add(buffer.capacity_bytes)
                await asyncio.sleep(0)
            got = handler.frames()
            assert len(got) == 2 and got[1].payload == payload and got[1].name == "upload"
            assert max(capacities) > DEFAULT_RECV_INITIAL    # reads that filled it grew it
            assert max(capacities) <= DEFAULT_RECV_MAX
            writer.write(encode(KIND_PING, 1))
            await until(lambda: len(handler.frames()) == 3)
            assert buffer.capacity_bytes == 0                # given back after a small read
    run(main)


def test_listener_arguments_are_checked(run: Run) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with pytest.raises(ValueError):
            push_listener(loop, lambda r: None, max_frame_bytes=63)
        with pytest.raises(ValueError):
            push_listener(loop, lambda r: None, max_frame_bytes=MIB, write_high=10, write_low=20)
        with pytest.raises(ValueError):
            push_listener(loop, lambda r: None, max_frame_bytes=MIB, recv_initial=4096,
                          recv_max=1024)
        with pytest.raises(TypeError):
            push_listener(loop, None, max_frame_bytes=MIB)  # type: ignore[arg-type]
        listener = push_listener(loop, lambda r: None, max_frame_bytes=MIB)
        assert (listener.max_frame_bytes, listener.write_high, listener.write_low,
                listener.recv_initial, listener.recv_max) == (MIB, 65536, 16384,
                                                              DEFAULT_RECV_INITIAL, DEFAULT_RECV_MAX)
        with pytest.raises(TypeError):
            PushRole()
    run(main)


# ---------------------------------------------------------------- behind a proxy
def test_a_proxy_header_from_a_trusted_peer_names_the_client(run: Run) -> None:
    async def main() -> None:
        async with listening(proxy_trusted=lambda host: host == "127.0.0.1") as served, \
                connected(served.port) as (_, writer):
            writer.write(b"PROXY TCP4 203.0.113.7 127.0.0.1 51234 9000\r\n" + hello(FRAMING_BINARY))
            await until(lambda: served.handlers and served.handlers[0].calls)
            role = served.roles[0]
            assert role.peer == ("203.0.113.7", 51234)
            assert [f.kind for f in served.handlers[0].frames()] == [KIND_HELLO]
    run(main)


# ---------------------------------------------------------------- over TLS
def test_frames_and_pushes_over_tls(run: Run, tmp_path: Any) -> None:
    """asyncio's TLS transport reads into slices of the receive buffer; the buffer's resizes
    must not move it under a held view."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    async def main() -> None:
        payload = bytes(range(256)) * 1024                   # 256 KiB: reads fill the buffer
        data = hello(FRAMING_BINARY) + encode(KIND_CALL, 1, "upload", payload) \
            + encode(KIND_PING, 2)
        template = PushTemplate("room:a", b"tls" * 10, 0, FRAMING_BINARY)
        async with listening(tls=server_context) as served:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", served.port, ssl=client_context, server_hostname="127.0.0.1")
            try:
                writer.write(data)
                await until(lambda: served.handlers and len(served.handlers[0].frames()) == 3)
                role, handler = served.roles[0], served.handlers[0]
                assert handler.frames() == decode(data, FRAMING_BINARY)
                for seq in range(1, 11):
                    role.send_push(template, seq)
                expected = b"".join(template.frame(seq) for seq in range(1, 11))
                got = await asyncio.wait_for(reader.readexactly(len(expected)), 5)
                assert got == expected
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError, ssl.SSLError):
                    await writer.wait_closed()
            await until(lambda: handler.count("lost") == 1)
    run(main)
