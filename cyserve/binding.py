"""Handler parameters bound from the request: read from the signature once, per route, when the
App starts; per request only what the handler declared is looked at.

A handler that wants nothing beyond the request and its path parameters gets the endpoint it
always had (the handler itself, or one call passing the path parameters): no binder in between.

Parameter by parameter:

- **the request**: the parameter annotated ``Request`` (any position), else the first positional
  one unless that is declared as one of the below (so a FastAPI-style handler need not take it).
  A first parameter whose annotation names nothing the module defines (a class local to a
  function, under ``from __future__ import annotations``) is the request only when it is called
  ``request``, ``req`` or ``r``; otherwise that is a ``TypeError`` at startup, never a guess;
- **path parameters**, by name.  An annotation ``int``, ``float`` or ``uuid.UUID`` on a parameter
  whose template names no converter *is* its converter: ``/items/{id}`` with ``id: int`` is routed
  as ``/items/{id:int}``, by the route table, so a mismatch is a 404 and the walk tries the next
  route, as for the explicit form.  ``path_kinds`` works this out when the route is added (the
  table is built as routes are added); the rest of the plan waits for the App to start, so a
  model may be defined below its route;
- **markers** ``Query()``, ``Header()``, ``Cookie()``, ``Body()``, as the default
  (``token: str = Header()``) or in ``Annotated[str, Header()]``: where the value comes from, its
  name there (``alias``; a header's is the parameter's name with ``_`` as ``-``), its default
  (``...``: required) and a description for the docs;
- a **pydantic model or a dataclass** (a list of them, or either ``| None``): the JSON body,
  read and checked by ``cyserve._models`` (pydantic is imported only by a route that uses it);
- **anything else: the query string**.  ``str`` (also no annotation, or ``Any``), ``int``,
  ``float``, ``bool``, ``uuid.UUID``, ``datetime``/``date``/``time`` (ISO 8601), an ``Enum`` or
  ``Literal``, ``X | None``, and ``list[X]`` for a repeated key.  A parameter without an
  annotation takes the type of a bool, int or float default.  One exception: Blazeio's path
  override (``route="/x"`` on a handler whose first parameter is ``r``) keeps its default.

A parameter without a default is required.  What is missing or does not convert is answered 422,
every problem at once, in FastAPI's shape (pydantic's errors), so migrating clients read it
unchanged::

    {"detail": [{"type": "int_parsing", "loc": ["query", "page"],
                 "msg": "Input should be a valid integer, unable to parse string as an integer",
                 "input": "abc"}]}

``loc`` is ``[source, name]`` with the name as sent (``["header", "x-token"]``), ``[source, name,
index]`` for an item of a list, ``["body", field, ...]`` for the body.  The 422 is a response the
endpoint returns, not an exception, so middleware sees it as any other response.

Results: when the return annotation mentions a model, returned models (and lists and dicts of
them) are written as JSON; a route added with ``status_code=`` answers a returned dict, list,
model, str, bytes or None with that status.  Responses and ``(body, status)`` tuples keep theirs.
"""
from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import types
import typing
import uuid
from typing import Any, Awaitable, Callable, cast

from cyserve import _models
from cyserve._json import dumps
from cyserve._trie import TEMPLATE_PARAM
from cyserve.request import Request
from cyserve.response import BaseResponse, Response

__all__ = ["Body", "Bound", "Cookie", "Header", "Marker", "Plan", "Query", "endpoint", "path_kinds",
           "plan"]

Handler = Callable[..., Awaitable[Any]]
_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"
_EMPTY = inspect.Parameter.empty
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_MISSING: Any = object()
# What the request parameter is conventionally called (cyserve, Starlette, Blazeio's ``r``).
_REQUEST_NAMES = frozenset(("request", "r", "req"))


# ------------------------------------------------------------------ markers
class Marker:
    """Where a parameter's value comes from (``source``), its name there, its default."""

    __slots__ = ("source", "default", "alias", "description", "convert_underscores")

    def __init__(self, source: str, default: Any = ..., alias: str | None = None,
                 description: str | None = None, convert_underscores: bool = True) -> None:
        self.source = source
        self.default = default
        self.alias = alias
        self.description = description
        self.convert_underscores = convert_underscores

    def __repr__(self) -> str:
        return f"{self.source.capitalize()}({'' if self.default is ... else repr(self.default)})"


# Functions typed ``Any`` (as FastAPI's) so that ``page: int = Query(1)`` type-checks.
def Query(default: Any = ..., *, alias: str | None = None, description: str | None = None) -> Any:
    """A query-string parameter (the default for plain types): ``alias`` names the key."""
    return Marker("query", default, alias, description)


def Header(default: Any = ..., *, alias: str | None = None, description: str | None = None,
           convert_underscores: bool = True) -> Any:
    """A request header; its name is the parameter's with ``_`` as ``-`` unless ``alias`` says
    (header names are case-insensitive, RFC 9110 §5.1).  ``list[str]`` takes every field line."""
    return Marker("header", default, alias, description, convert_underscores)


def Cookie(default: Any = ..., *, alias: str | None = None, description: str | None = None) -> Any:
    """A cookie of the request's Cookie header (``Request.cookies``)."""
    return Marker("cookie", default, alias, description)


def Body(default: Any = ..., *, description: str | None = None) -> Any:
    """The JSON body, for a type that would otherwise be a query parameter (``dict``, ``list``)."""
    return Marker("body", default, None, description)


# ------------------------------------------------------------------ the plan
class Bound:
    """One parameter the binder fills: where from, its name there, how its text converts."""

    __slots__ = ("name", "source", "alias", "annotation", "required", "default", "many", "convert",
                 "error_type", "error_msg", "description", "read", "nullable")

    def __init__(self, name: str, source: str, alias: str, annotation: Any, default: Any,
                 description: str | None) -> None:
        self.name = name
        self.source = source
        self.alias = alias
        self.annotation = annotation  # the type documented (Annotated and markers removed)
        self.required = default is _MISSING
        self.default = None if default is _MISSING else default
        self.description = description
        self.many = False
        self.nullable = False
        self.convert: Callable[[str], Any] | None = None  # None: the text as it is
        self.error_type = self.error_msg = ""
        # The body's reader: (value, errors or None).
        self.read: Callable[[bytes], tuple[Any, _models.Errors | None]] | None = None

    def __repr__(self) -> str:
        return f"<Bound {self.source} {self.alias!r} -> {self.name}>"


class Plan:
    """A handler's signature, resolved: what ``endpoint`` binds and the OpenAPI document shows.

    ``request``: the request parameter's name (None: the handler takes none); ``request_first``:
    the request goes first, positionally (else by keyword, when it takes one); ``path``: the path
    parameters passed by name (None: all of them, to ``**kwargs``); ``bound``: query, header and
    cookie parameters; ``body``; ``returns``: the return annotation when it mentions a model.
    """

    __slots__ = ("plain", "request", "request_first", "path", "all_path", "bound", "body", "returns",
                 "status_code", "sync")

    def __init__(self) -> None:
        self.plain = False  # no signature to read: the handler is called with the request alone
        self.request: str | None = None
        self.request_first = True
        self.path: tuple[str, ...] | None = ()
        self.all_path = False  # the handler names every parameter of its own template
        self.bound: tuple[Bound, ...] = ()
        self.body: Bound | None = None
        self.returns: Any = None
        self.status_code: int | None = None
        self.sync = False

    @property
    def declares(self) -> bool:
        """True when the handler wants more than the request and its path parameters."""
        return bool(self.bound) or self.body is not None


def path_kinds(handler: Any, path: str) -> dict[str, str]:
    """``{name: converter}`` of ``path``'s parameters: the template's, or the one a handler's
    annotation implies where the template names none (see the module docstring).

    Raises ``TypeError`` for an annotation that is no path type, one that contradicts the
    template's converter, or one that cannot be resolved."""
    kinds: dict[str, str] = {}
    explicit: set[str] = set()
    for m in TEMPLATE_PARAM.finditer(path):
        name = m.group(1) or m.group(3)
        kinds[name] = m.group(2) or "str"
        if m.group(2):
            explicit.add(name)
    signature = _signature(handler)
    if signature is None or not kinds:
        return kinds
    namespace: dict[str, Any] | None = None
    for p in signature.parameters.values():
        if p.name not in kinds or p.kind in _VARIADIC:
            continue
        if isinstance(p.default, Marker):
            raise TypeError(f"{_describe(handler)}: {p.name!r} is a parameter of {path!r}; it takes "
                            f"no {p.default!r}")
        if p.annotation is _EMPTY:
            continue
        namespace = _namespace(handler) if namespace is None else namespace
        tp = _resolve(p.annotation, namespace)
        if isinstance(tp, _Unresolved):
            raise TypeError(f"{_describe(handler)}: the annotation {tp.text!r} of path parameter "
                            f"{p.name!r} cannot be resolved")
        base, marker = _split(tp)
        if marker is not None:
            raise TypeError(f"{_describe(handler)}: {p.name!r} is a parameter of {path!r}; it takes "
                            f"no {marker!r}")
        base, _ = _optional(base)
        kind = _PATH_KINDS.get(base, "str" if base is Any or base is object else None)
        if kind is None:
            raise TypeError(f"{_describe(handler)}: path parameter {p.name!r} is annotated {base!r}; "
                            "a path parameter is a str, int, float or uuid.UUID")
        if p.name in explicit:
            if kind != "str" and kind != kinds[p.name]:
                raise TypeError(f"{_describe(handler)}: {p.name!r} is annotated {base.__name__} but "
                                f"{path!r} converts it as {kinds[p.name]}")
            continue
        kinds[p.name] = kind
    return kinds


_PATH_KINDS: dict[Any, str] = {str: "str", int: "int", float: "float", uuid.UUID: "uuid"}


def plan(handler: Any, path: str, path_params: dict[str, str], status_code: int | None = None) -> Plan:
    """Read ``handler``'s signature once: which parameter is the request, which are path
    parameters, and how every other one is bound.  ``TypeError`` for what cannot be bound."""
    result = Plan()
    result.status_code = status_code
    signature = _signature(handler)
    if signature is None:  # builtins and some callables have none: called with the request
        result.plain = True
        return result
    result.sync = not _is_coroutine_function(handler)
    namespace = _namespace(handler)
    params = list(signature.parameters.values())
    hints = {p.name: _resolve(p.annotation, namespace) for p in params if p.annotation is not _EMPTY}

    request = next((p for p in params if p.kind not in _VARIADIC and _is_request(hints.get(p.name))),
                   None)
    positional = [p for p in params if p.kind in _POSITIONAL]
    first = positional[0] if positional else None
    if request is None and first is not None:
        tp = hints.get(first.name)
        if isinstance(tp, _Unresolved) and first.name not in _REQUEST_NAMES:
            raise TypeError(f"{_describe(handler)}: the annotation {tp.text!r} of the first parameter "
                            f"{first.name!r} cannot be resolved, so whether it is the request is "
                            "unknown (define it at module level, or name the request 'request')")
        if not _declared(first, tp, path_params):
            request = first
    if request is not None:
        result.request = request.name
        result.request_first = request is first
        if not result.request_first and request.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise TypeError(f"{_describe(handler)}: the request parameter {request.name!r} is "
                            "positional-only but not the first")
    else:  # ``(*args)``: the request, positionally, as ever
        result.request_first = first is None and any(
            p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
        if result.request_first:
            result.request = ""

    blazeio = first is not None and first.name == "r"
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    named: list[str] = []
    bound: list[Bound] = []
    for p in params:
        if p is request or p.kind in _VARIADIC:
            continue
        tp = hints.get(p.name, _EMPTY)
        base, marker = (_EMPTY, None) if isinstance(tp, _Unresolved) else _split(tp)
        if isinstance(p.default, Marker):
            marker = p.default
        default = p.default if p.default is not _EMPTY and not isinstance(p.default, Marker) else _MISSING
        if marker is not None and marker.default is not ...:
            default = marker.default
        if p.name in path_params:
            if p.kind is not inspect.Parameter.POSITIONAL_ONLY:
                named.append(p.name)
            continue
        if p.kind is inspect.Parameter.POSITIONAL_ONLY:
            if default is _MISSING:
                raise TypeError(f"{_describe(handler)}: {p.name!r} is positional-only and no "
                                f"parameter of {path!r}: it cannot be passed")
            continue  # keeps its default
        if marker is None and blazeio and p.name == "route" and isinstance(p.default, str):
            continue  # Blazeio's path override, read by class_routes
        if isinstance(tp, _Unresolved):
            raise TypeError(f"{_describe(handler)}: the annotation {tp.text!r} of {p.name!r} cannot "
                            "be resolved (is it defined, at module level, when the App starts?)")
        source = marker.source if marker is not None else (
            "body" if _models.mentions_model(base) else "query")
        item = _bound(handler, p.name, source, base, default, marker)
        if source == "body":
            if result.body is not None:
                raise TypeError(f"{_describe(handler)}: two body parameters ({result.body.name!r} and "
                                f"{p.name!r}); read one model holding both")
            result.body = item
        else:
            bound.append(item)
    result.bound = tuple(bound)
    result.path = None if takes_all else tuple(named)
    result.all_path = takes_all or bool(path_params) and len(named) == len(path_params)

    returns = _resolve(signature.return_annotation, namespace)
    if returns is not _EMPTY and not isinstance(returns, _Unresolved) and _models.mentions_model(returns):
        result.returns = returns
    return result


def _bound(handler: Any, name: str, source: str, tp: Any, default: Any, marker: Marker | None) -> Bound:
    """The ``Bound`` of one non-path parameter; ``TypeError`` for a type its source cannot give."""
    if tp is _EMPTY and default is not _MISSING and type(default) in (bool, int, float):
        tp = type(default)  # ``verbose=False``: a bool
    alias = marker.alias if marker is not None and marker.alias else name
    if source == "header" and (marker is None or not marker.alias):
        alias = name.replace("_", "-") if marker is None or marker.convert_underscores else name
    if source == "header":
        alias = alias.lower()
    described: Any = Any if tp is _EMPTY else tp
    item = Bound(name, source, alias, described, default, marker.description if marker else None)
    base, item.nullable = _optional(described)
    if source == "body":
        item.read = _models.body_reader(base)
        return item
    if base is list or typing.get_origin(base) is list:  # a repeated key, or header field lines
        if source == "cookie":
            raise TypeError(f"{_describe(handler)}: cookie {alias!r} cannot be a list")
        args = typing.get_args(base)
        item.many = True
        base = args[0] if args else str
    try:
        item.convert, item.error_type, item.error_msg = _models.text_converter(base)
    except TypeError:
        raise TypeError(f"{_describe(handler)}: {name!r} is annotated {described!r}, which a "
                        f"{source} parameter cannot be (str, int, float, bool, UUID, dates, an Enum or "
                        "Literal, a list of those; a model or Body() for the body)") from None
    return item



# ------------------------------------------------------------------ the endpoint
def endpoint(handler: Any, found: Plan) -> Handler:
    """``request -> awaitable``: ``handler`` called with what ``found`` says it wants.

    Without bound parameters, body or result shaping this is what it always was: the handler
    itself, or one call passing the path parameters; sync handlers run in the default thread
    pool, in a copy of the request's context, so they never block the loop."""
    if found.plain:
        return cast(Handler, handler)  # no signature to check: called with the request, as ever
    if found.sync:
        call = _in_thread(handler, found.request_first)
    elif not found.request_first:  # no request, or one passed by keyword with the others
        call = _without_request(handler)
    else:
        call = handler
    if not found.declares and found.returns is None and found.status_code is None and found.request_first:
        return _path_only(call, found)
    return _binding(call, found)


def _path_only(call: Handler, found: Plan) -> Handler:
    # Exactly the endpoints cyserve always made: nothing but the path parameters in between.
    if found.all_path:
        return lambda request: call(request, **request.path_params)
    if found.path:
        names = found.path
        return lambda request: call(request, **{k: request.path_params[k] for k in names})
    return call


def _binding(call: Handler, found: Plan) -> Handler:
    names = found.path
    request_name = None if found.request_first else found.request
    bind = _binder(found.bound) if found.bound else None
    body = found.body
    encode = _encoder(found.returns is not None, found.status_code)

    def arguments(request: Request) -> dict[str, Any]:
        kwargs = dict(request.path_params) if names is None else {k: request.path_params[k] for k in names}
        if request_name:
            kwargs[request_name] = request
        return kwargs
    fresh = names == () and not request_name  # no path parameter to pass: start from {}

    if body is None and encode is None and bind is None:  # a request-less or keyword-request handler
        return lambda request: call(request, **arguments(request))
    if body is None and encode is None:
        assert bind is not None

        def bound_endpoint(request: Request) -> Awaitable[Any]:
            kwargs: dict[str, Any] = {} if fresh else arguments(request)
            errors = bind(request, kwargs)
            if errors is not None:
                return _ready(_invalid(errors))
            return call(request, **kwargs)
        return bound_endpoint

    async def full_endpoint(request: Request) -> Any:
        kwargs: dict[str, Any] = {} if fresh else arguments(request)
        errors = bind(request, kwargs) if bind is not None else None
        if body is not None:
            errors = await _read_body(body, request, kwargs, errors)
        if errors is not None:
            return _invalid(errors)
        result = await call(request, **kwargs)
        return result if encode is None else encode(result)
    return full_endpoint


# How a bound parameter is looked up, decided once: one branch per request and parameter.
_QUERY, _QUERY_LIST, _HEADER, _HEADER_LIST, _COOKIE = range(5)


def _binder(bound: tuple[Bound, ...]) -> Callable[[Request, dict[str, Any]], _models.Errors | None]:
    """``bind(request, kwargs)``: the bound parameters' values put in ``kwargs``; the errors
    (None when there are none)."""
    specs = tuple((_QUERY + b.many if b.source == "query" else _HEADER + b.many if b.source == "header"
                   else _COOKIE, b.name, b.alias, b.convert, b.required, b.default, b.error_type,
                   b.error_msg, b.source) for b in bound)
    wants_query = any(b.source == "query" for b in bound)
    wants_headers = any(b.source == "header" for b in bound)
    wants_cookies = any(b.source == "cookie" for b in bound)

    def bind(request: Request, kwargs: dict[str, Any]) -> _models.Errors | None:
        errors = None
        query: Any = request.query if wants_query else None
        headers: Any = request.headers if wants_headers else None
        cookies: Any = request.cookies if wants_cookies else None
        for kind, name, alias, convert, required, default, error_type, error_msg, source in specs:
            if kind == _QUERY:
                try:
                    raw = query[alias]  # one call where Mapping.get makes two; a miss raises in both
                except KeyError:
                    raw = _MISSING
            elif kind == _HEADER:
                raw = headers.get(alias, _MISSING)
            elif kind == _COOKIE:
                raw = cookies.get(alias, _MISSING)
            else:
                raw = (query if kind == _QUERY_LIST else headers).getlist(alias) or _MISSING
            if raw is _MISSING:
                if required:
                    errors = errors or []
                    errors.append(_models.error("missing", (source, alias), "Field required"))
                else:
                    kwargs[name] = list(default) if type(default) is list else default
                continue
            if convert is None:
                kwargs[name] = raw
            elif kind != _QUERY_LIST and kind != _HEADER_LIST:
                try:
                    kwargs[name] = convert(raw)
                except ValueError:
                    errors = errors or []
                    errors.append(_models.error(error_type, (source, alias), error_msg, raw))
            else:
                items = []
                for i, text in enumerate(raw):
                    try:
                        items.append(convert(text))
                    except ValueError:
                        errors = errors or []
                        errors.append(_models.error(error_type, (source, alias, i), error_msg, text))
                kwargs[name] = items
        return errors
    return bind


async def _read_body(body: Bound, request: Request, kwargs: dict[str, Any], errors: _models.Errors | None
                     ) -> _models.Errors | None:
    raw = await request.body()
    stripped = raw.strip()
    if not stripped:
        if body.required:
            return (errors or []) + [_models.error("missing", ("body",), "Field required")]
        kwargs[body.name] = body.default
        return errors
    if body.nullable and stripped == b"null":
        kwargs[body.name] = None
        return errors
    assert body.read is not None
    value, problems = body.read(raw)
    if problems:
        return (errors or []) + problems
    kwargs[body.name] = value
    return errors


def _invalid(errors: _models.Errors) -> Response:
    """422 with pydantic's errors under ``detail`` (the module docstring)."""
    return Response(dumps({"detail": errors}, default=str), 422, None, _JSON)


async def _ready(response: Response) -> Response:
    return response


def _encoder(models: bool, status: int | None) -> Callable[[Any], Any] | None:
    """What a returned value becomes: models as JSON (when the return annotation mentions one)
    and the route's ``status_code`` on dict, list, model, str, bytes and None."""
    if not models and status is None:
        return None
    code = 200 if status is None else status

    def encode(result: Any) -> Any:
        if isinstance(result, (BaseResponse, tuple)):
            return result
        if result is None:
            return Response(b"", 204 if status is None else status)
        if isinstance(result, str):
            return Response(result.encode("utf-8"), code, None, _TEXT)
        if isinstance(result, (bytes, bytearray, memoryview)):
            return Response(result, code, None, "application/octet-stream")
        return Response(dumps(result, default=_models.json_default), code, None, _JSON)
    return encode


# ------------------------------------------------------------------ calling
def _in_thread(fn: Callable[..., Any], pass_request: bool) -> Handler:
    async def call(request: Any, /, **kwargs: Any) -> Any:
        ctx = contextvars.copy_context()
        args = (request,) if pass_request else ()
        result = await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(ctx.run, fn, *args, **kwargs))
        if inspect.isawaitable(result):  # a plain function that returns a coroutine
            result = await result
        return result
    call.__name__ = getattr(fn, "__name__", "handler")
    call.__doc__ = fn.__doc__
    return call


def _without_request(handler: Callable[..., Awaitable[Any]]) -> Handler:
    def call(_request: Any, /, **kwargs: Any) -> Awaitable[Any]:  # kwargs may hold "request"
        return handler(**kwargs)
    return call


def _is_coroutine_function(handler: Any) -> bool:
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None))


# ------------------------------------------------------------------ reading signatures
class _Unresolved:
    """An annotation string that names nothing the handler's module defines."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _signature(handler: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(handler)
    except (TypeError, ValueError):
        return None


def _namespace(handler: Any) -> dict[str, Any]:
    """The globals a handler's string annotations (``from __future__ import annotations``) are
    evaluated in: its function's module, through partials, bound methods and ``__call__``."""
    target = handler
    while True:
        if isinstance(target, functools.partial):
            target = target.func
        elif inspect.ismethod(target):
            target = target.__func__
        else:
            break
    target = inspect.unwrap(target)
    found = getattr(target, "__globals__", None)
    if found is None:
        call = getattr(type(target), "__call__", None)
        found = getattr(inspect.unwrap(call), "__globals__", None) if call is not None else None
    return found or {}


def _resolve(annotation: Any, namespace: dict[str, Any]) -> Any:
    if not isinstance(annotation, str):
        return annotation
    try:
        return eval(annotation, namespace)  # what typing.get_type_hints does, one name at a time
    except Exception:  # noqa: BLE001 - any failure means "unresolved"; said where it matters
        return _Unresolved(annotation)


def _split(tp: Any) -> tuple[Any, Marker | None]:
    """``Annotated[T, Marker]`` -> (T, marker); anything else -> (tp, None)."""
    if typing.get_origin(tp) is typing.Annotated:
        args = typing.get_args(tp)
        return args[0], next((m for m in args[1:] if isinstance(m, Marker)), None)
    return tp, None


def _optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (tp, False)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _is_request(tp: Any) -> bool:
    tp, _ = _optional(_split(tp)[0])
    return isinstance(tp, type) and issubclass(tp, Request)


def _declared(p: inspect.Parameter, tp: Any, path_params: dict[str, str]) -> bool:
    """The first positional parameter is declared as something other than the request."""
    if p.name in path_params or isinstance(p.default, Marker):
        return True
    if p.default is not _EMPTY and p.name not in _REQUEST_NAMES:  # ``(q="")``; not ``(request=None)``
        return True
    if tp is None or isinstance(tp, _Unresolved):
        return False
    base, marker = _split(tp)
    if marker is not None:
        return True
    base, _ = _optional(base)
    if _models.mentions_model(base):
        return True
    if base is list or typing.get_origin(base) is list:
        args = typing.get_args(base)
        base = args[0] if args else str
    if base is Any or base is object:
        return False
    try:
        _models.text_converter(base)
    except TypeError:
        return False
    return True


def _describe(handler: Any) -> str:
    return f"handler {getattr(handler, '__qualname__', handler)!r}"
