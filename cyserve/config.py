"""Limits, timeouts and water marks: every default of the server and of the client in one place.

The core reads these once per connection (they are copied into C fields), so changing a
``ServerConfig`` after the server started has no effect on it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

__all__ = ["Limits", "Timeouts", "WaterMarks", "ServerConfig", "ClientLimits", "ClientTimeouts",
           "TimeoutArg", "to_timeouts", "Retries", "to_retries", "IDEMPOTENT_METHODS",
           "WebSocketLimits", "PushLimits", "RunConfig"]


@dataclass(frozen=True)
class Limits:
    """Sizes the server refuses past, with the status it answers (RFC 9110 §15.5)."""

    max_request_line_bytes: int = 8 * 1024  # 414 URI Too Long
    max_head_bytes: int = 64 * 1024  # 431 Request Header Fields Too Large
    max_header_count: int = 100  # 431
    max_body_bytes: int = 16 * 1024 * 1024  # 413 Content Too Large
    max_trailer_bytes: int = 8 * 1024  # 431 (chunked trailers)
    # Pipelined bytes buffered while a request is in flight before reading pauses (RFC 9112
    # §9.3.2): the receive buffer itself is the bounded queue of waiting requests.
    max_pipeline_bytes: int = 64 * 1024
    max_keepalive_requests: int = 0  # 0: unlimited requests per connection
    # Lingering close (RFC 9112 §9.6): after an error answered while the client may still be
    # sending (a 413 mid-upload), the server stops writing and keeps reading and discarding up to
    # this many bytes (and Timeouts.linger_s), so the kernel does not reset the connection and
    # wipe the answer before the client has read it.
    max_linger_bytes: int = 16 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("max_request_line_bytes", "max_head_bytes", "max_header_count", "max_body_bytes",
                     "max_trailer_bytes", "max_pipeline_bytes", "max_linger_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Limits.{name} must be positive, got {getattr(self, name)}")
        if self.max_request_line_bytes > self.max_head_bytes:
            raise ValueError("Limits.max_request_line_bytes cannot exceed max_head_bytes")
        if self.max_head_bytes >= 2**31:
            raise ValueError("Limits.max_head_bytes must stay below 2 GiB (header offsets are 32-bit)")


@dataclass(frozen=True)
class Timeouts:
    """Deadlines in seconds; a value <= 0 disables that timer."""

    first_request_s: float = 10.0  # idle after accept, before any byte of a request
    head_s: float = 10.0  # total time to receive one request head (slowloris)
    body_idle_s: float = 30.0  # no body byte for this long while a handler waits for it
    keepalive_s: float = 5.0  # idle between two requests on a kept-alive connection
    # No write progress (the client reads nothing of what is queued for it) for this long: the
    # connection is aborted and the handler's next write raises Disconnected, so its producer
    # (a file, a DB cursor) is closed.
    write_s: float = 60.0
    # A handler still running after this long: 503 when nothing was sent yet, else the
    # connection is aborted (framing can't be finished).  Off by default: long polls, SSE and
    # WebSockets run as long as their client stays.
    handler_s: float = 0.0
    linger_s: float = 5.0  # lingering close: longest time spent discarding after an error
    shutdown_s: float = 10.0  # graceful shutdown: how long in-flight requests may still run


@dataclass(frozen=True)
class WaterMarks:
    """Backpressure thresholds in bytes (DESIGN principle 5)."""

    write_high: int = 64 * 1024  # transport pauses writing above this buffered amount
    write_low: int = 16 * 1024
    body_high: int = 256 * 1024  # unread request body buffered before reading pauses
    body_low: int = 64 * 1024

    def __post_init__(self) -> None:
        if not 0 <= self.write_low <= self.write_high:
            raise ValueError("WaterMarks need 0 <= write_low <= write_high")
        if not 0 <= self.body_low <= self.body_high:
            raise ValueError("WaterMarks need 0 <= body_low <= body_high")


@dataclass(frozen=True)
class ServerConfig:
    """Everything the core needs to know about one listening server."""

    limits: Limits = field(default_factory=Limits)
    timeouts: Timeouts = field(default_factory=Timeouts)
    water_marks: WaterMarks = field(default_factory=WaterMarks)
    server_header: str | None = "cyserve"  # None: send no Server header
    # RFC 9110 §6.6.1: an origin server with a clock MUST send Date; off only for a proxy in
    # front that adds its own (uvicorn's --no-date-header).
    date_header: bool = True
    receive_buffer_bytes: int = 64 * 1024  # initial receive buffer per connection
    backlog: int = 1024
    # 503 Service Unavailable (with Connection: close) for a request while more than this many
    # connections are open, or this many handlers are running (uvicorn's --limit-concurrency).
    limit_concurrency: int | None = None
    # 503 and close for a new connection from a host that already has this many open.
    limit_connections_per_ip: int | None = None
    # Read a PROXY protocol header (HAProxy's v1 text or v2 binary) before HTTP on each
    # connection from a trusted peer (``ServerState.proxy_trusted``); the header's source
    # address becomes the connection's peer.
    proxy_protocol: bool = False

    def __post_init__(self) -> None:
        for limit in ("limit_concurrency", "limit_connections_per_ip"):
            value = getattr(self, limit)
            if value is not None and value < 1:
                raise ValueError(f"ServerConfig.{limit} must be at least 1 or None, got {value}")
        # Checked here, when the App is made, not when the first connection opens: a field value
        # carries no control byte but HTAB (RFC 9110 §5.5), and only latin-1 goes on the wire.
        name = self.server_header
        if name is not None:
            bad = next((c for c in name if (ord(c) < 32 and c != "\t") or ord(c) == 127
                        or ord(c) > 255), None)
            if bad is not None:
                raise ValueError(f"server_header {name!r} holds {bad!r}, which a field value "
                                 "cannot carry (RFC 9110 §5.5)")


# ---------------------------------------------------------------------- the client's
@dataclass(frozen=True)
class ClientLimits:
    """Pool sizes and the bounds a response must stay inside."""

    max_connections: int = 100  # open connections of one Client, all origins together
    max_connections_per_host: int = 20  # open connections to one origin (scheme, host, port)
    keepalive_expiry_s: float = 5.0  # an idle pooled connection is closed after this
    max_redirects: int = 10  # more hops raise TooManyRedirects
    max_head_bytes: int = 64 * 1024  # a longer response head is a RemoteProtocolError
    max_header_count: int = 100
    max_trailer_bytes: int = 8 * 1024  # chunked trailer section
    max_body_bytes: int = 64 * 1024 * 1024  # read()/text()/json() buffer at most this (decoded)
    max_decoded_bytes: int = 1024 * 1024 * 1024  # a compressed body decodes to at most this
    # Interim (1xx) responses before the final one (RFC 9110 §15.2): a server that keeps sending
    # "100 Continue" can't hold a request forever.
    max_interim_responses: int = 16
    read_high: int = 256 * 1024  # unread streamed body before the socket stops being read
    read_low: int = 64 * 1024  # reading resumes at or below this
    write_high: int = 256 * 1024  # request bytes queued in the transport before uploads wait
    write_low: int = 64 * 1024

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_connections_per_host", "max_head_bytes",
                     "max_header_count", "max_body_bytes", "max_decoded_bytes",
                     "max_interim_responses"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ClientLimits.{name} must be positive, got {getattr(self, name)}")
        if self.max_redirects < 0:
            raise ValueError("ClientLimits.max_redirects must be >= 0")
        if not 0 <= self.read_low <= self.read_high or not 0 <= self.write_low <= self.write_high:
            raise ValueError("ClientLimits water marks need 0 <= low <= high")


@dataclass(frozen=True)
class ClientTimeouts:
    """Deadlines in seconds; ``None`` (or <= 0) disables one.  Each raises its own exception:
    ConnectTimeout, ReadTimeout, WriteTimeout, PoolTimeout, TotalTimeout."""

    connect_s: float | None = 10.0  # TCP connect + TLS handshake + proxy CONNECT
    read_s: float | None = 30.0  # longest silence while response bytes are expected
    write_s: float | None = 30.0  # longest wait for the server to accept request bytes
    pool_s: float | None = 10.0  # longest wait for a free connection of the pool
    # The whole request: pool wait, connect, redirects, sending and the response head; for
    # request()/get()/... also reading the body (at most ClientLimits.max_body_bytes); for
    # stream() not the body, which the caller paces (a large download, an endless event
    # stream) and read_s watches.  On by default because read_s alone never ends a response
    # that trickles a byte every few seconds.  300 s (aiohttp's default total too) reads
    # 64 MiB, the whole-body bound, over a link of about 2 Mbit/s; longer transfers belong in
    # stream() or take a larger total_s.
    total_s: float | None = 300.0


TimeoutArg = Union[ClientTimeouts, float, int, None]


def to_timeouts(value: TimeoutArg | object) -> ClientTimeouts:
    """``timeout=5`` means 5 s for connect, read, write and pool, with the default ``total_s``
    kept: each phase's timeout alone never ends a response dripping a byte every few seconds,
    so a number must not switch the total off.  ``None`` disables them all, the total too."""
    if isinstance(value, ClientTimeouts):
        return value
    if value is None:
        return ClientTimeouts(None, None, None, None, None)
    if isinstance(value, (int, float)):
        seconds = float(value)
        return ClientTimeouts(connect_s=seconds, read_s=seconds, write_s=seconds, pool_s=seconds)
    raise TypeError(f"timeout must be a number, None or ClientTimeouts, not {type(value).__name__}")


#: RFC 9110 §9.2.2: the methods whose intended effect is the same however often a request is
#: sent, so a client may send it again when it cannot tell whether the first one took effect.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


@dataclass(frozen=True)
class Retries:
    """When ``Client`` sends a request again, and how long it waits first.  Off by default.

    A request is retried only when its method is in ``methods`` (the idempotent ones) and its
    body can be sent again (bytes, a file, a path: never a one-shot stream), after either

    - a connection error before any byte of a response arrived: ``ConnectError`` (but not a
      certificate verification failure), ``ConnectTimeout``, or a ``ReadError``/``WriteError``/
      ``RemoteProtocolError`` on a connection that closed with nothing of a response on it;
    - a response whose status is in ``statuses``: its body is drained (the connection kept when
      it is small, as for a redirect) and, once the retries are spent, the last one is returned.

    ``ReadTimeout``, ``WriteTimeout``, ``PoolTimeout`` and ``TotalTimeout`` are not retried: a
    server too slow to answer is made slower by the same request again, and a pool or total
    deadline is the caller's own bound.  Nor is a ``ProxyError`` (a proxy that is down or
    refuses the tunnel is configuration to fix, not a moment to wait out).

    The wait before retry ``n`` (from 0) is drawn uniformly from ``[0, min(max_backoff_s,
    backoff_s * 2**n)]`` ("full jitter": clients that failed together do not come back
    together).  A ``Retry-After`` on the response (RFC 9110 §10.2.3) replaces it: that wait is
    kept exactly when it is at most ``max_retry_after_s``; a longer one ends the retries and the
    response is returned (retrying sooner than asked defies the server, waiting longer holds the
    caller); one that does not parse is ignored.  No wait runs past the total timeout: a retry
    that could not start before it is not made.  ``count`` bounds the retries of one request,
    its redirects included; the single immediate retry of a request that met a stale pooled
    connection (RFC 9112 §9.3.1) is not counted.
    """

    count: int = 0  # retries after the first attempt; 0: off
    backoff_s: float = 0.5  # the cap of the first wait (full jitter below it)
    max_backoff_s: float = 10.0  # no backoff wait is longer
    max_retry_after_s: float = 60.0  # a longer Retry-After is not waited for
    statuses: frozenset[int] = frozenset({502, 503, 504})
    methods: frozenset[str] = IDEMPOTENT_METHODS

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError(f"Retries.count must be >= 0, got {self.count}")
        for name in ("backoff_s", "max_backoff_s", "max_retry_after_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"Retries.{name} must be >= 0, got {getattr(self, name)}")
        # Sets given as lists or tuples are accepted; methods compare upper case.
        object.__setattr__(self, "statuses", frozenset(self.statuses))
        object.__setattr__(self, "methods", frozenset(m.upper() for m in self.methods))


def to_retries(value: Retries | int | None) -> Retries:
    """``retries=3`` means ``Retries(count=3)``; ``None`` or 0 means none."""
    if isinstance(value, Retries):
        return value
    if value is None:
        return Retries()
    if isinstance(value, int) and not isinstance(value, bool):
        return Retries(count=value)
    raise TypeError(f"retries must be an int or Retries, not {type(value).__name__}")


@dataclass(frozen=True)
class WebSocketLimits:
    """One WebSocket connection's limits, timers and compression (RFC 6455, RFC 7692), for the
    server (``App(websocket=...)``, overridable per route) and the client alike.

    Sizes: a frame whose declared length passes ``max_frame_bytes``, or a message (after
    inflation) past ``max_message_bytes``, closes the connection with 1009; fragments are bounded
    by the message size alone.  ``max_receive_queue`` whole messages wait for a handler that is
    not receiving; past it, reading pauses (TCP backpressure) until it receives again.  ``send()``
    waits while more than ``write_high_water`` bytes are queued for the peer, until they fall to
    ``write_low_water``.

    Timers (seconds; ``None`` switches one off): a ping every ``ping_interval_s`` of silence, and
    a peer that has not answered it within ``ping_timeout_s`` is closed with 1011 (the handler sees
    the disconnect); ``close_timeout_s`` bounds the closing handshake and the wait for the peer to
    close TCP after it.

    ``compression``: negotiate permessage-deflate when the peer offers it (server) or offer it
    (client).  ``compression_window_bits`` (9..15) is the LZ77 window this side asks for both
    directions; 12 keeps a compressed connection's zlib state near 64 KiB in all (websockets'
    default bar), where 15 would cost about 320 KiB.  ``compression_level`` is zlib's (1..9).
    Messages shorter than ``compression_min_bytes`` go uncompressed (RFC 7692 allows either per
    message).
    """

    max_message_bytes: int = 1024 * 1024
    max_frame_bytes: int = 1024 * 1024
    max_receive_queue: int = 16
    write_high_water: int = 64 * 1024
    write_low_water: int = 16 * 1024
    ping_interval_s: float | None = 20.0
    ping_timeout_s: float | None = 20.0
    close_timeout_s: float = 10.0
    compression: bool = True
    compression_window_bits: int = 12
    compression_level: int = 6
    compression_min_bytes: int = 32

    def __post_init__(self) -> None:
        for name in ("max_message_bytes", "max_frame_bytes", "max_receive_queue", "write_high_water"):
            if getattr(self, name) <= 0:
                raise ValueError(f"WebSocketLimits.{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.write_low_water <= self.write_high_water:
            raise ValueError("WebSocketLimits.write_low_water must be between 0 and write_high_water")
        for name in ("ping_interval_s", "ping_timeout_s"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"WebSocketLimits.{name} must be positive or None, got {value}")
        if self.close_timeout_s <= 0:
            raise ValueError(f"WebSocketLimits.close_timeout_s must be positive, got {self.close_timeout_s}")
        if not 9 <= self.compression_window_bits <= 15:
            raise ValueError("WebSocketLimits.compression_window_bits must be 9..15 "
                             f"(RFC 7692 §7.1.2; zlib cannot compress with 8), got {self.compression_window_bits}")
        if not 1 <= self.compression_level <= 9:
            raise ValueError(f"WebSocketLimits.compression_level must be 1..9, got {self.compression_level}")
        if self.compression_min_bytes < 0:
            raise ValueError("WebSocketLimits.compression_min_bytes must be >= 0")


@dataclass(frozen=True)
class PushLimits:
    """A push hub's limits and timers (docs/push-protocol.md §8, §10, §11; ``Hub(limits=...)``).

    ``max_frame_bytes`` bounds a frame both ways (64 B..1 GiB; a bigger publish fails at the
    sender).  ``heartbeat_s``: each side pings after this long without sending; ``idle_timeout_s``:
    a peer silent this long is closed with ``idle_timeout``; ``hello_timeout_s``: the HELLO must
    be complete by then.  A session outlives its connection by ``resume_window_s`` and keeps its
    latest pushes (``resume_history_count`` of them, ``resume_history_bytes`` at most) for a
    resume.  ``queue_bytes``: a connection's unsent bytes (at its outbox) past which
    ``slow_consumer`` applies to that client alone: ``"disconnect"`` (close ``slow_consumer``, the
    session stays resumable) or ``"drop_oldest"`` (the oldest queued pushes go, a GAP says so).
    ``close_timeout_s`` bounds the wait for a CLOSE to flush.  ``max_connections`` per hub and
    process (REFUSE ``server_full`` past it); ``max_groups_per_client`` (a join past it raises).
    ``max_calls_in_flight``: a client's concurrent CALLs; past it reading pauses until one ends.
    """

    max_frame_bytes: int = 1024 * 1024
    heartbeat_s: float = 20.0
    idle_timeout_s: float = 50.0
    hello_timeout_s: float = 10.0
    resume_window_s: float = 60.0
    resume_history_count: int = 1000
    resume_history_bytes: int = 1024 * 1024
    queue_bytes: int = 1024 * 1024
    slow_consumer: str = "disconnect"
    close_timeout_s: float = 5.0
    max_connections: int = 10_000
    max_groups_per_client: int = 100
    max_calls_in_flight: int = 16

    def __post_init__(self) -> None:
        if not 64 <= self.max_frame_bytes <= 1 << 30:
            raise ValueError(f"PushLimits.max_frame_bytes must be 64..2**30, got {self.max_frame_bytes}")
        for name in ("heartbeat_s", "idle_timeout_s", "hello_timeout_s", "close_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"PushLimits.{name} must be positive, got {getattr(self, name)}")
        if self.idle_timeout_s <= self.heartbeat_s:
            raise ValueError("PushLimits.idle_timeout_s must be longer than heartbeat_s "
                             f"(got {self.idle_timeout_s} <= {self.heartbeat_s}): a live peer "
                             "would be closed between two heartbeats")
        if self.resume_window_s < 0:
            raise ValueError(f"PushLimits.resume_window_s must be >= 0, got {self.resume_window_s}")
        for name in ("resume_history_count", "resume_history_bytes"):
            if getattr(self, name) < 0:
                raise ValueError(f"PushLimits.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("queue_bytes", "max_connections", "max_groups_per_client", "max_calls_in_flight"):
            if getattr(self, name) <= 0:
                raise ValueError(f"PushLimits.{name} must be positive, got {getattr(self, name)}")
        if self.slow_consumer not in ("disconnect", "drop_oldest"):
            raise ValueError("PushLimits.slow_consumer must be 'disconnect' or 'drop_oldest', "
                             f"got {self.slow_consumer!r}")


# ---------------------------------------------------------------------- running a server process
@dataclass(frozen=True)
class RunConfig:
    """How a server process (or a supervisor of several) runs: what the ``cyserve`` command line
    and ``App.run`` set, with uvicorn's option names (``--ws-max-size`` is ``ws_max_size``) and
    uvicorn's defaults where the option means the same.  The command line
    (``cyserve.cli``) builds it from arguments and the environment; ``cyserve.server.workers``
    runs it; each concern's module reads its own fields.

    ``None`` in a field means "as the app (or the environment) says": e.g. ``workers=None`` reads
    ``WEB_CONCURRENCY``, ``forwarded_allow_ips=None`` reads ``FORWARDED_ALLOW_IPS`` (else
    ``127.0.0.1,::1``, as uvicorn), ``timeout_graceful_shutdown=None`` keeps the app's ``Timeouts.shutdown_s``.
    """

    # what to serve
    app: str | None = None                    # "module:attribute" (the CLI); None: an App object
    factory: bool = False                     # call the attribute to make the app
    app_dir: str = ""                         # put this directory first on sys.path
    interface: str = "auto"                   # auto | cyserve | asgi3 | asgi2 | wsgi (warned)
    lifespan: str = "auto"                    # auto | on | off
    env_file: str | None = None
    # where to listen
    host: str = "127.0.0.1"
    port: int = 8000
    uds: str | None = None                    # a Unix socket path (its permissions are kept)
    fd: int | None = None                     # an inherited listening socket's descriptor
    backlog: int = 2048
    # processes
    workers: int | None = None                # None: WEB_CONCURRENCY, else 1
    reload: bool = False
    reload_dirs: tuple[str, ...] = ()
    reload_includes: tuple[str, ...] = ()
    reload_excludes: tuple[str, ...] = ()
    reload_delay: float = 0.25
    timeout_worker_healthcheck: float = 5.0   # a worker silent this long on its pipe is replaced
    limit_max_requests: int | None = None     # recycle a worker after this many requests
    limit_max_requests_jitter: int = 0
    workers_max_rss: int | None = None        # MiB: recycle a worker above it (sampled)
    workers_lifetime: float | None = None     # seconds: recycle a worker after it
    gc_freeze: bool = True                    # gc.freeze() once the app has started
    # the event loop and the protocols (the values uvicorn knows are accepted; some are warned)
    loop: str = "auto"                        # auto | uvloop | asyncio | none
    http: str = "auto"                        # auto | httptools | h11 (the core is cyserve's)
    http2: bool = False
    ws: str = "auto"                          # auto | none | websockets | wsproto ...
    ws_max_size: int = 16 * 1024 * 1024
    ws_max_queue: int = 32
    ws_ping_interval: float | None = 20.0
    ws_ping_timeout: float | None = 20.0
    ws_per_message_deflate: bool = True
    h11_max_incomplete_event_size: int | None = None
    reset_contextvars: bool = False
    # logs
    log_config: str | None = None             # a dictConfig file: .json, .yaml/.yml or .ini
    log_level: str | None = None              # critical | error | warning | info | debug | trace
    log_format: str = "text"                  # text | json
    access_log: bool = True
    use_colors: bool | None = None
    # HTTP
    proxy_headers: bool = True
    forwarded_allow_ips: str | None = None    # "127.0.0.1,10.0.0.0/8", "*", "unix:"
    proxy_protocol: bool = False              # PROXY v1/v2 before each connection (trusted peers)
    server_header: bool = True
    date_header: bool = True
    headers: tuple[tuple[str, str], ...] = ()  # --header name:value, on every response
    root_path: str = ""
    timeout_keep_alive: float = 5.0
    timeout_graceful_shutdown: float | None = None
    timeout_head: float | None = None         # None: the app's Timeouts.head_s
    max_body_size: int | None = None          # None: the app's Limits.max_body_bytes
    # operations
    limit_concurrency: int | None = None      # 503 above this many connections and requests
    limit_connections_per_ip: int | None = None
    health_path: str | None = None            # e.g. /healthz
    metrics: str | None = None                # a path such as /metrics (prometheus-client)
    # TLS
    ssl_keyfile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile_password: str | None = None
    ssl_version: int = 17                     # ssl.PROTOCOL_TLS_SERVER, as uvicorn
    ssl_cert_reqs: int = 0                    # ssl.CERT_NONE
    ssl_ca_certs: str | None = None
    ssl_ciphers: str | None = None            # an OpenSSL cipher string; None: OpenSSL's default

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if self.backlog < 1:
            raise ValueError(f"backlog must be positive, got {self.backlog}")
        if self.log_format not in ("text", "json"):
            raise ValueError(f"log_format must be 'text' or 'json', got {self.log_format!r}")
        for name in ("limit_concurrency", "limit_connections_per_ip", "limit_max_requests",
                     "workers_max_rss"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
