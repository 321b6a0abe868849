"""Proxy headers: who is trusted (``TrustedPeers``), what ``resolve`` believes (X-Forwarded-*,
RFC 7239 Forwarded, the anti-spoofing walk), that ``ProxyHeaders.resolve`` (the resolver built
once, remembering its answers) answers every vector as the one-off ``resolve`` does, and end to
end over 127.0.0.1 (TCP and a Unix socket) that ``request.client``, ``request.url`` and
``request.absolute_url`` see the result, through the middleware and through the ASGI host."""
from __future__ import annotations

import asyncio
import json
import os
import socket
import tempfile
from typing import Any

import pytest

from cyserve import App, Response
from cyserve.errors import BadRequest
from cyserve.proxy import UNIX_PEER, ProxyHeaders, TrustedPeers, peer_host, resolve
from cyserve.server import serve
from tests.support import RawClient, serving

# ---------------------------------------------------------------------------------- TrustedPeers
TRUST = [
    pytest.param("127.0.0.1", "127.0.0.1", True, id="default-loopback"),
    pytest.param("127.0.0.1", "127.0.0.2", False, id="other-loopback-address"),
    pytest.param("127.0.0.1", "::1", False, id="ipv6-loopback-not-ipv4-one"),
    pytest.param("127.0.0.1", "::ffff:127.0.0.1", True, id="ipv4-mapped-peer-matches-ipv4-entry"),
    pytest.param("::ffff:10.0.0.1", "10.0.0.1", True, id="ipv4-mapped-entry-matches-ipv4-peer"),
    pytest.param("10.0.0.0/8", "10.255.0.1", True, id="cidr-v4-inside"),
    pytest.param("10.0.0.0/8", "11.0.0.1", False, id="cidr-v4-outside"),
    pytest.param("10.1.2.3/8", "10.9.9.9", True, id="cidr-host-bits-masked"),
    pytest.param("2001:db8::/32", "2001:db8:ffff::1", True, id="cidr-v6-inside"),
    pytest.param("2001:db8::/32", "2001:db9::1", False, id="cidr-v6-outside"),
    pytest.param("2001:DB8:0::1", "2001:db8::1", True, id="ipv6-entry-normalised"),
    pytest.param("2001:db8::1", "2001:0DB8:0000::1", True, id="ipv6-peer-normalised"),
    pytest.param("*", "203.0.113.9", True, id="star-everyone"),
    pytest.param("*", "", True, id="star-even-no-address"),
    pytest.param("10.0.0.1, *", "8.8.8.8", True, id="star-anywhere-in-list"),
    pytest.param("unix:", UNIX_PEER, True, id="unix-literal-trusts-unix-peers"),
    pytest.param("127.0.0.1", UNIX_PEER, False, id="unix-peer-untrusted-by-default"),
    pytest.param("unix:", "127.0.0.1", False, id="unix-literal-trusts-no-tcp-peer"),
    pytest.param(" 127.0.0.1 ,, 10.0.0.1 ", "10.0.0.1", True, id="spaces-and-empty-entries"),
    pytest.param(["127.0.0.1", "10.0.0.0/8"], "10.2.3.4", True, id="list-form"),
    pytest.param([], "127.0.0.1", False, id="empty-list-trusts-nobody"),
    pytest.param("", "127.0.0.1", False, id="empty-string-trusts-nobody"),
    pytest.param("127.0.0.1", "", False, id="empty-host-untrusted"),
    pytest.param("127.0.0.1", None, False, id="no-host-untrusted"),
    pytest.param("127.0.0.1", "localhost", False, id="names-are-not-resolved"),
]


@pytest.mark.parametrize("spec, host, trusted", TRUST)
def test_trusted_peers_membership(spec: Any, host: Any, trusted: bool) -> None:
    assert (host in TrustedPeers(spec)) is trusted


@pytest.mark.parametrize("entry", ["10.0.0.300", "10.0.0.0/33", "dead:beef", "1.2.3", "1::2::3"])
def test_trusted_peers_refuse_an_entry_that_looks_like_an_address_but_is_not(entry: str) -> None:
    with pytest.raises(ValueError, match="neither an IP address nor a network"):
        TrustedPeers(f"127.0.0.1, {entry}")


def test_trusted_peers_refuse_non_strings() -> None:
    with pytest.raises(TypeError):
        TrustedPeers([b"127.0.0.1"])  # type: ignore[list-item]


def test_trusted_peers_answer_the_same_after_their_cache_is_cycled() -> None:
    peers = TrustedPeers("10.0.0.0/8")
    for i in range(10_000):  # more distinct hosts than the cache keeps: answers stay right
        host = f"10.{i // 256 % 256}.{i % 256}.1" if i % 2 else f"192.0.{i // 256 % 256}.{i % 256}"
        assert (host in peers) is bool(i % 2)
    assert "10.1.1.1" in peers and "192.0.2.1" not in peers


# -------------------------------------------------------------------------------------- resolve
H = list[tuple[str, str]]
LOCAL = "127.0.0.1"
PROXIES = "127.0.0.1, 10.0.0.0/8"

RESOLVE = [
    # X-Forwarded-For: the right-most untrusted hop is the client.
    pytest.param(LOCAL, LOCAL, [("X-Forwarded-For", "203.0.113.7")],
                 (("203.0.113.7", 0), None, None), id="xff-one-client"),
    pytest.param(LOCAL, LOCAL, [("X-Forwarded-For", "6.6.6.6, 203.0.113.7")],
                 (("203.0.113.7", 0), None, None), id="xff-spoofed-left-hop-ignored"),
    pytest.param(PROXIES, LOCAL, [("X-Forwarded-For", "6.6.6.6, 203.0.113.7, 10.1.2.3, 10.0.0.9")],
                 (("203.0.113.7", 0), None, None), id="xff-trusted-hops-skipped"),
    pytest.param(PROXIES, LOCAL, [("X-Forwarded-For", "10.0.0.5, 10.0.0.9")],
                 (("10.0.0.5", 0), None, None), id="xff-all-hops-trusted-left-most"),
    pytest.param("*", LOCAL, [("X-Forwarded-For", "6.6.6.6, 203.0.113.7")],
                 (("6.6.6.6", 0), None, None), id="xff-star-left-most"),
    pytest.param(LOCAL, LOCAL, [("X-Forwarded-For", "6.6.6.6"), ("x-forwarded-for", "203.0.113.7")],
                 (("203.0.113.7", 0), None, None), id="xff-two-lines-are-one-list"),
    pytest.param(LOCAL, LOCAL, [("X-Forwarded-For", "203.0.113.7:4711")],
                 (("203.0.113.7", 4711), None, None), id="xff-ipv4-port"),
    pytest.param(LOCAL, LOCAL, [("X-Forwarded-For", "[2001:DB8::7]:4711")],
                 (("2001:db8::7", 4711), None, None), id="xff-ipv6-bracketed-port-normalised"),
    pytest.param(LOCAL, LOCAL, [("X-Forwarded-For", "2001:db8::7")],
                 (("2001:db8::7", 0), None, None), id="xff-ipv6-bare"),
    pytest.param(LOCAL, LOCAL, [("X-Forwarded-For", "[2001:db8::7]")],
                 (("2001:db8::7", 0), None, None), id="xff-ipv6-bracketed"),
    pytest.param(PROXIES, LOCAL, [("X-Forwarded-For", "203.0.113.7, ::ffff:10.0.0.2")],
                 (("203.0.113.7", 0), None, None), id="xff-ipv4-mapped-trusted-hop"),
    pytest.param("127.0.0.1, unix:", LOCAL, [("X-Forwarded-For", "203.0.113.7, unix:")],
                 (("203.0.113.7", 0), None, None), id="xff-trusted-unix-hop-skipped"),
    pytest.param(LOCAL, LOCAL, [("X-Forwarded-For", "203.0.113.7, unix:")], None,
                 id="xff-untrusted-literal-hop-names-no-client"),
    pytest.param(LOCAL, LOCAL, [("X-Forwarded-For", "203.0.113.7, not-an-ip")], None,
                 id="xff-garbage-hop-keeps-the-peer"),
    pytest.param(LOCAL, LOCAL, [("X-Forwarded-For", "203.0.113.7:70000")], None,
                 id="xff-port-out-of-range"),
    pytest.param(LOCAL, LOCAL, [("X-Forwarded-For", "")], None, id="xff-empty"),
    pytest.param(LOCAL, LOCAL, [("X-Forwarded-For", "203.0.113.7, ")], None,
                 id="xff-empty-right-hop-keeps-the-peer"),
    # X-Forwarded-Proto and -Host: the right-most value.
    pytest.param(LOCAL, LOCAL, [("X-Forwarded-Proto", "https")], (None, "https", None), id="proto-https"),
    pytest.param(LOCAL, LOCAL, [("X-Forwarded-Proto", " HTTPS ")], (None, "https", None),
                 id="proto-case-and-space-insensitive"),
    pytest.param(LOCAL, LOCAL, [("X-Forwarded-Proto", "wss")], (None, "https", None), id="proto-wss-is-tls"),
    pytest.param(LOCAL, LOCAL, [("X-Forwarded-Proto", "ws")], (None, "http", None), id="proto-ws-is-plain"),
    pytest.param(LOCAL, LOCAL, [("X-Forwarded-Proto", "ftp")], None, id="proto-unknown-ignored"),
    pytest.param(LOCAL, LOCAL, [("X-Forwarded-Proto", "http, https")], (None, "https", None),
                 id="proto-right-most-of-a-list"),
    pytest.param(LOCAL, LOCAL, [("X-Forwarded-Proto", "https"), ("X-Forwarded-Proto", "http")],
                 (None, "http", None), id="proto-right-most-line"),
    pytest.param(LOCAL, LOCAL, [("X-Forwarded-Host", "Shop.Example:8443")],
                 (None, None, "shop.example:8443"), id="host-with-port-lower-cased"),
    pytest.param(LOCAL, LOCAL, [("X-Forwarded-Host", "[2001:db8::1]:8080")],
                 (None, None, "[2001:db8::1]:8080"), id="host-ipv6-literal"),
    pytest.param(LOCAL, LOCAL, [("X-Forwarded-Host", "a.example, b.example")],
                 (None, None, "b.example"), id="host-right-most"),
    pytest.param(LOCAL, LOCAL, [("X-Forwarded-Host", "evil.example/path")], None, id="host-with-path-ignored"),
    pytest.param(LOCAL, LOCAL, [("X-Forwarded-Host", "user@evil.example")], None, id="host-userinfo-ignored"),
    pytest.param(LOCAL, LOCAL, [("X-Forwarded-Host", "shop.example:99999")], None, id="host-bad-port-ignored"),
    pytest.param(LOCAL, LOCAL, [("X-Forwarded-Host", "[not:an:ip]")], None, id="host-bad-ip-literal-ignored"),
    pytest.param(LOCAL, LOCAL, [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https"),
                                ("X-Forwarded-Host", "shop.example")],
                 (("203.0.113.7", 0), "https", "shop.example"), id="x-forwarded-all-three"),
    # Who is trusted.
    pytest.param("10.0.0.1", LOCAL, [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https")],
                 None, id="untrusted-peer-ignored"),
    pytest.param(LOCAL, None, [("X-Forwarded-For", "203.0.113.7")], None, id="unknown-peer-ignored"),
    pytest.param("10.0.0.0/8", "10.20.30.40", [("X-Forwarded-For", "203.0.113.7")],
                 (("203.0.113.7", 0), None, None), id="peer-in-trusted-network"),
    pytest.param("2001:db8::/32", "2001:db8::5", [("X-Forwarded-For", "203.0.113.7")],
                 (("203.0.113.7", 0), None, None), id="ipv6-peer-in-trusted-network"),
    pytest.param("unix:", UNIX_PEER, [("X-Forwarded-For", "203.0.113.7")],
                 (("203.0.113.7", 0), None, None), id="unix-peer-trusted"),
    pytest.param(LOCAL, UNIX_PEER, [("X-Forwarded-For", "203.0.113.7")], None, id="unix-peer-untrusted"),
    pytest.param(LOCAL, LOCAL, [("X-Real-IP", "203.0.113.7")], None, id="no-proxy-headers"),
    # RFC 7239 Forwarded.
    pytest.param(LOCAL, LOCAL, [("Forwarded", "for=192.0.2.43, for=198.51.100.17;by=203.0.113.60;"
                                              "proto=http;host=example.com")],
                 (("198.51.100.17", 0), "http", "example.com"), id="fwd-rfc7239-section-4-example"),
    pytest.param(LOCAL, LOCAL, [("Forwarded", 'for="[2001:db8:cafe::17]:4711"')],
                 (("2001:db8:cafe::17", 4711), None, None), id="fwd-quoted-ipv6-with-port"),
    pytest.param(LOCAL, LOCAL, [("Forwarded", "For=192.0.2.60;Proto=HTTPS;By=203.0.113.43")],
                 (("192.0.2.60", 0), "https", None), id="fwd-names-case-insensitive"),
    pytest.param(PROXIES, LOCAL, [("Forwarded", "for=192.0.2.60;proto=https;host=shop.example, "
                                                "for=10.0.0.7;proto=http;host=internal")],
                 (("192.0.2.60", 0), "https", "shop.example"),
                 id="fwd-proto-and-host-from-the-clients-element"),
    pytest.param(PROXIES, LOCAL, [("Forwarded", "for=10.0.0.5;proto=https, for=10.0.0.7;proto=http")],
                 (("10.0.0.5", 0), "https", None), id="fwd-all-trusted-left-most-element"),
    pytest.param(LOCAL, LOCAL, [("Forwarded", "for=6.6.6.6;host=evil.example, "
                                              "for=192.0.2.43;host=good.example")],
                 (("192.0.2.43", 0), None, "good.example"), id="fwd-spoofed-left-element-ignored"),
    pytest.param(LOCAL, LOCAL, [("Forwarded", "for=_hidden;proto=https")], (None, "https", None),
                 id="fwd-obfuscated-node-no-client"),
    pytest.param(LOCAL, LOCAL, [("Forwarded", "for=unknown;host=shop.example")],
                 (None, None, "shop.example"), id="fwd-unknown-node-no-client"),
    pytest.param(PROXIES, LOCAL, [("Forwarded", "for=192.0.2.1, for=_proxy2, for=10.0.0.1")],
                 None, id="fwd-obfuscated-hop-stops-the-walk"),
    pytest.param(LOCAL, LOCAL, [("Forwarded", 'for="192.0.2.43:_a1"')], (("192.0.2.43", 0), None, None),
                 id="fwd-obfuscated-port"),
    pytest.param(LOCAL, LOCAL, [("Forwarded", 'for=192.0.2.43;host="sh\\op.example"')],
                 (("192.0.2.43", 0), None, "shop.example"), id="fwd-quoted-pair-unescaped"),
    pytest.param(LOCAL, LOCAL, [("Forwarded", 'for=192.0.2.43;host="a.example,b";proto=https')],
                 (("192.0.2.43", 0), "https", None), id="fwd-comma-inside-quotes-not-a-split"),
    pytest.param(LOCAL, LOCAL, [("Forwarded", ", for=192.0.2.43 ,, ")], (("192.0.2.43", 0), None, None),
                 id="fwd-empty-elements-skipped"),
    pytest.param(LOCAL, LOCAL, [("Forwarded", "for=192.0.2.43 ; proto=https")],
                 (("192.0.2.43", 0), "https", None), id="fwd-space-around-semicolon"),
    pytest.param(LOCAL, LOCAL, [("Forwarded", "for=192.0.2.43;;proto=https;")],
                 (("192.0.2.43", 0), "https", None), id="fwd-empty-pairs"),
    pytest.param(LOCAL, LOCAL, [("Forwarded", "for=192.0.2.43;secret=x;proto=https")],
                 (("192.0.2.43", 0), "https", None), id="fwd-unknown-parameter-ignored"),
    pytest.param(LOCAL, LOCAL, [("Forwarded", 'for="2001:db8::1"')], None, id="fwd-bare-ipv6-is-no-node"),
    pytest.param(LOCAL, LOCAL, [("Forwarded", "for=6.6.6.6"), ("Forwarded", "for=192.0.2.43")],
                 (("192.0.2.43", 0), None, None), id="fwd-two-lines-are-one-list"),
    pytest.param(LOCAL, LOCAL, [("Forwarded", "by=203.0.113.60;proto=https")], (None, "https", None),
                 id="fwd-element-without-for"),
    # Which wins when both are present.
    pytest.param(LOCAL, LOCAL, [("Forwarded", "for=6.6.6.6;proto=https;host=evil.example"),
                                ("X-Forwarded-For", "203.0.113.7")],
                 (("203.0.113.7", 0), None, None), id="auto-x-forwarded-wins-forwarded-ignored-whole"),
    pytest.param(LOCAL, LOCAL, [("Forwarded", 'for="broken'), ("X-Forwarded-For", "203.0.113.7")],
                 (("203.0.113.7", 0), None, None), id="auto-malformed-forwarded-unread-beside-xff"),
]


@pytest.mark.parametrize("trusted, peer, headers, expected", RESOLVE)
def test_resolve(trusted: Any, peer: str | None, headers: H, expected: Any) -> None:
    assert resolve(peer, headers, TrustedPeers(trusted)) == expected


@pytest.mark.parametrize("trusted, peer, headers, expected", RESOLVE)
def test_proxy_headers_resolve_answers_as_resolve_and_again_from_memory(
        trusted: Any, peer: str | None, headers: H, expected: Any) -> None:
    proxy = ProxyHeaders(trusted)
    for _ in range(3):  # the first answer is worked out, the next ones are remembered
        assert proxy.resolve(peer, headers) == expected


def test_proxy_headers_resolve_reads_the_cores_parsed_head() -> None:
    from cyserve._core.http.parser import parse_request_head
    head = parse_request_head(b"GET / HTTP/1.1\r\nHost: a\r\nForwarded: for=192.0.2.43;proto=https\r\n"
                              b"X-Forwarded-For: 203.0.113.7\r\n\r\n")
    proxy = ProxyHeaders(LOCAL, source="forwarded")
    assert proxy.resolve(LOCAL, head) == (("192.0.2.43", 0), "https", None)
    assert proxy.resolve("10.9.9.9", head) is None


def test_proxy_headers_resolve_raises_for_a_malformed_forwarded_every_time() -> None:
    proxy = ProxyHeaders(LOCAL)
    for _ in range(2):  # a remembered refusal is a fresh BadRequest each time
        with pytest.raises(BadRequest, match="RFC 7239"):
            proxy.resolve(LOCAL, [("Forwarded", 'for="x')])
    # ... and only from a trusted peer: an untrusted one's headers are never parsed.
    assert proxy.resolve("203.0.113.1", [("Forwarded", 'for="x')]) is None


@pytest.mark.parametrize("peername, expected", [
    pytest.param(("127.0.0.1", 50000), "127.0.0.1", id="tcp-ipv4"),
    pytest.param(("::1", 50000, 0, 0), "::1", id="tcp-ipv6-four-tuple"),
    pytest.param("/run/app.sock", UNIX_PEER, id="unix-named"),
    pytest.param("", UNIX_PEER, id="unix-unnamed"),
    pytest.param(b"\0abstract", UNIX_PEER, id="unix-abstract-bytes"),
    pytest.param(None, None, id="unknown"),
])
def test_peer_host_names_what_trust_is_decided_on(peername: Any, expected: str | None) -> None:
    assert peer_host(peername) == expected


@pytest.mark.parametrize("source, expected", [
    ("auto", (("203.0.113.7", 0), None, None)),
    ("x-forwarded", (("203.0.113.7", 0), None, None)),
    ("forwarded", (("192.0.2.43", 0), "https", None)),
])
def test_resolve_source_chooses_the_header_family(source: str, expected: Any) -> None:
    headers = [("X-Forwarded-For", "203.0.113.7"), ("Forwarded", "for=192.0.2.43;proto=https")]
    assert resolve(LOCAL, headers, TrustedPeers(), source=source) == expected


def test_resolve_x_forwarded_source_never_reads_forwarded() -> None:
    assert resolve(LOCAL, [("Forwarded", "for=192.0.2.43")], TrustedPeers(), source="x-forwarded") is None


@pytest.mark.parametrize("value", [
    pytest.param('for="192.0.2.43', id="unterminated-quote"),
    pytest.param("for = 192.0.2.43", id="space-around-equals"),
    pytest.param("for=192.0.2.43;for=198.51.100.1", id="parameter-twice-in-one-element"),
    pytest.param("for=192.0.2.43 proto=https", id="pairs-without-separator"),
    pytest.param("for", id="name-without-value"),
    pytest.param("for=[2001:db8::1]", id="unquoted-ipv6-not-a-token"),
    pytest.param('for="1.2.3.4"x', id="junk-after-quoted-string"),
])
def test_resolve_answers_400_for_a_malformed_forwarded(value: str) -> None:
    with pytest.raises(BadRequest, match="RFC 7239"):
        resolve(LOCAL, [("Forwarded", value)], TrustedPeers())


def test_resolve_does_not_parse_forwarded_from_an_untrusted_peer() -> None:
    assert resolve("203.0.113.1", [("Forwarded", 'for="broken')], TrustedPeers()) is None


def test_resolve_reads_the_cores_parsed_head() -> None:
    from cyserve._core.http.parser import parse_request_head
    head = parse_request_head(b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\n"
                              b"x-forwarded-for: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n\r\n")
    assert resolve(LOCAL, head, TrustedPeers()) == (("203.0.113.7", 0), "https", None)


def test_remembered_answers_stay_right_and_bounded() -> None:
    # ProxyHeaders remembers answers per header value; many distinct chains cycle the memory
    # (bounded: its size is read from the private memo) without changing an answer.
    from cyserve.proxy import _CACHE_MAX
    proxy = ProxyHeaders(PROXIES)
    for i in range(3 * _CACHE_MAX):
        chain = f"6.6.6.6, 203.0.{i // 256 % 256}.{i % 256}, 10.0.0.{i % 200}"
        for _ in range(2):
            found = proxy.resolve(LOCAL, [("X-Forwarded-For", chain)])
            assert found == ((f"203.0.{i // 256 % 256}.{i % 256}", 0), None, None)
    assert len(proxy._resolver._chains) <= _CACHE_MAX


def test_source_is_checked() -> None:
    with pytest.raises(ValueError, match="source"):
        ProxyHeaders(source="x-real-ip")
    with pytest.raises(ValueError, match="source"):
        resolve(LOCAL, [], TrustedPeers(), source="both")


# -------------------------------------------------------------------------------- end to end
def proxied_app(trusted: Any) -> App:
    app = App()
    app.use(ProxyHeaders(trusted))

    @app.get("/items/{item_id}", name="item")
    async def item(request: Any, item_id: str) -> Response:
        return Response(json.dumps({
            "client": request.client, "url": str(request.url),
            "link": request.absolute_url(app.url_for("item", item_id="7")),
            "forwarded": request.forwarded,
        }), content_type="application/json")
    return app


FORWARDED_BY_PROXY = [("X-Forwarded-For", "6.6.6.6, 203.0.113.7"), ("X-Forwarded-Proto", "https"),
                      ("X-Forwarded-Host", "shop.example")]


def test_request_sees_what_a_trusted_proxy_resolved_then_the_peer_again(run: Any) -> None:
    async def main() -> None:
        async with serving(proxied_app("127.0.0.1")) as server:
            client = await RawClient.open(server.port)
            try:
                reply = await client.request("GET", "/items/1?q=2", FORWARDED_BY_PROXY)
                seen = json.loads(reply.body)
                assert seen["client"] == ["203.0.113.7", 0]
                assert seen["url"] == "https://shop.example/items/1?q=2"
                assert seen["link"] == "https://shop.example/items/7"
                assert seen["forwarded"] == [["203.0.113.7", 0], "https", "shop.example"]
                # The next request on the same connection carries no proxy word: the core reset
                # the slot, so the peer and the connection's own URL come back.
                reply = await client.request("GET", "/items/1")
                seen = json.loads(reply.body)
                assert seen["client"][0] == "127.0.0.1" and seen["client"][1] > 0
                assert seen["url"] == "http://127.0.0.1/items/1"
                assert seen["link"] == "http://127.0.0.1/items/7"
                assert seen["forwarded"] is None
            finally:
                await client.close()
    run(main)


def test_request_ignores_proxy_headers_from_an_untrusted_peer(run: Any) -> None:
    async def main() -> None:
        async with serving(proxied_app("10.0.0.1")) as server:
            client = await RawClient.open(server.port)
            try:
                seen = json.loads((await client.request("GET", "/items/1", FORWARDED_BY_PROXY)).body)
                assert seen["client"][0] == "127.0.0.1"
                assert seen["url"] == "http://127.0.0.1/items/1"
                assert seen["forwarded"] is None
            finally:
                await client.close()
    run(main)


def test_request_sees_forwarded_ipv6_client_and_port(run: Any) -> None:
    async def main() -> None:
        async with serving(proxied_app("127.0.0.1")) as server:
            client = await RawClient.open(server.port)
            try:
                headers = [("Forwarded", 'for="[2001:db8::17]:4711";proto=https;host="shop.example:8443"')]
                seen = json.loads((await client.request("GET", "/items/1", headers)).body)
                assert seen["client"] == ["2001:db8::17", 4711]
                assert seen["url"] == "https://shop.example:8443/items/1"
                assert seen["link"] == "https://shop.example:8443/items/7"
            finally:
                await client.close()
    run(main)


def test_a_malformed_forwarded_from_a_trusted_peer_is_answered_400(run: Any) -> None:
    async def main() -> None:
        async with serving(proxied_app("127.0.0.1")) as server:
            client = await RawClient.open(server.port)
            try:
                reply = await client.request("GET", "/items/1", [("Forwarded", 'for="192.0.2.1')])
                assert reply.status == 400
            finally:
                await client.close()
            client = await RawClient.open(server.port)  # the same value again: 400 again
            try:
                reply = await client.request("GET", "/items/1", [("Forwarded", 'for="192.0.2.1')])
                assert reply.status == 400
            finally:
                await client.close()
    run(main)


@pytest.mark.parametrize("trusted, expected_client", [
    ("unix:", ["203.0.113.7", 0]),
    ("127.0.0.1", None),  # a Unix peer is not 127.0.0.1, and has no address of its own
], ids=["unix-literal-trusted", "unix-peer-untrusted"])
def test_request_behind_a_proxy_on_a_unix_socket(run: Any, trusted: str, expected_client: Any) -> None:
    async def main() -> None:
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "s.sock")
            listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listening.bind(path)
            server = await serve(proxied_app(trusted), sock=listening)
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), 5)
                client = RawClient(reader, writer)
                try:
                    reply = await client.request("GET", "/items/1", [("X-Forwarded-For", "203.0.113.7")])
                    assert json.loads(reply.body)["client"] == expected_client
                finally:
                    await client.close()
            finally:
                await server.shutdown(timeout_s=2.0)
    run(main)


# ------------------------------------------------------------------------ through the ASGI host
def seen_by_asgi(seen: list[dict[str, Any]]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        seen.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
    return app


@pytest.mark.parametrize("through_app", [False, True], ids=["c-entry-hook", "internal-app-middleware"])
def test_asgi_host_resolves_each_request_through_its_one_proxy_resolver(
        run: Any, through_app: bool) -> None:
    # The ASGI host resolves trusted proxy headers in the C entry's hook, or, when App
    # middleware run first, in the internal App's ProxyHeaders: the same object either way.
    from cyserve.asgi import ASGIHost
    from tests.asgi.asgi_support import serving as serving_asgi

    seen: list[dict[str, Any]] = []
    passed: list[str] = []

    def pass_through(handler: Any) -> Any:
        async def call(request: Any) -> Any:
            passed.append(request.client[0])   # resolved before any other middleware runs
            return await handler(request)
        return call

    async def main() -> None:
        host = ASGIHost(seen_by_asgi(seen))
        host.trusted = TrustedPeers("127.0.0.1")
        if through_app:
            host.middlewares.append(pass_through)
        async with serving_asgi(host) as server:
            client = await RawClient.open(server.port)
            try:
                for _ in range(2):
                    assert (await client.request("GET", "/", FORWARDED_BY_PROXY)).status == 200
                plain = await client.request("GET", "/")
                bad = await client.request("GET", "/", [("Forwarded", 'for="192.0.2.1')])
            finally:
                await client.close()
        assert plain.status == 200 and bad.status == 400
        assert [s["client"][0] for s in seen] == ["203.0.113.7", "203.0.113.7", "127.0.0.1"]
        assert [s["scheme"] for s in seen] == ["https", "https", "http"]
        assert passed == (["203.0.113.7", "203.0.113.7", "127.0.0.1"] if through_app else [])
    run(main)
