"""Rate limiting: a token bucket per client, answered ``429 Too Many Requests`` with
``Retry-After`` (RFC 6585 §4, RFC 9110 §10.2.3).

``RateLimit(rate=5, burst=10)`` lets each key (by default the client's address, as
``request.client`` resolves it, so behind ``ProxyHeaders`` the real client and not the proxy)
make ``burst`` requests at once and ``rate`` a second after that.  The buckets live in a
``Store``: ``MemoryStore`` (this process, bounded) by default; ``RedisStore`` shares them between
the workers and hosts of a deployment (one atomic script per request, ``cyserve[redis]``).  A
store's one method ``take`` is a plain function (``Store``) or a coroutine function
(``AsyncStore``); the middleware awaits only the latter.

The bucket is kept as GCRA (the generic cell rate algorithm) does it: one number per key, the
time at which its bucket will be full again ("theoretical arrival time").  A request is allowed
when that time, moved one interval (``1 / rate``) on, is at most ``burst`` intervals ahead of
now; this is exactly a token bucket of ``burst`` tokens refilled at ``rate`` a second, with a
float instead of a (tokens, timestamp) pair, and a bucket that is full is a key whose time has
passed, which is what makes idle keys cheap to find and forget.

No ``RateLimit-*`` fields are sent: the IETF draft (draft-ietf-httpapi-ratelimit-headers) changed
their shape between revisions (-07's ``RateLimit-Limit``/``-Remaining``/``-Reset`` became -08's
structured ``RateLimit``/``RateLimit-Policy``), and ``Retry-After`` is the standard field clients
already obey.
"""
from __future__ import annotations

import heapq
import inspect
import logging
import math
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol

from cyserve.errors import ServiceUnavailable, TooManyRequests

if TYPE_CHECKING:
    import redis.asyncio

    from cyserve.middleware import Handler
    from cyserve.push.redis import RedisBroker
    from cyserve.request import Request
    from cyserve.response import BaseResponse

__all__ = ["AsyncStore", "MemoryStore", "RateLimit", "RedisStore", "Store", "client_key"]

_log = logging.getLogger("cyserve.app")


class Store(Protocol):
    """Where the buckets live.

    ``take(key, now, rate, burst)`` spends one token of ``key``'s bucket (``burst`` tokens,
    refilled at ``rate`` a second) at time ``now`` (seconds, the ``RateLimit``'s clock) and
    returns 0.0, or, when the bucket is empty, spends nothing and returns the seconds until a
    token is there.
    """

    def take(self, key: str, now: float, rate: float, burst: int) -> float: ...


class AsyncStore(Protocol):
    """A ``Store`` whose ``take`` is a coroutine (its buckets are across a network)."""

    async def take(self, key: str, now: float, rate: float, burst: int) -> float: ...


class MemoryStore:
    """The buckets in a dict in this process, at most ``max_keys`` of them.

    A full bucket is forgotten when room is needed (forgetting it changes nothing: a new key
    starts full).  When more than ``max_keys`` keys are mid-bucket at once (a flood of distinct
    clients), the buckets nearest to full are forgotten too, a quarter of the room at a time, so
    memory stays bounded and the cost of making room is spread over the keys that needed it; a
    key forgotten that way may burst once more.
    """

    __slots__ = ("max_keys", "_due")

    def __init__(self, max_keys: int = 100_000) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self.max_keys = max_keys
        # key -> when its bucket is full again (GCRA's theoretical arrival time).
        self._due: dict[str, float] = {}

    def take(self, key: str, now: float, rate: float, burst: int) -> float:
        due = self._due
        interval = 1.0 / rate
        full_at = due.get(key)
        if full_at is None:
            if len(due) >= self.max_keys:
                self._make_room(now)
            full_at = now
        elif full_at < now:
            full_at = now
        next_full_at = full_at + interval
        wait = next_full_at - now - burst * interval
        if wait > 1e-9:  # a float's rounding is not a missing token
            return wait
        due[key] = next_full_at
        return 0.0

    def _make_room(self, now: float) -> None:
        due = self._due
        for key in [key for key, full_at in due.items() if full_at <= now]:
            del due[key]
        keep = self.max_keys - max(1, self.max_keys // 4)
        if len(due) > keep:
            for key in heapq.nsmallest(len(due) - keep, due, key=due.__getitem__):
                del due[key]

    def __len__(self) -> int:
        return len(self._due)


# GCRA as ``MemoryStore.take`` does it, on the Redis server, atomic per key: KEYS[1] the key's
# bucket (when it is full again, seconds as text); ARGV[1] now ("" for the server's clock),
# ARGV[2] the interval (1 / rate), ARGV[3] burst.  Returns the wait as text (a Lua number
# would reach the client as an integer).  A bucket expires when it is full again: idle keys
# cost nothing.  TIME before a write needs Redis 5 (scripts replicated by their effects).
_TAKE = """\
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local interval, burst = tonumber(ARGV[2]), tonumber(ARGV[3])
local full_at = tonumber(redis.call('GET', KEYS[1])) or now
if full_at < now then full_at = now end
local next_full_at = full_at + interval
local wait = next_full_at - now - burst * interval
if wait > 1e-9 then return string.format('%.17g', wait) end
redis.call('SET', KEYS[1], string.format('%.17g', next_full_at),
           'PX', math.ceil((next_full_at - now) * 1000) + 1)
return '0'
"""


class RedisStore:
    """The buckets in Redis, shared by every worker and host that uses the same server and
    ``prefix``: two processes limiting one client spend one bucket.

    ``redis``: a URL (``redis://host:6379/0``: this store opens its own client, closed by
    ``aclose``), a ``redis.asyncio.Redis`` client, or a started ``RedisBroker`` (the push hub's
    broker: its client and connection pool, so one Redis connection setup for both).

    Each ``take`` is one EVALSHA of a GCRA script (the same arithmetic as ``MemoryStore``), so
    concurrent requests from several processes never both take the last token.  Time is the
    Redis server's own clock (``server_clock=True``, the default), one clock for every host
    whatever theirs say; ``server_clock=False`` uses the ``now`` the ``RateLimit`` passes
    (its ``clock``: ``time.time`` on every host then, kept in step).

    When Redis cannot be reached, ``fail_open=True`` (the default) lets the request through
    and logs one warning per outage on ``cyserve.app`` (a limiter should not take the site down
    with it); ``fail_open=False`` answers ``503 Service Unavailable`` instead.
    """

    __slots__ = ("prefix", "server_clock", "fail_open", "_client", "_broker", "_owned",
                 "_script", "_failing")

    def __init__(self, redis: str | redis.asyncio.Redis | RedisBroker, *,
                 prefix: str = "cyserve:ratelimit:", server_clock: bool = True,
                 fail_open: bool = True) -> None:
        import redis.asyncio as aioredis  # the cyserve[redis] extra: imported when used

        from cyserve.push.redis import RedisBroker

        self.prefix = prefix
        self.server_clock = server_clock
        self.fail_open = fail_open
        self._broker: RedisBroker | None = None
        self._client: aioredis.Redis | None = None
        self._owned = False
        if isinstance(redis, str):
            self._client = aioredis.Redis.from_url(redis)
            self._owned = True
        elif isinstance(redis, RedisBroker):
            self._broker = redis
        elif isinstance(redis, aioredis.Redis):
            self._client = redis
        else:
            raise TypeError(f"RedisStore needs a URL, a redis.asyncio.Redis or a RedisBroker, "
                            f"got {type(redis).__name__}")
        self._script: Any = None
        self._failing = False

    def _redis(self) -> redis.asyncio.Redis:
        if self._client is None:
            assert self._broker is not None
            client = self._broker.client
            if client is None:
                raise RuntimeError("RedisStore: its RedisBroker is not started")
            self._client = client
        return self._client

    async def take(self, key: str, now: float, rate: float, burst: int) -> float:
        return await self._take(key, now, rate, burst)

    async def _take(self, key: str, now: float, rate: float, burst: int) -> float:
        from redis.exceptions import RedisError

        try:
            client = self._redis()
            if self._script is None:
                self._script = client.register_script(_TAKE)
            raw = await self._script(keys=[self.prefix + key],
                                     args=["" if self.server_clock else repr(now),
                                           repr(1.0 / rate), burst])
        except (RedisError, OSError) as exc:
            if not self._failing:
                self._failing = True
                _log.warning("rate limit: Redis unreachable (%s): requests %s until it is back",
                             exc, "let through" if self.fail_open else "answered 503")
            if self.fail_open:
                return 0.0
            raise ServiceUnavailable("Rate limit unavailable", [("Retry-After", "1")]) from exc
        if self._failing:
            self._failing = False
            _log.info("rate limit: Redis back, limiting again")
        return float(raw)

    async def aclose(self) -> None:
        """Close the client this store opened from a URL (one given to it is the caller's)."""
        if self._owned and self._client is not None:
            await self._client.aclose()

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self.prefix!r})"


def client_key(request: Request) -> str:
    """The default key: the client's address (``request.client``, so the one a trusted proxy
    reported); ``"unix:"`` for a peer on a Unix socket with no proxy word."""
    client = request.client
    return client[0] if client is not None else "unix:"


class RateLimit:
    """Middleware: at most ``burst`` requests at once and ``rate`` a second per key.

    ``rate``: tokens per second (``0.5``: one every two seconds); ``burst``: the bucket's size.
    ``key``: ``request -> str`` (default ``client_key``: the client's address); ``store``: a
    ``Store`` or ``AsyncStore`` (default: a new ``MemoryStore``; ``RedisStore`` to share the
    buckets between workers and hosts).  ``methods`` / ``paths``: limit only these
    methods / paths starting with one of these prefixes (default: every request).  ``clock``:
    seconds, monotonic by default (a store shared between processes needs ``time.time``).

    Over the limit the request is answered by ``TooManyRequests`` (429, through the App's
    error handlers) with ``Retry-After``: the whole seconds until a token is back, rounded up
    (RFC 9110 §10.2.3 takes an integer).  Use it after ``ProxyHeaders`` (``app.use`` order), so
    the key is the client and not the proxy.
    """

    __slots__ = ("rate", "burst", "key", "store", "methods", "paths", "clock")

    def __init__(self, rate: float, burst: int, *, key: Callable[[Request], str] = client_key,
                 store: Store | AsyncStore | None = None, methods: Iterable[str] | None = None,
                 paths: Iterable[str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not rate > 0 or math.isinf(rate):
            raise ValueError(f"rate must be a positive number of requests a second, got {rate!r}")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"burst must be an int of at least 1, got {burst!r}")
        self.rate = float(rate)
        self.burst = burst
        self.key = key
        self.store: Store | AsyncStore = MemoryStore() if store is None else store
        self.methods = None if methods is None else frozenset(m.upper() for m in methods)
        self.paths = None if paths is None else tuple(paths)
        self.clock = clock

    def __call__(self, handler: Handler) -> Handler:
        rate, burst, key, clock = self.rate, self.burst, self.key, self.clock
        methods, paths = self.methods, self.paths
        take = self.store.take
        if inspect.iscoroutinefunction(take):
            # The store is across a network: awaited.  Chosen once here, so the in-memory
            # store's path below has no await and no test per request.
            take_async: Callable[[str, float, float, int], Any] = take

            async def call_async(request: Request) -> BaseResponse:
                if ((methods is None or request.method in methods)
                        and (paths is None or request.path.startswith(paths))):
                    wait = await take_async(key(request), clock(), rate, burst)
                    if wait > 0.0:
                        _refuse(wait)
                return await handler(request)
            return call_async
        take_sync: Callable[[str, float, float, int], float] = take  # type: ignore[assignment]

        async def call(request: Request) -> BaseResponse:
            if ((methods is None or request.method in methods)
                    and (paths is None or request.path.startswith(paths))):
                wait = take_sync(key(request), clock(), rate, burst)
                if wait > 0.0:
                    _refuse(wait)
            return await handler(request)
        return call

    def __repr__(self) -> str:
        return f"RateLimit(rate={self.rate}, burst={self.burst}, store={self.store!r})"


def _refuse(wait: float) -> None:
    raise TooManyRequests("Too Many Requests", [("Retry-After", str(max(1, math.ceil(wait))))])
