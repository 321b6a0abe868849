"""ASGI scopes from the core's parsed heads: what is per app is made once (``ASGIEntry``), what
is per request is made from the head in C (``ASGIEntry.http_scope`` in ``cyserve._core.http.asgi``,
which runs for every request); the WebSocket scope is the HTTP one, amended here.

The HTTP and WebSocket scopes follow the ASGI 3 "HTTP & WebSocket" spec, version 2.4:

- ``path`` is the full path, percent-decoded as UTF-8, and starts with ``root_path`` (the prefix
  a proxy stripped, ``--root-path``, or an ``App.mount`` prefix): an app strips ``root_path`` to
  route, as Starlette does and as uvicorn's ``--root-path`` prepends it.  ``raw_path`` is the same
  path as sent, bytes.
- ``headers`` are the client's fields as bytes pairs, names lower-cased, built in C from the
  head's offsets.
- ``scheme``: what a trusted proxy reported (``ProxyHeaders`` semantics, set on ``conn.forwarded``),
  else ``https``/``wss`` over TLS, else ``http``/``ws``; ``client`` likewise.
- ``state``: a shallow copy, per request, of what the lifespan's startup put in its ``state``.
- ``extensions``: ``http.response.pathsend`` always, ``http.response.trailers`` only when the
  client sent ``TE: trailers`` (RFC 9110 §10.1.4: otherwise it may not read a trailer section),
  ``websocket.http.response`` for WebSockets.
"""
from __future__ import annotations

from typing import Any

from cyserve._core.http.asgi import ASGI_VERSION, ASGIEntry, trailers_offered

__all__ = ["ASGI_VERSION", "LIFESPAN_VERSION", "trailers_offered", "websocket_scope"]

#: The ``asgi`` entry of the lifespan scope.
LIFESPAN_VERSION: dict[str, str] = {"version": "3.0", "spec_version": "2.0"}



def websocket_scope(entry: ASGIEntry, conn: Any, head: Any, subprotocols: list[str]) -> dict[str, Any]:
    """The ``websocket`` scope of the upgrade request ``head`` on ``conn``: the HTTP scope's
    fields without ``method``, ``ws``/``wss`` for the scheme, the ``subprotocols`` the client
    offered, and the ``websocket.http.response`` extension."""
    scope = entry.http_scope(conn, head)
    del scope["method"]
    scope["type"] = "websocket"
    scope["scheme"] = "wss" if scope["scheme"] == "https" else "ws"
    scope["subprotocols"] = subprotocols
    scope["extensions"] = {"websocket.http.response": {}}  # the scope's own: apps may change it
    return scope
