"""Server-side CPU per request without sockets: requests are fed straight into the protocol.

    python bench/micro/protocol_loop.py [plaintext|json|asgi-plaintext|asgi-json] [--profile] [--rounds N]

Measures parse + app + response serialisation through a real server connection (a ``Stream``
driven by a ``ServerRole``) with a
transport that discards writes; the network and the loop's I/O are left out on purpose.
``asgi-plaintext`` and ``asgi-json`` serve bench/e2e/asgi/raw_app.py's raw ASGI app through the
ASGI adapter (``cyserve.asgi.ASGIHost``) instead of a cyserve App.
"""
from __future__ import annotations

import asyncio
import cProfile
import pstats
import sys
import time

sys.path.insert(0, __file__.rsplit("/bench/", 1)[0])

from cyserve import App, Response  # noqa: E402
from cyserve._core.http.server import server_connection  # noqa: E402
from cyserve._core.http.state import ServerState  # noqa: E402


class NullTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = 0

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 1234) if name in ("peername", "sockname") else default

    def set_write_buffer_limits(self, high=None, low=None):
        pass

    def write(self, data):
        self.written += len(data)

    def writelines(self, parts):
        for part in parts:
            self.write(part)

    def is_closing(self):
        return False

    def close(self):
        pass

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass


def make_app() -> App:
    app = App()

    @app.get("/plaintext")
    async def plaintext(request):
        return Response(b"Hello, World!", content_type="text/plain")

    @app.get("/json")
    async def json_(request):
        return {"message": "Hello, World!"}

    return app


REQUEST = (b"GET /%s HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\n"
           b"Accept: */*\r\nConnection: keep-alive\r\n\r\n")


def make_entry(which: str):
    """``(handle, config, path)``: the core's entry for ``which`` and the path it requests."""
    if which.startswith("asgi-"):
        sys.path.insert(0, __file__.rsplit("/bench/", 1)[0] + "/bench/e2e/asgi")
        from raw_app import app as raw_app  # noqa: E402

        from cyserve.asgi import ASGIHost  # noqa: E402

        host = ASGIHost(raw_app, lifespan="off")
        return host.handle, host.config, which[len("asgi-"):]
    app = make_app()
    return app.handle, app.config, which


async def measure(which: str, rounds: int = 200_000, profile: bool = False) -> float:
    handle, config, path = make_entry(which)
    state = ServerState(handle, config, asyncio.get_running_loop())
    proto = server_connection(state)
    transport = NullTransport()
    proto.connection_made(transport)
    request = REQUEST % path.encode()
    n = len(request)

    def feed(count: int) -> None:
        for _ in range(count):
            buf = memoryview(proto.get_buffer(-1))
            buf[:n] = request
            buf.release()
            proto.buffer_updated(n)

    feed(1000)
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    start = time.perf_counter()
    feed(rounds)
    elapsed = time.perf_counter() - start
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    proto.connection_lost(None)
    return elapsed / rounds * 1e6


def main(argv: list[str]) -> None:
    which = argv[0] if argv and not argv[0].startswith("-") else "plaintext"
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else 200_000
    us = asyncio.run(measure(which, rounds, profile="--profile" in argv))
    print(f"{which}: {us:.2f} us per request (server CPU, no sockets)")


if __name__ == "__main__":
    main(sys.argv[1:])
