"""The ``http`` scope an ASGI app gets over real sockets, field by field (ASGI 3, spec 2.4), on
uvloop and stdlib asyncio: versions, method, scheme (TLS and a trusted proxy's word), path
percent-decoded and its raw bytes, query, root_path, the client's fields as lower-cased bytes
pairs, client and server addresses, the lifespan state as a copy, and the extensions."""
from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

import pytest
import trustme

import cyserve.asgi
from cyserve import Client
from cyserve.asgi import ASGIHost
from cyserve.proxy import TrustedPeers
from tests.asgi.asgi_support import no_lifespan, respond, serving
from tests.support import RawClient, exchange, fetch


def scope_app(seen: list[dict[str, Any]]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await no_lifespan(scope, receive, send):
            return
        seen.append(scope)
        await respond(send, body=b"ok")
    return app


def test_scope_has_every_field_of_an_http_request(run):
    seen: list[dict[str, Any]] = []

    async def main() -> None:
        async with serving(scope_app(seen)) as server:
            client = await RawClient.open(server.port)
            try:
                reply = await client.request("GET", "/caf%C3%A9/a%2Fb%20c?x=1&y=%20", [
                    ("X-Mixed-Case", "One"), ("x-mixed-case", "Two"), ("Accept", "*/*")])
                assert reply.status == 200 and reply.body == b"ok"
                local = client.writer.get_extra_info("sockname")
            finally:
                await client.close()
            scope = seen[0]
            assert scope["type"] == "http"
            assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
            assert scope["http_version"] == "1.1"
            assert scope["method"] == "GET"
            assert scope["scheme"] == "http"
            # Percent-decoded as UTF-8 (an encoded "/" too: raw_path keeps the difference).
            assert scope["path"] == "/café/a/b c"
            assert scope["raw_path"] == b"/caf%C3%A9/a%2Fb%20c"
            assert scope["query_string"] == b"x=1&y=%20"
            assert scope["root_path"] == ""
            # In received order, names lower-cased, repeated fields kept apart.
            assert scope["headers"] == [(b"host", b"127.0.0.1"), (b"x-mixed-case", b"One"),
                                        (b"x-mixed-case", b"Two"), (b"accept", b"*/*")]
            assert all(type(n) is bytes and type(v) is bytes for n, v in scope["headers"])
            assert scope["client"] == (local[0], local[1])
            assert scope["server"] == ("127.0.0.1", server.port)
            assert scope["state"] == {}
            assert scope["extensions"] == {"http.response.pathsend": {}}
    run(main)


def test_http10_request_and_absolute_form_target(run):
    seen: list[dict[str, Any]] = []

    async def main() -> None:
        async with serving(scope_app(seen)) as server:
            await exchange(server.port, b"POST /old HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
            reply = await fetch(server.port, "GET", "http://example.org/abs/p?q=2")
            assert reply.status == 200
            first, second = seen
            assert first["http_version"] == "1.0" and first["method"] == "POST"
            assert first["headers"] == [(b"content-length", b"0")]
            # RFC 9112 §3.2.2: the path of an absolute-form target is what follows the authority.
            assert second["path"] == "/abs/p" and second["raw_path"] == b"/abs/p"
            assert second["query_string"] == b"q=2"
    run(main)


def test_root_path_prefixes_path_and_raw_path(run):
    seen: list[dict[str, Any]] = []

    async def main() -> None:
        async with serving(scope_app(seen), root_path="/api/v1") as server:
            await fetch(server.port, "GET", "/items/a%20b")
            scope = seen[0]
            assert scope["root_path"] == "/api/v1"
            assert scope["path"] == "/api/v1/items/a b"
            assert scope["raw_path"] == b"/api/v1/items/a%20b"
    run(main)


def test_trailers_extension_only_when_the_client_reads_trailers(run):
    seen: list[dict[str, Any]] = []

    async def main() -> None:
        async with serving(scope_app(seen)) as server:
            await fetch(server.port, "GET", "/", [("TE", "gzip, trailers")])
            await fetch(server.port, "GET", "/", [("TE", "gzip")])
            assert seen[0]["extensions"] == {"http.response.pathsend": {},
                                             "http.response.trailers": {}}
            assert seen[1]["extensions"] == {"http.response.pathsend": {}}
    run(main)


def test_lifespan_state_reaches_each_request_as_a_shallow_copy(run):
    seen: list[dict[str, Any]] = []
    shared: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            assert message["type"] == "lifespan.startup"
            scope["state"]["pool"] = shared
            scope["state"]["name"] = "db"
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        seen.append(dict(scope["state"]))
        scope["state"]["name"] = "changed by a request"   # must not reach the next request
        scope["state"]["pool"].append("used")             # shallow: the object is shared
        await respond(send)

    async def main() -> None:
        async with serving(app) as server:
            await fetch(server.port)
            await fetch(server.port)
        assert seen == [{"pool": shared, "name": "db"}, {"pool": shared, "name": "db"}]
        assert shared == ["used", "used"]
    run(main)


def test_scheme_and_client_from_a_trusted_proxy_only(run):
    seen: list[dict[str, Any]] = []
    proxy_fields = [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https")]

    async def main() -> None:
        host = ASGIHost(scope_app(seen))
        host.trusted = TrustedPeers("127.0.0.1")
        async with serving(host) as server:
            await fetch(server.port, "GET", "/", proxy_fields)
        untrusting = ASGIHost(scope_app(seen))
        untrusting.trusted = TrustedPeers("10.0.0.0/8")
        async with serving(untrusting) as server:
            await fetch(server.port, "GET", "/", proxy_fields)
        trusted, untrusted = seen
        assert trusted["scheme"] == "https" and trusted["client"] == ("203.0.113.7", 0)
        assert untrusted["scheme"] == "http" and untrusted["client"][0] == "127.0.0.1"
    run(main)


def test_malformed_forwarded_from_a_trusted_proxy_is_answered_400(run):
    seen: list[dict[str, Any]] = []

    async def main() -> None:
        host = ASGIHost(scope_app(seen))
        host.trusted = TrustedPeers("127.0.0.1")
        async with serving(host) as server:
            reply = await fetch(server.port, "GET", "/", [("Forwarded", 'for="unterminated')])
            assert reply.status == 400
        assert seen == []
    run(main)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def test_scheme_is_https_over_tls(run, ca, tmp_path):
    seen: list[dict[str, Any]] = []
    cert = ca.issue_cert("127.0.0.1")
    chain, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    cert.private_key_pem.write_to_path(str(key))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(str(chain), str(key))
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    async def main() -> None:
        async with serving(scope_app(seen), ssl=server_context) as server:
            async with Client(verify=client_context) as client:
                reply = await client.get(f"https://127.0.0.1:{server.port}/secure")
                assert reply.status == 200 and await reply.read() == b"ok"
        assert seen[0]["scheme"] == "https"
    run(main)


def test_a_unix_socket_client_has_no_address(run, tmp_path):
    seen: list[dict[str, Any]] = []
    path = str(tmp_path / "asgi.sock")

    async def main() -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        server = await cyserve.asgi.serve(scope_app(seen), sock=sock)
        try:
            reader, writer = await asyncio.open_unix_connection(path)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            assert data.startswith(b"HTTP/1.1 200 ")
        finally:
            await server.shutdown(timeout_s=2)
        assert seen[0]["client"] is None
        assert seen[0]["server"] == (path, None)
    run(main)
