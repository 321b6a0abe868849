"""CSRF protection for cookie-authenticated forms: ``app.use(CSRF())``.

A browser attaches cookies to a cross-site form post, so for the unsafe methods (RFC 9110 §9.2.1:
POST, PUT, PATCH, DELETE) the middleware asks two questions before the handler runs, and answers
403 ``Forbidden`` with the reason when either fails:

1. **Where does it come from?**  ``Origin`` (RFC 6454 §7; browsers send it on every non-GET/HEAD
   request, Fetch §3.1) must be this request's own origin (``request.url``: scheme, Host, port) or
   one of ``trusted_origins``; without ``Origin`` the origin of ``Referer`` (RFC 9110 §10.1.3)
   must be.  ``Origin: null`` (sandboxed frames, some redirects) is refused.  With neither header
   the request goes on to the token check (no browser omits both on a form post; a non-browser
   client cannot be forged into one) unless ``require_origin=True``.
2. **Does it carry the token?**  Double submit: the token in a cookie (``csrf_token(request)``
   sets it) and the same token in the ``X-CSRF-Token`` header or the ``csrf_token`` form field
   (urlencoded or multipart; the form is parsed with default ``FormLimits`` and cached for the
   handler), compared with ``hmac.compare_digest``.  A cross-site page can make the browser send
   the cookie but can neither read it nor set it (``__Host-`` prefix when ``secure``), so it
   cannot put the same value in the form.

What "cookie-authenticated" means is the application's: by default every unsafe request is
checked (an API authenticated by a header then sends the token header too, or is exempted);
``sensitive_cookies=["session"]`` checks only requests carrying one of those cookies, since a
request without them has no ambient authority to abuse.  ``exempt`` takes route templates
(``"/hooks/{provider}"``, same syntax as routes) that are never checked, e.g. signed webhooks;
``app.group(prefix, middlewares=[csrf])`` protects one group only.  Safe methods are never checked.

The token handed to pages is masked afresh on every call (a random pad XORed onto the secret, as
Django does), so a compressed page does not repeat the secret byte for byte (BREACH).  Templates:
``templates.env.globals["csrf_token"] = csrf_token`` then ``{{ csrf_token() }}``.
"""
from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from typing import TYPE_CHECKING, Any, Iterable
from urllib.parse import urlsplit

from cyserve.context import current_request
from cyserve.errors import Forbidden
from cyserve.response import BaseResponse, cookie_header_value
from cyserve.routing import Router

if TYPE_CHECKING:
    from cyserve.middleware import Handler
    from cyserve.request import Request

__all__ = ["CSRF", "csrf_token"]

_UNSAFE = frozenset(("POST", "PUT", "PATCH", "DELETE"))  # RFC 9110 §9.2.1: all but these are safe
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
_SECRET_BYTES = 32
_DEFAULT_PORTS = {"http": 80, "https": 443}
_STATE = "csrf"  # the request.state key of the per-request _Token

Origin = tuple[str, str, int]  # (scheme, host, port), lower-cased, default port filled in


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes | None:
    try:
        raw = text.encode("ascii")
        return base64.b64decode(raw + b"=" * (-len(raw) % 4), altchars=b"-_", validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        return None


def _unmasked(token: str) -> bytes | None:
    """The secret a submitted token stands for: masked (pad + pad^secret) or the cookie's own."""
    raw = _decode(token)
    if raw is None:
        return None
    if len(raw) == 2 * _SECRET_BYTES:
        pad, masked = raw[:_SECRET_BYTES], raw[_SECRET_BYTES:]
        return bytes(a ^ b for a, b in zip(pad, masked))
    return raw if len(raw) == _SECRET_BYTES else None


def _origin(url: str) -> Origin | None:
    """(scheme, host, port) of an absolute http(s) URL; None for anything else."""
    try:
        parts = urlsplit(url.strip())
        scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
    except ValueError:  # a malformed port or IPv6 literal
        return None
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    return scheme, host, port if port is not None else _DEFAULT_PORTS[scheme]


def _show(origin: Origin) -> str:
    scheme, host, port = origin
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" if port == _DEFAULT_PORTS[scheme] else f"{scheme}://{host}:{port}"


class _Token:
    """One request's CSRF secret: read from the cookie, or made when a page first asks for it."""

    __slots__ = ("csrf", "request", "secret", "issued")

    def __init__(self, csrf: CSRF, request: Request) -> None:
        self.csrf = csrf
        self.request = request
        self.secret: bytes | None = None
        self.issued = False  # a new secret: the response sets the cookie

    def masked(self) -> str:
        secret = self.secret
        if secret is None:
            secret = self.csrf._cookie_secret(self.request)
            if secret is None:
                secret = secrets.token_bytes(_SECRET_BYTES)
                self.issued = True
            self.secret = secret
        pad = secrets.token_bytes(_SECRET_BYTES)
        return _encode(pad + bytes(a ^ b for a, b in zip(pad, secret)))


def csrf_token(request: Request | None = None) -> str:
    """The token to put in a form's ``csrf_token`` field or the ``X-CSRF-Token`` header (a new
    masking on each call; all are valid).  Sets the CSRF cookie on this response when the client
    has none.  Without ``request``, the current one (so templates can call it bare)."""
    if request is None:
        request = current_request()
    token = request.state.get(_STATE)
    if token is None:
        raise RuntimeError("csrf_token() needs the CSRF middleware on this route: app.use(CSRF())")
    masked: str = token.masked()
    return masked


class CSRF:
    """The CSRF middleware (``handler -> handler``); see the module docstring.

    ``trusted_origins``: other origins allowed to post (``"https://app.example"``,
    ``"https://*.example.com"`` for any subdomain); behind a TLS-terminating proxy list the public
    ``https://`` origin, as the server sees http.  ``exempt``: route templates never checked.
    ``sensitive_cookies``: check only requests carrying one of these cookies.  The cookie
    (``cookie_name``: ``__Host-csrf`` when ``secure``, else ``csrf``) is not HttpOnly, so a page's
    script may copy it into the header; it is a key to nothing but forms (as in Django).
    """

    def __init__(self, *, trusted_origins: Iterable[str] = (), exempt: Iterable[str] = (),
                 sensitive_cookies: Iterable[str] | None = None, require_origin: bool = False,
                 header_name: str = "X-CSRF-Token", field_name: str = "csrf_token",
                 cookie_name: str | None = None, secure: bool = True, samesite: str | None = "lax",
                 max_age_s: int | None = 365 * 24 * 3600, httponly: bool = False) -> None:
        self.trusted: set[Origin] = set()
        self.trusted_suffixes: list[tuple[str, str, int]] = []
        for text in trusted_origins:
            wildcard = "://*." in text
            origin = _origin(text.replace("://*.", "://", 1) if wildcard else text)
            if origin is None:
                raise ValueError(f"trusted origin {text!r} is not scheme://host[:port]")
            if wildcard:
                self.trusted_suffixes.append((origin[0], "." + origin[1], origin[2]))
            else:
                self.trusted.add(origin)
        templates = list(exempt)
        self.exempt: Router | None = None
        if templates:
            self.exempt = Router()
            for template in templates:
                self.exempt.add(template, _never_called, ("POST",), include_in_schema=False)
        self.sensitive = None if sensitive_cookies is None else tuple(sensitive_cookies)
        self.require_origin = require_origin
        self.header_name = header_name
        self.field_name = field_name
        self.cookie_name = cookie_name or ("__Host-csrf" if secure else "csrf")
        self._attributes: dict[str, Any] = {"max_age": max_age_s, "path": "/", "secure": secure,
                                            "httponly": httponly, "samesite": samesite}
        cookie_header_value(self.cookie_name, "x", **self._attributes)  # misconfiguration fails here

    # ------------------------------------------------------------------ the checks
    def _cookie_secret(self, request: Request) -> bytes | None:
        value = request.cookies.get(self.cookie_name)
        if value is None:
            return None
        secret = _decode(value)
        return secret if secret is not None and len(secret) == _SECRET_BYTES else None

    def _trusts(self, origin: Origin, request: Request) -> bool:
        if origin in self.trusted:
            return True
        scheme, host, port = origin
        for t_scheme, suffix, t_port in self.trusted_suffixes:
            if scheme == t_scheme and port == t_port and host.endswith(suffix):
                return True
        own = request.url
        return origin == (own.scheme, own.host.strip("[]"), own.port)

    def origin_refusal(self, request: Request) -> str | None:
        """Why the request's Origin (or Referer) is not trusted; None when it is."""
        headers = request.headers
        sent = headers.get("origin")
        name = "Origin"
        if sent is None:
            sent, name = headers.get("referer"), "Referer"
            if sent is None:
                return "no Origin or Referer header" if self.require_origin else None
        if name == "Origin" and sent.strip() == "null":
            return "Origin null (an opaque origin) is not trusted"
        origin = _origin(sent)
        if origin is None:
            return f"{name} {sent[:100]!r} is not an http(s) origin"
        if self._trusts(origin, request):
            return None
        return (f"{name} {_show(origin)} is neither this site's origin "
                f"({request.url.scheme}://{request.url.netloc}) nor a trusted one")

    async def token_refusal(self, request: Request) -> str | None:
        """Why the double-submit token is missing or wrong; None when it matches the cookie."""
        expected = self._cookie_secret(request)
        if expected is None:
            return f"the {self.cookie_name} cookie is missing or malformed"
        sent = request.headers.get(self.header_name)
        if sent is None:
            content_type = (request.headers.get("content-type") or "").split(";", 1)[0]
            if content_type.strip().lower() in _FORMS:
                value = (await request.form()).get(self.field_name)
                sent = value if isinstance(value, str) else None
        if sent is None:
            return (f"the CSRF token is missing: send it in the {self.header_name} header or "
                    f"the {self.field_name} form field")
        secret = _unmasked(sent)
        # Constant time: how much of a guess matched must not show in the timing.
        if secret is None or not hmac.compare_digest(secret, expected):
            return "the CSRF token does not match the cookie"
        return None

    def _applies(self, request: Request) -> bool:
        if self.sensitive is not None:
            cookies = request.cookies
            if not any(name in cookies for name in self.sensitive):
                return False
        return self.exempt is None or not self.exempt.matches_path(request.path)

    # ------------------------------------------------------------------ the middleware
    def __call__(self, handler: Handler) -> Handler:
        async def call(request: Request) -> BaseResponse:
            if request.method in _UNSAFE and self._applies(request):
                reason = self.origin_refusal(request) or await self.token_refusal(request)
                if reason is not None:
                    raise Forbidden(f"CSRF check failed: {reason}")
            token = _Token(self, request)
            request.state[_STATE] = token
            response = await handler(request)
            if token.secret is not None:  # a page holds the token: it depends on the cookie
                response.headers.append(("Vary", "Cookie"))
                if token.issued:
                    response.headers.append(("Set-Cookie", cookie_header_value(
                        self.cookie_name, _encode(token.secret), **self._attributes)))
            return response
        return call


async def _never_called(request: Request, **params: Any) -> None:
    """The endpoint of an exempt template: only its path is ever matched."""
    raise AssertionError("CSRF exempt templates are matched, never called")
