"""docs/push-protocol.md and the codec say the same thing: every example in the document decodes
and re-encodes to its exact bytes, the table of kinds matches the codec's kinds, names and
senders, and the registries of codes (REFUSE, ERROR, CLOSE) and codecs are the codec's constants.
"""
from __future__ import annotations

import pathlib
import re

import pytest

from cyserve._core.push import frames
from cyserve._core.push.frames import (
    FRAMING_BINARY, FRAMING_JSON_LINES, FRAMING_WS_BINARY, KIND_ACK, KIND_CALL, KIND_CLOSE,
    KIND_GAP, KIND_PING, KIND_PUSH, MAX_FRAME_LIMIT, MIN_FRAME_LIMIT, Frame, FrameDecoder,
    Violation, encode,
)

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "push-protocol.md"
TEXT = DOC.read_text(encoding="utf-8")


def section(number: str) -> str:
    """The text of section ``number`` (e.g. "3.1" or "9"), up to the next heading of its level
    or above."""
    level = "###" if "." in number else "##"
    match = re.search(rf"^{level} {re.escape(number)}[. ].*?$(.*?)(?=^#{{2,{len(level)}}} )",
                      TEXT + "\n## end", re.S | re.M)
    assert match, f"no section {number}"
    return match.group(1)


def table(text: str) -> list[list[str]]:
    """The rows of the first Markdown table in ``text`` (header and rule dropped)."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def codes(text: str) -> set[str]:
    found = [re.fullmatch(r"`([a-z_]+)`", row[0]) for row in table(text)]
    assert all(found), text
    return {match.group(1) for match in found if match}


def decode_either(data: bytes, framing: int) -> Frame:
    """Decoded by whichever side may receive it (PING, PONG, CLOSE: both must agree)."""
    results: list[Frame] = []
    for client in (False, True):
        got = FrameDecoder(1 << 20, framing, client=client).feed(data)
        if len(got) == 1 and isinstance(got[0], Frame):
            results.append(got[0])
    assert results and all(r == results[0] for r in results), (data, results)
    return results[0]


BINARY_EXAMPLES = {
    "PING id 7": Frame(KIND_PING, 7),
    "ACK seq 42": Frame(KIND_ACK, 42),
    "GAP 5..9": Frame(KIND_GAP, 5, "", 9),
    "PUSH seq 42, group `room:a`, ACK_REQUESTED, JSON codec `{\"x\":1}`":
        Frame(KIND_PUSH, 42, "room:a", b'{"x":1}', 1),
    "the same PUSH as a WebSocket binary message": Frame(KIND_PUSH, 42, "room:a", b'{"x":1}', 1),
    "CALL id 1 `chat.send`, `{\"room\":\"a\",\"text\":\"hi\"}`":
        Frame(KIND_CALL, 1, "chat.send", b'{"room":"a","text":"hi"}'),
    "CLOSE `idle_timeout`, \"no frame for 50 s\"":
        Frame(KIND_CLOSE, 0, "idle_timeout", "no frame for 50 s"),
}


def test_binary_examples_are_the_codecs_bytes() -> None:
    rows = {row[0]: bytes.fromhex(row[1].strip("`")) for row in table(section("3.1"))}
    assert set(rows) == set(BINARY_EXAMPLES)
    for label, frame in BINARY_EXAMPLES.items():
        framing = FRAMING_WS_BINARY if "WebSocket" in label else FRAMING_BINARY
        data = rows[label]
        assert decode_either(data, framing) == frame, label
        assert encode(frame.kind, frame.id, frame.name, frame.payload, frame.flags,
                      framing) == data, label


def _json_lines(text: str) -> list[bytes]:
    blocks = re.findall(r"```\n(.*?)```", text, re.S)
    return [line.encode() for block in blocks for line in block.splitlines()]


def test_json_examples_decode_and_are_in_canonical_form() -> None:
    lines = _json_lines(section("3.2"))
    assert len(lines) == 7
    for line in lines:
        frame = decode_either(line + b"\n", FRAMING_JSON_LINES)
        assert encode(frame.kind, frame.id, frame.name, frame.payload, frame.flags,
                      FRAMING_JSON_LINES) == line + b"\n", line


def test_nc_session_lines_decode_and_the_servers_are_canonical() -> None:
    lines = [line for line in _json_lines(section("14")) if line[:2] in (b"> ", b"< ")]
    assert len(lines) == 11
    for line in lines:
        typed, data = line[:1] == b">", line[2:]
        [frame] = FrameDecoder(1 << 20, FRAMING_JSON_LINES, client=not typed).feed(data + b"\n")
        assert isinstance(frame, Frame), line
        if not typed:
            assert encode(frame.kind, frame.id, frame.name, frame.payload, frame.flags,
                          FRAMING_JSON_LINES) == data + b"\n", line


def test_table_of_kinds_matches_the_codec() -> None:
    rows = table(section("4"))
    assert [int(row[0]) for row in rows] == list(range(1, frames.KIND_MAX + 1))
    assert [row[1].strip("`") for row in rows] == list(frames.KIND_NAMES[1:])
    for row in rows:
        kind, sent_by = int(row[0]), row[2]
        ping = encode(KIND_PING, 1)
        for client, side in ((False, "client"), (True, "server")):
            # A frame of the kind with an otherwise impossible header: refused for its sender
            # alone when that side may not send it, for another rule when it may.
            data = bytes([0, 0, 0, 11, kind]) + bytes(10)
            got = FrameDecoder(1 << 20, FRAMING_BINARY, client=client).feed(data + ping)
            refused_for_sender = (isinstance(got[0], Violation)
                                  and f"cannot come from a {side}" in got[0].reason)
            assert refused_for_sender == (sent_by not in (side, "both")), (row, side, got)


@pytest.mark.parametrize("number, constant", [("6.4", "REFUSE_CODES"), ("7.2", "ERROR_CODES"),
                                              ("9", "CLOSE_CODES")])
def test_code_registries_match_the_codec(number: str, constant: str) -> None:
    assert codes(section(number)) == getattr(frames, constant)


def test_codecs_and_version_match() -> None:
    assert set(re.findall(r"^- `([a-z]+)`:", section("6.3"), re.M)) == frames.CODECS
    assert f"`{frames.VERSION}`" in section("6.1")
    assert "from 64 bytes to 1 GiB" in section("11")
    assert (MIN_FRAME_LIMIT, MAX_FRAME_LIMIT) == (64, 1 << 30)
