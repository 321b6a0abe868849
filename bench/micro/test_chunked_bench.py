"""Chunked codec micro benchmarks, each group with its baseline.

Decoding: cyserve's ChunkedDecoder against httptools (llhttp) collecting ``on_body`` pieces, over
two fixed bodies: 64 KiB in 16 chunks, and 1,000 tiny chunks.  Every round starts from a fresh
decoder (cyserve) or a fresh parser that already consumed the request head (httptools), so only
the body is measured.  Encoding: ``encode_chunk`` / ``chunk_header`` against the obvious Python
``%``-formatting.

Run: ``python -m pytest bench/micro/test_chunked_bench.py --benchmark-only``
"""
from __future__ import annotations

import httptools
import pytest

from cyserve._core.http.chunked import LAST_CHUNK, ChunkedDecoder, chunk_header, encode_chunk

HEAD = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
ROUNDS = 2000

_BIG_CHUNKS = [bytes([65 + i]) * 4096 for i in range(16)]
_TINY_CHUNKS = [b"%03d" % i for i in range(1000)]
BODIES = {
    "64k-in-16-chunks": b"".join(b"%x\r\n%b\r\n" % (len(c), c) for c in _BIG_CHUNKS) + LAST_CHUNK,
    "1000-tiny-chunks": b"".join(b"%x\r\n%b\r\n" % (len(c), c) for c in _TINY_CHUNKS) + LAST_CHUNK,
}
EXPECTED = {"64k-in-16-chunks": b"".join(_BIG_CHUNKS), "1000-tiny-chunks": b"".join(_TINY_CHUNKS)}


class _Body:
    __slots__ = ("pieces", "complete")

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.complete = False

    def on_body(self, body: bytes) -> None:
        self.pieces.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


def _cyserve_decode(decoder: ChunkedDecoder, body: bytes) -> list[bytes]:
    pieces, _ = decoder.decode(body)
    return pieces


def _httptools_decode(parser: httptools.HttpRequestParser, sink: _Body, body: bytes) -> list[bytes]:
    parser.feed_data(body)
    return sink.pieces


def _httptools_setup(body: bytes):
    sink = _Body()
    parser = httptools.HttpRequestParser(sink)
    parser.feed_data(HEAD)
    return (parser, sink, body), {}


@pytest.mark.parametrize("name", list(BODIES))
def test_decode_cyserve(benchmark, name: str):
    benchmark.group = f"chunked-decode-{name}"
    body = BODIES[name]
    pieces = benchmark.pedantic(_cyserve_decode, setup=lambda: ((ChunkedDecoder(), body), {}),
                                rounds=ROUNDS, warmup_rounds=50)
    assert b"".join(pieces) == EXPECTED[name]


@pytest.mark.parametrize("name", list(BODIES))
def test_decode_httptools(benchmark, name: str):
    benchmark.group = f"chunked-decode-{name}"
    pieces = benchmark.pedantic(_httptools_decode, setup=lambda: _httptools_setup(BODIES[name]),
                                rounds=ROUNDS, warmup_rounds=50)
    assert b"".join(pieces) == EXPECTED[name]


def _python_encode(chunks: list[bytes]) -> list[bytes]:
    return [b"%x\r\n%b\r\n" % (len(c), c) for c in chunks]


def _cyserve_encode(chunks: list[bytes]) -> list[bytes]:
    return [encode_chunk(c) for c in chunks]


@pytest.mark.parametrize("encode", [pytest.param(_cyserve_encode, id="cyserve"),
                                    pytest.param(_python_encode, id="python-format")])
@pytest.mark.parametrize("name", ["16x4k", "1000-tiny"])
def test_encode_chunks(benchmark, name: str, encode):
    benchmark.group = f"chunked-encode-{name}"
    chunks = _BIG_CHUNKS if name == "16x4k" else _TINY_CHUNKS
    assert benchmark(encode, chunks) == _python_encode(chunks)


_SIZES = list(range(1, 100_000, 97))


@pytest.mark.parametrize("header", [pytest.param(chunk_header, id="cyserve"),
                                    pytest.param(lambda n: b"%x\r\n" % n, id="python-format")])
def test_chunk_headers(benchmark, header):
    benchmark.group = "chunked-header-1031-sizes"
    result = benchmark(lambda: [header(n) for n in _SIZES])
    assert result[-1] == b"%x\r\n" % _SIZES[-1]
