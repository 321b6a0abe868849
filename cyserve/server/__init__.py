"""Running a server: ``serve`` and the graceful shutdown (``serve``), one serving process
(``process``), the supervisor of several and ``launch`` (``workers``), the listening socket
(``listen``), ``--reload`` (``reload``), TLS (``tls``)."""
from cyserve.server.serve import Server, serve
from cyserve.server.tls import ReloadableTLS, tls_context
from cyserve.server.workers import launch, new_event_loop, run

__all__ = ["Server", "serve", "run", "launch", "new_event_loop", "tls_context", "ReloadableTLS"]
