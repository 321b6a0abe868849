"""Router: routes bound to handlers, collected by nestable routers with their middleware.

A ``Route`` binds a path template and a method set to a handler (called with the path
parameters it declares).  How templates are parsed and matched (exact paths from a dict,
parametrised paths in a segment trie, 404 and 405 in one pass, HEAD and OPTIONS) is ``_trie``'s
job; ``Router.resolve`` hands the look-up to it.

``Router(prefix)`` collects routes; ``group(prefix, middlewares)`` and ``include_router`` nest
routers.  An included router stays live: routes added to it later appear in every router that
includes it.  Middleware of a router applies to all of its routes, also those added before the
middleware; nothing is wrapped until the App starts.  ``@route...`` marks methods of a class as
routes and ``class_routes`` collects them.
"""
from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import re
from typing import Any, Awaitable, Callable, Iterable, Iterator, Sequence
from urllib.parse import quote, urlencode

from cyserve._trie import CONVERTERS as CONVERTERS  # re-exported: docs.openapi imports it from here
from cyserve._trie import _PARAM, _parse, _Resource, _Table
from cyserve.response import Response

__all__ = ["Route", "Router", "route"]

Handler = Callable[..., Awaitable[Any]]
Middleware = Callable[[Any], Any]

_ANY_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class Route:
    """One template and method set bound to a handler.

    ``endpoint`` calls the handler (with path parameters as keyword arguments when its signature
    declares them); ``chain`` is the endpoint wrapped in its middleware, set when the App starts.
    """

    __slots__ = ("path", "handler", "methods", "name", "params", "scopes", "middlewares",
                 "include_in_schema", "endpoint", "chain", "tags")

    def __init__(self, path: str, handler: Handler, methods: Iterable[str], name: str | None = None,
                 middlewares: Sequence[Middleware] = (), scopes: tuple[Router, ...] = (),
                 include_in_schema: bool = True, tags: Sequence[str] = ()) -> None:
        if not path.startswith("/"):
            raise ValueError(f"route path must start with '/': {path!r}")
        self.path = path
        self.handler = handler
        self.methods = frozenset(m.upper() for m in methods)
        if not self.methods:
            raise ValueError(f"route {path!r} needs at least one method")
        self.name = name or getattr(handler, "__name__", path)
        self.params = {name: kind for _, _, name, kind in _parse(path)}
        self.scopes = scopes
        self.middlewares = tuple(middlewares)
        self.include_in_schema = include_in_schema
        self.tags = tuple(tags)
        self.endpoint = _endpoint(handler, self.params, path)
        self.chain: Handler | None = None

    def moved(self, prefix: str, scope: Router) -> Route:
        """This route as seen by a router that includes its router under ``prefix``."""
        copy = Route.__new__(Route)
        for slot in Route.__slots__:
            setattr(copy, slot, getattr(self, slot))
        copy.path = prefix + self.path if self.path != "/" or not prefix else prefix
        copy.scopes = (scope, *self.scopes)
        return copy

    def all_middlewares(self) -> list[Middleware]:
        """Outermost first: enclosing routers, then the route's own."""
        return [mw for scope in self.scopes for mw in scope.middlewares] + list(self.middlewares)

    def options_for(self, resource: _Resource) -> Route:
        """The automatic OPTIONS route of ``resource``: 204 with its ``Allow`` (RFC 9110 §9.3.7),
        behind this route's middleware."""
        async def options(request: Any) -> Response:
            return Response(b"", 204, [("Allow", resource.allow)])
        return Route(self.path, options, ("OPTIONS",), "options", self.middlewares, self.scopes,
                     include_in_schema=False)

    def __repr__(self) -> str:
        return f"<Route {'|'.join(sorted(self.methods))} {self.path} -> {self.name}>"


def _endpoint(handler: Handler, params: dict[str, str], path: str) -> Handler:
    """``request -> awaitable``: the handler, passed the path parameters it declares by name.

    The signature is read once here.  Sync handlers run in the default thread pool, in a copy of
    the request's context, so they never block the loop.
    """
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):  # builtins and some callables have none: call as is
        return handler
    positional = [p for p in signature.parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not positional and not any(p.kind is p.VAR_POSITIONAL for p in signature.parameters.values()):
        raise ValueError(f"handler {getattr(handler, '__qualname__', handler)!r} must take the request")
    takes_all = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    wanted = [p.name for p in list(signature.parameters.values())[1:]
              if p.name in params and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for p in positional[1:] + [p for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY]:
        if p.default is p.empty and p.name not in params:
            raise ValueError(f"handler {getattr(handler, '__qualname__', handler)!r} needs "
                             f"{p.name!r}, which is not a parameter of {path!r}")
    if not inspect.iscoroutinefunction(handler) and not inspect.iscoroutinefunction(
            getattr(handler, "__call__", None)):
        handler = _in_thread(handler)
    if takes_all or (params and len(wanted) == len(params)):
        return lambda request: handler(request, **request.path_params)
    if wanted:
        names = tuple(wanted)
        return lambda request: handler(request, **{k: request.path_params[k] for k in names})
    return handler


def _in_thread(fn: Callable[..., Any]) -> Handler:
    async def call(request: Any, **kwargs: Any) -> Any:
        ctx = contextvars.copy_context()
        result = await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(ctx.run, fn, request, **kwargs))
        if inspect.isawaitable(result):  # a plain function that returns a coroutine
            result = await result
        return result
    call.__name__ = getattr(fn, "__name__", "handler")
    call.__doc__ = fn.__doc__
    return call


class MethodShortcuts:
    """``get``, ``post``, ``put``, ``patch`` and ``delete`` as ``route(path, (METHOD,), ...)``."""

    def route(self, path: str, methods: Sequence[str] = ("GET",), name: str | None = None, *,
              middlewares: Sequence[Middleware] = ()) -> Callable[[Handler], Handler]:
        raise NotImplementedError

    def get(self, path: str, name: str | None = None, *, middlewares: Sequence[Middleware] = ()
            ) -> Callable[[Handler], Handler]:
        return self.route(path, ("GET",), name, middlewares=middlewares)

    def post(self, path: str, name: str | None = None, *, middlewares: Sequence[Middleware] = ()
             ) -> Callable[[Handler], Handler]:
        return self.route(path, ("POST",), name, middlewares=middlewares)

    def put(self, path: str, name: str | None = None, *, middlewares: Sequence[Middleware] = ()
            ) -> Callable[[Handler], Handler]:
        return self.route(path, ("PUT",), name, middlewares=middlewares)

    def patch(self, path: str, name: str | None = None, *, middlewares: Sequence[Middleware] = ()
              ) -> Callable[[Handler], Handler]:
        return self.route(path, ("PATCH",), name, middlewares=middlewares)

    def delete(self, path: str, name: str | None = None, *, middlewares: Sequence[Middleware] = ()
               ) -> Callable[[Handler], Handler]:
        return self.route(path, ("DELETE",), name, middlewares=middlewares)


class Router(MethodShortcuts):
    """A set of routes under ``prefix``, with middleware for all of them.

    ``@router.get(path)``, ``router.add(path, handler, methods)``, ``router.use(middleware)``,
    ``router.group(prefix, middlewares=[...])`` (a sub-router that is reachable at once),
    ``router.include_router(other, prefix="")``, ``router.resolve(method, path)`` and
    ``router.url_for(name, **params)``.
    """

    def __init__(self, prefix: str = "", *, middlewares: Sequence[Middleware] = (),
                 tags: Sequence[str] = ()) -> None:
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError(f"a router prefix starts with '/' and does not end with one: {prefix!r}")
        self.prefix = prefix
        self.middlewares: list[Middleware] = list(middlewares)
        self.tags = tuple(tags)
        self._table = _Table()
        self._own: list[Route] = []
        self._parents: list[tuple[Router, str]] = []
        self._frozen = False

    # -------------------------------------------------------------- registration
    def add(self, path: str, handler: Handler, methods: Sequence[str] = ("GET",), name: str | None = None,
            *, middlewares: Sequence[Middleware] = (), include_in_schema: bool = True) -> Route:
        full = self.prefix + path if path != "/" or not self.prefix else self.prefix
        route = Route(full, handler, methods, name, middlewares, (self,), include_in_schema, self.tags)
        self._own.append(route)
        self._register(route)
        return route

    def _register(self, route: Route) -> None:
        if self._frozen:
            raise RuntimeError("routes must be added before the app starts")
        self._table.add(route)
        for parent, prefix in self._parents:
            parent._register(route.moved(prefix, parent))

    def route(self, path: str, methods: Sequence[str] = ("GET",), name: str | None = None, *,
              middlewares: Sequence[Middleware] = ()) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.add(path, handler, methods, name, middlewares=middlewares)
            return handler
        return register

    def use(self, middleware: Middleware) -> Middleware:
        """Add a middleware for every route of this router (also those already added)."""
        if self._is_frozen():
            raise RuntimeError("middleware must be added before the app starts")
        self.middlewares.append(middleware)
        return middleware

    def group(self, prefix: str, middlewares: Sequence[Middleware] = (), *, tags: Sequence[str] = ()
              ) -> Router:
        """A sub-router under ``prefix`` whose routes are reachable here at once."""
        child = Router(prefix, middlewares=middlewares, tags=tags or self.tags)
        self.include_router(child)
        return child

    def include_router(self, router: Router, *, prefix: str = "") -> None:
        """Serve ``router``'s routes (now and later ones) here, under ``prefix``."""
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError(f"a prefix starts with '/' and does not end with one: {prefix!r}")
        if router is self or router in self._ancestors():
            raise ValueError("a router cannot include itself")
        full = self.prefix + prefix
        router._parents.append((self, full))
        for route in router._table.routes:
            self._register(route.moved(full, self))

    def _ancestors(self) -> Iterator[Router]:
        for parent, _ in self._parents:
            yield parent
            yield from parent._ancestors()

    def _is_frozen(self) -> bool:
        return self._frozen or any(r._frozen for r in self._ancestors())

    # -------------------------------------------------------------- lookup
    @property
    def routes(self) -> list[Route]:
        """Every route reachable through this router, in registration order."""
        return list(self._table.routes)

    def all_routes(self) -> Iterator[Route]:
        """Every route the App must wrap: the registered ones and the automatic OPTIONS ones."""
        yield from self._table.routes
        for resource in self._table.resources:
            if resource.options is not None:
                yield resource.options

    def resolve(self, method: str, path: str) -> tuple[Route, dict[str, Any]]:
        """The route for ``method`` and ``path`` and its converted parameters; raises
        ``NotFound`` or ``MethodNotAllowed`` (with ``Allow``)."""
        return self._table.resolve(method, path)

    def matches_path(self, path: str) -> bool:
        return self._table.matches_path(path)

    def url_for(self, name: str, **params: Any) -> str:
        """The path of route ``name`` with ``params`` filled in (percent-encoded); parameters the
        template does not name go to the query string."""
        route = self._table.by_name.get(name)
        if route is None:
            raise KeyError(f"no route named {name!r}")
        used: set[str] = set()

        def fill(m: re.Match[str]) -> str:
            key = m.group(1) or m.group(3)
            if key not in params:
                raise KeyError(f"route {name!r} needs parameter {key!r}")
            used.add(key)
            return quote(str(params[key]), safe="/" if (m.group(2) == "path") else "")
        path = _PARAM.sub(fill, route.path)
        extra = {k: v for k, v in params.items() if k not in used}
        return path + "?" + urlencode(extra, doseq=True) if extra else path


class _RouteMark(MethodShortcuts):
    """``@route.get(path)`` (and ``post``, ``put``, ``patch``, ``delete``, ``route(path, methods)``)
    marks a method of a class as a route; ``app.attach(obj)`` registers the bound methods."""

    def route(self, path: str, methods: Sequence[str] = ("GET",), name: str | None = None, *,
              middlewares: Sequence[Middleware] = ()) -> Callable[[Handler], Handler]:
        def mark(fn: Handler) -> Handler:
            marks = fn.__dict__.setdefault("_cyserve_routes", [])
            marks.append((path, tuple(methods), name, tuple(middlewares)))
            return fn
        return mark

    __call__ = route

route = _RouteMark()


ClassRoute = tuple[str, Handler, tuple[str, ...], "str | None", tuple[Middleware, ...]]


def class_routes(obj: Any) -> Iterator[ClassRoute]:
    """(path, bound method, methods, name, middlewares) for each route of an attached object.

    Methods marked with ``@route...`` are routes; so are Blazeio-style methods whose name starts
    with one ``_`` and whose first parameter is ``r``: ``_api_ip`` serves ``/api/ip``,
    ``__dot__`` in a name is a ``.``, and a ``route="/x"`` default overrides the path.  Those
    answer GET, POST, PUT, PATCH and DELETE (Blazeio routes see every method).
    """
    seen: set[str] = set()
    for cls in type(obj).__mro__:
        for attr, raw in vars(cls).items():
            if attr in seen or not callable(raw) and not isinstance(raw, (staticmethod, classmethod)):
                continue
            seen.add(attr)
            fn = getattr(obj, attr)
            marks = getattr(fn, "_cyserve_routes", None)
            if marks:
                for path, methods, name, mws in marks:
                    yield path, fn, methods, name, mws
            elif attr.startswith("_") and not attr.startswith("__") and _first_param(fn) == "r":
                default = inspect.signature(fn).parameters.get("route")
                if default is not None and isinstance(default.default, str):
                    path = default.default
                else:
                    path = attr.replace("__dot__", ".").replace("_", "/")
                yield path, fn, _ANY_METHODS, attr, ()


def _first_param(fn: Any) -> str | None:
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return None
    return params[0] if params else None
