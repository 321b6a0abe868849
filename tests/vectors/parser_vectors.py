"""Request and response head vectors for the head parser, as data.

Each vector is one head, its mode, and the verdict: ``status`` is the ``ProtocolError`` status it must
raise, or ``None`` when it parses; ``fields`` then lists the ``Head`` attributes to check (framing by
name; ``headers`` compares ``header_items()``).  ``limits`` overrides ``ParserLimits`` arguments.

Ids say what the vector exercises; tests use them as pytest ids.  Reference-parser verdicts that
differ from these are listed in ``parser_differences.py``.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from cyserve._core.http.parser import (FRAMING_CHUNKED, FRAMING_CLOSE, FRAMING_LENGTH, FRAMING_NONE,
                                  HeadScanner, ParserLimits, parse_request_head,
                                  parse_response_head)
from cyserve.errors import ProtocolError

FRAMING_BY_NAME = {"NONE": FRAMING_NONE, "LENGTH": FRAMING_LENGTH, "CHUNKED": FRAMING_CHUNKED,
                   "CLOSE": FRAMING_CLOSE}

class Vector(NamedTuple):
    id: str
    raw: bytes
    status: int | None = None  # ProtocolError status; None: accepted
    fields: dict[str, Any] = {}
    mode: str = "request"  # or "response"
    head_request: bool = False  # response mode: the request was HEAD
    limits: dict[str, int] = {}


def _req(start: bytes, *fields: bytes) -> bytes:
    return start + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"


def _get(*fields: bytes) -> bytes:
    """GET / HTTP/1.1 with Host: a and the given field lines."""
    return _req(b"GET / HTTP/1.1", b"Host: a", *fields)


def _resp(start: bytes, *fields: bytes) -> bytes:
    return _req(start, *fields)


_MANY = tuple(b"X-F%d: v" % i for i in range(99))

REQUEST_VECTORS: list[Vector] = [
    # --- accepted -----------------------------------------------------------------------------
    Vector("tiny-get", _get(), fields=dict(
        method="GET", target="/", path="/", query_string="", version=11, framing="NONE",
        content_length=-1, keep_alive=True, expect_continue=False, upgrade=False, header_count=1,
        headers=[("host", "a")])),
    Vector("get-with-query", _req(b"GET /a/b?x=1&y=%20 HTTP/1.1", b"Host: a"), fields=dict(
        target="/a/b?x=1&y=%20", path="/a/b", query_string="x=1&y=%20")),
    Vector("get-empty-query", _req(b"GET /a? HTTP/1.1", b"Host: a"), fields=dict(
        path="/a", query_string="")),
    Vector("target-with-unusual-vchars", _req(b"GET /{x}|^`\\\"<> HTTP/1.1", b"Host: a"),
           fields=dict(target='/{x}|^`\\"<>')),
    Vector("http10-without-host", _req(b"GET / HTTP/1.0"), fields=dict(
        version=10, keep_alive=False, header_count=0, headers=[])),
    Vector("http10-keep-alive", _req(b"GET / HTTP/1.0", b"Connection: Keep-Alive"), fields=dict(
        version=10, keep_alive=True)),
    Vector("http11-connection-close", _get(b"Connection: close"), fields=dict(keep_alive=False)),
    Vector("connection-list-case-insensitive", _get(b"Connection: keep-alive, CLOSE"),
           fields=dict(keep_alive=False)),
    Vector("connection-several-lines", _get(b"Connection: x-foo", b"Connection: Close"),
           fields=dict(keep_alive=False)),
    Vector("http10-close-wins-over-keep-alive", _req(b"GET / HTTP/1.0", b"Connection: keep-alive, close"),
           fields=dict(keep_alive=False)),
    Vector("post-content-length", _req(b"POST /f HTTP/1.1", b"Host: a", b"Content-Length: 5"),
           fields=dict(method="POST", framing="LENGTH", content_length=5)),
    Vector("content-length-zero-is-no-body", _get(b"Content-Length: 0"), fields=dict(
        framing="NONE", content_length=-1)),
    Vector("content-length-leading-zeros", _get(b"Content-Length: 007"), fields=dict(
        framing="LENGTH", content_length=7)),
    Vector("content-length-at-cap", _get(b"Content-Length: %d" % 2**62), fields=dict(
        framing="LENGTH", content_length=2**62)),
    Vector("content-length-with-ows", _get(b"Content-Length: \t 12 \t"), fields=dict(
        content_length=12)),
    Vector("chunked", _req(b"POST / HTTP/1.1", b"Host: a", b"Transfer-Encoding: chunked"),
           fields=dict(framing="CHUNKED", content_length=-1)),
    Vector("chunked-with-trailing-htab", _get(b"Transfer-Encoding: chunked\t"), fields=dict(
        framing="CHUNKED")),
    Vector("chunked-upper-case", _get(b"Transfer-Encoding: CHUNKED"), fields=dict(framing="CHUNKED")),
    Vector("expect-100-continue", _get(b"Expect: 100-continue"), fields=dict(expect_continue=True)),
    Vector("expect-100-continue-any-case", _get(b"Expect: 100-Continue"), fields=dict(
        expect_continue=True)),
    Vector("expect-ignored-on-http10", _req(b"GET / HTTP/1.0", b"Expect: 100-continue"),
           fields=dict(expect_continue=False)),
    Vector("expect-other-value", _get(b"Expect: 200-ok"), fields=dict(expect_continue=False)),
    Vector("upgrade-websocket", _get(b"Connection: keep-alive, Upgrade", b"Upgrade: websocket"),
           fields=dict(upgrade=True, keep_alive=True)),
    Vector("upgrade-field-without-connection-token", _get(b"Upgrade: websocket"), fields=dict(
        upgrade=False)),
    Vector("upgrade-ignored-on-http10", _req(b"GET / HTTP/1.0", b"Connection: upgrade",
                                             b"Upgrade: websocket"), fields=dict(upgrade=False)),
    Vector("obs-text-in-value", _get(b"X-Latin: caf\xe9 \x80\xff"), fields=dict(
        headers=[("host", "a"), ("x-latin", "caf\xe9 \x80\xff")])),
    Vector("htab-inside-value", _get(b"X-Tab: a\tb"), fields=dict(
        headers=[("host", "a"), ("x-tab", "a\tb")])),
    Vector("ows-around-value-trimmed", _get(b"X-Ows: \t v w \t"), fields=dict(
        headers=[("host", "a"), ("x-ows", "v w")])),
    Vector("empty-value", _get(b"X-Empty:", b"X-Blank:  "), fields=dict(
        headers=[("host", "a"), ("x-empty", ""), ("x-blank", "")])),
    Vector("all-tchars-in-name", _get(b"!#$%&'*+-.^_`|~09azAZ: v"), fields=dict(
        headers=[("host", "a"), ("!#$%&'*+-.^_`|~09azaz", "v")])),
    Vector("mixed-case-names-lowered", _get(b"X-MiXeD: V"), fields=dict(
        headers=[("host", "a"), ("x-mixed", "V")])),
    Vector("options-asterisk-form", _req(b"OPTIONS * HTTP/1.1", b"Host: a"), fields=dict(
        method="OPTIONS", target="*", path="*")),
    Vector("connect-authority-form", _req(b"CONNECT example.com:443 HTTP/1.1",
                                          b"Host: example.com:443"), fields=dict(
        method="CONNECT", target="example.com:443")),
    Vector("connect-ipv6-authority", _req(b"CONNECT [::1]:443 HTTP/1.1", b"Host: [::1]:443"),
           fields=dict(target="[::1]:443")),
    Vector("absolute-form", _req(b"GET http://example.com/a/b?q=1 HTTP/1.1", b"Host: example.com"),
           fields=dict(target="http://example.com/a/b?q=1", path="/a/b", query_string="q=1")),
    Vector("absolute-form-https-no-path", _req(b"GET HTTPS://example.com HTTP/1.1",
                                               b"Host: example.com"), fields=dict(path="/")),
    Vector("registered-methods-interned", _req(b"DELETE /x HTTP/1.1", b"Host: a"), fields=dict(
        method="DELETE")),
    Vector("webdav-method", _req(b"PROPFIND /x HTTP/1.1", b"Host: a"), fields=dict(
        method="PROPFIND")),
    Vector("extension-method", _req(b"FOO-BAR /x HTTP/1.1", b"Host: a"), fields=dict(
        method="FOO-BAR")),
    Vector("lower-case-method-is-another-method", _req(b"get / HTTP/1.1", b"Host: a"), fields=dict(
        method="get")),
    Vector("http-minor-version-above-1", _req(b"GET / HTTP/1.2", b"Host: a"), fields=dict(
        version=11)),
    Vector("host-empty", _req(b"GET / HTTP/1.1", b"Host:"), fields=dict(
        headers=[("host", "")])),
    Vector("host-with-port", _req(b"GET / HTTP/1.1", b"Host: example.com:8080")),
    Vector("host-empty-port", _req(b"GET / HTTP/1.1", b"Host: example.com:")),
    Vector("host-ipv6-literal", _req(b"GET / HTTP/1.1", b"Host: [2001:db8::1]:8080")),
    Vector("host-sub-delims-and-pct", _req(b"GET / HTTP/1.1", b"Host: a!$&'()*+,;=%41.b_c~d")),
    Vector("host-any-case-name", _req(b"GET / HTTP/1.1", b"hOsT: a")),
    Vector("header-count-at-limit", _get(*_MANY), fields=dict(header_count=100)),
    Vector("request-line-at-limit", _req(b"GET /" + b"a" * 46 + b" HTTP/1.1", b"Host: a"),
           limits=dict(max_request_line_bytes=60, max_head_bytes=200)),
    Vector("head-at-limit", _get(b"X: " + b"v" * 68), limits=dict(max_request_line_bytes=50, max_head_bytes=100)),
    Vector("header-count-above-stack-block", _get(*(b"X-F%d: v" % i for i in range(199))),
           fields=dict(header_count=200), limits=dict(max_header_count=200)),
    # --- framing: Content-Length / Transfer-Encoding (RFC 9112 §6) ----------------------------
    Vector("cl-and-te-both-present", _get(b"Content-Length: 5", b"Transfer-Encoding: chunked"), 400),
    Vector("te-and-cl-both-present", _get(b"Transfer-Encoding: chunked", b"Content-Length: 0"), 400),
    Vector("duplicate-content-length-identical", _get(b"Content-Length: 5", b"Content-Length: 5"), 400),
    Vector("duplicate-content-length-differing", _get(b"Content-Length: 5", b"Content-Length: 6"), 400),
    Vector("content-length-list", _get(b"Content-Length: 5,5"), 400),
    Vector("content-length-list-with-space", _get(b"Content-Length: 5, 5"), 400),
    Vector("content-length-plus-sign", _get(b"Content-Length: +5"), 400),
    Vector("content-length-minus-sign", _get(b"Content-Length: -1"), 400),
    Vector("content-length-hex", _get(b"Content-Length: 0x5"), 400),
    Vector("content-length-inner-space", _get(b"Content-Length: 5 5"), 400),
    Vector("content-length-empty", _get(b"Content-Length:"), 400),
    Vector("content-length-past-cap", _get(b"Content-Length: %d" % (2**62 + 1)), 400),
    Vector("content-length-past-uint64", _get(b"Content-Length: %d" % 2**64), 400),
    Vector("content-length-letters", _get(b"Content-Length: five"), 400),
    Vector("te-gzip-then-chunked", _get(b"Transfer-Encoding: gzip, chunked"), 501),
    Vector("te-identity", _get(b"Transfer-Encoding: identity"), 501),
    Vector("te-unknown-coding", _get(b"Transfer-Encoding: foo"), 501),
    Vector("te-chunked-with-parameter", _get(b"Transfer-Encoding: chunked;q=1"), 501),
    Vector("te-gzip-and-chunked-two-lines", _get(b"Transfer-Encoding: gzip",
                                                 b"Transfer-Encoding: chunked"), 501),
    Vector("te-chunked-repeated", _get(b"Transfer-Encoding: chunked, chunked"), 400),
    Vector("te-chunked-repeated-two-lines", _get(b"Transfer-Encoding: chunked",
                                                 b"Transfer-Encoding: chunked"), 400),
    Vector("te-chunked-not-last", _get(b"Transfer-Encoding: chunked, gzip"), 400),
    Vector("te-empty", _get(b"Transfer-Encoding:"), 400),
    Vector("te-only-commas", _get(b"Transfer-Encoding: , ,"), 400),
    # Empty list elements (RFC 9110 §5.6.1): up to grammar.MAX_EMPTY_LIST_ELEMENTS (8) per list
    # are ignored; the ninth makes the field malformed.  Framing stays strict around them.
    Vector("te-leading-empty-element", _get(b"Transfer-Encoding: ,chunked"), fields=dict(
        framing="CHUNKED")),
    Vector("te-leading-empty-element-with-ows", _get(b"Transfer-Encoding: , chunked"), fields=dict(
        framing="CHUNKED")),
    Vector("te-trailing-empty-element", _get(b"Transfer-Encoding: chunked,"), fields=dict(
        framing="CHUNKED")),
    Vector("te-trailing-empty-elements-with-ows", _get(b"Transfer-Encoding: chunked , ,\t"),
           fields=dict(framing="CHUNKED")),
    Vector("te-eight-empty-elements", _get(b"Transfer-Encoding: ,, ,,chunked,,\t,,"), fields=dict(
        framing="CHUNKED")),
    Vector("te-nine-empty-elements", _get(b"Transfer-Encoding: ,,,,,,,,,chunked"), 400),
    Vector("te-thousands-of-commas", _get(b"Transfer-Encoding: " + b"," * 3000 + b"chunked"), 400),
    Vector("te-empty-elements-counted-across-lines", _get(b"Transfer-Encoding: gzip,,,,,,,,",
                                                          b"Transfer-Encoding: ,chunked"), 400),
    Vector("te-chunked-empty-element-chunked", _get(b"Transfer-Encoding: chunked,,chunked"), 400),
    Vector("te-chunked-empty-element-gzip", _get(b"Transfer-Encoding: chunked, ,gzip"), 400),
    Vector("te-empty-elements-around-unknown-coding", _get(b"Transfer-Encoding: ,gzip,,chunked,"),
           501),
    Vector("te-empty-line-then-chunked", _get(b"Transfer-Encoding:",
                                              b"Transfer-Encoding: chunked"),
           fields=dict(framing="CHUNKED")),
    Vector("te-only-commas-line-then-chunked", _get(b"Transfer-Encoding: ,",
                                                    b"Transfer-Encoding: chunked"),
           fields=dict(framing="CHUNKED")),
    Vector("te-empty-line-and-only-commas-line", _get(b"Transfer-Encoding:",
                                                      b"Transfer-Encoding: , ,"), 400),
    Vector("te-empty-element-beside-content-length", _get(b"Transfer-Encoding: ,chunked",
                                                          b"Content-Length: 5"), 400),
    Vector("connection-empty-elements", _get(b"Connection: ,close,"), fields=dict(
        keep_alive=False)),
    Vector("connection-eight-empty-elements", _get(b"Connection: ,,,,,,,,close"), fields=dict(
        keep_alive=False)),
    Vector("connection-nine-empty-elements", _get(b"Connection: ,,,,,,,,,close"), 400),
    Vector("connection-empty-elements-counted-across-lines",
           _get(b"Connection: keep-alive,,,,,", b"Connection: ,,,,close"), 400),
    Vector("connection-thousands-of-commas", _get(b"Connection: " + b"," * 3000), 400),
    Vector("expect-empty-elements", _get(b"Expect: , 100-continue ,"), fields=dict(
        expect_continue=True)),
    Vector("expect-nine-empty-elements", _get(b"Expect: 100-continue,,,,,,,,,,"), 400),
    Vector("upgrade-empty-elements", _get(b"Connection: upgrade", b"Upgrade: , websocket,"),
           fields=dict(upgrade=True)),
    Vector("upgrade-only-empty-elements-offers-nothing", _get(b"Connection: upgrade",
                                                              b"Upgrade: ,"),
           fields=dict(upgrade=False)),
    Vector("upgrade-empty-offers-nothing", _get(b"Connection: upgrade", b"Upgrade:"),
           fields=dict(upgrade=False)),
    Vector("upgrade-nine-empty-elements", _get(b"Connection: upgrade",
                                               b"Upgrade: ,,,,,,,,,websocket"), 400),
    Vector("te-quoted-coding", _get(b'Transfer-Encoding: "chunked"'), 400),
    Vector("te-on-http10", _req(b"POST / HTTP/1.0", b"Transfer-Encoding: chunked"), 400),
    # --- field syntax (RFC 9112 §5, RFC 9110 §5) -------------------------------------------
    Vector("whitespace-before-colon", _get(b"X-Foo : v"), 400),
    Vector("tab-before-colon", _get(b"X-Foo\t: v"), 400),
    Vector("obs-fold", _get(b"X-Foo: a", b" b"), 400),
    Vector("obs-fold-with-tab", _get(b"X-Foo: a", b"\tb"), 400),
    Vector("whitespace-before-first-field", _req(b"GET / HTTP/1.1", b" Host: a"), 400),
    Vector("bare-lf-in-header", b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 400),
    Vector("bare-lf-after-request-line", b"GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
    Vector("bare-lf-head-end", b"GET / HTTP/1.1\r\nHost: a\r\n\n", 400),
    Vector("bare-lf-only-line-endings", b"GET / HTTP/1.1\nHost: a\n\n", 400),
    Vector("bare-cr-in-value", _get(b"X: a\rb"), 400),
    Vector("bare-cr-at-line-end", b"GET / HTTP/1.1\r\nHost: a\r\nX: b\r\r\n\r\n", 400),
    Vector("nul-in-value", _get(b"X: a\x00b"), 400),
    Vector("nul-in-name", _get(b"X\x00: b"), 400),
    Vector("ctl-in-value", _get(b"X: a\x01b"), 400),
    Vector("del-in-value", _get(b"X: a\x7fb"), 400),
    Vector("escape-in-value", _get(b"X: a\x1bb"), 400),
    Vector("empty-field-name", _get(b": v"), 400),
    Vector("non-token-field-name", _get(b"X(Y): v"), 400),
    Vector("quote-in-field-name", _get(b'X"Y: v'), 400),
    Vector("non-ascii-field-name", _get(b"X\xe9: v"), 400),
    Vector("field-line-without-colon", _get(b"X-Foo"), 400),
    # --- request line (RFC 9112 §3) ---------------------------------------------------------
    Vector("request-line-missing-version", _req(b"GET /", b"Host: a"), 400),
    Vector("request-line-only-method", _req(b"GET", b"Host: a"), 400),
    Vector("request-line-double-space", _req(b"GET  / HTTP/1.1", b"Host: a"), 400),
    Vector("request-line-trailing-space", _req(b"GET / HTTP/1.1 ", b"Host: a"), 400),
    Vector("request-line-tab-separator", _req(b"GET\t/ HTTP/1.1", b"Host: a"), 400),
    Vector("request-line-four-parts", _req(b"GET / x HTTP/1.1", b"Host: a"), 400),
    Vector("request-line-empty", _req(b"", b"Host: a"), 400),
    Vector("method-empty", _req(b" / HTTP/1.1", b"Host: a"), 400),
    Vector("method-non-token", _req(b"G(T / HTTP/1.1", b"Host: a"), 400),
    Vector("target-empty", _req(b"GET  HTTP/1.1", b"Host: a"), 400),
    Vector("target-with-ctl", _req(b"GET /a\x01b HTTP/1.1", b"Host: a"), 400),
    Vector("target-with-del", _req(b"GET /a\x7f HTTP/1.1", b"Host: a"), 400),
    Vector("target-with-non-ascii", _req(b"GET /caf\xe9 HTTP/1.1", b"Host: a"), 400),
    Vector("target-with-nul", _req(b"GET /a\x00 HTTP/1.1", b"Host: a"), 400),
    Vector("target-with-fragment", _req(b"GET /a#b HTTP/1.1", b"Host: a"), 400),
    Vector("absolute-form-with-fragment", _req(b"GET http://a/x#y HTTP/1.1", b"Host: a"), 400),
    Vector("target-relative", _req(b"GET a/b HTTP/1.1", b"Host: a"), 400),
    Vector("asterisk-form-with-get", _req(b"GET * HTTP/1.1", b"Host: a"), 400),
    Vector("authority-form-with-get", _req(b"GET example.com:80 HTTP/1.1", b"Host: a"), 400),
    Vector("connect-origin-form", _req(b"CONNECT /x HTTP/1.1", b"Host: a"), 400),
    Vector("connect-without-port", _req(b"CONNECT example.com HTTP/1.1", b"Host: a"), 400),
    Vector("connect-absolute-form", _req(b"CONNECT http://example.com:80/ HTTP/1.1", b"Host: a"), 400),
    Vector("absolute-form-other-scheme", _req(b"GET ftp://example.com/ HTTP/1.1", b"Host: a"), 400),
    Vector("absolute-form-userinfo", _req(b"GET http://user:pw@example.com/ HTTP/1.1", b"Host: a"), 400),
    Vector("absolute-form-invalid-host", _req(b"GET http://exa{mple.com/ HTTP/1.1", b"Host: a"), 400),
    Vector("absolute-form-empty-authority", _req(b"GET http:///a HTTP/1.1", b"Host: a"), 400),
    Vector("version-lower-case", _req(b"GET / http/1.1", b"Host: a"), 400),
    Vector("version-two-digit-minor", _req(b"GET / HTTP/1.10", b"Host: a"), 400),
    Vector("version-missing-dot", _req(b"GET / HTTP/11", b"Host: a"), 400),
    Vector("version-garbage", _req(b"GET / HTCPCP/1.0", b"Host: a"), 400),
    Vector("version-2", _req(b"GET / HTTP/2.0", b"Host: a"), 505),
    Vector("version-0-9", _req(b"GET / HTTP/0.9", b"Host: a"), 505),
    Vector("version-3", _req(b"GET / HTTP/3.0", b"Host: a"), 505),
    # --- Host (RFC 9112 §3.2) -------------------------------------------------------------
    Vector("host-missing-on-http11", _req(b"GET / HTTP/1.1", b"X: y"), 400),
    Vector("host-duplicate", _get(b"Host: a"), 400),
    Vector("host-duplicate-on-http10", _req(b"GET / HTTP/1.0", b"Host: a", b"Host: b"), 400),
    Vector("host-with-space", _req(b"GET / HTTP/1.1", b"Host: a b"), 400),
    Vector("host-with-path", _req(b"GET / HTTP/1.1", b"Host: a/b"), 400),
    Vector("host-with-userinfo", _req(b"GET / HTTP/1.1", b"Host: u@a"), 400),
    Vector("host-non-numeric-port", _req(b"GET / HTTP/1.1", b"Host: a:http"), 400),
    Vector("host-unclosed-ipv6", _req(b"GET / HTTP/1.1", b"Host: [::1"), 400),
    Vector("host-non-ascii", _req(b"GET / HTTP/1.1", b"Host: caf\xe9"), 400),
    # --- limits -----------------------------------------------------------------------------
    Vector("too-many-headers", _get(*_MANY, b"X-Last: v"), 431),
    Vector("request-line-too-long", _req(b"GET /" + b"a" * 47 + b" HTTP/1.1", b"Host: a"), 414,
           limits=dict(max_request_line_bytes=60, max_head_bytes=200)),
    Vector("request-line-too-long-and-malformed", _req(b"GET /" + b"a" * 80, b"Host: a"), 414,
           limits=dict(max_request_line_bytes=60, max_head_bytes=200)),
    Vector("head-too-long", _get(b"X: " + b"v" * 69), 431, limits=dict(max_request_line_bytes=50, max_head_bytes=100)),
    Vector("head-too-long-without-end", b"GET / HTTP/1.1\r\nX: " + b"v" * 200, 431,
           limits=dict(max_request_line_bytes=50, max_head_bytes=100)),
]


RESPONSE_VECTORS: list[Vector] = [
    Vector("response-ok-content-length", _resp(b"HTTP/1.1 200 OK", b"Content-Length: 5"),
           mode="response", fields=dict(status=200, reason="OK", version=11, framing="LENGTH",
                                        content_length=5, keep_alive=True, method="")),
    Vector("response-chunked", _resp(b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked"),
           mode="response", fields=dict(framing="CHUNKED")),
    Vector("response-without-length-reads-to-close", _resp(b"HTTP/1.1 200 OK"), mode="response",
           fields=dict(framing="CLOSE", keep_alive=False)),
    Vector("response-content-length-zero", _resp(b"HTTP/1.1 200 OK", b"Content-Length: 0"),
           mode="response", fields=dict(framing="NONE", keep_alive=True)),
    Vector("response-204-no-body", _resp(b"HTTP/1.1 204 No Content"), mode="response",
           fields=dict(framing="NONE", keep_alive=True)),
    Vector("response-304-ignores-content-length", _resp(b"HTTP/1.1 304 Not Modified",
                                                        b"Content-Length: 10"),
           mode="response", fields=dict(framing="NONE", content_length=-1)),
    Vector("response-100-continue", _resp(b"HTTP/1.1 100 Continue"), mode="response",
           fields=dict(status=100, framing="NONE")),
    Vector("response-101-upgrade", _resp(b"HTTP/1.1 101 Switching Protocols",
                                         b"Connection: Upgrade", b"Upgrade: websocket"),
           mode="response", fields=dict(status=101, upgrade=True, framing="NONE")),
    Vector("response-to-head-has-no-body", _resp(b"HTTP/1.1 200 OK", b"Content-Length: 99"),
           mode="response", head_request=True, fields=dict(framing="NONE")),
    Vector("response-empty-reason", _resp(b"HTTP/1.1 200 ", b"Content-Length: 0"), mode="response",
           fields=dict(reason="")),
    Vector("response-reason-with-obs-text", _resp(b"HTTP/1.1 404 Nicht gefunden \xfc\tx"),
           mode="response", fields=dict(reason="Nicht gefunden \xfc\tx")),
    Vector("response-http10-keep-alive", _resp(b"HTTP/1.0 200 OK", b"Connection: keep-alive",
                                               b"Content-Length: 1"),
           mode="response", fields=dict(version=10, keep_alive=True)),
    Vector("response-http10-default-close", _resp(b"HTTP/1.0 200 OK", b"Content-Length: 1"),
           mode="response", fields=dict(version=10, keep_alive=False)),
    Vector("response-connection-close", _resp(b"HTTP/1.1 200 OK", b"Connection: close",
                                              b"Content-Length: 1"),
           mode="response", fields=dict(keep_alive=False)),
    Vector("response-599", _resp(b"HTTP/1.1 599 x", b"Content-Length: 0"), mode="response",
           fields=dict(status=599)),
    Vector("response-no-host-needed", _resp(b"HTTP/1.1 200 OK", b"Content-Length: 0"),
           mode="response", fields=dict(header_count=1)),
    Vector("response-long-status-line-no-414", _resp(b"HTTP/1.1 200 " + b"x" * 100,
                                                     b"Content-Length: 0"),
           mode="response", limits=dict(max_request_line_bytes=20, max_head_bytes=400)),
    Vector("response-status-without-sp", _resp(b"HTTP/1.1 200", b"Content-Length: 0"), 400,
           mode="response"),
    Vector("response-status-two-digits", _resp(b"HTTP/1.1 20 OK"), 400, mode="response"),
    Vector("response-status-four-digits", _resp(b"HTTP/1.1 2000 OK"), 400, mode="response"),
    Vector("response-status-below-100", _resp(b"HTTP/1.1 099 x"), 400, mode="response"),
    Vector("response-status-above-599", _resp(b"HTTP/1.1 600 x"), 400, mode="response"),
    Vector("response-reason-with-ctl", _resp(b"HTTP/1.1 200 O\x01K"), 400, mode="response"),
    Vector("response-cl-and-te", _resp(b"HTTP/1.1 200 OK", b"Content-Length: 5",
                                       b"Transfer-Encoding: chunked"), 400, mode="response"),
    Vector("response-duplicate-content-length", _resp(b"HTTP/1.1 200 OK", b"Content-Length: 5",
                                                      b"Content-Length: 5"), 400, mode="response"),
    Vector("response-te-unknown", _resp(b"HTTP/1.1 200 OK", b"Transfer-Encoding: gzip, chunked"),
           501, mode="response"),
    Vector("response-te-trailing-empty-element", _resp(b"HTTP/1.1 200 OK",
                                                      b"Transfer-Encoding: chunked,"),
           mode="response", fields=dict(framing="CHUNKED")),
    Vector("response-te-nine-empty-elements", _resp(b"HTTP/1.1 200 OK",
                                                    b"Transfer-Encoding: ,,,,,,,,,chunked"),
           400, mode="response"),
    Vector("response-connection-nine-empty-elements", _resp(b"HTTP/1.1 200 OK",
                                                            b"Connection: close,,,,,,,,,",
                                                            b"Content-Length: 0"),
           400, mode="response"),
    Vector("response-te-on-http10", _resp(b"HTTP/1.0 200 OK", b"Transfer-Encoding: chunked"), 400,
           mode="response"),
    Vector("response-version-2", _resp(b"HTTP/2.0 200 OK"), 505, mode="response"),
    Vector("response-version-garbage", _resp(b"HTTP/x.1 200 OK"), 400, mode="response"),
    Vector("response-obs-fold", _resp(b"HTTP/1.1 200 OK", b"X: a", b" b"), 400, mode="response"),
    Vector("response-bare-lf", b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", 400, mode="response"),
    Vector("response-too-many-headers", _resp(b"HTTP/1.1 200 OK", *_MANY, b"A: b", b"C: d"), 431,
           mode="response"),
]

VECTORS: list[Vector] = REQUEST_VECTORS + RESPONSE_VECTORS


# ---------------------------------------------------------------------------------------------
# Driving a head through the scanner in pieces, then the parser


class Outcome(NamedTuple):
    """``status`` is the ProtocolError status (None when parsed); ``end`` the head length the
    scanner found (-1 when it wanted more bytes or raised); ``fields`` a snapshot of the Head."""

    status: int | None
    end: int
    fields: dict[str, Any] | None


def snapshot(head: Any) -> dict[str, Any]:
    """Every public attribute of a Head, as plain values."""
    names = ("raw", "version", "method", "status", "reason", "framing", "content_length",
             "keep_alive", "expect_continue", "upgrade", "header_count", "target", "raw_target",
             "path", "query_string")
    out = {name: getattr(head, name) for name in names}
    out["headers"] = head.header_items()
    out["raw_headers"] = head.raw_items()
    return out


def parse_in_pieces(raw: bytes, cuts: list[int] | tuple[int, ...] = (), mode: str = "request",
        limits: dict[str, int] | None = None, head_request: bool = False) -> Outcome:
    """Feed growing prefixes of ``raw`` ending at each of ``cuts`` (then all of it) to one
    HeadScanner; parse the head once it is found.  Any exception but ProtocolError propagates."""
    parser_limits = ParserLimits(**(limits or {}))
    scanner = HeadScanner(parser_limits, mode == "response")
    end = -1
    try:
        for cut in sorted({c for c in cuts if 0 < c < len(raw)} | {len(raw)}):
            end = scanner.feed(raw[:cut])
            if end >= 0:
                break
        if end < 0:
            return Outcome(None, -1, None)
        if mode == "request":
            head = parse_request_head(raw[:end], parser_limits)
        else:
            head = parse_response_head(raw[:end], parser_limits, head_request)
    except ProtocolError as exc:
        return Outcome(exc.status, end, None)
    return Outcome(None, end, snapshot(head))


def split_plans(raw: bytes, seed: int = 0) -> dict[str, list[int]]:
    """Named ways to cut ``raw``: whole, one byte at a time, halves, inside every CRLF, every 7
    bytes, and a few seeded random cuts."""
    import random

    rng = random.Random(seed)
    n = len(raw)
    crlf = [i + 1 for i in range(n) if raw[i:i + 1] in (b"\r", b"\n")]
    return {
        "whole": [],
        "bytewise": list(range(1, n)),
        "halves": [n // 2],
        "inside-crlf": crlf,
        "every-7": list(range(7, n, 7)),
        "random": sorted(rng.sample(range(1, n), min(4, max(n - 1, 0)))) if n > 1 else [],
    }
