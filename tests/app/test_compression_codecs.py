"""Compression without sockets: Accept-Encoding negotiation, codecs, bounded request decoding."""
from __future__ import annotations

import gzip
import os
import zlib

import brotli
import pytest

from cyserve.compression import (DEFAULT_TYPES, Compression, _DecodedBody, negotiate,
                                 parse_accept_encoding)
from cyserve.errors import HTTPError

SERVER = ("br", "gzip", "deflate")

NEGOTIATION_VECTORS = [
    ("no-header-is-identity", None, None),
    ("empty-is-identity", "", None),
    ("single", "gzip", "gzip"),
    ("tie-goes-to-server-preference", "gzip, deflate, br", "br"),
    ("highest-q-wins", "br;q=0.5, gzip;q=0.8", "gzip"),
    ("q-zero-forbids", "br;q=0, gzip", "gzip"),
    ("all-forbidden", "br;q=0, gzip;q=0, deflate;q=0", None),
    ("star", "*", "br"),
    ("star-with-exclusion", "*, br;q=0", "gzip"),
    ("star-forbids-rest", "deflate, *;q=0", "deflate"),
    ("star-zero-alone", "*;q=0", None),
    ("identity-only", "identity", None),
    ("identity-preferred-explicitly", "gzip;q=0.5, identity", None),
    ("coding-preferred-over-identity", "gzip, identity;q=0.5", "gzip"),
    ("unknown-codings-ignored", "zstd, compress", None),
    ("case-insensitive", "GZIP;Q=0.9, Deflate;q=1", "deflate"),
    ("x-gzip-alias", "x-gzip", "gzip"),
    ("spaces", " gzip ; q=0.7 ,  br ; q=0.6 ", "gzip"),
    ("invalid-q-member-dropped", "br;q=2, gzip;q=abc, deflate", "deflate"),
    ("three-decimals", "br;q=0.001, gzip;q=0.002", "gzip"),
    ("empty-members", ",,gzip,,", "gzip"),
    ("other-params-ignored", "gzip;level=9", "gzip"),
]


@pytest.mark.parametrize("value,expected", [v[1:] for v in NEGOTIATION_VECTORS],
                         ids=[v[0] for v in NEGOTIATION_VECTORS])
def test_negotiate(value, expected):
    assert negotiate(value, SERVER) == expected


def test_parse_accept_encoding_keeps_the_first_of_duplicates():
    assert parse_accept_encoding("gzip;q=0.2, gzip;q=0.9, br") == {"gzip": 0.2, "br": 1.0}


def test_server_order_decides_ties_and_only_available_codings_count():
    assert negotiate("gzip, br", ("gzip", "br")) == "gzip"
    assert negotiate("br", ("gzip",)) is None


DECODERS = {"gzip": gzip.decompress, "deflate": zlib.decompress, "br": brotli.decompress}


@pytest.mark.parametrize("name", SERVER)
def test_streaming_encoder_output_decodes_after_every_flush(name):
    codec = Compression().codecs[name]
    encoder = codec.encoder()
    decoder = codec.decoder()
    stream, pieces, got = b"", [], b""
    for i in range(5):
        piece = b"event %d: " % i + os.urandom(8).hex().encode() * 50
        pieces.append(piece)
        out = encoder.compress(piece) + encoder.flush()
        stream += out
        got += decoder.decompress(out, 1 << 20)
        assert got == b"".join(pieces), "a flushed chunk must decode on its own"
    tail = encoder.finish()
    stream += tail
    got += decoder.decompress(tail, 1 << 20)
    assert decoder.eof and got == b"".join(pieces)
    assert DECODERS[name](stream) == got  # the reference decoder agrees on the whole stream


def _reencode(codec, data):
    encoder = codec.encoder()
    return encoder.compress(data) + encoder.finish()


@pytest.mark.parametrize("name", SERVER)
def test_decoders_produce_bounded_output_from_a_bomb(name):
    codec = Compression().codecs[name]
    bomb = _reencode(codec, b"\0" * (32 * 1024 * 1024))
    assert len(bomb) < 200 * 1024
    decoder = codec.decoder()
    out = decoder.decompress(bomb, 64 * 1024)
    assert 0 < len(out) <= 2 * 64 * 1024
    assert not decoder.needs_input


def test_raw_deflate_is_accepted_as_well_as_zlib():
    data = b"hello " * 100
    raw = zlib.compressobj(6, zlib.DEFLATED, -15)
    raw_body = raw.compress(data) + raw.flush()
    decoder = Compression().codecs["deflate"].decoder()
    assert decoder.decompress(raw_body, 1 << 20) == data and decoder.eof


def test_eligibility_by_status_type_and_fields():
    c = Compression()
    assert c.eligible(200, [], "text/html; charset=utf-8")
    assert c.eligible(404, [], "application/json")
    assert c.eligible(200, [("Content-Type", "application/ld+json")], None)
    assert c.eligible(200, [], "image/svg+xml")
    assert c.eligible(200, [], "text/event-stream")
    assert not c.eligible(200, [], "image/png")
    assert not c.eligible(200, [], None)
    for status in (101, 204, 206, 304):
        assert not c.eligible(status, [], "text/plain")
    assert not c.eligible(200, [("Content-Encoding", "gzip")], "text/plain")
    assert c.eligible(200, [("content-encoding", "identity")], "text/plain")
    assert not c.eligible(200, [("Cache-Control", "private, no-transform")], "text/plain")
    assert not c.eligible(200, [("Content-Range", "bytes 0-1/2")], "text/plain")
    assert not Compression(allowed_types=("application/json",)).eligible(200, [], "text/plain")
    assert "text/" in DEFAULT_TYPES


def test_unknown_encoding_name_is_a_programmer_error():
    with pytest.raises(ValueError):
        Compression(encodings=("compress",))
    with pytest.raises(ValueError):
        Compression(encodings=())


class ChunkedSource:
    def __init__(self, data: bytes, size: int) -> None:
        self.chunks = [data[i:i + size] for i in range(0, len(data), size)]

    async def read(self) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""


async def read_all(body) -> bytes:
    out = bytearray()
    while True:
        chunk = await body.read()
        if not chunk:
            return bytes(out)
        out += chunk


@pytest.mark.parametrize("name", SERVER)
def test_decoded_body_from_bytes_and_from_a_stream(run, name):
    codec = Compression().codecs[name]
    data = os.urandom(100_000) + b"a" * 300_000
    encoded = _reencode(codec, data)

    async def main():
        assert await read_all(_DecodedBody(encoded, codec.decoder(), 1 << 20)) == data
        assert await read_all(_DecodedBody(ChunkedSource(encoded, 1000), codec.decoder(), 1 << 20)) == data
        assert await read_all(_DecodedBody(b"", codec.decoder(), 1 << 20)) == b""
    run(main)


@pytest.mark.parametrize("name", SERVER)
def test_decoded_body_limits_truncation_and_garbage(run, name):
    codec = Compression().codecs[name]
    bomb = _reencode(codec, b"\0" * (50 * 1024 * 1024))
    text = _reencode(codec, b"x" * 10_000)

    async def main():
        body = _DecodedBody(ChunkedSource(bomb, 4096), codec.decoder(), 1024 * 1024)
        with pytest.raises(HTTPError) as info:
            await read_all(body)
        assert info.value.status == 413
        with pytest.raises(HTTPError) as info:
            await read_all(_DecodedBody(text[:len(text) // 2], codec.decoder(), 1 << 20))
        assert info.value.status == 400
        with pytest.raises(HTTPError) as info:
            await read_all(_DecodedBody(b"this is not compressed at all" * 3, codec.decoder(), 1 << 20))
        assert info.value.status == 400
        if name != "gzip":  # gzip allows further members; anything else after the end is an error
            with pytest.raises(HTTPError) as info:
                await read_all(_DecodedBody(text + b"junk", codec.decoder(), 1 << 20))
            assert info.value.status == 400
    run(main)


def test_gzip_members_are_concatenated(run):
    codec = Compression().codecs["gzip"]

    async def main():
        body = gzip.compress(b"one ") + gzip.compress(b"two")
        assert await read_all(_DecodedBody(body, codec.decoder(), 1 << 20)) == b"one two"
    run(main)
