"""Differential fuzz of the push codec against a reference model written from the document.

cyserve-push/1 has no third-party implementation to compare with, so the reference is
``model_decode`` below: a plain transcription of docs/push-protocol.md §3-§4 and §11 (the frame
layout, the JSON keys, the table of kinds, the name rules), with the stdlib ``json`` module as
the JSON parser.  Both decoders get the same inputs — random fields assembled into frames (valid
and not), and valid streams with their bytes mutated — and must agree on every frame and on the
verdict (``protocol_error``, ``too_large``, or none yet).  The codec is also fed each input in
random pieces, which must not change anything (the invariant h11's fuzz test states: any bytes
either decode or fail the same way, however they are split).

The one place the model follows orjson rather than the RFC: orjson reads an integer beyond 64
bits as a float (RFC 8259 §6 leaves the range to implementations), which no id accepts.
"""
from __future__ import annotations

import json
import math
import random
from typing import Any

import orjson
import pytest

from cyserve._core.push.frames import (
    FRAMING_BINARY, FRAMING_JSON_LINES, FRAMING_WS_BINARY, FRAMING_WS_TEXT, Frame, FrameDecoder,
    Violation,
)

from tests.push.frames_support import (
    ALL_FRAMINGS, U64_MAX, decode_split, encoded, random_json, random_stream,
)

MAX_FRAME = 512

# docs §4, one row per kind: t, who sends it, ACK_REQUESTED allowed, id rule, name rule, payload.
C, S = "client", "server"
KINDS: dict[int, tuple[str, set[str], bool, str, str, str]] = {
    1: ("hello", {C}, False, "zero", "required", "object"),
    2: ("welcome", {S}, False, "zero", "required", "object"),
    3: ("refuse", {S}, False, "zero", "required", "text"),
    4: ("call", {C}, False, "positive", "required", "data"),
    5: ("reply", {S}, False, "positive", "empty", "data"),
    6: ("error", {S}, False, "any", "required", "text"),
    7: ("push", {S}, True, "positive", "any", "data"),
    8: ("ack", {C}, False, "positive", "empty", "none"),
    9: ("gap", {S}, False, "positive", "empty", "gap"),
    10: ("ping", {C, S}, False, "any", "empty", "none"),
    11: ("pong", {C, S}, False, "any", "empty", "none"),
    12: ("close", {C, S}, False, "zero", "required", "text"),
}
BY_T = {row[0]: kind for kind, row in KINDS.items()}


class Bad(Exception):
    """The model's verdict: the input breaks the protocol."""

    def __init__(self, code: str = "protocol_error") -> None:
        super().__init__(code)
        self.code = code


def id_ok(rule: str, value: int) -> bool:
    return {"zero": value == 0, "positive": value >= 1, "any": True}[rule]


def name_ok(rule: str, name: str) -> bool:
    """docs §3.3 and the kind's rule."""
    raw = name.encode("utf-8")
    if len(raw) > 255 or any(ch < 0x20 or ch == 0x7F for ch in raw):
        return False
    return {"empty": not raw, "required": bool(raw), "any": True}[rule]


# --- binary (docs §3.1) ----------------------------------------------------------------------

def model_binary_frame(body: bytes, sender: str) -> Frame:
    if len(body) < 11:
        raise Bad()
    kind, flags, id_, n = body[0], body[1], int.from_bytes(body[2:10], "big"), body[10]
    if kind not in KINDS:
        raise Bad()
    _, senders, ack_ok, id_rule, name_rule, payload_rule = KINDS[kind]
    if sender not in senders or flags & ~(1 if ack_ok else 0) or not id_ok(id_rule, id_):
        raise Bad()
    if 11 + n > len(body):
        raise Bad()
    try:
        name = body[11:11 + n].decode("utf-8")
    except UnicodeDecodeError:
        raise Bad() from None
    if not name_ok(name_rule, name):
        raise Bad()
    raw = body[11 + n:]
    payload: object
    if payload_rule == "data":
        payload = raw
    elif payload_rule == "none":
        if raw:
            raise Bad()
        payload = None
    elif payload_rule == "text":
        try:
            payload = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Bad() from None
    elif payload_rule == "gap":
        if len(raw) != 8 or int.from_bytes(raw, "big") < id_:
            raise Bad()
        payload = int.from_bytes(raw, "big")
    else:
        payload = strict_json(raw)
        if type(payload) is not dict:
            raise Bad()
    return Frame(kind, id_, name, payload, flags)


def model_binary_stream(stream: bytes, sender: str) -> tuple[list[Frame], str | None]:
    frames: list[Frame] = []
    at = 0
    try:
        while len(stream) - at >= 4:
            length = int.from_bytes(stream[at:at + 4], "big")
            if length > MAX_FRAME:
                raise Bad("too_large")
            if length < 11:
                raise Bad()
            if len(stream) - at - 4 < length:
                break
            frames.append(model_binary_frame(stream[at + 4:at + 4 + length], sender))
            at += 4 + length
    except Bad as bad:
        return frames, bad.code
    return frames, None


# --- JSON (docs §3.2) ----------------------------------------------------------------------

def _no_surrogates(value: Any) -> None:
    if isinstance(value, str):
        if any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
            raise Bad()
    elif isinstance(value, list):
        for item in value:
            _no_surrogates(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_surrogates(key)
            _no_surrogates(item)


def _int(text: str) -> int | float:
    value = int(text)
    # orjson: an integer beyond 64 bits is read as a float.
    return value if -(1 << 63) <= value <= U64_MAX else float(value)


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise Bad()
    return value


def _constant(text: str) -> None:
    raise Bad()         # NaN, Infinity: not JSON (RFC 8259 §6)


def strict_json(raw: bytes) -> Any:
    try:
        value = json.loads(raw.decode("utf-8"), parse_int=_int, parse_float=_float,
                           parse_constant=_constant)
    except (UnicodeDecodeError, ValueError):
        raise Bad() from None
    _no_surrogates(value)
    return value


def model_json_frame(raw: bytes, sender: str) -> Frame:
    obj = strict_json(raw)
    if type(obj) is not dict or type(obj.get("t")) is not str or obj["t"] not in BY_T:
        raise Bad()
    if set(obj) - {"t", "id", "name", "data", "ack"}:
        raise Bad()
    kind = BY_T[obj["t"]]
    _, senders, ack_ok, id_rule, name_rule, payload_rule = KINDS[kind]
    if sender not in senders:
        raise Bad()
    id_ = obj.get("id", 0)
    if type(id_) is not int or not 0 <= id_ <= U64_MAX or not id_ok(id_rule, id_):
        raise Bad()
    name = obj.get("name", "")
    if type(name) is not str or not name_ok(name_rule, name):
        raise Bad()
    flags = 0
    if "ack" in obj:
        if not ack_ok or type(obj["ack"]) is not bool:
            raise Bad()
        flags = 1 if obj["ack"] else 0
    data = obj.get("data")
    if payload_rule == "object" and type(data) is not dict:
        raise Bad()
    if payload_rule == "text":
        data = obj.get("data", "")
        if type(data) is not str:
            raise Bad()
    if payload_rule == "none" and data is not None:
        raise Bad()
    if payload_rule == "gap" and (type(data) is not int or not id_ <= data <= U64_MAX):
        raise Bad()
    return Frame(kind, id_, name, data, flags)


def model_json_lines(stream: bytes, sender: str) -> tuple[list[Frame], str | None]:
    frames: list[Frame] = []
    *lines, rest = stream.split(b"\n")
    try:
        for line in lines:
            if len(line) > MAX_FRAME:
                raise Bad()
            if line.strip(b" \t\r"):
                frames.append(model_json_frame(line, sender))
        if len(rest) > MAX_FRAME:
            raise Bad()
    except Bad as bad:
        return frames, bad.code
    return frames, None


def model_decode(data: bytes, framing: int, sender: str) -> tuple[list[Frame], str | None]:
    if framing == FRAMING_BINARY:
        return model_binary_stream(data, sender)
    if framing == FRAMING_JSON_LINES:
        return model_json_lines(data, sender)
    if len(data) > MAX_FRAME:
        return [], "too_large"
    try:
        if framing == FRAMING_WS_BINARY:
            return [model_binary_frame(data, sender)], None
        return [model_json_frame(data, sender)], None
    except Bad as bad:
        return [], bad.code


def codec_decode(data: bytes, framing: int, sender: str,
                 cuts: list[int]) -> tuple[list[Frame], str | None]:
    decoder = FrameDecoder(MAX_FRAME, framing, client=sender == S)
    if framing in (FRAMING_WS_BINARY, FRAMING_WS_TEXT):
        got = decoder.feed(data)
    else:
        got = decode_split(decoder, data, cuts)
    if got and isinstance(got[-1], Violation):
        return got[:-1], got[-1].code  # type: ignore[return-value]
    return got, None  # type: ignore[return-value]


# --- inputs --------------------------------------------------------------------------------

_NAMES = [b"", b"x", b"chat.send", b"room:a", "é中🙂".encode(), b"a\nb", b"\x00", b"\x7f",
          b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"n" * 255, b"\xe4\xb8"]
_PAYLOADS = [b"", b"x", b"{}", b'{"codec":"json"}', b"[1]", b'"s"', b"\x00" * 7,
             (5).to_bytes(8, "big"), (U64_MAX).to_bytes(8, "big"), b"\xff\xfe", "é".encode(),
             b"{oops", b"\x00" * 9, b"null"]


_VALID_IDS = {"zero": [0], "positive": [1, 5, 6, U64_MAX], "any": [0, 1, U64_MAX]}
_VALID_NAMES = {"empty": [b""], "required": [b"x", b"chat.send", "é中🙂".encode(), b"n" * 255],
                "any": [b"", b"room:a", "é".encode()]}
_VALID_PAYLOADS = {"object": [b"{}", b'{"codec":"json"}'], "text": [b"", b"bye", "é".encode()],
                   "data": [b"", b"x", b"\x00\n{"], "none": [b""],
                   "gap": [(6).to_bytes(8, "big"), (U64_MAX).to_bytes(8, "big")]}


def random_binary_body(rng: random.Random) -> bytes:
    """A frame body (after the prefix): a valid frame of a random kind, often with one field
    replaced by a random (possibly invalid) value."""
    kind = rng.randrange(1, 13)
    _, _, ack_ok, id_rule, name_rule, payload_rule = KINDS[kind]
    flags = rng.choice([0, 1]) if ack_ok else 0
    id_ = rng.choice(_VALID_IDS[id_rule])
    name = rng.choice(_VALID_NAMES[name_rule])
    payload = rng.choice(_VALID_PAYLOADS[payload_rule])
    if payload_rule == "gap":
        id_ = min(id_, int.from_bytes(payload, "big"))
    n = len(name)
    field = rng.randrange(8)
    if field == 0:
        kind = rng.choice([0, 13, 255, rng.randrange(1, 13)])
    elif field == 1:
        flags = rng.choice([0, 1, 2, 0x80])
    elif field == 2:
        id_ = rng.choice([0, 1, 5, 6, U64_MAX])
    elif field == 3:
        name = rng.choice(_NAMES)
        n = len(name)
    elif field == 4:
        n = rng.randrange(256)
    elif field == 5:
        payload = rng.choice(_PAYLOADS)
    return (bytes([kind, flags]) + id_.to_bytes(8, "big") + bytes([n]) + name + payload)


_JSON_VALUES: list[object] = [None, True, False, 0, 1, 5, -1, U64_MAX, 1.0, "", "x", "1", "a\nb",
                              "\x00", "n" * 256, [], {}, {"codec": "json"}, [1]]
_VALID_JSON_DATA: dict[str, list[object]] = {
    "object": [{}, {"codec": "json"}], "text": ["", "bye", "é"], "data": [None, 1, "x", [1, {}]],
    "none": [None], "gap": [6, U64_MAX]}


def random_json_object(rng: random.Random) -> dict[str, object]:
    """A JSON frame: a valid one of a random kind, often with one key changed, added or
    removed."""
    kind = rng.randrange(1, 13)
    t, _, ack_ok, id_rule, name_rule, payload_rule = KINDS[kind]
    obj: dict[str, object] = {"t": t}
    if id_rule != "zero" or rng.random() < 0.2:
        obj["id"] = rng.choice(_VALID_IDS[id_rule])
    if name_rule != "empty" or rng.random() < 0.2:
        obj["name"] = rng.choice(_VALID_NAMES[name_rule]).decode()
    if payload_rule != "none" or rng.random() < 0.2:
        obj["data"] = rng.choice(_VALID_JSON_DATA[payload_rule])
        if payload_rule == "data" and rng.random() < 0.3:
            obj["data"] = random_json(rng)
    if payload_rule == "gap":
        first, last = obj["id"], obj["data"]
        assert isinstance(first, int) and isinstance(last, int)
        obj["id"] = min(first, last)
    if ack_ok and rng.random() < 0.5:
        obj["ack"] = rng.choice([True, False])
    change = rng.randrange(8)
    if change < 5:
        key = rng.choice(["t", "id", "name", "data", "ack"])
        obj[key] = rng.choice(_JSON_VALUES + list(BY_T) + ["PING", "shout"])
    elif change == 5:
        obj.pop(rng.choice(["t", "id", "name", "data", "ack"]), None)
    elif change == 6:
        obj["flags"] = 1
    return obj


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One to three byte-level mutations."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(6)
        at = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(at, len(buf) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[min(at, len(buf) - 1)] = rng.choice([0x00, 0x0A, 0x0D, 0x20, 0x22, 0x5C, 0x7B,
                                                     0x7D, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        elif op == 2:
            del buf[at:at + rng.randint(1, 8)]
        elif op == 3:
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 4:
            end = min(len(buf), at + rng.randint(1, 16))
            buf[at:at] = buf[at:end]
        else:
            del buf[at:]
    return bytes(buf)


def random_cuts(rng: random.Random, n: int) -> list[int]:
    if n < 2:
        return []
    return sorted(rng.sample(range(1, n), min(n - 1, rng.randrange(1, 10))))


def check(data: bytes, framing: int, sender: str, rng: random.Random) -> tuple[list[Frame],
                                                                                str | None]:
    expected = model_decode(data, framing, sender)
    assert codec_decode(data, framing, sender, []) == expected, data
    assert codec_decode(data, framing, sender, random_cuts(rng, len(data))) == expected, data
    return expected


# --- the tests ---------------------------------------------------------------------------------

def _prefixed(body: bytes, framing: int) -> bytes:
    return len(body).to_bytes(4, "big") + body if framing == FRAMING_BINARY else body


@pytest.mark.parametrize("framing", [FRAMING_BINARY, FRAMING_WS_BINARY],
                         ids=["binary", "ws-binary"])
def test_random_field_binary_frames_agree_with_the_model(framing: int) -> None:
    rng = random.Random(framing)
    verdicts: set[str | None] = set()
    frames_seen = 0
    for _ in range(2500):
        sender = rng.choice([C, S])
        count = rng.randint(1, 4) if framing == FRAMING_BINARY else 1
        data = b"".join(_prefixed(random_binary_body(rng), framing) for _ in range(count))
        frames, verdict = check(data, framing, sender, rng)
        verdicts.add(verdict)
        frames_seen += len(frames)
    # The inputs reached both sides of every decision.
    assert verdicts >= {None, "protocol_error"} and frames_seen > 500


@pytest.mark.parametrize("framing", [FRAMING_JSON_LINES, FRAMING_WS_TEXT],
                         ids=["json-lines", "ws-text"])
def test_random_field_json_frames_agree_with_the_model(framing: int) -> None:
    rng = random.Random(framing)
    verdicts: set[str | None] = set()
    frames_seen = 0
    for _ in range(2500):
        sender = rng.choice([C, S])
        count = rng.randint(1, 4) if framing == FRAMING_JSON_LINES else 1
        lines = [orjson.dumps(random_json_object(rng)) for _ in range(count)]
        data = b"\n".join(lines) + (b"\n" if framing == FRAMING_JSON_LINES else b"")
        frames, verdict = check(data, framing, sender, rng)
        verdicts.add(verdict)
        frames_seen += len(frames)
    assert verdicts >= {None, "protocol_error"} and frames_seen > 300


@pytest.mark.parametrize("framing", ALL_FRAMINGS.values(), ids=ALL_FRAMINGS.keys())
def test_mutated_valid_streams_agree_with_the_model(framing: int) -> None:
    rng = random.Random(100 + framing)
    tcp = framing in (FRAMING_BINARY, FRAMING_JSON_LINES)
    verdicts: set[str | None] = set()
    for _ in range(1500):
        client_side = rng.random() < 0.5
        _, stream = random_stream(rng, rng.randint(1, 4) if tcp else 1, framing, client_side)
        if len(stream) > MAX_FRAME and not tcp:
            continue
        sender = C if client_side else S
        _, verdict = check(mutate(rng, stream), framing, sender, rng)
        verdicts.add(verdict)
    assert verdicts >= {None, "protocol_error"}
    if framing == FRAMING_BINARY:
        assert "too_large" in verdicts


@pytest.mark.parametrize("framing", ALL_FRAMINGS.values(), ids=ALL_FRAMINGS.keys())
def test_random_bytes_never_raise(framing: int) -> None:
    rng = random.Random(200 + framing)
    for _ in range(1000):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
        check(data, framing, rng.choice([C, S]), rng)


def test_valid_streams_agree_with_the_model_unmutated() -> None:
    """The model accepts what the encoder makes (it is not rejecting everything)."""
    rng = random.Random(5)
    for framing in ALL_FRAMINGS.values():
        for client_side in (True, False):
            frames, stream = random_stream(rng, 1, framing, client_side)
            if len(stream) > MAX_FRAME:
                continue
            assert model_decode(stream, framing, C if client_side else S) == (frames, None)
            assert encoded(frames[0], framing) == stream
