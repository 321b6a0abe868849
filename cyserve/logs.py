"""Logging for a running server: the stdlib ``logging`` module, set up the way uvicorn users know.

Loggers (uvicorn's shape, ``uvicorn`` read as ``cyserve``):

- ``cyserve``: the parent of every server message.  The default configuration gives it the one
  handler (stderr) and stops propagation there, so the modules' own loggers (``cyserve.server``,
  ``cyserve.app``, ``cyserve.lifecycle``, ``cyserve.websocket``, ``cyserve.client``, ...) all come
  out through it, each under its own name.
- ``cyserve.error``: a named child of ``cyserve`` for what uvicorn logs to ``uvicorn.error`` (the
  supervisor and the command line write there).  A configuration written for ``uvicorn.error``
  keeps working renamed; one that should catch *every* server message configures ``cyserve``.
- ``cyserve.access``: one line per finished response (``AccessLog``), with a handler of its own
  (stdout) and no propagation, so access lines never mix into the error stream.

``configure(config)`` applies a ``RunConfig``: ``log_config`` (a dictConfig file in JSON or YAML,
or an ini file for ``fileConfig``) or else the default configuration (``dict_config``) shaped by
``log_format`` (text or JSON) and ``use_colors``; then ``log_level`` on both loggers; then
``access_log=False`` silences ``cyserve.access``.  A TRACE level (5) is registered, as uvicorn does.

The access line is uvicorn's plus what it lacks (bytes and the response time)::

    127.0.0.1:54321 - "GET /path?q=1 HTTP/1.1" 200 13 0.42ms

and its record carries the parts as attributes (``client_addr``, ``method``, ``path``,
``http_version``, ``status_code``, ``bytes``, ``duration_ms``, ``request_id``) for a formatter.
``JSONFormatter`` writes any record as one JSON object per line, those fields included.

The default access handler is a ``BatchedStreamHandler``: the lines of one event-loop turn
reach the stream in one write and one flush at the end of that turn (``logging.StreamHandler``
writes and flushes once per line), written at once when no loop runs in the logging thread.
"""
from __future__ import annotations

import asyncio
import configparser
import datetime
import importlib
import json
import logging
import logging.config
import os
import sys
import threading
import time
import weakref
from typing import IO, TYPE_CHECKING, Any, Literal, Mapping, TextIO

from cyserve.context import _current as _current_request
from cyserve.errors import StartupError

if TYPE_CHECKING:
    from cyserve.config import RunConfig

__all__ = [
    "DEFAULT_FORMAT",
    "TRACE",
    "LOG_LEVELS",
    "AccessLog",
    "BatchedStreamHandler",
    "JSONFormatter",
    "TextFormatter",
    "configure",
    "dict_config",
    "load_config_file",
]

TRACE = 5
"""Below DEBUG: protocol-level detail (uvicorn's ``--log-level trace``)."""

LOG_LEVELS: dict[str, int] = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE,
}

_INFO = logging.INFO
# Called per access line.
_LogRecord = logging.LogRecord
_new_record = object.__new__
_time = time.time
_get_ident = threading.get_ident
_current_thread = threading.current_thread


# ------------------------------------------------------------------------------- configuration
def configure(config: RunConfig) -> None:
    """Set up ``logging`` from ``config``; call it early in every server process (it may run
    again: each call replaces the handlers of the loggers it configures).

    Raises ``StartupError`` (one line naming the file and the reason) when ``log_config`` cannot
    be read or applied, or when ``log_level`` is not one of ``LOG_LEVELS``.
    """
    logging.addLevelName(TRACE, "TRACE")
    level: int | None = None
    if config.log_level is not None:
        try:
            level = LOG_LEVELS[config.log_level.lower()]
        except KeyError:
            raise StartupError(f"--log-level {config.log_level!r} is not one of "
                               f"{', '.join(LOG_LEVELS)}") from None
    if config.log_config is not None:
        # The user's file replaces the default configuration entirely (uvicorn's rule), so
        # log_format and use_colors, which only shape the default, do not apply to it.
        load_config_file(config.log_config)
    else:
        logging.config.dictConfig(dict_config(config.log_format, config.use_colors))
    if level is not None:
        for name in ("cyserve", "cyserve.error", "cyserve.access"):
            logging.getLogger(name).setLevel(level)
    if not config.access_log:
        access = logging.getLogger("cyserve.access")
        access.handlers = []
        access.propagate = False


def dict_config(log_format: str = "text", use_colors: bool | None = None) -> dict[str, Any]:
    """The default configuration as a ``logging.config.dictConfig`` dictionary (a fresh one each
    call; a starting point for a user's own file): server messages to stderr, access lines to
    stdout (through a ``BatchedStreamHandler``: one write per event-loop turn), both at INFO.

    ``log_format`` "text" writes ``LEVEL:    message`` (``TextFormatter``), "json" one object per
    line (``JSONFormatter``).  ``use_colors=None`` colours each stream when it is a terminal.
    """
    if log_format not in ("text", "json"):
        raise ValueError(f"log_format must be 'text' or 'json', got {log_format!r}")
    formatters: dict[str, Any]
    if log_format == "json":
        formatters = {"default": {"()": JSONFormatter}, "access": {"()": JSONFormatter}}
    else:
        # Resolved here rather than in the formatter, which cannot see the stream it writes to.
        err_colors = _isatty(sys.stderr) if use_colors is None else use_colors
        out_colors = _isatty(sys.stdout) if use_colors is None else use_colors
        formatters = {
            "default": {"()": TextFormatter, "fmt": DEFAULT_FORMAT, "use_colors": err_colors},
            "access": {"()": TextFormatter, "fmt": DEFAULT_FORMAT, "use_colors": out_colors},
        }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": formatters,
        "handlers": {
            "default": {"class": "logging.StreamHandler", "formatter": "default",
                        "stream": "ext://sys.stderr"},
            "access": {"class": "cyserve.logs.BatchedStreamHandler", "formatter": "access",
                       "stream": "ext://sys.stdout"},
        },
        "loggers": {
            "cyserve": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "cyserve.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }


def load_config_file(path: str) -> None:
    """Apply a logging configuration file, chosen by its extension as uvicorn does: ``.json``
    and ``.yaml``/``.yml`` hold a dictConfig dictionary, anything else is an ini file for
    ``fileConfig``.  Existing loggers stay enabled (module loggers are made at import, before
    this runs).  Every failure is a ``StartupError`` naming the file and the reason."""
    logging.addLevelName(TRACE, "TRACE")
    lower = path.lower()
    if not os.path.isfile(path):
        # fileConfig reads a missing file as an empty one and fails later with a bare KeyError.
        raise StartupError(f"--log-config {path}: no such file")
    try:
        if lower.endswith(".json"):
            with open(path, encoding="utf-8") as file:
                loaded: Any = json.load(file)
            _apply_dict(path, loaded)
        elif lower.endswith((".yaml", ".yml")):
            try:
                # Imported by name: PyYAML ships no type information (its stubs are optional).
                yaml: Any = importlib.import_module("yaml")
            except ImportError:
                raise StartupError(f"--log-config {path}: reading YAML needs PyYAML: "
                                   "pip install 'cyserve[yaml]'") from None
            try:
                with open(path, encoding="utf-8") as file:
                    loaded = yaml.safe_load(file)
            except yaml.YAMLError as exc:
                raise StartupError(f"--log-config {path}: {_one_line(exc)}") from exc
            _apply_dict(path, loaded)
        else:
            logging.config.fileConfig(path, disable_existing_loggers=False)
    except StartupError:
        raise
    except (OSError, ValueError, TypeError, KeyError, AttributeError, ImportError, RuntimeError,
            configparser.Error) as exc:
        # json.JSONDecodeError is a ValueError; dictConfig wraps most of its failures in
        # ValueError; fileConfig raises RuntimeError for an empty or unparsable file (3.11.4+)
        # and lets KeyError (a missing section) and configparser's own errors through.
        raise StartupError(f"--log-config {path}: {_one_line(exc)}") from exc


def _apply_dict(path: str, loaded: Any) -> None:
    if not isinstance(loaded, dict):
        raise StartupError(f"--log-config {path}: expected a mapping at the top, "
                           f"got {type(loaded).__name__}")
    logging.config.dictConfig(loaded)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _isatty(stream: IO[str] | None) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


# --------------------------------------------------------------------------------- formatters
DEFAULT_FORMAT = "%(levelprefix)s %(message)s"
"""uvicorn's default line: the padded level name, then the message."""

_RESET = "\x1b[0m"
_LEVEL_COLOURS: dict[int, str] = {
    TRACE: "\x1b[34m",                # blue
    logging.DEBUG: "\x1b[36m",        # cyan
    logging.INFO: "\x1b[32m",         # green
    logging.WARNING: "\x1b[33m",      # yellow
    logging.ERROR: "\x1b[31m",        # red
    logging.CRITICAL: "\x1b[91m",     # bright red
}


class TextFormatter(logging.Formatter):
    """uvicorn's text shape: adds ``%(levelprefix)s`` (``INFO:`` padded to 9 columns, the level
    name coloured when ``use_colors``) to what a ``logging.Formatter`` offers.

    ``use_colors=None`` colours when stderr is a terminal.  Usable from a user's dictConfig:
    ``{"()": "cyserve.logs.TextFormatter", "fmt": "%(levelprefix)s %(message)s"}``.
    """

    def __init__(self, fmt: str | None = None, datefmt: str | None = None,
                 style: Literal["%", "{", "$"] = "%", validate: bool = True, *,
                 defaults: Mapping[str, Any] | None = None, use_colors: bool | None = None) -> None:
        super().__init__(fmt, datefmt, style, validate, defaults=defaults)
        self.use_colors = _isatty(sys.stderr) if use_colors is None else bool(use_colors)
        # The default shape is joined directly (one line per response on the access log):
        # Formatter's general path scans the format for asctime and %-formats a dict each time.
        self._plain = style == "%" and fmt == DEFAULT_FORMAT and not defaults
        self._prefixes: dict[str, str] = {}

    def _prefix(self, record: logging.LogRecord) -> str:
        name = record.levelname
        prefix = self._prefixes.get(name)
        if prefix is None:
            pad = " " * (8 - len(name))
            colour = _LEVEL_COLOURS.get(record.levelno) if self.use_colors else None
            prefix = f"{colour}{name}{_RESET}:{pad}" if colour else f"{name}:{pad}"
            self._prefixes[name] = prefix
        return prefix

    def format(self, record: logging.LogRecord) -> str:
        if self._plain and not (record.exc_info or record.exc_text or record.stack_info):
            message = record.getMessage()
            record.message = message
            prefix = self._prefixes.get(record.levelname)
            return f"{prefix or self._prefix(record)} {message}"
        return super().format(record)

    def formatMessage(self, record: logging.LogRecord) -> str:
        # Set on the record as Formatter sets ``message`` and ``asctime``: no copy of it per line.
        record.levelprefix = self._prefix(record)
        return super().formatMessage(record)


# Every attribute a plain LogRecord has; whatever else a record carries (the access fields, a
# caller's ``extra=``) goes into the JSON object as its own key.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "levelprefix", "color_message", "taskName"}


# One encoder for every line (json.dumps with an argument makes a new one per call).
_ENCODER = json.JSONEncoder(default=str)


class JSONFormatter(logging.Formatter):
    """One JSON object per record, on one line: ``time`` (ISO 8601, UTC, milliseconds),
    ``level``, ``logger``, ``message``; then every extra attribute of the record (for access
    lines ``client_addr``, ``method``, ``path``, ``http_version``, ``status_code``, ``bytes``,
    ``duration_ms``, ``request_id``; a caller's ``extra=`` keys too); ``request_id`` for any
    record logged while a request whose id was made or adopted (``RequestID`` middleware,
    ``request.id``) is being handled; ``exc_info`` and ``stack_info`` as formatted text.

    Values JSON cannot hold are written with ``str``.  Usable from a user's dictConfig:
    ``{"()": "cyserve.logs.JSONFormatter"}`` (``datefmt`` replaces the ISO time when given).
    """

    def __init__(self, fmt: str | None = None, datefmt: str | None = None,
                 style: Literal["%", "{", "$"] = "%", validate: bool = True, *,
                 defaults: Mapping[str, Any] | None = None, use_colors: bool | None = None) -> None:
        # use_colors is accepted (and ignored) so one dictConfig can switch formatters.
        super().__init__(fmt, datefmt, style, validate, defaults=defaults)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt:
            return super().formatTime(record, datefmt)
        moment = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
        return moment.isoformat(timespec="milliseconds")

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        record.message = message
        out: dict[str, Any] = {
            "time": self.formatTime(record, self.datefmt),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        out.update({key: value for key, value in record.__dict__.items()
                    if key not in _RECORD_ATTRS})
        ms = out.get("duration_ms")
        if type(ms) is float:
            out["duration_ms"] = round(ms, 3)  # microseconds: what loop.time() resolves
        if out.get("request_id") is None:
            rid = _request_id()
            if rid is not None:
                out["request_id"] = rid
            else:
                out.pop("request_id", None)
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc_info"] = record.exc_text
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        return _ENCODER.encode(out)


def _request_id() -> str | None:
    """The id of the request being handled in this context, if one was made or adopted (never
    made here: a line must not invent an id the response did not carry)."""
    request = _current_request.get()
    return None if request is None else request._id


# ------------------------------------------------------------------------------------ handler
_BATCH_CHARS = 64 * 1024


class BatchedStreamHandler(logging.StreamHandler[TextIO]):
    """A ``StreamHandler`` that writes the lines of one event-loop turn at once: the first
    record of a turn schedules a flush with ``loop.call_soon``, the others only append their
    line to a list.  ``StreamHandler`` writes and flushes every line, a system call each: about
    a third of what an access line costs a busy server (``bench/micro/access_log.py``).

    Every line reaches the stream in the order the records came, and in the turn that made it
    (``tail -f`` sees it at once; a crash loses that turn's lines at most).  Written at once,
    with whatever is buffered before it: a record from a thread where no loop runs (a thread
    pool, startup, shutdown) and one that takes the buffer past ``max_buffer_chars``.  Also
    written out by ``flush()``, ``close()``, ``setStream()`` and ``logging.shutdown()`` (which
    ``logging`` runs at exit).  Lines buffered in the turn in which a loop stops go out with the
    next line logged, or when that loop runs again; a process that leaves with ``os._exit``
    must call ``flush()`` first, as for any buffered stream.

    Threads: records are handled under the handler's lock (``Handler.handle``), and so is the
    flush; a loop's thread alone schedules a flush on it (two loops in two threads each
    schedule their own).  A forked child drops the lines its parent had buffered (the parent
    writes them).  Usable from a user's dictConfig:
    ``{"class": "cyserve.logs.BatchedStreamHandler", "stream": "ext://sys.stdout"}``.
    """

    def __init__(self, stream: TextIO | None = None,
                 max_buffer_chars: int = _BATCH_CHARS) -> None:
        super().__init__(stream)
        self.max_buffer_chars = max_buffer_chars
        self._lines: list[str] = []
        self._chars = 0
        # Whether a flush is queued, on which loop, by which thread.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._pending = False
        _batched.add(self)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
            self._lines.append(line)
            self._chars += len(line)
            if self._chars >= self.max_buffer_chars:
                self._write()
                return
            loop = self._loop
            # The common case, told without get_running_loop (three times the cost of these
            # tests): this thread queued this turn's flush on a loop that still runs.
            if (self._pending and loop is not None and self._loop_thread == _get_ident()
                    and loop.is_running()):
                return
            try:
                here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            except RuntimeError:
                here = None
            if here is None:
                # Written now, after what is buffered, so the lines keep their order.
                self._write()
                return
            # The first line of this loop's turn.  A flush still queued elsewhere changes
            # nothing: on a loop running in another thread it writes these lines too, if first
            # (this one then finds nothing); on a stopped loop it may never run.
            here.call_soon(self._end_turn)
            self._loop = here
            self._loop_thread = _get_ident()
            self._pending = True
        except RecursionError:  # as StreamHandler.emit (bpo-36272)
            raise
        except Exception:  # noqa: BLE001 - logging's contract: handleError reports it
            self.handleError(record)

    def _end_turn(self) -> None:
        self.acquire()
        try:
            # Unconditionally: a stale flush running late only costs the next line a new one.
            self._pending = False
            self._write()
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - as in emit: reported, never raised into the loop
            self.handleError(logging.makeLogRecord(
                {"name": "cyserve.logs", "msg": "writing the buffered log lines"}))
        finally:
            self.release()

    def _write(self) -> None:
        """Write out the buffered lines (the caller holds the lock); a failed write loses them,
        as StreamHandler loses a line it could not write."""
        lines = self._lines
        if not lines:
            return
        text = "".join(lines)
        lines.clear()
        self._chars = 0
        stream = self.stream
        stream.write(text)
        if hasattr(stream, "flush"):
            stream.flush()

    def flush(self) -> None:
        self.acquire()
        try:
            if self._lines:
                self._write()
            else:
                super().flush()
        finally:
            self.release()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            super().close()

    def _forget(self) -> None:
        """In a forked child: the parent writes what it had buffered."""
        self._lines.clear()
        self._chars = 0
        self._loop = None
        self._pending = False


_batched: weakref.WeakSet[BatchedStreamHandler] = weakref.WeakSet()


# --------------------------------------------------------------------------------- access log
# Two templates, so the request line is never built unless a handler formats the record.
_LINE = '%s - "%s %s HTTP/%s" %d %d %.2fms'
_LINE_NO_HEAD = '%s - "-" %d %d %.2fms'   # the core answered before a head parsed (400, 431...)
_VERSIONS = {10: "1.0", 11: "1.1"}


class AccessLog:
    """The access log: an observer the core calls once per finished response (``ServerState
    .observer``), writing one INFO record to ``logger`` (``cyserve.access`` by default).

    The client is the proxy-resolved one when the proxy-headers middleware set
    ``conn.forwarded`` (a trusted peer's ``X-Forwarded-For``/``Forwarded``), else the socket
    peer; ``host:port`` (``[v6]:port``), the host alone when no port is known, ``-`` for a
    Unix-socket peer.  ``path`` is the request-target as sent (path and query, as uvicorn logs
    it).  With no head (the core refused the bytes before one parsed) the request line is ``-``
    and ``method``, ``path`` and ``http_version`` are None.

    Cost: nothing but one ``isEnabledFor`` when the logger is off; otherwise one record, made
    without ``findCaller`` (no stack walk) and with its message left unformatted until a handler
    formats it.  While ``logging`` makes plain ``LogRecord`` objects (its default record
    factory, a logger class that keeps ``makeRecord``), the record is filled in here, attribute
    for attribute as ``LogRecord`` fills it, from a copy of those that are the same on every
    line (``LogRecord.__init__`` splits the path, looks up the level name and asks for the pid
    each time): less than half the cost.  Otherwise ``logger.makeRecord`` makes it.
    """

    __slots__ = ("_logger", "_template")

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger if logger is not None else logging.getLogger("cyserve.access")
        self._template = _record_template(self._logger)

    @property
    def logger(self) -> logging.Logger:
        """Where the records go (read-only: the record template is made for it)."""
        return self._logger

    def response_done(self, conn: Any, head: Any, status: int, sent_bytes: int,
                      duration_s: float) -> None:
        logger = self._logger
        if not logger.isEnabledFor(_INFO):
            return
        forwarded = conn.forwarded
        peer = forwarded[0] if forwarded is not None and forwarded[0] is not None \
            else conn.stream.peername
        if type(peer) is tuple:
            host, port = peer[0], peer[1]
            if ":" in host:
                host = f"[{host}]"
            client = f"{host}:{port}" if port else host
        else:
            client = "-"
        ms = duration_s * 1000.0
        if head is not None:
            method: str | None = head.method
            path: str | None = head.target
            version: str | None = _VERSIONS.get(head.version, "1.1")
            msg = _LINE
            args: tuple[Any, ...] = (client, method, path, version, status, sent_bytes, ms)
        else:
            method = path = version = None
            msg = _LINE_NO_HEAD
            args = (client, status, sent_bytes, ms)
        template = self._template
        if template is not None and logging.getLogRecordFactory() is _LogRecord:
            record = _filled_record(template, msg, args)
        else:
            record = logger.makeRecord(logger.name, _INFO, __file__, 0, msg, args, None)
        # Plain attribute stores: what an ``extra=`` dict would do, without making the dict.
        record.client_addr = client
        record.method = method
        record.path = path
        record.http_version = version
        record.status_code = status
        record.bytes = sent_bytes
        record.duration_ms = ms
        request = _current_request.get()
        record.request_id = None if request is None else request._id
        logger.handle(record)


# How LogRecord (3.11 to 3.13) fills a record: the attributes set per record (None when the
# matching ``logging.log*`` switch is off), and those that are the same on every access line.
_PER_RECORD = frozenset({"msg", "args", "created", "msecs", "relativeCreated", "thread",
                         "threadName", "processName", "process"})
_PER_RECORD_312 = frozenset({"taskName"})
_CONSTANT = frozenset({"name", "levelname", "levelno", "pathname", "filename", "module",
                       "exc_info", "exc_text", "stack_info", "lineno", "funcName"})


def _record_template(logger: logging.Logger) -> dict[str, Any] | None:
    """The attributes of ``logger``'s INFO records from this file, as ``LogRecord`` sets them
    now (the level's name too) and in its order, the per-record ones None; None when records
    must come from ``makeRecord``: a logger class with its own, or a LogRecord whose attributes
    are not the ones ``_filled_record`` knows how to fill."""
    if type(logger).makeRecord is not logging.Logger.makeRecord:
        return None
    fields = vars(_LogRecord(logger.name, _INFO, __file__, 0, "", (), None))
    if fields.keys() - _PER_RECORD_312 != _PER_RECORD | _CONSTANT:
        return None
    return {key: value if key in _CONSTANT else None for key, value in fields.items()}


def _filled_record(template: dict[str, Any], msg: str, args: tuple[Any, ...]) -> logging.LogRecord:
    record: logging.LogRecord = _new_record(_LogRecord)
    record.__dict__ = fields = template.copy()
    created = _time()  # 3.13's LogRecord reads time_ns(): the same time, to the microsecond
    fields["msg"] = msg
    fields["args"] = args
    fields["created"] = created
    fields["msecs"] = int((created - int(created)) * 1000) + 0.0
    fields["relativeCreated"] = (created - _LOGGING_START_S) * 1000
    if logging.logThreads:
        fields["thread"] = _get_ident()
        fields["threadName"] = _current_thread().name
    if logging.logMultiprocessing:
        mp = sys.modules.get("multiprocessing")
        fields["processName"] = "MainProcess" if mp is None else mp.current_process().name
    if logging.logProcesses:
        fields["process"] = _pid
    if "taskName" in fields and getattr(logging, "logAsyncioTasks", False):
        try:
            task = asyncio.current_task()
        except RuntimeError:  # no loop runs in this thread
            task = None
        fields["taskName"] = None if task is None else task.get_name()
    return record


def _logging_start_s() -> float:
    """When ``logging`` was imported (what ``relativeCreated`` counts from), read off a record."""
    probe = _LogRecord("", _INFO, "", 0, "", (), None)
    return probe.created - probe.relativeCreated / 1000.0


_LOGGING_START_S = _logging_start_s()

# os.getpid() is a system call; the pid changes only in a forked child.
_pid = os.getpid()


def _after_fork_in_child() -> None:
    global _pid
    _pid = os.getpid()
    for handler in list(_batched):
        handler._forget()


os.register_at_fork(after_in_child=_after_fork_in_child)
