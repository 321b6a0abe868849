"""cyserve/logs.py: logging configured from a RunConfig (levels, trace, dictConfig files, colours,
JSON), and the access log: lines parsed back from records the core reports for real requests on
127.0.0.1, on both loops."""
from __future__ import annotations

import asyncio
import io
import json
import logging
import logging.config
import re
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from cyserve import App, RequestID, Response, StreamResponse
from cyserve._core.http.parser import parse_request_head
from cyserve.config import RunConfig
from cyserve.errors import StartupError
from cyserve.logs import LOG_LEVELS, TRACE, AccessLog, JSONFormatter, TextFormatter, configure, dict_config
from tests.support import RawClient, exchange, fetch, serving

# ``client - "METHOD TARGET HTTP/x.y" status bytes N.NNms`` (or ``"-"`` for no request line).
ACCESS_LINE = re.compile(r'^INFO: +(?P<client>\S+) - "(?:(?P<method>[A-Z]+) (?P<path>\S+) '
                         r'HTTP/(?P<version>1\.[01])|-)" (?P<status>\d{3}) (?P<bytes>\d+) '
                         r'(?P<ms>\d+\.\d\d)ms$')

_LOGGERS = ("", "cyserve", "cyserve.error", "cyserve.access", "cyserve.server", "cyserve.app",
            "tests.logs")


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
