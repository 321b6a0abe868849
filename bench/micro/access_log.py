"""What the access log costs a request: server CPU per request with the core's observer off, and
with ``cyserve.logs.AccessLog`` behind it in the configurations that matter, in one run.

    python bench/micro/access_log.py [--rounds N] [--repeat R]

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
  ``text`` variant avoids.

Variants are interleaved round by round (the machine's load drifts); the best of the rounds
(``timeit``'s advice: interference only ever adds time) is printed with its ratio to ``off``.
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, __file__.rsplit("/bench/", 1)[0])

from protocol_loop import REQUEST, NullTransport, make_app  # noqa: E402

from cyserve._core.http.server import server_connection  # noqa: E402
from cyserve._core.http.state import ServerState  # noqa: E402
from cyserve.logs import AccessLog, JSONFormatter, TextFormatter  # noqa: E402


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


def variants(devnull: Any) -> dict[str, Any]:
    def stream(formatter: logging.Formatter) -> logging.Handler:
        handler = logging.StreamHandler(devnull)
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
    }


async def measure(observer: Any, rounds: int) -> float:
    """Microseconds of server CPU per request with ``observer`` on the state."""
    app = make_app()
    state = ServerState(app.handle, app.config, asyncio.get_running_loop())
    state.observer = observer
    proto = server_connection(state)
    proto.connection_made(NullTransport())
    request = REQUEST % b"plaintext"
    n = len(request)

    def feed(count: int) -> None:
        for _ in range(count):
            buf = memoryview(proto.get_buffer(-1))
            buf[:n] = request
            buf.release()
            proto.buffer_updated(n)

    feed(1000)
    # CPU time of this process, not wall time: the machine is shared and the loop does no I/O.
    start = time.process_time()
    feed(rounds)
    elapsed = time.process_time() - start
    proto.connection_lost(None)
    return elapsed / rounds * 1e6


def main(argv: list[str]) -> None:
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else 50_000
    repeat = int(argv[argv.index("--repeat") + 1]) if "--repeat" in argv else 5
    with open(os.devnull, "w") as devnull:
        chosen = variants(devnull)
        samples: dict[str, list[float]] = {name: [] for name in chosen}
        run: Callable[[Any], float] = lambda obs: asyncio.run(measure(obs, rounds))
        for _ in range(repeat):
            for name, observer in chosen.items():
                samples[name].append(run(observer))
    base = min(samples["off"])
    print(f"plaintext, {rounds} requests x {repeat} rounds, best server CPU per request "
          f"(no sockets):")
    for name, values in samples.items():
        us = min(values)
        print(f"  {name:<9} {us:6.2f} us  x{us / base:.2f}  (+{us - base:.2f} us)")


if __name__ == "__main__":
    main(sys.argv[1:])
