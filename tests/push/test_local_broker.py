"""``LocalBroker`` and ``LocalBus`` (``cyserve.push.broker``) against the ``Broker`` contract:
delivery to subscribed nodes only, its own publishes included, in publish order; the presence,
group and token directories; a closed node forgotten; a failing node does not keep a message
from the others; a node id drawn per start.  On both loops (the broker is async, like every broker).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from cyserve.errors import BrokerUnavailable
from cyserve.push.broker import Broker, LocalBroker, LocalBus


class Node:
    """What a hub gives a broker: the messages it receives, in order."""

    def __init__(self, broker: LocalBroker) -> None:
        self.broker = broker
        self.received: list[tuple[str, bytes]] = []
        self.lost: list[tuple[str, int]] = []

    async def start(self) -> "Node":
        await self.broker.start(lambda c, d: self.received.append((c, d)),
                                lambda c, n: self.lost.append((c, n)))
        return self


async def nodes(count: int) -> list[Node]:
    bus = LocalBus()
    return [await Node(LocalBroker(bus)).start() for _ in range(count)]


def test_a_local_broker_is_a_broker_with_a_node_id_per_start(run: Any) -> None:
    async def main() -> None:
        broker: Broker = LocalBroker()
        assert broker.node_id == ""     # drawn by start (Broker.node_id)
        a, other = await Node(LocalBroker()).start(), await Node(LocalBroker()).start()
        first = a.broker.node_id
        assert len(first) == 16 and first != other.broker.node_id
        with pytest.raises(RuntimeError):
            await a.start()
        # Started again: a new node, as a restarted process would be.
        await a.broker.close()
        await a.start()
        assert len(a.broker.node_id) == 16 and a.broker.node_id != first
        await a.broker.publish("n:" + a.broker.node_id, b"mine")
        assert a.received == [("n:" + a.broker.node_id, b"mine")]
        await a.broker.publish("n:" + first, b"the old node's")
        assert len(a.received) == 1
        for node in (a, other):
            await node.broker.close()
    run(main)


def test_messages_reach_the_subscribed_nodes_in_publish_order(run: Any) -> None:
    async def main() -> None:
        a, b, c = await nodes(3)
        await a.broker.subscribe("g:x")
        await b.broker.subscribe("g:x")
        await b.broker.subscribe("g:x")   # idempotent: still once
        for n in range(5):
            await (a if n % 2 else c).broker.publish("g:x", b"%d" % n)
        expected = [("g:x", b"%d" % n) for n in range(5)]
        assert a.received == expected and b.received == expected and c.received == []
        await b.broker.unsubscribe("g:x")
        await c.broker.publish("g:x", b"after")
        assert a.received[-1] == ("g:x", b"after") and len(b.received) == 5
        # Its own channel, subscribed at start: messages routed to one node.
        await a.broker.publish("n:" + b.broker.node_id, b"to b")
        assert b.received[-1] == ("n:" + b.broker.node_id, b"to b")
        assert a.lost == b.lost == c.lost == []
        for node in (a, b, c):
            await node.broker.close()
    run(main)


def test_presence_groups_and_tokens(run: Any) -> None:
    async def main() -> None:
        a, b = await nodes(2)
        await a.broker.claim("c1")
        await b.broker.claim("c2")
        assert await b.broker.locate("c1") == a.broker.node_id
        assert await a.broker.locate("nobody") is None
        # A release by another node than the holder does nothing (a moved session).
        await b.broker.release("c1")
        assert await a.broker.locate("c1") == a.broker.node_id
        await a.broker.group_add("g", "c1")
        await b.broker.group_add("g", "c2")
        await b.broker.group_add("g", "gone")   # nobody holds it: not a member
        assert await a.broker.group_members("g") == {"c1", "c2"}
        await a.broker.group_remove("g", "c1")
        assert await b.broker.group_members("g") == {"c2"}
        await a.broker.put_token("h1", "c1", 60)
        assert await b.broker.take_token("h1") == "c1"
        assert await a.broker.take_token("h1") is None      # single use
        await a.broker.put_token("h2", "c1", 0.01)
        await asyncio.sleep(0.03)
        assert await a.broker.take_token("h2") is None      # expired
        # A closed node: its clients are no longer located nor members.
        await b.broker.close()
        await b.broker.close()   # idempotent
        assert await a.broker.locate("c2") is None
        assert await a.broker.group_members("g") == set()
        with pytest.raises(BrokerUnavailable):
            await b.broker.publish("g:x", b"closed")
        await a.broker.close()
    run(main)


def test_takers_count_the_other_nodes_up_and_not_withdrawn(run: Any) -> None:
    async def main() -> None:
        single = await Node(LocalBroker()).start()
        assert await single.broker.takers() == 0
        await single.broker.close()
        a, b, c = await nodes(3)
        assert [await n.broker.takers() for n in (a, b, c)] == [2, 2, 2]
        await b.broker.withdraw()
        await b.broker.withdraw()   # idempotent
        # b no longer counts for the others; it still sees the two others (its clients can go).
        assert [await n.broker.takers() for n in (a, b, c)] == [1, 2, 1]
        await c.broker.close()
        assert [await n.broker.takers() for n in (a, b)] == [0, 1]
        await b.broker.close()
        await a.broker.close()
        # A node started again is a new node, not withdrawn.
        again = await Node(a.broker).start()
        other = await Node(LocalBroker(a.broker.bus)).start()
        assert await other.broker.takers() == 1
        await other.broker.close()
        await again.broker.close()
    run(main)


def test_a_failing_node_does_not_keep_a_message_from_the_others(
        run: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        bus = LocalBus()
        failing = LocalBroker(bus)

        def explode(channel: str, data: bytes) -> None:
            raise RuntimeError("a hub's bug")

        await failing.start(explode, lambda c, n: None)
        healthy = await Node(LocalBroker(bus)).start()
        await failing.subscribe("all")
        await healthy.broker.subscribe("all")
        await healthy.broker.publish("all", b"hello")
        assert healthy.received == [("all", b"hello")]
        await failing.close()
        await healthy.broker.close()
    with caplog.at_level(logging.ERROR, logger="cyserve.push"):
        run(main)
    assert any("channel all" in r.getMessage() and r.exc_info for r in caplog.records)
