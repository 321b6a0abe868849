"""RedisBroker through the Redis faults of issue 11, against a real redis-server: CLIENT KILL TYPE
pubsub, a pub/sub output-buffer-limit disconnect, a restart on the same port, a freeze (SIGSTOP)
and thaw, and a history capped below what a cut-off node missed.

After each: both nodes are subscribed again within seconds, a canary published after recovery
reaches both, every message published before and during the fault arrives exactly once and in
order (or is counted by ``on_lost``), and each node logs exactly one line when its pub/sub
connection is lost and one when it is back."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from tests.push.redis_support import Node, RedisServer, blocking_publish, until

CHANNEL = "g:fault"


def loop_name(request: pytest.FixtureRequest) -> str:
    return str(request.node.callspec.params["run"])


def lines(caplog: pytest.LogCaptureFixture, node: Node, text: str) -> int:
    return sum(1 for r in caplog.records if r.name == "cyserve.push"
               and node.node_id in r.getMessage() and text in r.getMessage())


def lost_lines(caplog: pytest.LogCaptureFixture, node: Node) -> int:
    return lines(caplog, node, "lost the Redis pub/sub connection")


def back_lines(caplog: pytest.LogCaptureFixture, node: Node) -> int:
    return lines(caplog, node, "Redis pub/sub back")


def received(node: Node) -> list[bytes]:
    return node.messages[CHANNEL]


def numbered(first: int, count: int) -> list[bytes]:
    return [b"%d" % i for i in range(first, first + count)]


async def subscribed_pair(url: str, **options: Any) -> tuple[Node, Node]:
    a = await Node(url, **options).__aenter__()
    b = await Node(url, **options).__aenter__()
    await a.broker.subscribe(CHANNEL)
    await b.broker.subscribe(CHANNEL)
    return a, b


async def publish_range(node: Node, first: int, count: int) -> None:
    await asyncio.gather(*(node.broker.publish(CHANNEL, b"%d" % i)
                           for i in range(first, first + count)))


async def recovered_and_canary(caplog: pytest.LogCaptureFixture, a: Node, b: Node,
                               expected: list[bytes]) -> None:
    """Both nodes back within seconds, then a canary published now reaches both, after
    exactly ``expected``; one lost line and one back line per node."""
    await until(lambda: back_lines(caplog, a) == 1 and back_lines(caplog, b) == 1, 8.0,
                "both nodes subscribed again")
    await a.broker.publish(CHANNEL, b"canary")
    await until(lambda: received(a)[-1:] == received(b)[-1:] == [b"canary"], 5.0, "the canary")
    await asyncio.sleep(0.2)   # a late copy would show now
    assert received(a) == received(b) == expected + [b"canary"]
    for node in (a, b):
        assert (lost_lines(caplog, node), back_lines(caplog, node)) == (1, 1)


async def close(*nodes: Node) -> None:
    for node in nodes:
        await node.broker.close()


@pytest.fixture
def caplog_push(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="cyserve.push")
    return caplog


def test_client_kill_pubsub(request: pytest.FixtureRequest, run: Any, redis_server: RedisServer,
                            caplog_push: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        a, b = await subscribed_pair(redis_server.url)
        try:
            await publish_range(a, 0, 100)
            await until(lambda: len(received(a)) == len(received(b)) == 100)
            # Killed, and 100 published by another process before either node can notice.
            assert redis_server.cli("CLIENT", "KILL", "TYPE", "pubsub") == 2
            blocking_publish(loop_name(request), redis_server.url, CHANNEL, 100, 100)
            await recovered_and_canary(caplog_push, a, b, numbered(0, 200))
            assert not a.lost and not b.lost
            assert "100 messages recovered, 0 lost" in " ".join(
                r.getMessage() for r in caplog_push.records if b.node_id in r.getMessage())
        finally:
            await close(a, b)
    run(main, 30.0)


def test_output_buffer_limit_disconnect(run: Any, redis_server: RedisServer,
                                        caplog_push: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        a, b = await subscribed_pair(redis_server.url)
        try:
            await publish_range(a, 0, 50)
            await until(lambda: len(received(a)) == len(received(b)) == 50)
            # Redis drops a subscriber whose unsent output passes the pubsub class's limit: a
            # 200 KB message against a 64 KB limit does it at once, to both.
            redis_server.cli("CONFIG", "SET", "client-output-buffer-limit", "pubsub 64kb 0 0")
            big = b"x" * 200_000
            await a.broker.publish(CHANNEL, big)
            await until(lambda: lost_lines(caplog_push, a) == 1 and lost_lines(caplog_push, b) == 1,
                        5.0, "both dropped")
            redis_server.cli("CONFIG", "SET", "client-output-buffer-limit",
                             "pubsub 32mb 8mb 60")
            await publish_range(a, 50, 50)
            await recovered_and_canary(caplog_push, a, b,
                                       numbered(0, 50) + [big] + numbered(50, 50))
            assert "output buffer limits" in redis_server.log()
            assert not a.lost and not b.lost
        finally:
            await close(a, b)
    run(main, 30.0)


def test_restart_on_the_same_port(run: Any, redis_server: RedisServer,
                                  caplog_push: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        a, b = await subscribed_pair(redis_server.url)
        try:
            await publish_range(a, 0, 100)
            await until(lambda: len(received(a)) == len(received(b)) == 100)
            redis_server.stop()
            during = asyncio.ensure_future(publish_range(a, 100, 100))
            await asyncio.sleep(0.5)
            assert not during.done()                  # waiting for Redis, not dropped
            redis_server.start()
            await asyncio.wait_for(during, 5.0)
            await recovered_and_canary(caplog_push, a, b, numbered(0, 200))
            # Redis came back without its data: each node says it cannot count what Redis
            # might have held for it (0), once per channel, never a silent loss.
            for node in (a, b):
                assert sorted(node.lost) == sorted([(CHANNEL, 0), (f"n:{node.node_id}", 0)])
        finally:
            await close(a, b)
    run(main, 30.0)


def test_freeze_then_thaw(run: Any, redis_server: RedisServer,
                          caplog_push: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        a, b = await subscribed_pair(redis_server.url)
        try:
            await publish_range(a, 0, 100)
            await until(lambda: len(received(a)) == len(received(b)) == 100)
            redis_server.freeze()
            # Written to the frozen server's socket, unanswered: the publisher gives up on
            # that connection and sends them again on a new one after the thaw, while the
            # server also runs the first copies: each message must still arrive once.
            during = asyncio.ensure_future(publish_range(a, 100, 100))
            await until(lambda: lost_lines(caplog_push, a) == 1 and lost_lines(caplog_push, b) == 1,
                        5.0, "the health checks found the frozen server")
            assert not during.done()
            redis_server.thaw()
            await asyncio.wait_for(during, 5.0)
            await recovered_and_canary(caplog_push, a, b, numbered(0, 200))
            assert not a.lost and not b.lost
        finally:
            redis_server.thaw()
            await close(a, b)
    run(main, 30.0)


def test_history_capped_below_what_was_missed(request: pytest.FixtureRequest, run: Any,
                                              redis_server: RedisServer,
                                              caplog_push: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        a, b = await subscribed_pair(redis_server.url)
        try:
            await publish_range(a, 0, 20)
            await until(lambda: len(received(a)) == len(received(b)) == 20)
            assert redis_server.cli("CLIENT", "KILL", "TYPE", "pubsub") == 2
            # 100 published while both are cut off, by a publisher keeping 10: 90 are gone.
            blocking_publish(loop_name(request), redis_server.url, CHANNEL, 20, 100, history=10)
            await recovered_and_canary(caplog_push, a, b, numbered(0, 20) + numbered(110, 10))
            assert a.lost == b.lost == [(CHANNEL, 90)]
            assert "10 messages recovered, 90 lost" in " ".join(
                r.getMessage() for r in caplog_push.records if a.node_id in r.getMessage())
        finally:
            await close(a, b)
    run(main, 30.0)
