"""Client: pooled HTTP/1.1 over the core's codec in its client role (DESIGN §3).

    async with cyserve.Client(base_url="http://127.0.0.1:8000", timeout=10) as client:
        resp = await client.get("/items", params={"page": 2})
        resp.raise_for_status()
        data = await resp.json()

        async with client.stream("GET", "/big") as resp:      # streamed, backpressured
            async for chunk in resp.iter_bytes():
                ...

        async with client.stream_request("PUT", "/upload") as req:   # Blazeio-style upload
            await req.write(b"...")
            resp = await req.finish()

One-off helpers open and close a client per call: ``await cyserve.client.get(url)``.

What Blazeio's client got wrong, and this one does not: TLS is chosen by the URL scheme and
verified by default (``verify=False`` only when asked, logged at WARNING); every timeout is
applied and raises its own exception; redirects are bounded and drop credentials across origins.

Retries are opt-in (``retries=3`` or a ``cyserve.config.Retries``): idempotent requests with a
body that can be sent again, after connection errors and 502/503/504, with capped exponential
backoff and full jitter, ``Retry-After`` honoured, never past the total timeout (``retries``).
"""
from __future__ import annotations

import asyncio
import os
from typing import Any, Sequence

from cyserve._core.http.state import ClientState
from cyserve.client.connect import Proxy, make_ssl_context, open_connection
from cyserve.client.content import RequestContent, encode_request
from cyserve.client.cookies import CookieJar
from cyserve.client.decompress import accept_encoding
from cyserve.client.environ import EnvProxies
from cyserve.client.pool import Pool
from cyserve.client.redirects import Hop, next_hop
from cyserve.client.response import RequestInfo, Response
from cyserve.client.retries import RetryBudget
from cyserve.client.upload import StreamRequest, UploadStart, upload
from cyserve.client.urls import Origin, Target, merge_url, split_url
from cyserve.client.util import (
    HeadersArg, Route, basic_auth, bound, find_header, header_list, merge_headers, merge_params,
    remaining, seconds, target_of, total_deadline, watch_total,
)
from cyserve.client.websocket import WebSocketConnect
from cyserve.config import (
    IDEMPOTENT_METHODS, ClientLimits, ClientTimeouts, Retries, WebSocketLimits, to_retries,
    to_timeouts,
)
from cyserve.errors import (
    ClientError, ClientTimeout, ConnectTimeout, PoolTimeout, TooManyRedirects, TotalTimeout,
    TransportError,
)

__all__ = ["Client", "request", "get", "post", "put", "patch", "delete", "head", "options"]

_VERSION = "0.1.0"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})  # RFC 9110 §8.6: send Content-Length: 0
_UNSET: Any = object()

class Client:
    """A pooled HTTP/1.1 client.  Use it as ``async with Client(...) as client:``.

    ``base_url``: prefix for relative URLs.  ``headers``/``params``: sent with every request.
    ``timeout``: seconds for connect, read, write and pool each, or a ``ClientTimeouts``; by
    default ``ClientTimeouts()``, whose ``total_s`` (300 s) bounds every request as a whole, and
    a ``stream()`` until its response head (the caller paces the body; ``read_s`` watches it).
    ``limits``: a ``ClientLimits`` (pool sizes, keep-alive expiry, redirects, size bounds).
    ``verify``/``cert``: TLS (see ``cyserve.client.connect``).  ``proxy``: ``http://[user:pass@]
    host:port``.  ``cookies``: True or a ``CookieJar`` to keep cookies (off by default).
    ``auth``: ``(user, password)`` for Basic auth, sent only to the first hop's origin.
    ``decode``: undo gzip/deflate/br, and zstd with the ``zstd`` extra installed (and send
    Accept-Encoding for them).
    ``retries``: a count or a ``Retries``; off by default (``cyserve.config.Retries`` says
    what is retried, and how long each wait is).
    ``trust_env``: take proxies from ``http_proxy``, ``https_proxy``, ``all_proxy`` and
    ``no_proxy`` (``cyserve.client.environ``); an explicit ``proxy`` wins.  Off by default, as
    in aiohttp: where requests go should not change with a variable set for other programs
    (httpx and requests trust the environment by default; a server library's process often
    inherits one it never meant to use, and under CGI a client can set ``HTTP_PROXY``).
    """

    def __init__(self, *, base_url: str | None = None, headers: HeadersArg = None,
                 params: Any = None, cookies: bool | CookieJar | None = None,
                 timeout: Any = _UNSET, limits: ClientLimits | None = None, verify: Any = True,
                 cert: Any = None, proxy: str | None = None, follow_redirects: bool = True,
                 auth: tuple[str, str] | None = None, decode: bool = True,
                 user_agent: str | None = f"cyserve/{_VERSION}",
                 retries: int | Retries | None = None, trust_env: bool = False) -> None:
        if base_url is not None:
            split_url(base_url)  # a bad base URL is the caller's mistake: ValueError now
        self.base_url = base_url
        self.params = params
        self.timeouts = ClientTimeouts() if timeout is _UNSET else to_timeouts(timeout)
        self.limits = limits or ClientLimits()
        self.retries = to_retries(retries)
        self.follow_redirects = follow_redirects
        self.auth = auth
        self.decode = decode
        self.cookies: CookieJar | None = (CookieJar() if cookies is True
                                          else cookies if isinstance(cookies, CookieJar) else None)
        defaults = []
        if user_agent:
            defaults.append(("User-Agent", user_agent))
        defaults.append(("Accept", "*/*"))
        if decode:
            defaults.append(("Accept-Encoding", accept_encoding()))
        self.headers: list[tuple[str, str]] = merge_headers(defaults, header_list(headers))
        self._proxy = Proxy.parse(proxy) if proxy else None
        self._env: EnvProxies | None = (EnvProxies.from_environ(os.environ)
                                        if trust_env and proxy is None else None)
        self._verify = verify
        self._cert = cert
        self._ssl: Any = None
        if verify is False:
            self._ssl = make_ssl_context(False, cert)  # logs the WARNING where the choice is made
        self._pool = Pool(self.limits.max_connections, self.limits.max_connections_per_host)
        self._state: ClientState | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> "Client":
        self._bind()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close idle connections now; connections still busy close when their body ends."""
        self._closed = True
        self._pool.close()

    @property
    def pool(self) -> Pool:
        return self._pool

    def _bind(self) -> ClientState:
        loop = asyncio.get_running_loop()
        state = self._state
        if state is None:
            state = self._state = ClientState(loop, self.limits)
        elif state.loop is not loop:
            raise RuntimeError("a Client belongs to the event loop it first ran on")
        return state

    def _ssl_context(self) -> Any:
        if self._ssl is None:
            self._ssl = make_ssl_context(self._verify, self._cert)
        return self._ssl

    # ------------------------------------------------------------------ public API
    async def request(self, method: str, url: str, *, params: Any = None, headers: HeadersArg = None,
                      content: Any = None, data: Any = None, files: Any = None, json: Any = None,
                      timeout: Any = _UNSET, follow_redirects: bool | None = None,
                      auth: tuple[str, str] | None = None) -> Response:
        """Send a request, follow redirects, read the whole body; return the ``Response``."""
        return await self._request(method, url, params, headers, content, data, files, json,
                                   timeout, follow_redirects, auth, False)

    async def get(self, url: str, **kwargs: Any) -> Response:
        return await self.request("GET", url, **kwargs)

    async def head(self, url: str, **kwargs: Any) -> Response:
        return await self.request("HEAD", url, **kwargs)

    async def options(self, url: str, **kwargs: Any) -> Response:
        return await self.request("OPTIONS", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> Response:
        return await self.request("DELETE", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> Response:
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> Response:
        return await self.request("PUT", url, **kwargs)

    async def patch(self, url: str, **kwargs: Any) -> Response:
        return await self.request("PATCH", url, **kwargs)

    def stream(self, method: str, url: str, **kwargs: Any) -> "_StreamContext":
        """``async with client.stream("GET", url) as resp:`` — the body is not read: iterate
        ``resp.iter_bytes()``; leaving the block closes the response.  The total timeout ends
        when the head is in: the body takes as long as the caller reads it, with ``read_s`` as
        the longest silence (bound a whole download with ``asyncio.wait_for`` if needed)."""
        return _StreamContext(self, method, url, kwargs)

    def stream_request(self, method: str, url: str, *, headers: HeadersArg = None,
                       params: Any = None, timeout: Any = _UNSET) -> "StreamRequest":
        """``async with client.stream_request("PUT", url) as req:`` then ``await req.write(chunk)``
        as data arrives and ``resp = await req.finish()``.  Chunked unless ``headers`` carry a
        Content-Length.  No redirects or retries (the body is sent once)."""
        return StreamRequest(lambda: self._start_upload(method.upper(), url, headers, params, timeout),
                             method.upper(), self.limits, self.decode)

    def websocket(self, url: str, *, subprotocols: Sequence[str] | None = None,
                  headers: HeadersArg = None, compression: bool = True,
                  limits: WebSocketLimits | None = None, timeout: Any = _UNSET) -> WebSocketConnect:
        """``async with client.websocket("wss://host/path") as ws:`` a WebSocket (RFC 6455) on a
        connection of its own (TLS and proxies as for requests; a redirect is an error).
        ``subprotocols``: offered in order (``ws.subprotocol`` is the server's choice).
        ``compression``: offer permessage-deflate (as ``limits`` configures it).  ``limits``: a
        ``WebSocketLimits`` (sizes, pings, close timeout, compression).  ``timeout``: as for
        requests, bounding the opening handshake.  See ``cyserve.client.websocket``."""
        return WebSocketConnect(self, url, subprotocols, header_list(headers), compression, limits,
                                self._timeouts(timeout))

    # ------------------------------------------------------------------ the engine
    def _timeouts(self, timeout: Any) -> ClientTimeouts:
        return self.timeouts if timeout is _UNSET else to_timeouts(timeout)

    def _deadline(self, timeouts: ClientTimeouts) -> float | None:
        return total_deadline(timeouts)

    async def _start_upload(self, method: str, url: str, headers: HeadersArg, params: Any,
                            timeout: Any) -> UploadStart:
        """Open the exchange of a ``StreamRequest``: a connection (within the total) and the
        request head, its body to follow piece by piece."""
        timeouts = self._timeouts(timeout)
        full = merge_url(self.base_url, url, merge_params(self.params, params))
        target = target_of(full)
        fields = list(merge_headers(self.headers, header_list(headers)))
        auth = self.auth or target.userinfo
        if auth is not None and find_header(fields, "authorization") is None:
            fields.append(("Authorization", basic_auth(*auth)))
        route, request_target, fields = self._address(target, fields)
        declared = find_header(fields, "content-length")
        length = int(declared) if declared is not None else -1
        conn, _ = await self._acquire(route, target.origin, timeouts, total_deadline(timeouts),
                                      False)
        try:
            # No total for the core (0): its deadline would run until the response body's last
            # byte, across the caller's writes; StreamRequest.finish() bounds the head instead.
            waiter = conn.start(method, request_target, fields, length, length < 0, None, False,
                                method == "HEAD", seconds(timeouts.read_s),
                                seconds(timeouts.write_s), 0.0)
        except BaseException:
            conn.abort()
            raise
        return UploadStart(conn, waiter, RequestInfo(method, target.url, fields), timeouts)

    async def _request(self, method: str, url: str, params: Any, headers: HeadersArg,
                       content: Any, data: Any, files: Any, json: Any, timeout: Any,
                       follow_redirects: bool | None, auth: tuple[str, str] | None,
                       stream: bool) -> Response:
        if self._closed:
            raise ClientError("the client is closed")
        timeouts = self._timeouts(timeout)
        deadline = self._deadline(timeouts)
        method = method.upper()
        full = merge_url(self.base_url, url, merge_params(self.params, params))
        hop_headers = merge_headers(self.headers, header_list(headers)) if headers else self.headers
        auth = auth or self.auth
        target = target_of(full)
        if target.userinfo is not None and auth is None:
            auth = target.userinfo
        if auth is not None and find_header(hop_headers, "authorization") is None:
            hop_headers = hop_headers + [("Authorization", basic_auth(*auth))]
        body = encode_request(content, data, files, json)
        hop = Hop(method, target.url, hop_headers, body)
        follow = self.follow_redirects if follow_redirects is None else follow_redirects
        history: list[Response] = []
        budget = RetryBudget(self.retries, deadline)
        while True:
            resp = await self._send(hop, timeouts, deadline, stream, budget)
            if not follow or not resp.is_redirect:
                break
            following = next_hop(hop, resp.status, resp.headers.get("location"))
            if following is None:
                break
            if len(history) >= self.limits.max_redirects:
                await resp.aclose()
                raise TooManyRedirects(f"more than {self.limits.max_redirects} redirects "
                                       f"(last: {resp.status} to {resp.headers.get('location')})", resp)
            await _discard(resp, deadline if stream else None)
            history.append(resp)
            hop = following
        resp.history = history
        if not stream:
            try:
                await resp.read()
            except BaseException:
                await resp.aclose()
                raise
        return resp

    async def _send(self, hop: Hop, timeouts: ClientTimeouts, deadline: float | None,
                    stream: bool, budget: RetryBudget) -> Response:
        """One hop: a pooled connection and one exchange; sent again at once after a stale
        connection, and after a wait when ``budget`` allows (a failure it retries, see
        ``cyserve.config.Retries``)."""
        target = target_of(hop.url)
        route, request_target, fields = self._address(target, hop.headers)
        method, content = hop.method, hop.content
        if content is not None and content.content_type and find_header(fields, "content-type") is None:
            fields = fields + [("Content-Type", content.content_type)]
        info = RequestInfo(method, hop.url, fields)
        stale_ok = method in IDEMPOTENT_METHODS and (content is None or content.replayable)
        fresh = False
        while True:
            conn = None
            try:
                conn, reused = await self._acquire(route, target.origin, timeouts, deadline, fresh)
                resp = await self._exchange(conn, method, request_target, fields, content,
                                            timeouts, deadline, info, stream)
            except TransportError as exc:
                response_bytes = 0 if conn is None else conn.response_bytes
                # RFC 9112 §9.3.1: a request on a reused connection that the server closed
                # may be retried when it is idempotent and nothing of a response came back.
                if (conn is not None and reused and not fresh and stale_ok
                        and response_bytes == 0 and not isinstance(exc, ClientTimeout)):
                    fresh = True
                    continue
                wait = budget.after_error(method, content, exc, response_bytes)
                if wait is None:
                    raise
                fresh = True   # the idle connections to this origin may be as dead as this one
                await asyncio.sleep(wait)
                continue
            self._keep_cookies(resp)
            wait = budget.after_response(method, content, resp)
            if wait is None:
                return resp
            await _discard(resp, deadline if stream else None)
            await asyncio.sleep(wait)

    def _keep_cookies(self, resp: Response) -> None:
        if self.cookies is not None:
            self.cookies.extract(resp.url, resp.headers.getlist("set-cookie"))

    def _address(self, target: Target, fields: list[tuple[str, str]]
                 ) -> tuple[Route, str, list[tuple[str, str]]]:
        """The pool route, the request-target and ``fields`` plus what every request adds
        (Host, the jar's Cookie, Proxy-Authorization), for one request to ``target``."""
        proxy = self._proxy_for(target)
        if proxy is None:
            route = Route(target.origin, None)
            request_target = target.target
        elif target.origin.scheme == "http":
            route = Route(None, proxy)
            request_target = target.url   # absolute-form for a proxy (RFC 9112 §3.2.2)
        else:
            route = Route(target.origin, proxy)
            request_target = target.target
        if find_header(fields, "host") is None:
            fields = [("Host", target.host_header)] + fields
        if self.cookies is not None and find_header(fields, "cookie") is None:
            cookie = self.cookies.header_for(target.url)
            if cookie:
                fields = fields + [("Cookie", cookie)]
        if proxy is not None and route.origin is None and proxy.authorization:
            fields = fields + [("Proxy-Authorization", proxy.authorization)]
        return route, request_target, fields

    def _proxy_for(self, target: Target) -> Proxy | None:
        """The proxy requests to ``target`` go through: ``proxy=``, else the environment's."""
        return self._proxy if self._env is None else self._env.proxy_for(target)

    async def _acquire(self, route: Route, origin: Origin, timeouts: ClientTimeouts,
                       deadline: float | None, fresh: bool) -> tuple[Any, bool]:
        state = self._bind()
        pool_s, total_binds = bound(timeouts.pool_s, deadline)

        async def opener() -> Any:
            connect_s, connect_total = bound(timeouts.connect_s, deadline)
            ssl_ctx = self._ssl_context() if origin.scheme == "https" else None
            try:
                return await open_connection(state, route, origin, route.via, ssl_ctx, connect_s)
            except ConnectTimeout:
                if connect_total:
                    raise TotalTimeout("the request took longer than its total timeout") from None
                raise

        try:
            return await self._pool.acquire(route, pool_s, opener, fresh)
        except PoolTimeout:
            if total_binds:
                raise TotalTimeout("the request took longer than its total timeout") from None
            raise

    async def _exchange(self, conn: Any, method: str, target: str, fields: list[tuple[str, str]],
                        content: RequestContent | None, timeouts: ClientTimeouts,
                        deadline: float | None, info: RequestInfo, stream: bool) -> Response:
        read_s = seconds(timeouts.read_s)
        write_s = seconds(timeouts.write_s)
        total_s = remaining(deadline) or 0.0
        head_request = method == "HEAD"
        watch = None
        if stream:
            # The core's total deadline runs until the body's last byte, but a streamed body is
            # the caller's to pace: the total bounds this exchange until its head instead.
            watch = watch_total(conn, deadline)
            total_s = 0.0
        try:
            if content is None:
                waiter = conn.start(method, target, fields, 0 if method in _BODY_METHODS else -1,
                                    False, None, False, head_request, read_s, write_s, total_s)
            elif content.body is not None:
                waiter = conn.start(method, target, fields, len(content.body), False,
                                    content.body, False, head_request, read_s, write_s, total_s)
                if conn.write_paused:
                    await conn.drain()
            else:
                assert content.stream is not None  # RequestContent holds a body or a stream
                declared = find_header(fields, "content-length")
                length = int(declared) if declared is not None else content.length
                waiter = conn.start(method, target, fields, -1 if length is None else length,
                                    length is None, None, False, head_request, read_s, write_s,
                                    total_s)
                await upload(conn, content.stream(), waiter)
            result = await waiter
        except BaseException:
            conn.abort()
            raise
        finally:
            if watch is not None:
                watch.cancel()
        if result is None:
            raise conn.error
        head, body = result
        return Response(head, body, conn, info, self.limits, self.decode)


async def _discard(resp: Response, deadline: float | None) -> None:
    """Drop a redirect's body: read it when small (the connection is kept), else close.
    ``deadline``: the total, for a ``stream()`` hop, whose body the core's total does not
    bound (see ``Client._exchange``)."""
    try:
        length = resp.content_length
        if resp.is_complete or (length is not None and length <= 65536):
            watch = None if resp.is_complete else watch_total(resp, deadline)
            try:
                async for _ in resp.iter_raw():
                    pass
            except TransportError:
                pass  # followed on another connection, or the next hop finds the total spent
            finally:
                if watch is not None:
                    watch.cancel()
    finally:
        await resp.aclose()


class _StreamContext:
    __slots__ = ("_client", "_method", "_url", "_kwargs", "_response")

    def __init__(self, client: Client, method: str, url: str, kwargs: dict[str, Any]) -> None:
        self._client = client
        self._method = method
        self._url = url
        self._kwargs = kwargs
        self._response: Response | None = None

    async def __aenter__(self) -> Response:
        kw = self._kwargs
        unknown = set(kw) - {"params", "headers", "content", "data", "files", "json", "timeout",
                             "follow_redirects", "auth"}
        if unknown:
            raise TypeError(f"unexpected arguments: {sorted(unknown)}")
        self._response = await self._client._request(
            self._method, self._url, kw.get("params"), kw.get("headers"), kw.get("content"),
            kw.get("data"), kw.get("files"), kw.get("json"), kw.get("timeout", _UNSET),
            kw.get("follow_redirects"), kw.get("auth"), True)
        return self._response

    async def __aexit__(self, *exc_info: Any) -> None:
        if self._response is not None:
            await self._response.aclose()


# ---------------------------------------------------------------------- one-off helpers
_CLIENT_OPTIONS = ("timeout", "verify", "cert", "proxy", "follow_redirects", "limits", "cookies",
                   "retries", "trust_env")


async def request(method: str, url: str, **kwargs: Any) -> Response:
    """One request on a client opened and closed for it (connection not kept)."""
    options = {k: kwargs.pop(k) for k in _CLIENT_OPTIONS if k in kwargs}
    async with Client(**options) as client:
        return await client.request(method, url, **kwargs)


async def get(url: str, **kwargs: Any) -> Response:
    return await request("GET", url, **kwargs)


async def head(url: str, **kwargs: Any) -> Response:
    return await request("HEAD", url, **kwargs)


async def options(url: str, **kwargs: Any) -> Response:
    return await request("OPTIONS", url, **kwargs)


async def delete(url: str, **kwargs: Any) -> Response:
    return await request("DELETE", url, **kwargs)


async def post(url: str, **kwargs: Any) -> Response:
    return await request("POST", url, **kwargs)


async def put(url: str, **kwargs: Any) -> Response:
    return await request("PUT", url, **kwargs)


async def patch(url: str, **kwargs: Any) -> Response:
    return await request("PATCH", url, **kwargs)
