"""cyserve: a Cython-compiled HTTP/1.1 server on uvloop.  Public names only."""
from cyserve.app import App
from cyserve.config import Limits, ServerConfig, Timeouts, WaterMarks
from cyserve.datastructures import Headers, QueryParams
from cyserve.errors import ClientError, CyserveError, Disconnected, HTTPError, ProtocolError, PushError
from cyserve.request import Request
from cyserve.response import JSONResponse, Response, StreamResponse
from cyserve.routing import Router
from cyserve.server import Server, run, serve

__version__ = "0.1.0"

__all__ = [
    "App",
    "ClientError",
    "CyserveError",
    "Disconnected",
    "HTTPError",
    "Headers",
    "JSONResponse",
    "Limits",
    "ProtocolError",
    "PushError",
    "QueryParams",
    "Request",
    "Response",
    "Router",
    "Server",
    "ServerConfig",
    "StreamResponse",
    "Timeouts",
    "WaterMarks",
    "run",
    "serve",
]
