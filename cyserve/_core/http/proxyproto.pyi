"""The PROXY protocol role (HAProxy's v1 text and v2 binary connection header), read before HTTP
on connections from trusted proxies when ``ServerConfig.proxy_protocol`` is on.  Its C face
(``ProxyRole``, ``proxy_first``) is in ``proxyproto.pxd``; the server attaches it itself."""
from typing import Any

def parse_proxy_header(data: bytes, max_bytes: int = ...) -> tuple[int, int, Any] | None:
    """Parse a PROXY header at the start of ``data``.

    None while it is incomplete; else ``(consumed, version, peer)``: the header's length, 1 or 2,
    and the client's address as the loop gives peers (``(host, port)``, ``(host, port, 0, 0)``
    for IPv6), or None when the socket's peer stands (v1 ``UNKNOWN``, v2 ``LOCAL``, UNSPEC or
    UNIX).  ``ValueError`` for bytes that are not a valid header, or a v2 header longer than
    ``max_bytes``.
    """

class ProxyRole:
    """Reads one PROXY header, then hands the stream to the HTTP server role."""

    @property
    def version(self) -> int:
        """1 or 2 once a header was read, else 0."""
