"""A ``RunConfig`` applied to an ``App``: the one place the command line's options become the
app's settings, middleware and observers.

``prepare(app, config)`` runs in each serving process before the app starts (it changes the
app's ``ServerConfig`` and ``WebSocketLimits`` and installs middleware, so it must run before
the app is frozen); ``Prepared.configure(state)`` is ``serve()``'s hook on the core's state
before it listens (observers of the core, the PROXY protocol's trusted peers);
``Prepared.attach(server)`` runs right after ``serve()`` listens (health, metrics).

An option left at its default keeps the App's own setting: ``App(timeouts=Timeouts(
keepalive_s=30))`` served by ``cyserve main:app`` keeps 30 s, ``--timeout-keep-alive 10`` makes it
10 s.  (uvicorn has no app-side settings to keep; cyserve's App has, and a default on the
command line should not silently undo what the app's author chose.)

An ASGI app (``cyserve.asgi.ASGIHost``) takes the same options, plus ``--lifespan`` and
``--root-path``; the proxy headers and ``--header`` fields are handed to the host, which applies
them on its own per-request path instead of as App middleware (``cyserve.asgi.host``).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import ssl as ssl_module
from typing import Any, Callable

from cyserve.asgi.host import ASGIHost
from cyserve.config import RunConfig
from cyserve.errors import StartupError
from cyserve.health import Health
from cyserve.logs import AccessLog
from cyserve.middleware import DefaultHeaders
from cyserve.proxy import ProxyHeaders, TrustedPeers
from cyserve.server.tls import ReloadableTLS

__all__ = ["Prepared", "prepare"]

_log = logging.getLogger("cyserve.error")
_DEFAULTS = RunConfig()


def _given(config: RunConfig, name: str) -> bool:
    """Whether the option differs from its default (the app's own setting yields to it)."""
    value: Any = getattr(config, name)
    return bool(value != getattr(_DEFAULTS, name))


class Prepared:
    """What ``prepare`` made: the app to serve, its TLS, and what to connect to the server."""

    __slots__ = ("app", "config", "tls", "observers", "trusted", "health", "metrics")

    def __init__(self, app: Any, config: RunConfig, tls: ReloadableTLS | None) -> None:
        self.app = app
        self.config = config
        self.tls = tls
        #: Objects with ``response_done(conn, head, status, sent_bytes, duration_s)`` the core
        #: calls once per response (the access log, metrics).
        self.observers: list[Any] = []
        #: The peers whose proxy headers and PROXY protocol headers are believed.
        self.trusted: TrustedPeers | None = None
        self.health: Health | None = None
        self.metrics: Any = None

    @property
    def ssl(self) -> ssl_module.SSLContext | None:
        """The server's TLS context (None without ``--ssl-certfile``)."""
        return None if self.tls is None else self.tls.context

    @property
    def reload_tls(self) -> Callable[[], bool] | None:
        """Load the certificate files again into the same context (SIGHUP in one process)."""
        return None if self.tls is None else self.tls.reload

    def configure(self, state: Any) -> None:
        """Set what every connection must see from its first byte on the core's ``ServerState``
        (``serve(..., configure=prepared.configure)`` calls it before anything listens): the
        response observers and the PROXY protocol's trusted peers."""
        if self.observers:
            state.observer = (self.observers[0] if len(self.observers) == 1
                              else _Fanout(tuple(self.observers)))
        if self.config.proxy_protocol and self.trusted is not None:
            state.proxy_trusted = self.trusted.__contains__

    def attach(self, server: Any) -> None:
        """Bind what reads the listening server (call right after ``serve()``): health and
        metrics."""
        if self.health is not None:
            self.health.bind(server)
        if self.metrics is not None:
            self.metrics.bind(server)


class _Fanout:
    """Several observers of the core behind the one slot it calls."""

    __slots__ = ("observers",)

    def __init__(self, observers: tuple[Any, ...]) -> None:
        self.observers = observers

    def response_done(self, conn: Any, head: Any, status: int, sent_bytes: int,
                      duration_s: float) -> None:
        for observer in self.observers:
            observer.response_done(conn, head, status, sent_bytes, duration_s)


def prepare(app: Any, config: RunConfig) -> Prepared:
    """Apply ``config`` to ``app`` (before it starts) and build its TLS context.

    The middleware the command line adds runs before the app's own, outermost first: proxy
    headers (everything after sees the resolved client), ``--header`` fields (on every
    response, probes included, as uvicorn adds them), health probes (never rate-limited or
    authenticated by the app's middleware), then the metrics scrape."""
    if config.proxy_protocol and config.ssl_certfile is not None:
        # The PROXY header comes before the TLS handshake, where the TLS transport would read
        # it as a (bad) record: terminate TLS at the proxy, or send PROXY to a plain listener.
        raise StartupError("--proxy-protocol cannot be combined with --ssl-certfile: the PROXY "
                           "header would arrive where the TLS handshake is expected")
    _apply_server_config(app, config)
    _apply_websocket(app, config)
    asgi = isinstance(app, ASGIHost)
    if asgi:
        _apply_asgi(app, config)
    prepared = Prepared(app, config, _tls(config))
    outer: list[Any] = []
    if config.proxy_headers or config.proxy_protocol:
        spec = (config.forwarded_allow_ips if config.forwarded_allow_ips is not None
                else os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1"))
        try:
            prepared.trusted = TrustedPeers(spec)
        except ValueError as exc:
            raise StartupError(f"--forwarded-allow-ips: {exc}") from None
        if config.proxy_headers:
            if asgi:
                app.trusted = prepared.trusted  # resolved by the host itself, per request
            else:
                outer.append(ProxyHeaders(prepared.trusted))
    if config.headers:
        try:
            defaults = DefaultHeaders(config.headers)
        except ValueError as exc:
            raise StartupError(f"--header: {exc}") from None
        if asgi:
            app.default_headers = list(defaults.headers)  # merged into each response's head
        else:
            outer.append(defaults)
    if config.health_path is not None:
        try:
            prepared.health = Health(config.health_path)
        except ValueError as exc:
            raise StartupError(f"--health-path: {exc}") from None
        outer.append(prepared.health)
    if config.metrics is not None:
        from cyserve.metrics import Metrics  # prometheus-client is an extra: only when asked
        try:
            metrics = Metrics(config.metrics)
        except ValueError as exc:
            raise StartupError(f"--metrics: {exc}") from None
        prepared.metrics = metrics
        prepared.observers.append(metrics)
        outer.append(metrics)
        app.on_shutdown(metrics.unbind)   # the last figures, once the connections are gone
    if config.access_log:
        prepared.observers.append(AccessLog())
    if outer:
        app.middlewares[:0] = outer
    return prepared


def _apply_server_config(app: Any, config: RunConfig) -> None:
    server = app.config
    timeouts = server.timeouts
    changes: dict[str, Any] = {}
    if _given(config, "timeout_keep_alive"):
        changes["keepalive_s"] = float(config.timeout_keep_alive)
    if config.timeout_head is not None:
        changes["head_s"] = float(config.timeout_head)
    if config.timeout_graceful_shutdown is not None:
        changes["shutdown_s"] = float(config.timeout_graceful_shutdown)
    if changes:
        timeouts = dataclasses.replace(timeouts, **changes)
    limits = server.limits
    if config.max_body_size is not None:
        limits = dataclasses.replace(limits, max_body_bytes=config.max_body_size)
    fields: dict[str, Any] = {"timeouts": timeouts, "limits": limits, "backlog": config.backlog}
    if not config.server_header:
        fields["server_header"] = None
    optional = {"date_header": config.date_header,
                "limit_concurrency": config.limit_concurrency,
                "limit_connections_per_ip": config.limit_connections_per_ip,
                "proxy_protocol": config.proxy_protocol}
    known = {f.name for f in dataclasses.fields(server)}
    for name, value in optional.items():
        if name in known:
            fields[name] = value
        elif _given(config, name):
            raise StartupError(f"--{name.replace('_', '-')} is not supported by this build of cyserve")
    app.config = dataclasses.replace(server, **fields)


def _apply_asgi(host: ASGIHost, config: RunConfig) -> None:
    """What only an ASGI app has: the lifespan mode (``--lifespan``) and the root path a proxy
    strips (``--root-path``: the scope's ``root_path``, prepended to its ``path``)."""
    if _given(config, "lifespan"):
        host.lifespan = config.lifespan
    if _given(config, "root_path"):
        root = config.root_path
        if not root.startswith("/") or root.endswith("/"):
            raise StartupError(f"--root-path {root}: a root path starts with '/' and has no "
                               "trailing '/'")
        host.root_path = root


def _apply_websocket(app: Any, config: RunConfig) -> None:
    changes: dict[str, Any] = {}
    if _given(config, "ws_max_size"):
        changes["max_message_bytes"] = config.ws_max_size
        changes["max_frame_bytes"] = config.ws_max_size
    if _given(config, "ws_max_queue"):
        changes["max_receive_queue"] = config.ws_max_queue
    if _given(config, "ws_ping_interval"):
        changes["ping_interval_s"] = config.ws_ping_interval or None   # uvicorn: 0 turns it off
    if _given(config, "ws_ping_timeout"):
        changes["ping_timeout_s"] = config.ws_ping_timeout or None
    if _given(config, "ws_per_message_deflate"):
        changes["compression"] = config.ws_per_message_deflate
    if changes:
        try:
            app.websocket_limits = dataclasses.replace(app.websocket_limits, **changes)
        except ValueError as exc:
            raise StartupError(f"WebSocket options: {exc}") from exc


def _tls(config: RunConfig) -> ReloadableTLS | None:
    """The server's TLS from uvicorn's ``--ssl-*`` options (None without a certificate)."""
    if config.ssl_certfile is None:
        if config.ssl_keyfile is not None:
            raise StartupError("--ssl-keyfile needs --ssl-certfile")
        return None
    return ReloadableTLS(config.ssl_certfile, config.ssl_keyfile, config.ssl_keyfile_password,
                         ca_certs=config.ssl_ca_certs, cert_reqs=config.ssl_cert_reqs,
                         ciphers=config.ssl_ciphers, version=config.ssl_version)
