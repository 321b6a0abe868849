"""The zstd content coding without sockets: the codec Compression builds (streaming, bounded,
multi-frame, the RFC 9659 window), negotiation next to br/gzip/deflate, request bodies decoded
within their limit, and what happens without the binding (the ``zstd`` extra)."""
from __future__ import annotations

import os

import pytest

import cyserve.client.decompress as decompress_module
import cyserve.codecs as codecs_module
from cyserve.client.decompress import accept_encoding, make_decoder
from cyserve.compression import Compression, _DecodedBody, negotiate
from cyserve.errors import HTTPError

zstd = codecs_module.zstd_module()
if zstd is None:
    pytest.skip("the zstd extra is not installed", allow_module_level=True)

SERVER = ("br", "zstd", "gzip", "deflate")
SKIPPABLE = (0x184D2A50).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"abc"  # RFC 8878 §3.1.2


def codec(**kw):
    return Compression(encodings=SERVER, **kw).codecs["zstd"]


def encode(data: bytes, **kw) -> bytes:
    encoder = codec(**kw).encoder()
    return encoder.compress(data) + encoder.finish()


def decode(data: bytes, piece: int = 1 << 20, step: int = 64 * 1024) -> tuple[bytes, bool]:
    """Feed ``data`` in pieces as the client and server do: more only once needs_input."""
    decoder = codec().decoder()
    out = bytearray()
    for i in range(0, len(data), piece):
        chunk = decoder.decompress(data[i:i + piece], step)
        while True:
            assert len(chunk) <= step
            out += chunk
            if decoder.needs_input:
                break
            chunk = decoder.decompress(b"", step)
            assert chunk or decoder.needs_input, "the decoder stalled"
    return bytes(out), decoder.eof


NEGOTIATION_VECTORS = [
    ("server-order-breaks-ties", "gzip, deflate, br, zstd", "br"),
    ("zstd-alone", "zstd", "zstd"),
    ("zstd-before-gzip-in-server-order", "gzip, zstd", "zstd"),
    ("higher-q-wins", "br;q=0.5, zstd;q=0.9, gzip;q=0.1", "zstd"),
    ("lower-q-loses", "zstd;q=0.2, gzip", "gzip"),
    ("q-zero-forbids", "zstd;q=0, gzip;q=0.1", "gzip"),
    ("star-picks-the-server-first", "*;q=0.5, br;q=0", "zstd"),
    ("case-insensitive", "ZSTD", "zstd"),
]


@pytest.mark.parametrize("value,expected", [v[1:] for v in NEGOTIATION_VECTORS],
                         ids=[v[0] for v in NEGOTIATION_VECTORS])
def test_negotiate_with_zstd(value, expected):
    assert negotiate(value, SERVER) == expected


def test_zstd_is_opt_in_on_the_server_and_offered_by_the_client():
    assert "zstd" not in Compression().codecs
    assert list(Compression(encodings=SERVER).codecs) == list(SERVER)
    assert accept_encoding() == "gzip, deflate, br, zstd"


@pytest.mark.parametrize("size", [0, 1, 1000, 3_000_000])
def test_round_trip_through_the_reference_decoder_and_ours(size):
    data = (os.urandom(size // 4) + b"a" * size)[:size]
    encoded = encode(data)
    assert zstd.decompress(encoded) == data
    for piece in (1, 7, 4096, 1 << 20):
        if size > 100_000 and piece < 4096:
            continue  # byte by byte over megabytes proves nothing more, slowly
        assert decode(encoded, piece) == (data, True)


def test_streaming_encoder_output_decodes_after_every_flush():
    encoder = codec().encoder()
    decoder = codec().decoder()
    pieces, got = [], b""
    for i in range(5):
        piece = b"event %d: " % i + os.urandom(8).hex().encode() * 50
        pieces.append(piece)
        got += decoder.decompress(encoder.compress(piece) + encoder.flush(), 1 << 20)
        assert got == b"".join(pieces), "a flushed chunk must decode on its own"
    got += decoder.decompress(encoder.finish(), 1 << 20)
    assert decoder.eof and got == b"".join(pieces)


def test_several_frames_and_skippable_frames_make_one_body():
    data = SKIPPABLE + encode(b"one ") + SKIPPABLE + encode(b"two " * 50_000) + encode(b"three")
    for piece in (1, 5, 4096, 1 << 20):
        assert decode(data, piece) == (b"one " + b"two " * 50_000 + b"three", True)


def test_truncated_and_trailing_garbage():
    text = encode(b"x" * 10_000)
    assert decode(text[:-3])[1] is False   # not at the end of a frame: the caller says truncated
    with pytest.raises(ValueError, match="corrupt"):
        decode(text + b"junk-junk")
    with pytest.raises(ValueError, match="corrupt"):
        decode(b"this is not zstd at all")


def test_each_step_is_bounded_however_large_the_expansion():
    bomb = encode(b"\0" * (64 * 1024 * 1024))
    assert len(bomb) < 10 * 1024
    decoder = codec().decoder()
    out = decoder.decompress(bomb, 64 * 1024)
    assert 0 < len(out) <= 64 * 1024 and not decoder.needs_input


def _frame_with_window_log(window_log: int, data: bytes) -> bytes:
    params = zstd.CompressionParameter
    compressor = zstd.ZstdCompressor(options={params.window_log: window_log})
    # compress() then flush(): the size is not known when the frame starts, so its header
    # declares the whole window (a one-shot frame would shrink it to the content).
    return compressor.compress(data) + compressor.flush()


def test_a_window_past_8_mib_is_refused():
    data = b"window " * 1000
    assert decode(_frame_with_window_log(23, data)) == (data, True)
    big_window = _frame_with_window_log(24, data)
    assert zstd.decompress(big_window) == data   # valid zstd, just not for HTTP (RFC 9659)
    with pytest.raises(ValueError, match="corrupt"):
        decode(big_window)


def test_ultra_levels_stay_within_the_http_window():
    data = os.urandom(1000) * 50
    ultra = zstd.ZstdCompressor(level=20)
    unclamped = ultra.compress(data) + ultra.flush()
    with pytest.raises(ValueError):
        decode(unclamped)   # level 20 asks for a 32 MiB window
    assert decode(encode(data, zstd_level=20)) == (data, True)


def test_a_body_of_tiny_frames_is_refused_quickly():
    import time
    tiny = encode(b"")
    start = time.perf_counter()
    with pytest.raises(ValueError, match="frames"):
        decode(tiny * 100_000)
    assert time.perf_counter() - start < 0.5
    # a few frames, or many frames holding real data, are fine
    assert decode(tiny * 60) == (b"", True)
    chunk = os.urandom(20_000)
    assert decode(encode(chunk) * 200) == (chunk * 200, True)


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


def test_request_bodies_decode_within_their_limit(run):
    data = os.urandom(100_000) + b"a" * 300_000
    encoded = encode(data)
    bomb = encode(b"\0" * (50 * 1024 * 1024))

    async def main():
        assert await read_all(_DecodedBody(encoded, codec().decoder(), 1 << 20)) == data
        chunked = ChunkedSource(encoded, 1000)
        assert await read_all(_DecodedBody(chunked, codec().decoder(), 1 << 20)) == data
        with pytest.raises(HTTPError) as info:
            await read_all(_DecodedBody(ChunkedSource(bomb, 4096), codec().decoder(), 1 << 20))
        assert info.value.status == 413
        with pytest.raises(HTTPError) as info:
            await read_all(_DecodedBody(encoded[:5000], codec().decoder(), 1 << 20))
        assert info.value.status == 400 and "truncated" in info.value.detail
        with pytest.raises(HTTPError) as info:
            await read_all(_DecodedBody(b"not zstd" * 10, codec().decoder(), 1 << 20))
        assert info.value.status == 400
    run(main)


def test_without_the_binding(monkeypatch):
    monkeypatch.setattr(codecs_module, "zstd_module", lambda: None)
    monkeypatch.setattr(decompress_module, "zstd_module", lambda: None)
    with pytest.raises(ImportError, match=r"cyserve\[zstd\]"):
        Compression(encodings=("zstd", "gzip"))
    assert list(Compression().codecs) == ["br", "gzip", "deflate"]
    assert accept_encoding() == "gzip, deflate, br"
    assert make_decoder("zstd", 1 << 20) is None   # left as received, like any unknown coding
    assert make_decoder("gzip", 1 << 20) is not None
