"""RateLimit: a token bucket per key (GCRA in ``MemoryStore``), 429 with ``Retry-After``, refill
over time, keys isolated, memory bounded; end to end over 127.0.0.1 on both loops.  RedisStore
against a real redis-server: the same arithmetic, one bucket shared by two middleware instances,
never more than the burst to concurrent takers, failing open or closed."""
from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any, Iterator

import pytest

from cyserve import App, Response
from cyserve.proxy import ProxyHeaders
from cyserve.push.redis import RedisBroker
from cyserve.ratelimit import MemoryStore, RateLimit, RedisStore, Store
from tests.push.redis_support import REDIS_SERVER, RedisServer, free_port
from tests.support import RawClient, serving


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------------------------- the store
def test_store_allows_a_burst_then_says_how_long_to_wait() -> None:
    store = MemoryStore()
    assert [store.take("a", 0.0, 2.0, 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert store.take("a", 0.0, 2.0, 3) == pytest.approx(0.5)  # one token per 1/rate seconds
    assert store.take("a", 0.2, 2.0, 3) == pytest.approx(0.3)  # a refused take spends nothing


def test_store_refills_at_rate_and_never_above_burst() -> None:
    store = MemoryStore()
    for _ in range(2):
        store.take("a", 0.0, 4.0, 2)
    assert store.take("a", 0.0, 4.0, 2) > 0
    assert store.take("a", 0.25, 4.0, 2) == 0.0      # one token back after 1/4 s
    assert store.take("a", 0.25, 4.0, 2) > 0
    # A long idle time fills the bucket to burst, not beyond: two at once, then a wait.
    assert [store.take("a", 100.0, 4.0, 2) for _ in range(3)][:2] == [0.0, 0.0]
    assert store.take("a", 100.0, 4.0, 2) == pytest.approx(0.25)


def test_store_keys_are_isolated() -> None:
    store = MemoryStore()
    assert store.take("a", 0.0, 1.0, 1) == 0.0
    assert store.take("a", 0.0, 1.0, 1) > 0
    assert store.take("b", 0.0, 1.0, 1) == 0.0


def test_store_forgets_full_buckets_first_when_it_needs_room() -> None:
    store = MemoryStore(max_keys=100)
    for i in range(100):
        store.take(f"idle{i}", 0.0, 10.0, 5)   # full again 0.1 s later
    store.take("busy", 50.0, 1.0, 1)           # t=50: every idle bucket is full: all forgotten
    assert len(store) == 1
    assert store.take("busy", 50.0, 1.0, 1) > 0  # the bucket that mattered was kept


def test_store_memory_is_bounded_under_a_flood_of_distinct_keys() -> None:
    store = MemoryStore(max_keys=1000)
    for i in range(20_000):  # every key mid-bucket: nothing is full at this instant
        store.take(f"k{i}", 0.0, 0.001, 1)
        assert len(store) <= 1000
    # The newest keys are still limited; the room was made from the oldest-due buckets.
    assert store.take("k19999", 0.0, 0.001, 1) > 0


def test_store_is_a_store() -> None:
    store: Store = MemoryStore()
    assert store.take("x", 0.0, 1.0, 1) == 0.0
    with pytest.raises(ValueError):
        MemoryStore(max_keys=0)


@pytest.mark.parametrize("rate, burst", [(0, 1), (-1, 1), (float("inf"), 1), (float("nan"), 1),
                                         (1, 0), (1, True), (1, 1.5)])
def test_rate_limit_checks_its_arguments(rate: float, burst: Any) -> None:
    with pytest.raises(ValueError):
        RateLimit(rate, burst)


# ----------------------------------------------------------------------------- end to end
def limited_app(limit: RateLimit, *, proxy: bool = False) -> App:
    app = App()
    if proxy:
        app.use(ProxyHeaders("127.0.0.1"))
    app.use(limit)

    @app.get("/api/x")
    async def api_get(request: Any) -> Response:
        return Response(json.dumps(request.client), content_type="application/json")

    @app.post("/api/x")
    async def api_post(request: Any) -> Response:
        return Response("posted")

    @app.get("/page")
    async def page(request: Any) -> Response:
        return Response("page")
    return app


async def statuses(client: RawClient, count: int, method: str = "GET", target: str = "/api/x",
                   headers: list[tuple[str, str]] | None = None) -> list[int]:
    return [(await client.request(method, target, headers)).status for _ in range(count)]


def test_burst_then_429_with_retry_after_then_refill(run: Any) -> None:
    clock = Clock()

    async def main() -> None:
        async with serving(limited_app(RateLimit(0.4, 3, clock=clock))) as server:
            client = await RawClient.open(server.port)
            try:
                assert await statuses(client, 3) == [200, 200, 200]
                refused = await client.request("GET", "/api/x")
                assert refused.status == 429
                # 1 / 0.4 = 2.5 s to the next token: Retry-After is whole seconds, rounded up.
                assert refused.headers["retry-after"] == "3"
                clock.now += 1.0
                assert (await client.request("GET", "/api/x")).headers["retry-after"] == "2"
                clock.now += 1.5
                assert await statuses(client, 2) == [200, 429]
                clock.now += 60
                assert await statuses(client, 4) == [200, 200, 200, 429]
            finally:
                await client.close()
    run(main)


def test_refill_in_real_time(run: Any) -> None:
    async def main() -> None:
        async with serving(limited_app(RateLimit(4, 2))) as server:
            client = await RawClient.open(server.port)
            try:
                # Four requests a second are allowed after a burst of two: a quick run of ten
                # must meet the limit.
                replies = [await client.request("GET", "/api/x") for _ in range(10)]
                assert [r.status for r in replies[:2]] == [200, 200]
                refused = [r for r in replies if r.status == 429]
                assert refused and refused[0].headers.get("retry-after") == "1"
                await asyncio.sleep(0.3)  # a token comes back every 1/4 s
                assert (await client.request("GET", "/api/x")).status == 200
            finally:
                await client.close()
    run(main)


def test_keys_are_isolated_and_the_key_is_chosen_by_the_app(run: Any) -> None:
    limit = RateLimit(0.01, 2, key=lambda request: request.headers.get("x-api-key") or "-")

    async def main() -> None:
        async with serving(limited_app(limit)) as server:
            client = await RawClient.open(server.port)
            try:
                alice, bob = [("X-API-Key", "alice")], [("X-API-Key", "bob")]
                assert await statuses(client, 3, headers=alice) == [200, 200, 429]
                assert await statuses(client, 3, headers=bob) == [200, 200, 429]
            finally:
                await client.close()
    run(main)


def test_methods_and_paths_choose_what_is_limited(run: Any) -> None:
    limit = RateLimit(0.01, 1, methods=["post"], paths=["/api/"])

    async def main() -> None:
        async with serving(limited_app(limit)) as server:
            client = await RawClient.open(server.port)
            try:
                assert await statuses(client, 3, "POST") == [200, 429, 429]
                assert await statuses(client, 3, "GET") == [200, 200, 200]
                assert await statuses(client, 3, "GET", "/page") == [200, 200, 200]
            finally:
                await client.close()
    run(main)


def test_default_key_is_the_client_a_trusted_proxy_resolved(run: Any) -> None:
    async def main() -> None:
        async with serving(limited_app(RateLimit(0.01, 1), proxy=True)) as server:
            client = await RawClient.open(server.port)
            try:
                # One TCP connection from the proxy, two clients behind it: two buckets.
                first = [("X-Forwarded-For", "203.0.113.1")]
                second = [("X-Forwarded-For", "203.0.113.2")]
                reply = await client.request("GET", "/api/x", first)
                assert (reply.status, json.loads(reply.body)) == (200, ["203.0.113.1", 0])
                assert await statuses(client, 1, headers=first) == [429]
                assert await statuses(client, 2, headers=second) == [200, 429]
                # The proxy's own requests are a third client.
                assert await statuses(client, 2) == [200, 429]
            finally:
                await client.close()
    run(main)


# --------------------------------------------------------------------- the Redis store
@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real redis-server on a free 127.0.0.1 port (tests/push/redis_support.py)."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    with RedisServer(tmp_path / "redis") as server:
        yield server.url


def test_redis_store_counts_as_the_memory_store_does(run: Any, redis_url: str) -> None:
    takes = [("a", 0.0, 2.0, 3)] * 4 + [("a", 0.2, 2.0, 3), ("a", 0.5, 2.0, 3), ("a", 0.5, 2.0, 3),
                                        ("b", 0.5, 2.0, 3), ("a", 100.0, 4.0, 2),
                                        ("a", 100.0, 4.0, 2), ("a", 100.0, 4.0, 2)]
    memory = MemoryStore()
    expected = [memory.take(*t) for t in takes]

    async def main() -> None:
        store = RedisStore(redis_url, server_clock=False)
        try:
            got = [await store.take(*t) for t in takes]
        finally:
            await store.aclose()
        assert got == pytest.approx(expected, abs=1e-6)
        assert expected[3] == pytest.approx(0.5) and expected[4] == pytest.approx(0.3)
    run(main)


def test_redis_store_never_gives_more_than_the_burst_to_concurrent_processes(
        run: Any, redis_url: str) -> None:
    async def main() -> None:
        # Two stores, two clients: as two workers would have.
        first, second = RedisStore(redis_url), RedisStore(redis_url)
        try:
            waits = await asyncio.gather(*(store.take("k", 0.0, 0.001, 50)
                                           for _ in range(100) for store in (first, second)))
        finally:
            await first.aclose()
            await second.aclose()
        assert sum(1 for w in waits if w == 0.0) == 50
        assert all(w > 0 for w in waits if w != 0.0)
    run(main)


def test_redis_store_forgets_a_bucket_once_it_is_full(run: Any, redis_url: str) -> None:
    async def main() -> None:
        store = RedisStore(redis_url, prefix="rl:")
        try:
            assert await store.take("k", 0.0, 10.0, 1) == 0.0
            assert await store.take("k", 0.0, 10.0, 1) > 0
            client = store._redis()
            assert 0 < await client.pttl("rl:k") <= 101   # full again in 1/10 s
            await asyncio.sleep(0.25)
            assert await client.exists("rl:k") == 0
            assert await store.take("k", 0.0, 10.0, 1) == 0.0
        finally:
            await store.aclose()
    run(main)


def test_two_rate_limits_share_one_redis_bucket(run: Any, redis_url: str) -> None:
    async def main() -> None:
        stores = [RedisStore(redis_url), RedisStore(redis_url)]
        limits = [RateLimit(0.01, 3, store=store) for store in stores]
        try:
            async with serving(limited_app(limits[0])) as one, \
                    serving(limited_app(limits[1])) as two:
                a, b = await RawClient.open(one.port), await RawClient.open(two.port)
                try:
                    # One client (127.0.0.1) seen by two workers: one bucket of three.
                    assert await statuses(a, 2) == [200, 200]
                    assert await statuses(b, 2) == [200, 429]
                    refused = await a.request("GET", "/api/x")
                    assert refused.status == 429
                    assert int(refused.headers["retry-after"]) > 60   # 1/0.01 s a token
                finally:
                    await a.close()
                    await b.close()
        finally:
            for store in stores:
                await store.aclose()
    run(main)


def test_redis_store_fails_open_or_closed_when_redis_is_down(
        run: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cyserve.app")
    url = f"redis://127.0.0.1:{free_port()}/0"   # nothing listens there

    async def main() -> None:
        open_store = RedisStore(url)
        closed_store = RedisStore(url, fail_open=False)
        try:
            async with serving(limited_app(RateLimit(0.01, 1, store=open_store))) as server:
                client = await RawClient.open(server.port)
                try:
                    assert await statuses(client, 3) == [200, 200, 200]
                finally:
                    await client.close()
            async with serving(limited_app(RateLimit(0.01, 1, store=closed_store))) as server:
                client = await RawClient.open(server.port)
                try:
                    reply = await client.request("GET", "/api/x")
                    assert (reply.status, reply.headers.get("retry-after")) == (503, "1")
                finally:
                    await client.close()
        finally:
            await open_store.aclose()
            await closed_store.aclose()
        unreachable = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
        assert len(unreachable) == 2   # once per store and outage, not per request
    run(main)


def test_redis_store_uses_a_started_brokers_client(run: Any, redis_url: str) -> None:
    async def main() -> None:
        broker = RedisBroker(redis_url)
        store = RedisStore(broker)
        with pytest.raises(RuntimeError, match="not started"):
            await store.take("k", 0.0, 1.0, 1)
        await broker.start(lambda channel, data: None, lambda channel, count: None)
        try:
            assert [await store.take("k", 0.0, 0.01, 2) for _ in range(3)][:2] == [0.0, 0.0]
            assert await store.take("k", 0.0, 0.01, 2) > 0
        finally:
            await broker.close()
            await store.aclose()       # the broker's client is the broker's to close
    run(main)


def test_redis_store_wants_a_url_client_or_broker() -> None:
    with pytest.raises(TypeError):
        RedisStore(6379)  # type: ignore[arg-type]
