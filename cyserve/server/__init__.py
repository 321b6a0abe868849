"""Running a server: ``serve`` and the graceful shutdown (``serve``), processes (``workers``),
TLS (``tls``)."""
from cyserve.server.serve import Server, serve
from cyserve.server.tls import tls_context
from cyserve.server.workers import new_event_loop, run

__all__ = ["Server", "serve", "run", "new_event_loop", "tls_context"]
