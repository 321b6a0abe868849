"""Two push hubs as two nodes of one deployment (``LocalBroker``s sharing a ``LocalBus``), each
served on its own sockets of 127.0.0.1, on both loops: a publish reaches the members of every
node through one broker message; send, join, leave, online and disconnect reach a client
wherever it is; a resume on the other node moves the session there (docs/push-protocol.md §8.4)
with nothing lost or doubled, also for what is published during the move; an old node that is
gone or silent means ``resumed: false``, never a silent loss; a resume called off midway (its
node drains, its connection drops) puts the token back for the client's next try; a cancelled
stop still drains; directories a broker lost are written again.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest

from cyserve._core.push.frames import (
    FLAG_ACK_REQUESTED, KIND_ACK, KIND_CLOSE, KIND_REFUSE, KIND_REPLY,
)
from cyserve.errors import PushClosed
from cyserve.push.broker import LocalBroker, LocalBus
from cyserve.push.hub import Hub
from tests.push.hub_support import Served, serving_hub, wait_until
from tests.push.test_hub import group_hub, member, nothing_more, pushed


# A node stopping while another shares its bus waits this long for its sessions to move.
GRACE_S = 0.3


class NodeBroker(LocalBroker):
    """A LocalBroker on a shared bus that counts publishes per channel and can run a hook
    before and after it subscribes to a channel (to publish during a session's move)."""

    def __init__(self, bus: LocalBus) -> None:
        super().__init__(bus)
        self.published: dict[str, int] = {}
        self.before_subscribe: Callable[[str], Awaitable[None]] | None = None
        self.after_subscribe: Callable[[str], Awaitable[None]] | None = None

    async def publish(self, channel: str, data: bytes) -> None:
        self.published[channel] = self.published.get(channel, 0) + 1
        await super().publish(channel, data)

    async def subscribe(self, channel: str) -> None:
        if self.before_subscribe is not None:
            await self.before_subscribe(channel)
        await super().subscribe(channel)
        if self.after_subscribe is not None:
            await self.after_subscribe(channel)


def identity_hub(broker: LocalBroker) -> Hub:
    hub = group_hub(broker=broker)

    @hub.on_connect
    async def auth(conn: Any, credentials: Any) -> Any:
        return credentials

    return hub


@contextlib.asynccontextmanager
async def two_nodes() -> AsyncIterator[tuple[Served, Served]]:
    bus = LocalBus()
    async with serving_hub(identity_hub(NodeBroker(bus)), grace_s=GRACE_S) as a:
        async with serving_hub(identity_hub(NodeBroker(bus)), grace_s=GRACE_S) as b:
            yield a, b


def test_a_publish_reaches_every_node_through_one_broker_message(run: Any) -> None:
    async def main() -> None:
        async with two_nodes() as (a, b):
            on_a = [await member(a, t, "room") for t in ("ws-binary", "tcp-json")]
            on_b = [await member(b, t, "room") for t in ("ws-text", "tcp-binary")]
            elsewhere = await member(b, "tcp-json", "other")
            for n in range(1, 4):
                await a.hub.publish("room", n)
            await b.hub.broadcast("everyone")
            for client in on_a + on_b:
                assert pushed(client, await client.pushes(4)) == [
                    (1, "room", 1), (2, "room", 2), (3, "room", 3), (4, "", "everyone")]
            assert pushed(elsewhere, await elsewhere.pushes(1)) == [(1, "", "everyone")]
            assert a.hub.broker.published["g:room"] == 3   # type: ignore[attr-defined]
            assert await a.hub.members("room") == await b.hub.members("room") == {
                c.welcome["client_id"] for c in on_a + on_b}
            for client in on_a + on_b + [elsewhere]:
                await client.close()
    run(main)


def test_send_join_leave_online_and_disconnect_reach_a_client_on_another_node(run: Any) -> None:
    async def main() -> None:
        async with two_nodes() as (a, b):
            gone: list[tuple[str, str]] = []

            @b.hub.on_disconnect
            async def on_gone(conn: Any, code: str) -> None:
                gone.append((conn.client_id, code))

            client = await b.session("ws-binary", "bob")
            client_id = client.welcome["client_id"]
            hub = a.hub
            assert await hub.online(client_id)
            assert await hub.send(client_id, {"direct": 1}) is True
            assert pushed(client, await client.pushes(1)) == [(1, "", {"direct": 1})]
            acked = asyncio.ensure_future(hub.send(client_id, "ack me", ack=True, timeout_s=5))
            frame = await client.recv()
            assert (frame.id, frame.flags) == (2, FLAG_ACK_REQUESTED)
            await asyncio.sleep(0.05)
            assert not acked.done()
            await client.send(KIND_ACK, 2)
            assert await acked is True
            await hub.join(client_id, "g")
            await hub.publish("g", "joined from a")
            assert pushed(client, await client.pushes(1)) == [(3, "g", "joined from a")]
            assert await hub.members("g") == {client_id}
            await hub.leave(client_id, "g")
            await hub.publish("g", "left")
            await nothing_more(client)
            await hub.disconnect(client_id, "bye")
            frames = await client.closed()
            assert [(f.kind, f.name, f.payload) for f in frames] == [(KIND_CLOSE, "policy", "bye")]
            await client.close()
            await wait_until(lambda: gone)
            assert gone == [(client_id, "policy")]
            assert not await hub.online(client_id)
            assert await hub.send(client_id, "too late") is False
            with pytest.raises(PushClosed):
                await hub.join(client_id, "g")
    run(main)


@pytest.mark.parametrize("old_open", [False, True], ids=["dropped", "still-open"])
def test_a_resume_on_another_node_moves_the_session(run: Any, old_open: bool) -> None:
    async def main() -> None:
        async with two_nodes() as (a, b):
            gone: list[str] = []

            @a.hub.on_disconnect
            async def on_gone(conn: Any, code: str) -> None:
                gone.append(code)

            client = await member(a, "tcp-binary", "room", credentials="carol")
            client_id = client.welcome["client_id"]
            await a.hub.publish("room", 1)
            await a.hub.send(client_id, 2)
            assert [f.id for f in await client.pushes(2)] == [1, 2]
            if not old_open:
                await client.abort()
                await wait_until(lambda: a.hub._sessions[client_id].conn is None)
            await b.hub.publish("room", 3)
            await a.hub.publish("room", 4)
            moved = await b.session("ws-text", "carol", resume_token=client.welcome["resume_token"],
                                    last_seq=2)
            welcome = moved.welcome
            assert (welcome["resumed"], welcome["client_id"], welcome["next_seq"]) == (True, client_id, 3)
            if old_open:
                frames = await client.closed()
                assert [(f.kind, f.name) for f in frames][-1:] == [(KIND_CLOSE, "replaced")]
                await client.close()
            assert pushed(moved, await moved.pushes(2)) == [(3, "room", 3), (4, "room", 4)]
            # The session is b's now: a forgot it without ending it, and everything finds it.
            assert client_id not in a.hub._sessions and gone == []
            assert await a.hub.online(client_id)
            await a.hub.publish("room", 5)
            assert await a.hub.send(client_id, 6) is True
            assert pushed(moved, await moved.pushes(2)) == [(5, "room", 5), (6, "", 6)]
            await nothing_more(moved)
            assert await a.hub.members("room") == {client_id}
            assert (await moved.call("join", "more")).kind == KIND_REPLY
            assert await a.hub.members("more") == {client_id}
            await moved.close()
    run(main)


def test_pushes_published_during_a_move_arrive_once_and_in_order(run: Any) -> None:
    async def main() -> None:
        async with two_nodes() as (a, b):
            client = await member(a, "ws-binary", "room", credentials="dave")
            await client.abort()
            await a.hub.publish("room", 1)
            broker_b: NodeBroker = b.hub.broker  # type: ignore[assignment]
            count = 1

            async def publish(channel: str) -> None:
                nonlocal count
                if channel == "g:room":
                    # From both nodes: before b subscribed (only a's history gets them) and
                    # after (a's history and b's own delivery both do: counted once).
                    for hub in (a.hub, b.hub):
                        count += 1
                        await hub.publish("room", count)

            broker_b.before_subscribe = publish
            broker_b.after_subscribe = publish
            moved = await b.session("tcp-json", "dave", resume_token=client.welcome["resume_token"],
                                    last_seq=0)
            broker_b.before_subscribe = broker_b.after_subscribe = None
            assert moved.welcome["resumed"] is True and count == 5
            await a.hub.publish("room", 6)
            frames = await moved.pushes(6)
            assert pushed(moved, frames) == [(n, "room", n) for n in range(1, 7)]
            await nothing_more(moved)
            await moved.close()
    run(main)


def test_a_resume_whose_old_node_is_gone_or_silent_is_a_new_session(run: Any) -> None:
    async def main() -> None:
        bus = LocalBus()
        async with serving_hub(identity_hub(NodeBroker(bus)), grace_s=GRACE_S) as b:
            b.hub.route_timeout_s = 0.3
            async with serving_hub(identity_hub(NodeBroker(bus)), grace_s=GRACE_S) as a:
                silent = await member(a, "tcp-binary", "room", credentials="erin")
                await silent.abort()
                # a's node stops answering (a broker that no longer brings it its requests).
                await a.hub.broker.unsubscribe("n:" + a.hub.node_id)
                again = await b.session("tcp-binary", "erin",
                                        resume_token=silent.welcome["resume_token"], last_seq=0)
                assert again.welcome["resumed"] is False
                assert again.welcome["client_id"] != silent.welcome["client_id"]
                await again.close()
                gone_node = await member(a, "ws-text", "room", credentials="fred")
            # a stopped: its sessions died with it.
            back = await b.session("ws-text", "fred", resume_token=gone_node.welcome["resume_token"],
                                   last_seq=0)
            assert back.welcome["resumed"] is False
            await gone_node.close()
            await back.close()
            assert await b.hub.members("room") == set()
    run(main)


def test_another_identity_cannot_move_a_session(run: Any) -> None:
    async def main() -> None:
        async with two_nodes() as (a, b):
            owner = await member(a, "tcp-json", "room", credentials="grace")
            token = owner.welcome["resume_token"]
            thief = await b.session("tcp-json", "mallory", resume_token=token, last_seq=0)
            assert thief.welcome["resumed"] is False
            await a.hub.publish("room", "still grace's")
            assert pushed(owner, await owner.pushes(1)) == [(1, "room", "still grace's")]
            # The token still works for its owner, from the other node too.
            moved = await b.session("tcp-json", "grace", resume_token=token, last_seq=1)
            assert moved.welcome["resumed"] is True
            assert moved.welcome["client_id"] == owner.welcome["client_id"]
            for client in (owner, thief, moved):
                await client.close()
    run(main)


def test_a_draining_node_hands_its_sessions_to_where_their_clients_resume(run: Any) -> None:
    async def main() -> None:
        async with two_nodes() as (a, b):
            gone: list[str] = []

            @a.hub.on_disconnect
            async def on_gone(conn: Any, code: str) -> None:
                gone.append(code)

            moving = await member(a, "tcp-binary", "room", credentials="hal")
            staying = await member(a, "ws-text", "room", credentials="ida")
            await a.hub.publish("room", 1)
            for client in (moving, staying):
                assert [f.id for f in await client.pushes(1)] == [1]
            stopping = asyncio.ensure_future(a.hub.stop(5.0))
            for client in (moving, staying):
                frames = await client.closed()
                assert [(f.kind, f.name) for f in frames] == [(KIND_CLOSE, "going_away")]
                await client.close()
            # §9: going_away keeps the session; a published push waits in its history.
            await b.hub.publish("room", 2)
            moved = await b.session("tcp-json", "hal", resume_token=moving.welcome["resume_token"],
                                    last_seq=1)
            assert (moved.welcome["resumed"], moved.welcome["client_id"]) == (
                True, moving.welcome["client_id"])
            assert pushed(moved, await moved.pushes(1)) == [(2, "room", 2)]
            await asyncio.sleep(0.1)
            assert not stopping.done()      # ida's session may still move
            resumed = await b.session("ws-binary", "ida", resume_token=staying.welcome["resume_token"],
                                      last_seq=2)
            assert resumed.welcome["resumed"] is True
            # Every session moved: the drain ends before its grace, and none of them ended.
            await asyncio.wait_for(stopping, 2.0)
            assert gone == []
            await b.hub.publish("room", 3)
            assert pushed(moved, await moved.pushes(1)) == [(3, "room", 3)]
            assert pushed(resumed, await resumed.pushes(1)) == [(3, "room", 3)]
            for client in (moved, resumed):
                await client.close()
    run(main)


@pytest.mark.parametrize("how", ["drain", "dropped"])
def test_a_resume_called_off_midway_puts_the_token_back_for_the_next_try(
        run: Any, how: str) -> None:
    """A HELLO whose resume is under way when its node begins draining (or its connection
    drops) has already taken the token and may be taking the session from the old node.  It
    goes to its end, keeps the session on that node with the token the client still holds,
    and only then is the client refused (REFUSE going_away): its next try, on any node,
    resumes with nothing lost (a rolling restart, issue 11 part L)."""
    async def main() -> None:
        async with two_nodes() as (a, b):
            gone: list[str] = []
            for node in (a, b):
                node.hub.on_disconnect(_recorder(gone))
            first = await member(a, "tcp-binary", "room", credentials="jane")
            client_id, token = first.welcome["client_id"], first.welcome["resume_token"]
            await a.hub.publish("room", 1)
            assert [f.id for f in await first.pushes(1)] == [1]
            await first.abort()
            await wait_until(lambda: a.hub._sessions[client_id].conn is None)
            await a.hub.publish("room", 2)

            # b's handover stops when it subscribes to the session's group.
            broker_b: NodeBroker = b.hub.broker  # type: ignore[assignment]
            reached, release = asyncio.Event(), asyncio.Event()

            async def hold(channel: str) -> None:
                if channel == "g:room":
                    reached.set()
                    await release.wait()

            broker_b.before_subscribe = hold
            second = await b.client("ws-binary")
            hello = asyncio.ensure_future(second.hello("jane", resume_token=token, last_seq=1))
            await asyncio.wait_for(reached.wait(), 5.0)
            stopping = None
            if how == "drain":
                stopping = asyncio.ensure_future(b.hub.stop(5.0))
                await asyncio.sleep(0.05)
                # The refusal waits for the session and the token to be put back.
                assert not hello.done()
            else:
                await second.abort()
                hello.cancel()
            release.set()
            broker_b.before_subscribe = None
            if stopping is not None:
                refused = await asyncio.wait_for(hello, 5.0)
                assert (refused.kind, refused.name) == (KIND_REFUSE, "going_away")
            else:
                await asyncio.gather(hello, return_exceptions=True)   # EOF: it dropped
                # Nothing tells a dropped client when b is done: it comes back after a backoff.
                await wait_until(lambda: b.hub._tokens.get(_hash(token)) is not None)
            await second.close()
            # The session is b's now (the old node gave it), waiting for its client.
            assert client_id in b.hub._sessions and client_id not in a.hub._sessions
            await a.hub.publish("room", 3)
            third = await a.session("tcp-json", "jane", resume_token=token, last_seq=1)
            assert (third.welcome["resumed"], third.welcome["client_id"],
                    third.welcome["next_seq"]) == (True, client_id, 2)
            assert pushed(third, await third.pushes(2)) == [(2, "room", 2), (3, "room", 3)]
            await a.hub.publish("room", 4)
            assert pushed(third, await third.pushes(1)) == [(4, "room", 4)]
            await nothing_more(third)
            if stopping is not None:
                # Its last session moved: the drain ends well before its grace.
                await asyncio.wait_for(stopping, 2.0)
            assert gone == []
            await third.close()
    run(main)


def test_a_stop_cancelled_while_it_drains_goes_on_and_a_second_stop_waits_for_it(
        run: Any) -> None:
    """An App cancels its drain task (hence the hub.stop it awaits) once the HTTP side is done;
    the stop must still hand its sessions over, end the rest and close the broker, and the
    App's second stop() must wait for that rather than return at once."""
    async def main() -> None:
        async with two_nodes() as (a, b):
            gone: list[str] = []
            a.hub.on_disconnect(_recorder(gone))
            bus = b.hub.broker.bus  # type: ignore[attr-defined]
            client = await member(a, "tcp-binary", "room", credentials="kim")
            stopping = asyncio.ensure_future(a.hub.stop(5.0))
            frames = await client.closed()
            assert [(f.kind, f.name) for f in frames] == [(KIND_CLOSE, "going_away")]
            await client.close()
            stopping.cancel()
            with pytest.raises(asyncio.CancelledError):
                await stopping
            await asyncio.sleep(0.05)
            assert "stopping" in repr(a.hub) and a.hub.node_id in bus.nodes
            await b.hub.publish("room", 1)
            moved = await b.session("ws-text", "kim", resume_token=client.welcome["resume_token"],
                                    last_seq=0)
            assert moved.welcome["resumed"] is True
            assert pushed(moved, await moved.pushes(1)) == [(1, "room", 1)]
            await asyncio.wait_for(a.hub.stop(0.0), 2.0)
            assert "stopped" in repr(a.hub) and a.hub.node_id not in bus.nodes
            assert gone == []
            await moved.close()
    run(main)


def test_a_broker_that_lost_its_directories_gets_them_back(run: Any) -> None:
    """``on_reset`` (what a RedisBroker says when Redis lost its data): each node writes what it
    holds again, so members, routing and a resume on another node work at once, without the
    clients joining again."""
    async def main() -> None:
        async with two_nodes() as (a, b):
            bus = a.hub.broker.bus  # type: ignore[attr-defined]
            on_a = await member(a, "tcp-binary", "room", "other", credentials="lou")
            on_b = await member(b, "ws-text", "room", credentials="max")
            ids = {on_a.welcome["client_id"], on_b.welcome["client_id"]}
            for directory in (bus.presence, bus.groups, bus.tokens):
                directory.clear()
            assert await a.hub.members("room") == set()
            a.hub._on_reset()
            b.hub._on_reset()
            await wait_until(lambda: len(bus.tokens) == 2)
            assert await b.hub.members("room") == ids
            assert await b.hub.members("other") == {on_a.welcome["client_id"]}
            assert await b.hub.send(on_a.welcome["client_id"], "routed") is True
            assert pushed(on_a, await on_a.pushes(1)) == [(1, "", "routed")]
            await on_a.abort()
            moved = await b.session("tcp-json", "lou", resume_token=on_a.welcome["resume_token"],
                                    last_seq=1)
            assert moved.welcome["resumed"] is True
            for client in (moved, on_b):
                await client.close()
    run(main)


def _recorder(gone: list[str]) -> Callable[[Any, str], Awaitable[None]]:
    async def on_gone(conn: Any, code: str) -> None:
        gone.append(code)
    return on_gone


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
