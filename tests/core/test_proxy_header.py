"""PROXY protocol header vectors (HAProxy's specification, v1 §2.1 and v2 §2.2) through the core's
parser, ``parse_proxy_header``: each valid vector whole, with bytes after it, and as every
prefix (an incomplete header is None, never a verdict); each invalid vector raises ValueError
whole, and no prefix of it is ever taken for a header.

v2 headers are built here with ``struct`` from the specification's layout, not by the code under
test.
"""
from __future__ import annotations

import socket
import struct
from typing import Any

import pytest

from cyserve._core.http.proxyproto import parse_proxy_header

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(command: int, fam: int, body: bytes, version: int = 2) -> bytes:
    return SIG + bytes([(version << 4) | command, fam]) + struct.pack("!H", len(body)) + body


def inet(src: str, dst: str, sport: int, dport: int) -> bytes:
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)


def inet6(src: str, dst: str, sport: int, dport: int) -> bytes:
    return (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
            + struct.pack("!HH", sport, dport))


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack("!H", len(value)) + value


UNIX_ADDRESSES = b"/run/client.sock".ljust(108, b"\x00") + b"/run/haproxy.sock".ljust(108, b"\x00")

VALID: list[tuple[str, bytes, int, Any]] = [
    ("v1-tcp4", b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\r\n", 1, ("192.0.2.10", 56324)),
    ("v1-tcp6", b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 80\r\n", 1, ("2001:db8::1", 4000, 0, 0)),
    ("v1-tcp6-canonical-form", b"PROXY TCP6 2001:0db8:0:0:0:0:0:0001 ::1 1 2\r\n", 1,
     ("2001:db8::1", 1, 0, 0)),
    ("v1-tcp4-port-zero", b"PROXY TCP4 10.0.0.1 10.0.0.2 0 65535\r\n", 1, ("10.0.0.1", 0)),
    ("v1-unknown-bare", b"PROXY UNKNOWN\r\n", 1, None),
    ("v1-unknown-with-addresses-ignored", b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", 1, None),
    ("v1-longest-line-107-bytes",
     b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
     b" 65535 65535\r\n", 1, ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, 0, 0)),
    ("v2-proxy-tcp4", v2(1, 0x11, inet("203.0.113.7", "10.0.0.1", 51000, 8080)), 2,
     ("203.0.113.7", 51000)),
    ("v2-proxy-tcp6", v2(1, 0x21, inet6("2001:db8::7", "2001:db8::1", 60000, 443)), 2,
     ("2001:db8::7", 60000, 0, 0)),
    ("v2-proxy-tcp4-with-tlvs",
     v2(1, 0x11, inet("198.51.100.20", "10.0.0.1", 1234, 80) + tlv(0x01, b"h2")
        + tlv(0x04, b"") + tlv(0xEA, b"vpce-0123456789abcdef")), 2, ("198.51.100.20", 1234)),
    ("v2-proxy-udp4-defined-pair", v2(1, 0x12, inet("192.0.2.1", "192.0.2.2", 53, 53)), 2,
     ("192.0.2.1", 53)),
    ("v2-local-keeps-the-socket-peer", v2(0, 0x00, b""), 2, None),
    ("v2-local-ignores-its-family-and-addresses",
     v2(0, 0x11, inet("192.0.2.1", "192.0.2.2", 1, 2) + tlv(0x05, b"x" * 40)), 2, None),
    ("v2-proxy-unspec-keeps-the-socket-peer", v2(1, 0x00, b""), 2, None),
    ("v2-proxy-unix-keeps-the-socket-peer", v2(1, 0x31, UNIX_ADDRESSES), 2, None),
]

INVALID: list[tuple[str, bytes]] = [
    ("http-request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("tls-client-hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
    ("v1-lowercase", b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
    ("v1-bare-lf", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"),
    ("v1-no-protocol", b"PROXY \r\n"),
    ("v1-unknown-protocol", b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"),
    ("v1-missing-port", b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"),
    ("v1-extra-field", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"),
    ("v1-double-space", b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"),
    ("v1-trailing-space", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"),
    ("v1-ipv6-under-tcp4", b"PROXY TCP4 ::1 ::1 1 2\r\n"),
    ("v1-ipv4-under-tcp6", b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n"),
    ("v1-bad-ipv4", b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n"),
    ("v1-hostname", b"PROXY TCP4 localhost 5.6.7.8 1 2\r\n"),
    ("v1-port-past-65535", b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"),
    ("v1-port-leading-zero", b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n"),
    ("v1-port-sign", b"PROXY TCP4 1.2.3.4 5.6.7.8 +80 2\r\n"),
    ("v1-control-byte", b"PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n"),
    ("v1-nul-byte", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\x00\r\n"),
    ("v1-longer-than-107-bytes", b"PROXY UNKNOWN " + b"x" * 100 + b"\r\n"),
    ("v1-no-crlf-within-107-bytes", b"PROXY UNKNOWN " + b"x" * 200),
    ("v2-version-1", v2(1, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2), version=1)),
    ("v2-version-3", v2(1, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2), version=3)),
    ("v2-unknown-command", v2(2, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2))),
    ("v2-unknown-family", v2(1, 0x41, inet("1.2.3.4", "5.6.7.8", 1, 2))),
    ("v2-unknown-transport", v2(1, 0x13, inet("1.2.3.4", "5.6.7.8", 1, 2))),
    ("v2-unspec-family-with-stream", v2(1, 0x01, b"")),
    ("v2-inet-with-unspec-transport", v2(1, 0x10, inet("1.2.3.4", "5.6.7.8", 1, 2))),
    ("v2-too-short-for-ipv4", v2(1, 0x11, b"\x01\x02\x03\x04")),
    ("v2-too-short-for-ipv6", v2(1, 0x21, inet("1.2.3.4", "5.6.7.8", 1, 2))),
    ("v2-too-short-for-unix", v2(1, 0x31, b"/tmp/x\x00")),
    ("v2-bad-signature", b"\r\n\r\n\x00\r\nQUIT\r" + bytes([0x21, 0x11, 0, 12]) + bytes(12)),
]


def prefixes(data: bytes) -> list[bytes]:
    return [data[:i] for i in range(len(data))]


@pytest.mark.parametrize("data, version, peer",
                         [pytest.param(d, v, p, id=i) for i, d, v, p in VALID])
def test_valid_header_parses_whole_and_waits_on_every_prefix(data: bytes, version: int,
                                                             peer: Any) -> None:
    assert parse_proxy_header(data) == (len(data), version, peer)
    # The bytes after the header are the next protocol's: never consumed here.
    assert parse_proxy_header(data + b"GET / HTTP/1.1\r\n\r\n") == (len(data), version, peer)
    for prefix in prefixes(data):
        assert parse_proxy_header(prefix) is None, prefix


@pytest.mark.parametrize("data", [pytest.param(d, id=i) for i, d in INVALID])
def test_invalid_header_is_refused_and_no_prefix_is_taken_for_one(data: bytes) -> None:
    with pytest.raises(ValueError):
        parse_proxy_header(data)
    for prefix in prefixes(data):
        try:
            assert parse_proxy_header(prefix) is None, prefix
        except ValueError:
            pass     # refused as soon as the bytes so far cannot start a header: also right


def test_a_wrong_first_byte_is_refused_at_once() -> None:
    for first in (b"G", b"\x16", b"p", b"\n", b"\x00"):
        with pytest.raises(ValueError):
            parse_proxy_header(first)


def test_a_v2_header_longer_than_allowed_is_refused_before_it_arrives() -> None:
    header = v2(1, 0x11, inet("1.2.3.4", "5.6.7.8", 1, 2) + tlv(0xE0, b"z" * 1000))
    assert parse_proxy_header(header, max_bytes=len(header)) is not None
    with pytest.raises(ValueError, match="longer"):
        parse_proxy_header(header[:16], max_bytes=len(header) - 1)


def test_the_v1_line_is_bounded_at_107_bytes() -> None:
    line = b"PROXY UNKNOWN " + b"x" * (107 - 16) + b"\r\n"
    assert len(line) == 107 and parse_proxy_header(line) == (107, 1, None)
    with pytest.raises(ValueError):
        parse_proxy_header(b"PROXY UNKNOWN " + b"x" * (108 - 16) + b"\r\n")
