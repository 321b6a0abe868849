"""The readers of redis_fanout.py's peers, as cheap as pushwire's members and read the same way
(whole fixed-size records checked by strided slices, counted by length, timestamps taken from
each): a Socket.IO client over a raw WebSocket, and a raw Redis pub/sub subscriber.

- ``SioMember``: engine.io 4 / Socket.IO 5 straight over WebSocket
  (``/socket.io/?EIO=4&transport=websocket``, no polling first): the server's OPEN packet
  (``0{...}``), our CONNECT to the main namespace (``40``), its CONNECT answer (``40{"sid":...}``,
  sent once the server's connect handler, which joins the room, has returned); then each event
  is one text message ``42["m","<100 characters>"]`` (112 bytes on the wire); an engine.io PING
  (``2``) is answered with a PONG (``3``).  The 100 characters are the message's send time in ns
  (19 digits), its number (12 digits) and padding: a Socket.IO event carries JSON, so the same
  message as pushwire's 100 bytes is sent as text.
- ``RespSubscriber``: ``SUBSCRIBE`` written by hand and the pushed ``message`` arrays (RESP2)
  counted: what redis-py's fastest subscriber could at best do, so the raw baseline is Redis's.
"""
from __future__ import annotations

import asyncio
import base64
import functools
import os
import time
from typing import Any

from pushwire import HOST, MESSAGE_BYTES, BenchError, Tally

__all__ = ["RAW_CHANNEL", "RespSubscriber", "SioMember", "open_sio", "sio_text"]

RAW_CHANNEL = "bench:raw"
SIO_EVENT = "m"
_MASK_KEY = b"\x00\x00\x00\x00"


def sio_text(number: int) -> str:
    """The Socket.IO publisher's message: 100 ASCII characters, send time and number first."""
    head = f"{time.monotonic_ns():019d}{number:012d}"
    return head + "x" * (MESSAGE_BYTES - len(head))


class _Records:
    """Fixed-size records: which bytes every one has, where its timestamp is."""

    __slots__ = ("size", "checks", "stamp_at", "stamp_len", "binary")

    def __init__(self, size: int, fixed: dict[int, int], stamp_at: int, binary: bool) -> None:
        self.size = size
        self.checks = tuple(sorted(fixed.items()))
        self.stamp_at = stamp_at
        self.stamp_len = 8 if binary else 19
        self.binary = binary

    def take(self, data: bytes, tally: Tally) -> int:
        """Count the whole records at the head of ``data``; the bytes they take (0: none there)."""
        size = self.size
        k = len(data) // size
        if not k:
            return 0
        whole = k * size
        if not all(data[at:whole:size] == bytes((byte,)) * k for at, byte in self.checks):
            return 0
        at, n = self.stamp_at, self.stamp_len
        if self.binary:
            tally.stamps(int.from_bytes(data[i:i + n], "little") for i in range(at, whole, size))
        else:
            tally.stamps(int(data[i:i + n]) for i in range(at, whole, size))
        return whole


_SIO_BODY = len(f'42["{SIO_EVENT}",""]') + MESSAGE_BYTES
_SIO_RECORDS = _Records(2 + _SIO_BODY, {0: 0x81, 1: _SIO_BODY, 2: ord("4"), 3: ord("2"), 4: ord("[")},
                        2 + len(f'42["{SIO_EVENT}","'), binary=False)
_RESP_HEAD = f"*3\r\n$7\r\nmessage\r\n${len(RAW_CHANNEL)}\r\n{RAW_CHANNEL}\r\n${MESSAGE_BYTES}\r\n".encode()
_RESP_RECORDS = _Records(len(_RESP_HEAD) + MESSAGE_BYTES + 2, {0: ord("*"), 1: ord("3"), 4: ord("$")},
                         len(_RESP_HEAD), binary=True)


class SioMember(asyncio.Protocol):
    """One Socket.IO client on a raw WebSocket; ``ready`` resolves on the CONNECT answer."""

    def __init__(self, port: int, tally: Tally) -> None:
        self.port = port
        self.tally = tally
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: Any = None
        self.upgraded = False
        self.pending = b""
        self.lost = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write((f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
                         f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n").encode())

    def send_text(self, text: str) -> None:
        """One masked text message (RFC 6455 §5.2, §5.3), zero key: short control packets only."""
        if self.transport is not None and not self.transport.is_closing():
            data = text.encode()
            assert len(data) < 126
            self.transport.write(bytes([0x81, 0x80 | len(data)]) + _MASK_KEY + data)

    def data_received(self, data: bytes) -> None:
        if self.pending:
            data, self.pending = self.pending + data, b""
        if not self.upgraded:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.pending = data
                return
            if not data.startswith(b"HTTP/1.1 101"):
                self._fail(f"WebSocket upgrade refused: {data[:60]!r}")
                return
            self.upgraded, data = True, data[end + 4:]
        taken = _SIO_RECORDS.take(data, self.tally)
        if taken == len(data):
            return
        self._walk(data[taken:])

    def _walk(self, data: bytes) -> None:
        at, end = 0, len(data)
        while end - at >= 2:
            b0, n, start = data[at], data[at + 1] & 0x7F, at + 2
            if n == 126:
                if end - at < 4:
                    break
                n, start = int.from_bytes(data[at + 2:at + 4], "big"), at + 4
            elif n == 127:
                if end - at < 10:
                    break
                n, start = int.from_bytes(data[at + 2:at + 10], "big"), at + 10
            if end - start < n:
                break
            opcode, payload = b0 & 0x0F, data[start:start + n]
            at = start + n
            if opcode == 0x1:
                self._packet(payload)
            elif opcode == 0x9 and self.transport is not None:      # §5.5.2
                self.transport.write(bytes([0x8A, 0x80 | n]) + _MASK_KEY + payload)
            elif opcode == 0x8 and self.transport is not None:
                self.transport.close()
        self.pending = data[at:]

    def _packet(self, packet: bytes) -> None:
        if packet.startswith(b'42["'):                               # an event
            start = len(f'42["{SIO_EVENT}","')
            self.tally.stamps((int(packet[start:start + 19]),))
        elif packet == b"2":                                         # engine.io PING -> PONG
            self.send_text("3")
        elif packet.startswith(b"0{"):                               # engine.io OPEN
            self.send_text("40")                                     # Socket.IO CONNECT to "/"
        elif packet.startswith(b"40"):                               # Socket.IO CONNECT answer
            if not self.ready.done():
                self.ready.set_result(None)
        elif packet.startswith(b"44") or packet.startswith(b"1"):    # CONNECT_ERROR, CLOSE
            self._fail(f"Socket.IO refused or closed: {packet[:60]!r}")

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = True
        self.tally.closed += 1
        if not self.ready.done():
            self.ready.set_exception(BenchError(f"connection lost before CONNECT: {exc}"))

    def _fail(self, why: str) -> None:
        self.tally.errors.append(why)
        if not self.ready.done():
            self.ready.set_exception(BenchError(why))
        if self.transport is not None:
            self.transport.abort()


async def open_sio(ports: list[int], count: int, tally: Tally, *, batch: int = 100,
                   timeout_s: float = 60.0) -> list[SioMember]:
    """``count`` Socket.IO members, member i on ``ports[i % len(ports)]``, in the room."""
    loop = asyncio.get_running_loop()
    members: list[SioMember] = []
    for first in range(0, count, batch):
        made = []
        for i in range(first, min(count, first + batch)):
            port = ports[i % len(ports)]
            _, member = await loop.create_connection(functools.partial(SioMember, port, tally), HOST, port)
            made.append(member)
        await asyncio.wait_for(asyncio.gather(*(m.ready for m in made)), timeout_s)
        members += made
    return members


async def close_sio(members: list[SioMember]) -> None:
    """A WebSocket close (1000) on each, a bounded wait, then drop what is left."""
    for member in members:
        if member.transport is not None and not member.transport.is_closing():
            member.transport.write(bytes([0x88, 0x82]) + _MASK_KEY + (1000).to_bytes(2, "big"))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while any(not m.lost for m in members) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    for member in members:
        if member.transport is not None:
            member.transport.abort()


class RespSubscriber(asyncio.Protocol):
    """A raw Redis subscriber of ``RAW_CHANNEL``; ``ready`` resolves on the SUBSCRIBE answer."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: Any = None
        self.pending = b""
        self.lost = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(f"SUBSCRIBE {RAW_CHANNEL}\r\n".encode())

    def data_received(self, data: bytes) -> None:
        if self.pending:
            data, self.pending = self.pending + data, b""
        if not self.ready.done():
            answer = f"*3\r\n$9\r\nsubscribe\r\n${len(RAW_CHANNEL)}\r\n{RAW_CHANNEL}\r\n:1\r\n".encode()
            if len(data) < len(answer):
                self.pending = data
                return
            if not data.startswith(answer):
                self.ready.set_exception(BenchError(f"SUBSCRIBE answered {data[:60]!r}"))
                return
            self.ready.set_result(None)
            data = data[len(answer):]
        at = 0
        while at < len(data):
            taken = _RESP_RECORDS.take(data[at:], self.tally)
            if not taken:    # a record split across reads (anything else is not sent here)
                break
            at += taken
        rest = data[at:]
        if len(rest) >= _RESP_RECORDS.size:
            self.tally.errors.append(f"unexpected bytes from Redis: {rest[:60]!r}")
            if self.transport is not None:
                self.transport.abort()
            return
        self.pending = rest

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = True
        self.tally.closed += 1
        if not self.ready.done():
            self.ready.set_exception(BenchError(f"connection to Redis lost: {exc}"))


async def open_resp(port: int, tallies: list[Tally]) -> list[RespSubscriber]:
    """A raw subscriber to the Redis server on ``port`` per tally."""
    loop = asyncio.get_running_loop()
    subs = []
    for tally in tallies:
        _, sub = await loop.create_connection(functools.partial(RespSubscriber, tally), HOST, port)
        await asyncio.wait_for(sub.ready, 30)
        subs.append(sub)
    return subs
