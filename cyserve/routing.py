"""Router: routes bound to handlers, collected by nestable routers with their middleware.

A ``Route`` binds a path template and a method set to a handler, called with what its signature
declares: path parameters (an ``int``/``float``/``UUID`` annotation is the parameter's
converter), query, header, cookie and body values (``cyserve.binding``, read once per route).
How templates are parsed and matched (exact paths from a dict, parametrised paths in a segment
trie, 404 and 405 in one pass, HEAD and OPTIONS) is ``_trie``'s job; ``Router.resolve`` hands
the look-up to it.

``Router(prefix)`` collects routes (``websocket(path)`` adds a WebSocket one: a GET route whose
handler is a ``cyserve.websocket.WebSocketEndpoint``); ``group(prefix, middlewares)`` and
``include_router`` nest routers.  An included router stays live: routes added to it later appear
in every router that includes it.  Middleware of a router applies to all of its routes, also
those added before the middleware; nothing is wrapped until the App starts.  ``@route...`` marks
methods of a class as routes and ``class_routes`` collects them.
"""
from __future__ import annotations

import inspect
import re
from typing import Any, Awaitable, Callable, Iterable, Iterator, Sequence, TypeVar
from urllib.parse import quote, urlencode

from cyserve._trie import TEMPLATE_PARAM, _parse, _Resource, _Table
from cyserve.binding import Plan, endpoint, path_kinds, plan
from cyserve.config import WebSocketLimits
from cyserve.response import Response
from cyserve.websocket import WebSocketEndpoint

__all__ = ["Route", "Router", "route"]

Handler = Callable[..., Awaitable[Any]]
# What the route decorators take and give back unchanged: the handler keeps its own type (its
# parameters and return annotation), so a typed handler type-checks under mypy --strict.
HandlerT = TypeVar("HandlerT", bound=Callable[..., Any])
Middleware = Callable[[Any], Any]

_ANY_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class Route:
    """One template and method set bound to a handler.

    ``params`` maps each path parameter to its converter: the template's, or the one the
    handler's annotation implies (``binding.path_kinds``: ``{id}`` with ``id: int`` is
    ``{id:int}``), so the table matches what the handler declared.  ``plan`` (how the handler's
    parameters are bound, ``binding.plan``) and ``endpoint`` (the handler called with them) are
    made on first use, when the App starts: once per route, and after the module that defines the
    handler's models has run.  ``chain`` is the endpoint wrapped in its middleware, set by the App.
    ``status_code`` is the status of a returned dict, list, model, str, bytes or None.
    """

    __slots__ = ("path", "handler", "methods", "name", "params", "scopes", "middlewares",
                 "include_in_schema", "chain", "tags", "status_code", "_plan", "_endpoint")

    def __init__(self, path: str, handler: Handler, methods: Iterable[str], name: str | None = None,
                 middlewares: Sequence[Middleware] = (), scopes: tuple[Router, ...] = (),
                 include_in_schema: bool = True, tags: Sequence[str] = (),
                 status_code: int | None = None) -> None:
        if not path.startswith("/"):
            raise ValueError(f"route path must start with '/': {path!r}")
        if status_code is not None and (type(status_code) is not int or not 100 <= status_code <= 599):
            raise ValueError(f"status_code must be an int from 100 to 599, not {status_code!r}")
        self.path = path
        self.handler = handler
        self.methods = frozenset(m.upper() for m in methods)
        if not self.methods:
            raise ValueError(f"route {path!r} needs at least one method")
        self.name: str = name or str(getattr(handler, "__name__", path))
        _parse(path)  # the template checked before the handler's annotations are read
        self.params = path_kinds(handler, path)
        self.scopes = scopes
        self.middlewares = tuple(middlewares)
        self.include_in_schema = include_in_schema
        self.tags = tuple(tags)
        self.status_code = status_code
        self.chain: Handler | None = None
        self._plan: Plan | None = None
        self._endpoint: Handler | None = None

    @property
    def plan(self) -> Plan:
        """How the handler's parameters are bound (resolved on first use; ``TypeError`` for a
        parameter that cannot be)."""
        if self._plan is None:
            self._plan = plan(self.handler, self.path, self.params, self.status_code)
        return self._plan

    @property
    def endpoint(self) -> Handler:
        """``request -> awaitable``: the handler called with what it declares (``binding``)."""
        if self._endpoint is None:
            self._endpoint = endpoint(self.handler, self.plan)
        return self._endpoint

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


class MethodShortcuts:
    """``get``, ``post``, ``put``, ``patch``, ``delete``, ``head`` and ``options`` as
    ``route(path, (METHOD,), ...)``; ``api_route`` (FastAPI's and AstraAPI's name) and
    ``register`` (PyLiteFlux's) are ``route`` under other names.  A ``head`` or ``options`` route
    replaces what the table answers for that method by itself (GET's handler for HEAD, the
    automatic 204 with ``Allow`` for OPTIONS).

    ``status_code`` (FastAPI's spelling) is the status of a returned dict, list, model, str,
    bytes or None, and the one the API docs show."""

    def route(self, path: str, methods: Sequence[str] = ("GET",), name: str | None = None, *,
              middlewares: Sequence[Middleware] = (), status_code: int | None = None
              ) -> Callable[[HandlerT], HandlerT]:
        raise NotImplementedError

    def _shortcut(self, path: str, method: str, name: str | None, middlewares: Sequence[Middleware],
                  status_code: int | None) -> Callable[[HandlerT], HandlerT]:
        return self.route(path, (method,), name, middlewares=middlewares, status_code=status_code)

    def get(self, path: str, name: str | None = None, *, middlewares: Sequence[Middleware] = (),
            status_code: int | None = None) -> Callable[[HandlerT], HandlerT]:
        return self._shortcut(path, "GET", name, middlewares, status_code)

    def post(self, path: str, name: str | None = None, *, middlewares: Sequence[Middleware] = (),
             status_code: int | None = None) -> Callable[[HandlerT], HandlerT]:
        return self._shortcut(path, "POST", name, middlewares, status_code)

    def put(self, path: str, name: str | None = None, *, middlewares: Sequence[Middleware] = (),
            status_code: int | None = None) -> Callable[[HandlerT], HandlerT]:
        return self._shortcut(path, "PUT", name, middlewares, status_code)

    def patch(self, path: str, name: str | None = None, *, middlewares: Sequence[Middleware] = (),
              status_code: int | None = None) -> Callable[[HandlerT], HandlerT]:
        return self._shortcut(path, "PATCH", name, middlewares, status_code)

    def delete(self, path: str, name: str | None = None, *, middlewares: Sequence[Middleware] = (),
               status_code: int | None = None) -> Callable[[HandlerT], HandlerT]:
        return self._shortcut(path, "DELETE", name, middlewares, status_code)

    def head(self, path: str, name: str | None = None, *, middlewares: Sequence[Middleware] = (),
             status_code: int | None = None) -> Callable[[HandlerT], HandlerT]:
        return self._shortcut(path, "HEAD", name, middlewares, status_code)

    def options(self, path: str, name: str | None = None, *, middlewares: Sequence[Middleware] = (),
                status_code: int | None = None) -> Callable[[HandlerT], HandlerT]:
        return self._shortcut(path, "OPTIONS", name, middlewares, status_code)

    def api_route(self, path: str, methods: Sequence[str] | None = None, name: str | None = None, *,
                  middlewares: Sequence[Middleware] = (), status_code: int | None = None
                  ) -> Callable[[HandlerT], HandlerT]:
        """``route`` under FastAPI's name; ``methods`` defaults to GET, as there."""
        return self.route(path, ("GET",) if methods is None else methods, name,
                          middlewares=middlewares, status_code=status_code)

    def register(self, path: str, method: str = "GET", protocol: str = "http", *,
                 name: str | None = None, middlewares: Sequence[Middleware] = (),
                 status_code: int | None = None) -> Callable[[HandlerT], HandlerT]:
        """PyLiteFlux's ``@Route.register(path, method="GET")``: one method per decorator, any
        method (PyLiteFlux raised ``KeyError`` for PATCH).  ``protocol="tcp"`` commands are not
        HTTP routes: ``ValueError``."""
        if protocol != "http":
            raise ValueError(f"register(protocol={protocol!r}): only HTTP routes are registered "
                             "here; TCP commands are not routes of an App or Router")
        return self._shortcut(path, method.upper(), name, middlewares, status_code)


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
            *, middlewares: Sequence[Middleware] = (), include_in_schema: bool = True,
            status_code: int | None = None) -> Route:
        full = self.prefix + path if path != "/" or not self.prefix else self.prefix
        route = Route(full, handler, methods, name, middlewares, (self,), include_in_schema, self.tags,
                      status_code)
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
              middlewares: Sequence[Middleware] = (), status_code: int | None = None,
              include_in_schema: bool = True) -> Callable[[HandlerT], HandlerT]:
        def register(handler: HandlerT) -> HandlerT:
            self.add(path, handler, methods, name, middlewares=middlewares, status_code=status_code,
                     include_in_schema=include_in_schema)
            return handler
        return register

    def websocket(self, path: str, *, limits: WebSocketLimits | None = None, name: str | None = None,
                  middlewares: Sequence[Middleware] = ()) -> Callable[[HandlerT], HandlerT]:
        """``@router.websocket(path)``: a WebSocket route (``cyserve.websocket``).

        A GET route whose handler takes the ``WebSocket`` first, then path and query parameters
        as any handler does; its middleware and the App's ``before`` hooks run before it, so
        they can refuse the upgrade.  ``limits``: this route's ``WebSocketLimits`` (default:
        the App's).  Left out of the OpenAPI document."""
        def register(handler: HandlerT) -> HandlerT:
            self.add(path, WebSocketEndpoint(handler, limits), ("GET",), name, middlewares=middlewares,
                     include_in_schema=False)
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
        path = TEMPLATE_PARAM.sub(fill, route.path)
        extra = {k: v for k, v in params.items() if k not in used}
        return path + "?" + urlencode(extra, doseq=True) if extra else path


class _RouteMark(MethodShortcuts):
    """``@route.get(path)`` (and ``post``, ``put``, ``patch``, ``delete``, ``route(path, methods)``)
    marks a method of a class as a route; ``app.attach(obj)`` registers the bound methods."""

    def route(self, path: str, methods: Sequence[str] = ("GET",), name: str | None = None, *,
              middlewares: Sequence[Middleware] = (), status_code: int | None = None
              ) -> Callable[[HandlerT], HandlerT]:
        if status_code is not None:  # app.attach registers (path, fn, methods, name, middlewares)
            raise TypeError("status_code is not supported on class routes; return (body, status)")

        def mark(fn: HandlerT) -> HandlerT:
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
