"""The push hub on one node (``cyserve.push.hub``), end to end over real sockets on both loops:
publish, broadcast and send (docs/push-protocol.md §8.1), acks (§8.2), gaps (§8.3), resume
(§8.4), slow consumers (§8.6), closing codes and what they do to a session (§9), groups and the
public API's checks.  Cross-node behaviour is in test_hub_nodes.py.
"""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cyserve._core.push.frames import (
    FLAG_ACK_REQUESTED, KIND_ACK, KIND_CLOSE, KIND_GAP, KIND_PUSH, KIND_REPLY,
)
from cyserve.config import PushLimits
from cyserve.errors import PushClosed
from cyserve.push.broker import LocalBroker
from cyserve.push.hub import Hub
from tests.push.hub_support import TRANSPORTS, PushClient, Served, serving_hub, wait_until


class CountingBroker(LocalBroker):
    """A LocalBroker that counts what is published per channel."""

    def __init__(self) -> None:
        super().__init__()
        self.published: dict[str, int] = {}

    async def publish(self, channel: str, data: bytes) -> None:
        self.published[channel] = self.published.get(channel, 0) + 1
        await super().publish(channel, data)


def group_hub(limits: PushLimits = PushLimits(), broker: Any = None) -> Hub:
    """A hub whose clients join and leave groups by command."""
    hub = Hub(broker, limits=limits)

    @hub.command("join")
    async def join(conn: Any, group: Any) -> Any:
        await conn.join(group)
        return sorted(conn.groups)

    @hub.command("leave")
    async def leave(conn: Any, group: Any) -> Any:
        await conn.leave(group)
        return sorted(conn.groups)

    return hub


async def member(served: Served, transport: str, *groups: str, **hello: Any) -> PushClient:
    client = await served.session(transport, **hello)
    for group in groups:
        assert (await client.call("join", group)).kind == KIND_REPLY
    return client


def pushed(client: PushClient, frames: list[Any]) -> list[tuple[int, str, Any]]:
    return [(f.id, f.name, client.value(f.payload)) for f in frames]


async def nothing_more(client: PushClient, timeout_s: float = 0.1) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await client.recv(timeout_s)


def covered(frames: list[Any]) -> list[int]:
    """The sequence numbers a run of PUSH and GAP frames stands for, in order."""
    numbers: list[int] = []
    for frame in frames:
        numbers.extend(range(frame.id, frame.payload + 1) if frame.kind == KIND_GAP else [frame.id])
    return numbers


# ---------------------------------------------------------------------- publish, broadcast, send
def test_one_publish_reaches_every_member_in_every_framing_once(run: Any) -> None:
    async def main() -> None:
        broker = CountingBroker()
        async with serving_hub(group_hub(broker=broker)) as served:
            members = [await member(served, transport, "room") for transport in TRANSPORTS]
            outsider = await member(served, "tcp-binary", "other")
            for n in range(3):
                await served.hub.publish("room", {"n": n, "text": "héllo"})
            for client in members:
                frames = await client.pushes(3)
                assert pushed(client, frames) == [(n + 1, "room", {"n": n, "text": "héllo"})
                                                  for n in range(3)]
            await nothing_more(outsider)
            # One broker message per publish, never one per member (§12).
            assert broker.published["g:room"] == 3
            for client in (*members, outsider):
                await client.close()
    run(main)


def test_publish_leaves_out_the_excluded_clients(run: Any) -> None:
    async def main() -> None:
        async with serving_hub(group_hub()) as served:
            a, b, c = [await member(served, t, "g") for t in ("ws-binary", "tcp-json", "ws-text")]
            ids = [client.welcome["client_id"] for client in (a, b, c)]
            await served.hub.publish("g", "not for a", exclude=ids[0])
            await served.hub.publish("g", "for a only", exclude=[ids[1], ids[2]])
            assert pushed(a, await a.pushes(1)) == [(1, "g", "for a only")]
            assert pushed(b, await b.pushes(1)) == [(1, "g", "not for a")]
            assert pushed(c, await c.pushes(1)) == [(1, "g", "not for a")]
            for client in (a, b, c):
                await nothing_more(client, 0.05)
                await client.close()
    run(main)


def test_broadcast_reaches_every_client_and_send_reaches_one(run: Any) -> None:
    async def main() -> None:
        async with serving_hub(group_hub()) as served:
            a = await member(served, "ws-binary", "g")
            b = await member(served, "tcp-json")
            hub = served.hub
            await hub.broadcast({"all": True})
            await hub.publish("g", "group")
            assert await hub.send(b.welcome["client_id"], [1, 2]) is True
            assert await hub.send("no-such-client", "lost") is False
            # One sequence per session, whatever sent the push (§8.1); "" outside a group.
            assert pushed(a, await a.pushes(2)) == [(1, "", {"all": True}), (2, "g", "group")]
            assert pushed(b, await b.pushes(2)) == [(1, "", {"all": True}), (2, "", [1, 2])]
            await hub.broadcast("not b", exclude=b.welcome["client_id"])
            assert pushed(a, await a.pushes(1)) == [(3, "", "not b")]
            await nothing_more(b)
            await a.close()
            await b.close()
    run(main)


@pytest.mark.parametrize("transport", ["ws-text", "tcp-binary"])
def test_send_with_ack_resolves_on_the_ack_or_not_in_time(run: Any, transport: str) -> None:
    async def main() -> None:
        async with serving_hub(group_hub()) as served:
            client = await served.session(transport)
            hub = served.hub
            client_id = client.welcome["client_id"]
            sending = asyncio.ensure_future(hub.send(client_id, "please ack", ack=True, timeout_s=5))
            frame = await client.recv()
            assert (frame.kind, frame.id, frame.flags) == (KIND_PUSH, 1, FLAG_ACK_REQUESTED)
            await asyncio.sleep(0.05)
            assert not sending.done()
            await client.send(KIND_ACK, 1)
            assert await sending is True
            # No ACK within timeout_s: False (the push was written, the client did not say so).
            assert await hub.send(client_id, "ignored", ack=True, timeout_s=0.2) is False
            assert (await client.recv()).id == 2
            await client.close()
    run(main)


def test_publish_over_max_frame_bytes_raises_at_the_publisher(run: Any) -> None:
    async def main() -> None:
        async with serving_hub(group_hub(PushLimits(max_frame_bytes=1024))) as served:
            client = await member(served, "tcp-binary", "g")
            hub = served.hub
            with pytest.raises(ValueError, match="max_frame_bytes"):
                await hub.publish("g", "x" * 1000)
            with pytest.raises(ValueError, match="max_frame_bytes"):
                await hub.send(client.welcome["client_id"], b"x" * 1000)
            with pytest.raises(ValueError, match="max_frame_bytes"):
                await hub.broadcast(["x" * 500, "y" * 500])
            with pytest.raises(TypeError):
                await hub.publish("g", {1, 2})
            await hub.publish("g", "x" * 900)
            assert len(client.value((await client.pushes(1))[0].payload)) == 900
            await client.close()
    run(main)


def test_a_member_whose_codec_cannot_carry_a_value_gets_a_gap(run: Any) -> None:
    async def main() -> None:
        async with serving_hub(group_hub()) as served:
            raw = await served.session("tcp-binary", codec="bytes")
            text = await member(served, "ws-text", "g")
            await served.hub.join(raw.welcome["client_id"], "g")
            await served.hub.publish("g", {"a": 1})      # no bytes for a dict
            await served.hub.publish("g", b"\x00\x01")   # no JSON for bytes
            first, second = await raw.pushes(2)
            assert (first.kind, first.id, first.payload) == (KIND_GAP, 1, 1)
            assert (second.kind, second.id, second.payload) == (KIND_PUSH, 2, b"\x00\x01")
            first, second = await text.pushes(2)
            assert (first.kind, first.id, first.payload) == (KIND_PUSH, 1, {"a": 1})
            assert (second.kind, second.id, second.payload) == (KIND_GAP, 2, 2)
            await raw.close()
            await text.close()
    run(main)


def test_lost_broker_messages_become_a_gap_for_each_member(run: Any) -> None:
    async def main() -> None:
        async with serving_hub(group_hub()) as served:
            a = await member(served, "ws-binary", "g")
            b = await member(served, "tcp-json", "g")
            outsider = await member(served, "tcp-json")
            # What a broker does when its recovery history no longer holds what a node missed.
            served.hub._on_lost("g:g", 3)
            served.hub._on_lost("g:g", 0)   # count unknown: one number
            await served.hub.publish("g", "after")
            for client in (a, b):
                frames = await client.pushes(3)
                assert [(f.kind, f.id) for f in frames] == [(KIND_GAP, 1), (KIND_GAP, 4),
                                                            (KIND_PUSH, 5)]
                assert covered(frames) == [1, 2, 3, 4, 5]
            await nothing_more(outsider, 0.05)
            for client in (a, b, outsider):
                await client.close()
    run(main)


def test_an_uncountable_loss_is_one_gap_per_member_whatever_the_channels(run: Any) -> None:
    """A Redis that lost its data reports an unknown count for every channel (``all`` and each
    group): a member of several gets one GAP of one number, not one per channel (it says all
    there is to say: something may be missing here); a later loss after a push is told
    again."""
    async def main() -> None:
        async with serving_hub(group_hub()) as served:
            hub = served.hub
            both = await member(served, "tcp-binary", "g", "h")
            alone = await member(served, "ws-text")
            for channel in ("all", "g:g", "g:h", "n:" + hub.node_id):
                hub._on_lost(channel, 0)
            await hub.publish("g", "after")
            assert [(f.kind, f.id, f.payload) for f in await both.pushes(2)][0] == (KIND_GAP, 1, 1)
            assert (await alone.recv()).kind == KIND_GAP
            # both got a push since its GAP: told again; alone got nothing since: not again.
            hub._on_lost("g:h", 0)
            hub._on_lost("all", 0)
            frames = await both.pushes(1)
            assert [(f.kind, f.id, f.payload) for f in frames] == [(KIND_GAP, 3, 3)]
            await nothing_more(both)
            await nothing_more(alone)
            for client in (both, alone):
                await client.close()
    run(main)


# ---------------------------------------------------------------------- groups and the API
def test_join_leave_members_and_online(run: Any) -> None:
    async def main() -> None:
        async with serving_hub(group_hub()) as served:
            hub = served.hub
            a = await member(served, "ws-binary", "g", "h")
            b = await member(served, "tcp-json", "g")
            ida, idb = a.welcome["client_id"], b.welcome["client_id"]
            assert await hub.members("g") == {ida, idb} and await hub.members("h") == {ida}
            assert client_value(a, await a.call("leave", "g")) == ["h"]
            await hub.leave(idb, "g")
            await hub.leave(idb, "g")   # not a member: nothing
            assert await hub.members("g") == set()
            await hub.join(idb, "h")
            assert await hub.members("h") == {ida, idb}
            assert await hub.online(ida) and not await hub.online("nobody")
            await hub.publish("g", "nobody left")
            await hub.publish("h", "both")
            assert pushed(a, await a.pushes(1)) == [(1, "h", "both")]
            assert pushed(b, await b.pushes(1)) == [(1, "h", "both")]
            await a.close()
            await b.close()
    run(main)


def client_value(client: PushClient, frame: Any) -> Any:
    assert frame.kind == KIND_REPLY, frame
    return client.value(frame.payload)


def test_join_checks_names_limits_and_the_client(run: Any) -> None:
    async def main() -> None:
        async with serving_hub(group_hub(PushLimits(max_groups_per_client=2))) as served:
            hub = served.hub
            client = await member(served, "tcp-binary", "a", "b")
            client_id = client.welcome["client_id"]
            with pytest.raises(ValueError, match="max_groups_per_client"):
                await hub.join(client_id, "c")
            await hub.join(client_id, "a")   # already in: no limit reached
            for bad in ("", "new\nline", "nul\x00", "del\x7f", "x" * 256):
                with pytest.raises(ValueError):
                    await hub.join(client_id, bad)
                with pytest.raises(ValueError):
                    await hub.publish(bad, "x")
            with pytest.raises(TypeError):
                await hub.join(client_id, 5)  # type: ignore[arg-type]
            with pytest.raises(PushClosed):
                await hub.join("nobody", "a")
            assert (await client.call("join", "c")).name == "handler_error"
            await hub.leave(client_id, "b")
            await hub.join(client_id, "é" * 127)   # 254 UTF-8 bytes: a name may be that long
            assert await hub.members("é" * 127) == {client_id}
            await client.close()
    run(main)


@pytest.mark.parametrize("transport", ["ws-binary", "tcp-json"])
def test_disconnect_closes_with_policy_and_ends_the_session(run: Any, transport: str) -> None:
    async def main() -> None:
        hub = group_hub()
        gone: list[tuple[str, str]] = []

        @hub.on_disconnect
        async def on_gone(conn: Any, code: str) -> None:
            gone.append((conn.client_id, code))

        async with serving_hub(hub) as served:
            client = await member(served, transport, "g")
            client_id = client.welcome["client_id"]
            await hub.disconnect(client_id, "banned")
            frames = await client.closed()
            assert [(f.kind, f.name, f.payload) for f in frames] == [(KIND_CLOSE, "policy", "banned")]
            await client.close()
            if transport.startswith("ws-"):
                assert (client._ws.close_code, client._ws.close_reason) == (1008, "policy")
            await wait_until(lambda: gone)
            assert gone == [(client_id, "policy")]
            assert not await hub.online(client_id) and await hub.members("g") == set()
            # Ended, not resumable.
            again = await served.session(transport, resume_token=client.welcome["resume_token"],
                                         last_seq=0)
            assert again.welcome["resumed"] is False and again.welcome["client_id"] != client_id
            await again.close()
    run(main)


# ---------------------------------------------------------------------- resume (§8.4)
@pytest.mark.parametrize("first, second", [("ws-binary", "tcp-json"), ("tcp-binary", "ws-text"),
                                           ("tcp-json", "tcp-json"), ("ws-text", "ws-binary")])
def test_resume_after_a_dropped_connection_loses_and_repeats_nothing(
        run: Any, first: str, second: str) -> None:
    async def main() -> None:
        async with serving_hub(group_hub()) as served:
            hub = served.hub
            client = await member(served, first, "room")
            client_id = client.welcome["client_id"]
            for n in range(1, 4):
                await hub.publish("room", n)
            assert [f.id for f in await client.pushes(3)] == [1, 2, 3]
            await client.abort()
            await wait_until(lambda: hub._sessions[client_id].conn is None)
            for n in range(4, 7):
                await hub.publish("room", n)
            again = await served.session(second, resume_token=client.welcome["resume_token"],
                                         last_seq=3)
            welcome = again.welcome
            assert (welcome["resumed"], welcome["client_id"], welcome["next_seq"]) == (True, client_id, 4)
            assert welcome["resume_token"] != client.welcome["resume_token"]
            await hub.publish("room", 7)
            assert pushed(again, await again.pushes(4)) == [(n, "room", n) for n in range(4, 8)]
            await nothing_more(again, 0.05)
            # Group memberships are unchanged by a resume.
            assert await hub.members("room") == {client_id}
            assert client_value(again, await again.call("join", "other")) == ["other", "room"]
            await again.close()
    run(main)


def test_a_resume_on_the_node_holding_the_session_needs_nothing_from_the_broker(
        run: Any) -> None:
    """§8.4: the node holding the session decides a resume by its own token index, so a broker
    that forgot every token (a Redis that lost its data) changes nothing there; the token is
    still single use, and the new one works the same way."""
    async def main() -> None:
        async with serving_hub(group_hub()) as served:
            hub = served.hub
            bus = hub.broker.bus  # type: ignore[attr-defined]
            client = await member(served, "tcp-binary", "room")
            client_id, token = client.welcome["client_id"], client.welcome["resume_token"]
            await client.abort()
            await wait_until(lambda: hub._sessions[client_id].conn is None)
            await hub.publish("room", 1)
            bus.tokens.clear()
            again = await served.session("ws-text", resume_token=token, last_seq=0)
            assert (again.welcome["resumed"], again.welcome["client_id"]) == (True, client_id)
            assert pushed(again, await again.pushes(1)) == [(1, "room", 1)]
            reused = await served.session("tcp-json", resume_token=token, last_seq=0)
            assert reused.welcome["resumed"] is False
            await reused.close()
            await again.abort()
            await wait_until(lambda: hub._sessions[client_id].conn is None)
            bus.tokens.clear()
            back = await served.session("tcp-binary", resume_token=again.welcome["resume_token"],
                                        last_seq=1)
            assert (back.welcome["resumed"], back.welcome["next_seq"]) == (True, 2)
            await back.close()
    run(main)


def test_a_lagging_last_seq_repeats_and_an_ack_survives_the_resume(run: Any) -> None:
    async def main() -> None:
        async with serving_hub(group_hub()) as served:
            hub = served.hub
            client = await served.session("tcp-binary")
            client_id = client.welcome["client_id"]
            for n in range(1, 3):
                await hub.send(client_id, n)
            acked = asyncio.ensure_future(hub.send(client_id, "ack me", ack=True, timeout_s=5))
            assert [f.id for f in await client.pushes(3, ack=False)] == [1, 2, 3]
            await client.abort()
            # The client says it has only 1: 2 and 3 come again (at least once, §8.5), 3 still
            # asking for its ACK, whose arrival resolves the send made before the drop.
            again = await served.session("ws-binary", resume_token=client.welcome["resume_token"],
                                         last_seq=1)
            assert again.welcome["next_seq"] == 2
            frames = await again.pushes(2)
            assert [(f.id, f.flags) for f in frames] == [(2, 0), (3, FLAG_ACK_REQUESTED)]
            assert await acked is True
            await again.close()
    run(main)


def test_a_resume_beyond_the_history_starts_with_a_gap(run: Any) -> None:
    async def main() -> None:
        limits = PushLimits(resume_history_count=3)
        async with serving_hub(group_hub(limits)) as served:
            hub = served.hub
            client = await member(served, "ws-binary", "g")
            await client.abort()
            for n in range(1, 11):
                await hub.publish("g", n)
            again = await served.session("tcp-json", resume_token=client.welcome["resume_token"],
                                         last_seq=0)
            frames = await again.pushes(4)
            assert [(f.kind, f.id, f.payload if f.kind == KIND_GAP else again.value(f.payload))
                    for f in frames] == [(KIND_GAP, 1, 7), (KIND_PUSH, 8, 8), (KIND_PUSH, 9, 9),
                                         (KIND_PUSH, 10, 10)]
            await again.close()
    run(main)


def test_the_history_is_bounded_by_bytes_and_acks_free_it(run: Any) -> None:
    async def main() -> None:
        limits = PushLimits(resume_history_bytes=2500)
        async with serving_hub(group_hub(limits)) as served:
            hub = served.hub
            client = await member(served, "tcp-binary", "g")
            client_id = client.welcome["client_id"]
            for n in range(1, 6):
                await hub.publish("g", "x" * 1000)
            await client.pushes(5)
            session = hub._sessions[client_id]
            assert (session.hist_first, len(session.history or ())) == (4, 2)
            await client.send(KIND_ACK, 4)
            await wait_until(lambda: session.hist_first == 5)
            await client.abort()
            again = await served.session("tcp-binary", resume_token=client.welcome["resume_token"],
                                         last_seq=0)
            frames = await again.pushes(2)
            assert [(f.kind, f.id) for f in frames] == [(KIND_GAP, 1), (KIND_PUSH, 5)]
            assert frames[0].payload == 4
            await again.close()
    run(main)


def test_an_expired_window_ends_the_session(run: Any) -> None:
    async def main() -> None:
        hub = group_hub(PushLimits(resume_window_s=0.2))
        gone: list[tuple[str, str]] = []

        @hub.on_disconnect
        async def on_gone(conn: Any, code: str) -> None:
            gone.append((conn.client_id, code))

        async with serving_hub(hub) as served:
            client = await member(served, "ws-text", "g")
            client_id = client.welcome["client_id"]
            await client.abort()
            await wait_until(lambda: gone, 3.0)
            assert gone == [(client_id, "going_away")]
            assert await hub.members("g") == set()
            again = await served.session("ws-text", resume_token=client.welcome["resume_token"],
                                         last_seq=0)
            assert again.welcome["resumed"] is False and again.welcome["client_id"] != client_id
            assert again.welcome["next_seq"] == 1
            await again.close()
    run(main)


def test_the_end_of_the_window_reports_how_the_connection_ended(run: Any) -> None:
    async def main() -> None:
        limits = PushLimits(heartbeat_s=0.1, idle_timeout_s=0.3, resume_window_s=0.1)
        hub = group_hub(limits)
        gone: list[tuple[str, str]] = []

        @hub.on_disconnect
        async def on_gone(conn: Any, code: str) -> None:
            gone.append((conn.client_id, code))

        async with serving_hub(hub) as served:
            silent = await served.session("tcp-binary")
            leaving = await served.session("ws-binary")
            await leaving.say_close("going_away")
            frames = await silent.closed()    # PINGs unanswered
            assert frames[-1].name == "idle_timeout"
            await wait_until(lambda: len(gone) == 2, 3.0)
            assert sorted(gone) == sorted([(silent.welcome["client_id"], "idle_timeout"),
                                           (leaving.welcome["client_id"], "going_away")])
            await silent.close()
            await leaving.close()
    run(main)


@pytest.mark.parametrize("transport", ["ws-binary", "tcp-json"])
def test_a_resume_closes_the_open_connection_with_replaced(run: Any, transport: str) -> None:
    async def main() -> None:
        hub = group_hub()
        gone: list[str] = []

        @hub.on_disconnect
        async def on_gone(conn: Any, code: str) -> None:
            gone.append(code)

        async with serving_hub(hub) as served:
            old = await member(served, transport, "g")
            new = await served.session(transport, resume_token=old.welcome["resume_token"],
                                       last_seq=0)
            assert new.welcome["resumed"] is True
            frames = await old.closed()
            assert [(f.kind, f.name) for f in frames] == [(KIND_CLOSE, "replaced")]
            await old.close()
            if transport.startswith("ws-"):
                assert (old._ws.close_code, old._ws.close_reason) == (1008, "replaced")
            await hub.publish("g", "to the new one")
            assert pushed(new, await new.pushes(1)) == [(1, "g", "to the new one")]
            assert gone == []   # moved, not ended
            await new.close()
    run(main)


def test_a_token_resumes_only_its_identity_once_and_not_past_its_numbers(run: Any) -> None:
    async def main() -> None:
        hub = group_hub()

        @hub.on_connect
        async def auth(conn: Any, credentials: Any) -> Any:
            return credentials

        async with serving_hub(hub) as served:
            alice = await served.session("tcp-json", "alice")
            token = alice.welcome["resume_token"]
            # Another identity with alice's token: a new session, and alice is left alone.
            mallory = await served.session("tcp-json", "mallory", resume_token=token, last_seq=0)
            assert mallory.welcome["resumed"] is False
            assert mallory.welcome["client_id"] != alice.welcome["client_id"]
            await nothing_more(alice, 0.05)
            # A last_seq the session never issued: a new session too.
            wrong = await served.session("tcp-json", "alice", resume_token=token, last_seq=5)
            assert wrong.welcome["resumed"] is False
            # The token still opens alice's session, once.
            back = await served.session("tcp-json", "alice", resume_token=token, last_seq=0)
            assert back.welcome["resumed"] is True
            assert back.welcome["client_id"] == alice.welcome["client_id"]
            twice = await served.session("tcp-json", "alice", resume_token=token, last_seq=0)
            assert twice.welcome["resumed"] is False
            for client in (alice, mallory, wrong, back, twice):
                await client.close()
    run(main)


# ---------------------------------------------------------------------- slow consumers (§8.6)
async def fill(served: Served, slow: PushClient, count: int, size: int, check: Any) -> int:
    """Publish ``count`` pushes of ``size`` bytes to "g", letting each leave before the next
    (a slow reader, not one loop turn's burst, is what fills the queue); ``check()`` after
    each.  The number of publishes made."""
    for n in range(1, count + 1):
        await served.hub.publish("g", {"n": n, "pad": "x" * size})
        await asyncio.sleep(0.003)
        if check():
            return n
    return count


async def cut_off(served: Served, transport: str,
                  fast_transport: str) -> tuple[PushClient, PushClient, int, int]:
    """A paused member ``slow`` (``transport``) and a reading one ``fast`` in "g", pushes of
    16 kB until the slow one's connection is cut (the ``disconnect`` policy): ``(slow, fast,
    pushes made, the most the slow connection's outbox ever held)``."""
    hub = served.hub
    slow = await served.client(transport, rcvbuf=4096)
    await slow.hello()
    await slow.call("join", "g")
    fast = await member(served, fast_transport, "g")
    slow_id = slow.welcome["client_id"]
    conn = hub._sessions[slow_id].conn
    slow.pause()
    most = 0

    def closed() -> bool:
        nonlocal most
        most = max(most, conn.link.buffered())
        return hub._sessions[slow_id].conn is None

    made = await fill(served, slow, 2000, 16000, closed)
    assert made < 2000, "the slow consumer was never cut off"
    return slow, fast, made, most


async def held_back(served: Served, transport: str) -> tuple[PushClient, Any, int, int, int]:
    """A paused member ``slow`` (``transport``) of "g" under ``drop_oldest``, sent 400 pushes
    of 16 kB: ``(slow, its connection, pushes made, the most its outbox held, the most held
    back)``."""
    slow = await served.client(transport, rcvbuf=4096)
    await slow.hello()
    await slow.call("join", "g")
    conn = served.hub._sessions[slow.welcome["client_id"]].conn
    slow.pause()
    most_queued = most_held = 0

    def measure() -> bool:
        nonlocal most_queued, most_held
        most_queued = max(most_queued, conn.link.buffered())
        most_held = max(most_held, conn._held_bytes)
        return False

    total = await fill(served, slow, 400, 16000, measure)
    return slow, conn, total, most_queued, most_held


async def every_number_with_gaps(slow: PushClient, total: int) -> list[Any]:
    """Resume reading ``slow`` until pushes and GAPs cover 1..``total``: every number once, in
    order, what was dropped said by a GAP (§8.3); the PUSH frames."""
    slow.resume()
    frames: list[Any] = []
    while not frames or covered(frames)[-1] < total:
        frames.extend(await slow.pushes(1))
    assert covered(frames) == list(range(1, total + 1))
    assert any(f.kind == KIND_GAP for f in frames)
    pushes = [f for f in frames if f.kind == KIND_PUSH]
    assert all(slow.value(f.payload)["n"] == f.id for f in pushes)
    return pushes


@pytest.mark.parametrize("transport", ["tcp-binary", "ws-binary"])
def test_a_slow_consumer_is_disconnected_and_resumes_without_loss(run: Any, transport: str) -> None:
    async def main() -> None:
        limits = PushLimits(queue_bytes=64 * 1024, resume_history_bytes=16 * 1024 * 1024)
        async with serving_hub(group_hub(limits)) as served:
            slow, fast, made, most = await cut_off(served, transport, "ws-binary")
            # The queue never passed its bound (memory bounded), and the rest went on.
            assert most <= limits.queue_bytes
            fast_frames = await fast.pushes(made)
            assert [fast.value(f.payload)["n"] for f in fast_frames] == list(range(1, made + 1))
            slow.resume()
            frames = await slow.closed()
            got = [f.id for f in frames if f.kind == KIND_PUSH]
            assert got == list(range(1, len(got) + 1)) and len(got) < made
            await slow.close()
            # The session stayed, with every push it did not get.
            again = await served.session("tcp-binary", resume_token=slow.welcome["resume_token"],
                                         last_seq=len(got))
            assert again.welcome["resumed"] is True
            rest = await again.pushes(made - len(got))
            assert [again.value(f.payload)["n"] for f in rest] == list(range(len(got) + 1, made + 1))
            await again.close()
            await fast.close()
    run(main)


@pytest.mark.parametrize("transport", ["tcp-binary", "ws-binary"])
def test_drop_oldest_bounds_memory_and_announces_the_dropped_with_a_gap(run: Any, transport: str) -> None:
    async def main() -> None:
        limits = PushLimits(queue_bytes=64 * 1024, slow_consumer="drop_oldest")
        async with serving_hub(group_hub(limits)) as served:
            slow, conn, total, most_queued, most_held = await held_back(served, transport)
            assert conn.held is not None, "nothing was held back"
            assert most_queued <= limits.queue_bytes and most_held <= limits.queue_bytes
            pushes = await every_number_with_gaps(slow, total)
            assert pushes[-1].id == total
            await slow.close()
    run(main)


# ---------------------------------------------------------------------- stop
def test_stop_says_going_away_to_everyone_and_ends_the_sessions(run: Any) -> None:
    async def main() -> None:
        hub = group_hub()
        gone: list[str] = []

        @hub.on_disconnect
        async def on_gone(conn: Any, code: str) -> None:
            gone.append(code)

        async with serving_hub(hub) as served:
            clients = [await member(served, transport, "g") for transport in TRANSPORTS]
            await hub.stop(2.0)
            for client in clients:
                frames = await client.closed()
                assert [(f.kind, f.name) for f in frames] == [(KIND_CLOSE, "going_away")]
                await client.close()
            assert clients[0]._ws.close_code == 1001
            assert gone == ["going_away"] * 4
            await hub.stop(2.0)   # idempotent
            late = await PushClient.tcp(served.tcp_port, json_lines=True)
            await late.send_raw(b'{"t":"hello","name":"cyserve-push/1","data":{}}\n')
            frames = await late.closed()
            assert [(f.name) for f in frames] == ["going_away"]
            await late.close()
    run(main)


class SlowTokenBroker(LocalBroker):
    """A LocalBroker whose token directory answers after ``delay_s``."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s

    async def put_token(self, token_hash: str, client_id: str, ttl_s: float) -> None:
        await asyncio.sleep(self.delay_s)
        await super().put_token(token_hash, client_id, ttl_s)


def test_a_hello_timing_out_while_the_broker_is_slow_leaves_no_session(run: Any) -> None:
    async def main() -> None:
        hub = group_hub(PushLimits(hello_timeout_s=0.2), broker=SlowTokenBroker(1.0))
        gone: list[str] = []

        @hub.on_disconnect
        async def on_gone(conn: Any, code: str) -> None:
            gone.append(code)

        async with serving_hub(hub) as served:
            client = await served.client("ws-text")
            frame = await client.hello()
            assert (frame.kind, frame.name) == (KIND_CLOSE, "idle_timeout")
            await client.close()
            # The session made for it was never welcomed: it ended, nothing is left behind.
            await wait_until(lambda: gone == ["going_away"])
            assert hub._sessions == {} and await hub.broker.group_members("g") == set()
    run(main)


def test_hub_operations_belong_to_its_loop(run: Any) -> None:
    async def main() -> None:
        async with serving_hub(group_hub()) as served:
            client = await member(served, "tcp-json", "g")
            hub = served.hub

            def elsewhere() -> None:
                # Another thread's loop may not touch the hub's state...
                with pytest.raises(RuntimeError, match="run_coroutine_threadsafe"):
                    asyncio.run(hub.publish("g", "from a thread"))
                # ...it hands the call over to the hub's loop.
                asyncio.run_coroutine_threadsafe(hub.publish("g", "handed over"), hub.loop).result(5)

            await asyncio.get_running_loop().run_in_executor(None, elsewhere)
            assert pushed(client, await client.pushes(1)) == [(1, "g", "handed over")]
            await client.close()
        with pytest.raises(RuntimeError, match="not started"):
            await Hub().send("x", 1)
    run(main)
