"""A small supervisor for the metrics tests: ``python tests/server/metrics_workers.py LOOP``.

The parent builds the app and its ``Metrics`` (importing prometheus-client) first, records one
observation it never flushes, then calls ``setup_multiprocess()`` and forks three workers that serve that
app with that ``Metrics``, as ``App.run(workers=N)`` would from a user's script.  Each worker serves the app on a listening
socket of its own on 127.0.0.1, so a test knows which worker answers: A and C flush every
0.2 s, B only when it stops (``unbind``).  The parent reports each reaped worker with
``worker_exited`` (a signal death counts as ``died``; a clean exit is no restart), and stops the
workers on SIGTERM.  One JSON object per line on stdout tells the test what happened.  Every
process ends by itself within 60 s.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from typing import Any

from cyserve import App, Response
from cyserve.metrics import Metrics, setup_multiprocess, teardown_multiprocess, worker_exited
from cyserve.server import serve

_BOUND_S = 60


def say(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def make_app(metrics: Metrics) -> App:
    app = App()

    @app.route("/ok", methods=["POST"])
    async def ok(request: Any) -> Response:
        return Response(b"ok")

    @app.get("/fail")
    async def fail(request: Any) -> Response:
        return Response(b"unavailable", 503)

    app.use(metrics)
    app.on_shutdown(metrics.unbind)   # the last figures reach the files once connections are gone
    return app


def worker(name: str, sock: socket.socket, loop_name: str, app: App, metrics: Metrics,
           flush_interval_s: float) -> None:
    metrics.flush_interval_s = flush_interval_s

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        server = await serve(app, sock=sock)
        server.state.observer = metrics
        metrics.bind(server)
        say(worker=name, pid=os.getpid(), port=server.port)
        try:
            await asyncio.wait_for(stop.wait(), _BOUND_S)
        finally:
            await server.shutdown(timeout_s=2.0)

    if loop_name == "uvloop":
        import uvloop
        factory: Any = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())


def main() -> None:
    loop_name = sys.argv[1]
    signal.alarm(_BOUND_S)
    # Built before setup_multiprocess, as in a script calling App.run(workers=N): prometheus-client
    # is imported already and must still give the workers per-pid files.
    metrics = Metrics()
    app = make_app(metrics)
    # Observed in the parent and never flushed: a forked worker must not report it.
    metrics.response_done(None, None, 201, 10, 0.001)
    directory = setup_multiprocess(None)
    say(parent=os.getpid(), directory=directory)
    flush = {"A": 0.2, "B": 3600.0, "C": 0.2}
    children: dict[int, str] = {}
    for name in ("A", "B", "C"):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                worker(name, sock, loop_name, app, metrics, flush[name])
            except BaseException as exc:  # noqa: BLE001 - reported, then the child exits
                say(error=f"{name}: {exc!r}")
                code = 1
            finally:
                os._exit(code)
        sock.close()
        children[pid] = name

    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    while children:
        pid, status = os.waitpid(-1, 0)
        name = children.pop(pid)
        reason = "died" if os.WIFSIGNALED(status) else None
        worker_exited(pid, reason)
        say(exited=name, pid=pid, reason=reason, code=os.waitstatus_to_exitcode(status))
    teardown_multiprocess()
    say(done=True, stopping=stopping)


if __name__ == "__main__":
    main()
