"""The cyserve-push/1 frame codec (``cyserve._core.push.frames``, docs/push-protocol.md §2-§4, §11,
§12): round trips of every kind in every framing, split invariance, framing detection, limits
(oversize refused before buffering, memory bounded by what arrived), malformed inputs of each
kind with their verdicts, JSON lines typed like ``nc``, WebSocket messages, the push fast path,
and the encoder's refusals.
"""
from __future__ import annotations

import random
import time
import tracemalloc
from dataclasses import dataclass

import orjson
import pytest

from cyserve._core.push.frames import (
    FLAG_ACK_REQUESTED, FRAMING_AUTO, FRAMING_BINARY, FRAMING_JSON_LINES, FRAMING_WS_BINARY,
    FRAMING_WS_TEXT, HEADER_BYTES, KIND_ACK, KIND_CALL, KIND_CLOSE, KIND_ERROR, KIND_GAP,
    KIND_HELLO, KIND_MAX, KIND_NAMES, KIND_PING, KIND_PONG, KIND_PUSH, KIND_REFUSE, KIND_REPLY,
    KIND_WELCOME, MAX_FRAME_LIMIT, MIN_FRAME_LIMIT, PUSH_HEAD_MAX, VERSION,
    VIOLATION_PROTOCOL_ERROR, VIOLATION_TOO_LARGE, Frame, FrameDecoder, PushTemplate, Violation,
    encode,
)

from tests.push.frames_support import (
    ALL_FRAMINGS, FROM_CLIENT, FROM_SERVER, JSON_FRAMINGS, MIB, TCP_FRAMINGS, U64_MAX,
    decode_split, encoded, random_frame, random_stream, splits,
)


def server(framing: int | None = None, max_frame: int = MIB) -> FrameDecoder:
    """A server's decoder (what a client sends)."""
    return FrameDecoder(max_frame, framing)


def client(framing: int, max_frame: int = MIB) -> FrameDecoder:
    """A client's decoder (what a server sends)."""
    return FrameDecoder(max_frame, framing, client=True)


def binary(kind: int, flags: int = 0, id: int = 0, name: bytes = b"", payload: bytes = b"",
           *, name_len: int | None = None, length: int | None = None) -> bytes:
    """A binary frame built by hand (docs §3.1), independently of the encoder, so broken ones can
    be written too: ``name_len`` and ``length`` override the real values."""
    body = (bytes([kind, flags]) + id.to_bytes(8, "big")
            + bytes([len(name) if name_len is None else name_len]) + name + payload)
    return (len(body) if length is None else length).to_bytes(4, "big") + body


def violation(got: list[Frame | Violation]) -> Violation:
    assert got and isinstance(got[-1], Violation), got
    return got[-1]


# --- round trips ---------------------------------------------------------------------------

@pytest.mark.parametrize("framing", ALL_FRAMINGS.values(), ids=ALL_FRAMINGS.keys())
@pytest.mark.parametrize("kind", range(1, KIND_MAX + 1), ids=KIND_NAMES[1:])
def test_every_kind_round_trips_in_every_framing(kind: int, framing: int) -> None:
    rng = random.Random(kind * 10 + framing)
    sides = ([server] if kind in FROM_CLIENT else []) + ([client] if kind in FROM_SERVER else [])
    assert sides
    for _ in range(40):
        frame = random_frame(rng, kind, framing)
        data = encoded(frame, framing)
        for side in sides:
            decoder = side(framing) if side is client else server(framing)
            assert decoder.feed(data) == [frame]
            if framing in TCP_FRAMINGS.values():
                assert decoder.feed(data + data) == [frame, frame]
        if framing in JSON_FRAMINGS:
            # The encoder's output is canonical (docs §3.2): compact, keys t, id, name, data, ack.
            text = data.decode()
            assert text.endswith("\n") == (framing == FRAMING_JSON_LINES)
            keys = list(orjson.loads(data))
            assert keys == sorted(keys, key=["t", "id", "name", "data", "ack"].index)
            assert data.rstrip(b"\n") == orjson.dumps(orjson.loads(data))


@pytest.mark.parametrize("framing", ALL_FRAMINGS.values(), ids=ALL_FRAMINGS.keys())
def test_decoded_frames_carry_the_documented_payload_types(framing: int) -> None:
    """docs §16: dict, str, int, None by kind; codec data as bytes or the JSON value."""
    json_data = framing in JSON_FRAMINGS
    data: object = {"a": [1, "x"]} if json_data else b"\x00\x01"
    cases = [
        (server, Frame(KIND_HELLO, 0, VERSION, {"codec": "json"}), dict),
        (client, Frame(KIND_WELCOME, 0, VERSION, {"client_id": "x"}), dict),
        (client, Frame(KIND_REFUSE, 0, "unauthorized", ""), str),
        (client, Frame(KIND_ERROR, 0, "too_large", "frame over the limit"), str),
        (server, Frame(KIND_CLOSE, 0, "normal", ""), str),
        (client, Frame(KIND_GAP, 3, "", 7), int),
        (server, Frame(KIND_ACK, 3), type(None)),
        (server, Frame(KIND_PING, 0), type(None)),
        (client, Frame(KIND_PONG, U64_MAX), type(None)),
        (server, Frame(KIND_CALL, 1, "c", data), type(data)),
        (client, Frame(KIND_REPLY, 1, "", data), type(data)),
        (client, Frame(KIND_PUSH, 1, "", data, FLAG_ACK_REQUESTED), type(data)),
    ]
    for side, frame, payload_type in cases:
        decoder = side(framing) if side is client else server(framing)
        [got] = decoder.feed(encoded(frame, framing))
        assert isinstance(got, Frame) and got == frame, (got, frame)
        assert type(got.payload) is payload_type, got


def test_binary_layout_is_the_documented_one() -> None:
    """docs §3.1, field by field, against frames built by hand."""
    assert encode(KIND_PUSH, 42, "room:a", b'{"x":1}', FLAG_ACK_REQUESTED) == binary(
        KIND_PUSH, FLAG_ACK_REQUESTED, 42, b"room:a", b'{"x":1}')
    assert encode(KIND_GAP, 5, "", 9) == binary(KIND_GAP, 0, 5, b"", (9).to_bytes(8, "big"))
    assert encode(KIND_PING, U64_MAX) == binary(KIND_PING, 0, U64_MAX)
    assert encode(KIND_CLOSE, 0, "normal", "bye é") == binary(KIND_CLOSE, 0, 0, b"normal",
                                                              "bye é".encode())
    assert encode(KIND_PUSH, 1, "", b"x", 0, FRAMING_WS_BINARY) == binary(KIND_PUSH, 0, 1,
                                                                         b"", b"x")[4:]
    assert len(encode(KIND_ACK, 1)) == 4 + HEADER_BYTES


def test_empty_codec_payloads_round_trip_in_binary() -> None:
    for kind, side in ((KIND_CALL, server), (KIND_REPLY, client), (KIND_PUSH, client)):
        frame = Frame(kind, 1, "c" if kind == KIND_CALL else "", b"")
        decoder = side(FRAMING_BINARY) if side is client else server(FRAMING_BINARY)
        assert decoder.feed(encoded(frame, FRAMING_BINARY)) == [frame]


# --- split invariance ------------------------------------------------------------------------

@pytest.mark.parametrize("framing", TCP_FRAMINGS.values(), ids=TCP_FRAMINGS.keys())
@pytest.mark.parametrize("client_side", [True, False], ids=["client-frames", "server-frames"])
def test_any_split_of_a_stream_gives_the_same_frames(framing: int, client_side: bool) -> None:
    """One stream of random frames fed whole, a byte at a time, cut at every byte boundary, and
    in random chunk sizes (merging many frames per chunk): the same frames every time."""
    rng = random.Random(7 + framing * 2 + client_side)
    frames, stream = random_stream(rng, 30, framing, client_side)
    for cuts in splits(len(stream), rng):
        decoder = server(framing) if client_side else client(framing)
        assert decode_split(decoder, stream, cuts) == frames, cuts[:10]


@pytest.mark.parametrize("framing", TCP_FRAMINGS.values(), ids=TCP_FRAMINGS.keys())
def test_detecting_decoder_gives_the_same_frames_however_split(framing: int) -> None:
    rng = random.Random(99 + framing)
    frames, stream = random_stream(rng, 12, framing, client_side=True)
    if framing == FRAMING_JSON_LINES:
        assert stream[:1] == b"{"
    for cuts in splits(len(stream), rng, every_limit=1500, random_count=10):
        decoder = server()
        assert decode_split(decoder, stream, cuts) == frames
        assert decoder.framing == framing


@pytest.mark.parametrize("framing", TCP_FRAMINGS.values(), ids=TCP_FRAMINGS.keys())
def test_random_streams_in_random_chunks(framing: int) -> None:
    """Many short streams, each in random chunks: the property over many random frames."""
    rng = random.Random(1234 + framing)
    for _ in range(150):
        client_side = rng.random() < 0.5
        frames, stream = random_stream(rng, rng.randrange(1, 8), framing, client_side)
        cuts = sorted(rng.sample(range(1, len(stream)), min(len(stream) - 1, rng.randrange(0, 12))))
        decoder = server(framing) if client_side else client(framing)
        assert decode_split(decoder, stream, cuts) == frames


# --- framing detection (docs §2) -----------------------------------------------------------------

def test_open_brace_first_selects_json_lines() -> None:
    decoder = server()
    assert decoder.framing == FRAMING_AUTO
    assert decoder.feed(b"{") == []
    assert decoder.framing == FRAMING_JSON_LINES
    assert decoder.feed(b'"t":"ping","id":3}\n') == [Frame(KIND_PING, 3)]


@pytest.mark.parametrize("first", [b"\x00", b" ", b"\n", b"\xef\xbb\xbf", b"[", b"\x40"],
                         ids=["nul", "space", "newline", "utf8-bom", "bracket", "0x40"])
def test_any_other_first_byte_selects_binary(first: bytes) -> None:
    decoder = server()
    decoder.feed(first)
    assert decoder.framing == FRAMING_BINARY


def test_binary_stream_is_never_taken_for_json() -> None:
    """The largest allowed length (1 GiB) starts with 0x40: never "{"."""
    assert MAX_FRAME_LIMIT.to_bytes(4, "big")[0] == 0x40 < ord("{")
    decoder = server(max_frame=MAX_FRAME_LIMIT)
    assert decoder.feed(encode(KIND_PING, 1)) == [Frame(KIND_PING, 1)]
    assert decoder.framing == FRAMING_BINARY


def test_detection_on_an_empty_feed_waits() -> None:
    decoder = server()
    assert decoder.feed(b"") == []
    assert decoder.framing == FRAMING_AUTO


def test_decoder_arguments_are_checked() -> None:
    with pytest.raises(ValueError):
        FrameDecoder(MIN_FRAME_LIMIT - 1)
    with pytest.raises(ValueError):
        FrameDecoder(MAX_FRAME_LIMIT + 1)
    with pytest.raises(ValueError):
        FrameDecoder(MIB, 9)
    with pytest.raises(ValueError):
        FrameDecoder(MIB, None, client=True)      # a client chose its framing
    assert FrameDecoder(MIN_FRAME_LIMIT).max_frame_bytes == MIN_FRAME_LIMIT


# --- limits (docs §11) ----------------------------------------------------------------------

def test_oversize_length_prefix_is_refused_before_buffering() -> None:
    """A 4 GiB - 1 length and a megabyte after it: refused on the 4 length bytes, at once, with
    nothing of the frame kept."""
    decoder = server(FRAMING_BINARY)
    data = b"\xff\xff\xff\xff" + b"\x07" * MIB
    tracemalloc.start()
    try:
        start = time.perf_counter()
        got = decoder.feed(data)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got == [Violation(VIOLATION_TOO_LARGE,
                             "frame of 4294967295 bytes is over max_frame_bytes (1048576)")]
    assert violation(got).code == "too_large"
    assert peak < 64 * 1024 and elapsed < 0.5
    assert "buffered=0" in repr(decoder)
    # Dead: the rest of the stream is never read.
    assert decoder.feed(encode(KIND_PING, 1)) == got


def test_oversize_is_found_on_the_fourth_length_byte() -> None:
    prefix = (MIB + 1).to_bytes(4, "big")
    decoder = server(FRAMING_BINARY)
    for i, byte in enumerate(prefix):
        got = decoder.feed(bytes([byte]))
        assert (got == []) == (i < 3), (i, got)
    assert violation(got).kind == VIOLATION_TOO_LARGE


def test_frame_at_the_limit_is_accepted_and_one_byte_more_refused() -> None:
    limit = 1000
    payload = b"p" * (limit - HEADER_BYTES - 1)
    at_limit = encode(KIND_CALL, 1, "c", payload)
    assert len(at_limit) == 4 + limit
    assert server(FRAMING_BINARY, limit).feed(at_limit) == [Frame(KIND_CALL, 1, "c", payload)]
    got = server(FRAMING_BINARY, limit).feed(encode(KIND_CALL, 1, "c", payload + b"p"))
    assert violation(got).code == "too_large"


def test_memory_of_a_partial_frame_grows_with_what_arrived() -> None:
    """Declaring a 1 GiB frame and sending 1 MiB of it costs about 1 MiB, not 1 GiB."""
    decoder = server(FRAMING_BINARY, MAX_FRAME_LIMIT)
    tracemalloc.start()
    try:
        assert decoder.feed(binary(KIND_CALL, 0, 1, b"c", length=MAX_FRAME_LIMIT)) == []
        chunk = b"x" * (64 * 1024)
        for _ in range(16):
            assert decoder.feed(chunk) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MIB, peak


def test_json_line_over_the_limit_without_newline_is_a_protocol_error() -> None:
    limit = MIN_FRAME_LIMIT
    line = b'{"t":"ping","id":1' + b" " * (limit - 19) + b"}"
    assert len(line) == limit
    assert server(FRAMING_JSON_LINES, limit).feed(line + b"\n") == [Frame(KIND_PING, 1)]
    # One byte more, fed a byte at a time: refused as the 65th byte arrives, no newline needed.
    decoder = server(FRAMING_JSON_LINES, limit)
    longer = line[:-1] + b" }"
    for i in range(len(longer)):
        got = decoder.feed(longer[i:i + 1])
        if got:
            break
    assert i == limit and violation(got).code == "protocol_error"
    assert "without a newline" in violation(got).reason
    # Whole, with its newline: the same verdict.
    assert violation(server(FRAMING_JSON_LINES, limit).feed(longer + b"\n")).code \
        == "protocol_error"


def test_ws_message_over_the_limit_is_too_large() -> None:
    limit = MIN_FRAME_LIMIT
    big_binary = encode(KIND_CALL, 1, "c", b"x" * limit, 0, FRAMING_WS_BINARY)
    assert violation(server(FRAMING_WS_BINARY, limit).feed(big_binary)).code == "too_large"
    big_text = '{"t":"call","id":1,"name":"c","data":"' + "é" * limit + '"}'
    assert violation(server(FRAMING_WS_TEXT, limit).feed(big_text)).code == "too_large"
    # Counted in UTF-8 bytes: 40 two-byte characters pass a 64-character count, not 64 bytes.
    text = '{"t":"ping","id":1,"name":"' + "é" * 20 + '"}'
    assert len(text) < limit < len(text.encode())
    assert violation(server(FRAMING_WS_TEXT, limit).feed(text)).code == "too_large"


# --- malformed input, with its verdict --------------------------------------------------------

@dataclass(frozen=True)
class Bad:
    id: str
    data: bytes
    framing: int
    reason: str                 # a substring of the violation's reason
    code: str = "protocol_error"
    client: bool = False        # decoded by a client (frames a server sent)


GOOD_HELLO = b'{"codec":"json"}'
BAD = [
    # binary (docs §3.1, §4)
    Bad("length-zero", b"\x00\x00\x00\x00", FRAMING_BINARY, "shorter than the 11-byte header"),
    Bad("length-ten", b"\x00\x00\x00\x0a" + b"\x0a" * 10, FRAMING_BINARY, "shorter than"),
    Bad("length-over-limit", (MIB + 1).to_bytes(4, "big"), FRAMING_BINARY, "over max_frame",
        "too_large"),
    Bad("kind-zero", binary(0), FRAMING_BINARY, "unknown frame kind 0"),
    Bad("kind-thirteen", binary(13), FRAMING_BINARY, "unknown frame kind 13"),
    Bad("kind-255", binary(255), FRAMING_BINARY, "unknown frame kind 255"),
    Bad("welcome-from-client", binary(KIND_WELCOME, 0, 0, b"v", GOOD_HELLO), FRAMING_BINARY,
        "cannot come from a client"),
    Bad("push-from-client", binary(KIND_PUSH, 0, 1), FRAMING_BINARY, "cannot come from a client"),
    Bad("hello-from-server", binary(KIND_HELLO, 0, 0, b"v", GOOD_HELLO), FRAMING_BINARY,
        "cannot come from a server", client=True),
    Bad("call-from-server", binary(KIND_CALL, 0, 1, b"c"), FRAMING_BINARY,
        "cannot come from a server", client=True),
    Bad("ack-flag-on-call", binary(KIND_CALL, 1, 1, b"c"), FRAMING_BINARY, "flags 0x01"),
    Bad("reserved-flag-on-push", binary(KIND_PUSH, 2, 1), FRAMING_BINARY, "flags 0x02",
        client=True),
    Bad("high-flag-on-ping", binary(KIND_PING, 0x80), FRAMING_BINARY, "flags 0x80"),
    Bad("call-id-zero", binary(KIND_CALL, 0, 0, b"c"), FRAMING_BINARY, "must be at least 1"),
    Bad("ack-id-zero", binary(KIND_ACK, 0, 0), FRAMING_BINARY, "must be at least 1"),
    Bad("push-id-zero", binary(KIND_PUSH, 0, 0), FRAMING_BINARY, "must be at least 1",
        client=True),
    Bad("hello-id-nonzero", binary(KIND_HELLO, 0, 5, b"v", GOOD_HELLO), FRAMING_BINARY,
        "must be 0"),
    Bad("close-id-nonzero", binary(KIND_CLOSE, 0, 1, b"normal"), FRAMING_BINARY, "must be 0"),
    Bad("name-past-end", binary(KIND_CALL, 0, 1, b"abc", name_len=4), FRAMING_BINARY,
        "runs past the end"),
    Bad("name-length-255-in-short-frame", binary(KIND_PUSH, 0, 1, name_len=255), FRAMING_BINARY,
        "runs past the end", client=True),
    Bad("call-without-command", binary(KIND_CALL, 0, 1), FRAMING_BINARY, "must not be empty"),
    Bad("close-without-code", binary(KIND_CLOSE), FRAMING_BINARY, "must not be empty"),
    Bad("hello-without-version", binary(KIND_HELLO, 0, 0, b"", GOOD_HELLO), FRAMING_BINARY,
        "must not be empty"),
    Bad("name-on-ack", binary(KIND_ACK, 0, 1, b"x"), FRAMING_BINARY, "must be empty"),
    Bad("name-on-reply", binary(KIND_REPLY, 0, 1, b"x"), FRAMING_BINARY, "must be empty",
        client=True),
    Bad("name-not-utf8", binary(KIND_CALL, 0, 1, b"\xff"), FRAMING_BINARY, "not UTF-8"),
    Bad("name-overlong-utf8", binary(KIND_CALL, 0, 1, b"\xc0\xaf"), FRAMING_BINARY, "not UTF-8"),
    Bad("name-surrogate-utf8", binary(KIND_CALL, 0, 1, b"\xed\xa0\x80"), FRAMING_BINARY,
        "not UTF-8"),
    Bad("name-truncated-utf8", binary(KIND_CALL, 0, 1, b"a\xe4\xb8"), FRAMING_BINARY, "not UTF-8"),
    Bad("name-newline", binary(KIND_CALL, 0, 1, b"a\nb"), FRAMING_BINARY, "control character"),
    Bad("name-nul", binary(KIND_PUSH, 0, 1, b"\x00"), FRAMING_BINARY, "control character",
        client=True),
    Bad("name-del", binary(KIND_CLOSE, 0, 0, b"x\x7f"), FRAMING_BINARY, "control character"),
    Bad("payload-on-ping", binary(KIND_PING, 0, 1, b"", b"x"), FRAMING_BINARY, "no payload"),
    Bad("payload-on-ack", binary(KIND_ACK, 0, 1, b"", b"\x00"), FRAMING_BINARY, "no payload"),
    Bad("hello-payload-not-json", binary(KIND_HELLO, 0, 0, b"v", b"{oops"), FRAMING_BINARY,
        "not a JSON object"),
    Bad("hello-payload-array", binary(KIND_HELLO, 0, 0, b"v", b"[1]"), FRAMING_BINARY,
        "not a JSON object"),
    Bad("hello-payload-empty", binary(KIND_HELLO, 0, 0, b"v"), FRAMING_BINARY,
        "not a JSON object"),
    Bad("welcome-payload-string", binary(KIND_WELCOME, 0, 0, b"v", b'"x"'), FRAMING_BINARY,
        "not a JSON object", client=True),
    Bad("gap-payload-seven-bytes", binary(KIND_GAP, 0, 1, b"", b"\x00" * 7), FRAMING_BINARY,
        "8-byte", client=True),
    Bad("gap-payload-nine-bytes", binary(KIND_GAP, 0, 1, b"", b"\x00" * 9), FRAMING_BINARY,
        "8-byte", client=True),
    Bad("gap-ends-before-start", binary(KIND_GAP, 0, 5, b"", (4).to_bytes(8, "big")),
        FRAMING_BINARY, "ends before it starts", client=True),
    Bad("error-text-not-utf8", binary(KIND_ERROR, 0, 0, b"e", b"\xfe"), FRAMING_BINARY,
        "not UTF-8", client=True),
    Bad("close-text-not-utf8", binary(KIND_CLOSE, 0, 0, b"normal", b"\x80"), FRAMING_BINARY,
        "not UTF-8"),
    # JSON lines (docs §3.2)
    Bad("json-invalid", b"{oops}\n", FRAMING_JSON_LINES, "not one JSON value"),
    Bad("json-two-values", b'{"t":"ping"} {"t":"ping"}\n', FRAMING_JSON_LINES,
        "not one JSON value"),
    Bad("json-truncated", b'{"t":"ping"\n', FRAMING_JSON_LINES, "not one JSON value"),
    Bad("json-invalid-utf8", b'{"t":"call","id":1,"name":"\xff"}\n', FRAMING_JSON_LINES,
        "not one JSON value"),
    Bad("json-lone-surrogate", b'{"t":"call","id":1,"name":"\\ud800"}\n', FRAMING_JSON_LINES,
        "not one JSON value"),
    Bad("json-nan", b'{"t":"ping","id":NaN}\n', FRAMING_JSON_LINES, "not one JSON value"),
    Bad("json-array", b'[{"t":"ping"}]\n', FRAMING_JSON_LINES,
        "is an object"),
    Bad("json-t-missing", b'{"id":1}\n', FRAMING_JSON_LINES, 'needs "t"'),
    Bad("json-t-number", b'{"t":10}\n', FRAMING_JSON_LINES, 'needs "t"'),
    Bad("json-t-unknown", b'{"t":"shout"}\n', FRAMING_JSON_LINES, "unknown frame kind"),
    Bad("json-t-uppercase", b'{"t":"PING"}\n', FRAMING_JSON_LINES, "unknown frame kind"),
    Bad("json-push-from-client", b'{"t":"push","id":1}\n', FRAMING_JSON_LINES,
        "cannot come from a client"),
    Bad("json-hello-from-server", b'{"t":"hello","name":"v","data":{}}\n', FRAMING_JSON_LINES,
        "cannot come from a server", client=True),
    Bad("json-id-float", b'{"t":"ping","id":1.0}\n', FRAMING_JSON_LINES, "not an integer"),
    Bad("json-id-exponent", b'{"t":"ping","id":1e3}\n', FRAMING_JSON_LINES, "not an integer"),
    Bad("json-id-bool", b'{"t":"ping","id":true}\n', FRAMING_JSON_LINES, "not an integer"),
    Bad("json-id-string", b'{"t":"ping","id":"1"}\n', FRAMING_JSON_LINES, "not an integer"),
    Bad("json-id-negative", b'{"t":"ping","id":-1}\n', FRAMING_JSON_LINES, "outside"),
    Bad("json-id-over-u64", b'{"t":"ping","id":18446744073709551616}\n', FRAMING_JSON_LINES,
        "not an integer"),
    Bad("json-call-id-zero", b'{"t":"call","id":0,"name":"c"}\n', FRAMING_JSON_LINES,
        "must be at least 1"),
    Bad("json-call-id-missing", b'{"t":"call","name":"c"}\n', FRAMING_JSON_LINES,
        "must be at least 1"),
    Bad("json-close-id", b'{"t":"close","id":2,"name":"normal"}\n', FRAMING_JSON_LINES,
        "must be 0"),
    Bad("json-name-number", b'{"t":"call","id":1,"name":5}\n', FRAMING_JSON_LINES,
        '"name" is not a string'),
    Bad("json-name-missing", b'{"t":"call","id":1}\n', FRAMING_JSON_LINES, "must not be empty"),
    Bad("json-name-on-ping", b'{"t":"ping","name":"x"}\n', FRAMING_JSON_LINES, "must be empty"),
    Bad("json-name-256-bytes", b'{"t":"call","id":1,"name":"' + b"n" * 256 + b'"}\n',
        FRAMING_JSON_LINES, "longer than 255 bytes"),
    Bad("json-name-128-two-byte-chars",
        ('{"t":"call","id":1,"name":"' + "é" * 128 + '"}\n').encode(), FRAMING_JSON_LINES,
        "longer than 255 bytes"),
    Bad("json-name-escaped-nul", b'{"t":"call","id":1,"name":"a\\u0000"}\n', FRAMING_JSON_LINES,
        "control character"),
    Bad("json-name-escaped-newline", b'{"t":"call","id":1,"name":"a\\nb"}\n', FRAMING_JSON_LINES,
        "control character"),
    Bad("json-name-escaped-del", b'{"t":"call","id":1,"name":"\\u007f"}\n', FRAMING_JSON_LINES,
        "control character"),
    Bad("json-data-on-ping", b'{"t":"ping","data":1}\n', FRAMING_JSON_LINES, "carries no data"),
    Bad("json-data-on-ack", b'{"t":"ack","id":1,"data":[]}\n', FRAMING_JSON_LINES,
        "carries no data"),
    Bad("json-ack-on-call", b'{"t":"call","id":1,"name":"c","ack":true}\n', FRAMING_JSON_LINES,
        '"ack" not allowed'),
    Bad("json-ack-false-on-ping", b'{"t":"ping","ack":false}\n', FRAMING_JSON_LINES,
        '"ack" not allowed'),
    Bad("json-ack-number", b'{"t":"push","id":1,"ack":1}\n', FRAMING_JSON_LINES,
        '"ack" is not a boolean', client=True),
    Bad("json-unknown-key", b'{"t":"ping","id":1,"extra":0}\n', FRAMING_JSON_LINES,
        "unknown key"),
    Bad("json-flags-key", b'{"t":"push","id":1,"flags":1}\n', FRAMING_JSON_LINES, "unknown key",
        client=True),
    Bad("json-hello-data-missing", b'{"t":"hello","name":"cyserve-push/1"}\n', FRAMING_JSON_LINES,
        "not a JSON object"),
    Bad("json-hello-data-list", b'{"t":"hello","name":"v","data":[]}\n', FRAMING_JSON_LINES,
        "not a JSON object"),
    Bad("json-close-data-number", b'{"t":"close","name":"normal","data":1}\n',
        FRAMING_JSON_LINES, "not a string"),
    Bad("json-error-data-null", b'{"t":"error","name":"e","data":null}\n', FRAMING_JSON_LINES,
        "not a string", client=True),
    Bad("json-gap-data-missing", b'{"t":"gap","id":1}\n', FRAMING_JSON_LINES,
        "last sequence number", client=True),
    Bad("json-gap-data-bool", b'{"t":"gap","id":1,"data":true}\n', FRAMING_JSON_LINES,
        "last sequence number", client=True),
    Bad("json-gap-data-negative", b'{"t":"gap","id":1,"data":-1}\n', FRAMING_JSON_LINES,
        "outside", client=True),
    Bad("json-gap-ends-before-start", b'{"t":"gap","id":5,"data":4}\n', FRAMING_JSON_LINES,
        "ends before it starts", client=True),
]


@pytest.mark.parametrize("bad", BAD, ids=[b.id for b in BAD])
def test_malformed_input_gets_its_verdict_however_split(bad: Bad) -> None:
    rng = random.Random(bad.id)
    for cuts in splits(len(bad.data), rng, random_count=5):
        decoder = client(bad.framing) if bad.client else server(bad.framing)
        got = decode_split(decoder, bad.data, cuts)
        v = violation(got)
        assert got == [v], (cuts, got)
        assert v.code == bad.code and bad.reason in v.reason, (cuts, v)
        assert len(v.reason.encode()) <= 123
        # Dead for ever, whatever comes next.
        assert decoder.feed(b'{"t":"ping"}\n' + encode(KIND_PING, 1)) == [v]
        assert decoder.violation == v and decoder.frame is None


@pytest.mark.parametrize("bad", [b for b in BAD if b.framing == FRAMING_BINARY
                                 and b.code == "protocol_error"],
                         ids=[b.id for b in BAD if b.framing == FRAMING_BINARY
                              and b.code == "protocol_error"])
def test_malformed_frame_after_good_ones_keeps_the_good_ones(bad: Bad) -> None:
    """Frames before the bad one are delivered, in order, then the violation."""
    good = encode(KIND_PONG, 5) + encode(KIND_PING, 6)
    decoder = client(FRAMING_BINARY) if bad.client else server(FRAMING_BINARY)
    got = decoder.feed(good + bad.data + good)
    assert got[:2] == [Frame(KIND_PONG, 5), Frame(KIND_PING, 6)]
    assert len(got) == 3 and isinstance(got[2], Violation)


def test_reasons_never_echo_the_peers_bytes() -> None:
    """docs §11: the CLOSE text names the rule, not the peer's data."""
    decoder = server(FRAMING_JSON_LINES)
    v = violation(decoder.feed(b'{"t":"<script>evil</script>"}\n'))
    assert "evil" not in v.reason and "script" not in v.reason


# --- JSON lines as a person types them (docs §3.2, §14) ------------------------------------------

def test_crlf_blank_lines_and_whitespace_are_tolerated() -> None:
    decoder = server()
    got = decoder.feed(b'{"t":"hello","name":"cyserve-push/1","data":{}}\r\n'
                       b"\r\n\n   \n\t\r\n"
                       b'   {"t":"ping", "id": 4}   \r\n'
                       b'{ "name" : "chat.send", "data": {"text": "a\\nb"}, "id": 2, '
                       b'"t": "call" }\n')
    assert got == [Frame(KIND_HELLO, 0, VERSION, {}), Frame(KIND_PING, 4),
                   Frame(KIND_CALL, 2, "chat.send", {"text": "a\nb"})]


def test_optional_keys_take_their_defaults() -> None:
    decoder = server(FRAMING_JSON_LINES)
    assert decoder.feed(b'{"t":"ping"}\n{"t":"close","name":"normal"}\n'
                        b'{"t":"call","id":1,"name":"c"}\n{"t":"ack","id":1,"data":null}\n'
                        b'{"t":"pong","id":0,"name":""}\n') == [
        Frame(KIND_PING), Frame(KIND_CLOSE, 0, "normal", ""), Frame(KIND_CALL, 1, "c", None),
        Frame(KIND_ACK, 1), Frame(KIND_PONG)]
    decoder = client(FRAMING_JSON_LINES)
    assert decoder.feed(b'{"t":"push","id":3}\n{"t":"push","id":4,"ack":false}\n'
                        b'{"t":"push","id":5,"ack":true,"name":"g","data":[1]}\n'
                        b'{"t":"refuse","name":"unauthorized"}\n') == [
        Frame(KIND_PUSH, 3), Frame(KIND_PUSH, 4), Frame(KIND_PUSH, 5, "g", [1], FLAG_ACK_REQUESTED),
        Frame(KIND_REFUSE, 0, "unauthorized", "")]


def test_json_ids_cover_the_whole_u64_range() -> None:
    decoder = server(FRAMING_JSON_LINES)
    assert decoder.feed(b'{"t":"ping","id":18446744073709551615}\n') == [Frame(KIND_PING, U64_MAX)]
    assert encode(KIND_PING, U64_MAX, framing=FRAMING_JSON_LINES) == \
        b'{"t":"ping","id":18446744073709551615}\n'


def test_a_line_may_arrive_in_many_reads_and_lines_may_share_one() -> None:
    decoder = server(FRAMING_JSON_LINES)
    assert decoder.feed(b'{"t":"pi') == []
    assert decoder.feed(b'ng","id"') == []
    assert decoder.feed(b':1}\n{"t":"ping","id":2}\n{"t":') == [Frame(KIND_PING, 1),
                                                               Frame(KIND_PING, 2)]
    assert decoder.feed(b'"ping","id":3}') == []
    assert decoder.feed(b"\n") == [Frame(KIND_PING, 3)]


def test_server_output_is_one_line_per_frame_with_escaped_newlines() -> None:
    out = encode(KIND_REPLY, 1, "", {"text": "line1\nline2\r\u2028"}, 0, FRAMING_JSON_LINES)
    assert out.count(b"\n") == 1 and out.endswith(b"\n") and b"\r" not in out
    assert client(FRAMING_JSON_LINES).feed(out) == [
        Frame(KIND_REPLY, 1, "", {"text": "line1\nline2\r\u2028"})]


# --- WebSocket messages (docs §13) ---------------------------------------------------------------

def test_ws_binary_message_is_a_frame_without_prefix() -> None:
    decoder = server(FRAMING_WS_BINARY)
    frame = Frame(KIND_CALL, 9, "chat.send", b"\x00hello")
    assert decoder.feed(encoded(frame, FRAMING_WS_BINARY)) == [frame]
    # Each message is one frame: two frames in one message are one malformed frame.
    two = encoded(Frame(KIND_PING, 1), FRAMING_WS_BINARY) * 2
    assert violation(server(FRAMING_WS_BINARY).feed(two)).reason == \
        "a ping frame carries no payload"


@pytest.mark.parametrize("message", [b"", b"\x0a" * 10], ids=["empty", "ten-bytes"])
def test_ws_binary_message_shorter_than_a_header_is_refused(message: bytes) -> None:
    assert "shorter than" in violation(server(FRAMING_WS_BINARY).feed(message)).reason


def test_ws_text_message_is_a_json_object_as_str_or_bytes() -> None:
    decoder = server(FRAMING_WS_TEXT)
    assert decoder.feed('{"t":"call","id":1,"name":"ч","data":"é"}') == [
        Frame(KIND_CALL, 1, "ч", "é")]
    assert decoder.feed(b'{"t":"ping","id":2}\n') == [Frame(KIND_PING, 2)]
    assert violation(decoder.feed("")).code == "protocol_error"
    assert decoder.feed('{"t":"ping"}') == [decoder.violation]


def test_ws_text_with_a_lone_surrogate_is_refused() -> None:
    assert violation(server(FRAMING_WS_TEXT).feed('{"t":"call","id":1,"name":"\ud800"}')).code \
        == "protocol_error"


# --- the push fast path (docs §12) -------------------------------------------------------------

@pytest.mark.parametrize("framing", ALL_FRAMINGS.values(), ids=ALL_FRAMINGS.keys())
def test_push_template_bytes_equal_the_general_encoder(framing: int) -> None:
    rng = random.Random(framing)
    seqs = [1, 9, 10, 99, 100, 12345, 1 << 32, U64_MAX]
    for _ in range(60):
        proto = random_frame(rng, KIND_PUSH, framing)
        template = PushTemplate(proto.name, proto.payload, proto.flags, framing)
        for seq in seqs + [rng.randrange(1, U64_MAX)]:
            expected = encode(KIND_PUSH, seq, proto.name, proto.payload, proto.flags, framing)
            head = template.head(seq)
            assert template.frame(seq) == expected
            assert head + template.body == expected
            assert len(head) <= PUSH_HEAD_MAX
        if framing in (FRAMING_BINARY, FRAMING_WS_BINARY):
            assert len(template.head(1)) == (14 if framing == FRAMING_BINARY else 10)
        else:
            assert template.head(77) == b'{"t":"push","id":77'


def test_push_template_is_decoded_like_any_push() -> None:
    template = PushTemplate("room:a", {"x": 1}, FLAG_ACK_REQUESTED, FRAMING_JSON_LINES)
    assert template.body == b',"name":"room:a","data":{"x":1},"ack":true}\n'
    decoder = client(FRAMING_JSON_LINES)
    assert decoder.feed(template.frame(1) + template.frame(2)) == [
        Frame(KIND_PUSH, 1, "room:a", {"x": 1}, FLAG_ACK_REQUESTED),
        Frame(KIND_PUSH, 2, "room:a", {"x": 1}, FLAG_ACK_REQUESTED)]


def test_push_template_refusals() -> None:
    template = PushTemplate("g", b"x")
    with pytest.raises(ValueError):
        template.frame(0)
    with pytest.raises(ValueError):
        template.head(0)
    with pytest.raises(TypeError):
        PushTemplate("g", "text, not bytes", 0, FRAMING_BINARY)
    with pytest.raises(ValueError):
        PushTemplate("g\n", b"x")
    with pytest.raises(ValueError):
        PushTemplate("g", b"x", 2)
    with pytest.raises(ValueError):
        PushTemplate("g", b"x", 0, FRAMING_AUTO)
    assert template.name == "g" and template.flags == 0 and template.framing == FRAMING_BINARY


# --- the encoder's refusals (a programmer's mistakes) -------------------------------------------

@pytest.mark.parametrize("framing", ALL_FRAMINGS.values(), ids=ALL_FRAMINGS.keys())
@pytest.mark.parametrize("args, error", [
    ((0,), ValueError),                                        # unknown kind
    ((13,), ValueError),
    ((KIND_CALL, 0, "c", b""), ValueError),                    # request id 0
    ((KIND_HELLO, 1, VERSION, {}), ValueError),                # id on a hello
    ((KIND_CALL, 1, "", b""), ValueError),                     # command missing
    ((KIND_ACK, 1, "x"), ValueError),                          # name on an ack
    ((KIND_CALL, 1, "n" * 256, b""), ValueError),              # name over 255 bytes
    ((KIND_CALL, 1, "é" * 128, b""), ValueError),              # 256 UTF-8 bytes
    ((KIND_CALL, 1, "a\nb", b""), ValueError),                 # control character
    ((KIND_PING, 1, "", None, FLAG_ACK_REQUESTED), ValueError),  # ack flag off a push
    ((KIND_PUSH, 1, "", b"", 4), ValueError),                  # reserved flag
    ((KIND_GAP, 5, "", 4), ValueError),                        # gap ends before it starts
    ((KIND_GAP, 5, "", True), TypeError),
    ((KIND_GAP, 5, "", "9"), TypeError),
    ((KIND_HELLO, 0, VERSION, [1]), TypeError),                # not a dict
    ((KIND_CLOSE, 0, "normal", b"bytes"), TypeError),          # not a str
    ((KIND_PING, 1, "", 0), TypeError),                        # payload where none goes
    ((KIND_CALL, 2 ** 64, "c", b""), OverflowError),
    ((KIND_CALL, -1, "c", b""), OverflowError),
], ids=["kind-0", "kind-13", "call-id-0", "hello-id", "call-no-name", "ack-name", "name-256",
        "name-256-utf8", "name-newline", "ack-flag-on-ping", "reserved-flag", "gap-backwards",
        "gap-bool", "gap-str", "hello-list", "close-bytes", "ping-payload", "id-2-64",
        "id-negative"])
def test_encoder_refuses_what_the_decoder_would(args: tuple[object, ...], error: type,
                                                framing: int) -> None:
    with pytest.raises(error):
        encode(*args, framing=framing)  # type: ignore[arg-type, misc]


def test_binary_codec_data_must_be_bytes() -> None:
    for payload in ("text", None, {"a": 1}):
        with pytest.raises(TypeError):
            encode(KIND_CALL, 1, "c", payload, 0, FRAMING_BINARY)
    assert encode(KIND_CALL, 1, "c", bytearray(b"ab")) == encode(KIND_CALL, 1, "c", b"ab")
    assert encode(KIND_CALL, 1, "c", memoryview(b"ab")) == encode(KIND_CALL, 1, "c", b"ab")


def test_encoder_refuses_auto_framing() -> None:
    with pytest.raises(ValueError):
        encode(KIND_PING, 1, framing=FRAMING_AUTO)


def test_frame_and_violation_values() -> None:
    assert Frame(KIND_PUSH, 1, "g", b"x", 1) == Frame(KIND_PUSH, 1, "g", b"x", 1)
    assert Frame(KIND_PUSH, 1, "g", b"x") != Frame(KIND_PUSH, 1, "g", bytearray(b"x"))
    assert Frame(KIND_PUSH, 1, "g", 1) != Frame(KIND_PUSH, 1, "g", True)
    assert Frame(KIND_GAP, 1, "", 2) != Frame(KIND_GAP, 1, "", 3)
    assert "push" in repr(Frame(KIND_PUSH, 1))
    with pytest.raises(TypeError):
        hash(Frame(KIND_PING))
    v = Violation(VIOLATION_PROTOCOL_ERROR, "x")
    assert (v.code, v.kind, v.reason) == ("protocol_error", VIOLATION_PROTOCOL_ERROR, "x")
    assert Violation(VIOLATION_TOO_LARGE, "y").code == "too_large"
    with pytest.raises(ValueError):
        Violation(3, "z")
