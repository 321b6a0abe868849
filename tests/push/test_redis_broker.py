"""RedisBroker against a real redis-server: two nodes in one loop and across processes —
order and exactly-once, a 10,000-message burst, presence (with a dead node's TTL), groups,
tokens, publishes waiting through an outage and failing loudly past their bounds; a node id per
start (a broker built before a fork); what Redis forgets (a flush, an expired run, a restart)
reported as precisely as can be shown, and the directories reset."""
from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import os
import signal
from typing import Any

import pytest
import redis

from cyserve.errors import BrokerUnavailable
from cyserve.push.broker import LocalBroker
from cyserve.push.redis import RedisBroker
from cyserve import App
from cyserve.server.process import loop_factory
from tests.push.redis_support import FAST, Node, RedisServer, free_port, peer, stop_peer, until
from tests.support import fetch, serving


def loop_name(request: pytest.FixtureRequest) -> str:
    return str(request.node.callspec.params["run"])


def numbers(messages: list[bytes]) -> list[int]:
    return [int(m.rstrip(b".")) for m in messages]


# ------------------------------------------------------------------------- the fixture itself
def test_redis_server_restarts_on_its_port_and_freezes(redis_server: RedisServer) -> None:
    port = redis_server.port
    assert redis_server.cli("SET", "k", "v") is True
    redis_server.restart()
    assert redis_server.port == port and redis_server.cli("GET", "k") is None  # no persistence
    redis_server.freeze()
    with pytest.raises(redis.TimeoutError):
        redis.Redis(port=port, socket_timeout=0.2).ping()
    redis_server.thaw()
    assert redis_server.cli("PING") is True


# ------------------------------------------------------------------------- publish/subscribe
def test_both_nodes_get_every_message_once_in_one_order(run: Any,
                                                        redis_server: RedisServer) -> None:
    async def main() -> None:
        async with Node(redis_server.url) as a, Node(redis_server.url) as b:
            await a.broker.subscribe("g:room")
            await b.broker.subscribe("g:room")
            # Both publish at once: each node sees each publisher's messages in its order,
            # and both nodes see one and the same interleaving (the channel's counter order).
            await asyncio.gather(
                *(a.broker.publish("g:room", b"a%d" % i) for i in range(200)),
                *(b.broker.publish("g:room", b"b%d" % i) for i in range(200)))
            await until(lambda: len(a.messages["g:room"]) == len(b.messages["g:room"]) == 400)
            assert a.messages["g:room"] == b.messages["g:room"]
            for who in (b"a", b"b"):
                mine = [m for m in a.messages["g:room"] if m.startswith(who)]
                assert mine == [who + b"%d" % i for i in range(200)]
            await asyncio.sleep(0.1)
            assert len(a.messages["g:room"]) == 400 and not a.lost and not b.lost
    run(main)


def test_a_burst_of_10000_arrives_in_order_exactly_once(run: Any,
                                                        redis_server: RedisServer) -> None:
    async def main() -> None:
        async with Node(redis_server.url) as a, Node(redis_server.url) as b:
            await a.broker.subscribe("g:burst")
            await b.broker.subscribe("g:burst")
            await asyncio.gather(*(a.broker.publish("g:burst", b"%d" % i) for i in range(10_000)))
            await until(lambda: len(b.messages["g:burst"]) >= 10_000
                        and len(a.messages["g:burst"]) >= 10_000, 20.0)
            await asyncio.sleep(0.05)
            expected = list(range(10_000))
            assert numbers(a.messages["g:burst"]) == expected
            assert numbers(b.messages["g:burst"]) == expected
            # One publish per message, never per subscriber: the counter is the message count.
            assert int(redis_server.cli("GET", "cyserve:push:{g:burst}:n")) == 10_000
    run(main, 40.0)


def test_only_subscribed_channels_are_delivered(run: Any, redis_server: RedisServer) -> None:
    async def main() -> None:
        async with Node(redis_server.url) as a, Node(redis_server.url) as b:
            await b.broker.subscribe("g:x")
            await b.broker.subscribe("g:x")           # idempotent
            await a.broker.publish("g:x", b"1")
            await a.broker.publish("g:y", b"not for b")
            await until(lambda: b.messages["g:x"] == [b"1"])
            await b.broker.unsubscribe("g:x")
            await b.broker.unsubscribe("g:x")         # idempotent
            await a.broker.publish("g:x", b"2")
            await b.broker.subscribe("g:x")
            await a.broker.publish("g:x", b"3")
            await until(lambda: b.messages["g:x"] == [b"1", b"3"])
            await asyncio.sleep(0.1)
            assert b.messages["g:x"] == [b"1", b"3"] and "g:y" not in b.messages
            assert not a.messages and not b.lost
    run(main)


def test_each_node_hears_its_own_channel_from_start(run: Any, redis_server: RedisServer) -> None:
    async def main() -> None:
        async with Node(redis_server.url) as a, Node(redis_server.url) as b:
            assert a.node_id != b.node_id
            await a.broker.publish(f"n:{b.node_id}", b"to b")
            await b.broker.publish(f"n:{b.node_id}", b"to b, from b")
            await until(lambda: len(b.messages[f"n:{b.node_id}"]) == 2)
            assert b.messages[f"n:{b.node_id}"] == [b"to b", b"to b, from b"]
            assert not a.messages
    run(main)


def test_binary_and_empty_payloads_pass_unchanged(run: Any, redis_server: RedisServer) -> None:
    payloads = [b"", b" ", b"\x00\r\n 1 2", bytes(range(256)) * 40, "é中🙂".encode()]

    async def main() -> None:
        async with Node(redis_server.url) as a:
            await a.broker.subscribe("g:bin ary{x}")
            for data in payloads:
                await a.broker.publish("g:bin ary{x}", data)
            await until(lambda: len(a.messages["g:bin ary{x}"]) == len(payloads))
            assert a.messages["g:bin ary{x}"] == payloads
    run(main)


def test_a_message_no_broker_published_is_dropped_and_said(
        run: Any, redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with Node(redis_server.url) as a:
            await a.broker.subscribe("g:x")
            await a.broker.publish("g:x", b"1")
            redis_server.cli("PUBLISH", "cyserve:push:g:x", "hello there")
            await a.broker.publish("g:x", b"2")
            await until(lambda: a.messages["g:x"] == [b"1", b"2"])
            assert any("no RedisBroker published" in r.getMessage() for r in caplog.records)
    run(main)


def test_two_processes_exchange_5000_messages_each_way(request: pytest.FixtureRequest, run: Any,
                                                       redis_server: RedisServer) -> None:
    async def main() -> None:
        child = peer(loop_name(request), "node", redis_server.url, "g:to-child", "g:to-parent",
                     "5000", "5000", stdin=True)
        try:
            assert child.stdout is not None and child.stdin is not None
            loop = asyncio.get_running_loop()
            ready = await asyncio.wait_for(loop.run_in_executor(None, child.stdout.readline), 20)
            assert ready.startswith("ready "), ready
            async with Node(redis_server.url) as parent:
                await parent.broker.subscribe("g:to-parent")
                child.stdin.write("go\n")
                child.stdin.flush()
                for start in range(0, 5000, 1000):
                    await asyncio.gather(*(parent.broker.publish("g:to-child", b"%d" % i)
                                           for i in range(start, start + 1000)))
                await until(lambda: len(parent.messages["g:to-parent"]) >= 5000, 30.0)
                result = json.loads(await asyncio.wait_for(
                    loop.run_in_executor(None, child.stdout.readline), 30))
                assert numbers(parent.messages["g:to-parent"]) == list(range(5000))
                assert result == {"received": list(range(5000)), "lost": []}
                assert not parent.lost
            assert await asyncio.wait_for(loop.run_in_executor(None, child.wait), 10) == 0
        finally:
            stop_peer(child)
    run(main, 60.0)


def test_an_http_handler_uses_the_broker_in_its_first_step(run: Any,
                                                          redis_server: RedisServer) -> None:
    """A handler's first step runs inline, in its own Task (cyserve/_core/http/eager.pyx): the
    broker's calls work there (redis-py's timeouts need a Task), and publishes past a full
    buffer wait for room."""
    async def main() -> None:
        async with Node(redis_server.url, publish_buffer=1) as a, Node(redis_server.url) as b:
            await b.broker.subscribe("g:http")
            app = App()

            @app.post("/notify/{client_id}")
            async def notify(request: Any, client_id: str) -> dict[str, Any]:
                await a.broker.claim(client_id)
                where = await a.broker.locate(client_id)
                await a.broker.subscribe("g:other")
                await asyncio.gather(*(a.broker.publish("g:http", b"%d" % i) for i in range(3)))
                members = await a.broker.group_members("g:http")
                return {"node": where, "members": sorted(members)}

            async with serving(app) as server:
                # No idle pooled connection: the handler's first call connects, in that step.
                client = a.broker.client
                assert client is not None
                await client.connection_pool.disconnect()
                reply = await fetch(server.port, "POST", "/notify/c1")
            assert reply.status == 200, reply.body
            assert json.loads(reply.body) == {"node": a.node_id, "members": []}
            await until(lambda: b.messages["g:http"] == [b"0", b"1", b"2"])
    run(main)


# ------------------------------------------------------------------------- directories
def test_presence_follows_claims_and_releases(run: Any, redis_server: RedisServer) -> None:
    async def main() -> None:
        async with Node(redis_server.url) as a, Node(redis_server.url) as b:
            assert await b.broker.locate("c1") is None
            await a.broker.claim("c1")
            assert await b.broker.locate("c1") == a.node_id
            await b.broker.release("c1")              # not b's to release
            assert await b.broker.locate("c1") == a.node_id
            # A resume handed the session over: b claims it; a's late release leaves it to b.
            await b.broker.claim("c1")
            await a.broker.release("c1")
            assert await a.broker.locate("c1") == b.node_id
            await b.broker.release("c1")
            assert await a.broker.locate("c1") is None
    run(main)


def test_presence_outlives_its_ttl_while_the_node_lives(run: Any,
                                                        redis_server: RedisServer) -> None:
    async def main() -> None:
        async with Node(redis_server.url, presence_ttl_s=0.9) as a:
            await a.broker.claim("c1")
            await a.broker.claim("c2")
            await asyncio.sleep(2.0)                  # over 2 TTLs: refreshed, not expired
            assert await a.broker.locate("c1") == a.node_id
            assert await a.broker.locate("c2") == a.node_id
            # A Redis that lost the keys (restart, flush) gets them again at the next refresh.
            redis_server.cli("FLUSHALL")
            await until(lambda: redis_server.cli("EXISTS", "cyserve:push:presence:c1") == 1, 2.0)
            assert await a.broker.locate("c2") == a.node_id
    run(main)


def test_a_dead_nodes_clients_are_forgotten_after_the_ttl(request: pytest.FixtureRequest, run: Any,
                                                         redis_server: RedisServer) -> None:
    async def main() -> None:
        child = peer(loop_name(request), "claim", redis_server.url, "c-dead", "room", "1.0")
        try:
            assert child.stdout is not None
            loop = asyncio.get_running_loop()
            ready = await asyncio.wait_for(loop.run_in_executor(None, child.stdout.readline), 20)
            assert ready.startswith("ready "), ready
            child_node = ready.split()[1]
            async with Node(redis_server.url) as a:
                await a.broker.claim("c-alive")
                await a.broker.group_add("room", "c-alive")
                assert await a.broker.locate("c-dead") == child_node
                assert await a.broker.group_members("room") == {"c-alive", "c-dead"}
                await asyncio.sleep(1.2)              # the child refreshes its claim
                assert await a.broker.locate("c-dead") == child_node
                assert await a.broker.takers() == 1   # the child's node is registered as up
                child.send_signal(signal.SIGKILL)     # no close, no release
                await asyncio.wait_for(loop.run_in_executor(None, child.wait), 10)
                gone = 0.0
                while await a.broker.locate("c-dead") is not None:
                    assert gone < 2.0, "a dead node's client was still located after 2 TTLs"
                    await asyncio.sleep(0.05)
                    gone += 0.05
                assert await a.broker.group_members("room") == {"c-alive"}
                # Its registry entry expired with it: nowhere for a stopping node's clients.
                assert await a.broker.takers() == 0
                # Pruned from the set itself, not only filtered.
                assert redis_server.cli("SMEMBERS", "cyserve:push:group:room") == {b"c-alive"}
        finally:
            stop_peer(child)
    run(main, 30.0)


def test_the_node_registry_counts_the_other_nodes_up_and_not_withdrawn(
        run: Any, redis_server: RedisServer) -> None:
    async def main() -> None:
        async with Node(redis_server.url, presence_ttl_s=0.6) as a, \
                Node(redis_server.url, presence_ttl_s=0.6) as b:
            assert (await a.broker.takers(), await b.broker.takers()) == (1, 1)
            await b.broker.withdraw()
            await b.broker.withdraw()   # idempotent
            # b no longer counts for a; b still sees a (its own clients may go there).
            assert (await a.broker.takers(), await b.broker.takers()) == (0, 1)
            await asyncio.sleep(0.5)    # refreshes ran: a withdrawn node is not written again
            assert await a.broker.takers() == 0
            # A Redis that lost the registry gets every node up in it again at its next refresh.
            redis_server.cli("FLUSHALL")
            assert await b.broker.takers() == 0
            deadline = asyncio.get_running_loop().time() + 2.0
            while await b.broker.takers() != 1:
                assert asyncio.get_running_loop().time() < deadline, "a was not registered again"
                await asyncio.sleep(0.02)
            assert await a.broker.takers() == 0
        # Closed nodes leave nothing in the registry.
        assert redis_server.cli("ZCARD", "cyserve:push:nodes") == 0
        with pytest.raises(BrokerUnavailable, match="takers"):
            await a.broker.takers()
    run(main)


def test_groups_are_shared_by_every_node(run: Any, redis_server: RedisServer) -> None:
    async def main() -> None:
        async with Node(redis_server.url) as a, Node(redis_server.url) as b:
            for client, node in (("a1", a), ("a2", a), ("b1", b)):
                await node.broker.claim(client)
                await node.broker.group_add("room", client)
            await a.broker.group_add("room", "a1")      # idempotent
            assert await b.broker.group_members("room") == {"a1", "a2", "b1"}
            await b.broker.group_remove("room", "a2")
            assert await a.broker.group_members("room") == {"a1", "b1"}
            assert await a.broker.group_members("nobody") == set()
            # A member whose node released it without leaving the group is not a member.
            await b.broker.release("b1")
            assert await a.broker.group_members("room") == {"a1"}
    run(main)


def test_tokens_open_once_and_expire(run: Any, redis_server: RedisServer) -> None:
    async def main() -> None:
        async with Node(redis_server.url) as a, Node(redis_server.url) as b:
            await a.broker.put_token("h1", "client-1", 30.0)
            await a.broker.put_token("h2", "client-2", 0.2)
            assert await b.broker.take_token("h1") == "client-1"
            assert await a.broker.take_token("h1") is None   # single use
            await asyncio.sleep(0.4)
            assert await b.broker.take_token("h2") is None   # expired
            assert await b.broker.take_token("never") is None
            # Two nodes racing for one token: exactly one gets it.
            await a.broker.put_token("h3", "client-3", 30.0)
            results = await asyncio.gather(a.broker.take_token("h3"), b.broker.take_token("h3"))
            assert sorted(results, key=str) == [None, "client-3"]
    run(main)


# ------------------------------------------------------------------------- outages
def test_a_publish_waits_for_redis_and_is_delivered_once_it_is_back(
        run: Any, redis_server: RedisServer) -> None:
    async def main() -> None:
        async with Node(redis_server.url) as a, Node(redis_server.url) as b:
            await b.broker.subscribe("g:w")
            await a.broker.publish("g:w", b"before")
            await until(lambda: b.messages["g:w"] == [b"before"])
            redis_server.stop()
            waiting = [asyncio.ensure_future(a.broker.publish("g:w", b"during%d" % i))
                       for i in range(50)]
            await asyncio.sleep(0.5)
            assert not any(task.done() for task in waiting)
            redis_server.start()
            await asyncio.wait_for(asyncio.gather(*waiting), 5.0)
            await until(lambda: len(b.messages["g:w"]) == 51, 5.0)
            assert b.messages["g:w"] == [b"before"] + [b"during%d" % i for i in range(50)]
            # Redis came back empty (no persistence): what it may have held undelivered before
            # cannot be counted, and is reported so (0), never silently.
            assert ("g:w", 0) in b.lost and all(count == 0 for _, count in b.lost)
    run(main)


def test_a_publish_fails_loudly_past_its_wait(run: Any, redis_server: RedisServer) -> None:
    async def main() -> None:
        async with Node(redis_server.url, publish_timeout_s=0.5) as a:
            await a.broker.publish("g:x", b"fine")
            redis_server.stop()
            await asyncio.sleep(0.1)   # the closed connection is seen: nothing is ambiguous
            loop = asyncio.get_running_loop()
            start = loop.time()
            with pytest.raises(BrokerUnavailable) as info:
                await a.broker.publish("g:x", b"lost?")
            assert 0.4 <= loop.time() - start < 2.0
            assert "not published" in str(info.value) and redis_server.url in str(info.value)
            # Nothing of it is sent later: the subscriber never sees it once Redis is back.
            await a.broker.subscribe("g:x")
            redis_server.start()
            await a.broker.publish("g:x", b"after")
            await until(lambda: b"after" in a.messages["g:x"])
            assert b"lost?" not in a.messages["g:x"]
    run(main)


def test_a_publish_fails_at_once_when_the_buffer_is_full(run: Any,
                                                          redis_server: RedisServer) -> None:
    async def main() -> None:
        async with Node(redis_server.url, publish_buffer=3) as a:
            await a.broker.subscribe("g:x")
            await a.broker.publish("g:x", b"0")
            redis_server.stop()
            waiting = [asyncio.ensure_future(a.broker.publish("g:x", b"%d" % i)) for i in (1, 2, 3)]
            await asyncio.sleep(0.3)
            with pytest.raises(BrokerUnavailable, match="already wait"):
                await asyncio.wait_for(a.broker.publish("g:x", b"4"), 0.2)
            redis_server.start()
            await asyncio.wait_for(asyncio.gather(*waiting), 5.0)
            await until(lambda: a.messages["g:x"][-3:] == [b"1", b"2", b"3"])
            assert b"4" not in a.messages["g:x"]
    run(main)


def test_an_error_reply_fails_that_publish_only(run: Any, redis_server: RedisServer) -> None:
    async def main() -> None:
        async with Node(redis_server.url) as a:
            await a.broker.subscribe("g:x")
            redis_server.cli("CONFIG", "SET", "maxmemory", "1")
            redis_server.cli("CONFIG", "SET", "maxmemory-policy", "noeviction")
            with pytest.raises(BrokerUnavailable, match="refused it: .*maxmemory"):
                await a.broker.publish("g:x", b"too much")
            redis_server.cli("CONFIG", "SET", "maxmemory", "0")
            await a.broker.publish("g:x", b"fine")
            await until(lambda: a.messages["g:x"] == [b"fine"])
    run(main)


def test_a_flushed_script_cache_loses_and_reorders_nothing(run: Any,
                                                            redis_server: RedisServer) -> None:
    async def main() -> None:
        async with Node(redis_server.url) as a, Node(redis_server.url) as b:
            await b.broker.subscribe("g:x")

            async def publisher() -> None:
                for start in range(0, 3000, 100):
                    await asyncio.gather(*(a.broker.publish("g:x", b"%d" % i)
                                           for i in range(start, start + 100)))

            task = asyncio.ensure_future(publisher())
            for _ in range(5):
                await asyncio.sleep(0.02)
                redis_server.cli("SCRIPT", "FLUSH")
            await asyncio.wait_for(task, 10.0)
            await until(lambda: len(b.messages["g:x"]) >= 3000, 10.0)
            assert numbers(b.messages["g:x"]) == list(range(3000))
    run(main)


def test_start_fails_when_redis_is_unreachable(run: Any) -> None:
    async def main() -> None:
        broker = RedisBroker(f"redis://:hush@127.0.0.1:{free_port()}/0", publish_timeout_s=0.5,
                             health_check_s=0.1)
        with pytest.raises(BrokerUnavailable, match="cannot reach Redis") as info:
            await broker.start(lambda c, d: None, lambda c, n: None)
        # The password is never in what is logged or raised.
        assert "hush" not in str(info.value) and "hush" not in repr(broker)
        assert ":***@127.0.0.1" in str(info.value)
        with pytest.raises(BrokerUnavailable):
            await broker.publish("g:x", b"1")
        await broker.close()
    run(main)


def test_close_releases_everything_and_is_idempotent(run: Any, redis_server: RedisServer) -> None:
    async def main() -> None:
        async with Node(redis_server.url) as a:
            b = Node(redis_server.url)
            await b.__aenter__()
            await b.broker.claim("c1")
            await b.broker.subscribe("g:x")
            await a.broker.publish(f"n:{b.node_id}", b"hello")
            await until(lambda: len(b.messages[f"n:{b.node_id}"]) == 1)
            pending = asyncio.ensure_future(b.broker.publish("g:x", b"last"))
            await asyncio.sleep(0)                    # queued, not yet confirmed
            await b.broker.close()
            await pending                             # what was queued is sent on close
            await b.broker.close()
            assert await a.broker.locate("c1") is None
            assert redis_server.cli("EXISTS", f"cyserve:push:{{n:{b.node_id}}}:s") == 0
            with pytest.raises(BrokerUnavailable):
                await b.broker.publish("g:x", b"after close")
            clients = redis_server.cli("CLIENT", "LIST").decode()
            assert b.node_id not in clients
    run(main)


@pytest.mark.parametrize("option, value", [
    ("history", 0), ("publish_buffer", 0), ("health_check_s", 0.0), ("presence_ttl_s", -1.0),
    ("publish_timeout_s", float("inf")), ("reconnect_max_s", float("nan")), ("retain_s", 0.0)])
def test_options_are_checked(option: str, value: Any) -> None:
    with pytest.raises(ValueError, match=option):
        RedisBroker("redis://127.0.0.1:6379/0", **{option: value})



# ------------------------------------------------------------------------- node ids and starts
def _start_here(broker: Any, loop: str, pipe: Any) -> None:
    """In a forked child: start the broker built before the fork on a fresh loop of the kind,
    send (node id, pid), close."""
    async def main() -> None:
        await broker.start(lambda channel, data: None, lambda channel, count: None)
        try:
            pipe.send((broker.node_id, os.getpid()))
        finally:
            await broker.close()
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        runner.run(main())


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("kind", ["redis", "local"])
def test_a_broker_built_before_a_fork_is_a_node_of_its_own_in_each_process(
        loop: str, kind: str, redis_server: RedisServer) -> None:
    """App.run(workers=2) builds the app (and its hub's broker) once and forks: each worker
    starts the same object, and must be a node of its own (n:<node id> routing)."""
    broker = RedisBroker(redis_server.url, **FAST) if kind == "redis" else LocalBroker()
    context = multiprocessing.get_context("fork")
    ids: list[tuple[str, int]] = []
    children = []
    try:
        for _ in range(2):
            ours, theirs = context.Pipe()
            child = context.Process(target=_start_here, args=(broker, loop, theirs))
            child.start()
            children.append(child)
            assert ours.poll(15.0), "the child did not start its broker"
            ids.append(ours.recv())
            ours.close()
            theirs.close()
        for child in children:
            child.join(15.0)
            assert child.exitcode == 0
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
                child.join(5.0)
    (first, first_pid), (second, second_pid) = ids
    assert first and second and first != second
    if kind == "redis":
        assert f"-{first_pid}-" in first and f"-{second_pid}-" in second
    assert broker.node_id == ""      # never started here


def test_a_broker_whose_start_failed_closes_without_a_word(
        run: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Nothing of its own is in Redis: closing it has nothing to release, and says nothing."""
    async def main() -> None:
        broker = RedisBroker(f"redis://127.0.0.1:{free_port()}/0", publish_timeout_s=0.3,
                             health_check_s=0.1)
        with pytest.raises(BrokerUnavailable):
            await broker.start(lambda c, d: None, lambda c, n: None)
        await broker.close()
    with caplog.at_level(logging.DEBUG, logger="cyserve.push"):
        run(main)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


# ------------------------------------------------------------------------- what Redis forgets
class Watched(Node):
    """A started broker that also counts its ``on_reset`` calls."""

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **{"presence_ttl_s": 0.6, **options})
        self.resets = 0

    def _on_reset(self) -> None:
        self.resets += 1

    async def __aenter__(self) -> "Watched":
        await self.broker.start(self._on_message, self._on_lost, self._on_reset)
        return self

    def generation(self) -> int:
        return self.broker._subscriber._caught_up  # type: ignore[union-attr]


def test_a_flush_while_connected_costs_no_message_and_resets_the_directories(
        run: Any, redis_server: RedisServer) -> None:
    """FLUSHALL with every pub/sub connection up: the counters start again and delivery goes on
    with them (nothing missed, nothing reported lost); each node finds the new epoch, shows
    with a PONG that its connection outlived the flush, and calls on_reset; a later reconnect
    then counts from the new run, still without a loss report."""
    async def main() -> None:
        async with Watched(redis_server.url) as a, Watched(redis_server.url) as b:
            for node in (a, b):
                await node.broker.subscribe("g:x")
            await a.broker.claim("c1")
            for i in range(3):
                await a.broker.publish("g:x", b"%d" % i)
            await until(lambda: len(a.messages["g:x"]) == len(b.messages["g:x"]) == 3)
            assert redis_server.cli("FLUSHALL") is True
            for i in range(3, 6):
                await b.broker.publish("g:x", b"%d" % i)
            await until(lambda: a.resets >= 1 and b.resets >= 1, 5.0, "on_reset on both")
            assert await b.broker.locate("c1") == a.node_id      # the presence, written again
            gen = a.generation()
            assert redis_server.cli("CLIENT", "KILL", "TYPE", "pubsub") == 2
            await until(lambda: a.generation() > gen, 5.0, "a subscribed again")
            await b.broker.publish("g:x", b"6")
            await until(lambda: len(a.messages["g:x"]) == len(b.messages["g:x"]) == 7)
            assert numbers(a.messages["g:x"]) == numbers(b.messages["g:x"]) == list(range(7))
            assert a.lost == b.lost == []
    run(main, 30.0)


@pytest.mark.parametrize("retain_s, reported", [(3.0, False), (1.0, True)],
                         ids=["synced-after-it-ended", "not-provably"])
def test_a_run_that_expired_while_cut_off_is_reported_only_if_it_may_hold_a_miss(
        run: Any, redis_server: RedisServer, retain_s: float, reported: bool) -> None:
    """A channel's keys expire retain_s after its last publish; a node cut off after that finds
    the counter started again.  Synced (a PONG) less than retain_s (less a margin) before,
    it had every message of the expired run: no loss report.  Otherwise it cannot tell:
    on_lost(channel, 0)."""
    async def main() -> None:
        async with Watched(redis_server.url, retain_s=retain_s) as a:
            await a.broker.subscribe("g:x")
            for i in range(3):
                await a.broker.publish("g:x", b"%d" % i)
            await until(lambda: len(a.messages["g:x"]) == 3)
            counter = "cyserve:push:{g:x}:n"
            await until(lambda: redis_server.cli("EXISTS", counter) == 0, retain_s + 3.0,
                        "the channel's keys expired")
            gen = a.generation()
            assert redis_server.cli("CLIENT", "KILL", "TYPE", "pubsub") == 1
            await until(lambda: a.generation() > gen, 5.0, "subscribed again")
            await a.broker.publish("g:x", b"3")
            await until(lambda: len(a.messages["g:x"]) == 4)
            assert numbers(a.messages["g:x"]) == list(range(4))
            assert a.lost == ([("g:x", 0)] if reported else [])
            assert a.resets == 0
    run(main, 30.0)


def test_a_restart_without_persistence_reports_every_channel_and_resets(
        run: Any, redis_server: RedisServer) -> None:
    """Redis restarted without its data while the node was cut off: what it published between
    the node's last sync and the restart cannot be counted nor shown to be nothing, so every
    channel is reported (0), and the directories are reset."""
    async def main() -> None:
        async with Watched(redis_server.url) as a:
            await a.broker.subscribe("g:x")
            await a.broker.publish("g:x", b"0")
            await until(lambda: len(a.messages["g:x"]) == 1)
            gen = a.generation()
            redis_server.restart()
            await until(lambda: a.generation() > gen, 8.0, "subscribed again")
            await until(lambda: a.resets >= 1, 5.0, "on_reset")
            assert sorted(a.lost) == sorted([("g:x", 0), (f"n:{a.node_id}", 0)])
            await a.broker.publish("g:x", b"1")
            await until(lambda: len(a.messages["g:x"]) == 2)
    run(main, 30.0)


def test_presence_entries_redis_forgot_are_set_again_and_reset_the_directories(
        run: Any, redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    """Presence keys that expired while the node could not refresh them (here: deleted): other
    nodes may have pruned its clients from the groups meanwhile, so besides setting them again
    the broker calls on_reset, with one warning; its messages are not concerned (no loss)."""
    async def main() -> None:
        async with Watched(redis_server.url) as a:
            for client_id in ("c1", "c2"):
                await a.broker.claim(client_id)
            assert redis_server.cli("DEL", "cyserve:push:presence:c1") == 1
            await until(lambda: a.resets == 1, 5.0, "on_reset")
            assert await a.broker.locate("c1") == a.node_id
            await asyncio.sleep(0.5)        # a few more refreshes: nothing more to say
            assert a.resets == 1 and a.lost == []
    with caplog.at_level(logging.INFO, logger="cyserve.push"):
        run(main, 20.0)
    forgot = [r.getMessage() for r in caplog.records if "had forgotten" in r.getMessage()]
    assert len(forgot) == 1 and "1 of this node's 2 clients" in forgot[0]


def test_a_flush_between_a_channels_baseline_and_its_subscription_is_reported_for_it(
        run: Any, redis_server: RedisServer) -> None:
    """What was published after a channel's baseline and before its SUBSCRIBE took effect comes
    from the stream, unless Redis lost its data in between: then that channel alone is
    reported (0); a channel subscribed before the flush is not (its connection saw it all)."""
    async def main() -> None:
        async with Watched(redis_server.url) as a:
            await a.broker.subscribe("g:before")
            subscriber = a.broker._subscriber
            assert subscriber is not None and subscriber._conn is not None
            conn = subscriber._conn
            send_command = conn.send_command

            async def flushing_first(*args: Any, **kwargs: Any) -> Any:
                if args[:1] == ("SUBSCRIBE",):
                    assert redis_server.cli("FLUSHALL") is True
                return await send_command(*args, **kwargs)

            conn.send_command = flushing_first  # type: ignore[method-assign]
            try:
                await a.broker.subscribe("g:during")
            finally:
                conn.send_command = send_command  # type: ignore[method-assign]
            assert a.lost == [("g:during", 0)]
            await until(lambda: a.resets == 1, 5.0, "on_reset (the flush, seen connected)")
            for channel in ("g:before", "g:during"):
                await a.broker.publish(channel, b"after")
            await until(lambda: a.messages["g:before"] == a.messages["g:during"] == [b"after"])
            assert a.lost == [("g:during", 0)]
    run(main, 20.0)
