"""Two push hubs as two nodes joined through a real redis-server (``RedisBroker``), each served on
its own sockets of 127.0.0.1, on both loops: a group split over both nodes gets every publish
once and in order through one Redis publish per message, also in a burst and across a pub/sub
disconnect (``CLIENT KILL TYPE pubsub``); send, join, online and disconnect reach a client on
the other node; a resume on the other node moves the session with nothing lost or doubled;
after Redis lost its data (FLUSHALL, a restart without persistence) the hubs write their
sessions there again, and their members hear of it only when something may have been lost;
the workers of App.run(workers=2), forked after the hub was built, are nodes of their own.
"""
from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from cyserve._core.push.frames import KIND_CLOSE, KIND_GAP, KIND_PUSH
from cyserve.errors import PushClosed
from cyserve.push import Push, connect
from cyserve.push import PushClient as PushClient_
from cyserve.push.redis import RedisBroker
from tests.push.hub_support import PushClient, Served, serving_hub, wait_until
from tests.push.redis_support import RedisServer, free_port
from tests.push.test_hub import group_hub, member, nothing_more, pushed

ROOT = Path(__file__).resolve().parents[2]


class CountingRedisBroker(RedisBroker):
    """A RedisBroker that counts its publishes per channel."""

    def __init__(self, url: str) -> None:
        super().__init__(url, health_check_s=0.2, reconnect_max_s=0.2, presence_ttl_s=3.0)
        self.published: dict[str, int] = {}

    async def publish(self, channel: str, data: bytes) -> None:
        self.published[channel] = self.published.get(channel, 0) + 1
        await super().publish(channel, data)


@contextlib.asynccontextmanager
async def two_nodes(url: str) -> AsyncIterator[tuple[Served, Served]]:
    # A node stopping waits this long for its sessions to move to a node that shares Redis.
    async with serving_hub(group_hub(broker=CountingRedisBroker(url)), grace_s=0.3) as a:
        async with serving_hub(group_hub(broker=CountingRedisBroker(url)), grace_s=0.3) as b:
            yield a, b


async def all_pushes(client: PushClient, count: int) -> list[Any]:
    frames = await client.pushes(count, timeout_s=10.0)
    assert all(f.kind == KIND_PUSH for f in frames), [f for f in frames if f.kind != KIND_PUSH][:3]
    return frames


def test_a_group_over_two_nodes_gets_each_publish_once_in_order(run: Any, redis_server: RedisServer) -> None:
    async def main() -> None:
        async with two_nodes(redis_server.url) as (a, b):
            clients = [await member(a, "tcp-binary", "room"), await member(a, "ws-text", "room"),
                       await member(b, "tcp-json", "room"), await member(b, "ws-binary", "room")]
            count = 1000
            for n in range(1, count + 1):
                await (a if n % 2 else b).hub.publish("room", n)
            orders = []
            for client in clients:
                frames = await all_pushes(client, count)
                assert [f.id for f in frames] == list(range(1, count + 1))
                values = [client.value(f.payload) for f in frames]
                assert sorted(values) == list(range(1, count + 1))
                # Each publisher's messages in its order...
                assert [v for v in values if v % 2] == list(range(1, count + 1, 2))
                assert [v for v in values if not v % 2] == list(range(2, count + 1, 2))
                orders.append(values)
            # ...and one order for every member, on both nodes (the channel's).
            assert all(order == orders[0] for order in orders)
            # One Redis publish per message, never per member.
            published = [node.hub.broker.published.get("g:room", 0)  # type: ignore[attr-defined]
                         for node in (a, b)]
            assert published == [count // 2, count // 2]
            for client in clients:
                await nothing_more(client, 0.05)
                await client.close()
    run(main, timeout_s=60)


def test_a_pubsub_disconnect_loses_nothing_a_member_sees(run: Any, redis_server: RedisServer) -> None:
    async def main() -> None:
        async with two_nodes(redis_server.url) as (a, b):
            on_a = await member(a, "tcp-binary", "room")
            on_b = await member(b, "ws-binary", "room")
            for n in range(1, 201):
                await a.hub.publish("room", n)
                if n == 100:
                    redis_server.cli("CLIENT", "KILL", "TYPE", "pubsub")
            for client in (on_a, on_b):
                frames = await all_pushes(client, 200)
                assert [(f.id, client.value(f.payload)) for f in frames] == [
                    (n, n) for n in range(1, 201)]
                await client.close()
    run(main, timeout_s=60)


def test_send_join_online_and_disconnect_through_redis(run: Any, redis_server: RedisServer) -> None:
    async def main() -> None:
        async with two_nodes(redis_server.url) as (a, b):
            client = await b.session("tcp-json")
            client_id = client.welcome["client_id"]
            hub = a.hub
            assert await hub.online(client_id)
            assert await hub.send(client_id, "direct") is True
            await hub.join(client_id, "g")
            assert await hub.members("g") == {client_id}
            await hub.publish("g", "grouped")
            assert pushed(client, await client.pushes(2)) == [(1, "", "direct"), (2, "g", "grouped")]
            await hub.disconnect(client_id, "bye")
            frames = await client.closed()
            assert [(f.kind, f.name) for f in frames] == [(KIND_CLOSE, "policy")]
            await client.close()
            await wait_until(lambda: client_id not in b.hub._sessions)
            assert not await hub.online(client_id)
            assert await hub.send(client_id, "gone") is False
            assert await hub.members("g") == set()
    run(main, timeout_s=60)


def test_a_resume_on_the_other_node_moves_the_session_through_redis(
        run: Any, redis_server: RedisServer) -> None:
    async def main() -> None:
        async with two_nodes(redis_server.url) as (a, b):
            client = await member(a, "ws-binary", "room")
            client_id = client.welcome["client_id"]
            await a.hub.publish("room", 1)
            assert [f.id for f in await client.pushes(1)] == [1]
            await client.abort()
            for n in range(2, 5):
                await b.hub.publish("room", n)
            moved = await b.session("tcp-binary", resume_token=client.welcome["resume_token"],
                                    last_seq=1)
            assert (moved.welcome["resumed"], moved.welcome["client_id"]) == (True, client_id)
            await a.hub.publish("room", 5)
            assert await a.hub.send(client_id, 6) is True
            assert pushed(moved, await moved.pushes(5)) == [
                (2, "room", 2), (3, "room", 3), (4, "room", 4), (5, "room", 5), (6, "", 6)]
            await nothing_more(moved)
            assert client_id not in a.hub._sessions
            assert await a.hub.members("room") == {client_id}
            await moved.close()
    run(main, timeout_s=60)


def test_a_stopping_node_waits_for_resumes_only_while_another_node_can_take_them(
        run: Any, redis_server: RedisServer) -> None:
    async def leave(client: PushClient) -> None:
        """What a client does on the server's CLOSE going_away: close its end (the server
        lingers for that FIN up to close_timeout_s), keeping its session for a resume."""
        assert (await client.recv_kind(KIND_CLOSE)).name == "going_away"
        await client.close()

    async def stop_time(served: Served, grace_s: float, *clients: PushClient) -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.gather(served.hub.stop(grace_s), *(leave(c) for c in clients))
        return loop.time() - started

    async def main() -> None:
        url = redis_server.url
        # Alone on its Redis: nowhere to resume, so no wait for it (the session ends).
        async with serving_hub(group_hub(broker=CountingRedisBroker(url))) as alone:
            client = await member(alone, "tcp-binary", "room")
            assert await stop_time(alone, 10.0, client) < 3.0
            assert not alone.hub._sessions
        # Another node up: the session waits (here for the whole grace: nobody resumes it).
        async with serving_hub(group_hub(broker=CountingRedisBroker(url))) as a:
            async with serving_hub(group_hub(broker=CountingRedisBroker(url))) as b:
                on_a = await member(a, "tcp-binary", "room")
                assert 1.4 <= await stop_time(a, 1.5, on_a) < 4.0
                # Every node stopping at once: none waits for the others.
                on_b = await member(b, "ws-binary", "room")
                async with serving_hub(group_hub(broker=CountingRedisBroker(url))) as c:
                    on_c = await member(c, "tcp-json", "room")
                    times = await asyncio.gather(stop_time(b, 10.0, on_b), stop_time(c, 10.0, on_c))
                assert max(times) < 4.0, times
    run(main, timeout_s=60)


async def hubs_written_again(a: Served, b: Served, group: str, ids: set[str]) -> None:
    """Both hubs wrote their sessions into Redis again (on_reset): members lists them all."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10.0
    while await a.hub.members(group) != ids:
        assert loop.time() < deadline, await a.hub.members(group)
        await asyncio.sleep(0.05)
    for node in (a, b):
        await wait_until(lambda: node.hub._resetting is not None and node.hub._resetting.done(),
                         10.0)


@pytest.mark.parametrize("loss", ["flushall", "restart"])
def test_after_redis_lost_its_data_members_routing_and_resumes_work_again(
        run: Any, redis_server: RedisServer, loss: str) -> None:
    """Redis flushed (every connection up) or restarted without persistence (every connection
    cut): each hub writes its sessions into Redis again by itself (members, presence, resume
    tokens), so members lists everyone, a push to one client is routed, and a resume works on
    the node holding the session and on the other one.  What the members hear: nothing after a
    flush (no message was missed); after the restart one GAP each, whatever the number of
    channels (all and two groups), since what Redis held for them cannot be counted."""
    async def main() -> None:
        async with two_nodes(redis_server.url) as (a, b):
            on_a = await member(a, "tcp-binary", "room", "more")
            on_b = await member(b, "ws-text", "room", "more")
            ids = {on_a.welcome["client_id"], on_b.welcome["client_id"]}
            await a.hub.publish("room", 1)
            for client in (on_a, on_b):
                assert [f.id for f in await client.pushes(1)] == [1]
            if loss == "flushall":
                assert redis_server.cli("FLUSHALL") is True
            else:
                await asyncio.get_running_loop().run_in_executor(None, redis_server.restart)
            await hubs_written_again(a, b, "room", ids)
            assert await b.hub.members("more") == ids
            await b.hub.publish("room", 2)
            for client in (on_a, on_b):
                frames = await client.pushes(2 if loss == "restart" else 1)
                if loss == "restart":
                    assert [(f.kind, f.id, f.payload) for f in frames[:1]] == [(KIND_GAP, 2, 2)]
                assert pushed(client, frames[-1:]) == [(frames[-1].id, "room", 2)]
                await nothing_more(client)
            assert await b.hub.send(on_a.welcome["client_id"], "routed") is True
            last = (await on_a.pushes(1))[0].id
            # A resume on the other node (its token, from Redis), then on the same node.
            await on_a.abort()
            moved = await b.session("tcp-json", resume_token=on_a.welcome["resume_token"],
                                    last_seq=last)
            assert (moved.welcome["resumed"], moved.welcome["client_id"]) == (
                True, on_a.welcome["client_id"])
            await on_b.abort()
            await wait_until(lambda: all(s.conn is None for s in b.hub._sessions.values()
                                         if s.client_id == on_b.welcome["client_id"]))
            again = await b.session("ws-binary", resume_token=on_b.welcome["resume_token"],
                                    last_seq=0)
            assert (again.welcome["resumed"], again.welcome["client_id"]) == (
                True, on_b.welcome["client_id"])
            for client in (moved, again):
                await client.close()
    run(main, timeout_s=60)


# An App served by App.run(workers=2): the hub and its RedisBroker are built once, before the
# supervisor forks its workers (unlike the cyserve command, which imports the app in each).
_FORKED_APP = """
import os, sys
from cyserve import App
from cyserve.push import Hub, RedisBroker

url, http_port, push_port, loop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
app = App()
hub = Hub(broker=RedisBroker(url, health_check_s=0.2, reconnect_max_s=0.2))
app.push(hub, port=push_port)

@hub.command("whoami")
async def whoami(conn, data):
    return {"pid": os.getpid(), "node": hub.node_id, "mid": hub._next_mid()[:8].hex()}

@hub.command("send")
async def send(conn, data):
    return await hub.send(data["to"], data["data"])

app.run(port=http_port, workers=2, loop=loop, timeout_graceful_shutdown=2)
"""


def test_workers_forked_from_one_app_are_nodes_of_their_own(
        request: pytest.FixtureRequest, run: Any, redis_server: RedisServer,
        tmp_path: Path) -> None:
    """Each worker of App.run(workers=2) starts the hub built before the fork: each gets a node
    id (and message ids) of its own, so a push to one client is routed to the worker holding
    it over that worker's n:<node> channel."""
    loop = str(request.node.callspec.params["run"])
    http_port, push_port = free_port(), free_port()
    log = open(tmp_path / "app.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", _FORKED_APP, redis_server.url, str(http_port), str(push_port), loop],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    async def main() -> None:
        workers: dict[int, tuple[PushClient_, dict[str, Any]]] = {}
        spare: list[PushClient_] = []
        deadline = asyncio.get_running_loop().time() + 30.0
        try:
            while len(workers) < 2:
                assert asyncio.get_running_loop().time() < deadline, (
                    workers, (tmp_path / "app.log").read_text())
                client = connect(f"tcp://127.0.0.1:{push_port}", None, reconnect=False,
                                 connect_timeout_s=5.0)
                try:
                    await client.open()
                except (OSError, PushClosed):
                    await asyncio.sleep(0.1)
                    continue
                me = await client.call("whoami", timeout_s=5.0)
                if me["pid"] in workers:
                    spare.append(client)
                else:
                    workers[me["pid"]] = (client, me)
            (one, first), (other, second) = workers.values()
            assert first["node"] != second["node"] and first["mid"] != second["mid"]
            for me in (first, second):
                assert f"-{me['pid']}-" in me["node"]
            assert await one.call("send", {"to": other.client_id, "data": "routed"},
                                  timeout_s=5.0) is True
            push = await asyncio.wait_for(other.__anext__(), 5.0)
            assert isinstance(push, Push) and push.data == "routed"
        finally:
            for client in [c for c, _ in workers.values()] + spare:
                await client.close()

    try:
        run(main, timeout_s=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
    assert proc.returncode == 0, (tmp_path / "app.log").read_text()
