"""Rate limiting: a token bucket per client, answered ``429 Too Many Requests`` with
``Retry-After`` (RFC 6585 §4, RFC 9110 §10.2.3).

``RateLimit(rate=5, burst=10)`` lets each key (by default the client's address, as
``request.client`` resolves it, so behind ``ProxyHeaders`` the real client and not the proxy)
make ``burst`` requests at once and ``rate`` a second after that.  The buckets live in a
``Store``: ``MemoryStore`` (this process, bounded) by default; a shared store (several workers
or hosts) implements the same one method.

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
import math
import time
from typing import TYPE_CHECKING, Callable, Iterable, Protocol

from cyserve.errors import TooManyRequests

if TYPE_CHECKING:
    from cyserve.middleware import Handler
    from cyserve.request import Request
    from cyserve.response import BaseResponse

__all__ = ["MemoryStore", "RateLimit", "Store", "client_key"]


class Store(Protocol):
    """Where the buckets live.

    ``take(key, now, rate, burst)`` spends one token of ``key``'s bucket (``burst`` tokens,
    refilled at ``rate`` a second) at time ``now`` (seconds, the ``RateLimit``'s clock) and
    returns 0.0, or, when the bucket is empty, spends nothing and returns the seconds until a
    token is there.
    """

    def take(self, key: str, now: float, rate: float, burst: int) -> float: ...


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


def client_key(request: Request) -> str:
    """The default key: the client's address (``request.client``, so the one a trusted proxy
    reported); ``"unix:"`` for a peer on a Unix socket with no proxy word."""
    client = request.client
    return client[0] if client is not None else "unix:"


class RateLimit:
    """Middleware: at most ``burst`` requests at once and ``rate`` a second per key.

    ``rate``: tokens per second (``0.5``: one every two seconds); ``burst``: the bucket's size.
    ``key``: ``request -> str`` (default ``client_key``: the client's address); ``store``: a
    ``Store`` (default: a new ``MemoryStore``).  ``methods`` / ``paths``: limit only these
    methods / paths starting with one of these prefixes (default: every request).  ``clock``:
    seconds, monotonic by default (a store shared between processes needs ``time.time``).

    Over the limit the request is answered by ``TooManyRequests`` (429, through the App's
    error handlers) with ``Retry-After``: the whole seconds until a token is back, rounded up
    (RFC 9110 §10.2.3 takes an integer).  Use it after ``ProxyHeaders`` (``app.use`` order), so
    the key is the client and not the proxy.
    """

    __slots__ = ("rate", "burst", "key", "store", "methods", "paths", "clock")

    def __init__(self, rate: float, burst: int, *, key: Callable[[Request], str] = client_key,
                 store: Store | None = None, methods: Iterable[str] | None = None,
                 paths: Iterable[str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not rate > 0 or math.isinf(rate):
            raise ValueError(f"rate must be a positive number of requests a second, got {rate!r}")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"burst must be an int of at least 1, got {burst!r}")
        self.rate = float(rate)
        self.burst = burst
        self.key = key
        self.store: Store = MemoryStore() if store is None else store
        self.methods = None if methods is None else frozenset(m.upper() for m in methods)
        self.paths = None if paths is None else tuple(paths)
        self.clock = clock

    def __call__(self, handler: Handler) -> Handler:
        rate, burst, key, take, clock = self.rate, self.burst, self.key, self.store.take, self.clock
        methods, paths = self.methods, self.paths

        async def call(request: Request) -> BaseResponse:
            if ((methods is None or request.method in methods)
                    and (paths is None or request.path.startswith(paths))):
                wait = take(key(request), clock(), rate, burst)
                if wait > 0.0:
                    raise TooManyRequests("Too Many Requests",
                                          [("Retry-After", str(max(1, math.ceil(wait))))])
            return await handler(request)
        return call

    def __repr__(self) -> str:
        return f"RateLimit(rate={self.rate}, burst={self.burst}, store={self.store!r})"
