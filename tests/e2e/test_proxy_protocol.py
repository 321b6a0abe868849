"""Real sockets: the PROXY protocol (HAProxy's v1 text and v2 binary header) before HTTP, on both
loops.

A trusted peer must send the header; its source becomes the connection's client
(``request.client``, the observer's ``conn.stream.peername``), while ``socket_peername`` keeps the
socket's; the bytes after the header are HTTP, however they were split.  v1 ``UNKNOWN`` and v2
``LOCAL`` keep the socket's peer.  A malformed or missing header, or one that does not arrive
within ``Timeouts.head_s``, closes the connection without an answer.  An untrusted peer is plain
HTTP: a PROXY line from it is a bad request.
"""
from __future__ import annotations

import asyncio
import dataclasses
import socket
import struct
from typing import Any

import pytest

from cyserve import App, Timeouts
from tests.support import RawClient, serving

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(command: int, fam: int, body: bytes) -> bytes:
    return SIG + bytes([0x20 | command, fam]) + struct.pack("!H", len(body)) + body


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack("!H", len(value)) + value


def v2_tcp4(src: str, sport: int, tlvs: bytes = b"") -> bytes:
    return v2(1, 0x11, socket.inet_aton(src) + socket.inet_aton("10.0.0.1")
              + struct.pack("!HH", sport, 80) + tlvs)


def v2_tcp6(src: str, sport: int) -> bytes:
    return v2(1, 0x21, socket.inet_pton(socket.AF_INET6, src)
              + socket.inet_pton(socket.AF_INET6, "2001:db8::1") + struct.pack("!HH", sport, 443))


class Peers:
    """The observer: which client and socket peer each response was for."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, Any]] = []

    def response_done(self, conn: Any, head: Any, status: int, sent_bytes: int,
                      duration_s: float) -> None:
        self.seen.append((conn.stream.peername, conn.stream.socket_peername))


def make_app(**timeouts: float) -> App:
    app = App(timeouts=Timeouts(**timeouts) if timeouts else None)
    app.config = dataclasses.replace(app.config, proxy_protocol=True)

    @app.get("/client")
    async def client(request: Any) -> str:
        host, port = request.client
        return f"{host} {port}"

    return app


HEADERS = [
    ("v1-tcp4", b"PROXY TCP4 203.0.113.5 10.0.0.1 40000 80\r\n", "203.0.113.5 40000"),
    ("v1-tcp6", b"PROXY TCP6 2001:db8::5 2001:db8::1 40001 443\r\n", "2001:db8::5 40001"),
    ("v1-unknown", b"PROXY UNKNOWN\r\n", None),
    ("v2-proxy-tcp4-with-tlvs",
     v2_tcp4("198.51.100.7", 50000, tlv(0x01, b"http/1.1") + tlv(0x20, b"\x01" + bytes(8))),
     "198.51.100.7 50000"),
    ("v2-proxy-tcp6", v2_tcp6("2001:db8::9", 50001), "2001:db8::9 50001"),
    ("v2-local", v2(0, 0x00, b""), None),
    ("v2-local-with-tlvs", v2(0, 0x00, tlv(0x04, b"")), None),
]


@pytest.mark.parametrize("header, client", [pytest.param(h, c, id=i) for i, h, c in HEADERS])
def test_trusted_peer_header_names_the_client(run: Any, header: bytes, client: str | None) -> None:
    async def main() -> None:
        app = make_app()
        async with serving(app) as server:
            peers = Peers()
            server.state.observer = peers
            conn = await RawClient.open(server.port)
            own = conn.writer.get_extra_info("sockname")
            await conn.send(header)
            reply = await conn.request("GET", "/client")
            # The header's source, or the socket's own peer when the header keeps it.
            assert reply.body.decode() == (client or f"{own[0]} {own[1]}")
            # Kept-alive: the next request on the connection is the same client's.
            assert (await conn.request("GET", "/client")).body == reply.body
            await conn.close()
            socket_peer = peers.seen[0][1]
            assert socket_peer[:2] == own[:2]

    run(main)


def test_bytes_after_the_header_are_pipelined_requests(run: Any) -> None:
    async def main() -> None:
        app = make_app()
        async with serving(app) as server:
            conn = await RawClient.open(server.port)
            get = b"GET /client HTTP/1.1\r\nHost: x\r\n\r\n"
            await conn.send(b"PROXY TCP4 192.0.2.1 10.0.0.1 1000 80\r\n" + get + get)
            first = await conn.response("GET")
            second = await conn.response("GET")
            assert first.body == second.body == b"192.0.2.1 1000"
            await conn.close()

    run(main)


def test_a_header_split_across_reads_is_put_together(run: Any) -> None:
    async def main() -> None:
        app = make_app()
        async with serving(app) as server:
            conn = await RawClient.open(server.port)
            conn.writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP,
                                                            socket.TCP_NODELAY, 1)
            header = v2_tcp4("192.0.2.44", 4444, tlv(0x01, b"h2"))
            for piece in (header[:5], header[5:14], header[14:20], header[20:] + b"GET /cli"):
                await conn.send(piece)
                await asyncio.sleep(0.02)     # separate segments, separate reads
            await conn.send(b"ent HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await conn.response("GET")).body == b"192.0.2.44 4444"
            await conn.close()

    run(main)


@pytest.mark.parametrize("data", [
    pytest.param(b"GET /client HTTP/1.1\r\nHost: x\r\n\r\n", id="plain-http-from-a-proxy"),
    pytest.param(b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 80\r\nGET / HTTP/1.1\r\n\r\n",
                 id="v1-bad-port"),
    pytest.param(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\nGET / HTTP/1.1\r\n\r\n", id="v1-bare-lf"),
    pytest.param(b"PROXY UNKNOWN " + b"x" * 120, id="v1-too-long"),
    pytest.param(v2(3, 0x11, bytes(12)), id="v2-unknown-command"),
    pytest.param(v2(1, 0x11, bytes(4)), id="v2-truncated-addresses"),
])
def test_a_malformed_header_closes_without_an_answer(run: Any, data: bytes) -> None:
    async def main() -> None:
        app = make_app()
        async with serving(app) as server:
            conn = await RawClient.open(server.port)
            await conn.send(data)
            assert await conn.read_until_close(timeout_s=3.0) == b""
            await conn.close()
            # The server goes on: a good header is served.
            good = await RawClient.open(server.port)
            await good.send(b"PROXY UNKNOWN\r\n")
            assert (await good.request("GET", "/client")).status == 200
            await good.close()

    run(main)


@pytest.mark.parametrize("partial", [
    pytest.param(b"", id="nothing"),
    pytest.param(b"PROXY TCP4 192.0.2.1 ", id="v1-half-line"),
    pytest.param(v2_tcp4("192.0.2.1", 1)[:20], id="v2-half-block"),
])
def test_a_header_that_does_not_arrive_in_time_closes(run: Any, partial: bytes) -> None:
    async def main() -> None:
        app = make_app(head_s=0.3)
        async with serving(app) as server:
            conn = await RawClient.open(server.port)
            started = asyncio.get_running_loop().time()
            await conn.send(partial)
            assert await conn.read_until_close(timeout_s=3.0) == b""
            assert 0.25 <= asyncio.get_running_loop().time() - started < 2.5
            await conn.close()

    run(main)


def test_an_untrusted_peer_speaks_plain_http(run: Any) -> None:
    async def main() -> None:
        app = make_app()
        async with serving(app) as server:
            asked: list[str] = []

            def nobody(host: str) -> bool:
                asked.append(host)
                return False

            server.state.proxy_trusted = nobody
            conn = await RawClient.open(server.port)
            own = conn.writer.get_extra_info("sockname")
            assert (await conn.request("GET", "/client")).body.decode() == f"{own[0]} {own[1]}"
            await conn.close()
            # Its PROXY line is just a bad request: it cannot choose its own address.
            liar = await RawClient.open(server.port)
            await liar.send(b"PROXY TCP4 203.0.113.5 10.0.0.1 40000 80\r\n"
                            b"GET /client HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await liar.response("GET")).status == 400
            await liar.close()
            assert asked == ["127.0.0.1", "127.0.0.1"]     # once per connection

    run(main)


def test_trust_is_decided_by_the_predicate(run: Any) -> None:
    async def main() -> None:
        app = make_app()
        async with serving(app) as server:
            server.state.proxy_trusted = lambda host: host == "127.0.0.1"
            conn = await RawClient.open(server.port)
            await conn.send(b"PROXY TCP4 203.0.113.5 10.0.0.1 40000 80\r\n")
            assert (await conn.request("GET", "/client")).body == b"203.0.113.5 40000"
            await conn.close()

    run(main)


def test_the_per_address_cap_counts_the_client_the_proxy_saw(run: Any) -> None:
    async def main() -> None:
        app = make_app()
        app.config = dataclasses.replace(app.config, limit_connections_per_ip=1)
        async with serving(app) as server:
            clients = []
            for source in ("192.0.2.1", "192.0.2.2"):
                conn = await RawClient.open(server.port)
                await conn.send(f"PROXY TCP4 {source} 10.0.0.1 1000 80\r\n".encode())
                assert (await conn.request("GET", "/client")).status == 200
                clients.append(conn)
            # Both came through the same proxy address; a second connection of 192.0.2.1 is
            # the one past its share.
            again = await RawClient.open(server.port)
            await again.send(b"PROXY TCP4 192.0.2.1 10.0.0.1 1001 80\r\n")
            assert (await again.response("GET")).status == 503
            await again.close()
            for conn in clients:
                await conn.close()

    run(main)
