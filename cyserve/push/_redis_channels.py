"""The channels of ``RedisBroker`` (``cyserve.push.redis``, whose docstring describes the whole):
the two connections of its own each node keeps for them, beside the directories' pooled client.

- ``_Publisher``: a queue of publishes packed as ``EVALSHA`` of ``_PUBLISH`` (counter, capped
  stream, PUBLISH, atomically per message), written in batches on one connection by one task;
  each caller's future resolved by its reply; waits through an outage within bounds, never drops.
- ``_Subscriber``: the pub/sub connection, health-checked with PINGs, reconnected with bounded
  backoff; after a gap, each channel read back from its stream after the last number delivered,
  in order, once (``on_lost`` for what was trimmed).
"""
from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import math
import random
import secrets
from typing import TYPE_CHECKING, Any, Awaitable, Callable, cast

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import NoScriptError, RedisError, ResponseError

from cyserve.errors import BrokerUnavailable

if TYPE_CHECKING:
    from cyserve.push.redis import RedisBroker

log = logging.getLogger("cyserve.push")


# A batch of publishes, each one atomic (the whole batch is): for message i, KEYS[2i-1] its
# channel's counter, KEYS[2i] its stream; ARGV[1] history, ARGV[2] "~" or "=", ARGV[3] retain (ms),
# ARGV[2i+2] the pub/sub channel, ARGV[2i+3] the message (origin, publish number, data).
# Each message: INCR the counter, XADD the message under that number to the capped stream,
# PUBLISH "<number> <message>".  A counter that starts again (expired, flushed) starts a new
# stream: entry ids are the counter's numbers, and XADD refuses an id below the stream's last.
# Returns the number of messages published, or {published, error} at the first that failed
# (the rest did not run): only a script's first write can meet OOM, the others are an
# operator's key of another type.
_PUBLISH = """\
local history, trim, retain = ARGV[1], ARGV[2], ARGV[3]
for i = 1, #KEYS / 2 do
  local counter, stream = KEYS[2 * i - 1], KEYS[2 * i]
  local message = ARGV[2 * i + 3]
  local n = redis.pcall('INCR', counter)
  if type(n) == 'table' then return {i - 1, n.err} end
  if n == 1 then redis.call('DEL', stream) end
  local done = redis.pcall('XADD', stream, 'MAXLEN', trim, history, string.format('%d-0', n),
                           'm', message)
  if type(done) == 'table' and done.err then return {i - 1, done.err} end
  redis.call('PEXPIRE', counter, retain)
  redis.call('PEXPIRE', stream, retain)
  redis.call('PUBLISH', ARGV[2 * i + 2], string.format('%d ', n) .. message)
end
return #KEYS / 2
"""
_PUBLISH_SHA = hashlib.sha1(_PUBLISH.encode()).hexdigest()

_HEADER_BYTES = 16          # origin (8 bytes) + publish number (8 bytes, big-endian)
_BATCH = 512                # publishes in one script call, at most (Redis runs it in ~2 ms)
_BATCH_BYTES = 1 << 20      # and about this many bytes of messages
_RECOVER_COUNT = 1000       # stream entries read per XRANGE
_MAX_ORIGINS = 4096         # publishers remembered per channel for dropping copies
_PING = b"*1\r\n$4\r\nPING\r\n"

_FAILURES = (RedisError, OSError, TimeoutError)


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def _backoff_s(attempt: int, cap_s: float) -> float:
    """Bounded exponential backoff with jitter (between half and all of the step), so the
    workers of a deployment do not reconnect in one wave."""
    step = min(cap_s, 0.05 * (1 << min(attempt, 16)))
    return step * (0.5 + random.random() / 2)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."


class _Pending:
    """One publish waiting for Redis: its parts of the script call (the two keys, then the
    channel and the message head, and the data), the caller's future, its deadline, and whether
    it was written to a connection that broke before answering (it may have run)."""

    __slots__ = ("keys", "head", "data", "future", "deadline", "sent")

    def __init__(self, keys: bytes, head: bytes, data: bytes, future: asyncio.Future[None],
                 deadline: float) -> None:
        self.keys = keys
        self.head = head
        self.data = data
        self.future = future
        self.deadline = deadline
        self.sent = False


class _Channel:
    """What the subscriber knows of one channel: the last counter value it delivered (or skipped
    as a copy), and each publisher's last publish number it delivered."""

    __slots__ = ("name", "wire", "counter_key", "stream_key", "last", "origins", "generation")

    def __init__(self, name: str, prefix: str) -> None:
        self.name = name
        self.wire = (prefix + name).encode()
        self.counter_key = f"{prefix}{{{name}}}:n"
        self.stream_key = f"{prefix}{{{name}}}:s"
        # None until the counter was read before subscribing (the baseline: later numbers are
        # this node's to get).
        self.last: int | None = None
        self.origins: dict[bytes, int] = {}
        # The pub/sub connection (by number) this channel was subscribed on.
        self.generation = -1


def _awaited(value: Any) -> Awaitable[Any]:
    """redis-py types its commands as ``Awaitable[T] | T`` (one signature for the sync and the
    asyncio client); on the asyncio client they are awaitables."""
    return cast("Awaitable[Any]", value)


async def _can_read(conn: AbstractConnection) -> bool:
    """Bytes or EOF waiting on an idle connection (``can_read`` from redis-py 8; before it,
    the same check was named ``can_read_destructive``)."""
    check: Callable[[], Awaitable[bool]] = getattr(conn, "can_read", None) \
        or getattr(conn, "can_read_destructive")
    return await check()


async def _connect(conn: AbstractConnection) -> None:
    connect: Callable[[], Awaitable[None]] = conn.connect  # untyped in redis-py
    await connect()


class _Publisher:
    """The publishing half: a queue of packed EVALSHA commands, written in batches on one
    connection by one task, each caller's future resolved by its reply."""

    __slots__ = ("_broker", "_queue", "_inflight", "_wake", "_idle", "_room", "_task", "_conn",
                 "_origin", "_seq", "_channels", "_options", "_closing", "_down_since", "_cause",
                 "_attempt", "_resent", "_written")

    def __init__(self, broker: RedisBroker) -> None:
        self._broker = broker
        self._queue: collections.deque[_Pending] = collections.deque()
        self._inflight: list[_Pending] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._room: list[asyncio.Future[None]] = []
        self._task: asyncio.Task[None] | None = None
        self._conn: AbstractConnection | None = None
        self._origin = secrets.token_bytes(8)
        self._seq = 0
        # channel -> (its two keys, its pub/sub name), packed as RESP bulk strings.
        self._channels: dict[str, tuple[bytes, bytes]] = {}
        # Exact trimming costs more per XADD; approximate trimming of a short history would
        # keep far more than asked (it trims whole stream nodes of 100 entries).
        trim = b"~" if broker.history >= 1000 else b"="
        self._options = (_bulk(str(broker.history).encode()) + _bulk(trim)
                         + _bulk(str(int(broker.retain_s * 1000)).encode()))
        self._closing = False
        self._down_since: float | None = None
        self._cause = ""
        self._attempt = 0
        self._resent = 0
        self._written = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def _packed(self, channel: str) -> tuple[bytes, bytes]:
        packed = self._channels.get(channel)
        if packed is None:
            state = _Channel(channel, self._broker.prefix)
            packed = (_bulk(state.counter_key.encode()) + _bulk(state.stream_key.encode()),
                      _bulk(state.wire))
            if len(self._channels) >= 4096:
                self._channels.clear()
            self._channels[channel] = packed
        return packed

    async def publish(self, channel: str, data: bytes) -> None:
        if self._closing:
            raise BrokerUnavailable("the push broker is closing: the message was not published")
        broker = self._broker
        loop = asyncio.get_running_loop()
        if len(self._queue) + len(self._inflight) >= broker.publish_buffer:
            await self._wait_for_room(loop)
        self._seq += 1
        keys, wire = self._packed(channel)
        # The message argument: origin and publish number, then the data (sent as it is).
        head = wire + b"$%d\r\n%s%s" % (len(data) + _HEADER_BYTES, self._origin,
                                         self._seq.to_bytes(8, "big"))
        future: asyncio.Future[None] = loop.create_future()
        self._queue.append(_Pending(keys, head, data, future,
                                    loop.time() + broker.publish_timeout_s))
        self._idle.clear()
        self._wake.set()
        await future

    async def _wait_for_room(self, loop: asyncio.AbstractEventLoop) -> None:
        broker = self._broker
        # Connected but behind: wait for the writer to make room, as long as a publish may wait
        deadline = loop.time() + broker.publish_timeout_s
        while len(self._queue) + len(self._inflight) >= broker.publish_buffer:
            if self._conn is None and self._down_since is not None:
                # Nothing drains the buffer while Redis is unreachable: no point in waiting.
                raise BrokerUnavailable(
                    f"not published: {broker.publish_buffer} messages already wait for Redis at "
                    f"{broker.safe_url}, unreachable for {loop.time() - self._down_since:.1f} s "
                    f"({self._cause})")
            if loop.time() >= deadline:
                raise BrokerUnavailable(
                    f"not published: {broker.publish_buffer} messages waited for Redis at "
                    f"{broker.safe_url} for {broker.publish_timeout_s} s")
            waiter: asyncio.Future[None] = loop.create_future()
            self._room.append(waiter)
            timer = loop.call_at(deadline, _wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                if waiter in self._room:
                    self._room.remove(waiter)

    def _made_room(self) -> None:
        if self._room and len(self._queue) + len(self._inflight) < self._broker.publish_buffer:
            waiters, self._room = self._room, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def _run(self) -> None:
        broker = self._broker
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._idle.set()
                self._made_room()
                self._wake.clear()
                await self._wake.wait()
                continue
            conn = self._conn
            if conn is None:
                try:
                    conn = await self._open()
                except _FAILURES as exc:
                    self._lost(exc, loop)
                    self._expire(loop.time())
                    delay = _backoff_s(self._attempt, broker.reconnect_max_s)
                    self._attempt += 1
                    if self._queue:
                        delay = min(delay, max(0.0, self._queue[0].deadline - loop.time()))
                    await asyncio.sleep(delay)
                    continue
                self._back(loop)
            batch = self._take_batch()
            self._inflight = batch
            self._written = False
            try:
                again = await self._send(conn, batch)
            except _FAILURES as exc:
                # The connection broke or Redis stopped answering: the unconfirmed publishes go
                # back in front, in order, to be sent again on the next connection (if one of
                # them did run, every subscriber drops the second copy by its origin).
                unconfirmed = [p for p in batch if not p.future.done()]
                for pending in reversed(unconfirmed):
                    pending.sent = pending.sent or self._written
                    self._queue.appendleft(pending)
                self._resent += len(unconfirmed)
                self._conn = None
                await conn.disconnect(nowait=True)
                self._lost(exc, loop)
            else:
                for pending in reversed(again):
                    self._queue.appendleft(pending)
            finally:
                self._inflight = []
            self._made_room()

    async def _open(self) -> AbstractConnection:
        conn = self._broker._connection("pub")
        try:
            await _connect(conn)
            # Loaded on every connection: a restarted Redis has an empty script cache.
            await conn.send_command("SCRIPT", "LOAD", _PUBLISH)
            await conn.read_response()
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        self._conn = conn
        return conn

    def _take_batch(self) -> list[_Pending]:
        queue = self._queue
        batch = [queue.popleft()]
        size = len(batch[0].data)
        while queue and len(batch) < _BATCH and size < _BATCH_BYTES:
            pending = queue.popleft()
            batch.append(pending)
            size += len(pending.data)
        return batch

    async def _send(self, conn: AbstractConnection, batch: list[_Pending]) -> list[_Pending]:
        """One EVALSHA for the batch; returns the publishes to send again (those that did not
        run: the script cache was flushed, or one before them failed)."""
        # A connection the server closed while it was idle (a restart, CLIENT KILL) is found
        # out here, before the batch is written: then it surely did not run.
        if await _can_read(conn):
            raise ConnectionError("unexpected bytes on the publish connection")
        count = len(batch)
        chunks = [b"*%d\r\n$7\r\nEVALSHA\r\n%s%s" % (6 + 4 * count, _bulk(_PUBLISH_SHA.encode()),
                                                      _bulk(b"%d" % (2 * count)))]
        chunks.extend([pending.keys for pending in batch])
        chunks.append(self._options)
        for pending in batch:
            chunks += (pending.head, pending.data, b"\r\n")
        self._written = True
        await conn.send_packed_command(chunks, check_health=False)
        # A bound on the reply: a frozen or unreachable server (whose kernel still accepted the
        # bytes) is found out within it, and the batch sent again on another connection.
        async with asyncio.timeout(min(self._broker.publish_timeout_s,
                                       3 * self._broker.health_check_s)):
            try:
                reply = await conn.read_response(timeout=math.inf)
            except NoScriptError:
                # Not loaded (a SCRIPT FLUSH): nothing ran; load it, send the batch again.
                await conn.send_command("SCRIPT", "LOAD", _PUBLISH)
                await conn.read_response(timeout=math.inf)
                return batch
            except ResponseError as exc:
                # Refused as a whole (READONLY, NOPERM...): nothing ran; the callers hear why.
                self._refuse(batch, _describe(exc))
                return []
        if isinstance(reply, list):
            done, error = int(reply[0]), bytes(reply[1]).decode(errors="replace")
        else:
            done, error = int(reply), ""
        for pending in batch[:done]:
            if not pending.future.done():
                pending.future.set_result(None)
        if done < count:
            # The first that failed (OOM under maxmemory...) is refused; the rest did not run.
            self._refuse(batch[done:done + 1], error)
            return batch[done + 1:]
        return []

    def _refuse(self, batch: list[_Pending], error: str) -> None:
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(BrokerUnavailable(
                    f"not published: Redis at {self._broker.safe_url} refused it: {error}"))

    def _lost(self, exc: BaseException, loop: asyncio.AbstractEventLoop) -> None:
        self._cause = _describe(exc)
        if self._down_since is None:
            self._down_since = loop.time()
            log.warning("push broker %s: lost the Redis publish connection to %s (%s); %d "
                        "messages wait for it", self._broker.node_id, self._broker.safe_url,
                        self._cause, len(self._queue))

    def _back(self, loop: asyncio.AbstractEventLoop) -> None:
        self._attempt = 0
        if self._down_since is not None:
            log.info("push broker %s: Redis publish connection back after %.1f s; %d waiting "
                     "messages sent (%d of them again, unconfirmed before)", self._broker.node_id,
                     loop.time() - self._down_since, len(self._queue), self._resent)
            self._down_since = None
            self._resent = 0

    def _expire(self, now: float) -> None:
        """Fail the publishes whose wait is over (the queue is in deadline order)."""
        broker = self._broker
        queue = self._queue
        while queue and queue[0].deadline <= now:
            pending = queue.popleft()
            if pending.future.done():
                continue
            if pending.sent:
                text = (f"not confirmed: Redis at {broker.safe_url} did not answer within "
                        f"{broker.publish_timeout_s} s ({self._cause}); it may still be delivered "
                        "if Redis had received it")
            else:
                text = (f"not published: Redis at {broker.safe_url} unreachable for "
                        f"{broker.publish_timeout_s} s ({self._cause})")
            pending.future.set_exception(BrokerUnavailable(text))
        self._made_room()

    async def close(self, bound_s: float) -> None:
        self._closing = True
        task = self._task
        if task is not None and (self._queue or self._inflight):
            try:
                async with asyncio.timeout(bound_s):
                    await self._idle.wait()
            except TimeoutError:
                # Redis did not take them in time: failed below, each caller told.
                pass
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for pending in [*self._inflight, *self._queue]:
            if not pending.future.done():
                pending.future.set_exception(BrokerUnavailable(
                    "not published: the push broker closed before Redis confirmed it"))
        self._queue.clear()
        self._inflight = []
        self._made_room()
        if self._conn is not None:
            await self._conn.disconnect(nowait=True)
            self._conn = None


class _Subscriber:
    """The receiving half: one pub/sub connection, its health check, and per channel the
    last counter value delivered, so that a reconnect reads exactly what was missed.

    States: connecting (``_conn`` None) -> resuming (subscribed again, streams read) -> live
    (``_conn`` set, messages dispatched as read) -> connecting, until ``close``.  Invariant: a
    channel's messages reach ``on_message`` in counter order, each once; a live message whose
    number is past ``last + 1`` waits until the stream gave the ones before it.

    What a loss report can rest on (docs/push-protocol.md §8.3: a GAP announces pushes that
    will never come, so ``on_lost`` is called when messages may be missing, and only then):

    - PING/PONG: Redis answers a PING on this connection after writing every message it
      published before, and the reader handles replies in order, so when it handles the PONG
      of a PING sent at ``S`` every message published before ``S`` was delivered (or reported
      with its exact count).  ``_synced_at`` is the latest such ``S``; a PING goes out every
      ``health_check_s``.
    - The epoch (a random value under ``<prefix>epoch``, set when missing): another value means
      Redis lost its data set (a restart without persistence, FLUSHALL/FLUSHDB) since it was
      read.  Lost while this connection was up and caught up (``_caught_up``), and shown still
      up after by a PONG: nothing was missed (one pub/sub connection delivers every message in
      order; the counters started again and delivery went on with them): no report, only the
      directories (``on_reset``).  Lost while this node was cut off: whatever was published
      between its last sync and the loss is gone with the data set and cannot be counted, nor
      shown to be nothing (a counter gone with the data set says nothing about what it had
      reached): ``on_lost(channel, 0)`` for every channel, and ``on_reset``.
    - A counter below the last number delivered, the epoch unchanged: the channel's keys
      expired, ``retain_s`` after its last publish (the script sets both expiries at each
      publish), so that publish is at least ``retain_s`` old (Redis's clock, with a margin for
      the two clocks).  If this node synced more recently than that, it had every message of
      the expired run: nothing to report.  Otherwise ``on_lost(channel, 0)``.
    - Away longer than ``retain_s``: a counter may have expired and started again, and grown
      past the last number delivered, which nothing in Redis can tell apart from a counter
      that went on: ``on_lost(channel, 0)`` for every channel.
    """

    __slots__ = ("_broker", "_on_message", "_on_lost", "_channels", "_by_wire", "_conn",
                 "_generation", "_task", "_ready", "_waiters", "_rx", "_dead", "_down_since",
                 "_cause", "_epoch", "_ever_up", "_recovered", "_lost_count", "_pongs",
                 "_synced_at", "_caught_up")

    def __init__(self, broker: RedisBroker, on_message: Callable[[str, bytes], None],
                 on_lost: Callable[[str, int], None]) -> None:
        self._broker = broker
        self._on_message = on_message
        self._on_lost = on_lost
        self._channels: dict[str, _Channel] = {}
        self._by_wire: dict[bytes, _Channel] = {}
        self._conn: AbstractConnection | None = None
        self._generation = 0
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._waiters: dict[bytes, list[asyncio.Future[None]]] = {}
        self._rx = 0.0
        self._dead = ""
        self._down_since: float | None = None
        self._cause = "not connected yet"
        self._epoch: bytes | None = None
        self._ever_up = False
        self._recovered = 0
        self._lost_count = 0
        # One entry per PING sent on the current connection, in order: its send time, and
        # what waits for its PONG (check_epoch), if anything.
        self._pongs: collections.deque[tuple[float, asyncio.Future[bool] | None]] = \
            collections.deque()
        self._synced_at: float | None = None
        # The connection (generation) whose _resume completed: caught up, its epoch checked.
        self._caught_up = -1

    def add(self, channel: str, last: int | None) -> _Channel:
        state = _Channel(channel, self._broker.prefix)
        state.last = last
        self._channels[channel] = state
        self._by_wire[state.wire] = state
        return state

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        self._task = loop.create_task(self._run())
        bound_s = self._broker.publish_timeout_s
        try:
            async with asyncio.timeout(bound_s):
                await self._ready
        except TimeoutError:
            raise BrokerUnavailable(f"cannot reach Redis at {self._broker.safe_url} within "
                                    f"{bound_s} s ({self._cause})") from None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._release_waiters()

    # ------------------------------------------------------------------ the hub's calls
    async def subscribe(self, channel: str) -> None:
        if channel in self._channels:
            return
        broker = self._broker
        state = self.add(channel, None)
        redis = broker._redis
        assert redis is not None
        epoch_key = broker.prefix + "epoch"
        try:
            # The baseline, read before subscribing: every later number is this node's to get
            # (one published between this read and the subscription is read from the stream).
            # With the epoch, in one step: see below.
            async with redis.pipeline(transaction=True) as pipe:
                pipe.get(state.counter_key)
                pipe.get(epoch_key)
                counter, epoch = await pipe.execute()
        except _FAILURES:
            # Redis is unreachable: the reader reads the baseline and subscribes when it is back.
            return
        if state.last is None:
            state.last = int(counter or 0)
        conn = self._conn
        if conn is None or self._channels.get(channel) is not state \
                or state.generation == self._generation:
            return
        state.generation = self._generation
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(state.wire, []).append(waiter)
        try:
            await conn.send_command("SUBSCRIBE", state.wire, check_health=False)
            async with asyncio.timeout(min(broker.publish_timeout_s, 3 * broker.health_check_s)):
                await waiter
            # Redis lost its data between the baseline and the subscription: what was published
            # after the one and before the other is gone with it, uncounted (the class
            # docstring; check_epoch vouches only for channels subscribed before a loss).
            if await redis.get(epoch_key) != epoch and self._channels.get(channel) is state:
                self._report_lost(state, 0)
        except _FAILURES:
            # The connection broke or stopped answering: the next one subscribes every
            # registered channel, this one included, and reads what it missed meanwhile.
            return
        finally:
            waiters = self._waiters.get(state.wire)
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)

    async def unsubscribe(self, channel: str) -> None:
        state = self._channels.pop(channel, None)
        if state is None:
            return
        self._by_wire.pop(state.wire, None)
        conn = self._conn
        if conn is not None:
            try:
                await conn.send_command("UNSUBSCRIBE", state.wire, check_health=False)
            except _FAILURES:
                # The connection broke: the next one subscribes only the registered channels,
                # and messages of a channel no longer registered are not dispatched meanwhile.
                return

    # ------------------------------------------------------------------ the connection's life
    async def _run(self) -> None:
        broker = self._broker
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            conn = broker._connection("sub")
            health: asyncio.Task[None] | None = None
            self._dead = ""
            try:
                await _connect(conn)
                self._rx = loop.time()
                self._generation += 1
                stash, resubscribed = await self._resume(conn, loop)
                self._caught_up = self._generation
                self._conn = conn
                attempt = 0
                health = loop.create_task(self._check_health(conn))
                if self._ready is not None and not self._ready.done():
                    self._ready.set_result(None)
                if self._down_since is not None and self._ever_up:
                    log.info("push broker %s: Redis pub/sub back after %.1f s: %d channels "
                             "subscribed again, %d messages recovered, %d lost", broker.node_id,
                             loop.time() - self._down_since, resubscribed, self._recovered,
                             self._lost_count)
                self._down_since = None
                self._ever_up = True
                await self._catch_up(conn)
                await self._read(conn, stash)
            except _FAILURES as exc:
                self._cause = self._dead or _describe(exc)
            except Exception as exc:
                # A bug here must not leave the node deaf: said loudly, then connected again.
                log.exception("push broker %s: the Redis subscriber failed", broker.node_id)
                self._cause = _describe(exc)
            finally:
                self._conn = None
                if health is not None:
                    health.cancel()
                    await asyncio.gather(health, return_exceptions=True)
                await conn.disconnect(nowait=True)
                self._release_waiters()
                self._release_pongs()
            if self._down_since is None:
                self._down_since = loop.time()
                self._recovered = self._lost_count = 0
                if self._ever_up:
                    log.warning("push broker %s: lost the Redis pub/sub connection to %s (%s); "
                                "reconnecting", broker.node_id, broker.safe_url, self._cause)
            await asyncio.sleep(_backoff_s(attempt, broker.reconnect_max_s))
            attempt += 1

    async def _resume(self, conn: AbstractConnection,
                      loop: asyncio.AbstractEventLoop) -> tuple[list[Any], int]:
        """On a new connection: find out whether Redis lost its data, subscribe every channel,
        then read each channel's stream after its last number.  Returns the live messages
        that came meanwhile (dispatched after), and how many channels were subscribed."""
        broker = self._broker
        redis = broker._redis
        assert redis is not None
        epoch_key = broker.prefix + "epoch"
        async with redis.pipeline(transaction=True) as pipe:
            pipe.set(epoch_key, secrets.token_hex(8), nx=True)
            pipe.get(epoch_key)
            _, epoch = await pipe.execute()
        away_s = 0.0 if self._down_since is None else loop.time() - self._down_since
        # A new epoch: Redis restarted without its data (or was flushed), every counter starts
        # again.  Away longer than retain_s: counters may have expired and started again.  In
        # both cases what was published before and not yet received cannot be counted.
        flushed = self._epoch is not None and epoch != self._epoch
        forgotten = flushed or away_s > broker.retain_s
        self._epoch = epoch
        if flushed:
            log.warning("push broker %s: Redis at %s lost its data (restarted without "
                        "persistence, or flushed) while this node was cut off: what was "
                        "published meanwhile cannot be counted; the directories are written "
                        "again", broker.node_id, broker.safe_url)
            broker._reset()
        if forgotten:
            for state in list(self._channels.values()):
                self._report_lost(state, 0)
                state.last = 0
        unknown = [state for state in self._channels.values() if state.last is None]
        if unknown:
            async with redis.pipeline(transaction=False) as pipe:
                for state in unknown:
                    pipe.get(state.counter_key)
                counters = await pipe.execute()
            for state, counter in zip(unknown, counters):
                if state.last is None:
                    state.last = int(counter or 0)
        states = list(self._channels.values())
        generation = self._generation
        stash: list[Any] = []
        async with asyncio.timeout(min(broker.publish_timeout_s, 3 * broker.health_check_s)):
            for i in range(0, len(states), 1000):
                chunk = states[i:i + 1000]
                for state in chunk:
                    state.generation = generation
                await conn.send_command("SUBSCRIBE", *[s.wire for s in chunk], check_health=False)
                confirmed = 0
                while confirmed < len(chunk):
                    reply = await conn.read_response(timeout=math.inf)
                    if reply[0] == b"subscribe":
                        confirmed += 1
                        self._confirmed(reply[1])
                    elif reply[0] == b"message":
                        stash.append(reply)
        # Subscribed first, read after: a message is either in what the stream gives now or
        # arrives live after (or both: the copy is dropped by its number).
        for state in states:
            if self._channels.get(state.name) is state and state.last is not None:
                self._recovered += await self._replay(state, None)
        # A loss of the data set during all this would be taken for one while connected
        # (check_epoch): found out now, it is treated as what it is, one while cut off.
        if await redis.get(epoch_key) != epoch:
            raise ConnectionError("Redis lost its data while this node subscribed again")
        return stash, len(states)

    async def _catch_up(self, conn: AbstractConnection) -> None:
        """Subscribe the channels registered while the connection was being resumed."""
        late = [s for s in self._channels.values() if s.generation != self._generation]
        for state in late:
            state.generation = self._generation
        if late:
            await conn.send_command("SUBSCRIBE", *[s.wire for s in late], check_health=False)

    async def _read(self, conn: AbstractConnection, stash: list[Any]) -> None:
        loop = asyncio.get_running_loop()
        by_wire = self._by_wire
        for reply in stash:
            state = by_wire.get(reply[1])
            if state is not None:
                await self._checked(state, reply[2])
        read = conn.read_response
        while True:
            reply = await read(timeout=math.inf)
            self._rx = loop.time()
            if reply[0] == b"message":
                state = by_wire.get(reply[1])
                if state is not None:
                    payload = reply[2]
                    try:
                        if not self._live(state, payload):
                            continue
                    except ValueError:
                        self._malformed(state)
                        continue
                    await self._message(state, payload)
            elif reply[0] == b"pong":
                self._ponged()
            elif reply[0] == b"subscribe":
                self._confirmed(reply[1])

    async def _checked(self, state: _Channel, payload: bytes) -> None:
        try:
            await self._message(state, payload)
        except ValueError:
            self._malformed(state)

    def _malformed(self, state: _Channel) -> None:
        # Someone else PUBLISHed on this channel name (a prefix shared by mistake?).
        log.warning("push broker %s: dropped a message on %r that no RedisBroker published "
                    "(no counter)", self._broker.node_id, state.wire.decode(errors="replace"))

    async def _check_health(self, conn: AbstractConnection) -> None:
        """PING every ``health_check_s`` (a busy connection too: each PONG is a sync point,
        ``_synced_at``); drop a connection silent for three periods (Redis frozen or
        unreachable: the kernel may keep the socket open for minutes)."""
        period_s = self._broker.health_check_s
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period_s)
            silent_s = loop.time() - self._rx
            if silent_s >= 3 * period_s:
                self._dead = f"no answer to health-check PINGs for {silent_s:.1f} s"
                await conn.disconnect(nowait=True)
                return
            try:
                await self._ping(conn, None)
            except _FAILURES:
                return  # the reader sees the broken connection too

    async def _ping(self, conn: AbstractConnection, waiter: asyncio.Future[bool] | None) -> None:
        # Noted before it is written: PONGs come back in the order PINGs were written.
        self._pongs.append((asyncio.get_running_loop().time(), waiter))
        await conn.send_packed_command(_PING, check_health=False)

    def _ponged(self) -> None:
        if not self._pongs:
            return
        sent, waiter = self._pongs.popleft()
        self._synced_at = sent
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    def _release_pongs(self) -> None:
        pongs, self._pongs = self._pongs, collections.deque()
        for _sent, waiter in pongs:
            if waiter is not None and not waiter.done():
                waiter.set_result(False)

    async def check_epoch(self, epoch: bytes) -> bool:
        """The refresher read ``epoch`` in Redis.  True when it tells of a data loss that
        happened while this connection was up and caught up, and so cost no message (see the
        class docstring); the epoch is then taken as current.  False otherwise: no change, or
        one the next connection's ``_resume`` finds and reports itself."""
        if self._epoch is None or epoch == self._epoch:
            return False
        conn, generation = self._conn, self._generation
        if conn is None or self._caught_up != generation:
            return False
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        try:
            await self._ping(conn, waiter)
            async with asyncio.timeout(3 * self._broker.health_check_s):
                up = await waiter
        except (*_FAILURES, TimeoutError):
            return False
        # The PING was written after the new epoch was read, so after the loss: its PONG on the
        # same connection shows the connection outlived it.
        if not up or self._conn is not conn or self._generation != generation \
                or self._epoch == epoch:
            return False
        self._epoch = epoch
        log.warning("push broker %s: Redis at %s lost its data (flushed?) while this node stayed "
                    "connected: no message was missed; the directories are written again",
                    self._broker.node_id, self._broker.safe_url)
        return True

    def _confirmed(self, wire: bytes) -> None:
        for waiter in self._waiters.pop(wire, ()):
            if not waiter.done():
                waiter.set_result(None)

    def _release_waiters(self) -> None:
        waiters, self._waiters = self._waiters, {}
        for futures in waiters.values():
            for waiter in futures:
                if not waiter.done():
                    waiter.set_result(None)

    # ------------------------------------------------------------------ delivery
    def _live(self, state: _Channel, payload: bytes) -> bool:
        """A live message ``"<number> <message>"``: delivered now, or True when numbers before
        it are missing (they are read from the stream first)."""
        space = payload.find(b" ", 0, 24)
        number = int(payload[:space])
        last = state.last
        if last is None:
            state.last = last = number - 1
        if number > last + 1:
            return True
        self._deliver(state, number, payload, space + 1)
        return False

    async def _message(self, state: _Channel, payload: bytes) -> None:
        """A live message whose predecessors may be missing: read them, then deliver it."""
        number = int(payload[:payload.find(b" ", 0, 24)])
        assert state.last is not None
        if number > state.last + 1:
            await self._replay(state, number - 1)
            if self._channels.get(state.name) is not state:
                return
        self._live(state, payload)

    def _deliver(self, state: _Channel, number: int, payload: bytes, offset: int) -> None:
        origin = payload[offset:offset + 8]
        published = int.from_bytes(payload[offset + 8:offset + _HEADER_BYTES], "big")
        origins = state.origins
        seen = origins.pop(origin, 0)
        if published <= seen:
            # A copy: a publish sent again after its connection broke unconfirmed, or a stream
            # entry that also came live.  Its number is used up all the same.
            origins[origin] = seen
            if state.last is None or number > state.last:
                state.last = number
            return
        origins[origin] = published
        if len(origins) > _MAX_ORIGINS:
            # The publishers heard from least recently (a publisher's entry moves to the end
            # each time it is heard from): long-gone processes.
            for gone in list(origins)[:_MAX_ORIGINS // 4]:
                del origins[gone]
        # Assigned also when lower: a counter that started again (Redis lost it) goes on there.
        state.last = number
        try:
            self._on_message(state.name, payload[offset + _HEADER_BYTES:])
        except Exception:
            log.exception("push broker %s: on_message failed for a message of %r",
                          self._broker.node_id, state.name)

    def _synced_since_expiry(self) -> bool:
        """Whether a run whose keys expired by now ended before this node's last sync (the
        class docstring): its last publish is at least ``retain_s`` old (with a margin for the
        clocks of this host and Redis's: 1 %, at least a second)."""
        synced = self._synced_at
        if synced is None:
            return False
        retain_s = self._broker.retain_s
        margin_s = max(1.0, retain_s / 100)
        return synced > asyncio.get_running_loop().time() - retain_s + margin_s

    def _report_lost(self, state: _Channel, count: int) -> None:
        self._lost_count += count
        try:
            self._on_lost(state.name, count)
        except Exception:
            log.exception("push broker %s: on_lost failed for %r", self._broker.node_id,
                          state.name)

    async def _replay(self, state: _Channel, upto: int | None) -> int:
        """Deliver the channel's stream entries after ``state.last`` (up to ``upto``, or all),
        in order; report what the stream no longer holds.  Returns how many were read."""
        redis = self._broker._redis
        assert redis is not None
        read = 0
        while True:
            assert state.last is not None
            start = state.last + 1
            if upto is not None and start > upto:
                return read
            async with redis.pipeline(transaction=True) as pipe:
                pipe.xrange(state.stream_key, min=f"{start}-0",
                            max="+" if upto is None else f"{upto}-0", count=_RECOVER_COUNT)
                pipe.get(state.counter_key)
                pipe.get(self._broker.prefix + "epoch")
                entries, raw_counter, epoch = await pipe.execute()
            if self._channels.get(state.name) is not state:
                return read
            counter = int(raw_counter or 0)
            if counter < state.last:
                # The counter started again: read the new run from its start.  What the old
                # run held after state.last: nothing, if its keys expired after this node's
                # last sync; else (or Redis lost its data) it cannot be counted.
                if epoch != self._epoch or not self._synced_since_expiry():
                    self._report_lost(state, 0)
                state.last = 0
                continue
            for entry_id, fields in entries:
                number = int(bytes(entry_id).split(b"-", 1)[0])
                if number > state.last + 1:
                    # Trimmed (the stream keeps about ``history`` entries) or expired.
                    self._report_lost(state, number - state.last - 1)
                    state.last = number - 1
                self._deliver(state, number, fields[b"m"], 0)
                read += 1
            if len(entries) < _RECOVER_COUNT:
                end = counter if upto is None else upto
                if end > state.last:
                    self._report_lost(state, end - state.last)
                    state.last = end
                return read
