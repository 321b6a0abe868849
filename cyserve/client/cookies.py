"""A cookie jar (RFC 6265 §5, with RFC 6265bis's rule that only secure origins set Secure
cookies).  Opt-in: ``Client(cookies=True)`` or ``Client(cookies=CookieJar())``.

Storing (§5.3): Max-Age wins over Expires; a Domain attribute must domain-match the request host
(else the cookie is ignored) and makes the cookie apply to subdomains, its absence makes it
host-only; IP hosts only take host-only cookies; a missing or relative Path becomes the request
path's directory; an expiry in the past deletes the cookie.  Sending (§5.4): host and path must
match, Secure cookies only over https, expired ones are dropped; longer paths first.
"""
from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field
from http.cookiejar import http2time  # type: ignore[attr-defined]  # public, not in typeshed
from typing import Iterator
from urllib.parse import urlsplit

__all__ = ["Cookie", "CookieJar"]


@dataclass
class Cookie:
    name: str
    value: str
    domain: str
    path: str = "/"
    host_only: bool = True
    secure: bool = False
    http_only: bool = False
    expires: float | None = None  # epoch seconds; None: a session cookie
    created: float = field(default_factory=time.time)

    def expired(self, now: float) -> bool:
        return self.expires is not None and self.expires <= now


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def domain_match(host: str, domain: str) -> bool:
    """RFC 6265 §5.1.3."""
    if host == domain:
        return True
    return host.endswith("." + domain) and not _is_ip(host)


def path_match(request_path: str, cookie_path: str) -> bool:
    """RFC 6265 §5.1.4."""
    if request_path == cookie_path:
        return True
    if request_path.startswith(cookie_path):
        return cookie_path.endswith("/") or request_path[len(cookie_path)] == "/"
    return False


def default_path(request_path: str) -> str:
    """RFC 6265 §5.1.4: the request path up to (not including) its last '/'."""
    if not request_path.startswith("/") or request_path.count("/") == 1:
        return "/"
    return request_path[:request_path.rindex("/")]


class CookieJar:
    """Cookies keyed by (domain, path, name)."""

    def __init__(self) -> None:
        self._cookies: dict[tuple[str, str, str], Cookie] = {}

    def __iter__(self) -> Iterator[Cookie]:
        return iter(list(self._cookies.values()))

    def __len__(self) -> int:
        return len(self._cookies)

    def clear(self) -> None:
        self._cookies.clear()

    def set(self, name: str, value: str, domain: str, path: str = "/", secure: bool = False) -> None:
        """Add a host-only cookie by hand."""
        cookie = Cookie(name, value, domain.lower(), path, True, secure)
        self._cookies[(cookie.domain, cookie.path, name)] = cookie

    def get(self, name: str, domain: str | None = None) -> str | None:
        for cookie in self._cookies.values():
            if cookie.name == name and (domain is None or cookie.domain == domain.lower()):
                return cookie.value
        return None

    # ------------------------------------------------------------------ storing
    def extract(self, url: str, set_cookie_values: list[str]) -> None:
        """Store the ``Set-Cookie`` field values of a response to ``url``."""
        if not set_cookie_values:
            return
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        secure_origin = parts.scheme == "https"
        now = time.time()
        for raw in set_cookie_values:
            cookie = self._parse(raw, host, parts.path or "/", secure_origin, now)
            if cookie is None:
                continue
            key = (cookie.domain, cookie.path, cookie.name)
            if cookie.expired(now):
                self._cookies.pop(key, None)
            else:
                old = self._cookies.get(key)
                if old is not None:
                    cookie.created = old.created   # §5.3 step 11.3
                self._cookies[key] = cookie

    def _parse(self, raw: str, host: str, request_path: str, secure_origin: bool,
               now: float) -> Cookie | None:
        pair, *attrs = raw.split(";")
        name, sep, value = pair.partition("=")
        if not sep:
            return None
        name, value = name.strip(), value.strip()
        if not name:
            return None
        expires: float | None = None
        max_age: float | None = None
        domain = ""
        path = ""
        secure = http_only = False
        for attr in attrs:
            key, _, val = attr.partition("=")
            key, val = key.strip().lower(), val.strip()
            if key == "expires":
                parsed = http2time(val)
                if parsed is not None:
                    expires = float(parsed)
            elif key == "max-age":
                try:
                    seconds = int(val)
                except ValueError:
                    continue
                max_age = now + seconds if seconds > 0 else 0.0
            elif key == "domain":
                domain = val.lstrip(".").lower()
            elif key == "path":
                path = val
            elif key == "secure":
                secure = True
            elif key == "httponly":
                http_only = True
        if secure and not secure_origin:
            return None   # RFC 6265bis §5.7 step 16: only secure origins set Secure cookies
        if domain:
            if not domain_match(host, domain) or (_is_ip(host) and domain != host):
                return None   # §5.3 step 6: a domain the host does not belong to
            if "." not in domain and domain != host:
                return None   # a bare top-level label (no public-suffix list here)
            host_only = domain == host and _is_ip(host)
        else:
            domain = host
            host_only = True
        if not path.startswith("/"):
            path = default_path(request_path)
        return Cookie(name, value, domain, path, host_only, secure, http_only,
                      max_age if max_age is not None else expires)

    # ------------------------------------------------------------------ sending
    def header_for(self, url: str) -> str | None:
        """The ``Cookie`` field value for a request to ``url``, or None."""
        if not self._cookies:
            return None
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        path = parts.path or "/"
        secure = parts.scheme == "https"
        now = time.time()
        chosen = []
        for key, cookie in list(self._cookies.items()):
            if cookie.expired(now):
                del self._cookies[key]
                continue
            if cookie.host_only:
                if host != cookie.domain:
                    continue
            elif not domain_match(host, cookie.domain):
                continue
            if not path_match(path, cookie.path) or (cookie.secure and not secure):
                continue
            chosen.append(cookie)
        if not chosen:
            return None
        chosen.sort(key=lambda c: (-len(c.path), c.created))
        return "; ".join(f"{c.name}={c.value}" for c in chosen)
