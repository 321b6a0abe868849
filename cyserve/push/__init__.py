"""TCP long-connection push: a hub with client ids, groups, push-to-one and broadcast, over TCP
and WebSocket, across workers and hosts through a broker (docs/push-protocol.md)."""
from __future__ import annotations

__all__: list[str] = []
