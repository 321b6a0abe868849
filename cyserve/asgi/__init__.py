"""ASGI 3 on the cyserve core: Starlette, FastAPI and any other ASGI app served by the same HTTP
and WebSocket roles as a cyserve ``App``.

::

    cyserve main:app                           # the command line detects an ASGI 3 app
    cyserve.asgi.run(app, host="0.0.0.0", port=8000, workers=2)    # from a script (blocks)
    server = await cyserve.asgi.serve(app, host="127.0.0.1", port=0)  # on a running loop
    cyserve_app.mount("/legacy", app)          # inside a cyserve App, under a prefix

The pieces, one job each: ``scope`` (ASGI scopes from parsed heads), ``http`` (one request's
``receive``/``send``), ``websocket`` (one WebSocket's), ``lifespan`` (startup and shutdown),
``host`` (``ASGIHost``: the app as ``serve()`` serves it), ``mount`` (``App.mount``).
"""
from __future__ import annotations

import ssl as ssl_module
import socket
from typing import Any, Awaitable, Callable

from cyserve.asgi.host import ASGIHost
from cyserve.asgi.mount import ASGIMount, ASGIResponse

__all__ = ["ASGIHost", "ASGIMount", "ASGIResponse", "run", "serve"]


def _host(app: Any, lifespan: str, root_path: str, options: dict[str, Any]) -> ASGIHost:
    return app if isinstance(app, ASGIHost) else ASGIHost(app, lifespan=lifespan,
                                                          root_path=root_path, **options)


async def serve(app: Callable[..., Awaitable[None]] | ASGIHost, host: str = "127.0.0.1",
                port: int = 8000, *, lifespan: str = "auto", root_path: str = "",
                sock: socket.socket | None = None, ssl: ssl_module.SSLContext | None = None,
                reuse_port: bool = False, **options: Any) -> Any:
    """Run the app's lifespan startup, listen on the running loop and return the
    ``cyserve.server.Server`` (``await server.shutdown()`` stops it gracefully).

    ``options`` are ``ASGIHost``'s (``limits=``, ``timeouts=``, ``websocket=``...)."""
    from cyserve.server.serve import serve as serve_app
    return await serve_app(_host(app, lifespan, root_path, options), host, port, sock=sock,
                           ssl=ssl, reuse_port=reuse_port)


def run(app: Callable[..., Awaitable[None]] | ASGIHost, host: str = "127.0.0.1", port: int = 8000,
        **options: Any) -> None:
    """Serve the app until SIGINT/SIGTERM, then drain: ``App.run`` for an ASGI app.

    Any ``RunConfig`` field is a keyword (``workers=``, ``lifespan=``, ``root_path=``,
    ``proxy_headers=``, ``timeout_graceful_shutdown=``...), as are ``ssl=`` (an ``SSLContext``)
    and ``reuse_port=True``.  A failed startup prints one line and exits with status 3."""
    from cyserve.config import RunConfig
    from cyserve.server.workers import launch

    if options.get("reload"):
        raise ValueError("run() cannot reload an app object (reloading re-imports its module): "
                         "run `cyserve module:app --reload` instead")
    ssl = options.pop("ssl", None)
    reuse_port = bool(options.pop("reuse_port", False))
    config = RunConfig(host=host, port=port, interface="asgi3", **options)
    served = app if isinstance(app, ASGIHost) else ASGIHost(app)
    code = launch(config, served, ssl=ssl, reuse_port=reuse_port)
    if code:
        raise SystemExit(code)
