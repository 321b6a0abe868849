"""The group fan-out (``cyserve._core.push.fanout``, reached as ``cyserve.push.groups.fanout``):
its numbers and histories are exactly ``Session.record``'s (§8.1, §8.4), and over real sockets on
both loops it keeps the queue bound when the outbox proves the bound without the transport
(``PushRole.offer``, a queue bound above the write water mark, §8.6), while members of every
framing, an excluded member and a detached one get what §12 says.
"""
from __future__ import annotations

from typing import Any

import pytest

from cyserve._core.push.frames import KIND_PUSH
from cyserve.config import PushLimits
from cyserve.push.codecs import pack
from cyserve.push.groups import fanout
from cyserve.push.session import Gap, Message, Session
from tests.push.hub_support import TRANSPORTS, PushClient, serving_hub, wait_until
from tests.push.test_hub import (cut_off, every_number_with_gaps, group_hub, held_back,
                                 member, nothing_more, pushed)


# ---------------------------------------------------------------------- numbers (no sockets)
def _state(session: Session) -> tuple[int, int, int, list[object]]:
    """Its numbers and history: the same Message objects (one reference each), GAPs by span."""
    return (session.next_seq, session.hist_first, session.hist_bytes,
            [id(entry) if isinstance(entry, Message) else ("gap", entry.span)
             for entry in session.history or ()])


@pytest.mark.parametrize("count, max_bytes", [
    pytest.param(1000, 1 << 20, id="roomy-history"),
    pytest.param(3, 1 << 20, id="count-bound"),
    pytest.param(100, 120, id="bytes-bound"),
    pytest.param(0, 1 << 20, id="no-history"),
    pytest.param(5, 0, id="zero-bytes"),
])
def test_fanout_numbers_and_histories_are_session_records(count: int, max_bytes: int) -> None:
    limits = PushLimits(resume_history_count=count, resume_history_bytes=max_bytes)
    ids = [f"c{n}" for n in range(7)]
    sessions = [Session(client_id, None) for client_id in ids]
    twins = [Session(client_id, None) for client_id in ids]
    # Different pasts: a fresh session, one with a GAP in its history, one far along.
    for pair in (sessions, twins):
        pair[1].record(Gap(4), count, max_bytes)
        pair[2].next_seq = pair[2].hist_first = 1 << 40
    messages = [Message("g" * (n % 3 + 1), pack({"n": n, "pad": "x" * (n * 7)})) for n in range(12)]
    for n, message in enumerate(messages):
        exclude = frozenset({ids[n % 7], ids[(n * 3) % 7]}) if n % 4 else None
        fanout(sessions, message, exclude, limits)
        for twin in twins:
            if exclude is None or twin.client_id not in exclude:
                twin.record(message, count, max_bytes)
        assert [_state(s) for s in sessions] == [_state(t) for t in twins]
    for session in sessions:
        history = session.history or ()
        # §8.4's invariants: contiguous numbers, bytes summed, both bounds kept.
        assert session.hist_first + sum(entry.span for entry in history) == session.next_seq
        assert session.hist_bytes == sum(entry.size for entry in history)
        assert len(history) <= count and session.hist_bytes <= max_bytes


def test_fanout_takes_a_snapshot_and_reads_every_iterable() -> None:
    limits = PushLimits()
    sessions = {Session(f"c{n}", None) for n in range(4)}
    message = Message("g", pack("v"))
    fanout(iter(sessions), message, None, limits)
    fanout((s for s in sessions), message, frozenset(), limits)
    assert sorted(s.next_seq for s in sessions) == [3, 3, 3, 3]
    assert all(list(s.history or ()) == [message, message] for s in sessions)


# ---------------------------------------------------------------------- over real sockets
@pytest.mark.parametrize("transport", ["tcp-binary", "tcp-json"])
def test_a_queue_bound_above_the_water_mark_still_cuts_a_slow_consumer(
        run: Any, transport: str) -> None:
    async def main() -> None:
        # 256 KiB: above write_high (64 KiB) plus a message, so pushes to the slow member go
        # without asking the transport until its outbox pauses; the bound must hold anyway.
        limits = PushLimits(queue_bytes=256 * 1024, resume_history_bytes=64 * 1024 * 1024)
        async with serving_hub(group_hub(limits)) as served:
            slow, fast, made, most = await cut_off(served, transport, "tcp-binary")
            assert 64 * 1024 < most <= limits.queue_bytes
            fast_frames = await fast.pushes(made)
            assert [fast.value(f.payload)["n"] for f in fast_frames] == list(range(1, made + 1))
            slow.resume()
            frames = await slow.closed()
            got = [f.id for f in frames if f.kind == KIND_PUSH]
            assert got == list(range(1, len(got) + 1)) and len(got) < made
            await slow.close()
            await fast.close()
    run(main)


def test_drop_oldest_with_a_queue_bound_above_the_water_mark(run: Any) -> None:
    async def main() -> None:
        limits = PushLimits(queue_bytes=256 * 1024, slow_consumer="drop_oldest")
        async with serving_hub(group_hub(limits)) as served:
            slow, conn, total, most_queued, most_held = await held_back(served, "tcp-binary")
            assert conn.held is not None, "nothing was held back"
            assert most_queued <= limits.queue_bytes and most_held <= limits.queue_bytes
            await every_number_with_gaps(slow, total)
            await slow.close()
    run(main)


def test_interleaved_framings_excluded_and_detached_members(run: Any) -> None:
    async def main() -> None:
        async with serving_hub(group_hub()) as served:
            hub = served.hub
            # Every framing twice, interleaved, so the template changes from member to member.
            members = [await member(served, t, "g") for t in (*TRANSPORTS, *TRANSPORTS)]
            excluded = await member(served, "tcp-binary", "g")
            gone = await member(served, "tcp-json", "g")
            gone_id = gone.welcome["client_id"]
            token = gone.welcome["resume_token"]
            await gone.abort()
            await wait_until(lambda: hub._sessions[gone_id].conn is None)
            values = [{"n": n, "text": "héllo"} for n in range(5)]
            for value in values:
                await hub.publish("g", value, exclude=excluded.welcome["client_id"])
            expected = [(n + 1, "g", value) for n, value in enumerate(values)]
            for client in members:
                assert pushed(client, await client.pushes(len(values))) == expected
            await nothing_more(excluded)
            # The detached session numbered and kept them: its resume replays all five.
            back: PushClient = await served.session("tcp-json", resume_token=token, last_seq=0)
            assert back.welcome["resumed"] is True
            assert pushed(back, await back.pushes(len(values))) == expected
            for client in (*members, excluded, back):
                await client.close()
    run(main)


class _Watched(Session):
    """A session whose ``next_seq`` is a property counting writes, and one more slot: the
    fan-out must go through the property, and through the subclass's own layout."""

    __slots__ = ("writes",)

    def __init__(self, client_id: str, identity: Any) -> None:
        self.writes = 0
        super().__init__(client_id, identity)

    @property  # type: ignore[override]
    def next_seq(self) -> int:
        value: int = Session.next_seq.__get__(self)  # type: ignore[attr-defined]
        return value

    @next_seq.setter
    def next_seq(self, value: int) -> None:
        self.writes += 1
        Session.next_seq.__set__(self, value)  # type: ignore[attr-defined]


def test_fanout_goes_through_properties_and_other_layouts() -> None:
    limits = PushLimits(resume_history_count=4)
    # Alternating types: the loop changes layouts from one member to the next.
    sessions = [(_Watched if n % 2 else Session)(f"c{n}", None) for n in range(6)]
    twins = [Session(f"c{n}", None) for n in range(6)]
    for n in range(6):
        message = Message("g", pack(n))
        fanout(sessions, message, frozenset({"c4"}), limits)
        for twin in twins:
            if twin.client_id != "c4":
                twin.record(message, 4, limits.resume_history_bytes)
    assert [_state(s) for s in sessions] == [_state(t) for t in twins]
    # __init__'s write and one per publish, each through the property.
    assert [s.writes for s in sessions if isinstance(s, _Watched)] == [7, 7, 7]
