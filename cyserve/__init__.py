"""cyserve: a Cython-compiled HTTP/1.1 server on uvloop.  Public names only."""
try:
    import cyserve._core.http.server  # noqa: F401 - the compiled core: checked first, with a hint
except ModuleNotFoundError as exc:  # a checkout whose extensions were never built
    if not (exc.name or "").startswith("cyserve._core"):
        raise
    raise ImportError(
        f"cyserve's Cython extensions are not built ({exc.name} is missing): run "
        "`pip install -e .` in the checkout, or `python setup.py build_ext --inplace` after "
        "editing cyserve/_core/") from exc

from cyserve.app import App
from cyserve.binding import Body, Cookie, Header, Query
from cyserve.client import (
    Client,
    ClientLimits,
    ClientTimeout,
    ClientTimeouts,
    ConnectError,
    ConnectTimeout,
    CookieJar,
    DecodingError,
    HTTPStatusError,
    NetworkError,
    PoolTimeout,
    ProxyError,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    ResponseTooLarge,
    TooManyRedirects,
    TotalTimeout,
    TransportError,
    WriteError,
    WriteTimeout,
)
from cyserve.client import Response as ClientResponse
from cyserve.compression import Codec, Compression
from cyserve.config import (Limits, PushLimits, Retries, RunConfig, ServerConfig, Timeouts,
                            WaterMarks, WebSocketLimits)
from cyserve.context import current_request, g
from cyserve.csrf import CSRF, csrf_token
from cyserve.datastructures import URL, FormData, Headers, QueryParams
from cyserve.errors import (
    Abort,
    BadRequest,
    ClientDisconnected,
    ClientError,
    Conflict,
    CyserveError,
    Disconnected,
    Forbidden,
    Gone,
    HTTPError,
    InternalServerError,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    NotImplemented_,
    PayloadTooLarge,
    ProtocolError,
    PushError,
    ServiceUnavailable,
    StartupError,
    TooManyRequests,
    Unauthorized,
    UnprocessableEntity,
    UnsupportedMediaType,
    WebSocketDisconnect,
    WebSocketError,
)
from cyserve.files import FileResponse, OpenFile
from cyserve.health import Health
from cyserve.metrics import Metrics
from cyserve.middleware import (CORS, BaseMiddleware, DefaultHeaders, RequestID, SecurityHeaders,
                                TrustedHosts)
from cyserve.proxy import ProxyHeaders, TrustedPeers
from cyserve.ratelimit import AsyncStore, MemoryStore, RateLimit, RedisStore
from cyserve.multipart import FormLimits, UploadFile
from cyserve.request import Request
from cyserve.response import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamResponse
from cyserve.routing import Router, route
from cyserve.server import ReloadableTLS, Server, launch, run, serve, tls_context
from cyserve.sessions import Session, Sessions
from cyserve.compat import (
    Deliver,
    create_html_response,
    create_json_response,
    create_redirect_response,
    create_text_response,
    create_xml_response,
)
from cyserve.sse import ServerSentEvent, SSEResponse
from cyserve.static import StaticFiles
from cyserve.templates import Templates
from cyserve.websocket import WebSocket

__version__ = "0.1.0"

__all__ = [
    "RunConfig",
    "StartupError",
    "Health",
    "Metrics",
    "DefaultHeaders",
    "ProxyHeaders",
    "TrustedPeers",
    "MemoryStore",
    "RateLimit",
    "RedisStore",
    "ReloadableTLS",
    "launch",
    "Body",
    "Cookie",
    "Header",
    "Query",
    "Abort",
    "AsyncStore",
    "App",
    "BadRequest",
    "BaseMiddleware",
    "CORS",
    "CSRF",
    "Client",
    "ClientDisconnected",
    "ClientError",
    "ClientLimits",
    "Retries",
    "ClientResponse",
    "ClientTimeout",
    "ClientTimeouts",
    "Codec",
    "Compression",
    "Conflict",
    "ConnectError",
    "ConnectTimeout",
    "CookieJar",
    "CyserveError",
    "DecodingError",
    "Deliver",
    "Disconnected",
    "FileResponse",
    "OpenFile",
    "Forbidden",
    "FormData",
    "FormLimits",
    "Gone",
    "HTMLResponse",
    "HTTPError",
    "HTTPStatusError",
    "Headers",
    "InternalServerError",
    "JSONResponse",
    "Limits",
    "MethodNotAllowed",
    "NetworkError",
    "NotAcceptable",
    "NotFound",
    "NotImplemented_",
    "PayloadTooLarge",
    "PoolTimeout",
    "ProtocolError",
    "ProxyError",
    "PushError",
    "PushLimits",
    "QueryParams",
    "ReadError",
    "ReadTimeout",
    "RedirectResponse",
    "RemoteProtocolError",
    "Request",
    "RequestID",
    "Response",
    "ResponseTooLarge",
    "Router",
    "SSEResponse",
    "SecurityHeaders",
    "Server",
    "ServerConfig",
    "ServerSentEvent",
    "ServiceUnavailable",
    "Session",
    "Sessions",
    "StaticFiles",
    "StreamResponse",
    "Templates",
    "Timeouts",
    "TooManyRedirects",
    "TooManyRequests",
    "TotalTimeout",
    "TransportError",
    "TrustedHosts",
    "URL",
    "Unauthorized",
    "UnprocessableEntity",
    "UnsupportedMediaType",
    "UploadFile",
    "WaterMarks",
    "WebSocket",
    "WebSocketDisconnect",
    "WebSocketError",
    "WebSocketLimits",
    "WriteError",
    "WriteTimeout",
    "create_html_response",
    "create_json_response",
    "create_redirect_response",
    "create_text_response",
    "create_xml_response",
    "csrf_token",
    "current_request",
    "g",
    "route",
    "run",
    "serve",
    "tls_context",
]
