"""The WebSocket client: the opening handshake (RFC 6455 §4.1) on a connection of its own, then
the core's ``WebSocketRole`` in client mode on the same stream.

    async with client.websocket("wss://example.org/chat", subprotocols=["chat.v1"]) as ws:
        await ws.send("hello")                     # str: text, bytes: binary
        async for message in ws:                   # ends on a normal close
            ...

The connection is not the pool's: it is opened for the WebSocket (TLS verified by default for
``wss://``, through the client's proxy as a ``CONNECT`` tunnel, §4.1 item 3) and closed with it.
The handshake is a GET sent by the HTTP client role with ``upgrade=True``; its ``101`` leaves the
bytes after the head in the stream's buffer, and ``websocket_role`` takes the stream over with
them as its first input.  ``http(s)://`` URLs (a ``base_url``, the test client's) are taken as
``ws(s)://``.

Every failure before the WebSocket is open is a ``cyserve.errors.ClientError``:
- the connection: ``ConnectError``, ``ProxyError``, ``ConnectTimeout`` and the other timeouts,
  exactly as for HTTP requests (``timeout`` bounds the handshake, not the WebSocket's life; only
  its ``write_s`` stays on the stream: a server that takes none of our bytes for that long is
  dropped, 1006, as the HTTP roles do);
- an answer other than ``101``: ``HTTPStatusError`` with the response (its body read, bounded by
  ``ClientLimits.max_body_bytes``); a ``3xx`` too: redirects are never followed (the handshake
  would go to a URL the caller did not choose, with its credentials);
- a ``101`` that breaks §4.1 (no ``Upgrade: websocket``, no ``Connection: upgrade``, a wrong
  ``Sec-WebSocket-Accept``, a subprotocol or an extension that was not offered, a
  permessage-deflate answer ``client_accept`` refuses): ``RemoteProtocolError``; the connection is
  dropped ("_Fail the WebSocket Connection_", §7.1.7: no close frame, nothing was opened).

Once open, the socket is a ``WebSocketConnection`` (``cyserve.websocket``), the same message API
as a handler's ``WebSocket``; it raises ``WebSocketDisconnect`` once closed.  The role masks every
frame with a fresh random key (§5.3) and refuses masked frames from the server (§5.1).  Leaving the ``async
with`` block closes with 1000 and waits for the server to close TCP (§7.1.1), at most
``limits.close_timeout_s``; a cancelled block drops the connection at once.
"""
from __future__ import annotations

import base64
import os
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Sequence
from urllib.parse import urlsplit, urlunsplit

from cyserve._core.ws.deflate import Deflater, Inflater, client_accept, client_offer
from cyserve._core.ws.role import websocket_role
from cyserve.client.connect import Proxy, open_connection
from cyserve.client.response import RequestInfo, Response
from cyserve.client.urls import Target, merge_url
from cyserve.client.util import (
    basic_auth, bound, find_header, merge_headers, remaining, seconds, target_of,
    total_deadline,
)
from cyserve.config import ClientTimeouts, WebSocketLimits
from cyserve.datastructures import Headers
from cyserve.errors import (
    ClientError, ConnectTimeout, HTTPStatusError, ProxyError, RemoteProtocolError, TotalTimeout,
    WebSocketDisconnect, again,
)
from cyserve.websocket import WebSocketConnection, accept_key

if TYPE_CHECKING:
    from cyserve._core.http.client import ClientRole
    from cyserve._core.http.head import Head
    from cyserve.client.client import Client

__all__ = ["ClientWebSocket", "WebSocketConnect"]

_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")   # RFC 9110 §5.6.2
# Fields the handshake writes itself (§4.1): a caller's fields by these names are refused.
_OWNED = {
    "upgrade": "the handshake sets it",
    "connection": "the handshake sets it",
    "sec-websocket-key": "the handshake sets it",
    "sec-websocket-version": "the handshake sets it",
    "sec-websocket-protocol": "pass subprotocols= instead",
    "sec-websocket-extensions": "pass compression= (and limits=) instead",
    "content-length": "a handshake has no body",
    "transfer-encoding": "a handshake has no body",
}


def _tokens(values: list[str]) -> list[str]:
    """The elements of comma-separated list fields (RFC 9110 §5.6.1), empty ones dropped."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _ws_target(url: str) -> tuple[str, Target]:
    """The ``ws(s)://`` URL as given (normalised) and the HTTP target of its handshake."""
    parts = urlsplit(url)
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        raise ValueError(f"a WebSocket URL is ws:// or wss://, got {url!r}")
    if parts.fragment or url.endswith("#"):
        # RFC 6455 §3: fragment identifiers are meaningless in WebSocket URIs and MUST NOT be used.
        raise ValueError(f"a WebSocket URL has no fragment, got {url!r}")
    target = target_of(urlunsplit((scheme, parts.netloc, parts.path, parts.query, "")))
    ws_url = ("wss" if scheme == "https" else "ws") + target.url[len(scheme):]
    return ws_url, target


def _subprotocols(subprotocols: Sequence[str] | None) -> list[str]:
    if subprotocols is None:
        return []
    if isinstance(subprotocols, str):
        raise TypeError("subprotocols is a list of names, not one str")
    names = list(subprotocols)
    for name in names:
        if type(name) is not str or not _TOKEN.match(name):
            # RFC 6455 §4.1 item 10: each is a token (RFC 9110 §5.6.2).
            raise ValueError(f"a subprotocol name is a token, got {name!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"subprotocols offered twice: {names}")   # §4.1 item 10: unique
    return names


class ClientWebSocket(WebSocketConnection):
    """An open client WebSocket: the ``WebSocketConnection`` message API (``send*``,
    ``receive*``, ``ping``, ``close``, ``close_code``/``close_reason``, async iteration), plus
    what its handshake settled: ``url``, ``subprotocol`` (the server's choice, or None),
    ``extensions`` (the ``Sec-WebSocket-Extensions`` answer, or None) and ``headers`` (the
    ``101``'s fields)."""

    __slots__ = ("url", "subprotocol", "extensions", "headers")

    def __init__(self, url: str, head: Head, subprotocol: str | None,
                 extensions: str | None) -> None:
        super().__init__()
        self.url = url
        self.subprotocol = subprotocol
        self.extensions = extensions
        self.headers = Headers(head)

    @property
    def compressed(self) -> bool:
        """permessage-deflate is on for this connection."""
        return self._role is not None and self._role.compressed

    def abort(self) -> None:
        """Drop the connection without a close handshake."""
        if self._role is not None:
            self._role.abort()

    def __repr__(self) -> str:
        return f"<ClientWebSocket {self.url} {'closed' if self.closed else 'open'}>"


class WebSocketConnect:
    """What ``Client.websocket(...)`` returns: ``async with`` it to open the WebSocket (the
    handshake runs in ``__aenter__``) and close it at the end of the block."""

    __slots__ = ("_client", "_url", "_subprotocols", "_headers", "_limits", "_timeouts", "_ws")

    def __init__(self, client: Client, url: str, subprotocols: Sequence[str] | None,
                 headers: list[tuple[str, str]], compression: bool,
                 limits: WebSocketLimits | None, timeouts: ClientTimeouts) -> None:
        for name, _ in headers:
            why = _OWNED.get(name.lower())
            if why is not None:
                raise ValueError(f"client.websocket() headers cannot set {name}: {why}")
        self._client = client
        self._url = url
        self._subprotocols = _subprotocols(subprotocols)
        self._headers = headers
        limits = limits or WebSocketLimits()
        if limits.compression and not compression:
            limits = replace(limits, compression=False)
        self._limits = limits
        self._timeouts = timeouts
        self._ws: ClientWebSocket | None = None

    async def __aenter__(self) -> ClientWebSocket:
        if self._ws is not None:
            raise RuntimeError("this client.websocket(...) was already entered")
        self._ws = await _open(self._client, self._url, self._subprotocols, self._headers,
                               self._limits, self._timeouts)
        return self._ws

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        ws = self._ws
        if ws is None or ws._role is None:
            return
        if exc_type is not None and not issubclass(exc_type, Exception):
            ws.abort()   # cancelled (or interrupted): no waiting for a close handshake
            return
        await ws._role.close(1000, "")


# ---------------------------------------------------------------------- the handshake
async def _open(client: Client, url: str, subprotocols: list[str],
                headers: list[tuple[str, str]], limits: WebSocketLimits,
                timeouts: ClientTimeouts) -> ClientWebSocket:
    if client._closed:
        raise ClientError("the client is closed")
    full = merge_url(client.base_url, url)
    ws_url, target = _ws_target(full)
    deadline = total_deadline(timeouts)
    proxy = client._proxy_for(target)
    conn = await _connect(client, target, proxy, timeouts, deadline)
    try:
        # RFC 6455 §4.1 item 7: 16 random bytes, base64; a fresh nonce per handshake.
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        offer = client_offer(limits) if limits.compression else None
        fields = _fields(client, target, headers, key, subprotocols, offer)
        waiter = conn.start("GET", target.target, fields, -1, False, None, False, False,
                            seconds(timeouts.read_s), seconds(timeouts.write_s),
                            remaining(deadline) or 0.0, True)
        result = await waiter
        if result is None:
            raise _failure(conn)
        head, body = result
        if client.cookies is not None:
            client.cookies.extract(target.url, head.get_all("set-cookie"))
        if head.status != 101:
            await _refused(client, conn, ws_url, fields, head, body)
        subprotocol, answer, codecs = _check_switch(head, key, subprotocols, limits)
    except BaseException:
        conn.abort()
        raise
    ws = ClientWebSocket(ws_url, head, subprotocol, answer)
    try:
        ws._role = websocket_role(conn.stream, limits, True, codecs[0], codecs[1])
    except WebSocketDisconnect:
        conn.abort()
        raise RemoteProtocolError("the server closed the connection right after its 101") from None
    return ws


def _failure(conn: ClientRole) -> BaseException:
    """What failed the exchange, to raise (a copy: see ``cyserve.errors.again``)."""
    error = conn.error
    return RemoteProtocolError("the connection failed") if error is None else again(error)


async def _connect(client: Client, target: Target, proxy: Proxy | None, timeouts: ClientTimeouts,
                   deadline: float | None) -> ClientRole:
    """A connection of its own to ``target``'s origin: direct, or a tunnel through ``proxy``
    (RFC 6455 §4.1 item 3: a WebSocket asks its proxy to ``CONNECT``, ws:// as well as wss://)."""
    state = client._bind()
    origin = target.origin
    ssl_ctx = client._ssl_context() if origin.scheme == "https" else None
    connect_s, total_binds = bound(timeouts.connect_s, deadline)
    try:
        # open_connection tunnels (CONNECT, then TLS) for https; plain ws:// through a proxy
        # gets its CONNECT below, on the connection to the proxy it returns.
        conn: ClientRole = await open_connection(state, None, origin, proxy, ssl_ctx, connect_s)
        if proxy is not None and ssl_ctx is None:
            await _tunnel(conn, target, proxy, timeouts, deadline)
    except ConnectTimeout:
        if total_binds:
            raise TotalTimeout("the WebSocket handshake took longer than its total timeout") from None
        raise
    return conn


async def _tunnel(conn: ClientRole, target: Target, proxy: Proxy, timeouts: ClientTimeouts,
                  deadline: float | None) -> None:
    origin = target.origin
    authority = f"[{origin.host}]:{origin.port}" if ":" in origin.host else f"{origin.host}:{origin.port}"
    fields = [("Host", authority)]
    if proxy.authorization:
        fields.append(("Proxy-Authorization", proxy.authorization))
    try:
        waiter = conn.start("CONNECT", authority, fields, -1, False, None, False, True,
                            seconds(timeouts.read_s), seconds(timeouts.write_s),
                            remaining(deadline) or 0.0)
        result = await waiter
        if result is None:
            raise ProxyError(f"the proxy failed the CONNECT tunnel: {conn.error}")
        head, _ = result
        if not 200 <= head.status < 300:
            raise ProxyError(f"the proxy refused CONNECT {authority}: {head.status} {head.reason}")
    except BaseException:
        conn.abort()
        raise


def _fields(client: Client, target: Target, headers: list[tuple[str, str]], key: str,
            subprotocols: list[str], offer: str | None) -> list[tuple[str, str]]:
    """The handshake's fields (§4.1): Host, the upgrade, the key and version, the offers, then
    the client's own fields, the caller's, the jar's Cookie and Basic auth."""
    fields = [("Host", target.host_header), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
              ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "13")]
    if subprotocols:
        fields.append(("Sec-WebSocket-Protocol", ", ".join(subprotocols)))
    if offer:
        fields.append(("Sec-WebSocket-Extensions", offer))
    # The client's defaults (User-Agent...) and the caller's fields; a caller's Host wins.
    extra = merge_headers(client.headers, headers)
    host = find_header(extra, "host")
    if host is not None:
        fields[0] = ("Host", host)
    fields.extend(kv for kv in extra if kv[0].lower() != "host")
    if client.cookies is not None and find_header(fields, "cookie") is None:
        cookie = client.cookies.header_for(target.url)
        if cookie:
            fields.append(("Cookie", cookie))
    auth = client.auth or target.userinfo
    if auth is not None and find_header(fields, "authorization") is None:
        fields.append(("Authorization", basic_auth(*auth)))
    return fields


async def _refused(client: Client, conn: ClientRole, url: str, fields: list[tuple[str, str]],
                   head: Head, body: Any) -> None:
    """Raise ``HTTPStatusError`` for an answer other than 101, its body read first (within the
    client's limits and the handshake's deadlines) so the caller can see why."""
    resp = Response(head, body, conn, RequestInfo("GET", url, fields), client.limits, client.decode)
    try:
        await resp.read()
    except ClientError:
        # The refusal is the error to report; a body that broke off or passed the limit only
        # leaves it without its body.
        pass
    finally:
        await resp.aclose()
        conn.close()   # a dedicated connection: never pooled, never reused
    status = head.status
    if 300 <= status < 400:
        location = head.get("location")
        message = (f"the WebSocket handshake was redirected ({status} {head.reason}"
                   f"{' to ' + location if location else ''}); redirects are not followed")
    else:
        message = f"the server refused the WebSocket handshake: {status} {head.reason}"
    raise HTTPStatusError(message, resp)


def _check_switch(head: Head, key: str, subprotocols: list[str], limits: WebSocketLimits
                  ) -> tuple[str | None, str | None, tuple[Inflater | None, Deflater | None]]:
    """Validate a 101 against what was sent (RFC 6455 §4.1, the client's checks of the
    server's handshake, items 1-6): the subprotocol chosen, the extensions answer and the
    permessage-deflate codecs.  ``RemoteProtocolError`` for anything else."""
    upgrade = [t.lower() for t in _tokens(head.get_all("upgrade"))]
    if upgrade != ["websocket"]:
        raise RemoteProtocolError("the 101 does not say 'Upgrade: websocket' (RFC 6455 §4.1), "
                                  f"got {head.get('upgrade')!r}")
    if "upgrade" not in (t.lower() for t in _tokens(head.get_all("connection"))):
        raise RemoteProtocolError("the 101 does not say 'Connection: Upgrade' (RFC 6455 §4.1), "
                                  f"got {head.get('connection')!r}")
    accepts = head.get_all("sec-websocket-accept")
    if len(accepts) != 1 or accepts[0].strip() != accept_key(key):
        raise RemoteProtocolError("the 101 has a wrong Sec-WebSocket-Accept (RFC 6455 §4.1: "
                                  f"expected {accept_key(key)!r}, got {', '.join(accepts)!r})")
    chosen = _tokens(head.get_all("sec-websocket-protocol"))
    subprotocol: str | None = None
    if chosen:
        if len(chosen) != 1 or chosen[0] not in subprotocols:
            raise RemoteProtocolError(f"the server chose subprotocol {', '.join(chosen)!r}, which "
                                      f"was not offered ({subprotocols}; RFC 6455 §4.1)")
        subprotocol = chosen[0]
    answer = ", ".join(head.get_all("sec-websocket-extensions")).strip() or None
    if answer is None:
        return subprotocol, None, (None, None)
    if not limits.compression:
        raise RemoteProtocolError(f"the server answered extensions {answer!r} although none were "
                                  "offered (RFC 6455 §4.1)")
    try:
        inflater, deflater = client_accept(answer, limits)
    except ValueError as exc:
        # RFC 7692 §7 (and §5.1): an answer the offer does not allow fails the connection.
        raise RemoteProtocolError(f"the server's Sec-WebSocket-Extensions {answer!r} is not an "
                                  f"acceptable answer to our offer: {exc}") from None
    return subprotocol, answer, (inflater, deflater)
