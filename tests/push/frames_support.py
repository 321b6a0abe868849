"""Helpers shared by the push codec tests: random valid frames of every kind, the splits a
stream is fed in, and decoding a stream in given pieces.

Frames are drawn from the rules of docs/push-protocol.md §4 (who sends each kind, its id, name
and payload forms), written out here again rather than read from the codec under test.
"""
from __future__ import annotations

import random
from collections.abc import Iterator

from cyserve._core.push.frames import (
    FLAG_ACK_REQUESTED, FRAMING_BINARY, FRAMING_JSON_LINES, FRAMING_WS_BINARY, FRAMING_WS_TEXT,
    KIND_ACK, KIND_CALL, KIND_CLOSE, KIND_ERROR, KIND_GAP, KIND_HELLO, KIND_PING, KIND_PONG,
    KIND_PUSH, KIND_REFUSE, KIND_REPLY, KIND_WELCOME, Frame, FrameDecoder, Violation, encode,
)

U64_MAX = (1 << 64) - 1
MIB = 1 << 20

TCP_FRAMINGS = {"binary": FRAMING_BINARY, "json-lines": FRAMING_JSON_LINES}
ALL_FRAMINGS = {**TCP_FRAMINGS, "ws-binary": FRAMING_WS_BINARY, "ws-text": FRAMING_WS_TEXT}
JSON_FRAMINGS = (FRAMING_JSON_LINES, FRAMING_WS_TEXT)

# docs §4: the kinds each side sends.
FROM_CLIENT = (KIND_HELLO, KIND_CALL, KIND_ACK, KIND_PING, KIND_PONG, KIND_CLOSE)
FROM_SERVER = (KIND_WELCOME, KIND_REFUSE, KIND_REPLY, KIND_ERROR, KIND_PUSH, KIND_GAP, KIND_PING,
               KIND_PONG, KIND_CLOSE)

_NAME_CHARS = "abcxyz019_.:-/ éü中文🙂{}\"\\"
_TEXT_CHARS = _NAME_CHARS + "\n\r\t\x00\x1f"


def random_id(rng: random.Random, positive: bool) -> int:
    return rng.choice([1, 2, 9, 10, 127, 128, 255, 256, 65535, 1 << 32, 1 << 53, U64_MAX - 1,
                       U64_MAX, rng.randrange(1, U64_MAX)]) if positive or rng.random() < 0.8 \
        else 0


def random_name(rng: random.Random, required: bool) -> str:
    """A valid name (docs §3.3): <= 255 UTF-8 bytes, no control characters."""
    while True:
        n = rng.choice([1, 1, 2, 5, 12, 40, 120]) if required or rng.random() < 0.7 else 0
        name = "".join(rng.choice(_NAME_CHARS) for _ in range(n))
        if len(name.encode()) <= 255:
            return name


def random_json(rng: random.Random, depth: int = 0) -> object:
    pick = rng.randrange(9 if depth < 3 else 6)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice([True, False])
    if pick == 2:
        return rng.choice([0, -1, 1, 1 << 40, -(1 << 63), U64_MAX])
    if pick == 3:
        return rng.choice([0.5, -2.25, 1e300, 3.141592653589793])
    if pick in (4, 5):
        return "".join(rng.choice(_TEXT_CHARS) for _ in range(rng.randrange(0, 30)))
    if pick == 6:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {random_name(rng, True): random_json(rng, depth + 1) for _ in range(rng.randrange(0, 4))}


def random_text(rng: random.Random) -> str:
    return "".join(rng.choice(_TEXT_CHARS) for _ in range(rng.randrange(0, 60)))


def random_frame(rng: random.Random, kind: int, framing: int) -> Frame:
    """A valid frame of ``kind`` as the decoder returns it in ``framing``."""
    json_data = framing in JSON_FRAMINGS
    if kind in (KIND_HELLO, KIND_WELCOME):
        obj = {"codec": rng.choice(["json", "bytes", "xml"]), "credentials": random_json(rng)}
        if rng.random() < 0.5:
            obj["resume_token"] = "t" * 43
            obj["last_seq"] = rng.randrange(0, 1000)
        return Frame(kind, 0, "cyserve-push/1", obj)
    if kind in (KIND_REFUSE, KIND_CLOSE):
        return Frame(kind, 0, random_name(rng, True), random_text(rng))
    if kind == KIND_ERROR:
        return Frame(kind, random_id(rng, False), random_name(rng, True), random_text(rng))
    if kind in (KIND_CALL, KIND_REPLY, KIND_PUSH):
        if json_data:
            data: object = random_json(rng)
        else:
            data = bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 7, 100, 300])))
        name = ""
        if kind == KIND_CALL:
            name = random_name(rng, True)
        elif kind == KIND_PUSH:
            name = random_name(rng, False)
        flags = FLAG_ACK_REQUESTED if kind == KIND_PUSH and rng.random() < 0.5 else 0
        return Frame(kind, random_id(rng, True), name, data, flags)
    if kind == KIND_GAP:
        first = random_id(rng, True)
        return Frame(kind, first, "", rng.choice([first, min(U64_MAX, first + rng.randrange(5))]))
    if kind == KIND_ACK:
        return Frame(kind, random_id(rng, True))
    return Frame(kind, random_id(rng, False))      # PING, PONG


def encoded(frame: Frame, framing: int) -> bytes:
    return encode(frame.kind, frame.id, frame.name, frame.payload, frame.flags, framing)


def random_stream(rng: random.Random, count: int, framing: int,
                  client_side: bool) -> tuple[list[Frame], bytes]:
    """``count`` random frames one side sends (``client_side``: the client's), and their bytes."""
    kinds = FROM_CLIENT if client_side else FROM_SERVER
    frames = [random_frame(rng, rng.choice(kinds), framing) for _ in range(count)]
    return frames, b"".join(encoded(f, framing) for f in frames)


def splits(n: int, rng: random.Random, every_limit: int = 4000,
           random_count: int = 20) -> Iterator[list[int]]:
    """Cut points (sorted, inside 1..n-1): whole, a byte at a time, every single cut (or 300
    sampled ones past ``every_limit``), and random multi-cuts."""
    yield []
    if n < 2:
        return
    yield list(range(1, n))
    singles = range(1, n) if n <= every_limit else sorted(rng.sample(range(1, n), 300))
    for k in singles:
        yield [k]
    for _ in range(random_count):
        yield sorted(rng.sample(range(1, n), min(n - 1, rng.randint(2, 40))))


def decode_split(decoder: FrameDecoder, stream: bytes, cuts: list[int]) -> list[Frame | Violation]:
    """Feed ``stream`` in the pieces ``cuts`` delimit, up to the first violation."""
    out: list[Frame | Violation] = []
    bounds = [0, *cuts, len(stream)]
    for start, end in zip(bounds, bounds[1:]):
        got = decoder.feed(stream[start:end])
        out.extend(got)
        if got and isinstance(got[-1], Violation):
            break
    return out
