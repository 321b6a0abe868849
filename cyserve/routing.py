"""Router: exact paths from a dict, parametrised paths in a segment trie; 404 and 405 in one pass.

Templates: ``/users/{id}`` or Areion's ``/users/:id`` (the same thing), with converters
``{id:int}``, ``{x:float}``, ``{u:uuid}`` and ``{rest:path}`` (may contain ``/``; only at the end
of a template).  A segment may mix text and parameters (``/files/{name}.{ext}``).

Matching, in this order of precedence:
1. the exact path (a dict look-up, O(1));
2. the trie, one level per ``/`` segment: a literal segment beats a parameter, parameters are
   tried in registration order, a trailing ``{x:path}`` last; a converter that refuses a segment
   (``{id:int}`` and ``abc``) makes the walk backtrack and try the next candidate, so
   ``/a/b/c`` and ``/a/{x}/d`` both resolve.  Cost grows with the path's depth and the branching
   at each level, not with the number of routes.

A path that matches with the wrong method is a 405 whose ``Allow`` lists every method of every
template that matched (RFC 9110 §15.5.6, §10.2.1), HEAD included where GET is.  HEAD is answered
by GET routes unless a HEAD route exists (RFC 9110 §9.3.2); OPTIONS is answered with 204 and
``Allow`` unless an OPTIONS route exists (RFC 9110 §9.3.7).  Paths are matched percent-decoded
(so ``%2F`` separates segments, as in Starlette).

``Router(prefix)`` collects routes; ``group(prefix, middlewares)`` and ``include_router`` nest
routers.  An included router stays live: routes added to it later appear in every router that
includes it.  Middleware of a router applies to all of its routes, also those added before the
middleware; nothing is wrapped until the App starts.
"""
from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import re
import uuid
from typing import Any, Awaitable, Callable, Iterable, Iterator, Sequence
from urllib.parse import quote, urlencode

from cyserve.errors import MethodNotAllowed, NotFound
from cyserve.response import Response

__all__ = ["Route", "Router", "route"]

Handler = Callable[..., Awaitable[Any]]
Middleware = Callable[[Any], Any]

# converter -> (regex for one value, Python conversion, OpenAPI schema)
CONVERTERS: dict[str, tuple[str, Callable[[str], Any], dict[str, str]]] = {
    "str": (r"[^/]+", str, {"type": "string"}),
    "int": (r"-?[0-9]+", int, {"type": "integer"}),
    "float": (r"-?[0-9]+(?:\.[0-9]+)?", float, {"type": "number"}),
    "uuid": (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", uuid.UUID,
             {"type": "string", "format": "uuid"}),
    "path": (r".*", str, {"type": "string"}),
}
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?\}|:([A-Za-z_][A-Za-z0-9_]*)")
_ANY_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _parse(path: str) -> list[tuple[int, int, str, str]]:
    """(start, end, name, converter) of each parameter in a template, checked."""
    found = []
    for m in _PARAM.finditer(path):
        name, kind = m.group(1) or m.group(3), m.group(2) or "str"
        if kind not in CONVERTERS:
            raise ValueError(f"unknown converter {kind!r} in route {path!r}")
        if any(name == other for _, _, other, _ in found):
            raise ValueError(f"parameter {name!r} appears twice in route {path!r}")
        if kind == "path" and m.end() != len(path):
            raise ValueError(f"{{{name}:path}} must end the route template: {path!r}")
        found.append((m.start(), m.end(), name, kind))
    return found


class Route:
    """One template and method set bound to a handler.

    ``endpoint`` calls the handler (with path parameters as keyword arguments when its signature
    declares them); ``chain`` is the endpoint wrapped in its middleware, set when the App starts;
    ``fast`` means no middleware, so the App may call ``endpoint`` directly.
    """

    __slots__ = ("path", "handler", "methods", "name", "params", "scopes", "middlewares",
                 "include_in_schema", "endpoint", "chain", "fast", "tags")

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
        self.fast = False

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


class _Resource:
    """The routes of one template (or one exact path), by method; ``allow`` is its Allow value."""

    __slots__ = ("methods", "allow", "options")

    def __init__(self) -> None:
        self.methods: dict[str, Route] = {}
        self.allow = ""
        self.options: Route | None = None

    def add(self, route: Route) -> None:
        for method in route.methods:
            if method in self.methods:
                raise ValueError(f"{method} {route.path} is already routed to "
                                 f"{self.methods[method].handler!r}")
        for method in route.methods:
            self.methods[method] = route
        if self.options is None:  # answers OPTIONS with the middleware of the first route here
            resource = self

            async def options(request: Any) -> Response:
                return Response(b"", 204, [("Allow", resource.allow)])
            self.options = Route(route.path, options, ("OPTIONS",), "options", route.middlewares,
                                 route.scopes, include_in_schema=False)
        self.allow = ", ".join(sorted(_allowed(self.methods)))

    def pick(self, method: str) -> Route | None:
        route = self.methods.get(method)
        if route is None:
            if method == "HEAD":
                return self.methods.get("GET")
            if method == "OPTIONS":
                return self.options
        return route


def _allowed(methods: Iterable[str]) -> set[str]:
    # OPTIONS is always answered but not listed, as Starlette and most servers do.
    allowed = set(methods)
    if "GET" in allowed:
        allowed.add("HEAD")
    return allowed


_SEGMENT, _INT, _REGEX = 0, 1, 2  # how an edge matches: any non-empty segment, an int, a regex


class _Edge:
    """One parametrised step of the trie: a whole segment, part of one, or the rest of the path."""

    __slots__ = ("key", "kind", "name", "regex", "names", "converts", "node", "tail")

    def __init__(self, key: str, template: str, params: list[tuple[int, int, str, str]], base: int,
                 tail: bool) -> None:
        self.key = key
        self.tail = tail
        self.names = tuple(name for _, _, name, _ in params)
        self.name = self.names[0]
        self.converts = tuple(CONVERTERS[kind][1] for _, _, _, kind in params)
        self.node = _Node()
        self.regex: re.Pattern[str] | None = None
        whole = len(params) == 1 and params[0][0] == base and params[0][1] == base + len(template)
        # The two commonest whole-segment converters are checked without a regex.
        if whole and not tail and params[0][3] in ("str", "int"):
            self.kind = _SEGMENT if params[0][3] == "str" else _INT
        else:
            self.kind = _REGEX
            parts, last = [], base
            for start, end, name, kind in params:
                parts.append(re.escape(template[last - base:start - base]))
                parts.append(f"({CONVERTERS[kind][0]})")
                last = end
            parts.append(re.escape(template[last - base:]))
            self.regex = re.compile("".join(parts))

    def match(self, text: str) -> list[tuple[str, Any]] | None:
        """The (name, converted value) pairs when ``text`` fits this edge's regex."""
        assert self.regex is not None
        m = self.regex.fullmatch(text)
        if m is None:
            return None
        try:
            return [(name, convert(value))
                    for name, convert, value in zip(self.names, self.converts, m.groups())]
        except ValueError:
            return None


def _as_int(segment: str) -> int | None:
    """``-?[0-9]+`` as an int, else None (str.isdigit alone would accept other Unicode digits)."""
    digits = segment[1:] if segment[:1] == "-" else segment
    if digits.isascii() and digits.isdigit():
        return int(segment)
    return None


class _Node:
    __slots__ = ("static", "edges", "resource")

    def __init__(self) -> None:
        self.static: dict[str, _Node] = {}
        self.edges: list[_Edge] = []  # segment edges in registration order, tails after them
        self.resource: _Resource | None = None


class _Table:
    """Every route reachable through one router, indexed for matching."""

    def __init__(self) -> None:
        self.exact: dict[str, _Resource] = {}
        self.root = _Node()
        self.by_name: dict[str, Route] = {}
        self.routes: list[Route] = []
        self.resources: list[_Resource] = []

    def add(self, route: Route) -> None:
        params = _parse(route.path)
        if not params:
            resource = self.exact.get(route.path)
            if resource is None:
                resource = self.exact[route.path] = _Resource()
                self.resources.append(resource)
        else:
            resource = self._node_for(route.path, params)
        resource.add(route)
        self.routes.append(route)
        self.by_name.setdefault(route.name, route)

    def _node_for(self, path: str, params: list[tuple[int, int, str, str]]) -> _Resource:
        node, offset = self.root, 1
        for segment in path[1:].split("/"):
            end = offset + len(segment)
            inside = [p for p in params if offset <= p[0] < end]
            if inside and inside[-1][3] == "path":  # the rest of the path, from this segment on
                key = "tail:" + path[offset:]
                node = self._edge(node, key, path[offset:], inside, offset, tail=True)
                break
            if not inside:
                node = node.static.setdefault(segment, _Node())
            else:
                key = "seg:" + _PARAM.sub(
                    lambda m: "{%s:%s}" % (m.group(1) or m.group(3), m.group(2) or "str"), segment)
                node = self._edge(node, key, segment, inside, offset, tail=False)
            offset = end + 1
        if node.resource is None:
            node.resource = _Resource()
            self.resources.append(node.resource)
        return node.resource

    @staticmethod
    def _edge(node: _Node, key: str, template: str, params: list[tuple[int, int, str, str]], base: int,
              tail: bool) -> _Node:
        for edge in node.edges:
            if edge.key == key:
                return edge.node
        edge = _Edge(key, template, params, base, tail)
        if tail:
            node.edges.append(edge)
        else:  # segment edges stay ahead of tails
            at = next((i for i, e in enumerate(node.edges) if e.tail), len(node.edges))
            node.edges.insert(at, edge)
        return edge.node

    def resolve(self, method: str, path: str) -> tuple[Route, dict[str, Any]]:
        resource = self.exact.get(path)
        if resource is not None:
            route = resource.methods.get(method)  # the fast path: no call
            if route is not None or (route := resource.pick(method)) is not None:
                return route, {}
        partial: list[_Resource] = [resource] if resource is not None else []
        if (self.root.static or self.root.edges) and path[:1] == "/":  # not for "OPTIONS *"
            found = _walk(self.root, path[1:].split("/"), 0, [], method, partial)
            if found is not None:
                return found
        if partial:
            allowed: set[str] = set()
            for res in partial:
                allowed |= _allowed(res.methods)
            raise MethodNotAllowed(headers=[("Allow", ", ".join(sorted(allowed)))])
        raise NotFound()

    def matches_path(self, path: str) -> bool:
        """True when some route has this path, whatever its methods."""
        try:
            self.resolve("OPTIONS", path)
        except (NotFound, MethodNotAllowed):
            return False
        return True


def _walk(node: _Node, segments: list[str], i: int, found: list[tuple[str, Any]], method: str,
          partial: list[_Resource]) -> tuple[Route, dict[str, Any]] | None:
    """Depth-first: literal child, then parameter edges in order; backtracks on a miss.

    ``found`` holds the parameters of the current branch: appended going down, cut on return."""
    if i == len(segments):
        resource = node.resource
        if resource is not None:
            route = resource.pick(method)
            if route is not None:
                return route, dict(found)
            partial.append(resource)
        return None
    segment = segments[i]
    child = node.static.get(segment)
    if child is not None:
        hit = _walk(child, segments, i + 1, found, method, partial)
        if hit is not None:
            return hit
    depth = len(found)
    for edge in node.edges:
        kind = edge.kind
        if kind == _SEGMENT:
            if not segment:
                continue
            found.append((edge.name, segment))
        elif kind == _INT:
            value = _as_int(segment)
            if value is None:
                continue
            found.append((edge.name, value))
        elif edge.tail:
            values = edge.match("/".join(segments[i:]))
            resource = edge.node.resource
            if values is None or resource is None:
                continue
            route = resource.pick(method)
            if route is not None:
                return route, dict(found + values)
            partial.append(resource)
            continue
        else:
            values = edge.match(segment)
            if values is None:
                continue
            found.extend(values)
        hit = _walk(edge.node, segments, i + 1, found, method, partial)
        if hit is not None:
            return hit
        del found[depth:]
    return None


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
