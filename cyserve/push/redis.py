"""``RedisBroker``: the push hubs of several processes and hosts joined through one Redis server,
on redis-py's asyncio client (the ``cyserve[redis]`` extra).

What goes through Redis, per message (design decision 3 of issue 11):

- A publish is one atomic step of the ``_PUBLISH`` script on the server: INCR the channel's
  counter, XADD the message under that number to the channel's capped stream (the recovery
  history), PUBLISH ``"<number> " + message`` to the channel.  The hub publishes once per
  message; nothing here is per client.  Publishes queue for one connection; those that queued
  while the previous batch was out leave together in one EVALSHA, one round trip (one writer
  task: the order is the order of ``publish`` calls).
- One pub/sub connection per broker receives every channel this node subscribed to.  It is
  health-checked (a PING after ``health_check_s`` of silence; no answer within two more periods
  and it is dropped), and reconnected with bounded exponential backoff.  After a reconnect every
  channel is subscribed again, then read from its stream after the last number this node got,
  in order, before any live message; a number already seen is dropped.  What the stream no
  longer holds is reported by ``on_lost(channel, count)`` with the exact count.
- Every message carries its publisher's origin (8 random bytes per broker start) and publish
  number: a publish resent after a connection broke with it unconfirmed (it may have run) is
  recognised by every subscriber and delivered once.

Guarantees (the ``Broker`` contract of ``cyserve/push/broker.py``):

- ``on_message(channel, data)``: every message published to a subscribed channel, exactly once,
  in the channel's counter order (one order for every node, which includes each publisher's own
  order), across pub/sub disconnects, server restarts and freezes;
- ``on_lost(channel, count)`` in place of messages this node can no longer get: ``count`` exact
  when the stream was trimmed past them (more than ``history`` published while this node was cut
  off), 0 when Redis itself lost its data while this node was cut off (a restart without
  persistence, a flush: what was published before it and not yet received cannot be counted),
  and nothing when it can be shown that nothing was missed (``_Subscriber``: what is provable);
- ``on_reset()`` when Redis lost this node's directory entries (its data set, or presence keys
  that expired while this node could not refresh them): the hub writes them again;
- ``publish`` returns once Redis ran the script.  While Redis is unreachable it waits, at most
  ``publish_timeout_s``, with at most ``publish_buffer`` messages waiting, and raises
  ``BrokerUnavailable`` past either bound (saying which, and why Redis is unreachable); an
  error reply (``OOM``...) raises it too.  Never a silent drop.

Directories: presence ``<prefix>presence:<client id>`` -> node id with a TTL of
``presence_ttl_s`` (every claimed id refreshed by one pipelined script every third of it, so a
dead node's clients are forgotten within ``presence_ttl_s``); a set per group, pruned of members
whose presence is gone; resume tokens under their hash with a TTL, taken by GET and DEL in one
MULTI (GETDEL would need Redis 6.2).  The node registry ``<prefix>nodes``: a sorted set of the
nodes up, each entry expiring ``presence_ttl_s`` after its last refresh (Redis's clock), removed
when the node withdraws (its hub is stopping) or closes: ``takers()`` counts the others, so a
stopping hub waits for its clients to resume elsewhere only when there is an elsewhere.

Keys per channel: ``<prefix>{<channel>}:n`` (the counter) and ``<prefix>{<channel>}:s`` (the
stream, ``MAXLEN ~ history``: at least ``history`` entries kept; an exact trim below 1,000).
Both expire ``retain_s`` after the channel's last publish: a node cut off for longer than that
treats what it missed as uncountable (``on_lost(channel, 0)``).
"""
from __future__ import annotations

import asyncio
import logging
import math
import os
import secrets
import socket
import urllib.parse
from typing import Any, Awaitable, Callable, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from cyserve.errors import BrokerUnavailable
from cyserve.push._redis_channels import (_FAILURES, _Channel, _Publisher, _Subscriber, _awaited,
                                          _describe)

__all__ = ["RedisBroker"]

log = logging.getLogger("cyserve.push")

_T = TypeVar("_T")

# KEYS: presence keys; ARGV[1] node id, ARGV[2] TTL (ms).  Set again (a restarted Redis lost
# them) unless another node holds the client now (a resume handed it over).  Returns how many
# were missing: Redis forgot them (lost its data, or they expired while this node was cut off).
_REFRESH = """\
local missing = 0
for _, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder == false then missing = missing + 1 end
  if holder == false or holder == ARGV[1] then redis.call('SET', key, ARGV[1], 'PX', ARGV[2]) end
end
return missing
"""

# KEYS: presence keys; ARGV[1] node id.  Deleted only where this node is still the holder.
_RELEASE = """\
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
return 0
"""

# KEYS[1]: the node registry, a sorted set of node ids scored by when their entry expires (Redis's
# own clock, ms: the nodes' clocks need not agree).  ARGV[1] node id, ARGV[2] TTL (ms), ARGV[3]
# "1" to (re)register that node, "0" only to read.  Expired entries (nodes that died without
# closing) are dropped first; returns the ids still registered.
_NODES = """\
if redis.replicate_commands then redis.replicate_commands() end
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
if ARGV[3] == '1' then redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), ARGV[1]) end
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

_SCRIPT_KEYS = 500          # presence keys per refresh/release script call


def _redact(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:" if parts.username else ":"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}***@{netloc}"))


class RedisBroker:
    """A ``Broker`` (cyserve/push/broker.py) over Redis, for hubs in several processes and hosts.

    ``url``: ``redis://[user:password@]host:port/db``, ``rediss://`` (TLS) or ``unix://``.
    ``prefix``: put before every key and channel (several deployments can share a server).
    ``history``: messages kept per channel for nodes that were cut off (at least that many).
    ``presence_ttl_s``: how long a dead node's clients stay located.  ``health_check_s``: the
    pub/sub connection's PING period; a connection silent for three periods is dropped and
    reconnected, at most ``reconnect_max_s`` between attempts.  ``publish_buffer`` /
    ``publish_timeout_s``: how many publishes may wait for an unreachable Redis, and how long
    each waits, before ``BrokerUnavailable``.  ``retain_s``: a channel's counter and history
    expire this long after its last publish.

    One broker per hub and process; its ``node_id`` is drawn by ``start`` (the host name, the
    pid of the process that started it, for logs, and random bytes), so that a broker built
    before the workers of ``App.run(workers=...)`` fork gives each worker a node of its own;
    it is ``""`` before.  ``start`` connects (``BrokerUnavailable`` if Redis cannot be reached
    within ``publish_timeout_s``); ``close`` sends what is queued (within
    ``publish_timeout_s``), releases what this node claimed, and stops every task it started.
    """

    def __init__(self, url: str, *, prefix: str = "cyserve:push:", history: int = 10_000,
                 presence_ttl_s: float = 15.0, health_check_s: float = 1.0,
                 publish_buffer: int = 10_000, publish_timeout_s: float = 5.0,
                 reconnect_max_s: float = 2.0, retain_s: float = 3600.0) -> None:
        if history < 1:
            raise ValueError(f"history must be at least 1, got {history}")
        if publish_buffer < 1:
            raise ValueError(f"publish_buffer must be at least 1, got {publish_buffer}")
        for name, value in (("presence_ttl_s", presence_ttl_s), ("health_check_s", health_check_s),
                            ("publish_timeout_s", publish_timeout_s),
                            ("reconnect_max_s", reconnect_max_s), ("retain_s", retain_s)):
            if not value > 0 or math.isinf(value):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        self.url = url
        # What logs and errors name: the URL without its password.
        self.safe_url = _redact(url)
        self.prefix = prefix
        self.history = history
        self.presence_ttl_s = presence_ttl_s
        self.health_check_s = health_check_s
        self.publish_buffer = publish_buffer
        self.publish_timeout_s = publish_timeout_s
        self.reconnect_max_s = reconnect_max_s
        self.retain_s = retain_s
        self._node_id = ""
        self._connection_kwargs: dict[str, Any] = dict(parse_url(url))
        self._redis: aioredis.Redis | None = None
        self._publisher: _Publisher | None = None
        self._subscriber: _Subscriber | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._claimed: set[str] = set()
        self._on_reset: Callable[[], None] | None = None
        self._started = False
        # start() went through: there is something of this node's in Redis to release.
        self._up = False
        self._closed = False
        # withdraw() was called: the refresher no longer registers this node.
        self._withdrawn = False

    def __repr__(self) -> str:
        return f"RedisBroker({self.safe_url!r}, node_id={self._node_id!r})"

    # ------------------------------------------------------------------ lifecycle
    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def client(self) -> aioredis.Redis | None:
        """The redis-py client of the directories (None before ``start``), for other users of
        the same Redis in the process (``cyserve.ratelimit.RedisStore(broker)``)."""
        return None if self._closed else self._redis

    async def start(self, on_message: Callable[[str, bytes], None],
                    on_lost: Callable[[str, int], None],
                    on_reset: Callable[[], None] | None = None) -> None:
        await self._start(on_message, on_lost, on_reset)

    async def _start(self, on_message: Callable[[str, bytes], None],
                     on_lost: Callable[[str, int], None],
                     on_reset: Callable[[], None] | None) -> None:
        if self._started:
            raise RuntimeError("RedisBroker.start() was called twice")
        self._started = True
        # Drawn here, not when the broker was built: the workers a supervisor forks after
        # building the app share everything built before the fork.
        self._node_id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(6)}"
        self._on_reset = on_reset
        self._redis = aioredis.Redis(
            **self._connection_kwargs, socket_timeout=self.publish_timeout_s,
            socket_connect_timeout=self.publish_timeout_s,
            # One quick second try: a pooled connection found dead after a Redis restart.
            retry=Retry(NoBackoff(), 1), client_name=f"cyserve-push:{self._node_id}:cmd")
        self._publisher = _Publisher(self)
        self._subscriber = _Subscriber(self, on_message, on_lost)
        self._subscriber.add(f"n:{self._node_id}", 0)
        try:
            await self._subscriber.start()
            # Registered before the hub serves anyone: a node stopping now counts this one as
            # a place its clients can resume (a rolling restart's new worker).
            await self._nodes(register=True)
        except BaseException:
            await self.close()
            raise
        self._publisher.start()
        self._refresher = asyncio.get_running_loop().create_task(self._refresh_presence())
        self._up = True

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._close()

    async def _close(self) -> None:
        if self._publisher is not None:
            await self._publisher.close(self.publish_timeout_s)
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
        if self._subscriber is not None:
            await self._subscriber.close()
        if self._redis is not None:
            if self._up:
                # (A broker whose start failed has nothing of its own in Redis to release.)
                try:
                    async with asyncio.timeout(self.publish_timeout_s):
                        await self._release_all()
                except _FAILURES as exc:
                    # The presence entries expire by themselves within presence_ttl_s.
                    log.warning("push broker %s: could not release its clients in Redis on "
                                "close: %s", self._node_id, _describe(exc))
            await self._redis.aclose()

    async def _release_all(self) -> None:
        redis = self._redis
        assert redis is not None
        claimed = sorted(self._claimed)
        self._claimed.clear()
        own = _Channel(f"n:{self._node_id}", self.prefix)
        async with redis.pipeline(transaction=False) as pipe:
            for i in range(0, len(claimed), _SCRIPT_KEYS):
                keys = [self._presence_key(c) for c in claimed[i:i + _SCRIPT_KEYS]]
                pipe.eval(_RELEASE, len(keys), *keys, self._node_id)
            # Nobody else reads this node's own channel.
            pipe.delete(own.counter_key, own.stream_key)
            pipe.zrem(self._nodes_key, self._node_id)
            await pipe.execute()

    # ------------------------------------------------------------------ the other nodes
    @property
    def _nodes_key(self) -> str:
        return self.prefix + "nodes"

    def _nodes(self, register: bool) -> Awaitable[Any]:
        """The node registry script (``_NODES``) on the directories' client: this node's entry
        set again when ``register``; the ids registered."""
        redis = self._redis
        assert redis is not None
        return _awaited(redis.eval(_NODES, 1, self._nodes_key, self._node_id,
                                   str(int(self.presence_ttl_s * 1000)), "1" if register else "0"))

    async def withdraw(self) -> None:
        if self._withdrawn or not self._up:
            return
        self._withdrawn = True
        await self._call("withdraw", lambda r: _awaited(r.zrem(self._nodes_key, self._node_id)))

    async def takers(self) -> int:
        ids = await self._call("takers", lambda r: self._nodes(register=False))
        own = self._node_id.encode()
        return sum(1 for node in ids if bytes(node) != own)

    # ------------------------------------------------------------------ channels
    async def publish(self, channel: str, data: bytes) -> None:
        publisher = self._publisher
        if publisher is None or self._closed:
            raise BrokerUnavailable("the push broker is not running (publish before start or "
                                    "after close)")
        await publisher.publish(channel, data)

    async def subscribe(self, channel: str) -> None:
        assert self._subscriber is not None, "RedisBroker.subscribe() before start()"
        await self._subscriber.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        assert self._subscriber is not None, "RedisBroker.unsubscribe() before start()"
        await self._subscriber.unsubscribe(channel)

    # ------------------------------------------------------------------ directories
    def _presence_key(self, client_id: str) -> str:
        return f"{self.prefix}presence:{client_id}"

    def _group_key(self, group: str) -> str:
        return f"{self.prefix}group:{group}"

    def _token_key(self, token_hash: str) -> str:
        return f"{self.prefix}token:{token_hash}"

    async def _call(self, what: str, fn: Callable[[aioredis.Redis], Awaitable[_T]]) -> _T:
        """One directory operation; Redis unreachable (or answering an error) is
        ``BrokerUnavailable`` naming the operation and the cause."""
        redis = self._redis
        if redis is None or self._closed:
            raise BrokerUnavailable(f"{what}: the push broker is not running")
        try:
            return await fn(redis)
        except _FAILURES as exc:
            raise BrokerUnavailable(
                f"{what}: Redis at {self.safe_url} failed: {_describe(exc)}") from exc

    async def claim(self, client_id: str) -> None:
        self._claimed.add(client_id)
        ttl_ms = int(self.presence_ttl_s * 1000)
        await self._call("claim", lambda r: r.set(self._presence_key(client_id), self._node_id,
                                                  px=ttl_ms))

    async def release(self, client_id: str) -> None:
        self._claimed.discard(client_id)
        key = self._presence_key(client_id)
        await self._call("release", lambda r: _awaited(r.eval(_RELEASE, 1, key, self._node_id)))

    async def locate(self, client_id: str) -> str | None:
        value = await self._call("locate", lambda r: _awaited(r.get(self._presence_key(client_id))))
        return None if value is None else bytes(value).decode()

    async def group_add(self, group: str, client_id: str) -> None:
        await self._call("group_add", lambda r: _awaited(r.sadd(self._group_key(group), client_id)))

    async def group_remove(self, group: str, client_id: str) -> None:
        await self._call("group_remove",
                         lambda r: _awaited(r.srem(self._group_key(group), client_id)))

    async def group_members(self, group: str) -> set[str]:
        key = self._group_key(group)

        async def members(redis: aioredis.Redis) -> set[str]:
            names = sorted(bytes(m).decode() for m in await _awaited(redis.smembers(key)))
            if not names:
                return set()
            holders = await redis.mget([self._presence_key(name) for name in names])
            gone = [name for name, holder in zip(names, holders) if holder is None]
            if gone:
                # Their node died (its presence expired) or released them without leaving.
                await _awaited(redis.srem(key, *gone))
            return {name for name, holder in zip(names, holders) if holder is not None}
        return await self._call("group_members", members)

    async def put_token(self, token_hash: str, client_id: str, ttl_s: float) -> None:
        ttl_ms = max(1, int(ttl_s * 1000))
        await self._call("put_token", lambda r: r.set(self._token_key(token_hash), client_id,
                                                      px=ttl_ms))

    async def take_token(self, token_hash: str) -> str | None:
        key = self._token_key(token_hash)

        async def take(redis: aioredis.Redis) -> Any:
            # GET and DEL in one MULTI: a token opens its session once (GETDEL needs 6.2).
            async with redis.pipeline(transaction=True) as pipe:
                pipe.get(key)
                pipe.delete(key)
                return (await pipe.execute())[0]
        value = await self._call("take_token", take)
        return None if value is None else bytes(value).decode()

    async def _refresh_presence(self) -> None:
        """Every third of ``presence_ttl_s``: one pipeline setting every claimed id's TTL again
        (and its key, if Redis lost it), so the directory forgets a node within the TTL of its
        death and never while it lives.  The same round trip reads Redis's epoch: a Redis that
        lost its data (a flush) while this node stayed connected is found out here
        (``_Subscriber.check_epoch``).  Either loss is reported with ``on_reset``."""
        period_s = self.presence_ttl_s / 3
        ttl_ms = str(int(self.presence_ttl_s * 1000))
        epoch_key = self.prefix + "epoch"
        previous: bytes | None = None
        while True:
            await asyncio.sleep(period_s)
            claimed = sorted(self._claimed)
            subscriber = self._subscriber
            if self._redis is None or subscriber is None:
                continue
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.set(epoch_key, secrets.token_hex(8), nx=True)
                    pipe.get(epoch_key)
                    # This node's registry entry, as long as its presence entries (and set
                    # again if Redis lost it), until it withdraws.
                    pipe.eval(_NODES, 1, self._nodes_key, self._node_id, ttl_ms,
                              "0" if self._withdrawn else "1")
                    for i in range(0, len(claimed), _SCRIPT_KEYS):
                        keys = [self._presence_key(c) for c in claimed[i:i + _SCRIPT_KEYS]]
                        pipe.eval(_REFRESH, len(keys), *keys, self._node_id, ttl_ms)
                    _, epoch, _, *missing = await pipe.execute()
            except _FAILURES as exc:
                # Redis is unreachable: the pub/sub connection logs that; the next period
                # tries again (and sets the keys afresh if Redis lost them meanwhile).
                log.debug("push broker %s: presence refresh failed: %s", self._node_id,
                          _describe(exc))
                continue
            if epoch is None:
                continue  # flushed between the two commands: the next period reads it
            epoch = bytes(epoch)
            flushed_here = await subscriber.check_epoch(epoch)
            # A new data set (the epoch changed) is the subscriber's to report when its
            # connection did not outlive it (_Subscriber._resume): once, in one place.
            new_data = previous is not None and epoch != previous
            previous = epoch
            missing_count = sum(int(n) for n in missing)
            if missing_count and not new_data:
                # Presence keys expired while this node could not refresh them: other nodes may
                # have dropped its clients from the groups meanwhile (group_members prunes).
                log.warning("push broker %s: Redis had forgotten %d of this node's %d clients; "
                            "its directory entries are written again", self._node_id,
                            missing_count, len(claimed))
            if flushed_here or (missing_count and not new_data):
                self._reset()

    def _reset(self) -> None:
        """Tell the hub its directory entries are gone (``on_reset``)."""
        on_reset = self._on_reset
        if on_reset is None:
            return
        try:
            on_reset()
        except Exception:
            log.exception("push broker %s: on_reset failed", self._node_id)

    # ------------------------------------------------------------------ connections
    def _connection(self, role: str) -> AbstractConnection:
        """A connection of its own (not pooled) for the publisher or the subscriber: no retries
        inside redis-py (the broker's own loop reconnects, logs and backs off), bounded
        connect and handshake."""
        kwargs = dict(self._connection_kwargs)
        cls = kwargs.pop("connection_class", None) or aioredis.Connection
        # RESP2 on both (whatever the URL asks of the directory client): the reader parses
        # pub/sub messages as RESP2's arrays, which every Redis since 2.0 sends (redis-py's
        # RESP3 parser would route them to a push handler instead).
        kwargs["protocol"] = 2
        bound_s = min(self.publish_timeout_s, 3 * self.health_check_s)
        connection: AbstractConnection = cls(
            **kwargs, socket_timeout=bound_s, socket_connect_timeout=bound_s,
            retry=Retry(NoBackoff(), 0), client_name=f"cyserve-push:{self._node_id}:{role}")
        return connection


