"""What the access log costs a request: server CPU per request with the core's observer off, and
with ``cyserve.logs.AccessLog`` behind it in the configurations that matter, in one run.

    python bench/micro/access_log.py [--rounds N] [--repeat R] [--per-turn K,...]
                                     [--loop uvloop|asyncio]

Requests go straight into one server connection (``protocol_loop``'s harness: a real
``ServerRole`` on a transport that discards writes, no sockets), so what differs between the
variants is the observer alone:

- ``off``: ``state.observer = None`` (the core's default);
- ``disabled``: ``AccessLog`` on a logger above INFO (``--log-level warning``): one level test;
- ``null``: ``AccessLog`` with a ``NullHandler``: the record is made, never formatted;
- ``text``: ``AccessLog`` with a ``StreamHandler`` to /dev/null and ``TextFormatter``: the line
  as ``cyserve --access-log`` writes it;
- ``json``: the same with ``JSONFormatter`` (``--log-format json``);
- ``naive``: for comparison, the obvious observer (``logger.info(fmt, *args, extra={...})``,
  with the request line built eagerly) to the same /dev/null handler, which is what the
  ``text`` variant avoids;
- ``text-file``: ``text`` to a real file opened for appending (what ``--access-log`` to a
  file costs with ``logging.StreamHandler``: a write and a flush per line);
- ``batched-file``: the same with ``cyserve.logs.BatchedStreamHandler`` (the default access
  handler): one write per loop turn.

The loop runs one turn after every ``--per-turn`` requests (``asyncio.sleep(0)``), which is
when ``batched-file`` writes; one run per value (default ``1,16``: one response per turn, as
on an idle server, and sixteen, as on one serving many connections).  Every variant pays the
same turns, so the columns to compare are the microseconds added to ``off`` in the same group.
The loop is uvloop (the server's default) unless ``--loop asyncio``.

Variants are interleaved round by round (the machine's load drifts); the best of the rounds
(``timeit``'s advice: interference only ever adds time) is printed with its ratio to ``off``.
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
import time
from typing import Any

import uvloop

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, __file__.rsplit("/bench/", 1)[0])

from protocol_loop import REQUEST, NullTransport, make_app  # noqa: E402

from cyserve._core.http.server import server_connection  # noqa: E402
from cyserve._core.http.state import ServerState  # noqa: E402
from cyserve.logs import AccessLog, BatchedStreamHandler, JSONFormatter, TextFormatter  # noqa: E402


class NaiveAccessLog:
    """The straightforward observer: every field built, then ``logger.info`` with ``extra``."""

    __slots__ = ("logger",)

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def response_done(self, conn: Any, head: Any, status: int, sent_bytes: int,
                      duration_s: float) -> None:
        host, port = conn.stream.peername[:2]
        client = f"{host}:{port}"
        version = "1.1" if head.version == 11 else "1.0"
        line = f"{head.method} {head.target} HTTP/{version}"
        ms = duration_s * 1000.0
        self.logger.info('%s - "%s" %d %d %.2fms', client, line, status, sent_bytes, ms,
                         extra={"client_addr": client, "method": head.method, "path": head.target,
                                "http_version": version, "status_code": status,
                                "bytes": sent_bytes, "duration_ms": ms})


def _logger(name: str, handler: logging.Handler | None, level: int = logging.INFO) -> logging.Logger:
    logger = logging.getLogger(f"bench.access.{name}")
    logger.handlers = [handler] if handler is not None else []
    logger.setLevel(level)
    logger.propagate = False
    return logger


def variants(devnull: Any, file: Any) -> dict[str, Any]:
    def stream(formatter: logging.Formatter, to: Any = devnull,
               kind: type[logging.StreamHandler[Any]] = logging.StreamHandler) -> logging.Handler:
        handler = kind(to)
        handler.setFormatter(formatter)
        return handler

    text = TextFormatter("%(levelprefix)s %(message)s", use_colors=False)
    return {
        "off": None,
        "disabled": AccessLog(_logger("disabled", logging.NullHandler(), logging.WARNING)),
        "null": AccessLog(_logger("null", logging.NullHandler())),
        "text": AccessLog(_logger("text", stream(text))),
        "json": AccessLog(_logger("json", stream(JSONFormatter()))),
        "naive": NaiveAccessLog(_logger("naive", stream(text))),
        "text-file": AccessLog(_logger("text-file", stream(text, file))),
        "batched-file": AccessLog(_logger("batched-file",
                                          stream(text, file, BatchedStreamHandler))),
    }


async def measure(observer: Any, rounds: int, per_turn: int) -> float:
    """Microseconds of server CPU per request with ``observer`` on the state, the loop running
    one turn after every ``per_turn`` requests."""
    app = make_app()
    state = ServerState(app.handle, app.config, asyncio.get_running_loop())
    state.observer = observer
    proto = server_connection(state)
    proto.connection_made(NullTransport())
    request = REQUEST % b"plaintext"
    n = len(request)

    async def feed(count: int) -> None:
        for done in range(1, count + 1):
            buf = memoryview(proto.get_buffer(-1))
            buf[:n] = request
            buf.release()
            proto.buffer_updated(n)
            if done % per_turn == 0:
                await asyncio.sleep(0)

    await feed(1000)
    # CPU time of this process, not wall time: the machine is shared.  It counts the system
    # time of the writes to the file.
    start = time.process_time()
    await feed(rounds)
    await asyncio.sleep(0)  # the last turn's lines are written in the next one
    elapsed = time.process_time() - start
    proto.connection_lost(None)
    return elapsed / rounds * 1e6


def main(argv: list[str]) -> None:
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else 50_000
    repeat = int(argv[argv.index("--repeat") + 1]) if "--repeat" in argv else 5
    per_turns = [int(k) for k in (argv[argv.index("--per-turn") + 1] if "--per-turn" in argv
                                  else "1,16").split(",")]
    loop_name = argv[argv.index("--loop") + 1] if "--loop" in argv else "uvloop"
    new_loop = {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}[loop_name]
    with open(os.devnull, "w") as devnull, tempfile.TemporaryDirectory() as tmp, \
            open(os.path.join(tmp, "access.log"), "a") as file:
        chosen = variants(devnull, file)
        samples: dict[tuple[int, str], list[float]] = {
            (k, name): [] for k in per_turns for name in chosen}

        def run(observer: Any, per_turn: int) -> float:
            file.truncate(0)  # the same file size in every run
            with asyncio.Runner(loop_factory=new_loop) as runner:
                return runner.run(measure(observer, rounds, per_turn))

        for _ in range(repeat):
            for k in per_turns:
                for name, observer in chosen.items():
                    samples[k, name].append(run(observer, k))
    print(f"plaintext, {rounds} requests x {repeat} rounds on {loop_name}, best server CPU "
          f"per request (no sockets):")
    for k in per_turns:
        base = min(samples[k, "off"])
        print(f" {k} per loop turn:")
        for name in chosen:
            us = min(samples[k, name])
            print(f"  {name:<12} {us:6.2f} us  x{us / base:.2f}  (+{us - base:.2f} us)")


if __name__ == "__main__":
    main(sys.argv[1:])
