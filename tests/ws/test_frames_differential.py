"""cyserve's frame decoder against wsproto (``FrameProtocol``) and websockets (the sans-I/O
``Protocol`` over ``Frame.parse``): the same byte streams, split the same ways, must give the same
events and close codes, except for the intended differences listed once in ``DIFFERENCES`` (case,
our behaviour, theirs, the RFC reason).

Both references are driven the way their own connections drive them.  wsproto stops at the first
close frame; so does websockets (it discards what follows), and websockets checks text as UTF-8
only when a message is complete (its ``asyncio`` layer decodes whole messages and fails with 1007),
so that is what its runner here does.  Our decoder keeps decoding after a close frame (the role
stops reading), so every runner's events are cut after the first close.
"""
from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from websockets.exceptions import ProtocolError as WebsocketsProtocolError
from websockets.extensions.permessage_deflate import PerMessageDeflate as WebsocketsDeflate
from websockets.frames import Close, Opcode as WsOpcode
from websockets.protocol import CLIENT, SERVER, Protocol
from wsproto.extensions import PerMessageDeflate as WsprotoDeflate
from wsproto.frame_protocol import FrameProtocol, Opcode, ParseFailed

from cyserve._core.ws.deflate import Inflater
from tests.ws.test_frames import (
    BIG, BINARY, CLOSE, CONT, KEY, PING, PONG, RSV1, RSV2, TEXT, VECTORS, close_payload,
    decode_split, deflate_messages, frame,
)

Event = tuple

WSPROTO = "wsproto"
WEBSOCKETS = "websockets"


def _pieces(stream: bytes, cuts: list[int]) -> Iterator[bytes]:
    bounds = [0, *cuts, len(stream)]
    for start, end in zip(bounds, bounds[1:]):
        yield stream[start:end]


def _cut_after_close(events: list[Event]) -> list[Event]:
    for i, ev in enumerate(events):
        if ev[0] == "close":
            return events[:i + 1]
    return events


@dataclass(frozen=True)
class Limits:
    server: bool = True
    max_frame: int = BIG
    max_message: int = BIG
    deflate: bool = False


# --- the three runners -----------------------------------------------------------------------

def run_ours(stream: bytes, cuts: list[int], lim: Limits) -> list[Event]:
    inflater = Inflater(15, False) if lim.deflate else None
    return _cut_after_close(decode_split(stream, cuts, server=lim.server, max_frame=lim.max_frame,
                                         max_message=lim.max_message, inflater=inflater))


def run_wsproto(stream: bytes, cuts: list[int], lim: Limits) -> list[Event]:
    """wsproto has no size limits: ``max_frame`` and ``max_message`` are not applied."""
    extensions = []
    if lim.deflate:
        ext = WsprotoDeflate()
        ext.finalize("permessage-deflate")
        extensions.append(ext)
    proto = FrameProtocol(client=not lim.server, extensions=extensions)
    events: list[Event] = []
    parts: list[str | bytes] = []
    for piece in _pieces(stream, cuts):
        proto.receive_bytes(piece)
        try:
            for f in proto.received_frames():
                if f.opcode is Opcode.PING or f.opcode is Opcode.PONG:
                    events.append(("ping" if f.opcode is Opcode.PING else "pong", bytes(f.payload)))
                elif f.opcode is Opcode.CLOSE:
                    code, reason = f.payload
                    events.append(("close", int(code), reason))
                    return events
                else:
                    parts.append(f.payload)
                    if f.message_finished:
                        joined = "".join(parts) if f.opcode is Opcode.TEXT else b"".join(parts)
                        events.append(("message", int(f.opcode), joined))
                        parts = []
        except ParseFailed as exc:
            events.append(("error", int(exc.code)))
            return events
    return events


def run_websockets(stream: bytes, cuts: list[int], lim: Limits) -> list[Event]:
    proto = Protocol(SERVER if lim.server else CLIENT, max_size=(lim.max_message, lim.max_frame))
    if lim.deflate:
        proto.extensions = [WebsocketsDeflate(False, False, 15, 15)]
    events: list[Event] = []
    parts: list[bytes] = []
    opcode = 0
    for piece in _pieces(stream, cuts):
        proto.receive_data(piece)
        for f in proto.events_received():
            if f.opcode in (WsOpcode.PING, WsOpcode.PONG):
                events.append(("ping" if f.opcode is WsOpcode.PING else "pong", bytes(f.data)))
            elif f.opcode is WsOpcode.CLOSE:
                close = Close.parse(f.data)
                events.append(("close", int(close.code), close.reason))
                return events
            else:
                if f.opcode is not WsOpcode.CONT:
                    opcode, parts = int(f.opcode), []
                parts.append(bytes(f.data))
                if f.fin:
                    data = b"".join(parts)
                    if opcode == TEXT:
                        try:
                            events.append(("message", TEXT, data.decode()))
                        except UnicodeDecodeError:
                            # websockets.asyncio decodes a whole message and fails with 1007.
                            events.append(("error", 1007))
                            return events
                    else:
                        events.append(("message", BINARY, data))
        if proto.parser_exc is not None:
            assert proto.close_sent is not None
            events.append(("error", int(proto.close_sent.code)))
            return events
    return events


RUNNERS: dict[str, Callable[[bytes, list[int], Limits], list[Event]]] = {
    WSPROTO: run_wsproto,
    WEBSOCKETS: run_websockets,
}


# --- the intended differences ------------------------------------------------------------------

@dataclass(frozen=True)
class Difference:
    case: str                 # the id of a vector (here or in test_frames.VECTORS)
    reference: str
    ours: list[Event]
    theirs: list[Event]
    reason: str               # why we do what we do, with the RFC section


DIFFERENCES: list[Difference] = [
    Difference(
        "close-code-1014-allowed", WSPROTO, [("close", 1014, "")], [("error", 1002)],
        "RFC 6455 §7.4.2 reserves 1000-2999 for codes defined by the RFC and registered "
        "extensions; 1014 (Bad Gateway) is in the IANA WebSocket Close Code registry (§11.7) "
        "beside 1012 and 1013, which wsproto does accept.",
    ),
    Difference(
        "close-inside-fragmented-message", WEBSOCKETS, [("close", 1000, "")], [("error", 1002)],
        "RFC 6455 §5.4: control frames MAY be injected in the middle of a fragmented message, and "
        "close is a control frame (§5.5.1); websockets fails the connection instead.",
    ),
    Difference(
        "16-bit-length-under-126", WEBSOCKETS, [("error", 1002)], [("message", BINARY, b"x" * 125)],
        "RFC 6455 §5.2: \"the minimal number of bytes MUST be used to encode the length\"; "
        "websockets accepts any length form.",
    ),
    Difference(
        "16-bit-length-zero", WEBSOCKETS, [("error", 1002)], [("message", BINARY, b"")],
        "Same rule (§5.2, minimal length encoding).",
    ),
    Difference(
        "64-bit-length-under-65536", WEBSOCKETS, [("error", 1002)], [("message", BINARY, b"x" * 200)],
        "Same rule (§5.2, minimal length encoding).",
    ),
    Difference(
        "64-bit-length-top-bit", WEBSOCKETS, [("error", 1002)], [("error", 1009)],
        "RFC 6455 §5.2: the most significant bit of a 64-bit length MUST be 0, so it is a "
        "protocol error (1002); websockets only sees a length over its max_size (1009).",
    ),
    Difference(
        "64-bit-length-all-ones", WEBSOCKETS, [("error", 1002)], [("error", 1009)],
        "Same rule (§5.2, the 64-bit length's top bit).",
    ),
    Difference(
        "close-bad-code-checked-before-reason", WEBSOCKETS, [("error", 1002)], [("error", 1007)],
        "Close code 1004 with an invalid UTF-8 reason: both are errors; the code comes first in "
        "the payload (§5.5.1) and is checked first (1002, like wsproto); websockets decodes the "
        "reason first (1007).",
    ),
    Difference(
        "frame-over-max-frame-bytes", WSPROTO, [("error", 1009)], [("message", BINARY, b"f" * 101)],
        "RFC 6455 §10.4: implementations SHOULD limit frame and message sizes; wsproto has no "
        "limits (websockets agrees with us).",
    ),
    Difference(
        "message-over-max-message-bytes", WSPROTO, [("error", 1009)],
        [("message", BINARY, b"m" * 150)],
        "Same (§10.4): the message limit; wsproto has none.",
    ),
    Difference(
        "compressed-over-max-message-bytes", WSPROTO, [("error", 1009)],
        [("message", BINARY, b"\x00" * 100000)],
        "Same (§10.4, and RFC 7692 §8.1 on deflate bombs): the inflated size counts; wsproto has "
        "no limit.",
    ),
    Difference(
        "compressed-fragmented-with-ping-and-takeover", WSPROTO,
        [("ping", b"?"), ("message", TEXT, "héllo wörld " * 30), ("message", BINARY, b"\x01\x02" * 500)],
        [("ping", b"?"), ("error", 1007)],
        "RFC 6455 §5.4 lets control frames come between a message's fragments, and RFC 7692 §6 "
        "compresses the message, not the frame: the continuation is still compressed.  wsproto's "
        "PerMessageDeflate forgets the message was compressed when the ping ends, so it reads the "
        "rest as raw text.",
    ),
    Difference(
        "compressed-corrupt", WEBSOCKETS, [("error", 1007)], [("error", 1002)],
        "A payload that does not inflate is data inconsistent with the message (§7.4.1, 1007), "
        "as wsproto answers; websockets calls it a protocol error (1002).",
    ),
]

DIFFERS: dict[tuple[str, str], Difference] = {(d.case, d.reference): d for d in DIFFERENCES}


# --- cases -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    id: str
    stream: bytes
    ours: list[Event]
    limits: Limits = Limits()


def _cases() -> list[Case]:
    out = [Case(v.id, v.stream, _cut_after_close(v.events), Limits(server=v.server)) for v in VECTORS]
    out.append(Case("frame-over-max-frame-bytes", frame(BINARY, b"f" * 101), [("error", 1009)],
                    Limits(max_frame=100)))
    out.append(Case("message-over-max-message-bytes",
                    frame(BINARY, b"m" * 100, fin=False) + frame(CONT, b"m" * 50), [("error", 1009)],
                    Limits(max_frame=100, max_message=120)))
    c1, c2 = deflate_messages("héllo wörld ".encode() * 30, b"\x01\x02" * 500)
    out.append(Case("compressed-text", frame(TEXT, c1, rsv=RSV1),
                    [("message", TEXT, "héllo wörld " * 30)], Limits(deflate=True)))
    out.append(Case("compressed-fragmented-with-ping-and-takeover",
                    frame(TEXT, c1[:5], rsv=RSV1, fin=False) + frame(PING, b"?") + frame(CONT, c1[5:])
                    + frame(BINARY, c2[:9], rsv=RSV1, fin=False) + frame(CONT, c2[9:]),
                    [("ping", b"?"), ("message", TEXT, "héllo wörld " * 30),
                     ("message", BINARY, b"\x01\x02" * 500)], Limits(deflate=True)))
    out.append(Case("uncompressed-message-with-deflate-negotiated", frame(BINARY, b"raw"),
                    [("message", BINARY, b"raw")], Limits(deflate=True)))
    out.append(Case("compressed-rsv1-on-continuation",
                    frame(TEXT, c1[:5], rsv=RSV1, fin=False) + frame(CONT, c1[5:], rsv=RSV1),
                    [("error", 1002)], Limits(deflate=True)))
    out.append(Case("compressed-rsv1-on-ping", frame(PING, b"x", rsv=RSV1), [("error", 1002)],
                    Limits(deflate=True)))
    out.append(Case("compressed-rsv2", frame(TEXT, c1, rsv=RSV1 | RSV2), [("error", 1002)],
                    Limits(deflate=True)))
    (bad_text,) = deflate_messages(b"ok \xed\xa0\x80 not ok")
    out.append(Case("compressed-invalid-utf8", frame(TEXT, bad_text, rsv=RSV1), [("error", 1007)],
                    Limits(deflate=True)))
    out.append(Case("compressed-corrupt", frame(BINARY, b"\xff\xff\xff\xff", rsv=RSV1),
                    [("error", 1007)], Limits(deflate=True)))
    (bomb,) = deflate_messages(b"\x00" * 100000)
    out.append(Case("compressed-over-max-message-bytes", frame(BINARY, bomb, rsv=RSV1),
                    [("error", 1009)], Limits(deflate=True, max_message=50000)))
    return out


CASES = _cases()


def _some_splits(n: int, seed: int) -> Iterator[list[int]]:
    rng = random.Random(seed)
    yield []
    if n > 1:
        yield list(range(1, n))
        for _ in range(4):
            yield sorted(rng.sample(range(1, n), min(n - 1, rng.randint(1, 8))))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
@pytest.mark.parametrize("reference", sorted(RUNNERS))
def test_references_agree_on_every_case(case: Case, reference: str) -> None:
    difference = DIFFERS.get((case.id, reference))
    expected_theirs = case.ours if difference is None else difference.theirs
    if difference is not None:
        assert difference.ours == case.ours, "the table's 'ours' must be what the case expects"
    for cuts in _some_splits(len(case.stream), seed=len(case.stream)):
        assert run_ours(case.stream, cuts, case.limits) == case.ours, cuts
        assert RUNNERS[reference](case.stream, cuts, case.limits) == expected_theirs, cuts


def test_every_difference_names_a_case() -> None:
    ids = {c.id for c in CASES}
    assert [d.case for d in DIFFERENCES if d.case not in ids] == []
    assert all(d.reason and d.reference in RUNNERS for d in DIFFERENCES)


# --- random streams: valid structure, random masks and fragmentation, one mutation -------------

def _random_message(rng: random.Random) -> tuple[int, bytes]:
    if rng.random() < 0.5:
        text = "".join(rng.choice(["a", "é", "€", "😀", " ", "ü"]) for _ in range(rng.randint(0, 40)))
        return TEXT, text.encode()
    return BINARY, rng.randbytes(rng.choice([0, 1, 7, 60, 125, 126, 300, 70000 if rng.random() < 0.02 else 9]))


def _random_control(rng: random.Random, key: Callable[[], bytes | None]) -> bytes:
    op = rng.choice([PING, PONG])
    return frame(op, rng.randbytes(rng.randint(0, 125)), mask=key())


def _random_stream(rng: random.Random, server: bool) -> tuple[bytes, str]:
    """A stream of messages cut into random fragments with control frames between them, masked
    with random keys, maybe ending with a close, and at most one mutation (named in the result)."""
    def key() -> bytes | None:
        return rng.randbytes(4) if server else None
    frames: list[bytes] = []
    mutation = rng.choice(["none", "none", "utf8", "rsv", "opcode", "close-code", "truncate",
                           "interleave", "mask"])
    for _ in range(rng.randint(1, 5)):
        op, data = _random_message(rng)
        if mutation == "utf8" and op == TEXT and rng.random() < 0.5:
            at = rng.randint(0, len(data))
            data = data[:at] + rng.choice([b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                                           b"\xe2\x82", b"\x80"]) + data[at:]
            mutation = "utf8-done"
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 3)))) if len(data) > 1 else []
        bounds = [0, *cuts, len(data)]
        for j, (a, b) in enumerate(zip(bounds, bounds[1:])):
            last = j == len(bounds) - 2
            frames.append(frame(op if j == 0 else CONT, data[a:b], fin=last, mask=key()))
            if rng.random() < 0.3:
                frames.append(_random_control(rng, key))
            if mutation == "interleave" and not last and rng.random() < 0.5:
                frames.append(frame(rng.choice([TEXT, BINARY]), b"x", mask=key()))
                mutation = "interleave-done"
    if rng.random() < 0.3:
        code = rng.choice([1000, 1001, 1003, 1008, 1011, 3000, 4999])
        if mutation == "close-code":
            code = rng.choice([0, 999, 1004, 1005, 1006, 1015, 2000, 5000])
        frames.append(frame(CLOSE, close_payload(code, "fin ✓".encode()), mask=key()))
    stream = bytearray(b"".join(frames))
    if mutation == "rsv":
        first = rng.randrange(len(frames))
        at = sum(len(f) for f in frames[:first])
        stream[at] |= rng.choice([0x40, 0x20, 0x10])
    elif mutation == "opcode":
        first = rng.randrange(len(frames))
        at = sum(len(f) for f in frames[:first])
        stream[at] = (stream[at] & 0xF0) | rng.choice([0x3, 0x7, 0xB, 0xF])
    elif mutation == "mask":
        first = rng.randrange(len(frames))
        at = sum(len(f) for f in frames[:first])
        stream[at + 1] ^= 0x80
    elif mutation == "truncate" and len(stream) > 2:
        del stream[rng.randrange(1, len(stream)):]
    return bytes(stream), mutation


def _agrees_with_websockets(ours: list[Event], theirs: list[Event]) -> bool:
    """Equal, or the ``utf8-checked-at-message-end`` difference: RFC 6455 §8.1 says to fail on
    invalid UTF-8 *when* it is found, so our 1007 can come before control frames that websockets
    still delivers (it decodes the message once its last frame is in); same code in the end."""
    if ours == theirs:
        return True
    if ours[-1:] != [("error", 1007)] or theirs[-1:] != [("error", 1007)]:
        return False
    head, extra = theirs[:len(ours) - 1], theirs[len(ours) - 1:-1]
    return head == ours[:-1] and all(ev[0] in ("ping", "pong") for ev in extra)


def test_random_streams_agree_with_both_references() -> None:
    rng = random.Random(6455)
    seen = set()
    for _ in range(600):
        server = rng.random() < 0.75
        stream, mutation = _random_stream(rng, server)
        seen.add(mutation)
        lim = Limits(server=server)
        cuts = sorted(rng.sample(range(1, len(stream)), min(len(stream) - 1, rng.randint(0, 6)))) if len(stream) > 1 else []
        ours = run_ours(stream, cuts, lim)
        assert run_ours(stream, [], lim) == ours, stream
        assert run_wsproto(stream, cuts, lim) == ours, (mutation, stream)
        assert _agrees_with_websockets(ours, run_websockets(stream, cuts, lim)), (mutation, stream)
    assert {"none", "utf8-done", "rsv", "opcode", "truncate", "mask"} <= seen


def test_compressed_random_messages_agree_with_both_references() -> None:
    rng = random.Random(7692)
    for _ in range(60):
        messages = [_random_message(rng) for _ in range(rng.randint(1, 4))]
        payloads = deflate_messages(*(data for _, data in messages))
        frames = []
        interleaved = False
        for (op, _), c in zip(messages, payloads):
            cut = rng.randint(0, len(c))
            if rng.random() < 0.4 or cut in (0, len(c)):
                frames.append(frame(op, c, rsv=RSV1, mask=rng.randbytes(4)))
            else:
                ping = rng.random() < 0.5
                interleaved |= ping
                frames.append(frame(op, c[:cut], rsv=RSV1, fin=False, mask=rng.randbytes(4))
                              + (frame(PING, b"", mask=rng.randbytes(4)) if ping else b"")
                              + frame(CONT, c[cut:], mask=rng.randbytes(4)))
        stream = b"".join(frames)
        lim = Limits(deflate=True)
        expected = [("message", op, data.decode() if op == TEXT else data) for op, data in messages]
        ours = [ev for ev in run_ours(stream, [], lim) if ev[0] == "message"]
        assert ours == expected
        for cuts in ([], sorted(rng.sample(range(1, len(stream)), min(len(stream) - 1, 5)))):
            mine = run_ours(stream, cuts, lim)
            if not interleaved:  # see the difference "compressed-fragmented-with-ping-and-takeover"
                assert run_wsproto(stream, cuts, lim) == mine
            assert run_websockets(stream, cuts, lim) == mine


# --- fail-fast: the byte on which invalid text is refused, against wsproto ------------------------

def _first_error_byte(run: Callable[[bytes, list[int], Limits], list[Event]], stream: bytes,
                      lim: Limits) -> int | None:
    """Fed a byte at a time: the index of the byte after which an error event first shows."""
    cuts = list(range(1, len(stream)))
    # The runners stop at the first error, so bisect on prefixes instead of rerunning per byte.
    lo, hi = 0, len(stream)
    if not any(ev[0] == "error" for ev in run(stream, cuts, lim)):
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if any(ev[0] == "error" for ev in run(stream[:mid + 1], cuts[:mid], lim)):
            hi = mid
        else:
            lo = mid + 1
    return lo


def test_invalid_text_fails_on_the_same_byte_as_wsproto() -> None:
    """wsproto feeds each piece of a data frame to CPython's incremental UTF-8 decoder, which
    also fails on the first byte no valid text continues, with one exception, listed below."""
    rng = random.Random(3629)
    bad = [b"\xff", b"\xc0\x80", b"\xc1", b"\xe0\x80", b"\xe0\x9f\xbf", b"\xf0\x8f", b"\xf4\x90",
           b"\xf5", b"\x80", b"\xe2\x82A", b"\xf0\x9f\x98A", b"\xed\xa0\x80", b"\xed\xbf\xbf"]
    lim = Limits()
    for seq in bad:
        for _ in range(3):
            prefix = "".join(rng.choice(["a", "é", "€", "😀"]) for _ in range(rng.randint(0, 6))).encode()
            text = prefix + seq + b"tail"
            split = rng.randint(0, len(text))
            stream = frame(TEXT, text[:split], fin=False, mask=KEY) + frame(CONT, text[split:], mask=KEY)
            ours = _first_error_byte(run_ours, stream, lim)
            theirs = _first_error_byte(run_wsproto, stream, lim)
            assert ours is not None and theirs is not None
            if seq.startswith(b"\xed") and seq[1] >= 0xA0:
                # "surrogate-rejected-on-its-second-byte": RFC 3629 §4 allows only 80-9F after
                # ED (U+D800-DFFF are not characters), so ED A0 is refused on A0; CPython's
                # decoder waits for the third byte.
                def at(j: int) -> int:  # where text[j] is in the stream (two 6-byte headers)
                    return 6 + j if j < split else 6 + split + 6 + (j - split)
                assert (ours, theirs) == (at(len(prefix) + 1), at(len(prefix) + 2)), (seq, split)
            else:
                assert ours == theirs, (seq, split, ours, theirs)
