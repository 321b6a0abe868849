"""Route matching: path templates compiled into a segment trie; 404 and 405 found in one pass.

Templates: ``/users/{id}`` or Areion's ``/users/:id`` (the same thing), with converters
``{id:int}``, ``{x:float}``, ``{u:uuid}`` and ``{rest:path}`` (may contain ``/``; only at the end
of a template).  A segment may mix text and parameters (``/files/{name}.{ext}``).  A route's
handler may imply the converter of a parameter the template leaves plain (``{id}`` with
``id: int``, see ``Route.params``): the table matches it as if it were written.

Matching, in this order of precedence:
1. the exact path (a dict look-up, O(1));
2. the trie, one level per ``/`` segment: a literal segment beats a parameter, parameters are
   tried in registration order, a trailing ``{x:path}`` last; a converter that refuses a segment
   (``{id:int}`` and ``abc``) makes the walk backtrack and try the next candidate, so
   ``/a/b/c`` and ``/a/{x}/d`` both resolve.  Cost grows with the path's depth and the branching
   at each level, not with the number of routes.

A path that matches with the wrong method is a 405 whose ``Allow`` lists every method of every
template that matched (RFC 9110 §15.5.6, §10.2.1), HEAD included where GET is, and OPTIONS,
which every resource answers; the automatic OPTIONS answer carries the same ``Allow``.  HEAD is
answered by GET routes unless a HEAD route exists (RFC 9110 §9.3.2); OPTIONS is answered by the
resource's automatic OPTIONS route (``Route.options_for``) unless an OPTIONS route exists (RFC
9110 §9.3.7).  Paths are matched percent-decoded (so ``%2F`` separates segments, as in Starlette).

The routes themselves (``Route``) and the routers that fill a ``_Table`` live in ``routing``.
"""
from __future__ import annotations

import math
import re
import sys
import uuid
from typing import TYPE_CHECKING, Any, Callable, Iterable

from cyserve.errors import MethodNotAllowed, NotFound

if TYPE_CHECKING:  # routing imports this module; the matcher only needs Route's type
    from cyserve.routing import Route

# The most digits an ``{x:int}`` segment may have: the interpreter's default bound for int()
# of a string.  Past it int() raises ValueError (or, with the bound lifted, takes quadratic
# time); such a segment is no id any route means, so it does not match (404), whatever the
# process set with sys.set_int_max_str_digits.
_MAX_INT_DIGITS = sys.int_info.default_max_str_digits


def _to_int(text: str) -> int:
    """``-?[0-9]+`` as an int; ValueError (no match) past ``_MAX_INT_DIGITS`` digits."""
    if len(text) - (text[:1] == "-") > _MAX_INT_DIGITS:
        raise ValueError(f"more than {_MAX_INT_DIGITS} digits")
    return int(text)  # a lower limit set for the process raises ValueError too


def _to_float(text: str) -> float:
    """``-?[0-9]+(.[0-9]+)?`` as a finite float: ValueError (no match) for a number too large
    for a float (310 digits are enough), which float() would silently turn into inf."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("not a finite float")
    return value


# converter -> (regex for one value, Python conversion, OpenAPI schema); a conversion that
# raises ValueError refuses the segment, and the walk tries the next route.
CONVERTERS: dict[str, tuple[str, Callable[[str], Any], dict[str, str]]] = {
    "str": (r"[^/]+", str, {"type": "string"}),
    "int": (r"-?[0-9]+", _to_int, {"type": "integer"}),
    "float": (r"-?[0-9]+(?:\.[0-9]+)?", _to_float, {"type": "number"}),
    "uuid": (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", uuid.UUID,
             {"type": "string", "format": "uuid"}),
    "path": (r".*", str, {"type": "string"}),
}
TEMPLATE_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?\}|:([A-Za-z_][A-Za-z0-9_]*)")


def _parse(path: str, kinds: dict[str, str] | None = None) -> list[tuple[int, int, str, str]]:
    """(start, end, name, converter) of each parameter in a template, checked.  ``kinds`` gives
    the converter of a parameter the template names none for (a route's ``params``: the
    handler's annotation implies it)."""
    found: list[tuple[int, int, str, str]] = []
    for m in TEMPLATE_PARAM.finditer(path):
        name = m.group(1) or m.group(3)
        kind = m.group(2) or (kinds.get(name, "str") if kinds else "str")
        if kind not in CONVERTERS:
            raise ValueError(f"unknown converter {kind!r} in route {path!r}")
        if any(name == other for _, _, other, _ in found):
            raise ValueError(f"parameter {name!r} appears twice in route {path!r}")
        if kind == "path" and m.end() != len(path):
            raise ValueError(f"{{{name}:path}} must end the route template: {path!r}")
        found.append((m.start(), m.end(), name, kind))
    return found


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
            self.options = route.options_for(self)
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
    # Allow lists what the resource answers (RFC 9110 §10.2.1): HEAD wherever GET is (§9.3.2),
    # and OPTIONS always, since every resource answers it (§9.3.7), automatically or by a route.
    allowed = set(methods)
    allowed.add("OPTIONS")
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
    """``-?[0-9]+`` as an int, else None (str.isdigit alone would accept other Unicode digits;
    more than ``_MAX_INT_DIGITS`` digits are refused, see ``_to_int``)."""
    digits = segment[1:] if segment[:1] == "-" else segment
    if digits.isascii() and digits.isdigit():
        try:
            return _to_int(segment)
        except ValueError:
            return None
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
        params = _parse(route.path, route.params)
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
                key = "tail:" + _key(path[offset:], inside, offset)
                node = self._edge(node, key, path[offset:], inside, offset, tail=True)
                break
            if not inside:
                node = node.static.setdefault(segment, _Node())
            else:
                key = "seg:" + _key(segment, inside, offset)
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


def _key(template: str, params: list[tuple[int, int, str, str]], base: int) -> str:
    """A segment's template with every parameter spelled ``{name:converter}``: routes share an
    edge exactly when they match the same way (``{id}`` of a handler taking ``id: int`` is the
    edge of ``{id:int}``)."""
    parts, last = [], base
    for start, end, name, kind in params:
        parts.append(template[last - base:start - base])
        parts.append("{%s:%s}" % (name, kind))
        last = end
    parts.append(template[last - base:])
    return "".join(parts)


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
