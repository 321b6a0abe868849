"""Request without sockets: cookies, url, id, g and current_request(), background()."""
from __future__ import annotations

import contextvars
import ssl
from typing import Any

import pytest

from cyserve._core.http.parser import parse_request_head
from cyserve.context import current_request, g
from cyserve.request import Request, parse_cookie_header


class FakeTransport:
    def __init__(self, tls: bool = False) -> None:
        self._extra = {"sslcontext": ssl.create_default_context() if tls else None}

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)


class FakeStream:
    def __init__(self, tls: bool, sockname: tuple) -> None:
        self.transport = FakeTransport(tls)
        self.peername = ("127.0.0.1", 50000)
        self.sockname = sockname


class FakeConn:
    """What a Request reads of its connection: the stream's facts."""

    def __init__(self, tls: bool = False, sockname: tuple = ("127.0.0.1", 8000)) -> None:
        self.stream = FakeStream(tls, sockname)
        self.forwarded = None  # the core's per-request slot the proxy-headers middleware sets


def make_request(head: bytes, conn: FakeConn | None = None) -> Request:
    """A Request built in a context of its own, as the core builds each one."""
    return contextvars.Context().run(Request, conn or FakeConn(), parse_request_head(head), b"")


def get(target: str = "/", *fields: str, version: str = "1.1") -> bytes:
    return (f"GET {target} HTTP/{version}\r\n" + "".join(f"{f}\r\n" for f in fields) + "\r\n").encode()


COOKIE_VECTORS = [
    pytest.param("a=1", {"a": "1"}, id="single-pair"),
    pytest.param("a=1; b=2", {"a": "1", "b": "2"}, id="two-pairs"),
    pytest.param("a=1;b=2", {"a": "1", "b": "2"}, id="no-space-after-semicolon"),
    pytest.param("  a = 1 ;  b=2  ", {"a": "1", "b": "2"}, id="whitespace-around-names-and-values"),
    pytest.param('a="quoted value"', {"a": "quoted value"}, id="dquoted-value"),
    pytest.param("a=", {"a": ""}, id="empty-value"),
    pytest.param("flag; a=1", {"a": "1"}, id="pair-without-equals-skipped"),
    pytest.param("=v; a=1", {"a": "1"}, id="empty-name-skipped"),
    pytest.param("a=1; a=2", {"a": "1"}, id="first-occurrence-wins"),
    pytest.param("a=x=y", {"a": "x=y"}, id="equals-inside-value"),
    pytest.param("a=b%20c%3B%C3%BC", {"a": "b c;ü"}, id="percent-encoded-utf8-decoded"),
    pytest.param("a=%E0%A4%A", {"a": "%E0%A4%A"}, id="broken-percent-encoding-kept"),
    pytest.param("a=100%", {"a": "100%"}, id="lone-percent-kept"),
    pytest.param("", {}, id="empty-header"),
    pytest.param(";;;", {}, id="only-separators"),
]


@pytest.mark.parametrize("header, expected", COOKIE_VECTORS)
def test_cookie_header_parsing_is_tolerant(header, expected):
    assert parse_cookie_header(header) == expected


def test_request_cookies_join_every_cookie_field_and_are_cached():
    request = make_request(get("/", "Host: x", "Cookie: a=1", "Cookie: b=2; a=3"))
    assert request.cookies == {"a": "1", "b": "2"}
    assert request.cookies is request.cookies
    assert make_request(get("/", "Host: x")).cookies == {}


URL_VECTORS = [
    pytest.param(get("/p?q=1", "Host: Example.COM"), False, "http://example.com/p?q=1",
                 ("http", "example.com", 80, "/p", "q=1"), id="host-lower-cased-default-port"),
    pytest.param(get("/p", "Host: example.com:8080"), False, "http://example.com:8080/p",
                 ("http", "example.com", 8080, "/p", ""), id="explicit-port-kept"),
    pytest.param(get("/p", "Host: example.com:443"), True, "https://example.com/p",
                 ("https", "example.com", 443, "/p", ""), id="tls-transport-is-https"),
    pytest.param(get("/p", "Host: example.com:80"), True, "https://example.com:80/p",
                 ("https", "example.com", 80, "/p", ""), id="https-on-port-80-keeps-port"),
    pytest.param(get("/p", "Host: [::1]:8080"), False, "http://[::1]:8080/p",
                 ("http", "[::1]", 8080, "/p", ""), id="ipv6-literal-with-port"),
    pytest.param(get("/p", "Host: [::1]"), False, "http://[::1]/p",
                 ("http", "[::1]", 80, "/p", ""), id="ipv6-literal-without-port"),
    pytest.param(get("http://origin.example:81/a%20b?x", "Host: ignored"), False,
                 "http://origin.example:81/a%20b?x", ("http", "origin.example", 81, "/a%20b", "x"),
                 id="absolute-form-authority-wins-over-host"),
    pytest.param(get("/p", version="1.0"), False, "http://127.0.0.1:8000/p",
                 ("http", "127.0.0.1", 8000, "/p", ""), id="no-host-uses-local-address"),
]


@pytest.mark.parametrize("head, tls, text, parts", URL_VECTORS)
def test_url_is_rebuilt_from_connection_target_and_host(head, tls, text, parts):
    url = make_request(head, FakeConn(tls=tls)).url
    assert str(url) == text
    assert (url.scheme, url.host, url.port, url.path, url.query) == parts


def test_url_without_host_on_ipv6_listener_brackets_the_address():
    url = make_request(get("/", version="1.0"), FakeConn(sockname=("::1", 9000, 0, 0))).url
    assert str(url) == "http://[::1]:9000/"


def test_request_id_is_lazy_unique_hex_and_settable():
    a, b = make_request(get("/", "Host: x")), make_request(get("/", "Host: x"))
    assert a._id is None
    assert len(a.id) == 32 and int(a.id, 16) >= 0 and a.id == a.id
    assert a.id != b.id
    b.id = "from-proxy"
    assert b.id == "from-proxy"
    with pytest.raises(TypeError):
        b.id = ""


def test_background_appends_calls_after_none():
    request = make_request(get("/", "Host: x"))
    assert request._background is None

    def work(a, b=0):
        return a + b

    request.background(work, 1, b=2)
    request.background(print)
    assert request._background == [(work, (1,), {"b": 2}), (print, (), {})]
    with pytest.raises(TypeError):
        request.background("not callable")


def test_g_outside_a_request_raises_a_clear_runtime_error():
    def outside():
        with pytest.raises(RuntimeError, match="outside a request"):
            g.user = "x"
        with pytest.raises(RuntimeError, match="outside a request"):
            g.get("user")
        with pytest.raises(RuntimeError, match="outside a request"):
            current_request()
        assert repr(g) == "<g outside a request>"
    contextvars.Context().run(outside)


def test_g_is_bound_to_the_request_of_its_context():
    def inside(tag: str) -> tuple[Any, ...]:
        request = Request(FakeConn(), parse_request_head(get("/", "Host: x")), b"")
        assert current_request() is request
        assert g.get("user") is None and "user" not in g
        g.user = tag
        assert g.user == tag and request.g.user == tag and "user" in g
        assert list(g) == ["user"]
        del g.user
        with pytest.raises(AttributeError, match="no attribute 'user'"):
            g.user  # noqa: B018
        with pytest.raises(AttributeError):
            del g.user
        g.count = 1
        return request, g.pop("count"), g.pop("count", None)

    first = contextvars.Context().run(inside, "alice")
    second = contextvars.Context().run(inside, "bob")
    assert first[1:] == (1, None) and second[1:] == (1, None)
    assert first[0].g is not second[0].g


def test_request_g_is_made_on_first_use_only():
    request = make_request(get("/", "Host: x"))
    assert request._g is None
    namespace = request.g
    assert request.g is namespace
