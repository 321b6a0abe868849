"""The client's pieces without sockets: request heads (one codec, two roles), SSE, cookies,
redirect policy, decompression bounds, multipart and URLs."""
from __future__ import annotations

import gzip
import zlib

import pytest

from cyserve.client.content import encode_request
from cyserve.client.cookies import CookieJar
from cyserve.client.decompress import STEP_BYTES, make_decoder
from cyserve.errors import DecodingError
from cyserve.client.redirects import Hop, next_hop
from cyserve.client.sse import SSEDecoder
from cyserve.client.urls import merge_url, split_url
from cyserve._core.http.chunked import ChunkedDecoder
from cyserve._core.http.serialise import serialise_request
from cyserve._core.http.parser import FRAMING_CHUNKED, FRAMING_LENGTH, parse_request_head

# ---------------------------------------------------------------------- request heads


@pytest.mark.parametrize("method, target, fields, length, chunked", [
    ("GET", "/", [("Host", "example.com")], -1, False),
    ("POST", "/upload?x=1&y=%20", [("Host", "a:8080"), ("X-A", "b"), ("X-A", "c")], 12, False),
    ("PUT", "/x", [("Host", "h"), ("Expect", "100-continue")], -1, True),
    ("OPTIONS", "*", [("Host", "h")], -1, False),
    ("GET", "http://origin:81/p?q", [("Host", "origin:81")], -1, False),
], ids=["get", "post-length-multi", "put-chunked", "options-asterisk", "absolute-form"])
def test_serialised_request_parses_back_to_the_same_head(method, target, fields, length, chunked):
    raw = serialise_request(method, target, fields, content_length=length, chunked=chunked)
    head = parse_request_head(raw)
    assert head.method == method and head.target == target and head.version == 11
    for name, value in fields:
        assert (name.lower(), value) in head.header_items()
    if chunked:
        assert head.framing == FRAMING_CHUNKED
    elif length > 0:
        assert head.framing == FRAMING_LENGTH and head.content_length == length


def test_caller_framing_fields_are_replaced_by_the_codecs_own():
    raw = serialise_request("POST", "/", [("Host", "h"), ("Content-Length", "999"),
                                           ("Transfer-Encoding", "gzip")], content_length=3)
    head = parse_request_head(raw)
    assert head.get_all("content-length") == ["3"] and head.get("transfer-encoding") is None


def test_connection_close_from_the_caller_is_kept():
    raw = serialise_request("GET", "/", [("Host", "h"), ("Connection", "close")])
    assert parse_request_head(raw).keep_alive is False


def test_an_upgrade_request_says_connection_upgrade():
    # RFC 9110 §7.8 / RFC 6455 §4.1: the caller's Connection field is the codec's to write; a
    # request that asks to switch protocols must list "upgrade" (a server answers 400 or 426
    # without it), and the upgrade wins over a caller's close.
    raw = serialise_request("GET", "/chat", [("Host", "h"), ("Upgrade", "websocket"),
                                             ("Connection", "close")], upgrade=True)
    head = parse_request_head(raw)
    assert head.get_all("connection") == ["Upgrade"] and head.upgrade
    assert b"close" not in raw


@pytest.mark.parametrize("method, target, fields", [
    ("GET", "/", [("Host", "h"), ("X-Evil", "a\r\nX-Injected: 1")]),
    ("GET", "/", [("Host", "h"), ("X-Evil", "a\nb")]),
    ("GET", "/", [("Host", "h"), ("X-Evil", "a\0b")]),
    ("GET", "/", [("Host", "h"), ("Bad Name", "v")]),
    ("GET", "/a b", [("Host", "h")]),
    ("GET", "/a\r\nX: y", [("Host", "h")]),
    ("GE T", "/", [("Host", "h")]),
    ("GET", "/caf\u00e9", [("Host", "h")]),
], ids=["crlf-in-value", "lf-in-value", "nul-in-value", "space-in-name", "space-in-target",
        "crlf-in-target", "space-in-method", "non-ascii-target"])
def test_request_head_refuses_injection(method, target, fields):
    with pytest.raises(ValueError):
        serialise_request(method, target, fields)


@pytest.mark.parametrize("method, target", [(None, "/"), ("GET", None)],
                         ids=["method-none", "target-none"])
def test_request_head_refuses_none_method_or_target(method, target):
    # A typed ``str`` argument admits None; the C checks must not read it as a str.
    with pytest.raises(TypeError):
        serialise_request(method, target, [("Host", "h")])


def test_chunked_request_body_round_trips_through_the_decoder():
    from cyserve._core.http.chunked import encode_chunk, LAST_CHUNK
    pieces = [b"a" * 10, b"b" * 70000, b"c"]
    wire = b"".join(encode_chunk(p) for p in pieces) + LAST_CHUNK
    out, used = ChunkedDecoder().decode(wire)
    assert b"".join(out) == b"".join(pieces) and used == len(wire)


# ---------------------------------------------------------------------- SSE

SSE_STREAM = (b": comment\r\nevent: greet\r\ndata: hello\r\ndata: world\r\nid: 7\r\n\r\n"
              b"data: {\"n\": 1}\n\nretry: 1500\rdata: caf\xc3\xa9\r\r"
              b"data\n\nevent: empty-is-not-dispatched\n\n")


@pytest.mark.parametrize("step", [len(SSE_STREAM), 1, 2, 7, 13], ids=lambda s: f"split-{s}")
def test_sse_decoder_gives_the_same_events_however_split(step):
    decoder = SSEDecoder()
    events = []
    for i in range(0, len(SSE_STREAM), step):
        events += decoder.feed(SSE_STREAM[i:i + step])
    assert [(e.event, e.data, e.id) for e in events] == [
        ("greet", "hello\nworld", "7"), ("message", '{"n": 1}', "7"),
        ("message", "caf\u00e9", "7"), ("message", "", "7"),
    ]
    assert events[1].json() == {"n": 1} and events[2].retry == 1500


# ---------------------------------------------------------------------- cookies


def test_cookie_jar_applies_domain_path_secure_and_expiry():
    jar = CookieJar()
    jar.extract("http://www.example.com/app/login", [
        "sid=1; Path=/app",
        "wide=2; Domain=example.com; Path=/",
        "host=3",
        "sec=4; Secure",                                # not stored: set over http
        "gone=5; Max-Age=0",
        "old=6; Expires=Wed, 21 Oct 2015 07:28:00 GMT",
        "evil=7; Domain=other.com",                     # not our domain
        "tld=8; Domain=com",                            # a bare top-level label
    ])
    # longer paths first, then older cookies; "host" got the default path /app
    assert jar.header_for("http://www.example.com/app/x") == "sid=1; host=3; wide=2"
    assert jar.header_for("http://api.example.com/") == "wide=2"   # domain cookie only
    assert jar.header_for("http://www.example.com/application") == "wide=2"
    jar.extract("https://www.example.com/", ["sec=4; Secure; Path=/"])
    assert "sec=4" in jar.header_for("https://www.example.com/")
    assert "sec=4" not in (jar.header_for("http://www.example.com/") or "")
    jar.extract("http://www.example.com/", ["host=3; Max-Age=-1"])
    assert "host=3" not in (jar.header_for("http://www.example.com/") or "")


def test_cookie_jar_default_path_is_the_request_directory():
    jar = CookieJar()
    jar.extract("http://h.test/a/b/c", ["x=1"])
    assert jar.header_for("http://h.test/a/b/d") == "x=1"
    assert jar.header_for("http://h.test/a/") is None


def test_ip_hosts_only_take_host_only_cookies():
    jar = CookieJar()
    jar.extract("http://127.0.0.1:8000/", ["a=1", "b=2; Domain=0.0.1"])
    assert jar.header_for("http://127.0.0.1:9000/") == "a=1"


# ---------------------------------------------------------------------- redirects


def _hop(method="POST", url="http://a.test/x", content=b"body"):
    body = encode_request(content=content) if content is not None else None
    return Hop(method, url, [("Authorization", "Basic x"), ("Cookie", "c=1"),
                             ("Content-Type", "text/plain"), ("X-Keep", "1")], body)


@pytest.mark.parametrize("status, method, expect_method, keeps_body", [
    (301, "POST", "GET", False), (302, "POST", "GET", False), (303, "POST", "GET", False),
    (303, "PUT", "GET", False), (303, "HEAD", "HEAD", True), (301, "PUT", "PUT", True),
    (307, "POST", "POST", True), (308, "PUT", "PUT", True),
], ids=lambda v: str(v))
def test_redirect_method_and_body_rules(status, method, expect_method, keeps_body):
    nxt = next_hop(_hop(method), status, "/y")
    assert nxt.method == expect_method and nxt.url == "http://a.test/y"
    assert (nxt.content is not None) is keeps_body
    names = [k for k, _ in nxt.headers]
    assert ("Content-Type" in names) is keeps_body
    assert "Authorization" in names and "Cookie" in names   # same origin: kept


def test_redirect_to_another_origin_drops_credentials():
    for location in ("http://b.test/y", "https://a.test/x", "http://a.test:81/x"):
        names = [k for k, _ in next_hop(_hop("GET", content=None), 302, location).headers]
        assert "Authorization" not in names and "Cookie" not in names and "X-Keep" in names


def test_307_with_a_one_shot_stream_is_not_followed():
    async def gen():
        yield b"x"
    assert next_hop(_hop("POST", content=gen()), 307, "/y") is None


def test_relative_locations_resolve_against_the_current_url():
    hop = _hop("GET", "http://a.test/dir/page?q=1", None)
    assert next_hop(hop, 302, "other").url == "http://a.test/dir/other"
    assert next_hop(hop, 302, "../up").url == "http://a.test/up"
    assert next_hop(hop, 302, "//c.test/p").url == "http://c.test/p"
    assert next_hop(hop, 302, "?page=2").url == "http://a.test/dir/page?page=2"


# ---------------------------------------------------------------------- decompression


def _decode_all(encoding, data, max_bytes=1 << 30, split=4096):
    decoder = make_decoder(encoding, max_bytes)
    out = []
    for i in range(0, len(data), split):
        for piece in decoder.decode(data[i:i + split]):
            # never one huge allocation (brotli's limit stops growth at the next buffer block)
            assert len(piece) <= 2 * STEP_BYTES
            out.append(piece)
    out.extend(decoder.flush())
    return b"".join(out)


def test_gzip_deflate_and_raw_deflate_decode():
    payload = b"hello world " * 50000
    assert _decode_all("gzip", gzip.compress(payload)) == payload
    assert _decode_all("deflate", zlib.compress(payload)) == payload
    raw = zlib.compressobj(wbits=-15)
    assert _decode_all("deflate", raw.compress(payload) + raw.flush()) == payload


def test_gzip_body_of_several_members_decodes_whole():
    # RFC 1952 §2.2: a gzip file is a series of members; every one is part of the body.
    payload = gzip.compress(b"first member " * 1000) + gzip.compress(b"second member")
    assert _decode_all("gzip", payload, split=7) == b"first member " * 1000 + b"second member"


def test_brotli_decodes_when_available():
    brotli = pytest.importorskip("brotli")
    payload = b"brotli " * 100000
    assert _decode_all("br", brotli.compress(payload)) == payload


def test_stacked_codings_are_undone_in_reverse_order():
    payload = b"layered " * 1000
    assert _decode_all("deflate, gzip", gzip.compress(zlib.compress(payload))) == payload


def test_decompression_bomb_is_stopped_at_max_decoded_bytes():
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))   # ~64 KB that decode to 64 MB
    with pytest.raises(DecodingError, match="max_decoded_bytes"):
        _decode_all("gzip", bomb, max_bytes=1024 * 1024)


def test_corrupt_and_truncated_bodies_raise_decoding_error():
    with pytest.raises(DecodingError):
        _decode_all("gzip", b"\x1f\x8b\x08\x00garbage-garbage-garbage")
    with pytest.raises(DecodingError, match="truncated"):
        _decode_all("gzip", gzip.compress(b"x" * 10000)[:-10])


def test_unknown_coding_leaves_the_body_alone():
    assert make_decoder("zstd-not-here", 100) is None and make_decoder("identity", 100) is None


# ---------------------------------------------------------------------- bodies and URLs


def test_multipart_body_lists_fields_then_files(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"file-bytes")
    content = encode_request(data={"f": "v"}, files={"up": path, "mem": ("m.bin", b"\x00\x01")})
    assert content.length is not None and content.replayable
    boundary = content.content_type.split("boundary=")[1]
    import asyncio

    async def collect():
        return b"".join([c async for c in content.stream()])
    body = asyncio.run(collect())
    assert len(body) == content.length
    assert body.startswith(f"--{boundary}\r\n".encode()) and body.endswith(f"--{boundary}--\r\n".encode())
    assert b'name="up"; filename="a.txt"\r\nContent-Type: text/plain\r\n\r\nfile-bytes\r\n' in body
    assert b'name="f"\r\n\r\nv\r\n' in body


def test_url_helpers():
    assert merge_url("http://h/api", "items", {"a": [1, 2], "b": True}) == "http://h/api/items?a=1&a=2&b=true"
    assert merge_url("http://h/api/", "/items?x=1", {"y": "z w"}) == "http://h/api/items?x=1&y=z+w"
    t = split_url("http://user:pw@h\u00e9.test:8080/caf\u00e9 x?q=\u00e9#frag")
    assert t.host_header == "xn--h-bga.test:8080" and t.target == "/caf%C3%A9%20x?q=%C3%A9"
    assert t.userinfo == ("user", "pw")
    assert split_url("https://[::1]/").host_header == "[::1]"
    with pytest.raises(ValueError):
        split_url("ftp://h/")
