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
  ``cyserve.errors.BrokerUnavailable``: never a silent drop.
"""
from __future__ import annotations

from typing import Callable, Protocol

__all__ = ["Broker", "LocalBroker"]


class Broker(Protocol):
    @property
    def node_id(self) -> str:
        """This node's id (unique per process and host; random per start)."""

    async def start(self, on_message: Callable[[str, bytes], None],
                    on_lost: Callable[[str, int], None]) -> None:
        """Connect and subscribe to this node's own channel ``n:<node_id>``."""

    async def close(self) -> None:
        """Unsubscribe, drop this node's presence entries, disconnect.  Idempotent."""

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
