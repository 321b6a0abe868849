"""The one middleware shape, its composition, hook sugar and the built-ins.

A handler is ``async (request) -> BaseResponse`` (what a route handler returns is normalised by
``to_response`` before any middleware sees it); a middleware is ``handler -> handler``.  Chains
are composed once when the App starts, outermost first: the App's ``after`` hooks, its ``app.use``
middleware, its ``before`` hooks, then each enclosing router or group, then the route's own
(``@app.get(path, middlewares=[...])``); ``cyserve/app.py`` says why in that order.  The App
routes a request before its global middleware runs (so ``request.path_params`` is already set
there); unmatched requests pass the global middleware too, answered 404 or 405 inside it.

Errors: in an App a middleware only ever sees responses, whatever failed inside it.  What an
endpoint, a middleware or a hook raises is turned into a response (``App.failures``: a
registered handler, the ``HTTPError`` page, else the 500 page) at the layer that raised it, so
every middleware outside it adds its headers to error pages too.  The exceptions that no
response can answer go on: ``ProtocolError`` (the core answers it) and ``Disconnected``.

Sugar: ``before(fn)`` runs ``fn(request)`` first (a returned response short-circuits),
``after(fn)`` runs ``fn(request, response)`` always, also when the handler raised (then with
``response=None``, and the exception goes on: in an App only for the errors no response
answers); ``app.before`` and ``app.after`` are these two at fixed places of the chain;
``BaseMiddleware`` is PyLiteFlux's
``process_request`` / ``process_response`` class.  Built-ins: ``CORS``, ``TrustedHosts``,
``SecurityHeaders``, ``RequestID``.
"""
from __future__ import annotations

import inspect
import logging
import re
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, Sequence

from cyserve.datastructures import field_value
from cyserve.errors import BadRequest
from cyserve.response import BaseResponse, Response, to_response

if TYPE_CHECKING:
    from cyserve.request import Request

__all__ = [
    "BaseMiddleware",
    "CORS",
    "DefaultHeaders",
    "Handler",
    "Middleware",
    "RequestID",
    "SecurityHeaders",
    "TrustedHosts",
    "after",
    "before",
    "compose",
]

_log = logging.getLogger("cyserve.app")

Handler = Callable[["Request"], Awaitable[BaseResponse]]
Middleware = Callable[[Handler], Handler]


def compose(middlewares: Sequence[Middleware], handler: Handler,
            guard: Middleware | None = None) -> Handler:
    """``middlewares[0](middlewares[1](...(handler)))``: the first listed runs first.

    With ``guard``, each middleware but the innermost is handed ``guard(inner)`` instead of
    ``inner``: the App's guard turns what a middleware raises into a response before the
    middleware outside it sees it.  The outermost layer is left for the caller to guard (the
    App's ``handle`` maps what reaches it), so a lone middleware costs no guard.
    """
    inner = True
    for middleware in reversed(middlewares):
        if guard is not None and not inner:
            handler = guard(handler)
        inner = False
        handler = middleware(handler)
        if not callable(handler):
            raise TypeError(f"middleware {middleware!r} returned {handler!r}, not a handler")
    return handler


def _async(fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """``fn`` as a coroutine function (sync hooks are cheap bookkeeping: they run on the loop)."""
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None)):
        return fn

    async def call(*args: Any) -> Any:
        return fn(*args)
    return call


def before(fn: Callable[["Request"], Any]) -> Middleware:
    """Run ``fn(request)`` before the handler; if it returns something other than ``None``, that
    is the response and the handler is skipped (Blazeio's ``before_middleware``)."""
    hook = _async(fn)

    def middleware(handler: Handler) -> Handler:
        async def call(request: Request) -> BaseResponse:
            result = await hook(request)
            if result is not None:
                return to_response(result)
            return await handler(request)
        return call
    return middleware


def after(fn: Callable[["Request", BaseResponse | None], Any]) -> Middleware:
    """Run ``fn(request, response)`` after the handler, always (Blazeio's ``after_middleware``).

    When the handler raised, ``response`` is ``None`` and the exception propagates after the
    hook; in an App that is only a ``ProtocolError``, ``Disconnected`` or a cancellation, since
    every other error reaches middleware as a response.  A returned response replaces the
    handler's.
    """
    hook = _async(fn)

    def middleware(handler: Handler) -> Handler:
        async def call(request: Request) -> BaseResponse:
            try:
                response = await handler(request)
            except BaseException as exc:
                try:
                    await hook(request, None)
                except Exception:  # noqa: BLE001 - logged; the error in flight must go on
                    _log.exception("after hook %r failed on a request that raised %r", fn, exc)
                raise
            replaced = await hook(request, response)
            return response if replaced is None else to_response(replaced)
        return call
    return middleware


class BaseMiddleware:
    """PyLiteFlux's middleware class: override either method (sync or async).

    ``process_request(request)`` returns ``None`` to go on, or a response that short-circuits
    (``process_response`` is then skipped).  ``process_response(request, response)`` returns the
    response to send (``None`` keeps ``response``).  An instance is a middleware: ``app.use(MyMiddleware())``.
    """

    def process_request(self, request: Request) -> Any:
        return None

    def process_response(self, request: Request, response: BaseResponse) -> Any:
        return response

    def __call__(self, handler: Handler) -> Handler:
        cls = type(self)
        on_request = (None if cls.process_request is BaseMiddleware.process_request
                      else _async(self.process_request))
        on_response = (None if cls.process_response is BaseMiddleware.process_response
                       else _async(self.process_response))

        async def call(request: Request) -> BaseResponse:
            if on_request is not None:
                early = await on_request(request)
                if early is not None:
                    return to_response(early)
            response = await handler(request)
            if on_response is not None:
                replaced = await on_response(request, response)
                if replaced is not None:  # a forgotten return keeps the response, never a 204
                    response = to_response(replaced)
            return response
        return call


class CORS:
    """Cross-origin resource sharing (Fetch standard, "CORS protocol").

    ``CORS(allow_origins=["https://app.example"], allow_methods=[...], allow_headers=[...],
    expose_headers=[...], allow_credentials=False, max_age_s=600)``; ``"*"`` allows any origin
    (or any method/header).  Preflights (OPTIONS with ``Access-Control-Request-Method``) are
    answered here, before routing: 204 with the grant, or 403 without CORS headers when the
    origin, method or a header is not allowed.  With credentials the response never says ``*``:
    the origin (and requested headers) are echoed and ``Vary: Origin`` is added.  Install it
    with ``app.use`` so preflights of every path reach it.
    """

    def __init__(self, allow_origins: Iterable[str] = (), *, allow_origin_regex: str | None = None,
                 allow_methods: Iterable[str] = ("GET", "HEAD", "POST"), allow_headers: Iterable[str] = (),
                 expose_headers: Iterable[str] = (), allow_credentials: bool = False,
                 max_age_s: int = 600) -> None:
        origins = list(allow_origins)
        self.any_origin = "*" in origins
        self.origins = frozenset(o.lower().rstrip("/") for o in origins if o != "*")
        self.origin_regex = re.compile(allow_origin_regex) if allow_origin_regex else None
        methods = [m.upper() for m in allow_methods]
        self.any_method = "*" in methods
        self.methods = frozenset(methods) - {"*"}
        headers = [h.lower() for h in allow_headers]
        self.any_header = "*" in headers
        # CORS-safelisted request headers are always allowed (Fetch §2.2.2).
        self.headers = frozenset(headers) - {"*"} | {"accept", "accept-language", "content-language",
                                                    "content-type"}
        self.expose = ", ".join(expose_headers)
        self.credentials = allow_credentials
        self.max_age_s = max_age_s
        # With any origin and no credentials the answer does not depend on Origin: no Vary needed.
        self.varies = not (self.any_origin and not allow_credentials)

    def allows(self, origin: str) -> bool:
        if self.any_origin:
            return True
        if origin.lower().rstrip("/") in self.origins:
            return True
        return self.origin_regex is not None and self.origin_regex.fullmatch(origin) is not None

    def _allow_origin(self, origin: str) -> str:
        return "*" if self.any_origin and not self.credentials else origin

    def __call__(self, handler: Handler) -> Handler:
        async def call(request: Request) -> BaseResponse:
            origin = request.headers.get("origin")
            if origin is None:
                response = await handler(request)
            elif request.method == "OPTIONS" and "access-control-request-method" in request.headers:
                return self._preflight(request, origin)
            else:
                response = await handler(request)
                if self.allows(origin):
                    fields = response.headers
                    fields.append(("Access-Control-Allow-Origin", self._allow_origin(origin)))
                    if self.credentials:
                        fields.append(("Access-Control-Allow-Credentials", "true"))
                    if self.expose:
                        fields.append(("Access-Control-Expose-Headers", self.expose))
            if self.varies:
                response.headers.append(("Vary", "Origin"))
            return response
        return call

    def _preflight(self, request: Request, origin: str) -> BaseResponse:
        method = (request.headers.get("access-control-request-method") or "").strip().upper()
        requested = request.headers.get("access-control-request-headers") or ""
        asked = [h.strip().lower() for h in requested.split(",") if h.strip()]
        vary = [("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")]
        if (not self.allows(origin) or not (self.any_method or method in self.methods)
                or not (self.any_header or all(h in self.headers for h in asked))):
            return Response(b"Disallowed CORS request\n", 403, vary)
        fields = [("Access-Control-Allow-Origin", self._allow_origin(origin)),
                  ("Access-Control-Allow-Methods", method if self.any_method and self.credentials
                   else ("*" if self.any_method else ", ".join(sorted(self.methods)))),
                  ("Access-Control-Max-Age", str(self.max_age_s))]
        if asked:
            # "*" is a literal header name when credentials are on: echo what was asked.
            fields.append(("Access-Control-Allow-Headers", ", ".join(asked) if self.any_header
                           else ", ".join(sorted(self.headers))))
        if self.credentials:
            fields.append(("Access-Control-Allow-Credentials", "true"))
        return Response(b"", 204, fields + vary)


class TrustedHosts:
    """Answer 400 unless ``Host`` names one of ``hosts`` (``"*.example.com"`` matches any
    subdomain; ``"*"`` anything).  A request without Host is refused too (RFC 9112 §3.2)."""

    def __init__(self, hosts: Iterable[str]) -> None:
        names = [h.lower() for h in hosts]
        if not names:
            raise ValueError("TrustedHosts needs at least one host")
        self.any = "*" in names
        self.exact = frozenset(h for h in names if not h.startswith("*."))
        self.suffixes = tuple(h[1:] for h in names if h.startswith("*."))

    def allows(self, host: str | None) -> bool:
        if host is None:
            return False
        if self.any:
            return True
        host = host.lower()
        if host.startswith("["):  # IPv6 literal, maybe with a port (RFC 3986 §3.2.2)
            host = host[:host.find("]") + 1]
        else:
            host = host.rpartition(":")[0] if ":" in host else host
        return host in self.exact or (bool(self.suffixes) and host.endswith(self.suffixes))

    def __call__(self, handler: Handler) -> Handler:
        async def call(request: Request) -> BaseResponse:
            if not self.allows(request.headers.get("host")):
                raise BadRequest("Invalid host header")
            return await handler(request)
        return call


class SecurityHeaders:
    """Add security headers to every response that does not set them itself.

    Defaults: ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``,
    ``Referrer-Policy: strict-origin-when-cross-origin``.  Opt in: ``hsts_max_age_s`` (HSTS,
    RFC 6797: only send it on sites served over HTTPS), ``content_security_policy``.  Pass
    ``None`` to drop a default.
    """

    def __init__(self, *, hsts_max_age_s: int | None = None, hsts_include_subdomains: bool = False,
                 hsts_preload: bool = False, content_type_options: str | None = "nosniff",
                 frame_options: str | None = "DENY",
                 referrer_policy: str | None = "strict-origin-when-cross-origin",
                 content_security_policy: str | None = None) -> None:
        fields = []
        if hsts_max_age_s is not None:
            hsts = f"max-age={int(hsts_max_age_s)}"
            if hsts_include_subdomains:
                hsts += "; includeSubDomains"
            if hsts_preload:
                hsts += "; preload"
            fields.append(("Strict-Transport-Security", hsts))
        for name, value in (("X-Content-Type-Options", content_type_options),
                            ("X-Frame-Options", frame_options),
                            ("Referrer-Policy", referrer_policy),
                            ("Content-Security-Policy", content_security_policy)):
            if value is not None:
                fields.append((name, value))
        self.fields = tuple(fields)

    def __call__(self, handler: Handler) -> Handler:
        fields = self.fields
        named = tuple((name.lower(), (name, value)) for name, value in fields)

        async def call(request: Request) -> BaseResponse:
            response = await handler(request)
            headers = response.headers
            if not headers:  # the common case: nothing to compare against
                headers.extend(fields)
            else:
                present = {key.lower() for key, _ in headers}
                headers.extend([field for lower, field in named if lower not in present])
            return response
        return call


_VALID_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


class RequestID:
    """Give every response an ``X-Request-ID``: a valid incoming one (1-128 characters of
    ``A-Z a-z 0-9 . _ : -``) is echoed and becomes ``request.id`` when ``trust_incoming``;
    else ``request.id`` is sent.  Also in ``request.state["request_id"]`` for handlers and logs."""

    def __init__(self, header: str = "X-Request-ID", *, trust_incoming: bool = True) -> None:
        self.header = header
        self.trust_incoming = trust_incoming

    def __call__(self, handler: Handler) -> Handler:
        header, trust = self.header, self.trust_incoming
        lower = header.lower()

        async def call(request: Request) -> BaseResponse:
            incoming = request.headers.get(header) if trust else None
            if incoming is not None and _VALID_ID.fullmatch(incoming):
                request.id = incoming
            rid = request.id
            request.state["request_id"] = rid
            response = await handler(request)  # errors inside come as responses: they get the id
            if field_value(response.headers, lower) is None:
                response.headers.append((header, rid))
            return response
        return call


class DefaultHeaders:
    """Add fixed fields to every response that does not set them itself (uvicorn's ``--header
    name:value``).  Names and values are checked once, here: a CR, LF or NUL in either would be
    header injection (RFC 9110 §5.5)."""

    def __init__(self, headers: Iterable[tuple[str, str]]) -> None:
        pairs: list[tuple[str, str]] = []
        for name, value in headers:
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"header name {name!r} is not an RFC 9110 token")
            if any(c in value for c in "\r\n\0"):
                raise ValueError(f"header {name!r}: the value holds CR, LF or NUL")
            pairs.append((name, value))
        self.headers = tuple(pairs)

    def __call__(self, handler: Handler) -> Handler:
        defaults = tuple((name, name.lower(), value) for name, value in self.headers)

        async def call(request: Request) -> BaseResponse:
            response = await handler(request)
            for name, lower, value in defaults:
                if field_value(response.headers, lower) is None:
                    response.headers.append((name, value))
            return response
        return call


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
