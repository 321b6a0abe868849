"""What parameter binding costs per request, through a real server connection with no sockets
(``protocol_loop``'s NullTransport: parse + app + response).

    python -m pytest bench/micro/test_binding_bench.py --benchmark-only     # group "binding"
    python bench/micro/test_binding_bench.py [SCENARIO ...] [--rounds N]    # us per request
    python bench/micro/test_binding_bench.py --callgrind [SCENARIO ...]     # instructions per request

Scenarios, each answering ``{"page": 3, "q": "x"}`` (the body routes echo the item):

- ``nothing``: a handler that declares nothing (``(request)``) reading no parameter: the floor;
- ``by-hand``: the same values read by hand, ``int(request.query.get("page", 1))``, as before
  binding existed;
- ``typed``: ``(request, page: int = 1, q: str = "")``, bound by ``cyserve.binding``;
- ``typed-no-request``: the FastAPI shape, ``(page: int = 1, q: str = "")``;
- ``model`` / ``json-by-hand``: a POST of ``{"name": "a", "price": 1.5}`` read into a pydantic model
  (and the model returned) against ``await request.json()`` returned as is.

``--callgrind`` counts instructions as ``callgrind_per_request.py`` does (two request counts,
the difference divided by the difference: start-up cancels out).
"""
from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, __file__.rsplit("/bench/", 1)[0])
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from protocol_loop import NullTransport  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from cyserve import App, Request  # noqa: E402
from cyserve._core.http.server import server_connection  # noqa: E402
from cyserve._core.http.state import ServerState  # noqa: E402

GET = (b"GET %s?page=3&q=x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\n"
       b"Accept: */*\r\nConnection: keep-alive\r\n\r\n")
BODY = b'{"name":"a","price":1.5}'
POST = (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
SCENARIOS = {"nothing": GET % b"/nothing", "by-hand": GET % b"/by-hand", "typed": GET % b"/typed",
             "typed-no-request": GET % b"/typed-no-request", "model": POST % b"/model",
             "json-by-hand": POST % b"/json-by-hand"}


class Item(BaseModel):
    name: str
    price: float


def make_app() -> App:
    app = App()

    @app.get("/nothing")
    async def nothing(request):
        return {"page": 3, "q": "x"}

    @app.get("/by-hand")
    async def by_hand(request):
        query = request.query
        return {"page": int(query.get("page", 1)), "q": query.get("q", "")}

    @app.get("/typed")
    async def typed(request, page: int = 1, q: str = ""):
        return {"page": page, "q": q}

    @app.get("/typed-no-request")
    async def typed_no_request(page: int = 1, q: str = ""):
        return {"page": page, "q": q}

    @app.post("/model")
    async def model(item: Item) -> Item:
        return item

    @app.post("/json-by-hand")
    async def json_by_hand(request: Request):
        return await request.json()

    return app


class Loop:
    """One server connection fed whole requests; every request is answered before the next."""

    def __init__(self, request: bytes) -> None:
        self.loop = asyncio.new_event_loop()
        app = make_app()
        self.loop.run_until_complete(app.startup())
        self.proto = server_connection(ServerState(app.handle, app.config, self.loop))
        self.transport = NullTransport()
        self.proto.connection_made(self.transport)
        self.request = request

    def feed(self, count: int) -> None:
        self.loop.run_until_complete(self._feed(count))

    async def _feed(self, count: int) -> None:  # inside the loop, as the server runs
        proto, request, n = self.proto, self.request, len(self.request)
        for _ in range(count):
            buf = memoryview(proto.get_buffer(-1))
            buf[:n] = request
            buf.release()
            proto.buffer_updated(n)

    def close(self) -> None:
        self.proto.connection_lost(None)
        self.loop.close()


def check(name: str) -> None:
    """Each scenario answers 200 (a 422 or 404 would measure the wrong thing)."""
    loop = Loop(SCENARIOS[name])
    written = []
    loop.transport.write = written.append  # type: ignore[method-assign]
    loop.feed(1)
    loop.close()
    head = b"".join(written)
    assert head.startswith(b"HTTP/1.1 200 "), (name, head[:200])


def per_request_us(name: str, rounds: int) -> float:
    loop = Loop(SCENARIOS[name])
    loop.feed(1000)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        loop.feed(rounds)
        best = min(best, (time.perf_counter() - start) / rounds * 1e6)
    loop.close()
    return best


def instructions(name: str, rounds: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
             os.path.abspath(__file__), name, "--rounds", str(rounds), "--once"],
            capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
        match = re.search(r"Collected\s*:\s*(\d+)", proc.stderr)
        if proc.returncode != 0 or match is None:
            raise SystemExit(f"callgrind run failed:\n{proc.stderr[-2000:]}")
        return int(match.group(1))


def main(argv: list[str]) -> None:
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else 50_000
    names = [a for a in argv if a in SCENARIOS] or list(SCENARIOS)
    if "--once" in argv:  # one measured run, for --callgrind
        loop = Loop(SCENARIOS[names[0]])
        loop.feed(1000 + rounds)
        loop.close()
        return
    for name in names:
        check(name)
        if "--callgrind" in argv:
            small, large = 2_000, 12_000
            per = (instructions(name, large) - instructions(name, small)) / (large - small)
            print(f"{name:>18}: {per:,.0f} instructions per request")
        else:
            print(f"{name:>18}: {per_request_us(name, rounds):.2f} us per request")


# ------------------------------------------------------------------ pytest-benchmark
def _bench(benchmark, name: str) -> None:  # type: ignore[no-untyped-def]
    check(name)
    loop = Loop(SCENARIOS[name])
    loop.feed(1000)
    benchmark.group = "binding"
    benchmark.pedantic(loop.feed, args=(100,), rounds=200, warmup_rounds=5)  # 100 requests a round
    loop.close()


def test_nothing(benchmark):  # type: ignore[no-untyped-def]
    _bench(benchmark, "nothing")


def test_by_hand(benchmark):  # type: ignore[no-untyped-def]
    _bench(benchmark, "by-hand")


def test_typed(benchmark):  # type: ignore[no-untyped-def]
    _bench(benchmark, "typed")


def test_typed_no_request(benchmark):  # type: ignore[no-untyped-def]
    _bench(benchmark, "typed-no-request")


def test_model(benchmark):  # type: ignore[no-untyped-def]
    _bench(benchmark, "model")


def test_json_by_hand(benchmark):  # type: ignore[no-untyped-def]
    _bench(benchmark, "json-by-hand")


if __name__ == "__main__":
    main(sys.argv[1:])
