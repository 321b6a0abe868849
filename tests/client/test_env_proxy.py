"""Proxies from the environment (``Client(trust_env=True)``, ``cyserve.client.environ``): which
variable wins, what ``no_proxy`` matches, and requests over real sockets going through the
proxy or around it."""
from __future__ import annotations

import pytest

from cyserve import App, Response
from cyserve.client import Client, ProxyError
from cyserve.client.connect import Proxy
from cyserve.client.environ import EnvProxies, NoProxy
from cyserve.client.urls import Origin, split_url
from tests.client.peers import proxy_server
from tests.client.test_peers import tls, tls_app  # noqa: F401  (the trustme fixture)
from tests.client.peers import serving_tls
from tests.support import serving

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "REQUEST_METHOD")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No proxy variable of the machine running the tests leaks into them."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


NO_PROXY_VECTORS = [
    # (id, no_proxy, host, port, direct?)
    ("star-matches-everything", "*", "example.org", 80, True),
    ("star-among-others", "example.com, *", "example.org", 80, True),
    ("empty-matches-nothing", "", "example.org", 80, False),
    ("exact-host", "example.org", "example.org", 80, True),
    ("domain-covers-subdomains", "example.org", "api.example.org", 443, True),
    ("domain-is-cut-at-a-dot", "example.org", "badexample.org", 80, False),
    ("leading-dot-covers-the-domain", ".example.org", "example.org", 80, True),
    ("leading-dot-covers-subdomains", ".example.org", "a.b.example.org", 80, True),
    ("star-dot-prefix", "*.example.org", "www.example.org", 80, True),
    ("case-insensitive", "Example.ORG", "EXAMPLE.org", 80, True),
    ("trailing-dot-host", "example.org", "example.org.", 80, True),
    ("other-domain", "example.com", "example.org", 80, False),
    ("spaces-and-empties", " , example.com ,, example.org ", "example.org", 80, True),
    ("space-separated", "example.com example.org", "example.org", 80, True),
    ("host-with-port-match", "example.org:8080", "example.org", 8080, True),
    ("host-with-port-other-port", "example.org:8080", "example.org", 80, False),
    ("ipv4-exact", "127.0.0.1", "127.0.0.1", 80, True),
    ("ipv4-other", "127.0.0.1", "127.0.0.2", 80, False),
    ("ipv4-with-port", "127.0.0.1:9000", "127.0.0.1", 9000, True),
    ("ipv4-with-other-port", "127.0.0.1:9000", "127.0.0.1", 9001, False),
    ("ipv4-cidr-inside", "10.0.0.0/8", "10.20.30.40", 80, True),
    ("ipv4-cidr-outside", "10.0.0.0/8", "11.0.0.1", 80, False),
    ("cidr-never-matches-a-name", "10.0.0.0/8", "intranet", 80, False),
    ("ipv6-bare", "::1", "::1", 80, True),
    ("ipv6-bracketed-with-port", "[::1]:8443", "::1", 8443, True),
    ("ipv6-bracketed-other-port", "[::1]:8443", "::1", 443, False),
    ("ipv6-cidr", "fd00::/8", "fd12:3456::1", 80, True),
    ("ipv6-cidr-not-ipv4", "::/0", "127.0.0.1", 80, False),
    ("an-address-is-not-resolved", "127.0.0.1", "localhost", 80, False),
    ("idn-entry-matches-punycode-host", "bücher.example", "xn--bcher-kva.example", 80, True),
    ("junk-entries-skipped", "a/b, [::1, x:y:z:port, example.org", "example.org", 80, True),
    ("unclosed-bracket-is-junk", "[::1", "::1", 80, False),
]


@pytest.mark.parametrize("value,host,port,direct", [v[1:] for v in NO_PROXY_VECTORS],
                         ids=[v[0] for v in NO_PROXY_VECTORS])
def test_no_proxy_matching(value, host, port, direct):
    assert NoProxy(value).matches(host, port) is direct


def proxies(**environ: str) -> EnvProxies:
    return EnvProxies.from_environ(environ)


def test_each_scheme_reads_its_variable_then_all_proxy():
    env = proxies(http_proxy="http://h:1", https_proxy="http://s:2", all_proxy="http://a:3")
    assert env.http == Proxy(Origin("http", "h", 1), None)
    assert env.https == Proxy(Origin("http", "s", 2), None)
    env = proxies(ALL_PROXY="http://a:3")
    assert env.http == env.https == Proxy(Origin("http", "a", 3), None)
    env = proxies()
    assert env.http is None and env.https is None


def test_lower_case_wins_and_empty_values_are_unset():
    env = proxies(http_proxy="http://lower:1", HTTP_PROXY="http://upper:2")
    assert env.http.origin.host == "lower"
    env = proxies(http_proxy="", HTTP_PROXY="http://upper:2")
    assert env.http.origin.host == "upper"
    env = proxies(no_proxy="", NO_PROXY="*")
    assert env.no_proxy.matches("anything", 80)


def test_upper_case_http_proxy_is_ignored_under_cgi():
    # httpoxy: under CGI, HTTP_PROXY carries the request's Proxy header.
    env = proxies(REQUEST_METHOD="GET", HTTP_PROXY="http://attacker:1")
    assert env.http is None
    env = proxies(REQUEST_METHOD="GET", http_proxy="http://admin:1", HTTPS_PROXY="http://s:2")
    assert env.http.origin.host == "admin" and env.https.origin.host == "s"


def test_a_proxy_without_scheme_is_http_and_credentials_are_kept():
    env = proxies(https_proxy="user:pa%20ss@proxy.corp:3128")
    assert env.https.origin == Origin("http", "proxy.corp", 3128)
    assert env.https.authorization == "Basic dXNlcjpwYSBzcw=="   # user:pa ss
    assert proxies(http_proxy="proxy.corp").http.origin.port == 80


@pytest.mark.parametrize("value", ["https://proxy:443", "socks5://proxy:1080", "http://"])
def test_an_unsupported_proxy_url_is_a_clear_error_naming_the_variable(value):
    with pytest.raises(ValueError, match="HTTPS_PROXY") as info:
        proxies(HTTPS_PROXY=value)
    assert "only http:// proxies" in str(info.value)


def test_the_error_does_not_repeat_a_password():
    with pytest.raises(ValueError) as info:
        proxies(https_proxy="socks5://user:hunter2@proxy:1080")
    assert "hunter2" not in str(info.value) and "socks5://" in str(info.value)


def test_an_unsupported_fallback_that_is_never_used_is_no_error():
    env = proxies(all_proxy="socks5://proxy:1080", http_proxy="http://h:1", https_proxy="http://s:2")
    assert env.http.origin.host == "h"
    with pytest.raises(ValueError, match="all_proxy"):
        proxies(all_proxy="socks5://proxy:1080", http_proxy="http://h:1")


def test_proxy_for_applies_no_proxy_per_url():
    env = proxies(http_proxy="http://h:1", https_proxy="http://s:2",
                  no_proxy="internal.example, 10.0.0.0/8")
    assert env.proxy_for(split_url("http://example.org/")).origin.host == "h"
    assert env.proxy_for(split_url("https://example.org/")).origin.host == "s"
    assert env.proxy_for(split_url("https://api.internal.example/x")) is None
    assert env.proxy_for(split_url("http://10.1.2.3:8080/")) is None


def test_a_bad_environment_fails_when_the_client_is_made(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "socks5://proxy:1080")
    with pytest.raises(ValueError, match="only http:// proxies"):
        Client(trust_env=True)
    Client()   # not trusted: not read
    Client(trust_env=True, proxy="http://127.0.0.1:1")   # an explicit proxy: not read


# ---------------------------------------------------------------------- over sockets

def hello_app() -> App:
    app = App()

    @app.get("/hello")
    async def hello(request):
        return Response(b"hello")

    return app


@pytest.mark.parametrize("no_proxy,proxied", [
    (None, True),
    ("127.0.0.1", False),
    ("localhost, 127.0.0.0/8", False),
    ("example.com, 10.0.0.0/8, [::1]", True),
    ("127.0.0.1:{port}", False),
    ("127.0.0.1:1", True),
], ids=["no-no-proxy", "address", "cidr", "non-matching-list", "address-and-port",
        "address-other-port"])
def test_http_proxy_from_the_environment_and_no_proxy(run, monkeypatch, no_proxy, proxied):
    async def main():
        async with serving(hello_app()) as server, proxy_server() as proxy:
            monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
            if no_proxy is not None:
                monkeypatch.setenv("NO_PROXY", no_proxy.format(port=server.port))
            url = f"http://127.0.0.1:{server.port}/hello"
            async with Client(trust_env=True) as client:
                assert (await client.get(url)).content == b"hello"
            assert proxy.forwards == ([url] if proxied else [])
    run(main)


def test_the_environment_is_ignored_unless_trusted(run, monkeypatch):
    async def main():
        async with serving(hello_app()) as server, proxy_server() as proxy:
            monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
            async with Client() as client:
                assert (await client.get(f"http://127.0.0.1:{server.port}/hello")).status == 200
            assert proxy.forwards == []
    run(main)


def test_an_explicit_proxy_beats_the_environment(run, monkeypatch):
    async def main():
        async with serving(hello_app()) as server, proxy_server() as proxy:
            # the environment names a dead proxy and exempts the host: both are ignored
            monkeypatch.setenv("http_proxy", "http://127.0.0.1:1")
            monkeypatch.setenv("no_proxy", "*")
            url = f"http://127.0.0.1:{server.port}/hello"
            async with Client(trust_env=True, proxy=f"http://127.0.0.1:{proxy.port}") as client:
                assert (await client.get(url)).status == 200
            assert proxy.forwards == [url]
            async with Client(trust_env=True) as client:   # the no_proxy "*" applies
                assert (await client.get(url)).status == 200
            monkeypatch.delenv("no_proxy")
            async with Client(trust_env=True) as client:   # the dead proxy is used
                with pytest.raises(ProxyError):
                    await client.get(url)
    run(main)


def test_https_proxy_from_the_environment_tunnels_with_connect(run, monkeypatch, tls):  # noqa: F811
    async def main():
        async with serving_tls(tls_app(), tls["server_ctx"]) as server, proxy_server() as proxy:
            monkeypatch.setenv("https_proxy", f"127.0.0.1:{proxy.port}")
            url = f"https://127.0.0.1:{server.port}/"
            async with Client(trust_env=True, verify=tls["ca_path"]) as client:
                assert await (await client.get(url)).text() == "secure hello"
            assert proxy.connects == [f"127.0.0.1:{server.port}"]
            monkeypatch.setenv("no_proxy", "127.0.0.1")
            async with Client(trust_env=True, verify=tls["ca_path"]) as client:
                assert (await client.get(url)).status == 200
            assert len(proxy.connects) == 1
    run(main)
