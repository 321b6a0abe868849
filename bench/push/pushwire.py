"""The client side of bench/push's processes: push members that read in bulk, the latency tally
they share, and the publisher's message.

A member speaks cyserve-push/1 (docs/push-protocol.md) with the ``bytes`` codec (§6.3), over TCP
in the binary framing (§3.1) or over WebSocket in binary messages (§13).  It sends HELLO, waits
for WELCOME, may CALL commands (``bench.join`` puts it in the group), answers PINGs, pings when it
has sent nothing for most of a heartbeat (§10: else the server closes it as idle while it only
listens), and ACKs pushes that ask for it (§8.2).

Reading is what the member count multiplies, so it is done in bulk: every push to the bench
group is the same number of bytes on the wire (same header, group name and 100-byte payload; only
the 8-byte sequence number differs), so a read made of whole such frames is checked with a few
strided slices, its sequence numbers checked at both ends (each member's pushes are numbered
1, 2, 3... without holes, §8.1, so the first must follow the last one seen and the last must be
the first plus the count), counted by its length, and its timestamps unpacked by ``struct`` in C.
Anything else in a read (a REPLY, PING, GAP, CLOSE, a frame split across reads, a WebSocket ping)
is walked frame by frame and decoded by cyserve's own client decoder.

Every message a publisher sends is ``MESSAGE_BYTES`` (100) bytes: its CLOCK_MONOTONIC time in ns
(8 bytes, little-endian; one clock for every process on Linux), its number (8 bytes), zeros.  A
receiver's delivery latency is its own clock at the read minus that time, counted into a log
histogram (``BUCKETS_PER_E`` buckets per factor e, bench/ws/broadcast.py's) merged by the driver.
"""
from __future__ import annotations

import asyncio
import base64
import functools
import math
import os
import struct
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "ws"))  # bench/ws: the harness glue and the histogram
# The checkout, last (as bench/e2e's procs gives the servers): an installed cyserve wins.
sys.path.append(str(HERE.parents[1]))

from broadcast import BUCKETS_PER_E, percentile_ms  # noqa: E402
from wsprocs import HOST, BenchError  # noqa: E402

from cyserve._core.push.frames import (  # noqa: E402
    FLAG_ACK_REQUESTED, FRAMING_BINARY, FRAMING_WS_BINARY, KIND_ACK, KIND_CALL, KIND_CLOSE, KIND_ERROR,
    KIND_GAP, KIND_HELLO, KIND_PING, KIND_PONG, KIND_PUSH, KIND_REFUSE, KIND_REPLY, KIND_WELCOME, VERSION,
    FrameDecoder, Frame, Violation, encode,
)

__all__ = ["BUCKETS_PER_E", "GROUP", "HOST", "MESSAGE_BYTES", "TRANSPORTS", "WS_PATH", "BenchError", "Member",
           "KeepAlive", "Tally", "check_report", "connect_one", "merge_reports", "goodbye", "keep_alive", "message", "open_members", "percentile_ms"]

GROUP = "bench"          # the one group of every bench app (bench/push/apps/)
WS_PATH = "/push"        # where the bench apps serve the push protocol over WebSocket
MESSAGE_BYTES = 100
TRANSPORTS = ("tcp", "ws")
MAX_FRAME_BYTES = 1024 * 1024   # PushLimits' default: what a member's decoder accepts
_PADDING = bytes(MESSAGE_BYTES - 16)
_MASK_KEY = b"\x00\x00\x00\x00"  # a client masks (RFC 6455 §5.3); the key's value is its choice
_HEARTBEAT_SHARE = 0.8           # a silent member pings within this share of heartbeat_s


def message(number: int) -> bytes:
    """A publisher's 100-byte message: the send time (ns), the message's number, zeros."""
    return time.monotonic_ns().to_bytes(8, "little") + number.to_bytes(8, "little") + _PADDING


class Tally:
    """What the members of one process received: deliveries, their latencies, and everything
    that says the run went wrong (pushes out of order, gaps, closes, errors)."""

    __slots__ = ("received", "disorder", "gaps", "closed", "close_codes", "errors", "hist", "on_count", "_top")

    def __init__(self) -> None:
        self.hist = [0] * (BUCKETS_PER_E * 20)   # up to e^20 us: beyond any deadline here
        self._top = len(self.hist) - 1
        self.received = 0
        self.disorder = 0       # reads whose sequence numbers did not follow the last one seen
        self.gaps = 0           # pushes a GAP announced lost (§8.3)
        self.closed = 0         # connections that ended during the run
        self.close_codes: dict[str, int] = {}
        self.errors: list[str] = []
        self.on_count: Callable[[], None] | None = None   # told after each count (a publisher's window)

    def stamps(self, sent_ns: Iterable[int]) -> None:
        """Count deliveries sent at ``sent_ns`` (each a publisher's clock), read now."""
        now, log, hist, top = time.monotonic_ns(), math.log, self.hist, self._top
        count = 0
        for sent in sent_ns:
            latency_us = (now - sent) / 1000
            hist[min(top, int(log(latency_us) * BUCKETS_PER_E)) if latency_us > 1 else 0] += 1
            count += 1
        self.received += count
        if self.on_count is not None:
            self.on_count()

    def one(self, sent: int) -> None:
        """``stamps((sent,))`` without the loop: the common read holds one push."""
        latency_us = (time.monotonic_ns() - sent) / 1000
        self.hist[min(self._top, int(math.log(latency_us) * BUCKETS_PER_E)) if latency_us > 1 else 0] += 1
        self.received += 1
        if self.on_count is not None:
            self.on_count()

    def reset(self) -> None:
        """Forget the deliveries so far (a warm-up's); errors and closes stay."""
        self.received = 0
        self.hist = [0] * len(self.hist)

    def report(self) -> dict[str, Any]:
        return {"received": self.received, "disorder": self.disorder, "gaps": self.gaps, "closed": self.closed,
                "close_codes": self.close_codes, "errors": self.errors[:5],
                "hist": {i: n for i, n in enumerate(self.hist) if n}}


def merge_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """``Tally.report()``s of several processes added up (histograms bucket by bucket)."""
    out: dict[str, Any] = {"received": 0, "disorder": 0, "gaps": 0, "closed": 0, "close_codes": {}, "errors": [],
                           "hist": {}}
    for got in reports:
        for key in ("received", "disorder", "gaps", "closed"):
            out[key] += got[key]
        for code, n in got["close_codes"].items():
            out["close_codes"][code] = out["close_codes"].get(code, 0) + n
        out["errors"] += got["errors"]
        for bucket, n in got["hist"].items():
            out["hist"][int(bucket)] = out["hist"].get(int(bucket), 0) + n
    return out


def check_report(what: str, got: dict[str, Any]) -> None:
    """BenchError when a merged report says the run went wrong."""
    if got["closed"] or got["disorder"] or got["gaps"] or got["errors"]:
        raise BenchError(f"{what}: {got['closed']} connections closed {got['close_codes']}, {got['disorder']} reads "
                         f"out of sequence, {got['gaps']} pushes announced lost, errors {got['errors'][:3]}")


class _Layout:
    """Where the fields of a push to the bench group sit in its bytes on the wire."""

    __slots__ = ("frame_bytes", "checks", "head", "seq_at", "name", "payload_at", "stamp")

    def __init__(self, transport: str) -> None:
        body = 1 + 1 + 8 + 1 + len(GROUP.encode()) + MESSAGE_BYTES   # kind, flags, seq, N, name, payload
        if transport == "tcp":
            start = 4                                                  # the u32 length prefix
            self.frame_bytes = start + body
            prefix = body.to_bytes(4, "big")
            fixed = {3: prefix[3]}
        else:                                                          # an unmasked server frame
            assert body < 126, "a one-byte WebSocket length"
            start = 2
            self.frame_bytes = start + body
            fixed = {0: 0x82, 1: body}                                 # FIN + binary (RFC 6455 §5.2)
        fixed |= {start: KIND_PUSH, start + 1: 0, start + 10: len(GROUP.encode())}
        self.checks = tuple(sorted(fixed.items()))          # checked in every frame of a bulk read
        self.seq_at = start + 2
        # A read of one push is checked whole: every byte before the sequence number, then the
        # name's length and the name.
        self.head = bytes(fixed[at] if at in fixed else 0 for at in range(self.seq_at))
        self.name = bytes((len(GROUP.encode()),)) + GROUP.encode()
        self.payload_at = start + 11 + len(GROUP.encode())
        # The timestamps of whole frames, frame after frame, unpacked in one C call.
        self.stamp = struct.Struct(f"<{self.payload_at}xQ{self.frame_bytes - self.payload_at - 8}x")


_LAYOUTS = {name: _Layout(name) for name in TRANSPORTS}


class Member(asyncio.Protocol):
    """One push connection of a benchmark client (see the module docstring).  ``welcome`` is
    resolved with WELCOME's object; ``call`` returns a future of the REPLY's payload;
    ``on_push(payload, flags)`` (default: none) hears pushes walked one by one (the direct pushes
    of ``hub.send``; the bench group's pushes of a bulk read are only counted)."""

    def __init__(self, transport_name: str, port: int, tally: Tally, *, ack: bool = True) -> None:
        self.kind = transport_name
        self.layout = _LAYOUTS[transport_name]
        self.port = port
        self.tally = tally
        self.ack = ack
        loop = asyncio.get_running_loop()
        self.welcome: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.transport: Any = None
        self.upgraded = transport_name == "tcp"
        self.pending = b""       # the 101's head, then a frame split across reads
        self.next_seq = 1
        self.calls: dict[int, asyncio.Future[Any]] = {}
        self.last_call = 0
        self.sent = False        # anything sent since the last heartbeat tick
        self.ping_id = 0
        self.on_push: Callable[[bytes, int], None] | None = None
        framing = FRAMING_BINARY if transport_name == "tcp" else FRAMING_WS_BINARY
        self.framing = framing
        self.decoder = FrameDecoder(MAX_FRAME_BYTES, framing, client=True)
        self.lost = False

    # --------------------------------------------------------------- writing
    def send_frame(self, kind: int, id: int = 0, name: str = "", payload: object = None) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        data = encode(kind, id, name, payload, 0, self.framing)
        if self.kind == "ws":   # one masked binary message (RFC 6455 §5.2, §5.3), zero key
            n = len(data)
            head = bytes([0x82, 0x80 | n]) if n < 126 else bytes([0x82, 0x80 | 126]) + n.to_bytes(2, "big")
            data = head + _MASK_KEY + data
        self.transport.write(data)
        self.sent = True

    def call(self, command: str, data: bytes = b"") -> asyncio.Future[Any]:
        """CALL ``command`` (§7.1); the future gets the REPLY's payload, or BenchError on ERROR."""
        self.last_call += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.calls[self.last_call] = future
        self.send_frame(KIND_CALL, self.last_call, command, data)
        return future

    def heartbeat(self) -> None:
        """PING if nothing was sent since the last tick (§10: the server closes a peer it heard
        nothing from for idle_timeout_s, and a member only listens)."""
        if not self.sent and self.upgraded and self.welcome.done():
            self.ping_id += 1
            self.send_frame(KIND_PING, self.ping_id)
        self.sent = False

    # --------------------------------------------------------------- the loop's callbacks
    def connection_made(self, transport: Any) -> None:  # uvloop's transports are not asyncio.Transport
        self.transport = transport
        if self.kind == "tcp":
            self._hello()
        else:
            key = base64.b64encode(os.urandom(16)).decode()
            transport.write((f"GET {WS_PATH} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\nUpgrade: websocket\r\n"
                             f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                             "Sec-WebSocket-Protocol: cyserve-push.1\r\n\r\n").encode())

    def _hello(self) -> None:
        self.send_frame(KIND_HELLO, 0, VERSION, {"codec": "bytes"})

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
            self.upgraded = True
            data = data[end + 4:]
            self._hello()
        layout = self.layout
        size = layout.frame_bytes
        seq_at = layout.seq_at
        if len(data) == size and data.startswith(layout.head) \
                and data[seq_at + 8:layout.payload_at] == layout.name:   # one push: the common read
            seq = int.from_bytes(data[seq_at:seq_at + 8], "big")
            if seq != self.next_seq:
                self.tally.disorder += 1
            self.next_seq = seq + 1
            self.tally.one(int.from_bytes(data[layout.payload_at:layout.payload_at + 8], "little"))
            return
        k = len(data) // size
        if k:
            whole = k * size
            if all(data[at:whole:size] == bytes((byte,)) * k for at, byte in layout.checks):
                first = int.from_bytes(data[layout.seq_at:layout.seq_at + 8], "big")
                last_at = whole - size + layout.seq_at
                last = int.from_bytes(data[last_at:last_at + 8], "big")
                if first != self.next_seq or last - first + 1 != k:
                    self.tally.disorder += 1
                self.next_seq = last + 1
                self.tally.stamps(sent for (sent,) in layout.stamp.iter_unpack(data[:whole]))
                if whole == len(data):
                    return
                data = data[whole:]
        self._walk(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = True
        self.tally.closed += 1
        if not self.welcome.done():
            self.welcome.set_exception(BenchError(f"connection lost before WELCOME: {exc}"))
        for future in self.calls.values():
            if not future.done():
                future.set_exception(BenchError("connection lost during a call"))
        self.calls.clear()

    # --------------------------------------------------------------- frame by frame
    def _walk(self, data: bytes) -> None:
        at, end = 0, len(data)
        while True:
            if self.kind == "tcp":
                if end - at < 4:
                    break
                stop = at + 4 + int.from_bytes(data[at:at + 4], "big")
                if stop > end:
                    break
                self._frame(data[at:stop], 4)
                at = stop
                continue
            if end - at < 2:
                break
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
            if opcode == 0x2:
                self._frame(payload, 0)
            elif opcode == 0x9:                  # RFC 6455 §5.5.2: answer a ping with a pong
                if self.transport is not None and not self.transport.is_closing():
                    self.transport.write(bytes([0x8A, 0x80 | n]) + _MASK_KEY + payload)
            elif opcode == 0x8:                  # the server closed the WebSocket
                if self.transport is not None:
                    self.transport.close()
            elif opcode != 0xA:
                self._fail(f"unexpected WebSocket opcode {opcode}")
                return
            at = start + n
        self.pending = data[at:]

    def _frame(self, frame: bytes, start: int) -> None:
        """One whole push frame (``start``: where it begins after a TCP length prefix)."""
        if len(frame) > start + 10 and frame[start] == KIND_PUSH:    # §3.1: kind, flags, seq, N
            flags = frame[start + 1]
            seq = int.from_bytes(frame[start + 2:start + 10], "big")
            payload = frame[start + 11 + frame[start + 10]:]
            if seq != self.next_seq:
                self.tally.disorder += 1
            self.next_seq = seq + 1
            if len(payload) >= 8:
                self.tally.stamps((int.from_bytes(payload[:8], "little"),))
            if flags & FLAG_ACK_REQUESTED and self.ack:
                self.send_frame(KIND_ACK, seq)
            if self.on_push is not None:
                self.on_push(payload, flags)
            return
        for item in self.decoder.feed(frame):
            if isinstance(item, Violation):
                self._fail(f"the server broke the protocol: {item.reason}")
                return
            self._control(item)

    def _control(self, frame: Frame) -> None:
        kind = frame.kind
        if kind == KIND_PING:
            self.send_frame(KIND_PONG, frame.id)
        elif kind == KIND_REPLY or kind == KIND_ERROR:
            future = self.calls.pop(frame.id, None)
            if future is None or future.done():
                self.tally.errors.append(f"an answer to no call: {frame.kind} {frame.id}")
            elif kind == KIND_REPLY:
                future.set_result(frame.payload)
            else:
                future.set_exception(BenchError(f"ERROR {frame.name}: {frame.payload}"))
        elif kind == KIND_WELCOME:
            assert isinstance(frame.payload, dict)
            self.next_seq = int(frame.payload["next_seq"])
            if not self.welcome.done():
                self.welcome.set_result(frame.payload)
        elif kind == KIND_GAP:
            assert isinstance(frame.payload, int)
            self.tally.gaps += frame.payload - frame.id + 1
            self.next_seq = frame.payload + 1
        elif kind == KIND_CLOSE:
            code = frame.name
            self.tally.close_codes[code] = self.tally.close_codes.get(code, 0) + 1
            if self.transport is not None:
                self.transport.close()
        elif kind == KIND_REFUSE:
            self._fail(f"REFUSE {frame.name}: {frame.payload}")
        elif kind != KIND_PONG:
            self._fail(f"unexpected frame kind {kind}")

    def _fail(self, why: str) -> None:
        self.tally.errors.append(why)
        if not self.welcome.done():
            self.welcome.set_exception(BenchError(why))
        if self.transport is not None:
            self.transport.abort()


async def open_members(transport_name: str, ports: list[int], count: int, tally: Tally, *,
                       join: bool = True, batch: int = 100, timeout_s: float = 60.0) -> list[Member]:
    """``count`` members, member i on ``ports[i % len(ports)]``, ``batch`` at a time: HELLO done
    and, with ``join``, in the bench group (the ``bench.join`` command's REPLY arrived)."""
    loop = asyncio.get_running_loop()
    members: list[Member] = []
    for first in range(0, count, batch):
        made = []
        for i in range(first, min(count, first + batch)):
            port = ports[i % len(ports)]
            _, member = await loop.create_connection(functools.partial(Member, transport_name, port, tally),
                                                     HOST, port)
            made.append(member)
        await asyncio.wait_for(asyncio.gather(*(m.welcome for m in made)), timeout_s)
        if join:
            await asyncio.wait_for(asyncio.gather(*(m.call("bench.join") for m in made)), timeout_s)
        members += made
    return members


async def connect_one(transport_name: str, port: int, tally: Tally, timeout_s: float = 30.0) -> Member:
    """One member with its HELLO done (not in the group)."""
    _, member = await asyncio.get_running_loop().create_connection(
        functools.partial(Member, transport_name, port, tally), HOST, port)
    await asyncio.wait_for(member.welcome, timeout_s)
    return member


async def goodbye(members: list[Member], timeout_s: float = 10.0) -> None:
    """CLOSE ``normal`` (§9) on every connection, wait (bounded) for the server to close them,
    then drop whatever is left."""
    for member in members:
        member.send_frame(KIND_CLOSE, 0, "normal", "")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while any(not m.lost for m in members) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    for member in members:
        if member.transport is not None:
            member.transport.abort()


class KeepAlive:
    """One timer ticking every member's ``heartbeat`` every ``period_s``, until ``cancel``."""

    def __init__(self, members: list[Member], period_s: float) -> None:
        self.members = members
        self.period_s = period_s
        self._loop = asyncio.get_running_loop()
        self._handle = self._loop.call_later(period_s, self._tick)

    def _tick(self) -> None:
        for member in self.members:
            member.heartbeat()
        self._handle = self._loop.call_later(self.period_s, self._tick)

    def cancel(self) -> None:
        self._handle.cancel()


def keep_alive(members: list[Member]) -> KeepAlive:
    """Keep ``members`` from looking idle: a tick every ``_HEARTBEAT_SHARE`` / 2 of the
    ``heartbeat_s`` their WELCOME announced, so a member that sent nothing since the last tick
    pings within ``_HEARTBEAT_SHARE`` of it."""
    heartbeat_s = float(members[0].welcome.result()["heartbeat_s"]) if members else 20.0
    return KeepAlive(members, heartbeat_s * _HEARTBEAT_SHARE / 2)
