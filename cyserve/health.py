"""Health probes (``--health-path``): liveness and readiness as one middleware.

``Health("/healthz")`` answers two paths before anything else in the chain sees the request:

- ``/healthz`` -- liveness: ``200 ok`` whenever the process answers at all.  A liveness probe
  that failed while the server drains would get a draining worker killed mid-shutdown, so it
  stays 200 until the process is gone;
- ``/healthz/ready`` -- readiness: ``200 ready`` while the bound ``Server`` listens and is not
  draining; ``503 starting`` before it is bound (the app started, nothing listens yet) and
  ``503 draining`` once its shutdown began, so a load balancer stops sending traffic
  (RFC 9110 §15.6.4: 503 is the status for a temporary refusal; ``Retry-After`` says when to
  ask again).

The facts come from the ``Server`` (``server.ready``, ``server.draining``: the core's shutdown
flag), never from a copy, so there is one owner of them: ``health.bind(server)`` after
``serve()`` returns (the integrator's ``Prepared.attach``).  Install it outermost
(``app.use(health)`` first) so authentication, rate limits or access logs written as middleware
don't apply to probes.  ``GET`` and ``HEAD`` are answered; other methods get ``405``.  Answers
carry ``Cache-Control: no-store``: a cached probe answer is a wrong one.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from cyserve.response import BaseResponse, Response

if TYPE_CHECKING:
    from cyserve.middleware import Handler
    from cyserve.request import Request

__all__ = ["Health", "Serving"]

_NO_STORE = ("Cache-Control", "no-store")
_TEXT = "text/plain; charset=utf-8"


class Serving(Protocol):
    """What ``Health`` reads of the server it is bound to (``cyserve.server.Server`` is one)."""

    @property
    def ready(self) -> bool: ...

    @property
    def draining(self) -> bool: ...


class Health:
    """``Health(path="/healthz", *, retry_after_s=1)``: liveness at ``path``, readiness at
    ``path + "/ready"`` (the module docstring); a middleware for ``app.use``."""

    def __init__(self, path: str = "/healthz", *, retry_after_s: int = 1) -> None:
        if not path.startswith("/") or path != "/" and path.endswith("/"):
            raise ValueError(f"a health path starts with '/' and has no trailing '/', not {path!r}")
        if retry_after_s < 0:
            raise ValueError(f"retry_after_s must be >= 0, got {retry_after_s}")
        self.path = path
        self.ready_path = path.rstrip("/") + "/ready"
        self.retry_after_s = retry_after_s
        self._server: Serving | None = None

    def bind(self, server: Serving) -> None:
        """Read readiness from ``server`` from now on (call it once ``serve()`` listens)."""
        self._server = server

    @property
    def status(self) -> str:
        """``"ready"``, ``"starting"`` (no server bound yet) or ``"draining"``."""
        server = self._server
        if server is None:
            return "starting"
        if server.draining:
            return "draining"
        return "ready" if server.ready else "starting"

    def _answer(self, request: Request, ready_probe: bool) -> BaseResponse:
        if request.method not in ("GET", "HEAD"):
            return Response(b"", 405, [("Allow", "GET, HEAD"), _NO_STORE])
        if not ready_probe:
            return Response(b"ok\n", 200, [_NO_STORE], _TEXT)
        status = self.status
        if status == "ready":
            return Response(b"ready\n", 200, [_NO_STORE], _TEXT)
        return Response(f"{status}\n".encode(), 503,
                        [_NO_STORE, ("Retry-After", str(self.retry_after_s))], _TEXT)

    def __call__(self, handler: Handler) -> Handler:
        live, ready = self.path, self.ready_path

        async def call(request: Request) -> BaseResponse:
            path = request.path
            # Two string comparisons per request for everything else: nothing is looked up.
            if path == live:
                return self._answer(request, False)
            if path == ready:
                return self._answer(request, True)
            return await handler(request)
        return call
