"""App: routes, middleware, error handlers and lifecycle; every chain composed once, at startup.

One path per request, whatever middleware there is::

    handle              resolve the route (404/405: a chain that answers them, ``_unmatched``);
                        run the chain; write the result; any error left becomes a response
      after hooks       ``app.after``, the first registered innermost: it runs first
        app.use         global middleware, registration order, the first registered outermost
          before hooks  ``app.before``, registration order: the first registered runs first
            _routed     hands over to the chain the request was routed to
              route chain   enclosing routers' middleware, then the route's own
                guard       the endpoint's errors and result made a response
                  endpoint

The order is by kind, not by registration: ``before`` hooks run last on the way in (every
``app.use`` middleware has taken the request: hosts checked, request id set, body decoded) and
``after`` hooks last on the way out (every middleware has finished the response: hooks see the
status and headers the client gets).  So a ``before`` that returns a response or raises (a
Blazeio ``before_middleware`` raising ``Abort(401)``) is still answered through every ``app.use``
middleware (CORS, security headers) and every ``after`` hook (audit, metrics, cleanup).

Every response, errors included, passes back out through every layer the request went
through.  What a layer raises is turned into a response where it happened (``_catch`` around
every middleware and hook but the outermost, ``_guard`` around the endpoint, both through
``failures.response_for``); what the outermost raises, ``handle`` maps the same way.  So an
``after`` hook sees early returns, 404, 405, the errors of hooks, middleware and endpoints, and
500s, always as a response.  It is passed ``None`` only when no response can be made, and the
error goes on after the hooks: ``ProtocolError`` (the core answers it with its status and
closes), ``Disconnected``, or the request's task cancelled.

Routing comes before the global middleware so that it happens in one place, yet every request,
unmatched ones included, passes the global middleware.  The fast path is an App without
middleware: there the route chain is the endpoint itself (``handle`` maps its errors with the
same ``failures.response_for`` and writes its raw result) and ``handle`` calls it without the
``_routed`` hop.  With global middleware, a route without its own costs the guard only, and a
request that passes a single middleware or hook in all costs no ``_catch``.  ``Response``,
``dict``/``list`` and ``str`` results are written with no ``Response`` object made.  What each
of these saves per request is measured in the commit that made this path.  Nothing is looked
up by name per request.

Errors become responses in one place, ``cyserve.failures.Failures`` (``app.failures``): handlers
registered with ``@app.exception_handler(ExcClass or status)`` first, then ``HTTPError`` (and the
named ones) as their status and ``detail``; what they leave is logged and answered 500, with a
traceback page only when ``debug=True``.

Background calls a handler queued with ``request.background(fn, *args, **kwargs)`` run after the
response was written (a stream: after its end), in a tracked task, in order; sync ones in the
default thread pool.  They do not run when handling the request raised, even when the error was
turned into a response.

Form files (the ``UploadFile`` s of ``request.form()``) are closed, and their temporary files
deleted, once the response is done: right after it is written, when handling raised, or when the
connection dropped.  When background calls were queued the files stay open until the last of
them returned, so a background call may be handed an upload and read it.
"""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, Coroutine, Sequence

from cyserve._json import dumps
from cyserve.compat import http_middleware
from cyserve.config import Limits, ServerConfig, Timeouts, WaterMarks, WebSocketLimits
from cyserve.errors import Disconnected, HTTPError, ProtocolError
from cyserve.failures import ExceptionHandler, Failures
from cyserve.lifecycle import Job, Lifecycle
from cyserve.middleware import Handler, Middleware, after, before, compose
from cyserve.request import Request
from cyserve.response import BaseResponse, Response, StreamResponse, to_response
from cyserve.routing import HandlerT, MethodShortcuts, Route, Router, class_routes
from cyserve.sse import SSEResponse
from cyserve.websocket import WebSocketEndpoint

__all__ = ["App"]

_log = logging.getLogger("cyserve.app")
_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"
_ALL_METHODS = "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"
_WHOLE_SEND = Response.send
# Responses whose body comes from a producer: HEAD closes the producer instead of running it.
_PRODUCED = (StreamResponse, SSEResponse)
# Errors no response can answer: the core answers a ProtocolError with its status and closes;
# after Disconnected nobody is left.  They pass every layer (failures never maps them either).
_UNANSWERABLE = (ProtocolError, Disconnected)


class App(MethodShortcuts):
    """A cyserve application.

    ``App(limits=..., timeouts=..., water_marks=..., websocket=..., debug=False, docs=None,
    title=..., version=..., redirect_slashes=True, lifespan=None)``.  Routes with ``@app.get(path)``
    and friends, ``@app.websocket(path)``, ``app.include_router``, ``app.group``, ``app.attach``;
    middleware with ``app.use``, ``app.before``, ``app.after``, ``app.fallback``; errors with
    ``app.exception_handler``; lifecycle with ``app.on_startup``, ``app.on_shutdown``,
    ``app.lifespan``, ``app.create_task``, ``app.schedule``.  Serve with ``app.run(host, port)``.

    ``docs`` (default: ``debug``) serves ``/openapi.json`` and Swagger UI at ``/docs``.
    ``redirect_slashes``: a path that is not routed but would be with the trailing slash removed
    (or added) is answered ``308 Permanent Redirect`` to that form, query kept (RFC 9110 §15.4.9:
    method and body are kept too).  ``websocket``: the ``WebSocketLimits`` of every WebSocket
    route that has none of its own.
    """

    def __init__(self, *, limits: Limits | None = None, timeouts: Timeouts | None = None,
                 water_marks: WaterMarks | None = None, server_header: str | None = "cyserve",
                 debug: bool = False, docs: bool | None = None, title: str = "cyserve API",
                 version: str = "0.1.0", redirect_slashes: bool = True,
                 lifespan: Callable[[Any], Any] | None = None,
                 websocket: WebSocketLimits | None = None) -> None:
        self.config = ServerConfig(
            limits=limits or Limits(),
            timeouts=timeouts or Timeouts(),
            water_marks=water_marks or WaterMarks(),
            server_header=server_header,
        )
        self.websocket_limits = websocket or WebSocketLimits()
        self.failures = Failures(debug)
        self.docs = debug if docs is None else docs
        self.title = title
        self.version = version
        self.redirect_slashes = redirect_slashes
        self.router = Router()
        self.state: dict[str, Any] = {}
        self.lifecycle = Lifecycle()
        self.middlewares: list[Middleware] = []
        # app.before and app.after hooks, as middleware, in registration order; _freeze puts
        # them inside and outside the app.use middleware (the module docstring).
        self._before_hooks: list[Middleware] = []
        self._after_hooks: list[Middleware] = []
        self._fallback: Route | None = None
        # Until the App is frozen (startup, or the first request) resolving freezes it first;
        # _freeze swaps in the table's own resolve, so a request pays nothing for this.
        self._resolve: Callable[[str, str], tuple[Route, dict[str, Any]]] = self._resolve_first
        # The global chain (hooks and app.use) around _routed, composed by _freeze; None without any.
        self._outer: Handler | None = None
        self._frozen = False
        #: The push hubs served with this app (``App.push``), as ``cyserve.push.mount.PushMount``.
        self.push_mounts: list[Any] = []
        if lifespan is not None:
            self.lifespan(lifespan)

    # -------------------------------------------------------------- routes
    def route(self, path: str, methods: Sequence[str] = ("GET",), name: str | None = None, *,
              middlewares: Sequence[Middleware] = (), status_code: int | None = None
              ) -> Callable[[HandlerT], HandlerT]:
        return self.router.route(path, methods, name, middlewares=middlewares, status_code=status_code)

    def websocket(self, path: str, *, limits: WebSocketLimits | None = None, name: str | None = None,
                  middlewares: Sequence[Middleware] = ()) -> Callable[[HandlerT], HandlerT]:
        """``@app.websocket(path)``: a WebSocket route (``cyserve.websocket``); ``limits``
        overrides the App's ``websocket`` limits for it."""
        return self.router.websocket(path, limits=limits, name=name, middlewares=middlewares)

    def include_router(self, router: Router, *, prefix: str = "") -> None:
        self.router.include_router(router, prefix=prefix)

    def group(self, prefix: str, middlewares: Sequence[Middleware] = ()) -> Router:
        return self.router.group(prefix, middlewares)

    def attach(self, obj: Any, *, prefix: str = "") -> Any:
        """Register a class's routes (an instance, or a class made with no arguments).

        ``@route.get(path)``-marked methods and Blazeio-named methods (``_api_ip(self, r)`` serves
        ``/api/ip``) become routes; ``before_middleware(r)``, ``after_middleware(r)`` and
        ``handle_all_middleware(r)`` become ``app.before``, ``app.after`` and ``app.fallback``.
        """
        if isinstance(obj, type):
            obj = obj()
        for path, fn, methods, name, mws in class_routes(obj):
            full = prefix + path if path != "/" or not prefix else prefix
            self.router.add(full, fn, methods, name, middlewares=mws)
        hook = getattr(obj, "before_middleware", None)
        if callable(hook):
            self.before(hook)
        hook = getattr(obj, "after_middleware", None)
        if callable(hook):
            self.after(_adapt_after(hook))
        hook = getattr(obj, "handle_all_middleware", None)
        if callable(hook):
            self.fallback(hook)
        return obj

    @property
    def routes(self) -> list[Route]:
        return self.router.routes

    def url_for(self, name: str, **params: Any) -> str:
        return self.router.url_for(name, **params)

    # -------------------------------------------------------------- middleware and errors
    def use(self, middleware: Middleware) -> Middleware:
        """Add a global middleware: it wraps every request, unmatched ones (404, 405) included.
        Middleware run in the order added, inside the ``after`` hooks and outside the ``before``
        hooks, whenever those were registered."""
        self._check_open("middleware")
        self.middlewares.append(middleware)
        return middleware

    def middleware(self, kind: str = "http") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """``@app.middleware("http")`` over ``async def fn(request, call_next)`` (FastAPI's and
        AstraAPI's spelling): ``app.use(cyserve.compat.http_middleware(fn))``."""
        if kind != "http":
            raise ValueError(f'app.middleware() takes "http" (the only kind there is), not {kind!r}')

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.use(http_middleware(fn))
            return fn
        return register

    def before(self, fn: Callable[[Request], Any]) -> Callable[[Request], Any]:
        """``@app.before``: ``fn(request)`` runs after every ``app.use`` middleware took the
        request, right before the route's chain, in registration order.  A returned response
        short-circuits; it, or what ``fn`` raised, still goes out through every middleware and
        ``after`` hook."""
        self._check_open("before hooks")
        self._before_hooks.append(before(fn))
        return fn

    def after(self, fn: Callable[[Request, BaseResponse | None], Any]) -> Callable[..., Any]:
        """``@app.after``: ``fn(request, response)`` runs for every request once every middleware
        finished the response, in registration order; what it returns replaces the response.

        ``response`` is the one the client gets: early returns of ``before`` hooks, 404, 405 and
        every error (500 included) arrive as responses.  It is ``None`` only when no response can
        be made (``ProtocolError``, ``Disconnected``, cancellation): the error goes on after the
        hooks.  What ``fn`` raises becomes the response the later hooks see."""
        self._check_open("after hooks")
        self._after_hooks.append(after(fn))
        return fn

    def _check_open(self, what: str) -> None:
        if self._frozen:
            raise RuntimeError(f"{what} must be added before the app starts")

    def fallback(self, handler: Handler) -> Handler:
        """Answer unmatched paths with ``handler`` instead of 404."""
        if self._frozen:
            raise RuntimeError("the fallback must be set before the app starts")
        self._fallback = Route("/", handler, ("GET",), "fallback", include_in_schema=False)
        return handler

    def exception_handler(self, key: type[BaseException] | int
                          ) -> Callable[[ExceptionHandler], ExceptionHandler]:
        """``@app.exception_handler(ValueError)`` or ``(404)``: ``handler(request, exc)`` returns
        the response.  For an ``HTTPError`` a handler for its status wins, then the nearest class
        up to ``HTTPError``; for other exceptions the nearest class in the MRO."""
        return self.failures.handler(key)

    @property
    def debug(self) -> bool:
        """Tracebacks in 500 pages (never in production)."""
        return self.failures.debug

    @debug.setter
    def debug(self, value: bool) -> None:
        self.failures.debug = value

    # -------------------------------------------------------------- lifecycle
    def on_startup(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        self.lifecycle.startup_hooks.append(fn)
        return fn

    def on_shutdown(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        self.lifecycle.shutdown_hooks.append(fn)
        return fn

    def lifespan(self, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """``fn(app)`` returns an async context manager (or is an async generator function) entered
        at startup and exited at shutdown; a dict it yields is merged into ``app.state``."""
        self.lifecycle.add_lifespan(fn)
        return fn

    def create_task(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None) -> Any:
        """A task that is cancelled at shutdown; its failure is logged."""
        return self.lifecycle.create_task(coro, name=name)

    def schedule(self, every: Any, fn: Callable[..., Any] | None = None, *args: Any, name: str | None = None,
                 **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` every ``every`` seconds (a number or ``timedelta``) or on a
        cron expression (``"*/5 * * * *"``), on the loop from startup until shutdown.  Sync
        functions run in a thread; failures are logged.  Without ``fn`` it is a decorator."""
        if fn is None:
            def register(func: Callable[..., Any]) -> Callable[..., Any]:
                self.lifecycle.schedule(Job(every, func, args, kwargs, name))
                return func
            return register
        return self.lifecycle.schedule(Job(every, fn, args, kwargs, name))

    async def startup(self) -> None:
        """Freeze the App and run its startup (``serve()`` calls this before listening)."""
        self._freeze()
        await self.lifecycle.start(self)

    async def shutdown(self) -> None:
        """Run the shutdown (``Server.shutdown()`` calls this after the connections closed)."""
        await self.lifecycle.stop(self.config.timeouts.shutdown_s)

    def push(self, hub: Any, *, port: int | None = None, host: str = "127.0.0.1",
             websocket: str | None = None, ssl: Any = None, reuse_port: bool | None = None) -> Any:
        """Serve a push ``hub`` (``cyserve.push.Hub``) with this app: a TCP listener on ``host``
        and ``port`` (0: any free port; the returned ``PushMount``'s ``address`` says which once
        the app started) and/or a WebSocket endpoint
        at the path ``websocket``.  The hub starts with the app and is told to close its
        connections (``going_away``) when the server begins draining.  See
        ``cyserve.push.mount``."""
        from cyserve.push.mount import mount
        return mount(self, hub, port=port, host=host, websocket=websocket, ssl=ssl,
                     reuse_port=reuse_port)

    def static(self, prefix: str, directory: str, **options: Any) -> Any:
        """Serve the files under ``directory`` at ``prefix`` (``app.static("/assets", "site/")``).

        ``options`` go to ``cyserve.static.StaticFiles`` (index, follow_symlinks, precompressed,
        chunk_bytes).  ``prefix`` itself redirects to ``prefix + "/"``, where the index is served.
        """
        from cyserve.static import StaticFiles

        files = StaticFiles(directory, **options)
        base = "/" + prefix.strip("/") if prefix.strip("/") else ""
        name = f"static:{base or '/'}"
        self.route(base + "/{path:path}", ("GET", "HEAD"), name=name)(files)
        if base:
            self.route(base, ("GET", "HEAD"), name=name + ":root")(files)
        return files

    def mount(self, prefix: str, app: Callable[..., Awaitable[None]], *, name: str | None = None,
              lifespan: bool = True) -> Any:
        """Serve the ASGI 3 application ``app`` (Starlette, FastAPI...) under ``prefix``, every
        method and WebSocket included, while routes move to this App one by one.

        The mounted app sees ``root_path`` = ``prefix`` and the full ``path`` (ASGI 2.4, as
        Starlette's ``Mount``); this App's global middleware and hooks run for its requests
        too.  With ``lifespan`` its ASGI lifespan runs with this App's (its ``state`` reaching
        its requests).  Returns the route handler (``cyserve.asgi.ASGIMount``); see
        ``cyserve.asgi.mount``.
        """
        self._check_open("mounts")
        from cyserve.asgi.mount import mount
        return mount(self, prefix, app, name=name, lifespan=lifespan)

    def templates(self, directory: str, **options: Any) -> Any:
        """A Jinja2 ``Templates`` over ``directory`` with ``url_for`` available in templates
        (``pip install 'cyserve[templates]'``)."""
        from cyserve.templates import Templates
        templates = Templates(directory, **options)
        templates.env.globals.setdefault("url_for", self.url_for)
        return templates

    # -------------------------------------------------------------- freezing
    def _freeze(self) -> None:
        if self._frozen:
            return
        if self.docs:
            from cyserve.docs import mount_docs
            mount_docs(self)
        # Outermost first; the first registered after hook innermost, so it runs first.
        layers = self._after_hooks[::-1] + self.middlewares + self._before_hooks
        for route in self.router.all_routes():
            if isinstance(route.handler, WebSocketEndpoint):
                route.handler.bind_websocket_limits(self.websocket_limits)
            self._wrap(route, enclosed=bool(layers))
        if self._fallback is not None:
            self._wrap(self._fallback, enclosed=bool(layers))
        self._bind_limits(self.middlewares)
        # Route chains never raise what failures maps (they are guarded), so _routed needs no
        # _catch; handle maps what the outermost layer raises.
        self._outer = compose(layers, self._routed, self._catch) if layers else None
        self._resolve = self.router._table.resolve
        self.router._frozen = True
        self._frozen = True

    def _bind_limits(self, middlewares: Sequence[Middleware]) -> None:
        # A middleware that enforces sizes (Compression decoding request bodies) may take the
        # App's limits: an explicit ``bind_limits(limits)`` method, called once at startup.
        for middleware in middlewares:
            bind = getattr(middleware, "bind_limits", None)
            if bind is not None:
                bind(self.config.limits)

    def _wrap(self, route: Route, *, enclosed: bool) -> None:
        """Compose ``route.chain``; ``enclosed``: global middleware or hooks run outside it."""
        middlewares = route.all_middlewares()
        self._bind_limits(middlewares)
        if not middlewares and not enclosed:
            # Nothing between the endpoint and handle(): handle's error layer maps what the
            # guard would, and _write turns raw results into responses (the module docstring).
            route.chain = route.endpoint
            return
        chain = compose(middlewares, self._guard(route.endpoint), self._catch)
        if middlewares and enclosed:
            chain = self._catch(chain)  # the global layers outside see its errors as responses
        route.chain = chain

    def _guard(self, endpoint: Handler) -> Handler:
        """The layer right around an endpoint that has middleware outside it: the endpoint's
        errors and its result made a response, so every middleware sees a response."""
        response_for = self.failures.response_for

        async def guarded(request: Request) -> BaseResponse:
            try:
                result = await endpoint(request)
                if result is None:
                    result = _prepared(request)
                return to_response(result)  # not a response: a 500 too
            except _UNANSWERABLE:
                raise
            except Exception as exc:
                if request._conn.response_started:
                    raise  # after r.prepare(): no response can follow a half-sent one
                request._background = None  # the handler raised: what it queued does not run
                return await response_for(request, exc)
        return guarded

    def _catch(self, handler: Handler) -> Handler:
        """Around a middleware or hook that another layer encloses: what it raises becomes a
        response here (``failures.response_for``), so the layers outside it see a response."""
        response_for = self.failures.response_for

        async def caught(request: Request) -> BaseResponse:
            try:
                return await handler(request)
            except _UNANSWERABLE:
                raise
            except Exception as exc:
                if request._conn.response_started:
                    raise  # after r.prepare(): no response can follow a half-sent one
                request._background = None  # handling raised: what was queued does not run
                return await response_for(request, exc)
        return caught

    def _resolve_first(self, method: str, path: str) -> tuple[Route, dict[str, Any]]:
        self._freeze()
        return self._resolve(method, path)

    # -------------------------------------------------------------- per request
    async def handle(self, conn: Any, head: Any, body: Any) -> None:
        """Called by the core once per request: route, run the chain, write the response."""
        request = Request(conn, head, body)
        background_owns_files = False
        try:
            # Routing comes first so that the global chain is composed once, around _routed,
            # and still sees every request: 404 and 405 are answered inside it by _unmatched.
            try:
                route, request.path_params = self._resolve(head.method, request.path)
                chain: Handler = route.chain  # type: ignore[assignment]  # _freeze set every chain
            except HTTPError as exc:
                chain = self._unmatched_handler(exc)
            outer = self._outer
            result: Any  # whatever the handler returned: any result to_response takes
            if outer is None:
                result = await chain(request)
            else:
                request._chain = chain
                result = await outer(request)
            # The common results go to the writer without a Response object made for them.
            kind = type(result)
            if kind is Response:
                conn.respond(result.status, result.headers, result.body, result.content_type)
            elif kind is dict or kind is list:
                conn.respond(200, None, dumps(result), _JSON)
            elif kind is str:
                conn.respond(200, None, result.encode("utf-8"), _TEXT)
            else:
                if result is None:
                    result = _prepared(request)
                pending = _write(result, conn, head.method)
                if pending is not None:
                    await pending
        except _UNANSWERABLE:
            raise  # the core answers these with their status and closes
        except Exception as exc:
            if conn.response_started:
                raise  # the core closes: framing of a half-sent response can't be trusted
            pending = _write(await self.failures.response_for(request, exc), conn, head.method)
            if pending is not None:
                await pending
        else:
            background = request._background  # request.background() fills it
            if background:
                background_owns_files = request._form is not None
                self.lifecycle.run_background(
                    background, request._close_form if background_owns_files else None)
        finally:
            # Without this a request's spooled uploads stay open (their temporary files on
            # disk) until the cyclic GC happens to collect them.
            if request._form is not None and not background_owns_files:
                request._close_form()

    @staticmethod
    def _routed(request: Request) -> Awaitable[Any]:
        """The innermost handler of the global chain: the chain ``handle`` routed the request to.
        A plain function, not a coroutine: the hop costs a call, not a frame."""
        return request._chain(request)

    def _unmatched_handler(self, exc: HTTPError) -> Handler:
        """The chain for a request that matched no route: ``_unmatched`` with its 404 or 405."""
        return lambda request: self._unmatched(request, exc)

    async def _unmatched(self, request: Request, exc: HTTPError) -> Any:
        """404/405: ``OPTIONS *``, the trailing-slash redirect, the fallback, or the error."""
        if exc.status == 404:
            if request.method == "OPTIONS" and request.raw_path == "*":  # RFC 9110 §9.3.7
                return Response(b"", 204, [("Allow", _ALL_METHODS)])
            location = self._slash_redirect(request)
            if location is not None:
                return Response(b"", 308, [("Location", location)])
            if self._fallback is not None:
                chain = self._fallback.chain
                assert chain is not None, "the App is frozen before any request"
                return await chain(request)
        # response_for, not handled: a registered 404 handler that fails is answered 500 here.
        return await self.failures.response_for(request, exc)

    def _slash_redirect(self, request: Request) -> str | None:
        if not self.redirect_slashes:
            return None
        raw, path = request.raw_path, request.path
        if raw.endswith("/"):
            if raw == "/" or not path.endswith("/"):
                return None
            target, other = raw[:-1], path[:-1]
        else:
            target, other = raw + "/", path + "/"
        # "//host" or "/\host" in Location is another site to a browser: never redirect there.
        if target.startswith(("//", "/\\")) or not self.router.matches_path(other):
            return None
        query = request.query_string
        return target + "?" + query if query else target

    # -------------------------------------------------------------- running
    def run(self, host: str = "127.0.0.1", port: int = 8000, **options: Any) -> None:
        """Serve this App until SIGINT/SIGTERM, then drain (a second SIGINT stops at once).

        ``workers=N`` forks N processes serving it on one socket, under a supervisor that
        replaces dead or hung workers and restarts them one by one on SIGHUP
        (``cyserve.server.workers``).  Any ``RunConfig`` field is a keyword too
        (``timeout_graceful_shutdown=``, ``uds=``, ``limit_max_requests=``, ``loop="asyncio"``...),
        as are ``ssl=`` (an ``SSLContext``) and ``reuse_port=True``.  ``reload=True`` is refused:
        reloading re-imports the module, so run ``cyserve module:app --reload``.

        If the server cannot start (a startup hook raises, the address is taken...), one line
        says why and the process exits with status 3 (``SystemExit``).
        """
        from cyserve.config import RunConfig
        from cyserve.server.workers import launch

        if options.get("reload"):
            raise ValueError("App.run cannot reload an App object (reloading re-imports its "
                             "module): run `cyserve module:app --reload` instead")
        for name in ("app", "factory", "app_dir"):
            if name in options:
                raise TypeError(f"App.run serves this App: {name}= is for the cyserve command")
        ssl = options.pop("ssl", None)
        reuse_port = bool(options.pop("reuse_port", False))
        config = RunConfig(host=host, port=port, **options)
        code = launch(config, self, ssl=ssl, reuse_port=reuse_port)
        if code:
            raise SystemExit(code)


def _adapt_after(hook: Callable[..., Any]) -> Callable[..., Any]:
    """Blazeio's ``after_middleware(r)`` takes only the request."""
    import inspect
    try:
        if len(inspect.signature(hook).parameters) >= 2:
            return hook
    except (TypeError, ValueError):
        return hook
    if inspect.iscoroutinefunction(hook):
        async def call(request: Request, response: BaseResponse | None) -> Any:
            return await hook(request)
        return call
    return lambda request, response: hook(request)


def _prepared(request: Request) -> BaseResponse | None:
    """What a handler that returned None answered: the response it wrote itself with
    ``r.prepare()``/``r.write()`` (Blazeio's spelling), else None (a 204)."""
    try:
        return request._prepared
    except AttributeError:
        return None


def _write(result: Any, conn: Any, method: str) -> Awaitable[None] | None:
    """Turn what a chain returned into a response and write it: a whole body now (``None``
    returned); a produced body by the awaitable returned."""
    response = to_response(result)
    if type(response).send is _WHOLE_SEND:  # a whole body: no coroutine for send()
        # A whole-body send is Response's: the response has a body.
        conn.respond(response.status, response.headers, response.body,  # type: ignore[attr-defined]
                     response.content_type)
        return None
    if method == "HEAD" and isinstance(response, _PRODUCED):
        return _send_head_only(response, conn)
    return response.send(conn)


async def _send_head_only(response: Any, conn: Any) -> None:
    """HEAD for a produced body (RFC 9110 §9.3.2): the same head as GET, and the producer is
    closed unread, so an endless stream (SSE) does not run for a request that wants no body."""
    length = getattr(response, "content_length", None)
    conn.start_stream(response.status, response.headers, response.content_type,
                      -1 if length is None else length)
    conn.end_stream()
    content = getattr(response, "content", None)
    close = getattr(content, "aclose", None)
    if close is not None:
        await close()
    else:
        close = getattr(content, "close", None)
        if close is not None:
            close()
