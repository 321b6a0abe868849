"""The ``cyserve`` command line: ``cyserve main:app --workers 4`` (and ``python -m cyserve``).

Every option of uvicorn 0.55 is accepted under its own name, with uvicorn's meaning and default
where the meaning carries over, so a Dockerfile changes one word.  Options that mean nothing to
cyserve (``--http h11``, ``--ws wsproto``, ``--http2``, ...) are accepted and each prints one
warning line.  cyserve's own options follow (``--timeout-head``, ``--max-body-size``,
``--workers-max-rss``, ``--workers-lifetime``, ``--metrics``, ``--health-path``,
``--proxy-protocol``, ``--limit-connections-per-ip``, ``--log-format``).

Where a value comes from, first found wins: the command line, ``CYSERVE_<OPTION>``,
``UVICORN_<OPTION>`` (uvicorn's options only), then ``WEB_CONCURRENCY`` (``--workers``) and
``FORWARDED_ALLOW_IPS`` (``--forwarded-allow-ips``) as uvicorn reads them, then the default in
``RunConfig``.  ``<OPTION>`` is the option name upper-cased with ``-`` as ``_``
(``CYSERVE_WS_MAX_SIZE``); for the four options whose uvicorn parameter is named differently
(``--reload-dir``/``reload_dirs``, ``--reload-include``, ``--reload-exclude``,
``--header``/``headers``) both spellings are read, so uvicorn's ``UVICORN_RELOAD_DIRS`` keeps
working.  An empty variable counts as unset (click's rule).  ``docs/cli.md`` is the table.

``parse`` turns arguments and an environment into a ``RunConfig`` and does nothing else; ``main``
adds what a process does: help, version, ``--env-file``, the warnings, and ``launch``.  Exit
status: 0 after a clean stop, 2 for a usage error (argparse's convention, and click's), 3 when the
server cannot start (uvicorn's ``STARTUP_FAILURE``).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
from dataclasses import dataclass, fields
from typing import Any, Callable, Literal, Mapping, NoReturn, Sequence

from cyserve.config import RunConfig
from cyserve.errors import StartupError

__all__ = ["parse", "main", "version_line"]

_PROG = "cyserve"
#: uvicorn's LOG_LEVELS (TRACE is its level 5, below DEBUG).
_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
#: The event loops cyserve runs on; "none" is uvicorn's "install no loop factory" (stdlib
#: asyncio); "module:attr" names a loop factory, as in uvicorn.  uvicorn's "zuvloop" is accepted
#: and runs on auto, with a warning.
_LOOPS = ("auto", "asyncio", "uvloop", "none")
_FOREIGN_LOOPS = ("zuvloop",)
#: Bare ``--metrics`` serves the exposition here (Prometheus' conventional path).
_METRICS_PATH = "/metrics"
#: click's BoolParamType words, which uvicorn's environment variables go through.
_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})
#: RFC 9110 §5.6.2: tchar, the bytes a field name (a token) is made of.
_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


# ---------------------------------------------------------------------- values from text
def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:  # uvicorn's click.IntRange(min=0)
        raise argparse.ArgumentTypeError(f"{value} is not >= 0")
    return value


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None


def _text(text: str) -> str:
    return text


def _bool(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value: {text!r} (use 1/0, true/false, "
                                     "yes/no or on/off)")


def _choice(*choices: str) -> Callable[[str], str]:
    def convert(text: str) -> str:
        word = text.lower()
        if word not in choices:
            raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from "
                                             f"{', '.join(choices)})")
        return word
    return convert


def _header(text: str) -> tuple[str, str]:
    """``Name:Value`` (uvicorn's format), checked here so a bad header fails at the command line,
    not on the first response: the name is a token (RFC 9110 §5.6.2), the value holds no control
    byte but HTAB (§5.5: CR or LF would split the header) and fits latin-1.  Whitespace around the
    value is dropped: it is not part of a field value (§5.5); uvicorn keeps it in the value."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip(" \t")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected 'Name:Value', got {text!r}")
    if not set(name) <= _TCHAR:
        raise argparse.ArgumentTypeError(f"header name {name!r} is not a token (RFC 9110 §5.6.2)")
    if any((ord(c) < 32 and c != "\t") or ord(c) == 127 or ord(c) > 255 for c in value):
        raise argparse.ArgumentTypeError(f"header value {value!r} holds a control character or "
                                         "one outside latin-1 (RFC 9110 §5.5)")
    return name, value


def _loop(text: str) -> str:
    if text in _LOOPS or text in _FOREIGN_LOOPS or ":" in text:
        return text
    raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from "
                                     f"{', '.join(_LOOPS)}, or module:factory)")


def _url_path(text: str) -> str:
    if not text.startswith("/"):
        raise argparse.ArgumentTypeError(f"expected a path starting with '/', got {text!r}")
    return text


def _metrics_from_env(text: str) -> str | None:
    """``CYSERVE_METRICS=/path``, or a boolean word: on serves ``/metrics``, off serves none."""
    if text.startswith("/"):
        return text
    return _METRICS_PATH if _bool(text) else None


# ---------------------------------------------------------------------- the options
@dataclass(frozen=True)
class _Option:
    """One option: its flag, the RunConfig field it sets and how its text becomes a value."""

    flag: str                                     # "--ws-max-size"
    field: str                                    # "ws_max_size"
    help: str
    convert: Callable[[str], Any] = _text         # command-line and environment text -> value
    kind: Literal["value", "flag", "multiple"] = "value"  # flag: --x/--no-x
    metavar: str | None = None
    uvicorn: bool = True                          # one of uvicorn's (UVICORN_* is read too)
    split: str | None = None                      # multiple from the environment: None = spaces
    env_convert: Callable[[str], Any] | None = None
    default_text: str | None = None               # --help's default where RunConfig's says little

    @property
    def env_suffixes(self) -> tuple[str, ...]:
        """The names after ``CYSERVE_``/``UVICORN_``: the option's, then uvicorn's parameter's
        (click's auto_envvar) when it differs."""
        by_flag = self.flag[2:].upper().replace("-", "_")
        by_field = self.field.upper()
        return (by_flag,) if by_flag == by_field else (by_flag, by_field)

    @property
    def full_help(self) -> str:
        """The help line with its default, taken from RunConfig (every default lives there)."""
        default = self.default_text
        if default is None:
            value = _RUN_DEFAULTS.get(self.field)
            if isinstance(value, bool):
                default = "on" if value else "off"
            elif value not in (None, "", ()):
                default = str(value)
        return f"{self.help} (default: {default})" if default else self.help

    def from_env(self, text: str) -> Any:
        if self.env_convert is not None:
            return self.env_convert(text)
        if self.kind == "flag":
            return _bool(text)
        if self.kind == "multiple":
            parts = text.split(self.split) if self.split else text.split()
            return tuple(self.convert(part) for part in parts if part)
        return self.convert(text)


_RUN_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(RunConfig)}
#: click's names for a value's type, shown in --help where an option names none of its own.
_METAVARS: dict[Callable[[str], Any], str] = {_int: "INTEGER", _non_negative_int: "INTEGER",
                                              _float: "FLOAT"}
_LEVELS_METAVAR = "[" + "|".join(_LOG_LEVELS) + "]"
_UVICORN_ONLY = "accepted for uvicorn's command lines"

# (group title, options): the --help sections, in the order a reader looks for them.  A help
# line names no default: ``full_help`` adds RunConfig's, or ``default_text`` where that says more.
_GROUPS: tuple[tuple[str, tuple[_Option, ...]], ...] = (
    ("what to serve", (
        _Option("--factory", "factory", "call APP (a function taking no argument) to make the app",
                kind="flag"),
        _Option("--app-dir", "app_dir", "look for APP in this directory (put first on sys.path)",
                default_text="the current directory"),
        _Option("--interface", "interface", "auto tells a cyserve App from an ASGI 3 app; asgi3 "
                "serves APP as ASGI 3; asgi2 and wsgi are refused at startup (exit 3)",
                _choice("auto", "cyserve", "asgi3", "asgi2", "wsgi"),
                metavar="[auto|asgi3|asgi2|wsgi]"),
        _Option("--lifespan", "lifespan", "an ASGI app's lifespan: on requires it, auto runs it "
                "when the app supports it, off never calls it",
                _choice("auto", "on", "off"), metavar="[auto|on|off]"),
        _Option("--env-file", "env_file", "load environment variables from this dotenv file "
                "first (needs cyserve[dotenv]); CYSERVE_* variables in it count", metavar="PATH"),
    )),
    ("where to listen", (
        _Option("--host", "host", "bind the socket to this address"),
        _Option("--port", "port", "bind the socket to this port, 0 for any free one", _int),
        _Option("--uds", "uds", "bind to this Unix domain socket instead", metavar="PATH"),
        _Option("--fd", "fd", "serve the listening socket inherited as this file descriptor", _int),
        _Option("--backlog", "backlog", "length of the accept queue", _int),
    )),
    ("processes", (
        _Option("--workers", "workers", "worker processes serving one listening socket", _int,
                default_text="$WEB_CONCURRENCY, else 1"),
        _Option("--reload", "reload", "restart the worker when a watched file changes (needs "
                "cyserve[reload])", kind="flag"),
        _Option("--reload-dir", "reload_dirs", "watch this directory (repeatable)", kind="multiple",
                metavar="PATH", split=os.pathsep, default_text="the current directory"),
        _Option("--reload-include", "reload_includes", "glob of files to watch (repeatable)",
                kind="multiple", metavar="GLOB", default_text="*.py"),
        _Option("--reload-exclude", "reload_excludes", "glob of files not to watch (repeatable)",
                kind="multiple", metavar="GLOB", default_text=".*, .py[cod], .sw.*, ~*"),
        _Option("--reload-delay", "reload_delay", "seconds between two checks for changes", _float),
        _Option("--timeout-worker-healthcheck", "timeout_worker_healthcheck", "replace a worker "
                "that has not answered the supervisor for this many seconds", _float),
        _Option("--limit-max-requests", "limit_max_requests", "recycle a worker (a drain, not a "
                "kill) after this many requests", _int),
        _Option("--limit-max-requests-jitter", "limit_max_requests_jitter", "add up to this many "
                "requests, at random per worker, so workers do not recycle together",
                _non_negative_int),
        _Option("--workers-max-rss", "workers_max_rss", "recycle a worker whose resident memory "
                "passes this many MiB (sampled)", _int, metavar="MIB", uvicorn=False),
        _Option("--workers-lifetime", "workers_lifetime", "recycle a worker after this many "
                "seconds", _float, metavar="SECONDS", uvicorn=False),
        _Option("--gc-freeze", "gc_freeze", "once the app has started, collect garbage and move "
                "every object left to the garbage collector's permanent generation (gc.freeze), "
                "so full collections skip the app's long-lived state", kind="flag", uvicorn=False),
    )),
    ("event loop and protocols", (
        _Option("--loop", "loop", "event loop: auto (uvloop when installed), uvloop, asyncio, "
                "or module:factory naming a loop factory", _loop,
                metavar="[auto|asyncio|uvloop]"),
        _Option("--http", "http", f"{_UVICORN_ONLY}; cyserve has its own HTTP/1.1 core",
                metavar="[auto|h11|httptools]"),
        _Option("--http2", "http2", f"{_UVICORN_ONLY}; cyserve serves HTTP/1.1", kind="flag"),
        _Option("--ws", "ws", f"{_UVICORN_ONLY}; cyserve has its own WebSocket codec",
                metavar="[auto|none|websockets|websockets-sansio|wsproto]"),
        _Option("--ws-max-size", "ws_max_size", "largest WebSocket message in bytes", _int),
        _Option("--ws-max-queue", "ws_max_queue", "received WebSocket messages queued before "
                "reading pauses", _int),
        _Option("--ws-ping-interval", "ws_ping_interval", "seconds between WebSocket pings",
                _float),
        _Option("--ws-ping-timeout", "ws_ping_timeout", "seconds to wait for a pong before "
                "closing", _float),
        _Option("--ws-per-message-deflate", "ws_per_message_deflate", "offer permessage-deflate "
                "(RFC 7692): true or false", _bool, metavar="BOOLEAN", default_text="true"),
        _Option("--h11-max-incomplete-event-size", "h11_max_incomplete_event_size",
                f"{_UVICORN_ONLY}; cyserve bounds a request head by its Limits", _int),
        _Option("--reset-contextvars", "reset_contextvars", f"{_UVICORN_ONLY} (an ASGI option)",
                kind="flag"),
    )),
    ("logs", (
        _Option("--log-config", "log_config", "logging configuration file: .json, .yaml/.yml "
                "(needs cyserve[yaml]) or .ini", metavar="PATH"),
        _Option("--log-level", "log_level", "log level", _choice(*_LOG_LEVELS),
                metavar=_LEVELS_METAVAR, default_text="info"),
        _Option("--log-format", "log_format", "text lines or one JSON object per line",
                _choice("text", "json"), metavar="[text|json]", uvicorn=False),
        _Option("--access-log", "access_log", "log one line per response", kind="flag"),
        _Option("--use-colors", "use_colors", "colour the log lines", kind="flag",
                default_text="when stderr is a terminal"),
    )),
    ("HTTP", (
        _Option("--proxy-headers", "proxy_headers", "take the client address and scheme from "
                "X-Forwarded-* and Forwarded when the peer is trusted", kind="flag"),
        _Option("--forwarded-allow-ips", "forwarded_allow_ips", "peers trusted with proxy headers "
                "and PROXY protocol: IPs, CIDR networks, unix: or *", metavar="LIST",
                default_text="$FORWARDED_ALLOW_IPS, else 127.0.0.1,::1"),
        _Option("--proxy-protocol", "proxy_protocol", "read a PROXY protocol v1/v2 header from "
                "trusted peers before each connection", kind="flag", uvicorn=False),
        _Option("--root-path", "root_path", "the path prefix the app is mounted under behind a "
                "proxy"),
        _Option("--server-header", "server_header", "send the Server header", kind="flag"),
        _Option("--date-header", "date_header", "send the Date header", kind="flag"),
        _Option("--header", "headers", "add this header to every response (repeatable)",
                _header, kind="multiple", metavar="NAME:VALUE"),
        _Option("--timeout-keep-alive", "timeout_keep_alive", "close a kept-alive connection idle "
                "for this many seconds", _float),
        _Option("--timeout-graceful-shutdown", "timeout_graceful_shutdown", "seconds in-flight "
                "requests may still run after a stop signal", _float,
                default_text="the app's Timeouts.shutdown_s"),
        _Option("--timeout-head", "timeout_head", "seconds allowed to receive one request head",
                _float, metavar="SECONDS", uvicorn=False, default_text="the app's Timeouts.head_s"),
        _Option("--max-body-size", "max_body_size", "largest request body in bytes, 413 above it",
                _int, metavar="BYTES", uvicorn=False,
                default_text="the app's Limits.max_body_bytes"),
    )),
    ("operations", (
        _Option("--limit-concurrency", "limit_concurrency", "answer 503 above this many open "
                "connections and requests", _int),
        _Option("--limit-connections-per-ip", "limit_connections_per_ip", "open connections "
                "allowed from one client address", _int, uvicorn=False),
        _Option("--health-path", "health_path", "answer liveness at PATH and readiness at "
                "PATH/ready", _url_path, metavar="PATH", uvicorn=False),
        _Option("--metrics", "metrics", f"serve Prometheus metrics at PATH, {_METRICS_PATH} when "
                "bare (needs cyserve[metrics])", _url_path, metavar="[PATH]", uvicorn=False,
                env_convert=_metrics_from_env),
    )),
    ("TLS", (
        _Option("--ssl-keyfile", "ssl_keyfile", "private key file (PEM)", metavar="PATH"),
        _Option("--ssl-certfile", "ssl_certfile", "certificate chain file (PEM)", metavar="PATH"),
        _Option("--ssl-keyfile-password", "ssl_keyfile_password", "password of the private key"),
        _Option("--ssl-version", "ssl_version", "protocol, as the ssl module numbers it",
                _int, default_text="17, PROTOCOL_TLS_SERVER"),
        _Option("--ssl-cert-reqs", "ssl_cert_reqs", "client certificate: 0 none, 1 optional, "
                "2 required", _int, default_text="0, none"),
        _Option("--ssl-ca-certs", "ssl_ca_certs", "CA certificates to verify clients with",
                metavar="PATH"),
        _Option("--ssl-ciphers", "ssl_ciphers", "OpenSSL cipher string", default_text="OpenSSL's"),
    )),
)

_OPTIONS: tuple[_Option, ...] = tuple(option for _, group in _GROUPS for option in group)

_EPILOG = """\
Each option can also be set in the environment: CYSERVE_<OPTION> (CYSERVE_WORKERS=4, CYSERVE_APP
for APP), or uvicorn's UVICORN_<OPTION>; WEB_CONCURRENCY and FORWARDED_ALLOW_IPS are read as
uvicorn reads them.  The command line wins over the environment.  Exit status: 2 for a usage
error, 3 when the server cannot start.  See docs/cli.md."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing and exiting, so ``parse`` stays a function;
    ``main`` prints the usage and exits 2."""

    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def _parser() -> _Parser:
    parser = _Parser(prog=_PROG, usage="%(prog)s [OPTIONS] APP", add_help=False, allow_abbrev=False,
                     description="Serve a cyserve App: APP is module:attribute, as in main:app.",
                     epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    # Every default is SUPPRESS: an attribute present in the namespace came from the command
    # line, so the environment and then RunConfig's own default fill in the rest.
    parser.add_argument("app", nargs="?", metavar="APP", default=argparse.SUPPRESS,
                        help="the app to serve, module:attribute (or $CYSERVE_APP)")
    parser.add_argument("-h", "--help", action="store_true", help="show this help and exit")
    parser.add_argument("--version", action="store_true", help="show the version and exit")
    for title, options in _GROUPS:
        group = parser.add_argument_group(title)
        for option in options:
            if option.kind == "flag":
                group.add_argument(option.flag, dest=option.field, help=option.full_help,
                                   action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS)
            elif option.kind == "multiple":
                group.add_argument(option.flag, dest=option.field, help=option.full_help,
                                   action="append", type=option.convert, metavar=option.metavar,
                                   default=argparse.SUPPRESS)
            else:
                metavar = option.metavar or _METAVARS.get(option.convert, "TEXT")
                group.add_argument(option.flag, dest=option.field, help=option.full_help,
                                   type=option.convert, metavar=metavar, default=argparse.SUPPRESS)
    return parser


def _with_bare_metrics(argv: Sequence[str]) -> list[str]:
    """``--metrics`` takes an optional PATH; argparse's ``nargs='?'`` would swallow the APP in
    ``--metrics main:app``, so a ``--metrics`` not followed by a path is made explicit here."""
    args = list(argv)
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            return out + args[i:]
        following = args[i + 1] if i + 1 < len(args) else ""
        if arg == "--metrics" and not following.startswith("/"):
            out.append(f"--metrics={_METRICS_PATH}")
        else:
            out.append(arg)
    return out


# ---------------------------------------------------------------------- arguments -> RunConfig
def parse(argv: Sequence[str], environ: Mapping[str, str]) -> RunConfig:
    """The ``RunConfig`` that ``cyserve <argv>`` runs in the environment ``environ``.

    Raises ``ValueError`` with argparse's message (naming the variable for a bad environment
    value) on a usage error.  Reads nothing else and changes nothing: files named by options are
    opened later, at startup."""
    return _settle(_namespace(argv), environ)[0]


def _namespace(argv: Sequence[str]) -> argparse.Namespace:
    return _parser().parse_args(_with_bare_metrics(argv))


def _env(environ: Mapping[str, str], prefix: str, option: _Option) -> tuple[str, str] | None:
    """``(variable, text)`` of the option under one prefix, or None; two spellings of the same
    option set to different texts is a usage error rather than a silent pick."""
    found = [(f"{prefix}{suffix}", environ[f"{prefix}{suffix}"]) for suffix in option.env_suffixes
             if environ.get(f"{prefix}{suffix}")]
    if len(found) == 2 and found[0][1] != found[1][1]:
        raise ValueError(f"{found[0][0]} and {found[1][0]} are both set and differ: set one")
    return found[0] if found else None


def _from_env(name: str, convert: Callable[[str], Any], text: str) -> Any:
    try:
        return convert(text)
    except argparse.ArgumentTypeError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _settle(ns: argparse.Namespace, environ: Mapping[str, str]) -> tuple[RunConfig, list[str]]:
    """The RunConfig and the warning lines for what was asked; each value from the command line,
    else the environment, else RunConfig's default."""
    given = vars(ns)
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}  # field -> the option or variable it came from, for errors
    for option in _OPTIONS:
        if option.field in given:
            value = given[option.field]
            values[option.field] = tuple(value) if option.kind == "multiple" else value
            origin[option.field] = option.flag
            continue
        prefixes = ("CYSERVE_", "UVICORN_") if option.uvicorn else ("CYSERVE_",)
        for prefix in prefixes:
            found = _env(environ, prefix, option)
            if found is not None:
                values[option.field] = _from_env(found[0], option.from_env, found[1])
                origin[option.field] = found[0]
                break
    # uvicorn's Config reads these two when the option is not given at all.
    if "workers" not in values and environ.get("WEB_CONCURRENCY"):
        values["workers"] = _from_env("WEB_CONCURRENCY", _int, environ["WEB_CONCURRENCY"])
        origin["workers"] = "WEB_CONCURRENCY"
    if "forwarded_allow_ips" not in values and environ.get("FORWARDED_ALLOW_IPS"):
        values["forwarded_allow_ips"] = environ["FORWARDED_ALLOW_IPS"]

    app = given.get("app") or environ.get("CYSERVE_APP") or environ.get("UVICORN_APP")
    if not app:
        raise ValueError("missing APP, the app to serve (module:attribute, as in main:app)")
    notes = _warnings(values)
    if values.get("loop") in _FOREIGN_LOOPS:
        values["loop"] = "auto"  # warned: one of uvicorn's loops that cyserve does not run
    try:
        return RunConfig(app=app, **values), notes
    except ValueError as exc:
        # RunConfig's checks open with the field's name ("workers must be at least 1"): say
        # which option or variable set it.
        field = str(exc).split(" ", 1)[0]
        raise ValueError(f"{origin[field]}: {exc}" if field in origin else str(exc)) from None


def _warnings(values: Mapping[str, Any]) -> list[str]:
    """One line per option given that changes nothing in cyserve (or only refuses the app), so
    a uvicorn command line keeps working and says what it lost."""
    notes: list[str] = []
    http = values.get("http", "auto")
    if http != "auto":
        notes.append(f"{_PROG}: --http {http} has no effect: cyserve has its own HTTP/1.1 core")
    if values.get("http2"):
        notes.append(f"{_PROG}: --http2 has no effect: cyserve serves HTTP/1.1")
    ws = values.get("ws", "auto")
    if ws != "auto":
        notes.append(f"{_PROG}: --ws {ws} has no effect: cyserve has its own WebSocket codec")
    loop = values.get("loop", "auto")
    if loop in _FOREIGN_LOOPS:
        notes.append(f"{_PROG}: --loop {loop} has no effect: cyserve runs on uvloop or asyncio "
                     "(auto)")
    if values.get("h11_max_incomplete_event_size") is not None:
        notes.append(f"{_PROG}: --h11-max-incomplete-event-size has no effect: cyserve's parser "
                     "bounds a request head by its Limits")
    if values.get("reset_contextvars"):
        notes.append(f"{_PROG}: --reset-contextvars has no effect: each request already runs in "
                     "its own copy of the context")
    return notes


# ---------------------------------------------------------------------- the process
def version_line() -> str:
    """``cyserve 0.1.0 with CPython 3.11.7 on Linux`` (uvicorn's --version, cyserve's name)."""
    from cyserve import __version__
    return (f"{_PROG} {__version__} with {platform.python_implementation()} "
            f"{platform.python_version()} on {platform.system()}")


def _load_env_file(path: str) -> None:
    """Put the variables of a dotenv file into ``os.environ``; variables already set win, as
    with uvicorn (python-dotenv's ``override=False``)."""
    try:
        import dotenv
    except ImportError:
        raise StartupError(f"--env-file {path} needs python-dotenv: "
                           "pip install 'cyserve[dotenv]'") from None
    if not os.path.isfile(path):
        raise StartupError(f"--env-file {path}: no such file")
    try:
        dotenv.load_dotenv(path, override=False)
    except (OSError, UnicodeDecodeError) as exc:
        raise StartupError(f"--env-file {path}: {exc}") from None


def _usage_error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    parser.print_usage(sys.stderr)
    sys.stderr.write(f"{_PROG}: error: {message}\n")
    sys.exit(2)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """``cyserve [OPTIONS] APP``: parse, load ``--env-file``, warn, and run ``launch``; exits
    with its status."""
    parser = _parser()
    try:
        ns = parser.parse_args(_with_bare_metrics(sys.argv[1:] if argv is None else argv))
    except ValueError as exc:
        _usage_error(parser, str(exc))
    # Eager, as in uvicorn: --help and --version need no APP.
    if ns.help:
        sys.stdout.write(parser.format_help())
        sys.exit(0)
    if ns.version:
        print(version_line())
        sys.exit(0)
    try:
        config, notes = _settle(ns, os.environ)
        if config.env_file is not None:
            _load_env_file(config.env_file)
            # Read again: the file's variables (CYSERVE_*, WEB_CONCURRENCY...) are now set.
            config, notes = _settle(ns, os.environ)
    except ValueError as exc:
        _usage_error(parser, str(exc))
    except StartupError as exc:
        sys.stderr.write(f"{_PROG}: {exc}\n")
        sys.exit(3)
    for line in notes:
        sys.stderr.write(line + "\n")

    try:
        from cyserve.server.workers import launch
        code = launch(config)  # reports its own StartupError: one line, status 3
    except KeyboardInterrupt:  # a Ctrl-C before launch's signal handlers are in place
        code = 130
    sys.exit(code)

