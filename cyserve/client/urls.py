"""URL handling for the client: joining with ``base_url``, query params, the request target.

A ``Target`` is what one hop needs: the origin the pool keys on (scheme, host, port), the
``Host`` field value and the origin-form request target, percent-encoded to ASCII (RFC 9112
§3.2.1).  Only ``http`` and ``https`` URLs are accepted (a caller's mistake is a ``ValueError``).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Iterable, Mapping, NamedTuple
from urllib.parse import quote, urlencode, urljoin, urlsplit, urlunsplit

__all__ = ["Origin", "Target", "split_url", "merge_url", "join_location"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters left as they are in a path or query: RFC 3986 reserved + unreserved + '%'.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


class Origin(NamedTuple):
    """RFC 6454 origin: the unit of connection reuse and of credential scope."""

    scheme: str
    host: str
    port: int


class Target(NamedTuple):
    url: str  # the absolute URL, normalised
    origin: Origin
    host_header: str  # the Host field value (port only when not the default)
    target: str  # origin-form: path?query
    userinfo: tuple[str, str] | None


def split_url(url: str) -> Target:
    """Check and split an absolute http(s) URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"only http:// and https:// URLs are supported, got {url!r}")
    host = parts.hostname
    if not host:
        raise ValueError(f"URL has no host: {url!r}")
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise ValueError(f"invalid port in {url!r}") from exc
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        host = host.encode("idna").decode("ascii")
    if any(c in host for c in " \t\r\n/\\@"):
        raise ValueError(f"invalid host in {url!r}")
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    query = quote(parts.query, safe=_QUERY_SAFE) if parts.query else ""
    target = path + ("?" + query if query else "")
    host_in_url = f"[{host}]" if ":" in host else host
    host_header = host_in_url if port == _DEFAULT_PORTS[scheme] else f"{host_in_url}:{port}"
    userinfo = None
    if parts.username is not None:
        from urllib.parse import unquote
        userinfo = (unquote(parts.username), unquote(parts.password or ""))
    normal = urlunsplit((scheme, host_header, path, query, ""))
    return Target(normal, Origin(scheme, host, port), host_header, target, userinfo)


def _pairs(params: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> list[tuple[str, str]]:
    items = params.items() if isinstance(params, Mapping) else params
    out: list[tuple[str, str]] = []
    for key, value in items:
        if isinstance(value, (list, tuple)):
            out.extend((str(key), _text(v)) for v in value)
        else:
            out.append((str(key), _text(value)))
    return out


def _text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    return str(value)


@lru_cache(maxsize=1024)
def _join(base_url: str, url: str) -> str:
    if urlsplit(url).scheme:
        return url
    base = base_url if base_url.endswith("/") else base_url + "/"
    return urljoin(base, url.lstrip("/")) if not url.startswith("//") else urljoin(base, url)


def merge_url(base_url: str | None, url: str, params: Any = None) -> str:
    """``url`` resolved against ``base_url`` (a relative path is appended to the base path),
    with ``params`` added to its query."""
    if base_url:
        url = _join(base_url, url)   # cached: a client repeats the same few paths
    if params:
        extra = urlencode(_pairs(params))
        if extra:
            parts = urlsplit(url)
            query = parts.query + "&" + extra if parts.query else extra
            url = urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
    return url


def join_location(current: str, location: str) -> str:
    """A redirect's ``Location`` (absolute, scheme-relative, absolute-path or relative) resolved
    against the URL that answered it (RFC 9110 §10.2.2); the fragment is dropped."""
    location = location.strip()
    joined = urljoin(current, location)
    parts = urlsplit(joined)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))
