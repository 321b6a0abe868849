"""permessage-deflate (RFC 7692): the extension header grammar, negotiation tables for both roles,
the codecs' round trips with and without context takeover, the inflation bound (a deflate bomb),
corrupt input, the 8-bit window, and interop both ways with websockets' implementation
(negotiation through its factories, messages through its ``PerMessageDeflate``).
"""
from __future__ import annotations

import random
import tracemalloc
import zlib
from collections.abc import Sequence
from typing import Any

import pytest
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode
from websockets.headers import build_extension, parse_extension

from cyserve._core.ws.deflate import (
    Deflater,
    Inflater,
    client_accept,
    client_offer,
    parse_extensions,
    server_negotiate,
)
from cyserve.config import WebSocketLimits

BIG = 1 << 30  # a budget no test message reaches


def _messages(seed: int, count: int = 40) -> list[bytes]:
    """Compressible text, repeats (which context takeover shrinks), random bytes, empty messages
    and one large message, in a fixed pseudo-random order."""
    rng = random.Random(seed)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"websocket", b"deflate", b"{\"id\": ", b"}\n"]
    out: list[bytes] = [b"", b"x"]
    for _ in range(count):
        kind = rng.randrange(5)
        if kind == 0:
            out.append(b" ".join(rng.choice(words) for _ in range(rng.randrange(1, 400))))
        elif kind == 1 and out:
            out.append(rng.choice(out))
        elif kind == 2:
            out.append(rng.randbytes(rng.randrange(1, 3000)))
        elif kind == 3:
            out.append(b"")
        else:
            out.append(bytes([rng.randrange(256)]) * rng.randrange(1, 5000))
    out.append(b"".join(rng.choice(words) for _ in range(40000)))  # ~200 KB
    return out


def _split(data: bytes, pieces: int, rng: random.Random) -> list[bytes]:
    if pieces <= 1 or len(data) < 2:
        return [data]
    cuts = sorted(rng.sample(range(1, len(data)), min(pieces - 1, len(data) - 1)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]


def _inflate(inflater: Inflater, pieces: Sequence[bytes | bytearray | memoryview],
             limit: int = BIG) -> bytes:
    """One message through ``feed`` piece by piece and ``end_message``, within ``limit``."""
    out = bytearray()
    for piece in pieces:
        out += inflater.feed(piece, limit - len(out))
    out += inflater.end_message(limit - len(out))
    return bytes(out)


def _limits(**kw: Any) -> WebSocketLimits:
    return WebSocketLimits(**kw)


def _raw_deflate(data: bytes, wbits: int = 15, finish: bool = False) -> bytes:
    """zlib's raw DEFLATE of ``data`` as a permessage-deflate payload (trailing 00 00 ff ff removed),
    or a stream ending in a BFINAL block when ``finish``."""
    z = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    if finish:
        return z.compress(data) + z.flush(zlib.Z_FINISH)
    out = z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


# --- Sec-WebSocket-Extensions grammar (RFC 6455 §9.1) ---------------------------------------------

PARSE_OK = [
    pytest.param("permessage-deflate", [("permessage-deflate", {})], id="bare-name"),
    pytest.param("permessage-deflate; client_max_window_bits",
                 [("permessage-deflate", {"client_max_window_bits": None})], id="param-without-value"),
    pytest.param("permessage-deflate;server_max_window_bits=10",
                 [("permessage-deflate", {"server_max_window_bits": "10"})], id="no-whitespace"),
    pytest.param('permessage-deflate; server_max_window_bits="10"',
                 [("permessage-deflate", {"server_max_window_bits": "10"})], id="quoted-value"),
    pytest.param('x; a="1\\0"', [("x", {"a": "10"})], id="quoted-pair-unescaped"),
    pytest.param(" a ; b = 1 ,\tc ", [("a", {"b": "1"}), ("c", {})], id="ows-around-separators"),
    pytest.param(", a,, b ,", [("a", {}), ("b", {})], id="empty-list-elements"),
    pytest.param("", [], id="empty-value"),
    pytest.param(" , ", [], id="only-empty-elements"),
    pytest.param("permessage-deflate; server_no_context_takeover; client_no_context_takeover, "
                 "permessage-deflate",
                 [("permessage-deflate", {"server_no_context_takeover": None,
                                          "client_no_context_takeover": None}),
                  ("permessage-deflate", {})], id="two-offers"),
    pytest.param("x-Foo; Bar=Baz", [("x-Foo", {"Bar": "Baz"})], id="case-kept"),
]


@pytest.mark.parametrize("value, expected", PARSE_OK)
def test_parse_extensions_accepts(value: str, expected: list[tuple[str, dict[str, str | None]]]) -> None:
    assert parse_extensions(value) == expected


PARSE_BAD = [
    pytest.param(";", id="parameter-without-extension"),
    pytest.param("a;", id="semicolon-without-parameter"),
    pytest.param("a; =1", id="value-without-name"),
    pytest.param("a; b=", id="equals-without-value"),
    pytest.param("a b", id="two-tokens-without-comma"),
    pytest.param('a; b="1', id="unterminated-quoted-string"),
    pytest.param('a; b="1 2"', id="quoted-value-not-a-token"),
    pytest.param('a; b=""', id="empty-quoted-value"),
    pytest.param("a; b=1=2", id="two-equals"),
    pytest.param("a; b=1; b=2", id="duplicate-parameter"),
    pytest.param("a; b; b", id="duplicate-flag"),
    pytest.param("a; b=\x01", id="control-character"),
    pytest.param('a; b="\x7f"', id="del-in-quoted-string"),
    pytest.param("a/b", id="separator-in-name"),
    pytest.param("é", id="non-token-name"),
]


@pytest.mark.parametrize("value", PARSE_BAD)
def test_parse_extensions_rejects_malformed(value: str) -> None:
    with pytest.raises(ValueError, match="Sec-WebSocket-Extensions"):
        parse_extensions(value)


# --- server negotiation (RFC 7692 §5, §7.1) -------------------------------------------------------

PMD = "permessage-deflate"
# (offer, limits, response, (inflater wbits, inflater no-takeover), (deflater wbits, no-takeover))
SERVER_ACCEPTS = [
    pytest.param(PMD, {}, f"{PMD}; server_max_window_bits=12", (15, False), (12, False),
                 id="bare-offer-client-window-unbounded"),
    pytest.param(f"{PMD}; client_max_window_bits", {},
                 f"{PMD}; server_max_window_bits=12; client_max_window_bits=12", (12, False), (12, False),
                 id="browser-offer"),
    pytest.param(f"{PMD}; client_max_window_bits=10", {},
                 f"{PMD}; server_max_window_bits=12; client_max_window_bits=10", (10, False), (12, False),
                 id="client-window-below-ours"),
    pytest.param(f"{PMD}; client_max_window_bits=15", {},
                 f"{PMD}; server_max_window_bits=12; client_max_window_bits=12", (12, False), (12, False),
                 id="client-window-above-ours"),
    pytest.param(f"{PMD}; client_max_window_bits=8", {},
                 f"{PMD}; server_max_window_bits=12; client_max_window_bits=8", (9, False), (12, False),
                 id="client-window-8-inflated-with-9"),
    pytest.param(f"{PMD}; server_max_window_bits=10", {}, f"{PMD}; server_max_window_bits=10",
                 (15, False), (10, False), id="server-window-below-ours"),
    pytest.param(f"{PMD}; server_max_window_bits=15", {}, f"{PMD}; server_max_window_bits=12",
                 (15, False), (12, False), id="server-window-above-ours"),
    pytest.param(f'{PMD}; server_max_window_bits="9"', {}, f"{PMD}; server_max_window_bits=9",
                 (15, False), (9, False), id="server-window-quoted"),
    pytest.param(f"{PMD}; server_no_context_takeover", {},
                 f"{PMD}; server_no_context_takeover; server_max_window_bits=12", (15, False), (12, True),
                 id="server-no-context-takeover"),
    pytest.param(f"{PMD}; client_no_context_takeover", {},
                 f"{PMD}; client_no_context_takeover; server_max_window_bits=12", (15, True), (12, False),
                 id="client-no-context-takeover"),
    pytest.param(f"{PMD}; client_max_window_bits=11; server_max_window_bits=10; "
                 "client_no_context_takeover; server_no_context_takeover", {},
                 f"{PMD}; server_no_context_takeover; client_no_context_takeover; "
                 "server_max_window_bits=10; client_max_window_bits=11", (11, True), (10, True),
                 id="every-parameter"),
    pytest.param(f"{PMD}; server_max_window_bits=8, {PMD}; client_max_window_bits", {},
                 f"{PMD}; server_max_window_bits=12; client_max_window_bits=12", (12, False), (12, False),
                 id="server-window-8-declined-next-offer-taken"),
    pytest.param(f"{PMD}; x-unknown, {PMD}", {}, f"{PMD}; server_max_window_bits=12", (15, False),
                 (12, False), id="unknown-parameter-declined-next-offer-taken"),
    pytest.param(f"x-webkit-deflate-frame, {PMD}", {}, f"{PMD}; server_max_window_bits=12", (15, False),
                 (12, False), id="other-extension-skipped"),
    pytest.param(f"{PMD}; client_max_window_bits", {"compression_window_bits": 15},
                 f"{PMD}; client_max_window_bits=15", (15, False), (15, False), id="our-window-15"),
    pytest.param(PMD, {"compression_window_bits": 15}, PMD, (15, False), (15, False),
                 id="our-window-15-bare-offer"),
    pytest.param(f"{PMD}; client_max_window_bits; server_max_window_bits=15",
                 {"compression_window_bits": 9},
                 f"{PMD}; server_max_window_bits=9; client_max_window_bits=9", (9, False), (9, False),
                 id="our-window-9"),
    pytest.param(f"{PMD}; server_max_window_bits=15", {"compression_window_bits": 15},
                 f"{PMD}; server_max_window_bits=15", (15, False), (15, False),
                 id="offered-window-always-answered"),
]


@pytest.mark.parametrize("offer, limits, response, inflater, deflater", SERVER_ACCEPTS)
def test_server_negotiate_accepts(offer: str, limits: dict[str, Any], response: str,
                                  inflater: tuple[int, bool], deflater: tuple[int, bool]) -> None:
    answer, inf, dfl = server_negotiate(offer, _limits(**limits))
    assert answer == response
    assert inf is not None and dfl is not None
    assert (inf.wbits, inf.no_context_takeover) == inflater
    assert (dfl.wbits, dfl.no_context_takeover) == deflater
    assert dfl.level == _limits(**limits).compression_level


SERVER_DECLINES = [
    pytest.param(None, {}, id="no-header"),
    pytest.param("", {}, id="empty-header"),
    pytest.param(PMD, {"compression": False}, id="compression-off"),
    pytest.param("x-webkit-deflate-frame", {}, id="only-other-extensions"),
    pytest.param(f"{PMD}; server_max_window_bits=8", {}, id="server-window-8-zlib-cannot-compress"),
    pytest.param(f"{PMD}; x-unknown", {}, id="unknown-parameter"),
    pytest.param(f"{PMD}; server_no_context_takeover; server_no_context_takeover", {},
                 id="duplicate-parameter"),
    pytest.param(f"{PMD}; client_max_window_bits=10; client_max_window_bits", {},
                 id="duplicate-window-parameter"),
    pytest.param(f"{PMD}; server_no_context_takeover=1", {}, id="server-takeover-with-value"),
    pytest.param(f"{PMD}; client_no_context_takeover=true", {}, id="client-takeover-with-value"),
    pytest.param(f"{PMD}; server_max_window_bits", {}, id="server-window-without-value"),
    pytest.param(f"{PMD}; server_max_window_bits=7", {}, id="server-window-7"),
    pytest.param(f"{PMD}; server_max_window_bits=16", {}, id="server-window-16"),
    pytest.param(f"{PMD}; server_max_window_bits=010", {}, id="server-window-leading-zero"),
    pytest.param(f"{PMD}; client_max_window_bits=abc", {}, id="client-window-not-a-number"),
    pytest.param(f"{PMD}; client_max_window_bits=+9", {}, id="client-window-with-sign"),
    pytest.param(f"{PMD};;", {}, id="malformed-header"),
    pytest.param(f'{PMD}; server_max_window_bits="10', {}, id="unterminated-quote"),
    pytest.param(f"{PMD}; server_max_window_bits=8, {PMD}; x=1", {}, id="every-offer-unacceptable"),
]


@pytest.mark.parametrize("offer, limits", SERVER_DECLINES)
def test_server_negotiate_declines(offer: str | None, limits: dict[str, Any]) -> None:
    assert server_negotiate(offer, _limits(**limits)) == (None, None, None)


# --- client negotiation (RFC 7692 §7, §7.1) -------------------------------------------------------

def test_client_offer_asks_for_our_window() -> None:
    assert client_offer(_limits()) == f"{PMD}; client_max_window_bits; server_max_window_bits=12"
    assert client_offer(_limits(compression_window_bits=9)) == \
        f"{PMD}; client_max_window_bits; server_max_window_bits=9"
    assert client_offer(_limits(compression_window_bits=15)) == f"{PMD}; client_max_window_bits"


def test_client_offer_refuses_when_compression_is_off() -> None:
    with pytest.raises(ValueError, match="compression is off"):
        client_offer(_limits(compression=False))


# (response, limits, (inflater wbits, no-takeover), (deflater wbits, no-takeover))
CLIENT_ACCEPTS = [
    pytest.param(f"{PMD}; server_max_window_bits=12", {}, (12, False), (12, False), id="window-echoed"),
    pytest.param(f'{PMD}; server_max_window_bits="12"', {}, (12, False), (12, False), id="window-quoted"),
    pytest.param(f"{PMD}; server_max_window_bits=9", {}, (9, False), (12, False), id="server-window-smaller"),
    pytest.param(f"{PMD}; server_max_window_bits=8", {}, (9, False), (12, False),
                 id="server-window-8-inflated-with-9"),
    pytest.param(f"{PMD}; server_max_window_bits=12; client_max_window_bits=10", {}, (12, False),
                 (10, False), id="server-picks-our-window"),
    pytest.param(f"{PMD}; server_max_window_bits=12; client_max_window_bits=15", {}, (12, False),
                 (12, False), id="server-allows-more-than-we-use"),
    pytest.param(f"{PMD}; server_max_window_bits=12; server_no_context_takeover", {}, (12, True),
                 (12, False), id="server-no-context-takeover-unasked"),
    pytest.param(f"{PMD}; client_no_context_takeover; server_max_window_bits=12", {}, (12, False),
                 (12, True), id="server-requires-client-no-context-takeover"),
    pytest.param(f" {PMD} ;server_max_window_bits = 11 ", {}, (11, False), (12, False), id="ows"),
    pytest.param(PMD, {"compression_window_bits": 15}, (15, False), (15, False), id="window-15-not-offered"),
    pytest.param(f"{PMD}; server_max_window_bits=10", {"compression_window_bits": 15}, (10, False),
                 (15, False), id="window-15-server-chooses-smaller"),
    pytest.param(f"{PMD}; server_max_window_bits=9; client_max_window_bits=9",
                 {"compression_window_bits": 9}, (9, False), (9, False), id="our-window-9"),
]


@pytest.mark.parametrize("response, limits, inflater, deflater", CLIENT_ACCEPTS)
def test_client_accept_accepts(response: str, limits: dict[str, Any], inflater: tuple[int, bool],
                               deflater: tuple[int, bool]) -> None:
    inf, dfl = client_accept(response, _limits(**limits))
    assert (inf.wbits, inf.no_context_takeover) == inflater
    assert (dfl.wbits, dfl.no_context_takeover) == deflater
    assert dfl.level == _limits(**limits).compression_level


CLIENT_FAILS = [
    pytest.param(f"{PMD}; server_max_window_bits=13", {}, "larger than the 12 offered",
                 id="server-window-above-offer"),
    pytest.param(PMD, {}, "ignored server_max_window_bits", id="server-window-missing"),
    pytest.param(f"{PMD}; server_max_window_bits=12; client_max_window_bits=8", {}, "zlib cannot",
                 id="client-window-8"),
    pytest.param(f"{PMD}; server_max_window_bits=12; client_max_window_bits", {},
                 "bad client_max_window_bits", id="client-window-without-value"),
    pytest.param(f"{PMD}; server_max_window_bits", {}, "bad server_max_window_bits",
                 id="server-window-without-value"),
    pytest.param(f"{PMD}; server_max_window_bits=16", {}, "bad server_max_window_bits", id="window-16"),
    pytest.param(f"{PMD}; server_max_window_bits=09", {}, "bad server_max_window_bits",
                 id="window-leading-zero"),
    pytest.param(f"{PMD}; server_max_window_bits=12; x-unknown", {}, "unknown parameter",
                 id="unknown-parameter"),
    pytest.param(f"{PMD}; server_max_window_bits=12; server_max_window_bits=12", {}, "twice",
                 id="duplicate-parameter"),
    pytest.param(f"{PMD}; server_max_window_bits=12; server_no_context_takeover=1", {}, "takes no value",
                 id="takeover-with-value"),
    pytest.param("x-webkit-deflate-frame", {}, "not one permessage-deflate", id="other-extension"),
    pytest.param(f"{PMD}; server_max_window_bits=12, {PMD}; server_max_window_bits=12", {},
                 "not one permessage-deflate", id="two-answers"),
    pytest.param(f"{PMD}; server_max_window_bits=12, x-foo", {}, "not one permessage-deflate",
                 id="extra-extension"),
    pytest.param("", {}, "not one permessage-deflate", id="empty-answer"),
    pytest.param(f"{PMD}; server_max_window_bits=12;", {}, "Sec-WebSocket-Extensions", id="malformed"),
    pytest.param(f"{PMD}; server_max_window_bits=12", {"compression": False}, "did not offer",
                 id="compression-off-nothing-offered"),
]


@pytest.mark.parametrize("response, limits, message", CLIENT_FAILS)
def test_client_accept_fails(response: str, limits: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        client_accept(response, _limits(**limits))


def test_client_and_server_of_this_module_agree() -> None:
    for window in range(9, 16):
        limits = _limits(compression_window_bits=window)
        answer, s_inf, s_dfl = server_negotiate(client_offer(limits), limits)
        assert answer is not None and s_inf is not None and s_dfl is not None
        c_inf, c_dfl = client_accept(answer, limits)
        assert (c_inf.wbits, c_dfl.wbits) == (s_dfl.wbits, s_inf.wbits) == (window, window)
        for message in (b"hello " * 50, b"", b"hello " * 50):
            assert _inflate(s_inf, [c_dfl.compress(message)]) == message
            assert _inflate(c_inf, [s_dfl.compress(message)]) == message


# --- codecs: round trips, takeover, memory --------------------------------------------------------

@pytest.mark.parametrize("wbits", [9, 12, 15])
@pytest.mark.parametrize("no_takeover", [False, True], ids=["takeover", "no-takeover"])
def test_round_trip_over_many_messages(wbits: int, no_takeover: bool) -> None:
    rng = random.Random(wbits)
    deflater, inflater = Deflater(wbits, no_takeover), Inflater(wbits, no_takeover)
    for message in _messages(wbits):
        payload = deflater.compress(message)
        pieces = _split(payload, rng.choice([1, 2, 7]), rng)
        assert _inflate(inflater, pieces) == message
        assert not inflater.in_message


def test_round_trip_fed_one_byte_at_a_time() -> None:
    deflater, inflater = Deflater(10, False), Inflater(10, False)
    for message in (b"abcabcabc" * 30, b"", b"xyz" * 100, b"abcabcabc" * 30):
        payload = deflater.compress(message)
        assert _inflate(inflater, [payload[i:i + 1] for i in range(len(payload))]) == message


def test_context_takeover_shrinks_a_repeated_message_and_no_takeover_does_not() -> None:
    message = bytes(random.Random(1).randbytes(600)) * 2
    taking = Deflater(12, False)
    first, second = taking.compress(message), taking.compress(message)
    assert len(second) < len(first) // 10
    fresh = Deflater(12, True)
    assert fresh.compress(message) == fresh.compress(message) == first


def test_inflater_without_takeover_forgets_the_window() -> None:
    # A stream that refers back into the previous message fails on an inflater told the peer
    # resets its window, and works on one that keeps it.
    deflater = Deflater(12, False)
    message = random.Random(2).randbytes(300)
    first, second = deflater.compress(message), deflater.compress(message)
    keeping = Inflater(12, False)
    assert _inflate(keeping, [first]) == message and _inflate(keeping, [second]) == message
    forgetting = Inflater(12, True)
    assert _inflate(forgetting, [first]) == message
    with pytest.raises(ValueError, match="corrupt"):
        _inflate(forgetting, [second])


def test_empty_message_is_one_zero_byte_and_inflates_to_nothing() -> None:
    deflater, inflater = Deflater(12, False), Inflater(12, False)
    assert deflater.compress(b"") == b"\x00"
    assert deflater.compress(bytearray()) == b"\x00"
    assert _inflate(inflater, [b"\x00"]) == b""
    assert _inflate(inflater, []) == b""                    # RSV1 with an empty payload
    assert _inflate(inflater, [b"", b""]) == b""            # ... in empty fragments
    for message in (b"abc" * 20, b"", b"abc" * 20, b""):    # between messages that take over
        assert _inflate(inflater, [deflater.compress(message)]) == message


def test_compress_accepts_bytes_like() -> None:
    inflater = Inflater(12, True)
    deflater = Deflater(12, True)
    for data in (bytearray(b"q" * 100), memoryview(b"r" * 100)):
        assert _inflate(inflater, [deflater.compress(data)]) == bytes(data)
    assert _inflate(inflater, [memoryview(deflater.compress(b"s" * 100))]) == b"s" * 100


def test_constructors_validate() -> None:
    with pytest.raises(ValueError, match="8-bit window"):
        Deflater(8, False)
    for bad in (7, 16):
        with pytest.raises(ValueError):
            Deflater(bad, False)
        with pytest.raises(ValueError):
            Inflater(bad, False)
    with pytest.raises(ValueError):
        Deflater(12, False, level=10)
    with pytest.raises(ValueError):
        Deflater(12, False, memlevel=0)
    assert Inflater(8, False).wbits == 9
    assert [Deflater(w, False).memlevel for w in (9, 12, 15)] == [2, 5, 8]
    assert Deflater(12, False, 1, 9).memlevel == 9
    with pytest.raises(ValueError, match="max_out"):
        Inflater(12, False).feed(b"\x00", -1)


def _held_bytes(deflater: Deflater, inflater: Inflater, message: bytes) -> int:
    """Bytes still allocated after one message each way: the zlib state kept between messages."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        payload = deflater.compress(message)
        assert _inflate(inflater, [payload]) == message
        del payload
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_default_window_state_fits_websockets_64_kib_bar() -> None:
    # zlib: deflate (1 << 14) + (1 << 14) + ~6 KiB, inflate (1 << 12) + ~7 KiB: ~49 KiB.
    limits = _limits()
    _, inflater, deflater = server_negotiate(f"{PMD}; client_max_window_bits", limits)
    assert inflater is not None and deflater is not None
    held = _held_bytes(deflater, inflater, random.Random(3).randbytes(5000))
    assert 40 * 1024 < held < 64 * 1024, held


def test_no_context_takeover_holds_no_zlib_state_between_messages() -> None:
    held = _held_bytes(Deflater(15, True), Inflater(15, True), random.Random(4).randbytes(5000))
    assert held < 1024, held


# --- the bound: a deflate bomb costs at most the limit --------------------------------------------

@pytest.fixture(scope="module")
def bomb() -> bytes:
    """10 MiB of zeros compressed with a 12-bit window: ~10 KB of payload."""
    payload = _raw_deflate(bytes(10 << 20), wbits=12)
    assert len(payload) < 16 * 1024
    return payload


def test_bomb_inflates_no_further_than_the_limit(bomb: bytes) -> None:
    limit = 1 << 20
    inflater = Inflater(12, False)
    tracemalloc.start()
    try:
        out = inflater.feed(bomb, limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(out) == limit + 1                    # past the limit: the caller closes with 1009
    # The result, plus at most as much again while CPython joins zlib's output blocks: bounded
    # by the limit, never by the 10 MiB the payload expands to.
    assert peak < 2 * (limit + 1) + 256 * 1024, peak


def test_bomb_fed_in_fragments_stops_at_the_limit(bomb: bytes) -> None:
    limit = 300_000
    inflater = Inflater(12, False)
    total = 0
    for i in range(0, len(bomb), 1000):
        out = inflater.feed(bomb[i:i + 1000], limit - total)
        assert len(out) <= limit - total + 1
        total += len(out)
        if total > limit:
            break
    assert total == limit + 1


def test_the_bound_resumes_from_the_unconsumed_tail(bomb: bytes) -> None:
    # Over the limit, the unread input stays in zlib's unconsumed tail: the next call (feed or
    # end_message) resumes there, within its own bound.
    inflater = Inflater(12, False)
    assert inflater.feed(bomb, 1000) == bytes(1001)
    assert inflater.feed(b"", 5000) == bytes(5001)
    assert inflater.end_message(1000) == bytes(1001)


def test_message_of_exactly_the_limit_is_not_over_it() -> None:
    message = b"0123456789" * 1000
    payload = Deflater(12, False).compress(message)
    inflater = Inflater(12, False)
    out = inflater.feed(payload, len(message))
    assert out + inflater.end_message(len(message) - len(out)) == message


# --- corrupt input --------------------------------------------------------------------------------

@pytest.mark.parametrize("payload", [
    pytest.param(b"\x07\xff\xff", id="reserved-block-type"),
    pytest.param(b"\x00\x05\x00\x00\x00", id="stored-length-mismatch"),
    pytest.param(b"\xff" * 20, id="garbage"),
])
def test_corrupt_payload_raises_value_error(payload: bytes) -> None:
    with pytest.raises(ValueError, match="corrupt compressed data"):
        _inflate(Inflater(15, False), [payload])


def test_corruption_found_by_the_appended_tail_raises_in_end_message() -> None:
    inflater = Inflater(15, False)
    assert inflater.feed(b"\x00\x01\x00", BIG) == b""    # a stored block of LEN 1, NLEN missing
    with pytest.raises(ValueError, match="corrupt compressed data"):
        inflater.end_message(BIG)                        # 00 00 is not the complement of 1


def test_final_block_ends_the_stream_and_the_next_message_starts_fresh() -> None:
    # RFC 7692 §7.2.3.4: a sender may end a message with a BFINAL block.
    inflater = Inflater(15, False)
    for message in (b"first " * 30, b"second " * 30, b"", b"third " * 30):
        payload = _raw_deflate(message, finish=True)
        assert _inflate(inflater, [payload]) == message
        assert _inflate(inflater, [_raw_deflate(message)]) == message


def test_data_after_a_final_block_is_corrupt() -> None:
    payload = _raw_deflate(b"hello " * 20, finish=True)
    with pytest.raises(ValueError, match="after the final DEFLATE block"):
        _inflate(Inflater(15, False), [payload + b"\x00"])
    inflater = Inflater(15, False)
    inflater.feed(payload, BIG)
    with pytest.raises(ValueError, match="after the final DEFLATE block"):
        inflater.feed(b"\x00", BIG)


# --- window 8 (RFC 7692 §7.1.2; zlib compresses with 9 at least) ----------------------------------

class _BitWriter:
    """DEFLATE's bit order (RFC 1951 §3.1.1): fields LSB first, Huffman codes MSB first."""

    def __init__(self) -> None:
        self._acc = 0
        self._n = 0
        self._out = bytearray()

    def bits(self, value: int, count: int) -> None:
        self._acc |= value << self._n
        self._n += count
        while self._n >= 8:
            self._out.append(self._acc & 0xFF)
            self._acc >>= 8
            self._n -= 8

    def code(self, code: int, count: int) -> None:
        self.bits(int(format(code, f"0{count}b")[::-1], 2), count)

    def literal(self, byte: int) -> None:                    # fixed Huffman (RFC 1951 §3.2.6)
        if byte < 144:
            self.code(0x30 + byte, 8)
        else:
            self.code(0x190 + byte - 144, 9)

    def sync_flushed(self) -> bytes:
        """End the block, then the 3 header bits of the empty stored block a sync flush adds,
        padded to a byte; the receiver's appended 00 00 ff ff completes it."""
        self.code(0, 7)
        self.bits(0, 3)
        if self._n:
            self.bits(0, 8 - self._n)
        return bytes(self._out)


def _fixed_block_with_match(literals: bytes, length: int, distance_code: int, extra: int,
                            extra_bits: int) -> bytes:
    """One fixed-Huffman block: ``literals``, then one match of ``length`` (3..10) at the distance
    that ``distance_code`` and its extra bits encode (RFC 1951 §3.2.5)."""
    w = _BitWriter()
    w.bits(0, 1)                                             # BFINAL = 0
    w.bits(1, 2)                                             # BTYPE = 01, fixed Huffman
    for byte in literals:
        w.literal(byte)
    w.code(254 + length - 256, 7)                            # length codes 257..264: 3..10
    w.code(distance_code, 5)
    w.bits(extra, extra_bits)
    return w.sync_flushed()


def test_window_8_stream_reaching_256_back_is_inflated() -> None:
    # Distance 256, the farthest an 8-bit window allows: code 15 (193..256), extra 63.
    payload = _fixed_block_with_match(bytes(range(256)), 10, 15, 63, 6)
    expected = bytes(range(256)) + bytes(range(10))
    inflater = Inflater(8, False)
    assert inflater.wbits == 9
    assert _inflate(inflater, [payload]) == expected
    # The stream is valid DEFLATE: zlib itself agrees with our reading of it.
    assert zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff") == expected


def test_reference_before_the_start_of_the_window_is_corrupt() -> None:
    payload = _fixed_block_with_match(b"abc", 3, 15, 63, 6)  # 256 back after 3 bytes
    with pytest.raises(ValueError, match="corrupt compressed data"):
        _inflate(Inflater(8, False), [payload])


def test_window_8_negotiated_both_ways_round_trips() -> None:
    # A client that offers client_max_window_bits=8 is inflated with a 9-bit window (its zlib
    # compresses with 9 at least, as websockets' does here); so is a server that answers
    # server_max_window_bits=8 to our client.
    _, inflater, deflater = server_negotiate(f"{PMD}; client_max_window_bits=8", _limits())
    assert inflater is not None and inflater.wbits == 9
    peer = PerMessageDeflate(False, False, 12, 9)           # a client compressing with zlib's 9
    for message in _messages(8, 10):
        frame = peer.encode(Frame(Opcode.BINARY, message))
        assert _inflate(inflater, [frame.data]) == message
    c_inf, _ = client_accept(f"{PMD}; server_max_window_bits=8", _limits())
    assert c_inf.wbits == 9


# --- interop with websockets' PerMessageDeflate ---------------------------------------------------

def _theirs_decode(theirs: PerMessageDeflate, payload: bytes) -> bytes:
    frame = theirs.decode(Frame(Opcode.BINARY, payload, fin=True, rsv1=True), max_size=None)
    return bytes(frame.data)


def _theirs_encode_fragments(theirs: PerMessageDeflate, message: bytes, pieces: int) -> list[bytes]:
    """One message encoded as ``pieces`` frames, as websockets sends a fragmented message."""
    cut = [message[i * len(message) // pieces:(i + 1) * len(message) // pieces] for i in range(pieces)]
    frames = [Frame(Opcode.BINARY if i == 0 else Opcode.CONT, part, fin=i == pieces - 1)
              for i, part in enumerate(cut)]
    return [bytes(theirs.encode(f).data) for f in frames]


@pytest.mark.parametrize("wbits", [9, 10, 12, 15])
@pytest.mark.parametrize("no_takeover", [False, True], ids=["takeover", "no-takeover"])
def test_our_deflater_is_inflated_by_websockets(wbits: int, no_takeover: bool) -> None:
    ours = Deflater(wbits, no_takeover)
    # Their receive side: remote = the sender's (our) parameters.
    theirs = PerMessageDeflate(no_takeover, False, wbits, 15)
    for message in _messages(100 + wbits):
        assert _theirs_decode(theirs, ours.compress(message)) == message


@pytest.mark.parametrize("wbits", [9, 10, 12, 15])
@pytest.mark.parametrize("no_takeover", [False, True], ids=["takeover", "no-takeover"])
def test_websockets_deflater_is_inflated_by_ours(wbits: int, no_takeover: bool) -> None:
    ours = Inflater(wbits, no_takeover)
    # Their send side: local = the sender's (their) parameters.
    theirs = PerMessageDeflate(False, no_takeover, 15, wbits)
    rng = random.Random(wbits)
    for message in _messages(200 + wbits):
        pieces = rng.choice([1, 1, 3])
        payloads = _theirs_encode_fragments(theirs, message, pieces)
        assert _inflate(ours, payloads) == message


CLIENT_FACTORIES = [
    pytest.param({}, id="default"),
    pytest.param({"server_max_window_bits": 10}, id="server-window-10"),
    pytest.param({"server_max_window_bits": 15, "client_max_window_bits": 9}, id="client-window-9"),
    pytest.param({"client_max_window_bits": None}, id="no-client-window"),
    pytest.param({"server_no_context_takeover": True}, id="server-no-takeover"),
    pytest.param({"client_no_context_takeover": True}, id="client-no-takeover"),
    pytest.param({"server_no_context_takeover": True, "client_no_context_takeover": True,
                  "server_max_window_bits": 9, "client_max_window_bits": 11}, id="everything"),
]


@pytest.mark.parametrize("config", CLIENT_FACTORIES)
def test_our_server_with_a_websockets_client(config: dict[str, Any]) -> None:
    client = ClientPerMessageDeflateFactory(**config)
    offer = build_extension([(client.name, client.get_request_params())])
    answer, inflater, deflater = server_negotiate(offer, _limits())
    assert answer is not None and inflater is not None and deflater is not None
    [(name, params)] = parse_extension(answer)
    theirs = client.process_response_params(params, [])     # raises if our answer is wrong
    for message in _messages(7, 15):
        assert _theirs_decode(theirs, deflater.compress(message)) == message
        payload = bytes(theirs.encode(Frame(Opcode.BINARY, message)).data)
        assert _inflate(inflater, [payload]) == message


def test_our_server_declines_a_websockets_client_asking_for_window_8() -> None:
    client = ClientPerMessageDeflateFactory(server_max_window_bits=8)
    offer = build_extension([(client.name, client.get_request_params())])
    assert server_negotiate(offer, _limits()) == (None, None, None)


SERVER_FACTORIES = [
    pytest.param({}, {}, id="default"),
    pytest.param({"server_max_window_bits": 10}, {}, id="server-window-10"),
    pytest.param({"server_max_window_bits": 13}, {}, id="server-window-13-above-our-12"),
    pytest.param({"client_max_window_bits": 10}, {}, id="client-window-10"),
    pytest.param({"server_no_context_takeover": True}, {}, id="server-no-takeover"),
    pytest.param({"client_no_context_takeover": True}, {}, id="client-no-takeover"),
    pytest.param({"client_max_window_bits": 14, "require_client_max_window_bits": True},
                 {"compression_window_bits": 15}, id="our-window-15"),
    pytest.param({"server_no_context_takeover": True, "client_no_context_takeover": True,
                  "server_max_window_bits": 9, "client_max_window_bits": 11},
                 {"compression_window_bits": 10}, id="everything"),
]


@pytest.mark.parametrize("config, limits", SERVER_FACTORIES)
def test_our_client_with_a_websockets_server(config: dict[str, Any], limits: dict[str, Any]) -> None:
    ws_limits = _limits(**limits)
    server = ServerPerMessageDeflateFactory(**config)
    [(name, params)] = parse_extension(client_offer(ws_limits))
    response_params, theirs = server.process_request_params(params, [])
    inflater, deflater = client_accept(build_extension([(name, response_params)]), ws_limits)
    for message in _messages(9, 15):
        assert _theirs_decode(theirs, deflater.compress(message)) == message
        payload = bytes(theirs.encode(Frame(Opcode.BINARY, message)).data)
        assert _inflate(inflater, [payload]) == message
