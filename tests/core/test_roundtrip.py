"""One codec, two roles: what the writer serialises, the parser's response mode reads back;
what a client would send, the parser's request mode reads back; chunked encode/decode."""
from __future__ import annotations

import random

import pytest

from cyserve._core.http import parser, serialise as writer
from cyserve._core.http.chunked import ChunkedDecoder, LAST_CHUNK, encode_chunk
from cyserve._core.http.parser import HeadScanner, parse_request_head, parse_response_head
from cyserve._core.http.serialise import HeadWriter

CASES = [
    (200, [("X-Id", "1"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")], "text/plain", 5, False),
    (404, [], "application/json", 0, False),
    (201, [("Location", "/things/9")], None, -1, False),
    (200, [("Cache-Control", "no-store")], "text/html; charset=utf-8", -1, True),
    (204, [("X-Empty", "")], None, 0, False),
    (304, [("ETag", '"abc"')], None, -1, False),
    (299, [("X-Odd", "\tvalue with obs-text \xe9")], None, 3, False),
]


@pytest.mark.parametrize("status, fields, content_type, length, http10", CASES,
                         ids=[f"{c[0]}-{'len' if c[3] >= 0 else 'stream'}{'-http10' if c[4] else ''}" for c in CASES])
def test_serialised_response_head_parses_back_to_the_same_fields(status, fields, content_type, length, http10):
    conn = writer.PY_CONN_CLOSE if http10 else writer.PY_CONN_NONE
    raw = HeadWriter("cyserve").serialise(status, fields, content_type, length, http10=http10, conn=conn)
    head = parse_response_head(raw)
    assert head.status == status and head.version == 11
    items = head.header_items()
    for name, value in fields:
        assert (name.lower(), value.strip()) in items
    if content_type is not None:
        assert head.get("content-type") == content_type
    framing = writer.py_body_framing(status, length >= 0, http10)
    expected = {
        writer.PY_BODY_NONE: parser.FRAMING_NONE,
        writer.PY_BODY_LENGTH: parser.FRAMING_LENGTH,
        writer.PY_BODY_CHUNKED: parser.FRAMING_CHUNKED,
        writer.PY_BODY_CLOSE: parser.FRAMING_CLOSE,
    }[framing]
    if framing == writer.PY_BODY_LENGTH and length == 0:
        assert head.framing in (parser.FRAMING_LENGTH, parser.FRAMING_NONE)
    else:
        assert head.framing == expected
    assert head.keep_alive is (not http10)


def serialise_request(method: str, target: str, fields: list[tuple[str, str]], version: str = "1.1") -> bytes:
    return (f"{method} {target} HTTP/{version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields)
            + "\r\n").encode("latin-1")


@pytest.mark.parametrize("method, target, fields", [
    ("GET", "/", [("Host", "example.com")]),
    ("POST", "/upload?x=1&y=%20", [("Host", "a:8080"), ("Content-Length", "12"), ("X-A", "b")]),
    ("PUT", "/x", [("Host", "h"), ("Transfer-Encoding", "chunked"), ("Expect", "100-continue")]),
    ("OPTIONS", "*", [("Host", "h")]),
    ("CUSTOM", "/custom", [("Host", "h"), ("Connection", "close")]),
])
def test_request_head_parses_back_whole_and_split(method, target, fields):
    raw = serialise_request(method, target, fields)
    head = parse_request_head(raw)
    assert head.method == method and head.target == target
    assert head.path == target.split("?")[0]
    assert [(k.lower(), v) for k, v in fields] == head.header_items()
    rng = random.Random(7)
    for _ in range(20):
        scanner = HeadScanner()
        cut = sorted(rng.sample(range(1, len(raw)), 3))
        found = -1
        for end in cut + [len(raw)]:
            found = scanner.feed(raw[:end])
            if found >= 0:
                break
        assert found == len(raw)


def test_chunked_round_trip_with_random_splits():
    rng = random.Random(11)
    for _ in range(50):
        pieces = [rng.randbytes(rng.randint(1, 3000)) for _ in range(rng.randint(0, 8))]
        wire = b"".join(encode_chunk(p) for p in pieces) + LAST_CHUNK
        decoder = ChunkedDecoder()
        out: list[bytes] = []
        pos = 0
        while pos < len(wire):
            step = rng.randint(1, 700)
            data, used = decoder.decode(wire[pos:pos + step])
            out.extend(data)
            pos += used
            if decoder.done:
                break
        assert decoder.done and pos == len(wire) and b"".join(out) == b"".join(pieces)
