"""Who the client is behind a reverse proxy: trusted peers, ``X-Forwarded-*`` and RFC 7239
``Forwarded``.

A proxy in front of the server makes every connection come from the proxy; what the client
was (its address, the scheme it used, the host it asked for) travels in headers the proxy adds.
Anyone can send those headers, so they are believed only from a *trusted* peer
(``TrustedPeers``, uvicorn's ``--forwarded-allow-ips``), and even then only the part the trusted
chain wrote:

``X-Forwarded-For`` is a list each proxy appends the address it saw to.  Walking it from the
right, addresses of trusted proxies are skipped; the first untrusted one is the client (the
anti-spoofing rule: everything to its left came from the client itself and may be made up).
When every hop is trusted (the client runs on a trusted host, or ``*`` trusts everyone), the
left-most hop is the client.  A hop that is not an IP address (empty, garbage) where the walk
stops resolves no client: the peer's address stays.  ``X-Forwarded-Proto`` and
``X-Forwarded-Host`` are taken from their right-most value (the nearest proxy's).

``Forwarded`` (RFC 7239) carries the same facts per hop, one element per proxy
(``for=``, ``proto=``, ``host=``): the element is chosen by the same walk over its ``for=``
nodes, and ``proto``/``host`` come from that element, so all three describe the same hop.
Obfuscated nodes (``for=_hidden``, §6.3) and ``for=unknown`` (§6.2) stop the walk with no client.

When both kinds are present (``source="auto"``), ``X-Forwarded-*`` wins and ``Forwarded`` is
ignored as a whole: the proxies in common use (nginx, HAProxy's ``forwardfor``, Caddy, Traefik,
cloud load balancers) write ``X-Forwarded-For`` and pass a client's own ``Forwarded`` through
untouched, so preferring ``Forwarded`` would let any client choose its address; mixing the two
field by field would let a client's ``Forwarded: host=`` fill in what the proxy left out.  A
proxy that writes only ``Forwarded`` (and passes ``X-Forwarded-*`` through) is configured with
``source="forwarded"``.

Deployment rule (as for every proxy-header reader): the trusted proxy must set or strip the
headers it forwards; ``X-Forwarded-Host`` and ``X-Forwarded-Proto`` passed through from a client
by a proxy that does not set them are the client's word.
"""
from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol, Sequence

from cyserve.errors import BadRequest

if TYPE_CHECKING:
    from cyserve.middleware import Handler
    from cyserve.request import Request
    from cyserve.response import BaseResponse

__all__ = ["Forwarded", "ProxyHeaders", "TrustedPeers", "UNIX_PEER", "peer_host", "resolve"]

#: What a trusted proxy said about a request: ``(client, scheme, host)``, each ``None`` when it
#: said nothing usable of it.  ``client`` is ``(address, port)`` with port 0 when not given;
#: ``scheme`` is ``"http"`` or ``"https"``; ``host`` is a ``uri-host[:port]`` authority.
Forwarded = tuple[tuple[str, int] | None, str | None, str | None]

#: The peer "address" of a connection on a Unix socket: what nginx's ``$remote_addr`` says for
#: one, and the literal that trusts such peers in ``TrustedPeers``.
UNIX_PEER = "unix:"

_SOURCES = ("auto", "x-forwarded", "forwarded")
_CACHE_MAX = 4096           # entries in each memory of answers (trust, nodes, header values)
_CACHE_KEY_MAX = 64         # an IPv6 address with a zone id fits; longer keys are not kept

# An entry that looks like an address or a network (hex digits, dots, colons, a prefix length) but
# does not parse as one is a typo: refused rather than kept as a literal that never matches.
_ADDRESS_LIKE = re.compile(r"[0-9A-Fa-f.:]*[.:][0-9A-Fa-f.:]*(?:%[^/]*)?(?:/[0-9]*)?")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedPeers:
    """The peers whose proxy headers are believed, parsed once.

    ``spec``: a comma-separated string or a list of entries, each an IPv4 or IPv6 address, a
    CIDR network (``10.0.0.0/8``; host bits are masked, as nginx's ``set_real_ip_from``), ``*``
    (everyone), or a literal compared as written, such as ``unix:`` (``UNIX_PEER``: peers on a
    Unix socket).  An entry that looks like an address but is not one (``10.0.0.300``) is a
    ``ValueError``.  IPv4-mapped IPv6 peers (``::ffff:10.0.0.1``, seen on a dual-stack listener)
    match their IPv4 entries.

    ``host in peers`` is a set look-up for a listed address written in its usual form (the
    common case: one proxy); other hosts are parsed once and their answer cached.
    """

    __slots__ = ("everyone", "_exact", "_networks", "_cache", "_spec")

    def __init__(self, spec: str | Iterable[str] = "127.0.0.1,::1") -> None:
        entries = spec.split(",") if isinstance(spec, str) else list(spec)
        self.everyone = False
        exact: set[str] = set()
        networks: list[Network] = []
        for raw in entries:
            if not isinstance(raw, str):
                raise TypeError(f"trusted peers are strings, got {raw!r}")
            entry = raw.strip()
            if not entry:
                continue
            if entry == "*":
                self.everyone = True
                continue
            try:
                if "/" in entry:
                    networks.append(ipaddress.ip_network(entry, strict=False))
                else:
                    exact.add(str(_unmapped(ipaddress.ip_address(entry))))
            except ValueError:
                if _ADDRESS_LIKE.fullmatch(entry):
                    raise ValueError(f"trusted peer {entry!r} is neither an IP address nor a "
                                     f"network") from None
                exact.add(entry)
        self._exact = frozenset(exact)
        self._networks = tuple(networks)
        self._cache: dict[str, bool] = {}
        self._spec = "*" if self.everyone else ", ".join(
            sorted(exact) + [str(net) for net in networks])

    def __contains__(self, host: object) -> bool:
        if self.everyone:
            return True
        if type(host) is not str or not host:
            return False
        if host in self._exact:
            return True
        cached = self._cache.get(host)
        if cached is None:
            cached = self._lookup(host)
            if len(host) <= _CACHE_KEY_MAX:
                if len(self._cache) >= _CACHE_MAX:
                    self._cache.clear()  # bounded: a flood of distinct hosts only costs parsing
                self._cache[host] = cached
        return cached

    def _lookup(self, host: str) -> bool:
        try:
            address = _unmapped(ipaddress.ip_address(host))
        except ValueError:
            return False  # not an address and not a listed literal (those hit _exact)
        return str(address) in self._exact or any(address in net for net in self._networks)

    def __repr__(self) -> str:
        return f"TrustedPeers({self._spec!r})"


def _unmapped(address: Address) -> Address:
    if address.version == 6:
        mapped = address.ipv4_mapped
        if mapped is not None:
            return mapped
    return address


# ----------------------------------------------------------------------------- nodes and values
_PORT = re.compile(r"[0-9]{1,5}")
_OBFUSCATED = re.compile(r"_[A-Za-z0-9._-]+")  # RFC 7239 §6.3 obfnode / obfport


def _port(text: str, obfuscated_ok: bool) -> int | None:
    if _PORT.fullmatch(text):
        port = int(text)
        return port if port <= 65535 else None
    if obfuscated_ok and _OBFUSCATED.fullmatch(text):
        return 0  # an obfuscated port (RFC 7239 §6.3) says there was one, not which
    return None


def _ip(text: str, version: int) -> str | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return str(address) if address.version == version else None


_NO_NODE = ("", -1)  # a cached "not a node"
_xff_nodes: dict[str, tuple[str, int]] = {}
_forwarded_nodes: dict[str, tuple[str, int]] = {}


def _cached(parse: Callable[[str], tuple[str, int] | None], cache: dict[str, tuple[str, int]]
            ) -> Callable[[str], tuple[str, int] | None]:
    """``parse`` behind a bounded cache: the same clients and proxies come back request after
    request, and parsing an address (``ipaddress``) costs microseconds where a look-up costs
    tens of nanoseconds."""
    def node(text: str) -> tuple[str, int] | None:
        found = cache.get(text)
        if found is None:
            found = parse(text) or _NO_NODE
            if len(text) <= _CACHE_KEY_MAX:
                if len(cache) >= _CACHE_MAX:
                    cache.clear()  # bounded: a flood of distinct values only costs parsing
                cache[text] = found
        return None if found is _NO_NODE else found
    return node


def _parse_xff_node(text: str) -> tuple[str, int] | None:
    """An ``X-Forwarded-For`` hop as ``(address, port)``: ``1.2.3.4``, ``1.2.3.4:80``,
    ``2001:db8::1``, ``[2001:db8::1]`` or ``[2001:db8::1]:80`` (the de-facto forms; the header
    has no RFC).  Anything else is ``None``."""
    if text[:1] == "[":
        end = text.find("]")
        host = _ip(text[1:end], 6) if end > 0 else None
        rest = text[end + 1:]
        if host is None or (rest and rest[:1] != ":"):
            return None
        port = _port(rest[1:], False) if rest else 0
        return None if port is None else (host, port)
    if text.count(":") == 1:
        name, _, digits = text.partition(":")
        host = _ip(name, 4)
        port = _port(digits, False)
        return None if host is None or port is None else (host, port)
    address = _ip(text, 4) or _ip(text, 6)
    return None if address is None else (address, 0)


def _parse_forwarded_node(text: str) -> tuple[str, int] | None:
    """A ``for=`` node (RFC 7239 §6): ``nodename [":" node-port]`` with an IPv4 address or a
    bracketed IPv6 one; ``unknown`` (§6.2) and obfuscated names (§6.3) are ``None``, as is
    anything malformed (a bare IPv6 address included: §6 requires the brackets)."""
    if text[:1] == "[":
        end = text.find("]")
        host = _ip(text[1:end], 6) if end > 0 else None
        rest = text[end + 1:]
        if host is None or (rest and rest[:1] != ":"):
            return None
        port = _port(rest[1:], True) if rest else 0
        return None if port is None else (host, port)
    name, colon, digits = text.partition(":")
    host = _ip(name, 4)
    port = _port(digits, True) if colon else 0
    return None if host is None or port is None else (host, port)


_xff_node = _cached(_parse_xff_node, _xff_nodes)
_forwarded_node = _cached(_parse_forwarded_node, _forwarded_nodes)


# uri-host [":" port] (RFC 9110 §7.2, RFC 3986 §3.2.2) for X-Forwarded-Host and host=.  The
# reg-name is narrowed to what DNS names use (no percent-encoding, no sub-delims): the value goes
# into absolute URLs the app hands out, where "@", "/", quotes or spaces would change their
# meaning.  A value that does not match is ignored (the request's own Host stays).
_AUTHORITY = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(?::([0-9]{1,5}))?")


def _authority(text: str) -> str | None:
    match = _AUTHORITY.fullmatch(text)
    if match is None:
        return None
    port = match.group(1)
    if port is not None and int(port) > 65535:
        return None
    if text[:1] == "[" and _ip(text[1:text.index("]")], 6) is None:
        return None
    return text.lower()


# X-Forwarded-Proto and proto= name the scheme the client used.  cyserve's URLs are http(s);
# ws/wss (uvicorn accepts them, some proxies send them on a WebSocket handshake) say the same
# thing about TLS, so they map to http/https.  Other schemes are ignored.
_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


# ------------------------------------------------------------------------------- Forwarded
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"                # RFC 9110 §5.6.2
_QUOTED = r'"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[^\x00-\x08\x0a-\x1f\x7f])*"'  # §5.6.4
_PAIR = re.compile(rf"({_TOKEN})=({_TOKEN}|{_QUOTED})")
_OWS = re.compile(r"[ \t]*")
_QUOTED_PAIR = re.compile(r"\\(.)")


def _forwarded_elements(value: str) -> list[dict[str, str]]:
    """The elements of a ``Forwarded`` value (RFC 7239 §4), each ``{parameter: value}`` with
    names lower-cased (§4: case-insensitive) and quoted-strings unescaped.

    Empty list elements are skipped (RFC 9110 §5.6.1); whitespace is allowed around ``;`` and
    ``,`` (senders put it there, though §4's grammar has none), never around ``=``.  Anything
    else that does not parse, or a parameter given twice in one element (§4), is a
    ``BadRequest``: a trusted proxy never writes one, so it came from the client, and neither
    believing it nor falling back to the proxy's own address (which would let the client stand
    for everyone behind that proxy, e.g. in a rate limit) is right.
    """
    elements: list[dict[str, str]] = []
    current: dict[str, str] = {}
    pos, end = 0, len(value)
    while True:
        pos = _OWS.match(value, pos).end()  # type: ignore[union-attr]  # always matches
        if pos < end and value[pos] not in ",;":
            pair = _PAIR.match(value, pos)
            if pair is None:
                raise BadRequest("malformed Forwarded header (RFC 7239 §4)")
            name, raw = pair.group(1).lower(), pair.group(2)
            if name in current:
                raise BadRequest(f"Forwarded element names {name!r} twice (RFC 7239 §4)")
            current[name] = _QUOTED_PAIR.sub(r"\1", raw[1:-1]) if raw[:1] == '"' else raw
            pos = _OWS.match(value, pair.end()).end()  # type: ignore[union-attr]
        if pos >= end:
            if current:
                elements.append(current)
            return elements
        if value[pos] == ",":
            if current:
                elements.append(current)
            current = {}
        elif value[pos] != ";":
            raise BadRequest("malformed Forwarded header (RFC 7239 §4)")
        pos += 1


# --------------------------------------------------------------------------------- resolving
class FieldLookup(Protocol):
    """What ``resolve`` reads headers through: the core's parsed head has it."""

    def get_all(self, name: str) -> list[str]: ...


def _walk(nodes: Sequence[str], trusted: TrustedPeers,
          parse: Callable[[str], tuple[str, int] | None]) -> tuple[int, tuple[str, int] | None]:
    """The hop that names the client: ``(index, node)``, node ``None`` when that hop names no
    usable address.  From the right, trusted hops are skipped (a literal such as ``unix:`` from
    nginx counts when it is trusted); the first untrusted or unreadable one is it; when all are
    trusted, the left-most."""
    if not trusted.everyone:
        for index in range(len(nodes) - 1, -1, -1):
            text = nodes[index].strip()
            node = parse(text)
            if node is None:
                if text and text in trusted:
                    continue
                return index, None
            if node[0] not in trusted:
                return index, node
    return 0, parse(nodes[0].strip())


_MEMO_KEY_MAX = 512  # header values longer than this are resolved every time, never kept


def _remember(memo: dict[str, Any], key: str, answer: Any) -> Any:
    if len(key) <= _MEMO_KEY_MAX:
        if len(memo) >= _CACHE_MAX:
            memo.clear()  # bounded: a flood of distinct values only costs resolving them
        memo[key] = answer
    return answer


_schemes: dict[str, str | None] = {}
_authorities: dict[str, str | None] = {}


class _Resolver:
    """``resolve`` for one trust set and source, remembering its answers per header value: the
    same proxies send the same few values request after request (one client's chain, "https"),
    and a look-up costs tens of nanoseconds where parsing addresses costs microseconds."""

    __slots__ = ("trusted", "source", "_chains", "_forwarded")

    def __init__(self, trusted: TrustedPeers, source: str) -> None:
        if source not in _SOURCES:
            raise ValueError(f"source must be one of {_SOURCES}, got {source!r}")
        self.trusted = trusted
        self.source = source
        self._chains: dict[str, tuple[str, int] | None] = {}
        self._forwarded: dict[str, Forwarded | BadRequest | None] = {}

    def __call__(self, get_all: Callable[[str], list[str]]) -> Forwarded | None:
        """What the headers (read through ``get_all``) say; the peer is already trusted."""
        source = self.source
        if source != "forwarded":
            hops = get_all("x-forwarded-for")
            protos = get_all("x-forwarded-proto")
            hosts = get_all("x-forwarded-host")
            if hops or protos or hosts:
                client = scheme = host = None
                if hops:
                    # Several field lines are one list, in order (RFC 9110 §5.3).
                    chain = hops[0] if len(hops) == 1 else ",".join(hops)
                    try:
                        client = self._chains[chain]
                    except KeyError:
                        client = _remember(self._chains, chain,
                                           _walk(chain.split(","), self.trusted, _xff_node)[1])
                if protos:
                    value = protos[-1]  # the right-most: the nearest proxy's word
                    try:
                        scheme = _schemes[value]
                    except KeyError:
                        scheme = _remember(_schemes, value,
                                           _SCHEMES.get(value.rsplit(",", 1)[-1].strip().lower()))
                if hosts:
                    value = hosts[-1]
                    try:
                        host = _authorities[value]
                    except KeyError:
                        host = _remember(_authorities, value,
                                         _authority(value.rsplit(",", 1)[-1].strip()))
                if client is None and scheme is None and host is None:
                    return None
                return client, scheme, host
        if source != "x-forwarded":
            values = get_all("forwarded")
            if values:
                value = values[0] if len(values) == 1 else ",".join(values)
                try:
                    answer = self._forwarded[value]
                except KeyError:
                    try:
                        answer = self._from_forwarded(value)
                    except BadRequest as exc:
                        answer = exc
                    _remember(self._forwarded, value, answer)
                if type(answer) is BadRequest:
                    raise BadRequest(answer.detail)
                return answer  # type: ignore[return-value]
        return None

    def _from_forwarded(self, value: str) -> Forwarded | None:
        elements = _forwarded_elements(value)
        if not elements:
            return None
        index, client = _walk([element.get("for", "") for element in elements],
                              self.trusted, _forwarded_node)
        element = elements[index]
        proto, named = element.get("proto"), element.get("host")
        scheme = None if proto is None else _SCHEMES.get(proto.lower())
        host = None if named is None else _authority(named)
        if client is None and scheme is None and host is None:
            return None
        return client, scheme, host


def peer_host(peername: Any) -> str | None:
    """The host a connection's peer is trusted (or not) under: the address of a TCP peer
    (``(host, port, ...)``), ``UNIX_PEER`` for a Unix socket (its path, ``""`` when unnamed),
    ``None`` when the transport does not say."""
    if type(peername) is tuple:
        host = peername[0]
        return host if isinstance(host, str) else None
    return UNIX_PEER if isinstance(peername, (str, bytes)) else None


def _lookup(headers: FieldLookup | Iterable[tuple[str, str]]) -> Callable[[str], list[str]]:
    """``get_all(name)`` over a head (its own) or ``(name, value)`` pairs."""
    get_all: Callable[[str], list[str]] | None = getattr(headers, "get_all", None)
    if get_all is not None:
        return get_all
    # Not a FieldLookup (those returned above): (name, value) pairs.
    pairs = [(name.lower(), value) for name, value in headers]  # type: ignore[union-attr]
    return lambda name: [value for key, value in pairs if key == name]


def resolve(peer_host: str | None, headers: FieldLookup | Iterable[tuple[str, str]],
            trusted: TrustedPeers, *, source: str = "auto") -> Forwarded | None:
    """What the proxy headers say about a request that came from ``peer_host``, answered once.

    ``peer_host``: the connection's peer address (``UNIX_PEER`` for a Unix socket, ``None``
    when unknown; ``peer_host()`` makes it from a peername).  ``headers``: the request's
    fields, as the core's head (anything with ``get_all(name)``) or ``(name, value)`` pairs.
    ``source``: ``"auto"`` (``X-Forwarded-*`` when any of them is present, else ``Forwarded``),
    ``"x-forwarded"`` or ``"forwarded"``.

    ``None`` when the peer is not trusted or no header said anything usable; else
    ``(client, scheme, host)`` (see ``Forwarded``).  A malformed ``Forwarded`` from a trusted
    peer raises ``BadRequest``.  Each call starts with an empty memory of answers: to resolve
    request after request, build a ``ProxyHeaders`` once and call its ``resolve``.
    """
    resolver = _Resolver(trusted, source)
    if peer_host not in trusted:
        return None
    return resolver(_lookup(headers))


class ProxyHeaders:
    """The proxy-header resolver of one trust set, built once and used for every request: as
    middleware (``app.use(ProxyHeaders(...))``) or called directly (``resolve``).

    ``ProxyHeaders(trusted="127.0.0.1,::1", source="auto")``: ``trusted`` as ``TrustedPeers`` takes
    it (``"10.0.0.0/8, 127.0.0.1"``, a list, ``"*"``, ``"unix:"``), or a ``TrustedPeers``.
    ``source``: the header family to read (the module's docstring says why ``"auto"`` prefers
    ``X-Forwarded-*``; ``"forwarded"`` for a proxy that writes only RFC 7239 ``Forwarded``,
    ``"x-forwarded"`` to never read it).

    As middleware, what it resolves becomes the request's: ``request.client``, ``request.url``
    (scheme, host, port) and ``request.absolute_url()``, and the access log's client; a
    malformed ``Forwarded`` from a trusted peer is answered 400.  Install it first
    (``app.use``), so every other middleware sees the resolved client; the ``cyserve`` command
    installs it for ``--proxy-headers`` (uvicorn's default: on, trusting 127.0.0.1 and ::1), and
    the ASGI host resolves each request through one of these.
    """

    __slots__ = ("trusted", "source", "_resolver")

    def __init__(self, trusted: str | Iterable[str] | TrustedPeers = "127.0.0.1,::1", *,
                 source: str = "auto") -> None:
        self.trusted = trusted if isinstance(trusted, TrustedPeers) else TrustedPeers(trusted)
        self.source = source
        self._resolver = _Resolver(self.trusted, source)

    def resolve(self, peer_host: str | None,
                headers: FieldLookup | Iterable[tuple[str, str]]) -> Forwarded | None:
        """What the proxy headers of a request from ``peer_host`` say, as the module's
        ``resolve`` answers it (same arguments, same ``None``, same ``BadRequest``), with the
        answers per header value remembered across calls (bounded): the same proxies send the
        same few values request after request."""
        if peer_host not in self.trusted:
            return None
        return self._resolver(_lookup(headers))

    def __call__(self, handler: Handler) -> Handler:
        resolve = self.resolve

        async def call(request: Request) -> BaseResponse:
            found = resolve(peer_host(request._conn.stream.peername), request._head)
            if found is not None:
                request.forwarded = found
            return await handler(request)
        return call

    def __repr__(self) -> str:
        return f"ProxyHeaders({self.trusted!r}, source={self.source!r})"
