"""Prometheus metrics of a serving cyserve: an observer the core tells of every response, and the
scrape endpoint, summed over every worker process when there are several.

``Metrics(path="/metrics")`` is both halves: the core's observer (``server.state.observer``; its
``response_done`` is called once per finished response) and a middleware (``app.use(metrics)``)
that answers ``GET path`` with the Prometheus text exposition and passes every other request on.
``metrics.bind(server)`` gives it the running server (the open-connections gauge reads its
registry of live connections) and ``metrics.unbind()`` writes the last figures at shutdown.

What is exported (every name under ``cyserve_``, label values from fixed sets only, so a
client cannot grow the series count):

- ``cyserve_requests_total{status_class="2xx", method="GET"}``: responses by status class and
  request method; a method outside RFC 9110 §9's table and PATCH (RFC 5789) is ``OTHER`` (methods
  are case-sensitive, RFC 9110 §9.1: ``get`` is ``OTHER``), and so is a response the core sent
  before a request head existed (a 400 for an unparsable head);
- ``cyserve_request_duration_seconds``: a histogram of the times the core measured;
- ``cyserve_response_bytes_total``: response content bytes (as the access log's, without heads
  or chunked framing);
- ``cyserve_open_connections``: connections open now (the scraping one included);
- ``cyserve_worker_restarts_total{reason=...}``: written by the supervisor (``worker_exited``).

The hot path: ``response_done`` touches no prometheus-client object.  It adds to plain Python
counters (an index into a list, a ``bisect`` for the bucket); ``flush`` hands the differences to
prometheus-client at scrape time, and with several workers also every ``flush_interval_s`` so that
another worker's scrape sees this one's figures.  Measured with ``timeit`` on this machine: 0.18 us
per response for the local sums against 1.15 us for a labelled counter, a byte counter and a
histogram ``observe`` in one process, and 3.9 us in multiprocess mode (each prometheus-client
write there is a lock, a pid check and an mmap write).

Several workers (prometheus-client's multiprocess mode): the supervisor calls
``setup_multiprocess()`` before it forks the first worker (it sets ``PROMETHEUS_MULTIPROC_DIR``
and clears the directory's stale files), ``worker_exited(pid, reason)`` each time it reaps a worker,
and ``teardown_multiprocess()`` when it exits.  Each worker writes its own per-pid files
(prometheus-client keys them by ``os.getpid()`` and reopens them after a fork) and any worker's
scrape reads every file: counters and the histogram are summed over live and dead workers (a
recycled worker's requests still count), the connections gauge over live ones only.
"""
from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
import weakref
from bisect import bisect_left
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from cyserve.errors import StartupError
from cyserve.response import BaseResponse, Response

if TYPE_CHECKING:
    import asyncio
    from types import ModuleType

    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.metrics_core import Metric

    from cyserve.middleware import Handler
    from cyserve.request import Request
    from cyserve.server.serve import Server

__all__ = [
    "DEFAULT_BUCKETS",
    "METHODS",
    "RESTART_REASONS",
    "Metrics",
    "setup_multiprocess",
    "teardown_multiprocess",
    "worker_exited",
]

_ENV = "PROMETHEUS_MULTIPROC_DIR"
_INSTALL_HINT = "--metrics needs prometheus-client: pip install 'cyserve[metrics]'"

#: Methods counted under their own name (RFC 9110 §9.3 and PATCH, RFC 5789); any other is OTHER.
METHODS: tuple[str, ...] = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS",
                            "CONNECT", "TRACE")
_METHOD_LABELS = METHODS + ("OTHER",)
_OTHER = len(METHODS)
_WIDTH = len(_METHOD_LABELS)
_METHOD_INDEX: dict[str, int] = {method: i for i, method in enumerate(METHODS)}
# One counter per (status // 100, method): status codes are three digits (RFC 9110 §15), so
# status // 100 is 0..9 whatever a handler set; only the classes seen become series.
_CLASSES = 10

#: Upper bounds of the latency histogram in seconds: prometheus-client's defaults start at 5 ms,
#: where most of a fast server's responses would share the first bucket.
DEFAULT_BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                      0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: Why a supervisor replaced a worker (``worker_exited``'s ``reason``); any other word is counted
#: as ``other``.  ``died``: it exited or was killed unasked; ``unhealthy``: it missed its health
#: checks and was killed; ``max_requests``/``max_rss``/``lifetime``: recycled; ``reload``: a
#: watched file changed; ``hup``: a SIGHUP rolling restart.
RESTART_REASONS: tuple[str, ...] = ("died", "unhealthy", "max_requests", "max_rss", "lifetime",
                                    "reload", "hup")

# Per-type files of a dead worker that keep counting in the totals (``worker_exited`` folds them
# into one archive per type); gauges are not among them: ``mark_process_dead`` drops the live ones.
_ARCHIVED_TYPES = ("counter", "histogram", "summary")


def _prometheus() -> ModuleType:
    """prometheus_client, or the StartupError telling how to install it."""
    try:
        import prometheus_client
        import prometheus_client.multiprocess
        import prometheus_client.values
    except ImportError as exc:
        raise StartupError(f"{_INSTALL_HINT} ({exc})") from exc
    return prometheus_client


def _use_multiprocess_values(prom: ModuleType) -> None:
    """Make metrics created from now on write per-pid files.

    prometheus-client picks its value class once, when ``prometheus_client.values`` is imported,
    from the environment; a script that built ``Metrics()`` (importing prometheus-client) before
    ``App.run(workers=N)`` set the directory would otherwise keep in-memory values that no other
    worker can read.  Metrics created earlier keep their class; cyserve's own are created lazily,
    after this.
    """
    values = prom.values
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()


class _Families:
    """The prometheus-client objects one process writes to: built lazily in the process that
    serves (after a fork, after ``setup_multiprocess``), never in a supervisor parent."""

    __slots__ = ("pid", "directory", "requests", "children", "sent_bytes", "latency_sum",
                 "latency_buckets", "connections", "collector")

    def __init__(self, prom: ModuleType, pid: int, directory: str | None,
                 buckets: Sequence[float], default_registry: bool) -> None:
        self.pid = pid
        self.directory = directory
        own: CollectorRegistry | None
        if directory is not None:
            _use_multiprocess_values(prom)
            own = None          # values go to this pid's files; scrapes read every pid's
            scraped = prom.CollectorRegistry()
            prom.multiprocess.MultiProcessCollector(scraped, path=directory)
            # The default registry's process and GC collectors describe one process only, and
            # the app's own metrics are in the files already.
            self.collector: Any = scraped
        else:
            own = prom.CollectorRegistry()
            self.collector = _Union((own, prom.REGISTRY) if default_registry else (own,))
        self.requests: Counter = prom.Counter(
            "cyserve_requests_total", "Responses sent, by status class and request method.",
            ("status_class", "method"), registry=own)
        self.children: list[Any] = [None] * (_CLASSES * _WIDTH)
        self.sent_bytes: Counter = prom.Counter(
            "cyserve_response_bytes_total",
            "Response content bytes sent (heads and chunked framing not included).",
            registry=own)
        latency: Histogram = prom.Histogram(
            "cyserve_request_duration_seconds",
            "Time from a request's head to its response's last byte, as the server measured it.",
            buckets=tuple(buckets), registry=own)
        # An unlabelled Histogram is its own child: one value per bucket (the last is +Inf) and
        # one for the sum.  prometheus-client has no public call that adds n observations at
        # once, so flush adds to these values directly (the test suite checks the layout).
        bucket_values = getattr(latency, "_buckets", None)
        if not isinstance(bucket_values, list) or len(bucket_values) != len(buckets) + 1:
            raise StartupError(f"prometheus-client {_version(prom)}: unknown Histogram layout; "
                               "install a version cyserve supports (pip install 'cyserve[metrics]')")
        self.latency_buckets: list[Any] = bucket_values
        self.latency_sum: Any = getattr(latency, "_sum")
        self.connections: Gauge = prom.Gauge(
            "cyserve_open_connections", "Connections open now.",
            multiprocess_mode="livesum", registry=own)

    def child(self, index: int) -> Any:
        """The counter child for one (status class, method) cell, made on first use."""
        child = self.children[index]
        if child is None:
            child = self.requests.labels(f"{index // _WIDTH}xx", _METHOD_LABELS[index % _WIDTH])
            self.children[index] = child
        return child


class _Union:
    """Several registries scraped as one (a text exposition has one ``# EOF`` at most)."""

    __slots__ = ("registries",)

    def __init__(self, registries: tuple[CollectorRegistry, ...]) -> None:
        self.registries = registries

    def collect(self) -> Iterable[Metric]:
        for registry in self.registries:
            yield from registry.collect()


def _version(prom: ModuleType) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("prometheus-client")
    except PackageNotFoundError:     # imported from a path pip does not know
        return str(getattr(prom, "__version__", "?"))


class Metrics:
    """Prometheus metrics for one app: observer of the core, scrape middleware, and (with
    several workers) the per-worker writer.  See the module docstring for the series.

    ``path``: where ``GET`` (and ``HEAD``) answer the exposition.  ``buckets``: the latency
    histogram's upper bounds (seconds, ascending).  ``default_registry``: also expose
    prometheus-client's default registry (process and GC figures, the app's own metrics) when
    serving in one process; with several workers every process's files are exposed instead.
    ``flush_interval_s``: with several workers, how stale another worker's scrape may see this
    one's figures.

    Raises ``StartupError`` when prometheus-client is not installed.
    """

    __slots__ = ("path", "buckets", "default_registry", "flush_interval_s", "_requests",
                 "_sent_bytes", "_latency", "_latency_sum", "_bounds", "_families", "_state",
                 "_timer", "__weakref__")

    def __init__(self, path: str = "/metrics", *, buckets: Sequence[float] = DEFAULT_BUCKETS,
                 default_registry: bool = True, flush_interval_s: float = 1.0) -> None:
        _prometheus()
        if not path.startswith("/"):
            raise ValueError(f"metrics path must start with '/', got {path!r}")
        bounds = tuple(float(b) for b in buckets if b != float("inf"))
        if not bounds or list(bounds) != sorted(set(bounds)):
            raise ValueError(f"buckets must be ascending and distinct, got {buckets!r}")
        if flush_interval_s <= 0:
            raise ValueError(f"flush_interval_s must be positive, got {flush_interval_s}")
        self.path = path
        self.buckets = bounds
        self.default_registry = default_registry
        self.flush_interval_s = flush_interval_s
        # What this process observed since its last flush (plain numbers: no locks, no files).
        self._requests: list[int] = [0] * (_CLASSES * _WIDTH)
        self._sent_bytes = 0
        self._latency: list[int] = [0] * (len(bounds) + 1)   # the last is +Inf
        self._latency_sum = 0.0
        self._bounds = bounds
        self._families: _Families | None = None
        self._state: Any = None
        self._timer: asyncio.TimerHandle | None = None
        _instances.add(self)

    # -- the core's observer ------------------------------------------------------------------

    def response_done(self, conn: Any, head: Any, status: int, sent_bytes: int,
                      duration_s: float) -> None:
        """One response finished (the core calls this on the loop thread)."""
        method = _OTHER if head is None else _METHOD_INDEX.get(head.method, _OTHER)
        self._requests[status // 100 * _WIDTH + method] += 1
        self._sent_bytes += sent_bytes
        # bisect_left: the first bound >= duration, as Prometheus's "le" (less or equal) wants.
        self._latency[bisect_left(self._bounds, duration_s)] += 1
        self._latency_sum += duration_s

    # -- the running server -------------------------------------------------------------------

    def bind(self, server: Server) -> None:
        """Read open connections from ``server``; with several workers, flush every
        ``flush_interval_s`` on its loop so that other workers' scrapes stay current."""
        self.unbind()
        self._state = server.state
        if os.environ.get(_ENV):
            self._timer = server.state.loop.call_later(self.flush_interval_s, self._tick)

    def unbind(self) -> None:
        """Write the last figures and forget the server (call once its connections are gone:
        the app's shutdown hooks run then).  Does nothing when not bound."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._state is not None:
            self.flush()
            self._state = None

    def _tick(self) -> None:
        state = self._state
        if state is None:
            return
        self.flush()
        self._timer = state.loop.call_later(self.flush_interval_s, self._tick)

    def flush(self) -> None:
        """Hand what was observed since the last flush to prometheus-client (and, with several
        workers, to this process's files)."""
        families = self._current()
        requests = self._requests
        for index, count in enumerate(requests):
            if count:
                families.child(index).inc(count)
                requests[index] = 0
        if self._sent_bytes:
            families.sent_bytes.inc(self._sent_bytes)
            self._sent_bytes = 0
        latency = self._latency
        for index, count in enumerate(latency):
            if count:
                families.latency_buckets[index].inc(count)
                latency[index] = 0
        if self._latency_sum:
            families.latency_sum.inc(self._latency_sum)
            self._latency_sum = 0.0
        state = self._state
        families.connections.set(len(state.connections) if state is not None else 0)

    def _forked(self) -> None:
        """In a child just forked: what the parent had not flushed is the parent's to report,
        and the parent's prometheus-client objects and server are not this process's."""
        self._requests[:] = [0] * len(self._requests)
        self._sent_bytes = 0
        self._latency[:] = [0] * len(self._latency)
        self._latency_sum = 0.0
        self._families = None
        self._state = None
        self._timer = None

    def _current(self) -> _Families:
        pid = os.getpid()
        directory = os.environ.get(_ENV) or None
        families = self._families
        if families is None or families.pid != pid or families.directory != directory:
            families = _Families(_prometheus(), pid, directory, self._bounds,
                                 self.default_registry)
            self._families = families
        return families

    # -- the scrape ---------------------------------------------------------------------------

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition and its content type, in the format ``accept`` asks for (OpenMetrics
        when it asks for it, else the Prometheus text format 0.0.4)."""
        from prometheus_client.exposition import choose_encoder
        self.flush()
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self._current().collector), content_type

    def __call__(self, handler: Handler) -> Handler:
        """The middleware: ``GET``/``HEAD`` ``path`` is the scrape, anything else goes on."""
        path = self.path

        async def call(request: Request) -> BaseResponse:
            if request.path == path and request.method in ("GET", "HEAD"):
                body, content_type = self.render(request.headers.get("accept"))
                # A scrape is a reading of now: no cache may answer the next one.
                return Response(body, 200, [("Cache-Control", "no-store")], content_type)
            return await handler(request)
        return call


# Every Metrics of this process, reset in a forked child at the fork itself: a check at the next
# flush would come after the child's first responses and could not tell them from the parent's.
_instances: weakref.WeakSet[Metrics] = weakref.WeakSet()


def _after_fork() -> None:
    for metrics in list(_instances):
        metrics._forked()


os.register_at_fork(after_in_child=_after_fork)


# -- the supervisor's side ------------------------------------------------------------------------

_created_directory: str | None = None
_restarts: tuple[int, Counter] | None = None


def setup_multiprocess(directory: str | None = None) -> str:
    """In the supervisor, before it forks the first worker: choose the directory every worker
    writes its figures to, clear the ``.db`` files a previous run left there (their counts
    would be added to this run's), set ``PROMETHEUS_MULTIPROC_DIR`` (inherited by workers) and
    return the directory.

    ``directory``: use (and create) this one; else ``PROMETHEUS_MULTIPROC_DIR`` when it is set;
    else a private temporary directory that ``teardown_multiprocess`` removes.
    Call it before any ``Metrics`` of this process scrapes or flushes: figures flushed in
    one-process mode stay behind in that mode's registry.
    Raises ``StartupError`` when prometheus-client is not installed.
    """
    global _created_directory
    prom = _prometheus()
    if directory is None:
        directory = os.environ.get(_ENV) or None
    if directory is None:
        directory = tempfile.mkdtemp(prefix="cyserve-metrics-")
        _created_directory = directory
    else:
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise StartupError(f"metrics directory {directory!r}: {exc.strerror}") from exc
        for stale in glob.glob(os.path.join(directory, "*.db")):
            os.remove(stale)
    os.environ[_ENV] = directory
    _use_multiprocess_values(prom)
    # Every reason at 0 from the start, so rate() and increase() have a first sample.
    counter = _restart_counter(prom)
    for reason in RESTART_REASONS + ("other",):
        counter.labels(reason)
    return directory


def worker_exited(pid: int, reason: str | None) -> None:
    """In the supervisor, each time it reaps a worker (after ``waitpid``): drop the worker's
    live gauges, fold its counter and histogram files into the directory's archive (the totals
    keep them; the directory stops growing with every recycle) and, when ``reason`` is not
    ``None``, count a restart under it (``RESTART_REASONS``; another word counts as ``other``).
    ``reason=None``: the worker was not replaced (shutdown, one worker fewer).
    """
    directory = os.environ.get(_ENV)
    if not directory:
        raise RuntimeError("worker_exited() needs setup_multiprocess() first")
    prom = _prometheus()
    prom.multiprocess.mark_process_dead(pid, directory)
    _archive(directory, pid)
    if reason is not None:
        label = reason if reason in RESTART_REASONS else "other"
        _restart_counter(prom).labels(label).inc()


def teardown_multiprocess() -> None:
    """In the supervisor as it exits: remove the directory ``setup_multiprocess`` created (a
    directory it was given is left, its files with it)."""
    global _created_directory
    directory, _created_directory = _created_directory, None
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)
        if os.environ.get(_ENV) == directory:
            del os.environ[_ENV]


def _restart_counter(prom: ModuleType) -> Counter:
    """The supervisor's restart counter (in its own pid's file), made once per process."""
    global _restarts
    pid = os.getpid()
    if _restarts is None or _restarts[0] != pid:
        _restarts = (pid, prom.Counter(
            "cyserve_worker_restarts_total", "Workers the supervisor replaced, by reason.",
            ("reason",), registry=None))
    return _restarts[1]


def _archive(directory: str, pid: int) -> None:
    """Add a dead worker's counter, histogram and summary values to ``<type>_archive.db`` and
    remove its files.

    Only the supervisor writes archives (it alone calls this), so there is one writer.  A scrape
    running at this instant may read the sums once without the dead worker's share or once with
    it twice; the next scrape is exact again.
    """
    from prometheus_client import mmap_dict
    mmaped: Any = mmap_dict.MmapedDict   # untyped in prometheus-client
    for kind in _ARCHIVED_TYPES:
        dead = os.path.join(directory, f"{kind}_{pid}.db")
        if not os.path.exists(dead):
            continue
        archive = mmaped(os.path.join(directory, f"{kind}_archive.db"))
        try:
            for key, value, _timestamp, _pos in mmaped.read_all_values_from_file(dead):
                total, _ = archive.read_value(key)
                archive.write_value(key, total + value, 0.0)
        finally:
            archive.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(dead)
