"""TestClient: exercise a cyserve App through a real socket with the client's API.

    client = TestClient(app)                       # plain synchronous tests
    resp = client.get("/")                         # the first request starts it (lifespan too)
    assert resp.status_code == 200 and resp.json() == {"hello": "world"}

    with TestClient(app) as client:                # started now, closed when the block ends
        with client.stream("GET", "/events") as resp:
            for event in resp.iter_events():       # text/event-stream, parsed
                ...
        with client.websocket("/ws") as ws:        # an @app.websocket route
            ws.send_text("hi")
            assert ws.receive_text() == "hi"

    async with TestClient(app) as client:          # inside a running loop (pytest, asyncio)
        resp = await client.get("/")
        assert resp.status == 200 and await resp.text() == "hello"
        async with client.websocket("/ws") as ws:
            await ws.send("hi")

The app is served by ``cyserve.server.serve`` on 127.0.0.1 (a free port), so what a test sees is
what production sees: the core's parser, framing, keep-alive and the app's lifespan (run by
``serve()``/``Server.shutdown()``).  The synchronous form runs the loop (uvloop when installed) in
a background thread; its responses are read in full, so ``text()``/``json()`` are plain calls.
Nothing here needs httpx.

The synchronous form starts on first use (a request, ``stream()``, ``websocket()``, ``base_url``,
``server`` or ``client``) and stops at ``close()``, at the end of a ``with`` block, when the TestClient is
garbage collected, or at interpreter exit, whichever comes first; a TestClient never used starts
nothing.  Stopping runs the lifespan's exit, closes the port and ends the thread.
"""
from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any, Iterator, Sequence

from cyserve.client.sse import ServerSentEvent
from cyserve.client import Client, Response
from cyserve.client.websocket import ClientWebSocket

__all__ = ["TestClient", "SyncResponse", "SyncWebSocket"]


class _Served:
    """One run of the app: its ``Server``, the ``Client`` bound to it and, in the synchronous form,
    the loop thread both run on.  It holds no reference to its TestClient, so a TestClient dropped
    without ``close()`` can be finalized, and its ``weakref.finalize`` stops this."""

    __slots__ = ("server", "client", "loop", "thread")

    def __init__(self) -> None:
        self.server: Any = None
        self.client: Client | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None

    async def start(self, app: Any, client_options: dict[str, Any]) -> None:
        from cyserve.server import serve
        self.server = await serve(app, "127.0.0.1", 0)
        self.client = Client(base_url=f"http://127.0.0.1:{self.server.port}", **client_options)

    async def stop(self, shutdown_timeout_s: float) -> None:
        try:
            if self.client is not None:
                await self.client.aclose()
        finally:
            if self.server is not None:
                await self.server.shutdown(timeout_s=shutdown_timeout_s)

    # ------------------------------------------------------------------ the synchronous form
    def start_in_thread(self, app: Any, client_options: dict[str, Any],
                        shutdown_timeout_s: float) -> None:
        from cyserve.server import new_event_loop
        loop = new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self.loop = loop
        self.thread = threading.Thread(target=run, name="cyserve-testclient", daemon=True)
        self.thread.start()
        ready.wait()
        try:
            self.call(self.start(app, client_options))
        except BaseException:
            self.close(shutdown_timeout_s)
            raise

    def call(self, coro: Any) -> Any:
        loop = self.loop
        if loop is None:
            coro.close()
            raise RuntimeError("the TestClient was closed")
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    def close(self, shutdown_timeout_s: float) -> None:
        """Stop the client and the server (lifespan exit), then the loop and its thread."""
        thread = self.thread
        if thread is None:
            return
        if threading.current_thread() is thread:
            # The GC ran the finalizer on the loop's own thread, which cannot wait for itself.
            threading.Thread(target=self.close, args=(shutdown_timeout_s,),
                             name="cyserve-testclient-close").start()
            return
        try:
            self.call(self.stop(shutdown_timeout_s))
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        loop, thread = self.loop, self.thread
        assert loop is not None and thread is not None

        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await loop.shutdown_asyncgens()
            await loop.shutdown_default_executor()

        try:
            asyncio.run_coroutine_threadsafe(drain(), loop).result(10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()
            self.loop = self.thread = None


class TestClient:
    """A client bound to one app served on 127.0.0.1: synchronous from its first use until
    ``close()`` (or the end of a ``with`` block), or for the duration of an ``async with`` block."""

    __test__ = False  # not a pytest test class

    def __init__(self, app: Any, *, shutdown_timeout_s: float = 5.0, **client_options: Any) -> None:
        self.app = app
        self.shutdown_timeout_s = shutdown_timeout_s
        self._options = client_options
        self._mode: str | None = None          # None, "sync" or "async"
        self._served: _Served | None = None
        self._closer: weakref.finalize[Any, Any] | None = None
        self._lock = threading.Lock()          # one start even when threads race to the first use

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._running().server.port}"

    @property
    def server(self) -> Any:
        """The running ``cyserve.server.Server`` (its ``state.connections`` etc.)."""
        return self._running().server

    @property
    def client(self) -> Client:
        """The ``cyserve.Client`` bound to the server (and, in the synchronous form, to the
        background loop: call it through the TestClient there)."""
        client = self._running().client
        assert client is not None
        return client

    def _running(self) -> _Served:
        """What serves the app; the first use outside ``async with`` starts the synchronous form."""
        served = self._served
        if served is not None:
            return served
        with self._lock:
            if self._mode == "async":
                raise RuntimeError("the TestClient is still starting: await its `async with` first")
            if self._served is None:
                served = _Served()
                served.start_in_thread(self.app, self._options, self.shutdown_timeout_s)
                self._closer = weakref.finalize(self, served.close, self.shutdown_timeout_s)
                self._served, self._mode = served, "sync"
            return self._served

    def close(self) -> None:
        """Stop the synchronous form now: the app's lifespan exit, the port, the loop thread.
        A later request starts it again.  Without it, the GC or interpreter exit stops it."""
        with self._lock:
            if self._mode == "async":
                raise RuntimeError("an `async with` TestClient stops when its block ends")
            closer = self._closer
            self._closer = self._served = self._mode = None
        if closer is not None:
            closer()

    def _call(self, coro: Any) -> Any:
        served = self._served
        if served is None or self._mode != "sync":
            coro.close()
            raise RuntimeError("the TestClient was closed")
        return served.call(coro)

    # ------------------------------------------------------------------ async form
    async def __aenter__(self) -> "TestClient":
        with self._lock:
            if self._mode is not None:
                raise RuntimeError("this TestClient is already running")
            self._mode = "async"
        served = _Served()
        try:
            await served.start(self.app, self._options)
        except BaseException:
            self._mode = None
            await served.stop(self.shutdown_timeout_s)
            raise
        self._served = served
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        served = self._served
        self._served = self._mode = None
        if served is not None:
            await served.stop(self.shutdown_timeout_s)

    # ------------------------------------------------------------------ sync form
    def __enter__(self) -> "TestClient":
        if self._mode == "async":
            raise RuntimeError("this TestClient is already running (`async with`)")
        self._running()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ requests
    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        """``await`` it in the async form; else it returns a ``SyncResponse`` (and the first
        call starts the synchronous form)."""
        if self._mode == "async":
            return self.client.request(method, url, **kwargs)
        served = self._running()
        assert served.client is not None
        return SyncResponse(served.call(served.client.request(method, url, **kwargs)), self)

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.request("GET", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> Any:
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> Any:
        return self.request("OPTIONS", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Any:
        return self.request("DELETE", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> Any:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> Any:
        return self.request("PATCH", url, **kwargs)

    def stream(self, method: str, url: str, **kwargs: Any) -> Any:
        """``async with`` (async form) or ``with`` (sync form) a response whose body is read
        as it arrives: ``iter_bytes()``, ``iter_lines()``, ``iter_events()``."""
        if self._mode == "async":
            return self.client.stream(method, url, **kwargs)
        return _SyncStream(self, self.client.stream(method, url, **kwargs))

    def websocket(self, path: str, subprotocols: Sequence[str] | None = None,
                  headers: Any = None) -> Any:
        """``async with`` (async form) or ``with`` (sync form) a WebSocket to the app's
        ``@app.websocket`` route at ``path``: ``send*``, ``receive*``, ``ping``, ``close``,
        ``close_code``, iteration -- plain calls in the sync form (``SyncWebSocket``).  A refused
        handshake raises ``HTTPStatusError`` (its ``status``) on entering."""
        connect = self.client.websocket(path, subprotocols=subprotocols, headers=headers)
        if self._mode == "async":
            return connect
        return _SyncWebSocketContext(self, connect)


    def push(self, credentials: Any = None, *, transport: str | None = None, hub: Any = None,
             **options: Any) -> Any:
        """``async with`` (async form) or ``with`` (sync form) a push client
        (``cyserve.push.connect``) connected to a hub the app serves (``App.push``): the only
        one, or ``hub``.  ``transport``: ``"tcp"`` (the default when the hub has a TCP port) or
        ``"websocket"``; ``options`` go to ``connect`` (``codec``, ``framing``, ``reconnect``...).
        The sync form is a ``SyncPushClient``: ``call``, ``receive``, ``close``, iteration."""
        from cyserve.push.client import connect
        url = self._push_url(transport, hub)
        if self._mode == "async":
            return connect(url, credentials, **options)
        return _SyncPushContext(self, lambda: connect(url, credentials, **options))

    def _push_url(self, transport: str | None, hub: Any) -> str:
        served = self._running()
        mounts = [m for m in getattr(self.app, "push_mounts", ()) if hub is None or m.hub is hub]
        if not mounts:
            raise RuntimeError("the app serves no push hub" + ("" if hub is None else " like that one")
                               + ": app.push(hub, port=..., websocket=...)")
        if len(mounts) > 1:
            raise RuntimeError("the app serves several push hubs: say which with hub=")
        mount = mounts[0]
        if transport is None:
            transport = "tcp" if mount.port is not None else "websocket"
        if transport == "tcp":
            if mount.address is None:
                raise RuntimeError("the push hub has no TCP listener: app.push(hub, port=0) opens one")
            host, port = mount.address
            return f"tcp://{host}:{port}"
        if transport == "websocket":
            if mount.websocket is None:
                raise RuntimeError("the push hub has no WebSocket endpoint: "
                                   "app.push(hub, websocket='/push') adds one")
            assert served.server is not None
            return f"ws://127.0.0.1:{served.server.port}{mount.websocket}"
        raise ValueError(f"transport must be 'tcp' or 'websocket', got {transport!r}")


class SyncResponse:
    """A ``Response`` seen from synchronous code: the same names, plain calls."""

    __slots__ = ("_resp", "_tc")

    def __init__(self, resp: Response, tc: TestClient) -> None:
        self._resp = resp
        self._tc = tc

    @property
    def status(self) -> int:
        return self._resp.status

    @property
    def status_code(self) -> int:
        """The same as ``status`` (the name httpx and requests use)."""
        return self._resp.status

    @property
    def reason(self) -> str:
        return self._resp.reason

    @property
    def headers(self) -> Any:
        return self._resp.headers

    @property
    def url(self) -> str:
        return self._resp.url

    @property
    def history(self) -> list[SyncResponse]:
        return [SyncResponse(r, self._tc) for r in self._resp.history]

    @property
    def is_success(self) -> bool:
        return self._resp.is_success

    @property
    def content(self) -> bytes:
        return self.read()

    def read(self) -> bytes:
        body: bytes = self._tc._call(self._resp.read())
        return body

    def text(self, encoding: str | None = None) -> str:
        text: str = self._tc._call(self._resp.text(encoding))
        return text

    def json(self) -> Any:
        return self._tc._call(self._resp.json())

    def raise_for_status(self) -> "SyncResponse":
        self._resp.raise_for_status()
        return self

    def _iterate(self, agen: Any) -> Iterator[Any]:
        try:
            while True:
                try:
                    yield self._tc._call(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self._tc._call(agen.aclose())

    def iter_bytes(self) -> Iterator[bytes]:
        return self._iterate(self._resp.iter_bytes())

    def iter_lines(self) -> Iterator[str]:
        return self._iterate(self._resp.iter_lines())

    def iter_events(self) -> Iterator[ServerSentEvent]:
        """Server-sent events parsed from a ``text/event-stream`` body, as they arrive."""
        return self._iterate(self._resp.iter_events())

    def close(self) -> None:
        self._tc._call(self._resp.aclose())

    def __repr__(self) -> str:
        return repr(self._resp)


class _SyncStream:
    __slots__ = ("_tc", "_ctx", "_resp")

    def __init__(self, tc: TestClient, ctx: Any) -> None:
        self._tc = tc
        self._ctx = ctx
        self._resp: SyncResponse | None = None

    def __enter__(self) -> SyncResponse:
        self._resp = SyncResponse(self._tc._call(self._ctx.__aenter__()), self._tc)
        return self._resp

    def __exit__(self, *exc_info: Any) -> None:
        self._tc._call(self._ctx.__aexit__(*exc_info))


class SyncWebSocket:
    """A client ``WebSocket`` seen from synchronous code: the same names, plain calls (each runs
    on the TestClient's loop and blocks until it is done: a ``receive()`` with nothing coming
    waits for ever, as with any blocking socket)."""

    __slots__ = ("_ws", "_tc")

    def __init__(self, ws: ClientWebSocket, tc: TestClient) -> None:
        self._ws = ws
        self._tc = tc

    def send(self, message: str | bytes) -> None:
        self._tc._call(self._ws.send(message))

    def send_text(self, text: str) -> None:
        self._tc._call(self._ws.send_text(text))

    def send_bytes(self, data: bytes) -> None:
        self._tc._call(self._ws.send_bytes(data))

    def send_json(self, data: Any) -> None:
        self._tc._call(self._ws.send_json(data))

    def receive(self) -> str | bytes:
        message: str | bytes = self._tc._call(self._ws.receive())
        return message

    def receive_text(self) -> str:
        text: str = self._tc._call(self._ws.receive_text())
        return text

    def receive_bytes(self) -> bytes:
        data: bytes = self._tc._call(self._ws.receive_bytes())
        return data

    def receive_json(self) -> Any:
        return self._tc._call(self._ws.receive_json())

    def ping(self, data: bytes = b"") -> float:
        seconds: float = self._tc._call(self._ws.ping(data))
        return seconds

    def close(self, code: int = 1000, reason: str = "") -> None:
        self._tc._call(self._ws.close(code, reason))

    @property
    def close_code(self) -> int | None:
        return self._ws.close_code

    @property
    def close_reason(self) -> str | None:
        return self._ws.close_reason

    @property
    def closed(self) -> bool:
        return self._ws.closed

    @property
    def subprotocol(self) -> str | None:
        return self._ws.subprotocol

    @property
    def headers(self) -> Any:
        """The fields of the server's 101."""
        return self._ws.headers

    def __iter__(self) -> Iterator[str | bytes]:
        """Messages until a normal close (1000, 1001, or a close frame without a code)."""
        while True:
            try:
                yield self._tc._call(self._ws.__anext__())
            except StopAsyncIteration:
                return

    def __repr__(self) -> str:
        return repr(self._ws)


class _SyncWebSocketContext:
    __slots__ = ("_tc", "_connect")

    def __init__(self, tc: TestClient, connect: Any) -> None:
        self._tc = tc
        self._connect = connect

    def __enter__(self) -> SyncWebSocket:
        return SyncWebSocket(self._tc._call(self._connect.__aenter__()), self._tc)

    def __exit__(self, *exc_info: Any) -> None:
        self._tc._call(self._connect.__aexit__(*exc_info))


class SyncPushClient:
    """A push client (``cyserve.push.PushClient``) seen from synchronous code: each call runs on
    the TestClient's loop and blocks until done (``receive`` waits at most ``timeout_s``)."""

    __slots__ = ("_push", "_tc")

    def __init__(self, push: Any, tc: TestClient) -> None:
        self._push = push
        self._tc = tc

    def call(self, command: str, data: Any = None, *, timeout_s: float | None = 10.0) -> Any:
        return self._tc._call(self._push.call(command, data, timeout_s=timeout_s))

    def receive(self, timeout_s: float = 10.0) -> Any:
        """The next ``Push``, ``Gap`` or ``SessionReset``; ``TimeoutError`` when none came in
        ``timeout_s``; ``StopAsyncIteration`` once the session ended."""
        return self._tc._call(asyncio.wait_for(self._push.__anext__(), timeout_s))

    def close(self) -> None:
        self._tc._call(self._push.close())

    @property
    def client_id(self) -> str | None:
        client_id: str | None = self._push.client_id
        return client_id

    @property
    def welcome(self) -> Any:
        return self._push.welcome

    def __iter__(self) -> Iterator[Any]:
        while True:
            try:
                yield self._tc._call(self._push.__anext__())
            except StopAsyncIteration:
                return

    def __repr__(self) -> str:
        return repr(self._push)


class _SyncPushContext:
    __slots__ = ("_tc", "_make", "_connect")

    def __init__(self, tc: TestClient, make: Any) -> None:
        self._tc = tc
        self._make = make
        self._connect: Any = None

    def __enter__(self) -> SyncPushClient:
        async def enter() -> Any:
            # Made on the loop's thread: the client's futures belong to that loop.
            self._connect = self._make()
            return await self._connect.__aenter__()
        return SyncPushClient(self._tc._call(enter()), self._tc)

    def __exit__(self, *exc_info: Any) -> None:
        if self._connect is not None:
            self._tc._call(self._connect.__aexit__(*exc_info))
