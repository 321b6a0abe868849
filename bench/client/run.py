"""Client benchmark: cyserve's client against aiohttp's and httpx, same run, same server.

    python bench/client/run.py [--seconds 5] [--rounds 3] [--download-mb 1024] [--max-seconds 10]

The server (``server_app.py``, a cyserve app) runs in its own process pinned to the last CPU;
this process pins itself to CPU 0 (``os.sched_setaffinity``), so clients and server never share a
core.  Every client runs on uvloop with 32 concurrent workers over a pool of 32 connections:

- rps: small GETs for ``--seconds`` after a 1 s warm-up, the median of ``--rounds`` rounds;
- MB/s: one streamed download of ``--download-mb`` MiB, stopped after ``--max-seconds``.

Prints a table and the ratios cyserve/aiohttp and cyserve/httpx (targets: >= 2x and >= 3x rps).
Never part of the test run; bounded in time; talks to 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from typing import Awaitable, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORKERS = 32


# ---------------------------------------------------------------------- the three clients
async def _rps(one: Callable[[], Awaitable[None]], seconds: float) -> float:
    count = 0
    stop_at = 0.0

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() < stop_at:
            await one()
            count += 1

    stop_at = time.perf_counter() + 1.0   # warm-up
    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    count = 0
    start = time.perf_counter()
    stop_at = start + seconds
    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    return count / (time.perf_counter() - start)


async def cyserve_bench(base: str, seconds: float, mb: int, max_s: float) -> tuple[float, float]:
    from cyserve.client import Client, ClientLimits
    limits = ClientLimits(max_connections=WORKERS, max_connections_per_host=WORKERS)
    async with Client(base_url=base, limits=limits) as client:
        async def one() -> None:
            resp = await client.get("/small")
            assert resp.status == 200 and resp.content == b"hello"
        rps = await _rps(one, seconds)

        async def download() -> int:
            got = 0
            async with client.stream("GET", f"/big?mb={mb}") as resp:
                async for chunk in resp.iter_raw():
                    got += len(chunk)
                    if time.perf_counter() > deadline:
                        break
            return got
        deadline = time.perf_counter() + max_s
        start = time.perf_counter()
        got = await download()
        mbps = got / (1024 * 1024) / (time.perf_counter() - start)
    return rps, mbps


async def aiohttp_bench(base: str, seconds: float, mb: int, max_s: float) -> tuple[float, float]:
    import aiohttp
    connector = aiohttp.TCPConnector(limit=WORKERS, limit_per_host=WORKERS)
    async with aiohttp.ClientSession(base, connector=connector) as session:
        async def one() -> None:
            async with session.get("/small") as resp:
                body = await resp.read()
                assert resp.status == 200 and body == b"hello"
        rps = await _rps(one, seconds)
        deadline = time.perf_counter() + max_s
        start = time.perf_counter()
        got = 0
        async with session.get(f"/big?mb={mb}") as resp:
            async for chunk in resp.content.iter_any():
                got += len(chunk)
                if time.perf_counter() > deadline:
                    break
        mbps = got / (1024 * 1024) / (time.perf_counter() - start)
    return rps, mbps


async def httpx_bench(base: str, seconds: float, mb: int, max_s: float) -> tuple[float, float]:
    import httpx
    limits = httpx.Limits(max_connections=WORKERS, max_keepalive_connections=WORKERS)
    async with httpx.AsyncClient(base_url=base, limits=limits) as client:
        async def one() -> None:
            resp = await client.get("/small")
            assert resp.status_code == 200 and resp.content == b"hello"
        rps = await _rps(one, seconds)
        deadline = time.perf_counter() + max_s
        start = time.perf_counter()
        got = 0
        async with client.stream("GET", f"/big?mb={mb}") as resp:
            async for chunk in resp.aiter_raw():
                got += len(chunk)
                if time.perf_counter() > deadline:
                    break
        mbps = got / (1024 * 1024) / (time.perf_counter() - start)
    return rps, mbps


CLIENTS: dict[str, Callable[..., Awaitable[tuple[float, float]]]] = {
    "cyserve": cyserve_bench, "aiohttp": aiohttp_bench, "httpx": httpx_bench,
}


# ---------------------------------------------------------------------- harness
def start_server() -> tuple[subprocess.Popen, int]:
    cpus = sorted(os.sched_getaffinity(0))
    cmd = [sys.executable, os.path.join(HERE, "server_app.py")]
    if len(cpus) > 1:
        cmd = ["taskset", "-c", str(cpus[-1])] + cmd
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, int(line.split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--download-mb", type=int, default=1024)
    parser.add_argument("--max-seconds", type=float, default=10.0)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    import uvloop

    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > 1:
        os.sched_setaffinity(0, {cpus[0]})
    proc, port = start_server()
    base = f"http://127.0.0.1:{port}"
    results: dict[str, tuple[float, float]] = {}
    try:
        names = args.clients.split(",")
        rps_rounds: dict[str, list[float]] = {n: [] for n in names}
        mbps_rounds: dict[str, list[float]] = {n: [] for n in names}
        for _ in range(args.rounds):
            for name in names:   # interleaved rounds: drift hits every client alike
                rps, mbps = uvloop.run(CLIENTS[name](base, args.seconds, args.download_mb,
                                                     args.max_seconds))
                rps_rounds[name].append(rps)
                mbps_rounds[name].append(mbps)
        for name in names:
            results[name] = (statistics.median(rps_rounds[name]), statistics.median(mbps_rounds[name]))
    finally:
        proc.terminate()
        proc.wait(5)
    versions = _versions()
    print(f"\nclient benchmark: {WORKERS} workers, pool {WORKERS}, uvloop, server pinned apart; "
          f"median of {args.rounds} rounds ({versions})")
    print(f"{'client':<10}{'small GET rps':>16}{'download MB/s':>16}")
    for name, (rps, mbps) in results.items():
        print(f"{name:<10}{rps:>16.0f}{mbps:>16.0f}")
    if "cyserve" in results:
        base_rps, base_mbps = results["cyserve"]
        for name, target in (("aiohttp", 2.0), ("httpx", 3.0)):
            if name in results:
                rps, mbps = results[name]
                print(f"cyserve/{name}: rps x{base_rps / rps:.2f} (target >= {target:g}), "
                      f"MB/s x{base_mbps / mbps:.2f}")


def _versions() -> str:
    out = []
    for mod in ("aiohttp", "httpx", "uvloop"):
        try:
            out.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            pass
    return ", ".join(out)


if __name__ == "__main__":
    main()
