"""Opening connections: TCP, TLS (verified by default, chosen by the URL scheme) and proxies.

TLS: ``verify=True`` uses the system trust store (``ssl.create_default_context()``: certificate
chain and host name checked, SNI sent); ``verify="ca.pem"`` (a file or a directory) trusts those
CAs instead; an ``SSLContext`` is used as given; ``verify=False`` turns checking off and says so
in the log at WARNING, every time a client is made that way.  ``cert=(certfile, keyfile)`` (or a
single PEM path) presents a client certificate.

Proxies: plain ``http://`` requests go to the proxy in absolute-form (RFC 9112 §3.2.2), sharing
the proxy's connections; ``https://`` requests open a ``CONNECT host:port`` tunnel (RFC 9110
§9.3.6) and start TLS with the origin inside it.  Credentials in the proxy URL are sent as
``Proxy-Authorization: Basic``.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import os
import ssl
from typing import Any, NamedTuple, cast
from urllib.parse import unquote, urlsplit

from cyserve.errors import ConnectError, ConnectTimeout, ProxyError
from cyserve.client.urls import Origin
from cyserve._core.http.client import ClientRole, client_connection

__all__ = ["Proxy", "make_ssl_context", "open_connection"]

_log = logging.getLogger("cyserve.client")


class Proxy(NamedTuple):
    origin: Origin
    authorization: str | None  # the Proxy-Authorization value, or None

    @classmethod
    def parse(cls, url: str) -> "Proxy":
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"proxy must be an http:// URL, got {url!r}")
        auth = None
        if parts.username is not None:
            token = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode("utf-8")
            auth = "Basic " + base64.b64encode(token).decode("ascii")
        return cls(Origin("http", parts.hostname, parts.port or 80), auth)


def make_ssl_context(verify: Any = True, cert: Any = None) -> ssl.SSLContext:
    if isinstance(verify, ssl.SSLContext):
        ctx = verify
    elif verify is False:
        _log.warning("TLS certificate verification is DISABLED (verify=False): the server's "
                     "identity is not checked and the connection can be intercepted")
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif verify is True:
        ctx = ssl.create_default_context()
    elif isinstance(verify, (str, os.PathLike)):
        path = os.fspath(verify)
        if os.path.isdir(path):
            ctx = ssl.create_default_context(capath=path)
        elif os.path.isfile(path):
            ctx = ssl.create_default_context(cafile=path)
        else:
            raise ValueError(f"verify={path!r}: no such CA file or directory")
    else:
        raise TypeError("verify must be True, False, a CA bundle path or an ssl.SSLContext")
    if cert is not None:
        if isinstance(cert, (str, os.PathLike)):
            ctx.load_cert_chain(os.fspath(cert))
        else:
            ctx.load_cert_chain(*cert)
    if not isinstance(verify, ssl.SSLContext):
        ctx.set_alpn_protocols(["http/1.1"])
    return ctx


async def _tcp(loop: asyncio.AbstractEventLoop, factory: Any, host: str, port: int,
               ssl_ctx: ssl.SSLContext | None, server_hostname: str | None) -> ClientRole:
    try:
        _, stream = await loop.create_connection(factory, host, port, ssl=ssl_ctx,
                                                 server_hostname=server_hostname)
    except ssl.SSLCertVerificationError as exc:
        raise ConnectError(f"TLS certificate verification failed for {host}:{port}: "
                           f"{exc.verify_message or exc}") from exc
    except ssl.SSLError as exc:
        raise ConnectError(f"TLS handshake with {host}:{port} failed: {exc}") from exc
    except OSError as exc:
        raise ConnectError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from exc
    role: ClientRole = stream.role
    return role


async def _tunnel(loop: asyncio.AbstractEventLoop, conn: ClientRole, origin: Origin,
                  proxy: Proxy, ssl_ctx: ssl.SSLContext) -> None:
    authority = f"[{origin.host}]:{origin.port}" if ":" in origin.host else f"{origin.host}:{origin.port}"
    fields = [("Host", authority)]
    if proxy.authorization:
        fields.append(("Proxy-Authorization", proxy.authorization))
    waiter = conn.start("CONNECT", authority, fields, head_request=True)
    result = await waiter
    if result is None:
        raise ProxyError(f"the proxy failed the CONNECT tunnel: {conn.error}")
    head, _ = result
    if not 200 <= head.status < 300:
        conn.close()
        raise ProxyError(f"the proxy refused CONNECT {authority}: {head.status} {head.reason}")
    tunnel = conn.transport
    if tunnel is None:  # the proxy closed right after its 2xx
        raise ProxyError(f"the proxy closed the CONNECT tunnel to {authority}")
    # conn.stream is the StreamProtocol the loop made (client_connection): a BufferedProtocol.
    protocol = cast(asyncio.BufferedProtocol, conn.stream)
    try:
        transport = await loop.start_tls(tunnel, protocol, ssl_ctx, server_hostname=origin.host)
    except ssl.SSLCertVerificationError as exc:
        conn.close()
        raise ConnectError(f"TLS certificate verification failed for {authority}: "
                           f"{exc.verify_message or exc}") from exc
    except (ssl.SSLError, OSError) as exc:
        conn.close()
        raise ConnectError(f"TLS handshake with {authority} through the proxy failed: {exc}") from exc
    if transport is None:  # the loop gives None only when the tunnel closed during the handshake
        raise ConnectError(f"the proxy closed the tunnel to {authority} during the TLS handshake")
    conn.set_transport(transport)


async def open_connection(state: Any, key: Any, origin: Origin, proxy: Proxy | None,
                          ssl_ctx: ssl.SSLContext | None, timeout_s: float | None) -> ClientRole:
    """Open a connection for pool ``key`` (to ``origin``, through ``proxy`` when given)."""
    loop = state.loop

    def factory() -> Any:
        return client_connection(state, key)

    async def go() -> ClientRole:
        if proxy is None:
            tls = ssl_ctx if origin.scheme == "https" else None
            return await _tcp(loop, factory, origin.host, origin.port, tls,
                              origin.host if tls is not None else None)
        try:
            conn = await _tcp(loop, factory, proxy.origin.host, proxy.origin.port, None, None)
        except ConnectError as exc:
            raise ProxyError(f"cannot connect to the proxy: {exc}") from exc
        if origin.scheme == "https":
            assert ssl_ctx is not None, "an https origin comes with its TLS context"
            try:
                await _tunnel(loop, conn, origin, proxy, ssl_ctx)
            except BaseException:
                conn.abort()
                raise
        return conn

    if timeout_s is None:
        return await go()
    try:
        return await asyncio.wait_for(go(), timeout_s)
    except asyncio.TimeoutError:
        raise ConnectTimeout(f"connecting to {origin.host}:{origin.port} took longer than "
                             f"{timeout_s:g}s") from None
