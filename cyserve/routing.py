"""Router: exact paths from a dict, parametrised paths compiled once; 404 and 405 in one pass.

Path templates: ``/users/{id}`` or Areion's ``/users/:id`` (the same thing), with converters
``{id:int}``, ``{x:float}``, ``{u:uuid}`` and ``{rest:path}`` (may contain ``/``).  HEAD is answered
by GET routes unless a HEAD route exists (RFC 9110 §9.3.2).
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from cyserve.errors import HTTPError

__all__ = ["Route", "Router"]

Handler = Callable[..., Awaitable[Any]]

_CONVERTERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "str": (r"[^/]+", str),
    "int": (r"-?[0-9]+", int),
    "float": (r"-?[0-9]+(?:\.[0-9]+)?", float),
    "uuid": (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", uuid.UUID),
    "path": (r".*", str),
}
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?\}|:([A-Za-z_][A-Za-z0-9_]*)")


@dataclass
class Route:
    path: str
    handler: Handler
    methods: frozenset[str]
    name: str
    pattern: re.Pattern[str] | None = None
    converters: dict[str, Callable[[str], Any]] = field(default_factory=dict)


def _compile(path: str) -> tuple[re.Pattern[str] | None, dict[str, Callable[[str], Any]]]:
    converters: dict[str, Callable[[str], Any]] = {}
    parts: list[str] = []
    last = 0
    for m in _PARAM.finditer(path):
        name = m.group(1) or m.group(3)
        kind = m.group(2) or "str"
        if kind not in _CONVERTERS:
            raise ValueError(f"unknown converter {kind!r} in route {path!r}")
        if name in converters:
            raise ValueError(f"parameter {name!r} appears twice in route {path!r}")
        regex, convert = _CONVERTERS[kind]
        converters[name] = convert
        parts.append(re.escape(path[last:m.start()]))
        parts.append(f"(?P<{name}>{regex})")
        last = m.end()
    if not converters:
        return None, {}
    parts.append(re.escape(path[last:]))
    return re.compile("".join(parts) + r"\Z"), converters


class Router:
    """Routes by path then method; ``resolve`` raises 404/405 (with ``Allow``) itself."""

    def __init__(self) -> None:
        self._exact: dict[str, dict[str, Route]] = {}
        self._params: list[tuple[re.Pattern[str], dict[str, Route]]] = []
        self._by_name: dict[str, Route] = {}

    def add(self, path: str, handler: Handler, methods: list[str] | tuple[str, ...],
            name: str | None = None) -> Route:
        if not path.startswith("/"):
            raise ValueError(f"route path must start with '/': {path!r}")
        methods_set = frozenset(m.upper() for m in methods)
        if not methods_set:
            raise ValueError(f"route {path!r} needs at least one method")
        pattern, converters = _compile(path)
        route = Route(path, handler, methods_set, name or handler.__name__, pattern, converters)
        if pattern is None:
            table = self._exact.setdefault(path, {})
        else:
            for existing_pattern, existing in self._params:
                if existing_pattern.pattern == pattern.pattern:
                    table = existing
                    break
            else:
                table = {}
                self._params.append((pattern, table))
        for method in methods_set:
            if method in table:
                raise ValueError(f"{method} {path} is already routed to {table[method].handler!r}")
            table[method] = route
        self._by_name.setdefault(route.name, route)
        return route

    def resolve(self, method: str, path: str) -> tuple[Route, dict[str, Any]]:
        """The route for ``method`` and ``path`` and its converted parameters."""
        table = self._exact.get(path)
        if table is not None:
            route = table.get(method)
            if route is not None:
                return route, {}
        params: dict[str, Any] = {}
        if table is None:
            for pattern, candidate in self._params:
                m = pattern.match(path)
                if m is not None:
                    route = next(iter(candidate.values()))
                    try:
                        params = {k: route.converters[k](v) for k, v in m.groupdict().items()}
                    except ValueError:
                        continue
                    table = candidate
                    break
            else:
                raise HTTPError(404, "Not Found")
        route = table.get(method)
        if route is None and method == "HEAD":
            route = table.get("GET")
        if route is None:
            allowed = set(table)
            if "GET" in allowed:
                allowed.add("HEAD")
            raise HTTPError(405, "Method Not Allowed", [("Allow", ", ".join(sorted(allowed)))])
        return route, params

    def url_for(self, name: str, **params: Any) -> str:
        route = self._by_name.get(name)
        if route is None:
            raise KeyError(f"no route named {name!r}")
        def fill(m: re.Match[str]) -> str:
            key = m.group(1) or m.group(3)
            if key not in params:
                raise KeyError(f"route {name!r} needs parameter {key!r}")
            return str(params[key])
        return _PARAM.sub(fill, route.path)
