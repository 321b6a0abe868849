"""Running server processes: one process serving until a signal (``run``), and (next) the
supervisor of several workers.  Process-level concerns live here (signals, the event loop
choice); the listener and the graceful shutdown are ``serve.py``'s."""
from __future__ import annotations

import asyncio
import logging
import signal
import ssl as ssl_module
from typing import Any

from cyserve.server.serve import serve

__all__ = ["run", "new_event_loop"]

_log = logging.getLogger("cyserve.server")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when it is installed, else stdlib asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(app: Any, host: str = "127.0.0.1", port: int = 8000, *, reuse_port: bool = False,
        ssl: ssl_module.SSLContext | None = None) -> None:
    """Serve until SIGINT or SIGTERM, then shut down gracefully."""
    scheme = "https" if ssl is not None else "http"

    async def main() -> None:
        server = await serve(app, host, port, reuse_port=reuse_port, ssl=ssl)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        line = f"cyserve listening on {scheme}://{host}:{server.port}"
        if _log.hasHandlers() and _log.isEnabledFor(logging.INFO):
            _log.info("%s", line)        # logging is configured to show it: one line, in the log
        else:
            print(line, flush=True)      # else it must still be seen, once
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await server.shutdown()

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(main())
