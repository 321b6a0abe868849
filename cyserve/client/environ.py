"""Proxy settings from the environment, for ``Client(trust_env=True)``.

Read once, when the Client is made:

- ``http://`` URLs go through ``http_proxy``, ``https://`` URLs through ``https_proxy``, either
  falling back to ``all_proxy``.  Each name is read in lower case, then upper case: the lower
  one wins when both are set, as in curl, wget and Python's ``urllib``.  An empty value is unset.
- Upper-case ``HTTP_PROXY`` is not read when ``REQUEST_METHOD`` is set: under CGI any client can
  set it with a ``Proxy:`` request header ("httpoxy", CVE-2016-5385); curl, Go and ``urllib``
  refuse it there too.
- A value without a scheme (``proxy.corp:3128``) is ``http://``.  Only ``http://`` proxies are
  supported (``connect``): an ``https://`` or ``socks5://`` one raises ``ValueError`` naming
  the variable, rather than sending directly what the environment meant to route elsewhere.
- ``no_proxy`` (or ``NO_PROXY``) lists hosts to reach directly, separated by commas or spaces:
  ``*`` (every host); a domain, with or without a leading ``.`` or ``*.``, matching itself and
  every subdomain (``example.com`` covers ``api.example.com``, not ``badexample.com``); an IP
  address, or a CIDR block (``10.0.0.0/8``, ``fd00::/8``) matched against hosts given as IP
  literals (names are not resolved); any of these with ``:port`` to match that port only.
  Entries that are none of these are skipped.
"""
from __future__ import annotations

import ipaddress
from typing import Mapping, NamedTuple, Union

from cyserve.client.connect import Proxy
from cyserve.client.urls import Origin, Target

__all__ = ["EnvProxies", "NoProxy"]

_Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


def _lookup(environ: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """(variable, value) of the first non-empty of ``name`` and ``NAME``."""
    names = [name, name.upper()]
    if name == "http_proxy" and environ.get("REQUEST_METHOD"):
        names.pop()  # httpoxy: under CGI, HTTP_PROXY is the client's Proxy header
    for var in names:
        value = environ.get(var, "").strip()
        if value:
            return var, value
    return None


def _proxy(found: tuple[str, str] | None) -> Proxy | None:
    if found is None:
        return None
    var, url = found
    if "://" not in url:
        url = "http://" + url
    try:
        return Proxy.parse(url)
    except ValueError:
        # The value is not repeated: it may hold the proxy's password.
        scheme = url.partition("://")[0].lower()
        what = "names no host" if scheme == "http" else f"names a {scheme}:// proxy"
        raise ValueError(f"trust_env: {var} {what}; only http:// proxies are supported (unset "
                         "it, or pass proxy= explicitly)") from None


class _Entry(NamedTuple):
    domain: str | None          # a host name, lower case, without a leading dot
    network: _Network | None    # an address or block, matched against IP literals
    port: int | None            # None: any port


def _parse_entry(raw: str) -> _Entry | None:
    text = raw.strip().lower()
    port = None
    if text.startswith("["):                      # [v6] or [v6]:port
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            return None
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                return None
            port = int(rest[1:])
        text = host
    else:
        try:
            return _Entry(None, ipaddress.ip_network(text, strict=False), None)
        except ValueError:
            pass                                  # not a bare address or block
        host, sep, maybe_port = text.rpartition(":")
        if sep and maybe_port.isdigit() and ":" not in host:
            text, port = host, int(maybe_port)
    try:
        return _Entry(None, ipaddress.ip_network(text, strict=False), port)
    except ValueError:
        pass
    domain = text.removeprefix("*").lstrip(".")
    if not domain or "/" in domain or ":" in domain or "*" in domain:
        return None
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")  # as split_url spells the host
        except UnicodeError:
            return None
    return _Entry(domain, None, port)


class NoProxy:
    """A parsed ``no_proxy``: ``matches(host, port)`` says the host is reached directly."""

    __slots__ = ("_all", "_entries")

    def __init__(self, value: str) -> None:
        items = value.replace(" ", ",").split(",")
        self._all = any(item.strip() == "*" for item in items)
        entries = []
        for item in items:
            if item.strip() and item.strip() != "*":
                entry = _parse_entry(item)
                if entry is not None:
                    entries.append(entry)
        self._entries = tuple(entries)

    def matches(self, host: str, port: int) -> bool:
        if self._all:
            return True
        host = host.lower().strip("[]").rstrip(".")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        for domain, network, entry_port in self._entries:
            if entry_port is not None and entry_port != port:
                continue
            if network is not None:
                if address is not None and address.version == network.version \
                        and address in network:
                    return True
            elif domain is not None and (host == domain or host.endswith("." + domain)):
                return True
        return False


_CACHED_ORIGINS = 1024


class EnvProxies:
    """The proxies the environment names, per URL scheme, and its ``no_proxy``."""

    __slots__ = ("http", "https", "no_proxy", "_by_origin")

    def __init__(self, http: Proxy | None, https: Proxy | None, no_proxy: NoProxy) -> None:
        self.http = http
        self.https = https
        self.no_proxy = no_proxy
        # The answer per origin: a client talks to a few origins, many times each.
        self._by_origin: dict[Origin, Proxy | None] = {}

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "EnvProxies":
        every = _lookup(environ, "all_proxy")
        http = _proxy(_lookup(environ, "http_proxy") or every)
        https = _proxy(_lookup(environ, "https_proxy") or every)
        no_proxy = _lookup(environ, "no_proxy")
        return cls(http, https, NoProxy(no_proxy[1] if no_proxy else ""))

    def proxy_for(self, target: Target) -> Proxy | None:
        origin = target.origin
        try:
            return self._by_origin[origin]
        except KeyError:
            pass
        proxy = self.https if origin.scheme == "https" else self.http
        if proxy is not None and self.no_proxy.matches(origin.host, origin.port):
            proxy = None
        if len(self._by_origin) >= _CACHED_ORIGINS:
            self._by_origin.clear()
        self._by_origin[origin] = proxy
        return proxy
