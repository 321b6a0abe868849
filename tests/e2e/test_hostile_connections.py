"""Hostile connections over real sockets: clients that reset at every stage, keep uploading past
an answer, or stop reading.  Each test is the regression test of a defect found by hostile
testing.

- Resets (while a handler is suspended, and at every other stage) leave the server's memory flat.
- Lingering close (RFC 9112 §9.6): an answer given while the client is still sending reaches it,
  instead of being wiped by the reset its kernel sends when the server closes on unread data;
  and lingering is bounded by ``Limits.max_linger_bytes`` and ``Timeouts.linger_s``.
- A client that stops reading is dropped after ``Timeouts.write_s`` and its response's producer
  closed; ``Timeouts.handler_s`` ends a handler that runs too long.
- A producer stops at its first write after the client reset, though ``connection_lost`` has not
  run yet (``drain()`` sees the transport that failed a send).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import h11
import pytest

from cyserve import App, Limits, StreamResponse, Timeouts, serve
from tests.support import RawClient, Reply, serving

ROOT = Path(__file__).resolve().parents[2]
RESET_APP = Path(__file__).resolve().parent / "apps" / "reset_targets.py"
LINGER_0 = struct.pack("ii", 1, 0)  # SO_LINGER on with 0 s: close() sends RST, not FIN
MiB = 1 << 20


def loop_name() -> str:
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"


def reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
    sock.close()


@contextlib.asynccontextmanager
async def serving_small_buffers(app: App, buffer_bytes: int) -> AsyncIterator[Any]:
    """Like ``serving``, with the kernel buffers of every accepted socket fixed at
    ``buffer_bytes`` (inherited from the listener), so that byte counts seen by the client
    are close to what the server itself read or wrote."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_bytes)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer_bytes)
    try:
        listener.bind(("127.0.0.1", 0))
        server = await serve(app, sock=listener)
    except BaseException:
        listener.close()
        raise
    try:
        yield server
    finally:
        await server.shutdown(timeout_s=2.0)


async def read_until_gone(sock: socket.socket, timeout_s: float) -> str:
    """Read (and drop) until the server closes ("eof") or resets ("reset") the connection."""
    loop = asyncio.get_running_loop()
    stop = loop.time() + timeout_s
    while True:
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 1 << 16), max(stop - loop.time(), 0))
        except ConnectionError:
            return "reset"
        if not data:
            return "eof"


# ====================================================================== resets leave memory flat
# Each kind: the request bytes sent (None: none), whether the client waits for the response to
# start (its receive buffer is then 4 KiB, so the server is left holding most of the response),
# the pause before the reset (long enough for the server to read what was sent and reach the
# state named), and the /counts key of the handler entry the kind must reach.
RESET_KINDS: dict[str, tuple[bytes | None, bool, float, str | None]] = {
    # The handler sleeps 200 ms; a reset 20 ms after the request lands while it is suspended
    # (about 300 handlers suspended at once with 32 clients).
    "handler-suspended": (b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n", False, 0.020, "slow"),
    "right-after-connect": (None, False, 0.002, None),
    "mid-head": (b"GET /slow HTTP/1.1\r\nHost: x\r\nX-A: ", False, 0.005, None),
    "mid-body": (b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"z" * 1000,
                 False, 0.005, "upload"),
    "mid-response-large": (b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n", True, 0.002, "big"),
    "mid-response-streamed": (b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n", True, 0.002, "stream"),
}
# The numbers, and why.  Measured this way, the old core grew by up to 10 MB per 2,000 resets of
# a suspended handler, round after round (6-8 MB in the last: every connection became cyclic
# garbage, freed only by the gc's rare full collections), and by 1-2 MB per round at most other
# stages.  2,000 resets
# per round instead of 4,000 keep the twelve runs (six kinds, two loops) under a minute on two
# shared cores while the old core's growth still shows above the bound; 32 sockets at a time,
# as in the hostile test.  Two warm-up rounds first: the heap and the gc's thresholds reach
# their working level only after a few thousand connections (one-time steps of up to 5 MB were
# seen within the first 2,500), and that is not a leak.  Then three measured rounds; only the
# last must be flat.
#
# RSS is read after each quarter of a round (once the server has settled) and a round counts
# by its highest reading.  Between full collections, garbage the gc has not reached yet pins
# memory (on stdlib asyncio each transport is itself a reference cycle), so single readings
# saw-tooth over a band up to 3 MB wide with nothing held; the band's top stays put from round
# to round unless something leaks, and four readings a round find it.
RESETS_PER_ROUND = 2000
WARMUP_RESETS = 2 * RESETS_PER_ROUND
ROUNDS = 3
READINGS_PER_ROUND = 4
CONCURRENCY = 32
FLAT_KB = 1024


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


async def get_json(port: int, path: str) -> dict[str, int]:
    client = await RawClient.open(port)
    try:
        reply = await client.request("GET", path, [("Connection", "close")])
    finally:
        await client.close()
    assert reply.status == 200, reply
    return json.loads(reply.body)


async def reset_once(port: int, kind: str) -> None:
    request, wait_response, pause_s, _ = RESET_KINDS[kind]
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    try:
        sock.setblocking(False)
        if wait_response:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        if request is not None:
            await loop.sock_sendall(sock, request)
        if wait_response:
            first = await asyncio.wait_for(loop.sock_recv(sock, 1024), 5.0)
            assert first.startswith(b"HTTP/1.1 200 "), first
        await asyncio.sleep(pause_s)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
    finally:
        sock.close()


async def reset_round(port: int, kind: str, count: int) -> None:
    async def client(share: int) -> None:
        for _ in range(share):
            await reset_once(port, kind)

    shares = [count // CONCURRENCY + (i < count % CONCURRENCY) for i in range(CONCURRENCY)]
    await asyncio.gather(*(client(n) for n in shares))


async def settle(port: int, deadline_s: float = 5.0) -> dict[str, int]:
    """Wait until nothing of the round is left in the server (only /counts' own connection)."""
    stop = time.monotonic() + deadline_s
    while True:
        counts = await get_json(port, "/counts")
        if counts["running"] == 0 and counts["connections"] <= 1:
            return counts
        assert time.monotonic() < stop, f"the server did not settle: {counts}"
        await asyncio.sleep(0.02)


@contextlib.contextmanager
def reset_server(loop: str, stderr_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """The reset targets app in a process of its own, so its RSS is the server's alone.

    glibc's mmap threshold is pinned at 64 KiB, so that the blocks a connection churns through
    (its 64 KiB receive buffer, the transport's buffer of an unsent response) are mapped on
    their own and go back to the kernel when freed.  Left in the heap (the default threshold
    is 128 KiB and rises after the first large free), they move the heap's top, and RSS with
    it, by 2-4 MB between rounds with nothing held: RSS would measure where the heap's last
    block happened to be, not what the server holds.  Objects a leaked connection keeps (its
    Python objects, its buffers) still count in RSS for as long as they live.  stderr goes to a
    file: a pipe nobody reads would block the server once full.
    """
    env = dict(os.environ, PYTHONPATH=str(ROOT), MALLOC_MMAP_THRESHOLD_=str(64 * 1024))
    with open(stderr_path, "w") as stderr:
        proc = subprocess.Popen([sys.executable, str(RESET_APP), loop], cwd=ROOT, env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("port "), (line, stderr_path.read_text())
        yield proc, int(line.split()[1])
    finally:
        try:
            proc.communicate(timeout=10)  # closes its stdin: the server shuts down
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    errors = stderr_path.read_text()
    assert proc.returncode == 0 and "Traceback" not in errors, errors[-4000:]


async def measured_round(proc: subprocess.Popen[str], port: int, kind: str, count: int) -> list[int]:
    """``count`` resets of ``kind`` in READINGS_PER_ROUND parts, RSS read after each (KiB)."""
    entry_key = RESET_KINDS[kind][3]
    before = await settle(port)
    readings = []
    for _ in range(READINGS_PER_ROUND):
        await reset_round(port, kind, count // READINGS_PER_ROUND)
        after = await settle(port)
        readings.append(rss_kb(proc.pid))
    if entry_key is not None:
        # The resets reached the stage they are named after (most of them; one that outruns
        # the server is a reset at an earlier stage, covered anyway).
        reached = after[entry_key] - before[entry_key]
        assert reached >= count // 2, (kind, reached)
    if kind == "mid-response-streamed":
        assert after["stream_closed"] == after["stream"], after  # every producer was closed
    return readings


@pytest.mark.parametrize("kind", list(RESET_KINDS))
def test_resets_at_every_stage_leave_server_memory_flat(run, kind, tmp_path, record_property):
    async def main():
        with reset_server(loop_name(), tmp_path / "server.err") as (proc, port):
            rounds = [await measured_round(proc, port, kind, WARMUP_RESETS)]
            for _ in range(ROUNDS):
                rounds.append(await measured_round(proc, port, kind, RESETS_PER_ROUND))
        peaks = [max(readings) for readings in rounds]
        growth_kb = [b - a for a, b in zip(peaks, peaks[1:])]
        last_kb = peaks[-1] - max(peaks[:-1])
        record_property("rss_growth_kb", growth_kb)
        print(f"\n{kind} on {loop_name()}: RSS peak after warm-up {peaks[0]} KiB, growth per round "
              f"of {RESETS_PER_ROUND} resets {growth_kb} KiB, last round over all before {last_kb} KiB")
        assert last_kb < FLAT_KB, rounds

    run(main, timeout_s=40)


# ====================================================================== lingering close
UPLOAD_BYTES = 4 * MiB
PIECE = 64 * 1024
TRIES = 10  # per loop: 20 in all, the count the hostile test used


def lingering_app() -> App:
    app = App(limits=Limits(max_body_bytes=1 * MiB))

    @app.post("/read")
    async def read(request):
        return {"size": len(await request.body())}

    return app


def early_answer_app() -> App:
    app = App()  # the default 16 MiB limit: the 4 MiB body is acceptable, just not wanted

    @app.post("/early")
    async def early(request):
        return "not reading that", 403

    return app


def chunked_upload() -> Iterator[bytes]:
    chunk = b"%x\r\n" % PIECE + b"u" * PIECE + b"\r\n"
    for _ in range(UPLOAD_BYTES // PIECE):
        yield chunk
    yield b"0\r\n\r\n"


def plain_upload() -> Iterator[bytes]:
    for _ in range(UPLOAD_BYTES // PIECE):
        yield b"u" * PIECE


UPLOADS = {
    # The body goes to the handler, which reads it: 413 once 1 MiB of it has arrived.
    "chunked-over-the-limit": (lingering_app, "/read", "Transfer-Encoding: chunked", chunked_upload, 413),
    # RFC 9110 §15.5.14: refused at once from the declared length; the client sends it anyway.
    "declared-over-the-limit": (lingering_app, "/read", f"Content-Length: {UPLOAD_BYTES}", plain_upload, 413),
    # An acceptable body the handler never reads: its answer goes out while the body arrives.
    "handler-answers-early": (early_answer_app, "/early", f"Content-Length: {UPLOAD_BYTES}", plain_upload, 403),
    "handler-answers-early-chunked": (early_answer_app, "/early", "Transfer-Encoding: chunked",
                                      chunked_upload, 403),
}


async def upload_whole_then_read(port: int, target: str, framing: str, body: Iterator[bytes]) -> Reply | str:
    """Send the head and the whole body ignoring what comes back, only then read the answer.
    Returns the reply, or what went wrong instead."""
    client = await RawClient.open(port)
    try:
        try:
            client.writer.write(f"POST {target} HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n".encode())
            for piece in body:
                client.writer.write(piece)
                await asyncio.wait_for(client.writer.drain(), 5.0)
        except (ConnectionError, asyncio.TimeoutError):
            pass  # the server stopped taking the body; whether the answer survived is read next
        try:
            reply = await client.response("POST", timeout_s=5.0)
        except (ConnectionError, asyncio.TimeoutError, h11.RemoteProtocolError) as exc:
            return f"no answer: {exc!r}"
        # The client is done sending: the server stops lingering and closes.
        client.writer.write_eof()
        if not await client.is_closed_by_peer(timeout_s=2.0):
            return "answered, but not closed after the client's FIN"
        return reply
    finally:
        await client.close()


@pytest.mark.parametrize("case", list(UPLOADS))
def test_answer_to_a_client_still_uploading_is_not_wiped_by_a_reset(run, case):
    make_app, target, framing, body, status = UPLOADS[case]

    async def main():
        async with serving(make_app()) as server:
            outcomes = [await upload_whole_then_read(server.port, target, framing, body())
                        for _ in range(TRIES)]
        failures = [o for o in outcomes if not isinstance(o, Reply) or o.status != status]
        assert not failures, f"{len(failures)} of {TRIES} got no {status}: {failures[:3]}"
        assert all(o.headers["connection"] == "close" for o in outcomes)

    run(main, timeout_s=60)


# A client that, after its 413, sends for as long as the server takes it.
LINGER_BYTES = 256 * 1024


async def send_after_413(port: int, piece_bytes: int, pause_s: float, give_up_s: float) -> tuple[int, float]:
    """Declare a 1 GiB body, read the 413, then keep sending ``piece_bytes`` every ``pause_s``
    until the server cuts the connection.  Returns (bytes sent after the 413, seconds until cut)."""
    loop = asyncio.get_running_loop()
    client = await RawClient.open(port)
    transport = client.writer.transport
    transport.set_write_buffer_limits(high=piece_bytes)
    # A small fixed kernel send buffer: what write() accepted is close to what left the client.
    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    try:
        await client.send(b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n")
        reply = await client.response("POST")
        assert reply.status == 413, reply
        started = loop.time()
        sent = 0
        piece = b"s" * piece_bytes
        while loop.time() - started < give_up_s:
            try:
                client.writer.write(piece)
                await client.writer.drain()
            except ConnectionError:
                return sent, loop.time() - started
            sent += piece_bytes
            if pause_s:
                await asyncio.sleep(pause_s)
        raise AssertionError(f"still taking bytes after {give_up_s}s: {sent} bytes sent")
    finally:
        await client.close()


def test_lingering_ends_after_max_linger_bytes(run):
    app = App(limits=Limits(max_body_bytes=1024, max_linger_bytes=LINGER_BYTES),
              timeouts=Timeouts(linger_s=30.0))

    @app.post("/read")
    async def read(request):
        return {"size": len(await request.body())}

    async def main():
        # 64 KiB kernel buffers (doubled by the kernel) on both sides: all the client gets away
        # with beyond the linger bound is what those buffers and its transport's hold.
        async with serving_small_buffers(app, 64 * 1024) as server:
            sent, seconds = await send_after_413(server.port, 16 * 1024, 0.0, give_up_s=10.0)
        assert seconds < 5.0, seconds  # long before linger_s (30 s): the byte bound cut it
        assert LINGER_BYTES <= sent <= LINGER_BYTES + 512 * 1024, sent

    run(main)


def test_lingering_ends_after_linger_s(run):
    app = App(limits=Limits(max_body_bytes=1024, max_linger_bytes=1 << 30),
              timeouts=Timeouts(linger_s=1.0))

    @app.post("/read")
    async def read(request):
        return {"size": len(await request.body())}

    async def main():
        async with serving(app) as server:
            # 1 KiB every 20 ms: 50 KiB/s, hours from the byte bound.
            sent, seconds = await send_after_413(server.port, 1024, 0.02, give_up_s=10.0)
        assert 0.9 <= seconds <= 3.0, (seconds, sent)

    run(main)


# ====================================================================== stalled clients, slow handlers
def every_timeout_1s() -> Timeouts:
    """Every timeout at 1 s but handler_s, left off so that only the write stall can end these."""
    return Timeouts(first_request_s=1, head_s=1, body_idle_s=1, keepalive_s=1, write_s=1, linger_s=1)


CHUNK = b"c" * (64 * 1024)


class Cursor:
    """A DB-cursor-like producer: one row per round trip, for ever; ``aclose`` sets ``closed``."""

    def __init__(self, rows: list[int], closed: asyncio.Event) -> None:
        self.rows = rows
        self.closed = closed

    def __aiter__(self) -> "Cursor":
        return self

    async def __anext__(self) -> bytes:
        await asyncio.sleep(0)  # the database round trip
        self.rows.append(1)
        return CHUNK

    async def aclose(self) -> None:
        self.closed.set()


async def open_non_reader(port: int, request: bytes) -> socket.socket:
    """A client that sends ``request`` and then reads nothing (4 KiB receive buffer)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        await loop.sock_sendall(sock, request)
    except BaseException:
        sock.close()
        raise
    return sock


@pytest.mark.parametrize("producer", ["async-generator", "cursor"])
def test_client_that_stops_reading_is_dropped_and_its_producer_closed(run, producer):
    app = App(timeouts=every_timeout_1s())
    produced: list[int] = []
    closed = asyncio.Event()

    @app.get("/forever")
    async def forever(request):
        if producer == "cursor":
            return StreamResponse(Cursor(produced, closed), content_type="application/octet-stream")

        async def chunks():
            try:
                while True:
                    produced.append(1)
                    yield CHUNK
            finally:
                closed.set()

        return StreamResponse(chunks(), content_type="application/octet-stream")

    async def main():
        loop = asyncio.get_running_loop()
        async with serving(app) as server:
            sock = await open_non_reader(server.port, b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                started = loop.time()
                await asyncio.wait_for(closed.wait(), 6.0)  # the producer was closed...
                seconds = loop.time() - started
                assert 0.9 <= seconds <= 5.0, seconds  # ...after write_s without progress
                assert len(produced) > 1  # (it was stopped mid-stream)
                # ...and the connection aborted: the client finds it reset (or ended) at once.
                assert await read_until_gone(sock, 2.0) in ("reset", "eof")
                assert not server.state.connections
            finally:
                sock.close()

    run(main)


def test_handler_past_handler_s_gets_503_and_the_connection_closes(run):
    app = App(timeouts=Timeouts(handler_s=1.0))
    ended = []

    @app.get("/slow")
    async def slow(request):
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            ended.append("cancelled")
            raise
        return "too late"

    async def main():
        loop = asyncio.get_running_loop()
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            try:
                started = loop.time()
                reply = await client.request("GET", "/slow")
                seconds = loop.time() - started
                assert reply.status == 503 and reply.headers["connection"] == "close", reply
                assert 0.9 <= seconds <= 3.0, seconds
                assert await client.is_closed_by_peer(timeout_s=2.0)
            finally:
                await client.close()
            await asyncio.sleep(0.05)
        assert ended == ["cancelled"]

    run(main)


def test_streaming_handler_stalled_past_handler_s_gets_its_connection_aborted(run):
    app = App(timeouts=Timeouts(handler_s=1.0))
    ended = []

    @app.get("/stall")
    async def stall(request):
        async def chunks():
            try:
                yield b"first"
                await asyncio.sleep(30)  # stalls after the head and a first chunk
                yield b"never"
            finally:
                ended.append("closed")

        return StreamResponse(chunks(), content_type="text/plain")

    async def main():
        loop = asyncio.get_running_loop()
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            try:
                started = loop.time()
                await client.send(b"GET /stall HTTP/1.1\r\nHost: x\r\n\r\n")
                # The head and the first chunk arrive, never the last chunk: the connection ends
                # mid-body (the framing can't be finished, RFC 9112 §7.1).
                with pytest.raises((ConnectionError, h11.RemoteProtocolError)):
                    await client.response("GET", timeout_s=4.0)
                seconds = loop.time() - started
                assert 0.9 <= seconds <= 3.0, seconds
            finally:
                await client.close()
            await asyncio.sleep(0.05)
        assert ended == ["closed"]

    run(main)


# ====================================================================== writes after a reset
def test_producer_stops_at_its_first_write_after_the_client_reset(run):
    # The client pipelines past max_pipeline_bytes, so the server stops reading and learns of
    # the reset only from a failing write.
    app = App(limits=Limits(max_pipeline_bytes=4096))
    release = asyncio.Event()
    produced = []
    closed = []

    @app.get("/stream")
    async def stream(request):
        async def chunks():
            try:
                yield b"first"
                await release.wait()
                for _ in range(1000):  # in memory: no await between chunks
                    produced.append(1)
                    yield b"y" * 1024
            finally:
                closed.append(len(produced))

        return StreamResponse(chunks(), content_type="text/plain")

    async def main():
        loop = asyncio.get_running_loop()
        async with serving(app) as server:
            sock = socket.socket()
            try:
                sock.setblocking(False)
                await loop.sock_connect(sock, ("127.0.0.1", server.port))
                await loop.sock_sendall(sock, b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"
                                        b"GET /next HTTP/1.1\r\nX-Pad: " + b"p" * 8192)
                received = b""
                while b"first" not in received:
                    received += await asyncio.wait_for(loop.sock_recv(sock, 65536), 5.0)
            finally:
                reset(sock)
            await asyncio.sleep(0.1)
            release.set()
            for _ in range(100):
                if closed:
                    break
                await asyncio.sleep(0.02)
        # The write that meets the reset may go through; the one after must raise Disconnected.
        assert closed and closed[0] <= 2, closed

    run(main)
