"""TestClient: exercise a cyserve App through a real socket with the client's API.

    async with TestClient(app) as client:          # inside a running loop (pytest, asyncio)
        resp = await client.get("/")
        assert resp.status == 200 and await resp.text() == "hello"

    with TestClient(app) as client:                # plain synchronous tests
        resp = client.get("/")
        assert resp.status == 200 and resp.text() == "hello"
        with client.stream("GET", "/events") as resp:
            for event in resp.iter_events():       # text/event-stream, parsed
                ...

The app is served by ``cyserve.server.serve`` on 127.0.0.1 (a free port), so what a test sees is
what production sees: the core's parser, framing, keep-alive and the app's lifespan (run by
``serve()``/``Server.shutdown()``).  The synchronous form runs the loop (uvloop when installed) in
a background thread; its responses are read in full, so ``text()``/``json()`` are plain calls.
Nothing here needs httpx.
"""
from __future__ import annotations

import asyncio
import threading
from typing import Any, Iterator

from cyserve.client.sse import ServerSentEvent
from cyserve.client import Client, Response

__all__ = ["TestClient", "SyncResponse"]

_METHODS = ("get", "head", "options", "delete", "post", "put", "patch")


class TestClient:
    """A client bound to one app served on 127.0.0.1 for the duration of a ``with`` block."""

    __test__ = False  # not a pytest test class

    def __init__(self, app: Any, *, shutdown_timeout_s: float = 5.0, **client_options: Any) -> None:
        self.app = app
        self.shutdown_timeout_s = shutdown_timeout_s
        self._options = client_options
        self._mode: str | None = None
        self._server: Any = None
        self._client: Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("TestClient is not started: use it as `with` or `async with`")
        return f"http://127.0.0.1:{self._server.port}"

    @property
    def server(self) -> Any:
        """The running ``cyserve.server.Server`` (its ``state.connections`` etc.)."""
        return self._server

    @property
    def client(self) -> Client:
        if self._client is None:
            raise RuntimeError("TestClient is not started: use it as `with` or `async with`")
        return self._client

    async def _start(self) -> None:
        from cyserve.server import serve
        self._server = await serve(self.app, "127.0.0.1", 0)
        self._client = Client(base_url=self.base_url, **self._options)

    async def _stop(self) -> None:
        try:
            if self._client is not None:
                await self._client.aclose()
        finally:
            if self._server is not None:
                await self._server.shutdown(timeout_s=self.shutdown_timeout_s)

    # ------------------------------------------------------------------ async form
    async def __aenter__(self) -> "TestClient":
        self._enter("async")
        try:
            await self._start()
        except BaseException:
            self._mode = None
            raise
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            await self._stop()
        finally:
            self._mode = None

    # ------------------------------------------------------------------ sync form
    def __enter__(self) -> "TestClient":
        from cyserve.server import new_event_loop
        self._enter("sync")
        loop = new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="cyserve-testclient", daemon=True)
        self._thread.start()
        ready.wait()
        try:
            self._call(self._start())
        except BaseException:
            self._shutdown_thread()
            raise
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:
            self._call(self._stop())
        finally:
            self._shutdown_thread()

    def _shutdown_thread(self) -> None:
        loop, thread = self._loop, self._thread
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
            self._loop = self._thread = None
            self._mode = None

    def _enter(self, mode: str) -> None:
        if self._mode is not None:
            raise RuntimeError("this TestClient is already running")
        self._mode = mode

    def _call(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    # ------------------------------------------------------------------ requests
    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        """``await`` it in the async form; in the sync form it returns a ``SyncResponse``."""
        if self._mode == "async":
            return self.client.request(method, url, **kwargs)
        if self._mode == "sync":
            return SyncResponse(self._call(self.client.request(method, url, **kwargs)), self)
        raise RuntimeError("TestClient is not started: use it as `with` or `async with`")

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
        if self._mode == "sync":
            return _SyncStream(self, self.client.stream(method, url, **kwargs))
        raise RuntimeError("TestClient is not started: use it as `with` or `async with`")


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
        return self._tc._call(self._resp.read())

    def text(self, encoding: str | None = None) -> str:
        return self._tc._call(self._resp.text(encoding))

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
