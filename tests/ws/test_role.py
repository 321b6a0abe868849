"""``WebSocketRole`` on a fake transport: every state and event the role handles, no sockets.

A role takes over a live server stream (``websocket_role`` switches it, as ``conn.upgrade``'s
``take_over`` does); the test feeds the peer's frames through ``get_buffer``/``buffer_updated``
and reads what the role wrote with ``parse`` below (written here, not cyserve's decoder).
Deadlines fire by moving an armed slot to now (``Deadline.py_set``) and letting the loop's timer
run; no test waits for a real timeout.  The transport's end is ``FakeTransport.state``: "open",
"closed", "lingering" (our close frame went, half-closed, still reading) or "aborted".
"""
from __future__ import annotations

import asyncio
import os
import struct
import zlib
from typing import Any

import pytest

from cyserve._core.http.server import server_connection
from cyserve._core.http.state import ServerState
from cyserve._core.io.deadline import PY_SLOT_INPUT, PY_SLOT_ROLE
from cyserve._core.ws.deflate import Deflater, Inflater
from cyserve._core.ws.role import (
    PY_WS_CLOSED, PY_WS_CLOSING, PY_WS_LOST, PY_WS_OPEN, encode_message, websocket_role,
)
from cyserve.config import ServerConfig, WebSocketLimits
from cyserve.errors import WebSocketDisconnect

from tests.core.fakes import FakeTransport, eof, feed, lose, settle

LIMITS = WebSocketLimits(ping_interval_s=None, close_timeout_s=5.0, compression=False)
TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


# ---------------------------------------------------------------- frames, by hand
def frame(opcode: int, payload: bytes = b"", *, mask: bool = True, fin: bool = True,
          rsv1: bool = False) -> bytes:
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    flag = 0x80 if mask else 0
    if n < 126:
        head += bytes([flag | n])
    elif n < 65536:
        head += bytes([flag | 126]) + struct.pack("!H", n)
    else:
        head += bytes([flag | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def close_frame(code: int | None = 1000, reason: str = "", **kw: Any) -> bytes:
    payload = b"" if code is None else struct.pack("!H", code) + reason.encode()
    return frame(CLOSE, payload, **kw)


def parse(data: bytes) -> list[tuple[int, bool, bool, bytes]]:
    """(opcode, rsv1, masked, payload) of each whole frame in ``data``."""
    out = []
    i = 0
    while i < len(data):
        b0, b1 = data[i], data[i + 1]
        n, i = b1 & 0x7F, i + 2
        if n == 126:
            (n,), i = struct.unpack("!H", data[i:i + 2]), i + 2
        elif n == 127:
            (n,), i = struct.unpack("!Q", data[i:i + 8]), i + 8
        key = data[i:i + 4] if b1 & 0x80 else b""
        i += len(key)
        payload = data[i:i + n]
        if key:
            payload = bytes(b ^ key[j % 4] for j, b in enumerate(payload))
        out.append((b0 & 0x0F, bool(b0 & 0x40), bool(key), payload))
        i += n
    return out


def code_of(payload: bytes) -> int:
    return struct.unpack("!H", payload[:2])[0]


class Conn:
    """A stream on a fake transport, taken over by a WebSocketRole."""

    def __init__(self, limits: WebSocketLimits = LIMITS, *, is_client: bool = False,
                 inflater: Any = None, deflater: Any = None) -> None:
        async def entry(conn: Any, head: Any, body: Any) -> None:
            raise AssertionError("no HTTP here")
        self.state = ServerState(entry, ServerConfig(), asyncio.get_running_loop())
        self.stream = server_connection(self.state)
        self.transport = FakeTransport()
        self.stream.connection_made(self.transport)
        self.role = websocket_role(self.stream, limits, is_client, inflater, deflater)
        self.seen = 0

    def feed(self, data: bytes) -> None:
        feed(self.stream, data)

    def written(self) -> list[tuple[int, bool, bool, bytes]]:
        """Frames written since the last call."""
        data = self.transport.written
        new, self.seen = data[self.seen:], len(data)
        return parse(new)

    async def fire(self, slot: int) -> None:
        assert self.stream.deadline.py_armed(slot), "the slot is not armed"
        self.stream.deadline.py_set(slot, 0.001)
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------- receiving
def test_first_input_is_the_unread_tail_after_the_101(run):
    async def main():
        got: list[Any] = []
        limits = LIMITS

        async def entry(conn: Any, head: Any, body: Any) -> None:
            def take_over(stream: Any) -> None:
                got.append(websocket_role(stream, limits))
            conn.upgrade("websocket", [("Sec-WebSocket-Accept", "x")], take_over)

        state = ServerState(entry, ServerConfig(), asyncio.get_running_loop())
        stream = server_connection(state)
        transport = FakeTransport()
        stream.connection_made(transport)
        request = (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        feed(stream, request + frame(TEXT, b"early") + frame(BINARY, b"bird"))
        role = got[0]
        assert transport.written.startswith(b"HTTP/1.1 101 ")
        assert role.queued == 2
        assert await role.receive() == "early"
        assert await role.receive() == b"bird"
    run(main)


def test_a_waiting_receive_gets_the_message_directly(run):
    async def main():
        c = Conn()
        waiter = c.role.receive()
        assert isinstance(waiter, asyncio.Future) and not waiter.done()
        c.feed(frame(TEXT, "é".encode()))
        assert waiter.result() == "é" and c.role.queued == 0
        with pytest.raises(RuntimeError):
            c.role.receive(), c.role.receive()
    run(main)


def test_a_cancelled_receive_loses_no_message(run):
    async def main():
        c = Conn()
        waiter = c.role.receive()
        waiter.cancel()
        c.feed(frame(BINARY, b"kept"))
        assert c.role.queued == 1
        assert await c.role.receive() == b"kept"
    run(main)


def test_full_queue_holds_reading_and_receiving_releases_it(run):
    async def main():
        c = Conn(WebSocketLimits(ping_interval_s=None, max_receive_queue=2, compression=False))
        c.feed(frame(TEXT, b"1") + frame(TEXT, b"2") + frame(TEXT, b"3") + frame(TEXT, b"4"))
        assert c.role.queued == 2 and c.role.reading_held
        assert c.transport.calls.count("pause_reading") == 1
        assert c.stream.pause_reasons != 0
        assert await c.role.receive() == "1"                # one taken: 3 decoded from the buffer
        assert c.role.queued == 2 and c.role.reading_held
        assert await c.role.receive() == "2"
        assert await c.role.receive() == "3"
        assert not c.role.reading_held and not c.stream.reading_paused
        assert await c.role.receive() == "4"
        assert c.role.queued == 0
    run(main)


# ---------------------------------------------------------------- pings
def test_ping_is_answered_with_a_pong(run):
    async def main():
        c = Conn()
        c.feed(frame(PING, b"abc"))
        assert c.written() == [(PONG, False, False, b"abc")]   # a server never masks (§5.1)
    run(main)


def test_ping_future_resolves_with_its_pong_and_earlier_pings_too(run):
    async def main():
        c = Conn()
        first = c.role.ping(b"one")
        second = c.role.ping()
        sent = c.written()
        assert [(op, p) for op, _, _, p in sent][0] == (PING, b"one")
        assert sent[1][0] == PING and len(sent[1][3]) == 4
        with pytest.raises(ValueError):
            c.role.ping(b"one")                           # already waiting
        with pytest.raises(ValueError):
            c.role.ping(b"x" * 126)
        c.feed(frame(PONG, b"unsolicited"))
        assert not first.done()
        c.feed(frame(PONG, sent[1][3]))                   # answers the latest: both resolve
        assert first.result() >= 0 and second.result() >= 0
    run(main)


def test_keepalive_pings_after_silence_and_a_missed_pong_is_1011(run):
    async def main():
        c = Conn(WebSocketLimits(ping_interval_s=30, ping_timeout_s=30, compression=False))
        waiter = c.role.receive()
        assert c.stream.input_kind == 1                  # the keepalive watch
        await c.fire(PY_SLOT_INPUT)
        [(op, _, _, payload)] = c.written()
        assert op == PING
        await c.fire(PY_SLOT_ROLE)                       # no pong in time
        [(op, _, _, payload)] = c.written()
        assert (op, code_of(payload)) == (CLOSE, 1011)
        assert c.transport.state == "lingering" and c.role.state == PY_WS_CLOSED
        with pytest.raises(WebSocketDisconnect) as caught:
            waiter.result()
        assert caught.value.code == 1011
    run(main)


def test_keepalive_pong_rearms_the_watch(run):
    async def main():
        c = Conn(WebSocketLimits(ping_interval_s=30, ping_timeout_s=30, compression=False))
        await c.fire(PY_SLOT_INPUT)
        [(_, _, _, payload)] = c.written()
        assert c.stream.deadline.py_armed(PY_SLOT_ROLE)
        c.feed(frame(PONG, payload))
        assert not c.stream.deadline.py_armed(PY_SLOT_ROLE)
        assert c.stream.input_kind == 1 and c.role.state == PY_WS_OPEN
    run(main)


def test_no_pong_deadline_while_reading_is_held(run):
    async def main():
        c = Conn(WebSocketLimits(ping_interval_s=30, ping_timeout_s=30, max_receive_queue=1,
                                 compression=False))
        await c.fire(PY_SLOT_INPUT)
        c.feed(frame(TEXT, b"a") + frame(TEXT, b"b"))    # the queue fills: the pong can't be read
        assert c.role.reading_held
        assert not c.stream.deadline.py_armed(PY_SLOT_ROLE)
        assert await c.role.receive() == "a"
        assert c.stream.input_kind == 1                  # watching again
    run(main)


# ---------------------------------------------------------------- closing
@pytest.mark.parametrize("code, reason, echoed, seen", [
    pytest.param(1001, "bye", 1001, 1001, id="echoes-the-code"),
    pytest.param(None, "", 1000, 1005, id="codeless-answered-with-1000"),
    pytest.param(4321, "app", 4321, 4321, id="application-code"),
])
def test_peer_close_is_echoed_and_the_server_closes_tcp(run, code, reason, echoed, seen):
    async def main():
        c = Conn()
        waiter = c.role.receive()
        c.feed(close_frame(code, reason))
        [(op, _, _, payload)] = c.written()
        assert (op, code_of(payload)) == (CLOSE, echoed)
        assert c.transport.state == "closed"
        assert (c.role.close_code, c.role.close_reason) == (seen, reason)
        with pytest.raises(WebSocketDisconnect) as caught:
            waiter.result()
        assert (caught.value.code, caught.value.reason) == (seen, reason)
        with pytest.raises(WebSocketDisconnect):
            c.role.send("late")
    run(main)


def test_queued_messages_are_still_received_after_the_close(run):
    async def main():
        c = Conn()
        c.feed(frame(TEXT, b"last") + close_frame(1000) + frame(TEXT, b"ignored"))
        assert await c.role.receive() == "last"
        with pytest.raises(WebSocketDisconnect):
            await c.role.receive()
    run(main)


def test_local_close_waits_for_the_peer_then_closes_tcp(run):
    async def main():
        c = Conn()
        closed = c.role.close(4000, "done")
        [(op, _, _, payload)] = c.written()
        assert (op, code_of(payload), payload[2:]) == (CLOSE, 4000, b"done")
        assert c.role.state == PY_WS_CLOSING and c.transport.state == "open"
        assert c.stream.deadline.py_armed(PY_SLOT_ROLE)
        with pytest.raises(WebSocketDisconnect):
            c.role.send("no data after our close")       # §5.5.1
        c.feed(frame(TEXT, b"in flight") + close_frame(4000))
        assert c.written() == []                         # no second close frame
        assert c.transport.state == "closed"
        assert await c.role.receive() == "in flight"
        assert not closed.done()
        lose(c.stream)
        assert closed.done() and c.role.state == PY_WS_LOST and c.role.close_code == 4000
        with pytest.raises(ValueError):
            c.role.close(1005)
    run(main)


def test_local_close_unanswered_aborts_after_the_timeout(run):
    async def main():
        c = Conn()
        c.role.close()
        await c.fire(PY_SLOT_ROLE)
        assert c.transport.state == "aborted"
        lose(c.stream)
        assert c.role.close_code == 1000                 # what we sent: the only close seen
    run(main)


def test_protocol_error_closes_with_the_decoders_code(run):
    async def main():
        c = Conn()
        waiter = c.role.receive()
        c.feed(frame(TEXT, b"unmasked", mask=False))      # §5.1: a client must mask
        [(op, _, _, payload)] = c.written()
        assert (op, code_of(payload)) == (CLOSE, 1002)
        assert c.transport.state == "lingering"
        assert isinstance(waiter.exception(), WebSocketDisconnect)
        assert waiter.exception().code == 1002
    run(main)


def test_invalid_utf8_is_1007_and_too_big_is_1009(run):
    async def main():
        c = Conn()
        c.feed(frame(TEXT, b"\xff"))
        assert code_of(c.written()[0][3]) == 1007
        c = Conn(WebSocketLimits(ping_interval_s=None, max_message_bytes=10, compression=False))
        c.feed(frame(BINARY, b"x" * 11))
        assert code_of(c.written()[0][3]) == 1009
    run(main)


def test_connection_lost_fails_every_waiter_with_1006(run):
    async def main():
        c = Conn()
        waiter = c.role.receive()
        pinged = c.role.ping()
        closed = c.role.wait_closed()
        c.feed(frame(BINARY, b"x" * 100)[:50])           # mid-frame
        eof(c.stream, c.transport)
        lose(c.stream)
        for future in (waiter, pinged):
            assert isinstance(future.exception(), WebSocketDisconnect)
            assert future.exception().code == 1006
        assert closed.done() and c.role.close_code == 1006
        with pytest.raises(WebSocketDisconnect):
            c.role.receive()
    run(main)


def test_graceful_shutdown_closes_with_1001_and_abort_cancels_the_handler(run):
    async def main():
        c = Conn()
        c.stream.begin_shutdown()
        [(op, _, _, payload)] = c.written()
        assert (op, code_of(payload)) == (CLOSE, 1001)
        c = Conn()
        task = asyncio.ensure_future(asyncio.sleep(10))
        c.role.handler_task = task
        c.stream.abort_now()
        await settle()
        assert task.cancelled() and c.transport.state == "aborted"
        lose(c.stream)
    run(main)


# ---------------------------------------------------------------- sending
def test_send_returns_none_until_the_transport_pauses(run):
    async def main():
        c = Conn(WebSocketLimits(ping_interval_s=None, write_high_water=1000, write_low_water=100,
                                 compression=False))
        assert c.transport.limits == (1000, 100)          # the limits' marks on the transport
        assert c.role.send("free") is None
        assert c.role.send(b"\x00\x01") is None
        c.stream.pause_writing()
        waiter = c.role.send(bytearray(b"slow"))
        assert waiter is not None and c.role.write_paused
        c.stream.resume_writing()
        await waiter
        assert [(op, p) for op, _, _, p in c.written()] == [(TEXT, b"free"), (BINARY, b"\x00\x01"),
                                                              (BINARY, b"slow")]
        assert c.role.send(b'{"a":1}', True) is None
        assert c.written()[0][0] == TEXT
        with pytest.raises(TypeError):
            c.role.send(1)
    run(main)


def test_the_marks_stay_the_websockets_on_a_later_transport(run):
    # TLS started inside a proxy tunnel gives the stream a new transport (Stream.set_transport):
    # it must get the WebSocket's water marks, not the HTTP ones the stream was made with.
    async def main():
        c = Conn(WebSocketLimits(ping_interval_s=None, write_high_water=1000, write_low_water=100,
                                 compression=False))
        later = FakeTransport()
        c.stream.set_transport(later)
        assert later.limits == (1000, 100)
    run(main)


def test_a_drain_waiter_fails_with_the_close_when_the_connection_drops(run):
    async def main():
        c = Conn()
        c.stream.pause_writing()
        waiter = c.role.send(b"x")
        lose(c.stream)
        with pytest.raises(WebSocketDisconnect) as caught:
            await waiter
        assert caught.value.code == 1006
    run(main)


def test_prebuilt_frames_are_written_as_they_are(run):
    async def main():
        c = Conn()
        built = encode_message("to all")
        assert c.role.send_frame_bytes(built) is None
        c.stream.pause_writing()
        assert c.role.send_frame_bytes(built, False) is None     # no future for a broadcast
        assert c.written() == [(TEXT, False, False, b"to all")] * 2
    run(main)


def test_compressed_messages_set_rsv1_above_the_minimum(run):
    async def main():
        c = Conn(WebSocketLimits(ping_interval_s=None, compression_min_bytes=100),
                 inflater=Inflater(15, False), deflater=Deflater(12, False))
        assert c.role.compressed
        c.role.send("x" * 99)
        c.role.send("y" * 1000)
        small, big = c.written()
        assert small[:2] == (TEXT, False) and small[3] == b"x" * 99
        assert big[:2] == (TEXT, True)
        assert zlib.decompressobj(-12).decompress(big[3] + b"\x00\x00\xff\xff") == b"y" * 1000
        squeezed = zlib.compressobj(6, zlib.DEFLATED, -15)
        data = squeezed.compress(b"z" * 5000) + squeezed.flush(zlib.Z_SYNC_FLUSH)
        c.feed(frame(BINARY, data[:-4], rsv1=True))
        assert await c.role.receive() == b"z" * 5000
    run(main)


# ---------------------------------------------------------------- the client's side
def test_client_masks_and_leaves_closing_tcp_to_the_server(run):
    async def main():
        c = Conn(is_client=True)
        c.role.send("hi")
        [(op, _, masked, payload)] = c.written()
        assert (op, masked, payload) == (TEXT, True, b"hi")       # §5.3
        c.feed(frame(TEXT, b"from server", mask=False))
        assert await c.role.receive() == "from server"
        c.feed(close_frame(1000, mask=False))
        [(op, _, masked, payload)] = c.written()
        assert (op, masked, code_of(payload)) == (CLOSE, True, 1000)
        assert c.transport.state == "open"                         # §7.1.1: the server closes
        await c.fire(PY_SLOT_ROLE)                                  # ... or, after the timeout, we
        assert c.transport.state == "aborted"
        lose(c.stream)
    run(main)


def test_client_refuses_masked_frames_from_the_server(run):
    async def main():
        c = Conn(is_client=True)
        c.feed(frame(TEXT, b"masked"))
        [(op, _, masked, payload)] = c.written()
        assert (op, masked, code_of(payload)) == (CLOSE, True, 1002)
    run(main)


def test_client_eof_after_the_close_is_the_end(run):
    async def main():
        c = Conn(is_client=True)
        closed = c.role.close()
        c.feed(close_frame(1000, mask=False))
        assert c.transport.state == "open"
        assert eof(c.stream, c.transport) is False                 # the server's FIN
        lose(c.stream)
        assert closed.done() and c.role.close_code == 1000
    run(main)
