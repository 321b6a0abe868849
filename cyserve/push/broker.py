"""How hubs on several processes and hosts reach each other: the ``Broker`` protocol, and
``LocalBroker``, the in-process default that needs nothing.

A broker carries opaque bytes between the hubs of one deployment and keeps three small
directories; what the bytes mean (publishes, routed sends, joins, session handovers) is the
hub's.  Channel names are the hub's (``g:<group>``, ``all``, ``n:<node id>``); a broker may put
its own prefix in front of them on the wire.

Delivery contract (what the hub relies on):
- ``on_message(channel, data)`` is called on the hub's loop, for each message published to a
  channel this node is subscribed to (its own publishes included), **in the order they were
  published** per publishing node, each exactly once;
- a broker that finds it cannot deliver some messages of a channel (Redis trimmed its recovery
  history past them while this node was cut off) calls ``on_lost(channel, count)`` in their place
  (``count`` may be 0 when unknown), never nothing;
- ``publish`` returns once the message is accepted for delivery; when it cannot be (the backend
  is unreachable past the broker's bounded wait or buffer) it raises
  ``cyserve.errors.BrokerUnavailable``: never a silent drop;
- a broker that finds its directories lost (a Redis restarted without persistence, flushed, or
  that forgot this node's entries while it was cut off) calls ``on_reset()``: the hub writes
  again what it holds (presence, group members, resume tokens).  Messages are not its concern
  (``on_lost`` is).

The node id is drawn by ``start`` (a broker built before a fork gets one per process, and a
restarted node is a new node: what the old one held is gone with it); it is ``""`` before.
"""
from __future__ import annotations

import logging
import secrets
import time
from typing import Callable, Protocol

from cyserve.errors import BrokerUnavailable

__all__ = ["Broker", "LocalBroker", "LocalBus"]


class Broker(Protocol):
    @property
    def node_id(self) -> str:
        """This node's id (unique per process and host; drawn by each ``start``, ``""``
        before the first)."""

    async def start(self, on_message: Callable[[str, bytes], None],
                    on_lost: Callable[[str, int], None],
                    on_reset: Callable[[], None] | None = None) -> None:
        """Draw the node id, connect and subscribe to this node's own channel ``n:<node_id>``.
        ``on_reset``: called when the directories were lost (see the module docstring)."""

    async def close(self) -> None:
        """Unsubscribe, drop this node's presence entries, disconnect.  Idempotent."""

    async def withdraw(self) -> None:
        """This node is stopping: from now on it takes no session over from another node, and
        the other nodes' ``takers()`` stop counting it (it still hands its own sessions over
        until ``close``).  Idempotent."""

    async def takers(self) -> int:
        """How many other nodes are up and not withdrawn: those on which a client of this node
        could resume its session.  A stopping hub waits for its clients to move only while
        this is above zero."""

    async def publish(self, channel: str, data: bytes) -> None: ...

    async def subscribe(self, channel: str) -> None:
        """Receive ``channel`` from now on (idempotent); the hub subscribes to a group's channel
        while the group has members on this node, never per client."""

    async def unsubscribe(self, channel: str) -> None: ...

    async def claim(self, client_id: str) -> None:
        """This node holds ``client_id``'s session (connected or awaiting a resume) until
        ``release``; kept alive while the node lives, forgotten a bounded time after it dies."""

    async def release(self, client_id: str) -> None: ...

    async def locate(self, client_id: str) -> str | None:
        """The node id holding ``client_id``, or None."""

    async def group_add(self, group: str, client_id: str) -> None: ...

    async def group_remove(self, group: str, client_id: str) -> None: ...

    async def group_members(self, group: str) -> set[str]:
        """The group's members on every node (those whose node still holds them)."""

    async def put_token(self, token_hash: str, client_id: str, ttl_s: float) -> None:
        """Remember which session a resume token (its SHA-256, hex) opens, for ``ttl_s``."""

    async def take_token(self, token_hash: str) -> str | None:
        """The session id ``token_hash`` opens, forgetting it (tokens are single use); None when
        unknown or expired."""


_log = logging.getLogger("cyserve.push")


class LocalBus:
    """What the ``LocalBroker``s of one process share: their channels and the three directories.

    Every ``LocalBroker`` made without a bus has one of its own (a deployment of one node);
    several made with the same bus behave as the nodes of one deployment (each with its own
    node id and channel ``n:<node id>``), which is how cross-node routing and session handover
    are exercised in one process without a network.
    """

    __slots__ = ("nodes", "subscribers", "presence", "groups", "tokens")

    def __init__(self) -> None:
        #: node id -> the started brokers on this bus.
        self.nodes: dict[str, LocalBroker] = {}
        #: channel -> the brokers subscribed to it, in subscription order.
        self.subscribers: dict[str, list[LocalBroker]] = {}
        #: client id -> the node id holding its session.
        self.presence: dict[str, str] = {}
        #: group -> client ids (filtered by presence when read).
        self.groups: dict[str, set[str]] = {}
        #: token hash -> (client id, monotonic expiry).
        self.tokens: dict[str, tuple[str, float]] = {}


class LocalBroker:
    """The in-process ``Broker``: nothing to set up, nothing leaves the process.

    ``publish`` delivers synchronously: each subscribed node's ``on_message`` runs before
    ``publish`` returns, in subscription order, so the delivery contract (every message once, in
    publish order) holds by construction and ``on_lost`` is never called.  All the nodes of a
    bus must run on one event loop (the hubs' handlers are not thread-safe).
    """

    __slots__ = ("_bus", "_node_id", "_on_message", "_channels", "_started", "_withdrawn")

    def __init__(self, bus: LocalBus | None = None) -> None:
        self._bus = bus if bus is not None else LocalBus()
        # Drawn by each start, as a Redis node's is: a restarted node is a new node, and what
        # the old one held is gone with it.
        self._node_id = ""
        self._on_message: Callable[[str, bytes], None] | None = None
        self._channels: set[str] = set()
        self._started = False
        self._withdrawn = False

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def bus(self) -> LocalBus:
        return self._bus

    async def withdraw(self) -> None:
        self._withdrawn = True

    async def takers(self) -> int:
        return sum(1 for node in self._bus.nodes.values()
                   if node is not self and not node._withdrawn)

    async def start(self, on_message: Callable[[str, bytes], None],
                    on_lost: Callable[[str, int], None],
                    on_reset: Callable[[], None] | None = None) -> None:
        # on_lost and on_reset are never called: nothing between two local nodes can lose a
        # message, and the bus's directories live as long as the process.
        if self._started:
            raise RuntimeError("LocalBroker.start() was called twice without close()")
        self._node_id = secrets.token_hex(8)
        self._on_message = on_message
        self._started = True
        self._withdrawn = False
        self._bus.nodes[self._node_id] = self
        await self.subscribe("n:" + self._node_id)

    async def close(self) -> None:
        if not self._started:
            return
        self._started = False
        bus = self._bus
        bus.nodes.pop(self._node_id, None)
        for channel in self._channels:
            subscribers = bus.subscribers.get(channel)
            if subscribers is not None:
                subscribers.remove(self)
                if not subscribers:
                    del bus.subscribers[channel]
        self._channels.clear()
        mine = {client_id for client_id, node in bus.presence.items() if node == self._node_id}
        for client_id in mine:
            del bus.presence[client_id]
        for group, members in list(bus.groups.items()):
            members -= mine
            if not members:
                del bus.groups[group]
        self._on_message = None

    async def publish(self, channel: str, data: bytes) -> None:
        if not self._started:
            raise BrokerUnavailable("the local broker is closed")
        subscribers = self._bus.subscribers.get(channel)
        if not subscribers:
            return
        # A copy: a handler may subscribe or unsubscribe while the message goes round.
        for broker in tuple(subscribers):
            deliver = broker._on_message
            if deliver is None:
                continue
            try:
                deliver(channel, data)
            except Exception:
                # One node's failure must not keep the message from the others (nor fail the
                # publisher, whose message was accepted): it is that hub's bug, logged there.
                _log.exception("push hub failed to handle a message of channel %s", channel)

    async def subscribe(self, channel: str) -> None:
        if channel in self._channels:
            return
        self._channels.add(channel)
        self._bus.subscribers.setdefault(channel, []).append(self)

    async def unsubscribe(self, channel: str) -> None:
        if channel not in self._channels:
            return
        self._channels.discard(channel)
        subscribers = self._bus.subscribers.get(channel)
        if subscribers is not None:
            subscribers.remove(self)
            if not subscribers:
                del self._bus.subscribers[channel]

    async def claim(self, client_id: str) -> None:
        self._bus.presence[client_id] = self._node_id

    async def release(self, client_id: str) -> None:
        # Only this node's own claim: a session handed over meanwhile belongs to its new node.
        if self._bus.presence.get(client_id) == self._node_id:
            del self._bus.presence[client_id]

    async def locate(self, client_id: str) -> str | None:
        return self._bus.presence.get(client_id)

    async def group_add(self, group: str, client_id: str) -> None:
        self._bus.groups.setdefault(group, set()).add(client_id)

    async def group_remove(self, group: str, client_id: str) -> None:
        members = self._bus.groups.get(group)
        if members is not None:
            members.discard(client_id)
            if not members:
                del self._bus.groups[group]

    async def group_members(self, group: str) -> set[str]:
        presence = self._bus.presence
        return {client_id for client_id in self._bus.groups.get(group, ()) if client_id in presence}

    async def put_token(self, token_hash: str, client_id: str, ttl_s: float) -> None:
        self._bus.tokens[token_hash] = (client_id, time.monotonic() + ttl_s)

    async def take_token(self, token_hash: str) -> str | None:
        entry = self._bus.tokens.pop(token_hash, None)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def __repr__(self) -> str:
        return f"<LocalBroker node={self._node_id} channels={len(self._channels)}>"
