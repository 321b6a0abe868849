"""The hub's session bookkeeping without sockets (``cyserve.push.session``): sequence numbers and
the bounded history (docs/push-protocol.md §8.1, §8.4), acks (§8.2), the export a handover
carries, the envelope format between hubs, and a message's templates (§12) checked against the
frame codec's own encoder.
"""
from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from cyserve._core.push.frames import (
    FLAG_ACK_REQUESTED, FRAMING_BINARY, FRAMING_JSON_LINES, FRAMING_WS_BINARY, FRAMING_WS_TEXT,
    KIND_PUSH, encode,
)
from cyserve.push.codecs import BYTES, JSON, XML, pack
from cyserve.push.session import (
    Gap, Message, Session, envelope, open_envelope, pack_fields, template_key, unpack_fields,
)


def message(value: Any, name: str = "g", mid: bytes = b"") -> Message:
    return Message(name, pack(value), 0, mid)


def numbers(session: Session) -> list[int]:
    """The numbers the history holds, entry by entry."""
    seq = session.hist_first
    held = []
    for entry in session.history or ():
        held.extend(range(seq, seq + entry.span))
        seq += entry.span
    assert seq == session.next_seq
    return held


def test_numbers_are_contiguous_and_the_history_is_bounded_by_count_and_bytes() -> None:
    session = Session("c", None)
    assert session.record(message(1), 3, 10_000) == 1
    assert session.record(Gap(4), 3, 10_000) == 2
    assert session.record(message(2), 3, 10_000) == 6
    assert (session.next_seq, numbers(session)) == (7, [1, 2, 3, 4, 5, 6])
    session.record(message(3), 3, 10_000)
    # Three entries at most: the oldest went, and with it its number.
    assert numbers(session) == [2, 3, 4, 5, 6, 7] and session.hist_first == 2
    big = message("x" * 100)
    session = Session("c", None)
    for _ in range(5):
        session.record(big, 100, 2 * big.size + 1)
    assert numbers(session) == [4, 5] and session.hist_bytes == 2 * big.size
    # No history at all: the numbers still count.
    session = Session("c", None)
    session.record(message(1), 0, 0)
    assert (session.next_seq, session.hist_first, session.history) == (2, 2, None)


def test_acks_free_the_history_and_resolve_their_waiters(run: Any) -> None:
    async def main() -> None:
        session = Session("c", None)
        for n in range(5):
            session.record(message(n), 100, 1 << 20)
        loop = asyncio.get_running_loop()
        waiters = {seq: loop.create_future() for seq in (2, 4)}
        session.waiters = dict(waiters)
        assert session.ack(6) is False            # never issued: a protocol_error
        assert session.ack(2) is True
        assert numbers(session) == [3, 4, 5] and session.acked == 2
        assert waiters[2].result() is True and not waiters[4].done()
        assert session.ack(1) is True and session.acked == 2   # below an earlier one: ignored
        session.fail_waiters()
        assert waiters[4].result() is False
    run(main)


def test_an_export_restores_the_same_session_within_the_new_bounds() -> None:
    session = Session("cid", {"user": "ann", "roles": ["a"]})
    session.groups = {"room", "é"}
    for n in range(4):
        session.record(message(n, "room", b"m%d" % n), 100, 1 << 20)
    session.record(Gap(3), 100, 1 << 20)
    session.record(Message("", pack(b"\x00raw"), FLAG_ACK_REQUESTED), 100, 1 << 20)
    session.ack(1)
    data = session.export()
    copy = Session.restore(data, 100, 1 << 20)
    assert (copy.client_id, copy.identity, copy.groups) == ("cid", session.identity, session.groups)
    assert (copy.next_seq, copy.acked, copy.hist_first) == (9, 1, 2)
    assert numbers(copy) == numbers(session) and copy.mids() == {b"m1", b"m2", b"m3"}
    last = copy.history[-1]   # type: ignore[index]
    assert isinstance(last, Message) and (last.flags, last.value()) == (FLAG_ACK_REQUESTED, b"\x00raw")
    small = Session.restore(data, 2, 1 << 20)
    assert numbers(small) == [5, 6, 7, 8] and small.next_seq == 9
    session.next_seq += 1
    mismatched = session.export()   # numbers its history does not account for
    for broken in (data[:-1], data + b"\x00", pack_fields([b"x"]), mismatched):
        with pytest.raises(ValueError):
            Session.restore(broken, 100, 1 << 20)


def test_envelopes_and_fields_round_trip_and_refuse_what_they_did_not_make() -> None:
    fields = [b"", b"a", bytes(range(256)), b"x" * 70_000]
    assert unpack_fields(pack_fields(fields)) == fields
    assert open_envelope(envelope(0x50, fields)) == (0x50, fields)
    with pytest.raises(ValueError):
        open_envelope(b"")
    for broken in (pack_fields([b"abc"])[:-1], b"\x00\x00\x01"):
        with pytest.raises(ValueError):
            unpack_fields(broken)


@pytest.mark.parametrize("framing", [FRAMING_BINARY, FRAMING_WS_BINARY, FRAMING_JSON_LINES,
                                     FRAMING_WS_TEXT])
def test_a_template_is_the_frame_the_encoder_makes(framing: int) -> None:
    value = {"text": "héllo", "n": [1, 2.5, None]}
    msg = message(value, "room:a")
    key = template_key(framing, "json")
    template = msg.template(key, JSON, framing, 1 << 20)
    assert template is not None and msg.template(key, JSON, framing, 1 << 20) is template
    binary = framing in (FRAMING_BINARY, FRAMING_WS_BINARY)
    payload = orjson.dumps(value) if binary else value
    assert template.frame(42) == encode(KIND_PUSH, 42, "room:a", payload, 0, framing)


def test_a_member_that_cannot_receive_a_value_gets_no_template() -> None:
    assert message({"a": 1}).template(template_key(FRAMING_BINARY, "bytes"), BYTES,
                                      FRAMING_BINARY, 1 << 20) is None
    assert message(b"raw").template(template_key(FRAMING_JSON_LINES, "json"), JSON,
                                    FRAMING_JSON_LINES, 1 << 20) is None
    assert message("x" * 100).template(template_key(FRAMING_BINARY, "json"), JSON,
                                       FRAMING_BINARY, 100) is None
    xml = message(b"<a>1</a>").template(template_key(FRAMING_BINARY, "xml"), XML,
                                        FRAMING_BINARY, 1 << 20)
    assert xml is not None and xml.frame(1).endswith(b"<a>1</a>")
