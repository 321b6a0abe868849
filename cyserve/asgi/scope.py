"""ASGI scopes from the core's parsed heads: what is per app made once, what is per request made
from the head in C (``cyserve._core.http.asgi``).

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
from urllib.parse import unquote

from cyserve._core.http.asgi import offers_trailers, scope_headers, target_bytes

__all__ = ["ASGI_VERSION", "LIFESPAN_VERSION", "Scopes", "trailers_offered"]

#: The ``asgi`` entry of every HTTP and WebSocket scope (one shared dict: apps read it).
ASGI_VERSION: dict[str, str] = {"version": "3.0", "spec_version": "2.4"}
#: The ``asgi`` entry of the lifespan scope.
LIFESPAN_VERSION: dict[str, str] = {"version": "3.0", "spec_version": "2.0"}

_HTTP_EXTENSIONS: dict[str, Any] = {"http.response.pathsend": {}}
_TRAILER_EXTENSIONS: dict[str, Any] = {"http.response.pathsend": {}, "http.response.trailers": {}}
_WEBSOCKET_EXTENSIONS: dict[str, Any] = {"websocket.http.response": {}}


def trailers_offered(scope: dict[str, Any]) -> bool:
    """The scope was made for a client that reads trailers (its extensions say so)."""
    return scope["extensions"] is _TRAILER_EXTENSIONS


def _address(name: Any) -> tuple[str, int] | tuple[str, None] | None:
    """A socket address as ASGI writes it: ``(host, port)``; a Unix socket's path with no port."""
    if type(name) is tuple:
        return name if len(name) == 2 else (name[0], name[1])
    if isinstance(name, (str, bytes)) and name:
        return (name if isinstance(name, str) else name.decode("utf-8", "replace"), None)
    return None


class Scopes:
    """The scope maker of one served ASGI app: ``root_path`` and the lifespan ``state`` it
    copies into every scope.  ``in_path``: the request paths already start with ``root_path``
    (an ``App.mount`` prefix); otherwise a proxy stripped it and it is prepended."""

    __slots__ = ("root_path", "raw_root", "state")

    def __init__(self, root_path: str = "", state: dict[str, Any] | None = None, *,
                 in_path: bool = False) -> None:
        self.root_path = root_path
        self.raw_root = b"" if in_path else root_path.encode("utf-8")
        #: The lifespan's ``state``: each scope gets a shallow copy (ASGI 3 lifespan state).
        self.state: dict[str, Any] = {} if state is None else state

    def http(self, conn: Any, head: Any) -> dict[str, Any]:
        """The ``http`` scope of the request ``head`` on ``conn``."""
        stream = conn.stream
        raw_path, query = target_bytes(head)
        path = head.path
        if "%" in path:
            path = unquote(path)
        forwarded = conn.forwarded
        client = None
        scheme = None
        if forwarded is not None:
            client, scheme = forwarded[0], forwarded[1]
        if scheme is None:
            transport = stream.transport
            scheme = ("https" if transport is not None
                      and transport.get_extra_info("sslcontext") is not None else "http")
        return {
            "type": "http",
            "asgi": ASGI_VERSION,
            "http_version": "1.1" if head.version == 11 else "1.0",
            "method": head.method,
            "scheme": scheme,
            "path": self.root_path + path if self.raw_root else path,
            "raw_path": self.raw_root + raw_path if self.raw_root else raw_path,
            "query_string": query,
            "root_path": self.root_path,
            "headers": scope_headers(head),
            "client": client if client is not None else _address(stream.peername),
            "server": _address(stream.sockname),
            "state": self.state.copy(),
            "extensions": _TRAILER_EXTENSIONS if offers_trailers(head) else _HTTP_EXTENSIONS,
        }

    def websocket(self, conn: Any, head: Any, subprotocols: list[str]) -> dict[str, Any]:
        """The ``websocket`` scope of the upgrade request ``head`` on ``conn``."""
        scope = self.http(conn, head)
        del scope["method"]
        scope["type"] = "websocket"
        scope["scheme"] = "wss" if scope["scheme"] == "https" else "ws"
        scope["subprotocols"] = subprotocols
        scope["extensions"] = _WEBSOCKET_EXTENSIONS
        return scope
