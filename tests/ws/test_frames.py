"""The RFC 6455 frame codec (``cyserve._core.ws.frames``): vectors fed whole, a byte at a time and
split at every point, fail-fast positions, limits, permessage-deflate through a real ``Inflater``,
masking, the encoder's shapes, close encoding, and a never-raises fuzz.

The helpers here (``frame``, ``decode_split``, ``splits``, ``xor``) are shared with the
differential test.  ``frame`` builds frames by hand, independently of the encoder under test, so
invalid ones (reserved bits, non-minimal lengths, wrong masking) can be written too.
"""
from __future__ import annotations

import functools
import os
import random
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from cyserve._core.ws.deflate import Inflater
from cyserve._core.ws.frames import FrameDecoder, encode, encode_close_frame

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
RSV1, RSV2, RSV3 = 4, 2, 1
KEY = bytes.fromhex("37fa213d")  # RFC 6455 §5.7's example masking key
BIG = 1 << 24

Event = tuple


# --- helpers ---------------------------------------------------------------------------------

def xor(data: bytes, key: bytes, offset: int = 0) -> bytes:
    """Reference masking (§5.3): data[i] ^ key[(offset + i) % 4], via one big integer."""
    n = len(data)
    if not n:
        return b""
    rotated = key[offset % 4:] + key[:offset % 4]
    stream = (rotated * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def frame(opcode: int, payload: bytes | str = b"", *, fin: bool = True, rsv: int = 0,
          mask: bytes | None = KEY, form: int | None = None, length: int | None = None) -> bytes:
    """One frame built by hand.  ``mask`` None sends it unmasked (a server's frame); ``form``
    (7, 16, 64) forces a length form; ``length`` declares a length other than the payload's."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    if form is None:
        form = 7 if n < 126 else 16 if n < 65536 else 64
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if mask is not None else 0
    if form == 7:
        head = bytes([b0, mbit | n])
    elif form == 16:
        head = bytes([b0, mbit | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, mbit | 127]) + n.to_bytes(8, "big")
    if mask is not None:
        return head + mask + xor(payload, mask)
    return head + payload


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


def decoder(*, server: bool = True, max_frame: int = BIG, max_message: int = BIG,
            inflater: Inflater | None = None) -> FrameDecoder:
    return FrameDecoder(expect_masked=server, max_frame_bytes=max_frame,
                        max_message_bytes=max_message, inflater=inflater)


def decode_split(stream: bytes, cuts: list[int], **kwargs: object) -> list[Event]:
    """Feed ``stream`` in the pieces ``cuts`` (sorted inner indices) delimit; stop at an error.
    Error events are shortened to ``("error", code)`` (the message is checked separately)."""
    dec = decoder(**kwargs)
    events: list[Event] = []
    bounds = [0, *cuts, len(stream)]
    for start, end in zip(bounds, bounds[1:]):
        for ev in dec.feed(stream[start:end]):
            if ev[0] == "error":
                assert isinstance(ev[2], str) and len(ev[2].encode()) <= 123, ev
                events.append(ev[:2])
                return events
            events.append(ev)
    return events


def splits(n: int, seed: int = 0, every_limit: int = 700) -> Iterator[list[int]]:
    """Whole, a byte at a time, every single cut (or 200 sampled ones past ``every_limit``), and
    a few random multi-cuts."""
    rng = random.Random(seed)
    yield []
    if n < 2:
        return
    yield list(range(1, n))
    singles = range(1, n) if n <= every_limit else sorted(rng.sample(range(1, n), 200))
    for k in singles:
        yield [k]
    for _ in range(5):
        yield sorted(rng.sample(range(1, n), min(n - 1, rng.randint(2, 12))))


def error_at(stream: bytes, **kwargs: object) -> tuple[int, int] | None:
    """Fed a byte at a time: (index of the byte whose arrival produced the error, code)."""
    dec = decoder(**kwargs)
    for i in range(len(stream)):
        for ev in dec.feed(stream[i:i + 1]):
            if ev[0] == "error":
                return i, ev[1]
    return None


# --- vectors: fed whole, a byte at a time, and split at every point ----------------------------

@dataclass(frozen=True)
class Vector:
    id: str
    stream: bytes
    events: list[Event]
    server: bool = True  # expect_masked


def E(code: int) -> Event:
    return ("error", code)


def _vectors() -> list[Vector]:
    v = Vector
    text = "κόσμε ✓ 😀"
    out = [
        # valid
        v("text-one-frame", frame(TEXT, "Hello"), [("message", TEXT, "Hello")]),
        v("text-utf8-one-frame", frame(TEXT, text), [("message", TEXT, text)]),
        v("binary-one-frame", frame(BINARY, b"\x00\xff\x80"), [("message", BINARY, b"\x00\xff\x80")]),
        v("empty-text", frame(TEXT), [("message", TEXT, "")]),
        v("empty-binary", frame(BINARY), [("message", BINARY, b"")]),
        v("text-16-bit-length", frame(TEXT, "é" * 300), [("message", TEXT, "é" * 300)]),
        v("text-over-stack-buffer", frame(TEXT, "x" * 513 + "ü"), [("message", TEXT, "x" * 513 + "ü")]),
        v("binary-125", frame(BINARY, b"b" * 125), [("message", BINARY, b"b" * 125)]),
        v("binary-126", frame(BINARY, b"b" * 126), [("message", BINARY, b"b" * 126)]),
        v("fragmented-text-control-interleaved",
          frame(TEXT, "Hel", fin=False) + frame(PING, b"1") + frame(CONT, "lo ", fin=False)
          + frame(PONG) + frame(CONT, "wörld"),
          [("ping", b"1"), ("pong", b""), ("message", TEXT, "Hello wörld")]),
        v("fragmented-binary",
          frame(BINARY, b"ab", fin=False) + frame(CONT, b"cd", fin=False) + frame(CONT, b"e"),
          [("message", BINARY, b"abcde")]),
        v("utf8-character-across-three-fragments",
          frame(TEXT, b"\xe2", fin=False) + frame(CONT, b"\x82", fin=False) + frame(CONT, b"\xac"),
          [("message", TEXT, "€")]),
        v("empty-fragments",
          frame(TEXT, fin=False) + frame(CONT, fin=False) + frame(CONT, "x") + frame(BINARY, fin=False)
          + frame(CONT),
          [("message", TEXT, "x"), ("message", BINARY, b"")]),
        v("ping-125", frame(PING, b"p" * 125), [("ping", b"p" * 125)]),
        v("close-empty", frame(CLOSE), [("close", 1005, "")]),
        v("close-code-only", frame(CLOSE, close_payload(1000)), [("close", 1000, "")]),
        v("close-code-reason", frame(CLOSE, close_payload(1001, "bye ✓".encode())),
          [("close", 1001, "bye ✓")]),
        v("close-inside-fragmented-message",
          frame(TEXT, "a", fin=False) + frame(CLOSE, close_payload(1000)), [("close", 1000, "")]),
        v("decoding-goes-on-after-close",
          frame(CLOSE) + frame(TEXT, "late"), [("close", 1005, ""), ("message", TEXT, "late")]),
        v("server-frames-to-client", frame(TEXT, "hi", mask=None) + frame(PING, b"x", mask=None),
          [("message", TEXT, "hi"), ("ping", b"x")], server=False),
        # invalid (§5.2 header)
        v("rsv2", frame(TEXT, "a", rsv=RSV2), [E(1002)]),
        v("rsv3", frame(TEXT, "a", rsv=RSV3), [E(1002)]),
        v("rsv1-without-inflater", frame(TEXT, "a", rsv=RSV1), [E(1002)]),
        v("rsv1-on-ping", frame(PING, rsv=RSV1), [E(1002)]),
        v("unmasked-frame-from-client", frame(TEXT, "a", mask=None), [E(1002)]),
        v("masked-frame-from-server", frame(TEXT, "a"), [E(1002)], server=False),
        v("fragmented-ping", frame(PING, b"a", fin=False), [E(1002)]),
        v("ping-126-bytes", frame(PING, b"p" * 126), [E(1002)]),
        v("close-126-bytes", frame(CLOSE, close_payload(1000, b"r" * 124)), [E(1002)]),
        v("continuation-without-message", frame(CONT, "a"), [E(1002)]),
        v("continuation-after-finished-message", frame(TEXT, "a") + frame(CONT, "b"),
          [("message", TEXT, "a"), E(1002)]),
        v("text-inside-message", frame(TEXT, "a", fin=False) + frame(TEXT, "b"), [E(1002)]),
        v("binary-inside-message", frame(BINARY, b"a", fin=False) + frame(BINARY, b"b"), [E(1002)]),
        v("16-bit-length-under-126", frame(BINARY, b"x" * 125, form=16), [E(1002)]),
        v("16-bit-length-zero", frame(BINARY, form=16), [E(1002)]),
        v("64-bit-length-under-65536", frame(BINARY, b"x" * 200, form=64), [E(1002)]),
        v("64-bit-length-top-bit", frame(BINARY, form=64, length=1 << 63), [E(1002)]),
        v("64-bit-length-all-ones", frame(BINARY, form=64, length=(1 << 64) - 1), [E(1002)]),
        v("events-before-an-error-are-kept", frame(PING, b"1") + frame(0x3), [("ping", b"1"), E(1002)]),
        # close payloads (§5.5.1, §7.4)
        v("close-one-byte", frame(CLOSE, b"\x03"), [E(1002)]),
        v("close-reason-invalid-utf8", frame(CLOSE, close_payload(1000, b"ok\xff")), [E(1007)]),
        v("close-reason-surrogate", frame(CLOSE, close_payload(1000, b"\xed\xa0\x80")), [E(1007)]),
        v("close-bad-code-checked-before-reason", frame(CLOSE, close_payload(1004, b"\xff")), [E(1002)]),
        # UTF-8 (§8.1)
        v("text-invalid-utf8", frame(TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"),
          [E(1007)]),
        v("text-truncated-at-message-end", frame(TEXT, b"ok\xe2\x82"), [E(1007)]),
        v("text-truncated-at-last-fragment",
          frame(TEXT, b"ok", fin=False) + frame(CONT, b"\xf0\x9f\x98"), [E(1007)]),
        v("text-invalid-in-second-fragment",
          frame(TEXT, "ok", fin=False) + frame(CONT, b"\xc0\xaf", fin=False) + frame(CONT, "x"), [E(1007)]),
        v("binary-is-not-validated", frame(BINARY, b"\xff\xc0"), [("message", BINARY, b"\xff\xc0")]),
    ]
    for op in (0x3, 0x4, 0x5, 0x6, 0x7):
        out.append(v(f"reserved-data-opcode-{op:x}", frame(op, b"a"), [E(1002)]))
    for op in (0xB, 0xC, 0xD, 0xE, 0xF):
        out.append(v(f"reserved-control-opcode-{op:x}", frame(op), [E(1002)]))
    for code in (*range(1000, 1004), *range(1007, 1015), 3000, 3999, 4000, 4999):
        out.append(v(f"close-code-{code}-allowed", frame(CLOSE, close_payload(code)), [("close", code, "")]))
    for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535):
        out.append(v(f"close-code-{code}-refused", frame(CLOSE, close_payload(code)), [E(1002)]))
    return out


VECTORS = _vectors()


@pytest.mark.parametrize("vec", VECTORS, ids=[v.id for v in VECTORS])
def test_vector_under_every_split(vec: Vector) -> None:
    for cuts in splits(len(vec.stream)):
        assert decode_split(vec.stream, cuts, server=vec.server) == vec.events, cuts


def test_large_frames_under_sampled_splits() -> None:
    for size in (65535, 65536, 70001):
        payload = random.Random(size).randbytes(size)
        stream = frame(BINARY, payload) + frame(PING, b"after")
        expected = [("message", BINARY, payload), ("ping", b"after")]
        for cuts in splits(len(stream), seed=size, every_limit=0):
            assert decode_split(stream, cuts) == expected


def test_payload_types_are_str_for_text_and_bytes_for_the_rest() -> None:
    events = decoder().feed(frame(TEXT, "t") + frame(BINARY, b"b") + frame(PING, b"p") + frame(PONG, b"q"))
    assert [type(ev[-1]) for ev in events] == [str, bytes, bytes, bytes]
    dec = decoder()
    dec.feed(frame(CLOSE, close_payload(1000, b"why")))
    assert (dec.opcode, dec.close_code, dec.close_reason, dec.payload) == (CLOSE, 1000, "why", b"\x03\xe8why")


def test_feed_takes_any_bytes_like_object() -> None:
    stream = frame(TEXT, "abc")
    for data in (stream, bytearray(stream), memoryview(stream)):
        assert decoder().feed(data) == [("message", TEXT, "abc")]


# --- fail-fast: which byte's arrival produces the error ----------------------------------------

@pytest.mark.parametrize(("stream", "index", "code"), [
    pytest.param(frame(TEXT, rsv=RSV2) + b"\x00" * 10, 0, 1002, id="rsv-on-first-byte"),
    pytest.param(bytes([0x83]) + b"\x80" * 10, 0, 1002, id="opcode-on-first-byte"),
    pytest.param(frame(TEXT, mask=None) + b"\x00" * 10, 1, 1002, id="mask-bit-on-second-byte"),
    pytest.param(frame(PING, fin=False) + b"\x00" * 10, 0, 1002, id="fragmented-control-on-first-byte"),
    pytest.param(frame(CONT, b"x") + b"\x00" * 10, 0, 1002, id="continuation-on-first-byte"),
    pytest.param(frame(PING, form=16, length=200) + b"\x00" * 10, 1, 1002, id="long-control-on-second-byte"),
    pytest.param(frame(BINARY, form=64, length=1 << 40)[:14] + b"\x00" * 10, 13, 1009,
                 id="too-big-on-last-header-byte"),
    pytest.param(frame(BINARY, form=16, length=100)[:8] + b"\x00" * 10, 7, 1002,
                 id="non-minimal-on-last-header-byte"),
    pytest.param(frame(TEXT, b"ab\xc3\x28" + b"z" * 50), 6 + 3, 1007, id="utf8-on-the-bad-byte"),
    pytest.param(frame(TEXT, b"abc\xed\xa0\x80" + b"z" * 50), 6 + 4, 1007, id="surrogate-on-second-byte"),
    pytest.param(frame(TEXT, b"\xf4\x90\x80\x80" + b"z" * 50), 6 + 1, 1007, id="above-10ffff-on-second-byte"),
    pytest.param(frame(TEXT, "ok", fin=False) + frame(CONT, b"\xe0\x80" + b"z" * 50, fin=False), 8 + 6 + 1,
                 1007, id="utf8-in-a-continuation-before-it-ends"),
    pytest.param(frame(TEXT, b"\xe2\x82"), 7, 1007, id="truncated-utf8-at-the-last-byte"),
    pytest.param(frame(CLOSE, b"\x03"), 6, 1002, id="one-byte-close-on-its-payload"),
])
def test_error_is_reported_on_the_byte_that_proves_it(stream: bytes, index: int, code: int) -> None:
    assert error_at(stream) == (index, code)


# --- UTF-8: the validator against the Unicode definition ---------------------------------------

@functools.cache
def _char_prefixes() -> frozenset[bytes]:
    """Every proper prefix of every scalar value's UTF-8 form (surrogates excluded)."""
    out = set()
    for cp in (*range(0x80, 0xD800), *range(0xE000, 0x110000)):
        raw = chr(cp).encode()
        for k in range(1, len(raw)):
            out.add(raw[:k])
    return frozenset(out)


def _viable(data: bytes) -> bool:
    """``data`` is a prefix of some valid UTF-8 text."""
    for tail in range(0, min(3, len(data)) + 1):
        head, rest = data[:len(data) - tail], data[len(data) - tail:]
        if (not rest or rest in _char_prefixes()):
            try:
                head.decode()
            except UnicodeDecodeError:
                continue
            return True
    return False


def _reference_text_outcome(data: bytes) -> tuple[str, int | None]:
    """("ok", None), or ("error", index of the first byte that makes the text invalid; len(data)
    when it is only cut short)."""
    for i in range(len(data)):
        if not _viable(data[:i + 1]):
            return "error", i
    try:
        data.decode()
    except UnicodeDecodeError:
        return "error", len(data)
    return "ok", None


_INTERESTING = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0,
                0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFE, 0xFF]


def _random_text_bytes(rng: random.Random) -> bytes:
    parts = []
    for _ in range(rng.randint(1, 12)):
        r = rng.random()
        if r < 0.5:
            parts.append(chr(rng.choice([rng.randint(0x20, 0x7E), rng.randint(0x80, 0x7FF),
                                         rng.randint(0x800, 0xD7FF), rng.randint(0xE000, 0xFFFF),
                                         rng.randint(0x10000, 0x10FFFF)])).encode())
        elif r < 0.6:
            parts.append(b"a" * rng.randint(1, 20))  # ASCII runs (the 8-byte fast path)
        else:
            parts.append(bytes([rng.choice(_INTERESTING)]))
    return b"".join(parts)


def test_utf8_validator_fails_on_the_same_byte_as_the_unicode_definition() -> None:
    rng = random.Random(6455)
    for _ in range(1500):
        data = _random_text_bytes(rng)
        verdict, index = _reference_text_outcome(data)
        stream = frame(TEXT, data, fin=False) + frame(CONT)
        head = len(stream) - len(data) - 6
        got = error_at(stream)
        if verdict == "ok":
            assert got is None, data
            assert decoder().feed(stream) == [("message", TEXT, data.decode())]
        else:
            assert index is not None
            # a cut-short text fails when its FIN frame ends (the last byte of the stream)
            expected = head + index if index < len(data) else len(stream) - 1
            assert got == (expected, 1007), (data, index)


def _text_verdicts(data: bytes) -> tuple[bool, bool, bool]:
    """Whether ``data`` is accepted as a text message: whole in one frame (checked by CPython's
    decoder as it makes the str), split over two frames (our incremental automaton), and by the
    Unicode definition."""
    whole = decoder(server=False).feed(frame(TEXT, data, mask=None))
    split = decoder(server=False).feed(frame(TEXT, data[:1], fin=False, mask=None)
                                       + frame(CONT, data[1:], mask=None))
    for events in (whole, split):
        assert events in ([("message", TEXT, events[0][2])], [("error", 1007, events[0][2])])
    return whole[0][0] == "message", split[0][0] == "message", _reference_text_outcome(data)[0] == "ok"


@pytest.mark.parametrize("lead", [0xE0, 0xED, 0xEF, 0xF0, 0xF4])
def test_utf8_verdicts_on_every_sequence_after_a_restricted_lead(lead: int) -> None:
    accepted = 0
    for b2 in range(0x80, 0xC0):
        for b3 in range(256):
            data = bytes([lead, b2, b3]) + (b"\x80" if lead >= 0xF0 else b"")
            whole, split, reference = _text_verdicts(data)
            assert whole == split == reference, data
            accepted += reference
    assert accepted


def test_utf8_verdicts_on_every_one_and_two_byte_text() -> None:
    for b1 in range(256):
        for b2 in [None, *range(256)]:
            data = bytes([b1]) if b2 is None else bytes([b1, b2])
            whole, split, _ = _text_verdicts(data)
            try:
                data.decode()
                expected = True
            except UnicodeDecodeError:
                expected = False
            assert whole == split == expected, data


# --- limits (§10.4) --------------------------------------------------------------------------

def test_frame_over_max_frame_bytes_fails_on_its_header() -> None:
    header = frame(BINARY, b"x" * 101)[:8]  # 2 + 2 (16-bit length) + 4 (key)
    assert decoder(max_frame=100).feed(header) == [("error", 1009, "frame larger than max_frame_bytes")]
    assert decoder(max_frame=101).feed(frame(BINARY, b"x" * 101)) == [("message", BINARY, b"x" * 101)]


def test_control_frames_are_bound_by_max_frame_bytes_too() -> None:
    assert decoder(max_frame=10).feed(frame(PING, b"p" * 11)) == [("error", 1009, "frame larger than max_frame_bytes")]


def test_message_over_max_message_bytes_fails_on_the_header_that_passes_it() -> None:
    stream = frame(TEXT, "a" * 40, fin=False) + frame(CONT, "b" * 40, fin=False) + frame(CONT, "c" * 21)
    assert decoder(max_message=101).feed(stream) == [("message", TEXT, "a" * 40 + "b" * 40 + "c" * 21)]
    third = len(frame(TEXT, "a" * 40, fin=False)) * 2
    assert error_at(stream, max_message=100) == (third + 5, 1009)


def test_limits_apply_per_message() -> None:
    stream = b"".join(frame(BINARY, b"x" * 60) for _ in range(5))
    assert decoder(max_message=60).feed(stream) == [("message", BINARY, b"x" * 60)] * 5


def _fragmented(size: int, fragment: int) -> tuple[bytes, bytes]:
    payload = random.Random(size).randbytes(size)
    pieces = [payload[i:i + fragment] for i in range(0, size, fragment)]
    frames = [encode(BINARY if i == 0 else CONT, piece, fin=i == len(pieces) - 1, mask=True)
              for i, piece in enumerate(pieces)]
    return payload, b"".join(frames)


def test_four_mib_in_64_byte_fragments_is_linear() -> None:
    # Autobahn 9.3.x / 9.4.x: the fragment count is bound by the message size alone.
    payload, stream = _fragmented(4 << 20, 64)
    dec = decoder(max_frame=1 << 20, max_message=4 << 20)
    started = time.perf_counter()
    events = []
    for at in range(0, len(stream), 65536):
        events += dec.feed(stream[at:at + 65536])
    elapsed = time.perf_counter() - started
    assert events == [("message", BINARY, payload)]
    assert elapsed < 2.0, f"{elapsed:.2f}s for 65536 fragments"
    tight = decoder(max_frame=1 << 20, max_message=(4 << 20) - 1).feed(stream)
    assert tight == [("error", 1009, "message larger than max_message_bytes")]


def test_constructor_rejects_non_positive_limits_and_other_inflaters() -> None:
    with pytest.raises(ValueError):
        FrameDecoder(expect_masked=True, max_frame_bytes=0, max_message_bytes=1)
    with pytest.raises(ValueError):
        FrameDecoder(expect_masked=True, max_frame_bytes=1, max_message_bytes=-1)
    with pytest.raises(TypeError):
        FrameDecoder(expect_masked=True, max_frame_bytes=1, max_message_bytes=1,
                     inflater=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        FrameDecoder(True, 1, 1)  # type: ignore[misc]


def test_the_decoder_is_dead_after_an_error() -> None:
    dec = decoder()
    first = dec.feed(frame(TEXT, b"\xff") + frame(TEXT, "never"))
    assert first == [("error", 1007, "invalid UTF-8 in a text message")]
    assert dec.feed(frame(TEXT, "again")) == first
    assert dec.feed(b"") == first
    assert (dec.close_code, dec.payload, dec.error) == (1007, None, first[0][2])


def test_empty_input_is_nothing() -> None:
    assert decoder().feed(b"") == []


# --- permessage-deflate (RFC 7692) through a real Inflater ------------------------------------

def deflate_messages(*messages: bytes, wbits: int = 15) -> list[bytes]:
    """Compressed payloads with context takeover (one compressor for all): RFC 7692 §7.2.1."""
    z = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = []
    for m in messages:
        data = z.compress(m) + z.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(b"\x00\x00\xff\xff")
        out.append(data[:-4])
    return out


def inflating(**kwargs: object) -> dict[str, object]:
    return {"inflater": Inflater(15, False), **kwargs}


def test_compressed_messages_with_context_takeover_under_every_split() -> None:
    first, second = "Hello wörld " * 20, "Hello wörld " * 21
    c1, c2 = deflate_messages(first.encode(), second.encode())
    half = len(c2) // 2
    stream = (frame(TEXT, c1, rsv=RSV1) + frame(BINARY, b"plain")
              + frame(TEXT, c2[:half], rsv=RSV1, fin=False) + frame(PING, b"!")
              + frame(CONT, c2[half:]))
    expected = [("message", TEXT, first), ("message", BINARY, b"plain"), ("ping", b"!"),
                ("message", TEXT, second)]
    for cuts in splits(len(stream), every_limit=400):
        assert decode_split(stream, cuts, **inflating()) == expected, cuts


def test_compressed_empty_message() -> None:
    (c,) = deflate_messages(b"")
    assert decoder(inflater=Inflater(15, False)).feed(frame(BINARY, c, rsv=RSV1)) == [("message", BINARY, b"")]
    assert decoder(inflater=Inflater(15, False)).feed(frame(BINARY, b"\x00", rsv=RSV1)) == [("message", BINARY, b"")]


def test_rsv1_on_a_continuation_or_control_frame_is_1002_even_with_an_inflater() -> None:
    (c,) = deflate_messages(b"abcdef")
    cont = frame(BINARY, c[:2], rsv=RSV1, fin=False) + frame(CONT, c[2:], rsv=RSV1)
    assert decoder(inflater=Inflater(15, False)).feed(cont)[0][:2] == E(1002)
    assert decoder(inflater=Inflater(15, False)).feed(frame(PING, rsv=RSV1))[0][:2] == E(1002)
    assert decoder(inflater=Inflater(15, False)).feed(frame(TEXT, c, rsv=RSV1 | RSV2))[0][:2] == E(1002)


def test_corrupt_compressed_data_is_1007() -> None:
    events = decoder(inflater=Inflater(15, False)).feed(frame(BINARY, b"\xff\xff\xff\xff", rsv=RSV1))
    assert events == [("error", 1007, "corrupt compressed data (RFC 7692 §7.2.2)")]


def test_deflate_bomb_is_1009_within_the_limit() -> None:
    (c,) = deflate_messages(b"\x00" * (4 << 20))
    assert len(c) < 8192
    events = decoder(max_message=65536, inflater=Inflater(15, False)).feed(frame(BINARY, c, rsv=RSV1))
    assert events == [("error", 1009, "message larger than max_message_bytes")]
    ok = decoder(max_message=4 << 20, inflater=Inflater(15, False)).feed(frame(BINARY, c, rsv=RSV1))
    assert ok == [("message", BINARY, b"\x00" * (4 << 20))]


def test_compressed_limit_counts_inflated_bytes_across_fragments() -> None:
    (c,) = deflate_messages(b"y" * 1000)
    stream = frame(BINARY, c[:3], rsv=RSV1, fin=False) + frame(CONT, c[3:])
    assert decoder(max_message=1000, inflater=Inflater(15, False)).feed(stream) == [("message", BINARY, b"y" * 1000)]
    assert decoder(max_message=999, inflater=Inflater(15, False)).feed(stream)[0][:2] == E(1009)


def test_compressed_invalid_utf8_fails_before_the_message_ends() -> None:
    (c,) = deflate_messages(b"\xff" + bytes(random.Random(1).randbytes(50000)))
    stream = frame(TEXT, c, rsv=RSV1)
    got = error_at(stream, inflater=Inflater(15, False))
    assert got is not None and got[1] == 1007 and got[0] < len(stream) // 2


# --- masking (§5.3) --------------------------------------------------------------------------

LENGTHS = [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 125, 126, 127, 65535, 65536, 100003]


@pytest.mark.parametrize("n", LENGTHS)
def test_masked_round_trip(n: int) -> None:
    payload = random.Random(n).randbytes(n)
    wire = encode(BINARY, payload, mask=True)
    head = 2 + (0 if n < 126 else 2 if n < 65536 else 8)
    assert wire[1] & 0x80
    key = wire[head:head + 4]
    assert wire[head + 4:] == xor(payload, key)
    assert decoder().feed(wire) == [("message", BINARY, payload)]
    assert decoder(server=False).feed(encode(BINARY, payload)) == [("message", BINARY, payload)]


def test_unmasking_at_every_offset_of_the_key() -> None:
    payload = bytes(range(256)) * 3
    for key in (KEY, b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x01\x02\x03\x04"):
        stream = frame(BINARY, payload, mask=key)
        for cut in range(len(stream) - len(payload), len(stream), 1):
            for second in (cut + 1, cut + 3, cut + 9):
                cuts = [cut] if second >= len(stream) else [cut, second]
                assert decode_split(stream, cuts) == [("message", BINARY, payload)]


def test_every_frame_gets_a_fresh_key() -> None:
    keys = [encode(PING, b"", mask=True)[2:6] for _ in range(3000)]  # crosses two pool refills
    assert len(set(keys)) > 2990


def test_a_forked_child_does_not_reuse_the_parents_keys() -> None:
    encode(PING, b"", mask=True)  # the pool is drawn and partly used
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(write_end, encode(PING, b"", mask=True)[2:6])
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        child_key = os.read(read_end, 4)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    assert len(child_key) == 4
    assert child_key != encode(PING, b"", mask=True)[2:6]


# --- encoder shapes --------------------------------------------------------------------------

@pytest.mark.parametrize(("n", "length_bytes"), [
    (0, b"\x00"), (125, b"\x7d"), (126, b"\x7e\x00\x7e"), (65535, b"\x7e\xff\xff"),
    (65536, b"\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
])
def test_encode_uses_the_shortest_length_form(n: int, length_bytes: bytes) -> None:
    wire = encode(BINARY, b"z" * n)
    assert wire[0] == 0x82
    assert wire[1:1 + len(length_bytes)] == length_bytes
    assert wire[1 + len(length_bytes):] == b"z" * n


def test_encode_header_bits() -> None:
    assert encode(TEXT, "é") == b"\x81\x02\xc3\xa9"
    assert encode(TEXT, b"a", fin=False) == b"\x01\x01a"
    assert encode(CONT, b"a") == b"\x80\x01a"
    assert encode(BINARY, b"", rsv1=True) == b"\xc2\x00"
    assert encode(PONG, bytearray(b"p")) == b"\x8a\x01p"
    assert encode(CLOSE, memoryview(b"\x03\xe8")) == b"\x88\x02\x03\xe8"
    assert encode(PING, b"", mask=True)[:2] == b"\x89\x80"


@pytest.mark.parametrize(("args", "kwargs"), [
    ((PING, b"p" * 126), {}),
    ((CLOSE, b""), {"fin": False}),
    ((PONG, b""), {"rsv1": True}),
    ((CONT, b""), {"rsv1": True}),
    ((0x3, b""), {}),
    ((0xB, b""), {}),
    ((-1, b""), {}),
])
def test_encode_refuses_what_the_rfc_forbids(args: tuple[int, bytes], kwargs: dict[str, bool]) -> None:
    with pytest.raises(ValueError):
        encode(*args, **kwargs)


def test_encode_close_frame() -> None:
    assert encode_close_frame(1000) == b"\x88\x02\x03\xe8"
    assert encode_close_frame(1001, "bye") == b"\x88\x05\x03\xe9bye"
    assert encode_close_frame(1005) == b"\x88\x00"
    assert encode_close_frame(4999, "x", mask=True)[:2] == b"\x88\x83"
    for code in (1000, 1003, 1007, 1014, 3000, 4999):
        assert decoder(server=False).feed(encode_close_frame(code, "r")) == [("close", code, "r")]
    assert decoder().feed(encode_close_frame(1005, mask=True)) == [("close", 1005, "")]


@pytest.mark.parametrize("code", [0, 999, 1004, 1006, 1015, 1016, 2999, 5000, 70000, -1])
def test_encode_close_frame_refuses_codes_that_must_not_be_sent(code: int) -> None:
    with pytest.raises(ValueError):
        encode_close_frame(code)


def test_encode_close_frame_refuses_a_reason_without_a_code() -> None:
    with pytest.raises(ValueError):
        encode_close_frame(1005, "why")


@pytest.mark.parametrize(("reason", "kept_bytes"), [
    ("a" * 200, 123),
    ("é" * 100, 122),         # 2-byte characters: 61 fit
    ("€" * 50, 123),          # 3-byte characters: 41 fit exactly
    ("😀" * 40, 120),         # 4-byte characters: 30 fit
    ("a" + "😀" * 40, 121),   # a 4-byte character straddles byte 123
    ("é" * 61, 122),          # fits untouched
])
def test_close_reason_is_cut_at_a_character_boundary(reason: str, kept_bytes: int) -> None:
    wire = encode_close_frame(1000, reason)
    assert len(wire) == 2 + 2 + kept_bytes <= 127
    kept = wire[4:].decode()
    assert reason.startswith(kept)
    assert decoder(server=False).feed(wire) == [("close", 1000, kept)]


# --- never raises: random and mutated streams ----------------------------------------------------

def _random_stream(rng: random.Random, server: bool) -> bytes:
    out = []
    for _ in range(rng.randint(1, 6)):
        key = rng.randbytes(4) if server else None
        r = rng.random()
        if r < 0.4:
            op = rng.choice([TEXT, BINARY, CONT, PING, PONG, CLOSE])
            payload = rng.choice([b"", "héllo".encode(), rng.randbytes(rng.randint(0, 300)), b"\x03\xe8ok"])
            out.append(frame(op, payload, fin=rng.random() < 0.7, mask=key,
                             rsv=rng.choice([0, 0, 0, RSV1, RSV2])))
        elif r < 0.8:
            raw = bytearray(frame(rng.choice([TEXT, BINARY, PING]), rng.randbytes(rng.randint(0, 140)), mask=key))
            for _ in range(rng.randint(1, 3)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
            out.append(bytes(raw))
        else:
            out.append(rng.randbytes(rng.randint(1, 20)))
    return b"".join(out)


def test_any_bytes_decode_to_the_same_events_however_split() -> None:
    rng = random.Random(7692)
    for _ in range(400):
        server = rng.random() < 0.7
        stream = _random_stream(rng, server)
        whole = decode_split(stream, [], server=server, max_frame=200, max_message=400)
        for cuts in ([*range(1, len(stream))],
                     sorted(rng.sample(range(1, len(stream)), min(len(stream) - 1, 5))) if len(stream) > 1 else []):
            assert decode_split(stream, cuts, server=server, max_frame=200, max_message=400) == whole
