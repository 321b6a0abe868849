"""The HTTP/1.1 client over the core's codec in its client role.

One job per module: ``client`` (``Client`` and the one-off helpers), ``urls``, ``content`` and
``multipart`` (request bodies), ``upload`` (streamed uploads), ``response``, ``decompress``,
``sse``, ``cookies``, ``redirects``, ``retries``, ``pool``, ``connect`` (TCP, TLS, proxies),
``environ`` (proxies from the environment), ``websocket`` (``client.websocket(url)``), ``util``.  Limits, timeouts and retries are
``cyserve.config.ClientLimits``/``ClientTimeouts``/``Retries``; errors are the client's branch
of ``cyserve.errors``.
"""
from cyserve.client.client import Client, delete, get, head, options, patch, post, put, request
from cyserve.client.cookies import CookieJar
from cyserve.client.response import Response
from cyserve.client.sse import ServerSentEvent
from cyserve.client.upload import StreamRequest
from cyserve.client.websocket import ClientWebSocket
from cyserve.config import ClientLimits, ClientTimeouts, Retries
from cyserve.errors import (
    ClientError, ClientTimeout, ConnectError, ConnectTimeout, DecodingError, HTTPStatusError,
    NetworkError, PoolTimeout, ProxyError, ReadError, ReadTimeout, RemoteProtocolError,
    ResponseTooLarge, TooManyRedirects, TotalTimeout, TransportError, WriteError, WriteTimeout,
)

__all__ = [
    "Client", "Response", "StreamRequest", "ClientWebSocket", "ClientLimits", "ClientTimeouts", "Retries", "CookieJar",
    "ServerSentEvent", "request", "get", "post", "put", "patch", "delete", "head", "options",
    "ClientError", "TransportError", "ClientTimeout", "ConnectTimeout", "ReadTimeout",
    "WriteTimeout", "PoolTimeout", "TotalTimeout", "NetworkError", "ConnectError", "ReadError",
    "WriteError", "RemoteProtocolError", "ProxyError", "TooManyRedirects", "HTTPStatusError",
    "DecodingError", "ResponseTooLarge",
]
