"""Switching a connection to another protocol after a 101 (RFC 9110 §7.8, §15.2.2).

A test-only echo role, written in Python (``attach_python_role``), takes over the stream the
HTTP server role answered on.  Bytes the client pipelined behind the upgrade request, in the same
write, must reach it as its first input, out of the same receive buffer, and must never be parsed
as HTTP by the old role.  The same over TLS, where the transport stays as it is (no
``set_protocol``).  Real sockets on 127.0.0.1, on uvloop and stdlib asyncio.
"""
from __future__ import annotations

import asyncio
import ssl
from typing import Any

import h11
import pytest
import trustme

from cyserve._core.io.pyrole import attach_python_role
from tests.support import listening_core

TAIL = b"GET /not-http HTTP/1.1\r\nHost: x\r\n\r\nhello"


class EchoRole:
    """Echoes every byte back; records what it saw and out of which buffer."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.buffers: list[Any] = []
        self.lost = asyncio.get_running_loop().create_future()

    def data_received(self, channel: Any) -> None:
        self.buffers.append(channel.stream.buffer)
        data = channel.read()
        self.received += data
        channel.write(data)

    def eof_received(self, channel: Any) -> bool:
        channel.close()
        return True

    def connection_lost(self, channel: Any, exc: Any) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


class Harness:
    """A listener whose connections run ``entry``; keeps the streams it made."""

    def __init__(self) -> None:
        self.streams: list[Any] = []
        self.roles: list[EchoRole] = []
        self.errors: list[BaseException] = []
        self.conns: list[Any] = []

    async def entry(self, conn: Any, head: Any, body: Any) -> None:
        self.conns.append(conn)
        if head.path == "/echo":
            def take_over(stream: Any) -> None:
                role = EchoRole()
                self.roles.append(role)
                attach_python_role(stream, role)
            conn.upgrade("echo", [("X-Switched", "yes")], take_over)
        elif head.path == "/refuse":
            try:
                conn.upgrade("echo", None, lambda stream: None)
            except RuntimeError as exc:
                self.errors.append(exc)
                raise
        elif head.path == "/nobody":
            try:
                conn.upgrade("echo", None, lambda stream: None)
            except RuntimeError as exc:
                self.errors.append(exc)
        else:
            conn.respond(200, None, b"plain http", "text/plain")


def listening(harness: Harness, ssl_ctx: ssl.SSLContext | None = None) -> Any:
    return listening_core(harness.entry, ssl=ssl_ctx, on_stream=harness.streams.append)


def upgrade_request(path: str = "/echo") -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
            .encode())


async def read_head(reader: asyncio.StreamReader) -> tuple[h11.InformationalResponse, bytes]:
    """The 101 head, parsed by h11 (an independent parser), and the bytes after it."""
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/echo",
                          headers=[("Host", "x"), ("Connection", "Upgrade"), ("Upgrade", "echo")]))
    conn.receive_data(raw)
    event = conn.next_event()
    assert isinstance(event, h11.InformationalResponse), event
    return event, conn.trailing_data[0]


async def switch_and_echo(port: int, harness: Harness, ssl_ctx: ssl.SSLContext | None) -> None:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ssl_ctx, server_hostname="localhost" if ssl_ctx else None)
    writer.write(upgrade_request() + TAIL)   # one write: the tail arrives with the head
    head, rest = await read_head(reader)
    assert head.status_code == 101
    headers = {k.lower(): v.lower() for k, v in head.headers}
    assert headers[b"upgrade"] == b"echo" and headers[b"connection"] == b"upgrade"
    assert headers[b"x-switched"] == b"yes"
    echoed = rest + await asyncio.wait_for(reader.readexactly(len(TAIL) - len(rest)), 5)
    assert echoed == TAIL
    writer.write(b"more bytes")
    assert await asyncio.wait_for(reader.readexactly(10), 5) == b"more bytes"
    writer.write_eof() if writer.can_write_eof() else None
    writer.close()
    [stream] = harness.streams
    [role] = harness.roles
    await asyncio.wait_for(role.lost, 5)
    assert bytes(role.received) == TAIL + b"more bytes"
    # The old role read one request and never parsed the tail as HTTP; the new role read it out of
    # the same receive buffer the HTTP role used (handed on, not copied into another).
    assert all(buf is stream.buffer for buf in role.buffers)
    [http_role] = harness.conns
    assert http_role.requests_served == 1


def test_pipelined_bytes_after_an_upgrade_reach_the_next_role_uncopied(run):
    async def main():
        harness = Harness()
        async with listening(harness) as port:
            await switch_and_echo(port, harness, None)
    run(main)


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return server_ctx, client_ctx


def test_the_switch_works_the_same_over_tls(run, tls_pair):
    server_ctx, client_ctx = tls_pair

    async def main():
        harness = Harness()
        async with listening(harness, server_ctx) as port:
            await switch_and_echo(port, harness, client_ctx)
    run(main)


def test_upgrade_needs_a_request_that_asked_for_it(run):
    async def main():
        harness = Harness()
        async with listening(harness) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /refuse HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = await asyncio.wait_for(reader.read(65536), 5)
            assert reply.startswith(b"HTTP/1.1 500 ")
            writer.close()
        [error] = harness.errors
        assert "asked for it" in str(error)
    run(main)


def test_a_take_over_that_attaches_nothing_closes_the_connection(run):
    async def main():
        harness = Harness()
        async with listening(harness) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(upgrade_request("/nobody") + b"ignored")
            head, _ = await read_head(reader)
            assert head.status_code == 101
            assert await asyncio.wait_for(reader.read(), 5) == b""   # closed: nobody reads on
            writer.close()
        [error] = harness.errors
        assert "attached no role" in str(error)
    run(main)


def test_a_plain_request_on_the_same_server_is_not_switched(run):
    async def main():
        harness = Harness()
        async with listening(harness) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = await asyncio.wait_for(reader.readuntil(b"plain http"), 5)
            assert reply.startswith(b"HTTP/1.1 200 ")
            writer.close()
        assert harness.roles == []
    run(main)
