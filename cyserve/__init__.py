"""cyserve: a Cython-compiled HTTP/1.1 server on uvloop.  Public names only."""
from cyserve.app import App
from cyserve.compression import Codec, Compression
from cyserve.config import Limits, ServerConfig, Timeouts, WaterMarks
from cyserve.context import current_request, g
from cyserve.datastructures import URL, FormData, Headers, QueryParams
from cyserve.errors import (
    Abort,
    BadRequest,
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
    TooManyRequests,
    Unauthorized,
    UnprocessableEntity,
    UnsupportedMediaType,
)
from cyserve.files import FileResponse
from cyserve.middleware import CORS, BaseMiddleware, RequestID, SecurityHeaders, TrustedHosts
from cyserve.multipart import FormLimits, UploadFile
from cyserve.request import Request
from cyserve.response import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamResponse
from cyserve.routing import Router, route
from cyserve.server import Server, run, serve
from cyserve.sse import ServerSentEvent, SSEResponse
from cyserve.static import StaticFiles
from cyserve.templates import Templates

__version__ = "0.1.0"

__all__ = [
    "Abort",
    "App",
    "BadRequest",
    "BaseMiddleware",
    "CORS",
    "ClientError",
    "Codec",
    "Compression",
    "Conflict",
    "CyserveError",
    "Disconnected",
    "FileResponse",
    "Forbidden",
    "FormData",
    "FormLimits",
    "Gone",
    "HTMLResponse",
    "HTTPError",
    "Headers",
    "InternalServerError",
    "JSONResponse",
    "Limits",
    "MethodNotAllowed",
    "NotAcceptable",
    "NotFound",
    "NotImplemented_",
    "PayloadTooLarge",
    "ProtocolError",
    "PushError",
    "QueryParams",
    "RedirectResponse",
    "Request",
    "RequestID",
    "Response",
    "Router",
    "SSEResponse",
    "SecurityHeaders",
    "Server",
    "ServerConfig",
    "ServerSentEvent",
    "ServiceUnavailable",
    "StaticFiles",
    "StreamResponse",
    "Templates",
    "Timeouts",
    "TooManyRequests",
    "TrustedHosts",
    "URL",
    "Unauthorized",
    "UnprocessableEntity",
    "UnsupportedMediaType",
    "UploadFile",
    "WaterMarks",
    "current_request",
    "g",
    "route",
    "run",
    "serve",
]
