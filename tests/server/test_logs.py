"""cyserve/logs.py: logging configured from a RunConfig (levels, trace, dictConfig files, colours,
JSON), and the access log: lines parsed back from records the core reports for real requests on
127.0.0.1, on both loops."""
from __future__ import annotations

import asyncio
import io
import json
import logging
import logging.config
import os
import re
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from cyserve import App, RequestID, Response, StreamResponse
from cyserve._core.http.parser import parse_request_head
from cyserve.config import RunConfig
from cyserve.errors import StartupError
from cyserve import logs
from cyserve.logs import (LOG_LEVELS, TRACE, AccessLog, BatchedStreamHandler, JSONFormatter,
                          TextFormatter, configure, dict_config)
from tests.support import RawClient, exchange, fetch, serving

# ``client - "METHOD TARGET HTTP/x.y" status bytes N.NNms`` (or ``"-"`` for no request line).
ACCESS_LINE = re.compile(r'^INFO: +(?P<client>\S+) - "(?:(?P<method>[A-Z]+) (?P<path>\S+) '
                         r'HTTP/(?P<version>1\.[01])|-)" (?P<status>\d{3}) (?P<bytes>\d+) '
                         r'(?P<ms>\d+\.\d\d)ms$')

_LOGGERS = ("", "cyserve", "cyserve.error", "cyserve.access", "cyserve.server", "cyserve.app",
            "tests.logs", "tests.logs.batched")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Each test configures logging for the whole process: put every touched logger back."""
    saved = {name: (logging.getLogger(name), list(logging.getLogger(name).handlers),
                    logging.getLogger(name).level, logging.getLogger(name).propagate,
                    logging.getLogger(name).disabled) for name in _LOGGERS}
    yield
    for logger, handlers, level, propagate, disabled in saved.values():
        logger.handlers = handlers
        logger.setLevel(level)
        logger.propagate = propagate
        logger.disabled = disabled


def collect(formatter: logging.Formatter | None = None,
            name: str = "tests.logs.access") -> tuple[logging.Logger, io.StringIO]:
    """A logger writing to a StringIO through ``formatter`` (the default text one)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter or TextFormatter("%(levelprefix)s %(message)s", use_colors=False))
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, out


def lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


# ------------------------------------------------------------------------------ configuration
@pytest.mark.parametrize("name", sorted(LOG_LEVELS))
def test_log_level_sets_server_and_access_loggers(name: str) -> None:
    configure(RunConfig(log_level=name.upper()))
    level = LOG_LEVELS[name]
    for logger in ("cyserve", "cyserve.error", "cyserve.access", "cyserve.server", "cyserve.app"):
        assert logging.getLogger(logger).getEffectiveLevel() == level, logger


def test_default_level_is_info_with_server_messages_on_stderr_and_access_on_stdout(
        capsys: pytest.CaptureFixture[str]) -> None:
    configure(RunConfig(use_colors=False))
    logging.getLogger("cyserve.server").debug("not shown")
    logging.getLogger("cyserve.server").info("listening on %s", "127.0.0.1:8000")
    logging.getLogger("cyserve.error").warning("a worker died")
    logging.getLogger("cyserve.access").info("an access line")
    captured = capsys.readouterr()
    assert captured.err.splitlines() == ["INFO:     listening on 127.0.0.1:8000",
                                         "WARNING:  a worker died"]
    assert captured.out.splitlines() == ["INFO:     an access line"]


def test_trace_level_is_registered_and_shown_at_trace(capsys: pytest.CaptureFixture[str]) -> None:
    configure(RunConfig(log_level="trace", use_colors=False))
    assert logging.getLevelName(TRACE) == "TRACE"
    logging.getLogger("cyserve.server").log(TRACE, "bytes in: %d", 12)
    assert capsys.readouterr().err.splitlines() == ["TRACE:    bytes in: 12"]
    configure(RunConfig(log_level="debug", use_colors=False))
    logging.getLogger("cyserve.server").log(TRACE, "hidden")
    assert capsys.readouterr().err == ""


def test_unknown_log_level_is_a_startup_error() -> None:
    with pytest.raises(StartupError, match="--log-level 'verbose'"):
        configure(RunConfig(log_level="verbose"))


def test_no_access_log_silences_access_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure(RunConfig(access_log=False))
    logging.getLogger("cyserve.access").info("an access line")
    logging.getLogger("cyserve.error").info("still here")
    captured = capsys.readouterr()
    assert captured.out == "" and "still here" in captured.err


def test_colours_follow_use_colors(capsys: pytest.CaptureFixture[str]) -> None:
    configure(RunConfig(use_colors=True))
    logging.getLogger("cyserve.error").error("red")
    assert capsys.readouterr().err == "\x1b[31mERROR\x1b[0m:    red\n"
    configure(RunConfig(use_colors=None))  # pytest's captured streams are not terminals
    logging.getLogger("cyserve.error").error("plain")
    assert capsys.readouterr().err == "ERROR:    plain\n"


def test_json_format_writes_one_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure(RunConfig(log_format="json"))
    logging.getLogger("cyserve.server").info("line one\nline two")
    logging.getLogger("cyserve.access").info("access")
    captured = capsys.readouterr()
    [err] = captured.err.splitlines()
    record = json.loads(err)
    assert record["level"] == "INFO" and record["logger"] == "cyserve.server"
    assert record["message"] == "line one\nline two"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", record["time"])
    assert json.loads(captured.out)["logger"] == "cyserve.access"


def test_dict_config_rejects_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="log_format"):
        dict_config("xml")


# ------------------------------------------------------------------------- --log-config files
JSON_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(name)s|%(levelname)s|%(message)s"}},
    "handlers": {"file": {"class": "logging.FileHandler", "formatter": "plain", "filename": "LOG"}},
    "loggers": {"cyserve": {"handlers": ["file"], "level": "DEBUG", "propagate": False}},
}

YAML_CONFIG = """\
version: 1
disable_existing_loggers: false
formatters:
  plain: {format: "%(name)s|%(levelname)s|%(message)s"}
handlers:
  file: {class: logging.FileHandler, formatter: plain, filename: LOG}
loggers:
  cyserve: {handlers: [file], level: TRACE, propagate: false}
"""

INI_CONFIG = """\
[loggers]
keys=root,cyserve

[handlers]
keys=file

[formatters]
keys=plain

[logger_root]
level=WARNING
handlers=

[logger_cyserve]
level=DEBUG
handlers=file
propagate=0
qualname=cyserve

[handler_file]
class=FileHandler
formatter=plain
args=('LOG',)

[formatter_plain]
format=%(name)s|%(levelname)s|%(message)s
"""


def write_config(tmp_path: Path, suffix: str) -> tuple[Path, Path]:
    log = tmp_path / "server.log"
    path = tmp_path / f"logging{suffix}"
    if suffix == ".json":
        text = json.dumps(JSON_CONFIG).replace('"LOG"', json.dumps(str(log)))
    elif suffix in (".yaml", ".yml"):
        text = YAML_CONFIG.replace("filename: LOG", f"filename: {json.dumps(str(log))}")
    else:
        text = INI_CONFIG.replace("('LOG',)", repr((str(log),)))
    path.write_text(text)
    return path, log


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml", ".ini"])
def test_log_config_file_is_applied(tmp_path: Path, suffix: str) -> None:
    path, log = write_config(tmp_path, suffix)
    configure(RunConfig(log_config=str(path)))
    logging.getLogger("cyserve.server").debug("from %s", suffix)
    logging.getLogger("cyserve.error").info("error logger too")
    for handler in logging.getLogger("cyserve").handlers:
        handler.close()
    assert log.read_text().splitlines() == [f"cyserve.server|DEBUG|from {suffix}",
                                            "cyserve.error|INFO|error logger too"]


def test_log_level_overrides_the_files_levels(tmp_path: Path) -> None:
    path, _log = write_config(tmp_path, ".json")
    configure(RunConfig(log_config=str(path), log_level="error"))
    assert logging.getLogger("cyserve.server").getEffectiveLevel() == logging.ERROR
    for handler in logging.getLogger("cyserve").handlers:
        handler.close()


@pytest.mark.parametrize("suffix, text, reason", [
    (".json", '{"version": 1,', "JSONDecodeError"),
    (".json", '["not", "a", "mapping"]', "expected a mapping at the top, got list"),
    (".json", '{"version": 1, "handlers": {"h": {"class": "no.such.Handler"}}}', "ValueError"),
    (".json", '{"handlers": {}}', "ValueError"),
    (".yaml", "version: 1\n  bad: [indent\n", "Error"),
    (".yml", "- just\n- a list\n", "expected a mapping at the top, got list"),
    (".ini", "[loggers]\nkeys=root\n", "KeyError"),
    (".ini", "not an ini file at all\n", "no section headers"),
    (".ini", "", "empty"),
    (".conf", "[loggers]\nkeys=root\n[handlers]\nkeys=\n[formatters]\nkeys=\n", "logger_root"),
], ids=["json-syntax", "json-list", "json-bad-handler-class", "json-no-version", "yaml-syntax",
        "yaml-list", "ini-missing-sections", "ini-garbage", "ini-empty", "other-suffix-is-ini"])
def test_bad_log_config_file_is_a_startup_error_naming_it(tmp_path: Path, suffix: str, text: str,
                                                          reason: str) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_text(text)
    with pytest.raises(StartupError) as info:
        configure(RunConfig(log_config=str(path)))
    message = str(info.value)
    assert message.startswith(f"--log-config {path}: ") and reason in message
    assert "\n" not in message


def test_missing_log_config_file_is_a_startup_error(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="no such file"):
        configure(RunConfig(log_config=str(tmp_path / "absent.ini")))


def test_yaml_config_without_pyyaml_names_the_extra(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path, _log = write_config(tmp_path, ".yaml")
    monkeypatch.setitem(sys.modules, "yaml", None)  # what an environment without PyYAML imports
    with pytest.raises(StartupError, match=r"pip install 'cyserve\[yaml\]'"):
        configure(RunConfig(log_config=str(path)))


# -------------------------------------------------------------------------------- formatters
def test_json_formatter_writes_exc_info_and_extras() -> None:
    logger, out = collect(JSONFormatter(), "tests.logs.errors")
    try:
        raise ValueError("bad value")
    except ValueError:
        logger.error("handler failed for %s", "/x", exc_info=True,
                     extra={"route": "/x", "opaque": object()})
    [line] = lines(out)
    record = json.loads(line)
    assert record["level"] == "ERROR" and record["logger"] == "tests.logs.errors"
    assert record["message"] == "handler failed for /x" and record["route"] == "/x"
    assert record["opaque"].startswith("<object object")
    assert record["exc_info"].startswith("Traceback (most recent call last):")
    assert record["exc_info"].rstrip().endswith("ValueError: bad value")
    assert "request_id" not in record


def test_json_formatter_from_a_users_dict_config(tmp_path: Path) -> None:
    log = tmp_path / "json.log"
    logging.config.dictConfig({
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"json": {"()": "cyserve.logs.JSONFormatter", "datefmt": "%Y"}},
        "handlers": {"file": {"class": "logging.FileHandler", "formatter": "json",
                              "filename": str(log)}},
        "loggers": {"tests.logs": {"handlers": ["file"], "level": "INFO", "propagate": False}},
    })
    logging.getLogger("tests.logs").warning("careful", stack_info=True)
    logging.getLogger("tests.logs").handlers[0].close()
    record = json.loads(log.read_text())
    assert re.fullmatch(r"\d{4}", record["time"]) and record["level"] == "WARNING"
    assert record["stack_info"].startswith("Stack (most recent call last):")


def test_text_formatter_with_a_traceback_and_with_a_format_of_ones_own() -> None:
    logger, out = collect(name="tests.logs.text")
    try:
        raise KeyError("gone")
    except KeyError:
        logger.exception("lookup failed")
    text = out.getvalue()
    assert text.startswith("ERROR:    lookup failed\nTraceback (most recent call last):\n")
    assert text.rstrip().endswith("KeyError: 'gone'")
    own, own_out = collect(TextFormatter("[%(name)s] %(levelprefix)s|%(message)s", use_colors=True),
                           "tests.logs.own")
    own.warning("%d left", 3)
    assert lines(own_out) == ["[tests.logs.own] \x1b[33mWARNING\x1b[0m: |3 left"]


# ----------------------------------------------------------------- the access log, unit level
class _Stream:
    def __init__(self, peername: Any) -> None:
        self.peername = peername


class _Conn:
    """What the observer reads from the core's ServerRole: ``stream.peername``, ``forwarded``."""

    def __init__(self, peername: Any, forwarded: Any = None) -> None:
        self.stream = _Stream(peername)
        self.forwarded = forwarded


GET = parse_request_head(b"GET /items?page=2 HTTP/1.1\r\nHost: example.com\r\n\r\n")
GET10 = parse_request_head(b"HEAD / HTTP/1.0\r\n\r\n")


@pytest.mark.parametrize("peer, forwarded, client", [
    (("127.0.0.1", 54321), None, "127.0.0.1:54321"),
    (("::1", 8080, 0, 0), None, "[::1]:8080"),
    ("", None, "-"),                                           # a Unix-socket peer
    (("10.0.0.2", 40000), (("203.0.113.9", 0), "https", "example.com"), "203.0.113.9"),
    (("10.0.0.2", 40000), (("2001:db8::5", 4711), None, None), "[2001:db8::5]:4711"),
    (("10.0.0.2", 40000), (None, "https", None), "10.0.0.2:40000"),
], ids=["ipv4", "ipv6", "unix", "forwarded-no-port", "forwarded-v6", "forwarded-scheme-only"])
def test_access_line_names_the_client(peer: Any, forwarded: Any, client: str) -> None:
    logger, out = collect()
    AccessLog(logger).response_done(_Conn(peer, forwarded), GET, 200, 13, 0.00042)
    assert lines(out) == [f'INFO:     {client} - "GET /items?page=2 HTTP/1.1" 200 13 0.42ms']


def test_access_record_carries_the_fields() -> None:
    records: list[logging.LogRecord] = []
    logger, _out = collect()
    logger.addHandler(_ListHandler(records))
    AccessLog(logger).response_done(_Conn(("127.0.0.1", 1)), GET10, 204, 0, 0.0125)
    AccessLog(logger).response_done(_Conn(("127.0.0.1", 1)), None, 431, 97, 0.000001)
    first, second = records
    assert (first.client_addr, first.method, first.path, first.http_version, first.status_code,
            first.bytes, first.duration_ms, first.request_id) == (  # type: ignore[attr-defined]
        "127.0.0.1:1", "HEAD", "/", "1.0", 204, 0, 12.5, None)
    assert first.getMessage() == '127.0.0.1:1 - "HEAD / HTTP/1.0" 204 0 12.50ms'
    assert (second.method, second.path, second.http_version,  # type: ignore[attr-defined]
            second.status_code) == (None, None, None, 431)  # type: ignore[attr-defined]
    assert second.getMessage() == '127.0.0.1:1 - "-" 431 97 0.00ms'
    assert first.name == "tests.logs.access" and first.levelno == logging.INFO


class _ListHandler(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__()
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_access_fields_serve_a_format_of_ones_own() -> None:
    logger, out = collect(logging.Formatter(
        "%(client_addr)s %(method)s %(path)s %(status_code)d %(bytes)d %(duration_ms).1f"))
    AccessLog(logger).response_done(_Conn(("127.0.0.1", 9)), GET, 201, 7, 0.25)
    assert lines(out) == ["127.0.0.1:9 GET /items?page=2 201 7 250.0"]


def test_access_log_makes_no_record_when_its_logger_is_off() -> None:
    made: list[str] = []
    factory = logging.getLogRecordFactory()

    def counting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        made.append(record.name)
        return record

    logger, out = collect()
    logger.setLevel(logging.WARNING)
    logging.setLogRecordFactory(counting)
    try:
        AccessLog(logger).response_done(_Conn(("127.0.0.1", 1)), GET, 200, 1, 0.001)
        assert made == [] and out.getvalue() == ""
        logger.setLevel(logging.INFO)
        AccessLog(logger).response_done(_Conn(("127.0.0.1", 1)), GET, 200, 1, 0.001)
        assert made == ["tests.logs.access"] and len(lines(out)) == 1
    finally:
        logging.setLogRecordFactory(factory)


def test_access_log_defaults_to_the_cyserve_access_logger() -> None:
    assert AccessLog().logger is logging.getLogger("cyserve.access")


def _access_and_logging_records(logger: logging.Logger) -> tuple[dict[str, Any], dict[str, Any]]:
    """The attributes of AccessLog's record, and of the one ``logger.makeRecord`` makes from
    the same message, location and level."""
    records: list[logging.LogRecord] = []
    logger.handlers = [_ListHandler(records)]
    AccessLog(logger).response_done(_Conn(("127.0.0.1", 1)), GET, 200, 13, 0.001)
    [record] = records
    assert isinstance(record.args, tuple)
    made = logger.makeRecord(logger.name, logging.INFO, logs.__file__, 0, record.msg,
                             record.args, None)
    return vars(record), vars(made)


def _assert_same_record(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    # Every attribute LogRecord sets, in its order, then the access fields.
    assert list(ours)[:len(theirs)] == list(theirs)
    assert list(ours)[len(theirs):] == ["client_addr", "method", "path", "http_version",
                                        "status_code", "bytes", "duration_ms", "request_id"]
    for key, value in theirs.items():
        if key in ("created", "msecs", "relativeCreated"):
            continue
        assert ours[key] == value, key
    created = ours["created"]
    assert 0.0 <= theirs["created"] - created < 1.0
    assert ours["msecs"] == int((created - int(created)) * 1000) and type(ours["msecs"]) is float
    moved_ms = (theirs["created"] - created) * 1000
    assert abs(theirs["relativeCreated"] - ours["relativeCreated"] - moved_ms) < 0.001


def test_access_record_is_the_record_logging_would_make() -> None:
    logger, _out = collect()
    ours, theirs = _access_and_logging_records(logger)
    _assert_same_record(ours, theirs)
    assert ours["thread"] == threading.get_ident() and ours["process"] == os.getpid()
    assert ours["msg"] == '%s - "%s %s HTTP/%s" %d %d %.2fms'
    assert (ours["pathname"], ours["lineno"], ours["funcName"]) == (logs.__file__, 0, None)


def test_access_record_follows_loggings_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing  # LogRecord asks it for the process name once it is imported

    logger, _out = collect()
    for switch in ("logThreads", "logProcesses", "logMultiprocessing"):
        monkeypatch.setattr(logging, switch, False)
    ours, theirs = _access_and_logging_records(logger)
    _assert_same_record(ours, theirs)
    assert ours["thread"] is ours["threadName"] is ours["process"] is ours["processName"] is None
    monkeypatch.undo()
    ours, theirs = _access_and_logging_records(logger)
    _assert_same_record(ours, theirs)
    assert ours["processName"] == multiprocessing.current_process().name == "MainProcess"


class _OwnRecords(logging.Logger):
    def makeRecord(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = super().makeRecord(*args, **kwargs)
        record.own = True
        return record


def test_access_log_leaves_records_to_a_logger_class_that_makes_its_own() -> None:
    records: list[logging.LogRecord] = []
    logger = _OwnRecords("tests.logs.own-records")
    logger.addHandler(_ListHandler(records))
    AccessLog(logger).response_done(_Conn(("127.0.0.1", 1)), GET, 200, 13, 0.001)
    [record] = records
    assert record.own is True and record.status_code == 200  # type: ignore[attr-defined]


# ------------------------------------------------------------- the access log, end to end
def served_app() -> App:
    app = App()

    @app.get("/")
    async def index(request: Any) -> Response:
        return Response(b"hello", content_type="text/plain")

    @app.get("/stream")
    async def stream(request: Any) -> StreamResponse:
        async def parts() -> Any:
            for part in (b"ab", b"cde", b"f" * 1000):
                await asyncio.sleep(0)
                yield part
        return StreamResponse(parts(), content_type="text/plain")

    @app.get("/slow")
    async def slow(request: Any) -> str:
        await asyncio.sleep(0.05)
        return "late"

    @app.get("/logged")
    async def logged(request: Any) -> str:
        logging.getLogger("tests.logs.app").info("inside the handler")
        return "ok"

    return app


def parsed(out: io.StringIO) -> list[dict[str, str]]:
    found = []
    for line in lines(out):
        match = ACCESS_LINE.match(line)
        assert match is not None, line
        found.append(match.groupdict())
    return found


def test_access_lines_for_served_requests(run: Callable[..., Any]) -> None:
    logger, out = collect()

    async def main() -> tuple[list[int], list[int], list[int]]:
        async with serving(served_app()) as server:
            server.state.observer = AccessLog(logger)
            client = await RawClient.open(server.port)
            local_port = client.writer.get_extra_info("sockname")[1]
            replies = [await client.request("GET", "/?q=1"),
                       await client.request("GET", "/missing"),
                       await client.request("GET", "/stream"),
                       await client.request("HEAD", "/"),
                       await client.request("GET", "/slow", version="1.0")]
            await client.close()
            # A head the parser refuses: the core answers 400 before any head exists.
            raw = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n")
        return [local_port], [r.status for r in replies] + [int(raw.split()[1])], \
            [len(r.body) for r in replies]

    [local_port], statuses, sizes = run(main)
    found = parsed(out)
    assert [(f["method"], f["path"], f["version"], int(f["status"])) for f in found] == [
        ("GET", "/?q=1", "1.1", 200), ("GET", "/missing", "1.1", 404),
        ("GET", "/stream", "1.1", 200), ("HEAD", "/", "1.1", 200), ("GET", "/slow", "1.0", 200),
        (None, None, None, 400)]
    assert [int(f["status"]) for f in found] == statuses
    # Content bytes as the client received them (the streamed one counted across its chunks;
    # HEAD sends none); the 400's own detail is counted too.
    assert [int(f["bytes"]) for f in found[:5]] == sizes
    assert (sizes[0], sizes[2], sizes[3], sizes[4]) == (5, 1005, 0, 4)
    assert int(found[5]["bytes"]) > 0
    assert {f["client"] for f in found[:5]} == {f"127.0.0.1:{local_port}"}
    assert found[5]["client"].startswith("127.0.0.1:")
    assert float(found[4]["ms"]) >= 45.0  # the handler slept 50 ms (loop.time() resolution)
    assert all(0.0 <= float(f["ms"]) < 5000.0 for f in found)


def test_json_access_lines_carry_the_request_id(run: Callable[..., Any]) -> None:
    logger, out = collect(JSONFormatter())
    _app_logger, app_out = collect(JSONFormatter(), "tests.logs.app")

    async def main() -> list[str]:
        app = served_app()
        app.use(RequestID())
        async with serving(app) as server:
            server.state.observer = AccessLog(logger)
            client = await RawClient.open(server.port)
            ids = [(await client.request("GET", "/", [("X-Request-ID", "edge-42")])).headers["x-request-id"],
                   (await client.request("GET", "/logged")).headers["x-request-id"]]
            # Two pipelined requests in one write: each line has its own request's id.
            await client.send(b"GET / HTTP/1.1\r\nHost: a\r\nX-Request-ID: first\r\n\r\n"
                              b"GET /missing HTTP/1.1\r\nHost: a\r\nX-Request-ID: second\r\n\r\n")
            ids += [(await client.response()).headers["x-request-id"],
                    (await client.response()).headers["x-request-id"]]
            await client.close()
        return ids

    ids = run(main)
    assert ids[0] == "edge-42" and re.fullmatch(r"[0-9a-f]{32}", ids[1]) and ids[2:] == ["first", "second"]
    records = [json.loads(line) for line in lines(out)]
    assert [r["request_id"] for r in records] == ids
    assert [(r["method"], r["path"], r["status_code"], r["bytes"]) for r in records] == [
        ("GET", "/", 200, 5), ("GET", "/logged", 200, 2), ("GET", "/", 200, 5),
        ("GET", "/missing", 404, records[3]["bytes"])]
    assert records[0]["logger"] == "tests.logs.access" and records[0]["http_version"] == "1.1"
    shown = re.fullmatch(r'127\.0\.0\.1:\d+ - "GET / HTTP/1\.1" 200 5 (\d+\.\d\d)ms', records[0]["message"])
    assert shown is not None and abs(float(shown[1]) - records[0]["duration_ms"]) <= 0.006
    # A record the handler logged carries the id of the request it was logged for.
    [inside] = [json.loads(line) for line in lines(app_out)]
    assert inside["message"] == "inside the handler" and inside["request_id"] == ids[1]


def test_access_line_names_the_client_a_trusted_proxy_reported(run: Callable[..., Any]) -> None:
    from cyserve.proxy import ProxyHeaders

    logger, out = collect()

    async def main() -> None:
        app = served_app()
        app.use(ProxyHeaders(trusted="127.0.0.1"))
        async with serving(app) as server:
            server.state.observer = AccessLog(logger)
            client = await RawClient.open(server.port)
            await client.request("GET", "/", [("X-Forwarded-For", "198.51.100.7, 127.0.0.1")])
            await client.request("GET", "/", [("Forwarded", 'for="[2001:db8::1]:4711"')])
            await client.request("GET", "/")  # the next request on the connection: not forwarded
            await client.close()

    run(main)
    local = [f["client"] for f in parsed(out)]
    assert local[:2] == ["198.51.100.7", "[2001:db8::1]:4711"]
    assert local[2].startswith("127.0.0.1:")


def test_configured_access_log_writes_lines_to_stdout(run: Callable[..., Any],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    configure(RunConfig(use_colors=False, log_level="info"))

    async def main() -> None:
        async with serving(served_app()) as server:
            server.state.observer = AccessLog()
            assert (await fetch(server.port, "GET", "/missing")).status == 404

    run(main)
    captured = capsys.readouterr()
    [line] = captured.out.splitlines()
    match = ACCESS_LINE.match(line)
    assert match is not None and match["path"] == "/missing" and match["status"] == "404", line
    assert "/missing" not in captured.err


# ------------------------------------------------------------- the batched access handler
class _CountingStream(io.StringIO):
    """A StringIO that counts its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


class _SlowStream(_CountingStream):
    """Writes each text in two halves with a thread switch between: two threads writing
    without the handler's lock would interleave them."""

    def write(self, text: str) -> int:
        half = len(text) // 2
        super().write(text[:half])
        time.sleep(0)
        io.StringIO.write(self, text[half:])
        return len(text)


def batched(stream: io.StringIO | Any, max_buffer_chars: int = 64 * 1024) -> logging.Logger:
    handler = BatchedStreamHandler(stream, max_buffer_chars)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("tests.logs.batched")
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def test_batched_lines_of_one_turn_are_written_once_in_order_after_it(
        run: Callable[..., Any]) -> None:
    stream = _CountingStream()
    logger = batched(stream)

    async def main() -> None:
        for turn in range(3):
            for i in range(100):
                logger.info("turn %d line %d", turn, i)
            assert stream.writes == turn  # nothing yet in the turn that logged
            await asyncio.sleep(0)
            assert stream.writes == turn + 1  # one write, before anything else of the next turn
            assert lines(stream)[-100:] == [f"turn {turn} line {i}" for i in range(100)]

    run(main)
    assert len(lines(stream)) == 300


def test_batched_line_without_a_running_loop_is_written_at_once() -> None:
    stream = _CountingStream()
    logger = batched(stream)
    logger.info("first")
    assert (stream.getvalue(), stream.writes) == ("first\n", 1)
    logger.info("second")
    assert (stream.getvalue(), stream.writes) == ("first\nsecond\n", 2)


def test_batched_buffer_past_its_limit_is_written_in_the_turn(run: Callable[..., Any]) -> None:
    stream = _CountingStream()
    logger = batched(stream, max_buffer_chars=100)

    async def main() -> None:
        for i in range(9):
            logger.info("line %d %s", i, "x" * 22)  # 30 characters with the newline
        # 4 lines passed 100 characters, then 4 more: written as they did, the last one waits.
        assert stream.writes == 2 and len(lines(stream)) == 8
        await asyncio.sleep(0)
        assert stream.writes == 3
        assert lines(stream) == [f"line {i} {'x' * 22}" for i in range(9)]

    run(main)


@pytest.mark.parametrize("how", ["flush", "close", "shutdown", "set-stream"])
def test_batched_lines_are_written_by_flush_close_and_shutdown(run: Callable[..., Any],
                                                              how: str) -> None:
    stream = _CountingStream()
    logger = batched(stream)
    [handler] = logger.handlers

    async def main() -> None:
        logger.info("one")
        logger.info("two")
        assert stream.getvalue() == ""
        if how == "flush":
            handler.flush()
        elif how == "close":
            handler.close()
        elif how == "shutdown":  # what logging runs at exit, and dictConfig on old handlers
            logging.shutdown([weakref.ref(handler)])
        else:
            assert isinstance(handler, BatchedStreamHandler)
            handler.setStream(io.StringIO())
        assert (stream.getvalue(), stream.writes) == ("one\ntwo\n", 1)
        await asyncio.sleep(0)  # the turn's flush finds nothing left
        assert stream.writes == 1

    run(main)


def test_batched_lines_left_by_a_stopped_loop_go_out_with_the_next_write(
        run: Callable[..., Any]) -> None:
    stream = _CountingStream()
    logger = batched(stream)
    stopped = asyncio.new_event_loop()

    def last_callback() -> None:
        logger.info("from the stopped loop")
        stopped.stop()  # its flush is queued for a turn that never comes

    stopped.call_soon(last_callback)
    stopped.run_forever()
    stopped.close()
    assert stream.getvalue() == ""

    async def main() -> None:
        logger.info("from the next loop")
        logger.info("in the same turn")
        assert stream.writes == 0  # this loop took the flush over: its turn's lines wait
        await asyncio.sleep(0)
        assert stream.writes == 1

    run(main)
    assert lines(stream) == ["from the stopped loop", "from the next loop", "in the same turn"]


def test_batched_handler_loses_no_line_to_threads_logging_at_once(
        run: Callable[..., Any]) -> None:
    stream = _SlowStream()
    logger = batched(stream)
    count = 300

    def plain_thread() -> None:           # no loop: every line written at once
        for i in range(count):
            logger.info("plain %d", i)

    def loop_thread() -> None:            # a loop of its own, batching its turns
        async def turns() -> None:
            for i in range(count):
                logger.info("other-loop %d", i)
                if i % 7 == 0:
                    await asyncio.sleep(0)
        asyncio.run(turns())

    async def main() -> None:
        threads = [threading.Thread(target=plain_thread), threading.Thread(target=loop_thread)]
        for thread in threads:
            thread.start()
        i = 0
        while i < count or any(thread.is_alive() for thread in threads):
            for _ in range(5):
                logger.info("loop %d", i)
                i += 1
            await asyncio.sleep(0)
        for thread in threads:
            thread.join()
        await asyncio.sleep(0)

    run(main)
    found = lines(stream)
    by_source: dict[str, list[int]] = {}
    for line in found:
        match = re.fullmatch(r"(plain|other-loop|loop) (\d+)", line)
        assert match is not None, line  # no line cut or mixed with another
        by_source.setdefault(match[1], []).append(int(match[2]))
    loop_count = len(by_source["loop"])
    assert loop_count >= count
    assert by_source == {"plain": list(range(count)), "other-loop": list(range(count)),
                         "loop": list(range(loop_count))}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_batched_lines_of_the_parent_are_not_written_by_a_forked_child(tmp_path: Path) -> None:
    path = tmp_path / "forked.log"
    with open(path, "a", encoding="utf-8") as file:
        logger = batched(file)
        [handler] = logger.handlers

        async def main() -> None:
            logger.info("parent, before the fork")
            pid = os.fork()
            if pid == 0:
                try:
                    logger.info("child")
                    handler.flush()
                finally:
                    os._exit(0)
            assert os.waitpid(pid, 0)[1] == 0
            await asyncio.sleep(0)

        asyncio.run(main())
        handler.close()
    assert sorted(path.read_text().splitlines()) == ["child", "parent, before the fork"]


def test_default_access_handler_is_the_batched_one() -> None:
    configure(RunConfig(use_colors=False))
    [access] = logging.getLogger("cyserve.access").handlers
    [default] = logging.getLogger("cyserve").handlers
    assert type(access) is BatchedStreamHandler and access.stream is sys.stdout
    assert type(default) is logging.StreamHandler


async def _file_lines(path: Path, count: int, timeout_s: float = 2.0) -> list[str]:
    """The lines of ``path`` once it has ``count`` of them (or as it is after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = path.read_text(encoding="utf-8").splitlines()
        if len(found) >= count or time.monotonic() >= deadline:
            return found
        await asyncio.sleep(0.001)


def test_access_file_holds_every_line_once_the_responses_are_received(
        run: Callable[..., Any], tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    config = dict_config("text", use_colors=False)
    with open(path, "a", encoding="utf-8") as file:
        config["handlers"]["access"]["stream"] = file
        logging.config.dictConfig(config)
        [handler] = logging.getLogger("cyserve.access").handlers
        assert type(handler) is BatchedStreamHandler

        async def main() -> list[str]:
            async with serving(served_app()) as server:
                server.state.observer = AccessLog()
                client = await RawClient.open(server.port)
                for i in range(10):
                    await client.request("GET", f"/?one={i}")
                    assert len(await _file_lines(path, i + 1)) == i + 1
                # Pipelined: many responses, and their lines, in few turns.
                await client.send(b"".join(b"GET /?burst=%d HTTP/1.1\r\nHost: a\r\n\r\n" % i
                                           for i in range(50)))
                for _ in range(50):
                    await client.response()
                assert len(await _file_lines(path, 60)) == 60
                # Connections at once.
                await asyncio.gather(*(fetch(server.port, "GET", f"/?conn={i}") for i in range(10)))
                found = await _file_lines(path, 70)
                await client.close()
            return found

        found = run(main)
        handler.close()
    paths = [match["path"] for match in map(ACCESS_LINE.match, found) if match is not None]
    assert len(paths) == len(found) == 70
    assert paths[:60] == [f"/?one={i}" for i in range(10)] + [f"/?burst={i}" for i in range(50)]
    assert sorted(paths[60:]) == sorted(f"/?conn={i}" for i in range(10))
