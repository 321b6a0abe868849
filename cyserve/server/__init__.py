"""Running a server: ``serve``/``run`` and the graceful shutdown (``serve``), TLS (``tls``)."""
from cyserve.server.serve import Server, new_event_loop, run, serve
from cyserve.server.tls import tls_context

__all__ = ["Server", "serve", "run", "new_event_loop", "tls_context"]
