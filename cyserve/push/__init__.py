"""TCP long-connection push: a hub with client ids, groups, push-to-one and broadcast, over TCP
and WebSocket, across workers and hosts through a broker (docs/push-protocol.md).

``Hub`` serves clients (``App.push(hub, port=..., websocket=...)``); ``LocalBroker`` (the
default) keeps it in one process, ``RedisBroker`` (the ``cyserve[redis]`` extra) spreads it over
worker processes and hosts; ``connect()`` is the client.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cyserve.config import PushLimits
from cyserve.errors import (BrokerUnavailable, PushCallError, PushClosed, PushDenied, PushError,
                            PushRefused)
from cyserve.push.broker import Broker, LocalBroker, LocalBus
from cyserve.push.client import Gap, Push, PushClient, SessionReset, connect
from cyserve.push.codecs import BYTES, CODECS, JSON, XML, Codec
from cyserve.push.connection import Connection
from cyserve.push.hub import PUSH_SUBPROTOCOL, Hub

if TYPE_CHECKING:
    from cyserve.push.redis import RedisBroker

__all__ = ["Hub", "Connection", "PUSH_SUBPROTOCOL", "PushLimits", "Broker", "LocalBroker", "LocalBus", "RedisBroker", "connect",
           "PushClient", "Push", "Gap", "SessionReset", "Codec", "JSON", "BYTES", "XML", "CODECS",
           "PushError", "PushDenied", "PushClosed", "PushRefused", "PushCallError",
           "BrokerUnavailable"]


def __getattr__(name: str) -> Any:
    # RedisBroker needs redis-py (the ``redis`` extra): imported when asked for, so an app
    # that keeps to one process does not need it installed.
    if name == "RedisBroker":
        try:
            from cyserve.push.redis import RedisBroker
        except ImportError as exc:
            raise ImportError("cyserve.push.RedisBroker needs redis-py: "
                              "pip install 'cyserve[redis]'") from exc
        return RedisBroker
    raise AttributeError(f"module 'cyserve.push' has no attribute {name!r}")
