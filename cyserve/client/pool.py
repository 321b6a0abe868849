"""The connection pool: keep-alive reuse per key, a per-key and a total limit, waiters in order.

A key is an origin (or a proxy route); the core hands a connection back through
``connection_released`` only when its exchange ended cleanly (request sent in full, response
received in full, keep-alive), and reports every closed connection through
``connection_closed``.  Idle connections expire in the core (its keep-alive timer closes them).

Invariants: ``_open[key]`` counts the connections of ``key`` that are tracked or being opened
(reserved); ``_total`` is their sum and never passes ``max_connections``, nor ``_open[key]``
``max_connections_per_host``.  A tracked connection is in at most one idle list.  A waiter's
future resolves with a connection (handed over directly) or ``None`` (a slot was reserved for it:
it opens its own connection).
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Awaitable, Callable, Hashable

from cyserve.errors import PoolTimeout
from cyserve.errors import ClientError

__all__ = ["Pool"]


class Pool:
    __slots__ = ("_max_total", "_max_per_key", "_idle", "_open", "_total", "_tracked",
                 "_waiters", "_closed")

    def __init__(self, max_connections: int, max_connections_per_host: int) -> None:
        self._max_total = max_connections
        self._max_per_key = max_connections_per_host
        self._idle: dict[Hashable, list[Any]] = {}
        self._open: dict[Hashable, int] = {}
        self._total = 0
        self._tracked: set[Any] = set()
        self._waiters: deque[tuple[Hashable, asyncio.Future[Any]]] = deque()
        self._closed = False

    # ------------------------------------------------------------------ facts (tests, stats)
    @property
    def total(self) -> int:
        return self._total

    def idle_count(self, key: Hashable | None = None) -> int:
        if key is None:
            return sum(len(v) for v in self._idle.values())
        return len(self._idle.get(key, ()))

    # ------------------------------------------------------------------ acquire
    async def acquire(self, key: Hashable, timeout_s: float | None,
                      opener: Callable[[], Awaitable[Any]], fresh: bool = False) -> tuple[Any, bool]:
        """A connection for ``key`` and whether it was reused; ``opener()`` opens a new one when
        a slot is free.  ``fresh``: skip (and close) the idle ones, for the retry after a stale
        connection.  Raises ``PoolTimeout`` (and whatever ``opener`` raises)."""
        if self._closed:
            raise ClientError("the client is closed")
        if fresh:
            for conn in self._idle.pop(key, []):
                self._forget(conn)
                conn.close()
        else:
            conn = self._take_idle(key)
            if conn is not None:
                return conn, True
        if not self._reserve(key) and not (self._evict_idle() and self._reserve(key)):
            conn = await self._wait(key, timeout_s)
            if conn is not None:
                return conn, True
        try:
            conn = await opener()
        except BaseException:
            self._unreserve(key)
            raise
        if conn.closed:
            self._unreserve(key)
            raise ClientError("the connection closed as soon as it opened")
        self._tracked.add(conn)
        conn.listener = self
        return conn, False

    def _take_idle(self, key: Hashable) -> Any:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()   # most recently used first: the least likely to be stale
            if conn.is_reusable:
                return conn
            self._forget(conn)
            conn.close()
        return None

    def _reserve(self, key: Hashable) -> bool:
        count = self._open.get(key, 0)
        if self._total >= self._max_total or count >= self._max_per_key:
            return False
        self._open[key] = count + 1
        self._total += 1
        return True

    def _unreserve(self, key: Hashable) -> None:
        self._open[key] -= 1
        if not self._open[key]:
            del self._open[key]
        self._total -= 1
        self._grant()

    def _evict_idle(self) -> bool:
        """Close the longest-idle connection of any key to make room (only when the total
        limit, not a per-key one, is what blocks)."""
        if self._total < self._max_total:
            return False
        oldest = None
        for conns in self._idle.values():
            if conns and (oldest is None or conns[0].idle_since < oldest.idle_since):
                oldest = conns[0]
        if oldest is None:
            return False
        self._idle[oldest.origin].remove(oldest)
        self._forget(oldest)
        oldest.close()
        return True

    async def _wait(self, key: Hashable, timeout_s: float | None) -> Any:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        entry = (key, fut)
        self._waiters.append(entry)
        handle = None
        if timeout_s is not None:
            handle = loop.call_later(max(timeout_s, 0.0), _expire, fut, timeout_s)
        try:
            return await fut
        except BaseException:
            # Granted, then cancelled before it ran: give the connection or the slot back.
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                granted = fut.result()
                if granted is None:
                    self._unreserve(key)
                else:
                    self.connection_released(granted)
            raise
        finally:
            if handle is not None:
                handle.cancel()
            try:
                self._waiters.remove(entry)
            except ValueError:
                pass

    def _grant(self) -> None:
        """Serve waiters in order while a connection or a slot is available for them."""
        if not self._waiters:
            return
        for entry in list(self._waiters):
            key, fut = entry
            if fut.done():
                continue
            conn = self._take_idle(key)
            if conn is not None:
                self._waiters.remove(entry)
                fut.set_result(conn)
            elif self._reserve(key) or (self._evict_idle() and self._reserve(key)):
                self._waiters.remove(entry)
                fut.set_result(None)

    # ------------------------------------------------------------------ the core's callbacks
    def connection_released(self, conn: Any) -> None:
        """The exchange ended cleanly: hand the connection to a waiter or park it."""
        if self._closed or conn not in self._tracked:
            conn.close()
            return
        key = conn.origin
        for entry in self._waiters:
            if entry[0] == key and not entry[1].done():
                self._waiters.remove(entry)
                entry[1].set_result(conn)
                return
        self._idle.setdefault(key, []).append(conn)

    def connection_closed(self, conn: Any) -> None:
        idle = self._idle.get(conn.origin)
        if idle and conn in idle:
            idle.remove(conn)
        if conn in self._tracked:
            self._forget(conn)
            self._grant()

    def _forget(self, conn: Any) -> None:
        if conn in self._tracked:
            self._tracked.discard(conn)
            key = conn.origin
            self._open[key] -= 1
            if not self._open[key]:
                del self._open[key]
            self._total -= 1

    # ------------------------------------------------------------------ shutdown
    def close(self) -> None:
        """Close idle connections now; busy ones close when their exchange ends."""
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(ClientError("the client was closed"))
        self._waiters.clear()


def _expire(fut: asyncio.Future[Any], timeout_s: float) -> None:
    if not fut.done():
        fut.set_exception(PoolTimeout(f"no connection of the pool became free in {timeout_s:g}s"))
