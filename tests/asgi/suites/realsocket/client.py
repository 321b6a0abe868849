"""Starlette's ``TestClient`` over real sockets: the same API, a real server behind it.

``RealSocketTestClient`` subclasses Starlette's ``TestClient`` (so ``isinstance`` checks, the
``timeout`` warning, URL merging, default headers and the httpx API come from Starlette itself)
and replaces what ran the app in-process:

- HTTP goes through httpx's own socket transport to a server on 127.0.0.1 (``ServedApp``); the
  request keeps its URL and ``Host`` (``http://testserver/...``) and only the connection is made
  to the server's port.  An ``https://`` base URL is served over TLS (a trustme CA), so the app
  sees ``https`` because the connection is TLS, not because a header said so.
- ``websocket_connect()`` opens a real WebSocket (websockets' sync client) and returns a session
  with TestClient's methods, mapping frames to the ASGI messages TestClient's session returns.
- ``with client:`` serves the app with its lifespan on (startup before the block, shutdown
  after); outside a ``with`` block the lifespan is off, as with TestClient.
- ``raise_server_exceptions``: what the app raised is recorded by ``AppUnderTest`` and raised in
  the test once the exchange is over (after the server answered it as it would any error).

``root_path``: TestClient puts it in the scope and sends the full path; a server with a root
path expects a proxy in front that removed the prefix.  The client plays that proxy: it strips
the prefix from the path it sends and serves the app with that root path.
"""
from __future__ import annotations

import contextlib
import json
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Literal
from urllib.parse import urljoin

import starlette.testclient as _testclient
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from .server import AppUnderTest, ServedApp

__all__ = ["RealSocketTestClient", "RealSocketWebSocketSession", "close_all"]

# Whichever of httpx/httpx2 Starlette's TestClient is built on (it prefers httpx2).
httpx = _testclient.httpx

# After a response is read, how long the app may take to return (background tasks run after the
# response); an app still running then (a stream the client left) is not waited for.
_APP_SETTLE_S = 5.0
# Every socket wait of the client is bounded: a server that never answers fails the test.
_IO_TIMEOUT_S = 20.0

# Headers of a WebSocket handshake response the server writes itself (RFC 6455 §4.2.2 and the
# server's Date/Server): TestClient's ``extra_headers`` are only the ones the app added.
_HANDSHAKE_HEADERS = frozenset({"upgrade", "connection", "sec-websocket-accept", "sec-websocket-protocol",
                                "sec-websocket-extensions", "date", "server"})
# Request headers the WebSocket client writes itself (RFC 6455 §4.1): a test's values for these
# (TestClient sends the placeholder key "testserver==", which is not 16 bytes of base64 and
# which a real server must refuse, §4.2.1) are left to the client.
_CLIENT_HANDSHAKE_HEADERS = frozenset({"host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
                                       "sec-websocket-protocol", "sec-websocket-extensions", "content-length",
                                       "transfer-encoding"})

_live: set[RealSocketTestClient] = set()
_live_lock = threading.Lock()


def close_all() -> None:
    """Stop the server of every client still open (the plugin calls this after each test: a
    client made without ``with`` and never closed would otherwise leave its server running)."""
    with _live_lock:
        clients = list(_live)
        _live.clear()
    for client in clients:
        client.close()


class _TestCA:
    """One trustme CA per process, its server certificate for the names the suites use."""

    _instance: _TestCA | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost", "testserver")
        self.server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self.server)
        self.client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        ca.configure_trust(self.client)
        # uvicorn (the reference server) reads a certificate and key from files.
        self._dir = tempfile.TemporaryDirectory(prefix="suite-tls-")
        certfile, keyfile = f"{self._dir.name}/cert.pem", f"{self._dir.name}/key.pem"
        cert.private_key_and_cert_chain_pem.write_to_path(certfile)
        cert.private_key_pem.write_to_path(keyfile)
        self.files = (certfile, keyfile)

    @classmethod
    def get(cls) -> _TestCA:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance


def _secure(scheme: str) -> bool:
    return scheme in ("https", "wss")


class RealSocketTestClient(TestClient):
    """Starlette's TestClient, its app served by a real server over 127.0.0.1."""

    __test__ = False

    def __init__(self, app: Any, base_url: str = "http://testserver", raise_server_exceptions: bool = True,
                 root_path: str = "", backend: Literal["asyncio", "trio"] = "asyncio",
                 backend_options: dict[str, Any] | None = None, cookies: Any = None,
                 headers: dict[str, str] | None = None, follow_redirects: bool = True,
                 client: tuple[str, int] = ("testclient", 50000)) -> None:
        if backend != "asyncio":
            raise ValueError("the real-socket client serves apps on asyncio only")
        self.async_backend = _testclient._AsyncBackend(backend=backend, backend_options=backend_options or {})
        self.app = AppUnderTest(app)
        self.app_state: dict[str, Any] = {}
        self.raise_server_exceptions = raise_server_exceptions
        self.root_path = root_path
        self._servers: dict[bool, ServedApp] = {}  # by "served over TLS"
        self._lifespan = False
        self._servers_lock = threading.Lock()
        if headers is None:
            headers = {}
        headers.setdefault("user-agent", "testclient")
        httpx.Client.__init__(self, base_url=base_url, headers=headers, transport=_RealSocketTransport(self),
                              follow_redirects=follow_redirects, cookies=cookies)
        with _live_lock:
            _live.add(self)

    # -- servers ---------------------------------------------------------------------------

    def _server(self, secure: bool) -> ServedApp:
        """The server for plain or TLS connections, started on first use.  Under ``with`` the
        base URL's server runs the lifespan; another (an absolute URL of the other scheme) runs
        without one, since a lifespan belongs to one server."""
        with self._servers_lock:
            served = self._servers.get(secure)
            if served is None:
                served = self._start(secure, lifespan="off")
            return served

    def _start(self, secure: bool, lifespan: str) -> ServedApp:
        ca = _TestCA.get() if secure else None
        # A server's root path has no trailing slash (TestClient's may: "/sub_path/").
        root_path = self.root_path.rstrip("/")
        options: dict[str, Any] = {"root_path": root_path} if root_path else {}
        served = ServedApp(self.app, lifespan=lifespan, tls=ca.server if ca else None,
                           tls_files=ca.files if ca else None, options=options)
        served.start()
        self._servers[secure] = served
        return served

    def _stop_servers(self) -> None:
        with self._servers_lock:
            servers = list(self._servers.values())
            self._servers.clear()
        for served in servers:
            served.stop()

    def _client_tls(self) -> ssl.SSLContext:
        return _TestCA.get().client

    def _raise_app_error(self) -> None:
        """After an exchange: raise what the app raised during it, as TestClient does.

        A server closes a connection whose app raised, even after a complete response (cyserve
        and uvicorn both do: the app's state is unknown); a real client finds that out on its
        next request, which, not being retried (RFC 9112 §9.3.1 leaves that to the client),
        fails.  TestClient starts every request afresh, so the pooled connections are
        dropped here and the next request opens a new one."""
        self.app.wait_idle(_APP_SETTLE_S)
        error = self.app.take_error()
        if error is None:
            return
        self._transport.drop_connections()
        if self.raise_server_exceptions:
            raise error

    def _wire_path(self, raw_path: bytes) -> bytes:
        """The path a proxy in front of a server with ``root_path`` would send it."""
        prefix = self.root_path.rstrip("/").encode("ascii")
        if prefix and (raw_path == prefix or raw_path.startswith(prefix + b"/") or raw_path.startswith(prefix + b"?")):
            stripped = raw_path[len(prefix):]
            return stripped if stripped.startswith(b"/") else b"/" + stripped
        return raw_path

    # -- lifespan --------------------------------------------------------------------------

    def __enter__(self) -> RealSocketTestClient:
        secure = _secure(self.base_url.scheme)
        self._stop_servers()
        try:
            with self._servers_lock:
                self._start(secure, lifespan="on")
        except BaseException as exc:
            error = self.app.take_lifespan_error()
            if error is not None:
                raise error from exc
            raise
        self._lifespan = True
        return self

    def __exit__(self, *args: Any) -> None:
        self._lifespan = False
        self._transport.close()
        self._stop_servers()
        error = self.app.take_lifespan_error()
        if error is not None:
            raise error

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._stop_servers()
            with _live_lock:
                _live.discard(self)

    # -- WebSocket -------------------------------------------------------------------------

    def websocket_connect(self, url: str, subprotocols: Sequence[str] | None = None,
                          **kwargs: Any) -> RealSocketWebSocketSession:
        # httpx builds the handshake request as it would any other (the client's headers and
        # cookies, params=, auth=), so the app sees what TestClient's scope would hold.
        target = httpx.URL(urljoin("ws://testserver", url))
        http_target = target.copy_with(scheme="https" if _secure(target.scheme) else "http")
        request = self.build_request("GET", http_target, headers=kwargs.get("headers"),
                                     params=kwargs.get("params"), cookies=kwargs.get("cookies"))
        auth = self._build_request_auth(request, kwargs.get("auth", httpx.USE_CLIENT_DEFAULT))
        request = next(auth.sync_auth_flow(request))
        target = target.copy_with(raw_path=request.url.raw_path)
        merged = request.headers
        offered = list(subprotocols or [])
        if not offered and "sec-websocket-protocol" in merged:
            offered = [p.strip() for p in merged["sec-websocket-protocol"].split(",") if p.strip()]
        extra = [(k, v) for k, v in merged.multi_items() if k.lower() not in _CLIENT_HANDSHAKE_HEADERS]
        return RealSocketWebSocketSession(self, target, offered, extra)


class _CheckedStream(httpx.SyncByteStream):  # type: ignore[misc,name-defined]
    """The response body as read from the socket; once it is closed, what the app raised
    during the exchange is raised (``raise_server_exceptions``)."""

    def __init__(self, inner: Any, client: RealSocketTestClient) -> None:
        self._inner = inner
        self._client = client

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._inner
        except httpx.TransportError:
            # The server cut the response short (the app raised while streaming it):
            # TestClient raises the app's exception.
            self._client._raise_app_error()
            raise

    def close(self) -> None:
        self._inner.close()
        self._client._raise_app_error()


class _RealSocketTransport(httpx.BaseTransport):  # type: ignore[misc,name-defined]
    """Sends each request as it is (method, target, headers, body) over a real connection to
    the client's server: only where the connection goes changes."""

    def __init__(self, client: RealSocketTestClient) -> None:
        self._client = client
        self._plain = httpx.HTTPTransport(retries=0)
        self._tls: Any = None

    def handle_request(self, request: Any) -> Any:
        secure = _secure(request.url.scheme)
        served = self._client._server(secure)
        if secure and self._tls is None:
            self._tls = httpx.HTTPTransport(verify=self._client._client_tls(), retries=0)
        raw_path = self._client._wire_path(request.url.raw_path)
        # The request target goes byte for byte as the client built it (percent-escapes, an
        # empty query kept or not): only the authority changes.
        wire_url = httpx.URL(f"{'https' if secure else 'http'}://127.0.0.1:{served.port}").copy_with(raw_path=raw_path)
        # The headers go as they are, Host included: the app sees the request's own host.
        wire = httpx.Request(request.method, wire_url, headers=request.headers, stream=request.stream,
                             extensions={**request.extensions, "timeout": httpx.Timeout(_IO_TIMEOUT_S).as_dict()})
        transport = self._tls if secure else self._plain
        try:
            response = transport.handle_request(wire)
        except httpx.TransportError:
            # The server dropped the connection (an app that raised before answering, under a
            # server that closes rather than answers): TestClient raises the app's exception.
            self._client._raise_app_error()
            raise
        response.stream = _CheckedStream(response.stream, self._client)
        return response

    def drop_connections(self) -> None:
        self.close()
        self._plain = httpx.HTTPTransport(retries=0)
        self._tls = None

    def close(self) -> None:
        self._plain.close()
        if self._tls is not None:
            self._tls.close()


class RealSocketWebSocketSession:
    """TestClient's WebSocket session over a real WebSocket connection.

    Messages are TestClient's: ``receive()`` returns ``websocket.send`` (``text`` or ``bytes``)
    for a frame and ``websocket.close`` (``code``, ``reason``) once the server closed;
    ``send()`` takes ``websocket.receive`` and ``websocket.disconnect``.
    """

    def __init__(self, client: RealSocketTestClient, url: Any, subprotocols: list[str],
                 headers: list[tuple[str, str]]) -> None:
        self._client = client
        self._url = url
        self._subprotocols = subprotocols
        self._headers = headers
        self._conn: ClientConnection | None = None
        self.accepted_subprotocol: str | None = None
        self.extra_headers: list[tuple[bytes, bytes]] | None = None

    def __enter__(self) -> RealSocketWebSocketSession:
        secure = _secure(self._url.scheme)
        served = self._client._server(secure)
        raw_path = self._client._wire_path(self._url.raw_path)
        # The URI gives the Host header and the request target; the socket goes to the server.
        uri = f"{'wss' if secure else 'ws'}://{self._url.netloc.decode('ascii')}{raw_path.decode('ascii')}"
        sock = socket.create_connection(("127.0.0.1", served.port), timeout=_IO_TIMEOUT_S)
        try:
            self._conn = connect(
                uri, sock=sock, ssl=self._client._client_tls() if secure else None,
                server_hostname="127.0.0.1" if secure else None,
                subprotocols=self._subprotocols or None,  # type: ignore[arg-type]
                additional_headers=self._headers, user_agent_header=None, compression=None, proxy=None,
                open_timeout=_IO_TIMEOUT_S, close_timeout=_IO_TIMEOUT_S, ping_interval=None,
                max_size=None, max_queue=None, legacy=True)
        except InvalidStatus as exc:
            sock.close()
            self._client._raise_app_error()
            response = exc.response
            raise WebSocketDenialResponse(status_code=response.status_code,
                                          headers=list(response.headers.raw_items()),
                                          content=bytes(response.body or b"")) from None
        except (InvalidHandshake, OSError, TimeoutError):
            # The server closed or stalled instead of answering the handshake: an app that
            # raised before accepting, under a server that drops the connection for it.
            sock.close()
            self._client._raise_app_error()
            raise
        response = self._conn.response
        self.accepted_subprotocol = self._conn.subprotocol
        self.extra_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.raw_items()
                              if k.lower() not in _HANDSHAKE_HEADERS]
        return self

    def __exit__(self, *args: Any) -> None:
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(ConnectionClosed, OSError, TimeoutError):
                conn.close(1000)
        # TestClient raises what the app raised when the block ends (unless another
        # exception is already on its way out).
        if args[0] is None:
            self._client._raise_app_error()

    # -- sending ---------------------------------------------------------------------------

    def _connection(self) -> ClientConnection:
        if self._conn is None:
            raise RuntimeError("the WebSocket session is not open (use it in a with block)")
        return self._conn

    def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.receive":
            if message.get("text") is not None:
                self.send_text(message["text"])
            else:
                self.send_bytes(message.get("bytes") or b"")
        elif kind == "websocket.disconnect":
            self.close(message.get("code", 1000), message.get("reason"))
        else:
            raise ValueError(f"a client cannot send {kind!r} over a real connection")

    def send_text(self, data: str) -> None:
        self._send(data)

    def send_bytes(self, data: bytes) -> None:
        self._send(data)

    def _send(self, data: str | bytes) -> None:
        try:
            self._connection().send(data)
        except ConnectionClosed:
            # TestClient queues what the app will not read; a closed connection drops it the
            # same way (the app's close is what the next receive reports).
            pass

    def send_json(self, data: Any, mode: Literal["text", "binary"] = "text") -> None:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        if mode == "text":
            self.send_text(text)
        else:
            self.send_bytes(text.encode("utf-8"))

    def close(self, code: int = 1000, reason: str | None = None) -> None:
        with contextlib.suppress(ConnectionClosed, OSError, TimeoutError):
            self._connection().close(code, reason or "")

    # -- receiving -------------------------------------------------------------------------

    def receive(self) -> dict[str, Any]:
        conn = self._connection()
        try:
            data = conn.recv(timeout=_IO_TIMEOUT_S)
        except ConnectionClosed as exc:
            received = exc.rcvd
            if received is None or received.code == 1011:
                # An abnormal end (no close frame, or the server's "internal error"): the
                # app's exception, if it raised one, is what TestClient would raise.
                self._client._raise_app_error()
            if received is None:
                return {"type": "websocket.close", "code": 1006, "reason": ""}
            return {"type": "websocket.close", "code": received.code, "reason": received.reason}
        if isinstance(data, str):
            return {"type": "websocket.send", "text": data}
        return {"type": "websocket.send", "bytes": bytes(data)}

    def _receive_data(self) -> dict[str, Any]:
        message = self.receive()
        if message["type"] == "websocket.close":
            raise WebSocketDisconnect(code=message["code"], reason=message["reason"])
        return message

    def receive_text(self) -> str:
        return str(self._receive_data()["text"])

    def receive_bytes(self) -> bytes:
        return bytes(self._receive_data()["bytes"])

    def receive_json(self, mode: Literal["text", "binary"] = "text") -> Any:
        message = self._receive_data()
        text = message["text"] if mode == "text" else message["bytes"].decode("utf-8")
        return json.loads(text)
