"""Run wrk once and parse its --latency report."""
from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from procs import BenchError, pinned

PIPELINE_LUA = Path(__file__).resolve().parent / "pipeline.lua"
_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}  # wrk's time units


@dataclass(frozen=True)
class WrkResult:
    requests: int  # completed responses (each pipelined response counts)
    duration_s: float
    rps: float
    p99_ms: float | None  # None when wrk's percentiles cannot be trusted (see _trusted_p99_ms)
    non_2xx: int  # wrk's "Non-2xx or 3xx responses" (status >= 400)
    socket_errors: int  # connect + read + write + timeout

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


def run(url: str, *, connections: int, duration_s: int, depth: int, core: int | None,
        headers: Sequence[str] = ()) -> WrkResult:
    """One wrk run with one thread; depth > 1 pipelines that many requests per write.
    ``headers``: ``"Name: value"`` lines added to every request (pipelined ones too:
    pipeline.lua's ``wrk.format()`` includes them)."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency"]
    for header in headers:
        cmd += ["-H", header]
    if depth > 1:
        cmd += ["-s", str(PIPELINE_LUA), url, "--", str(depth)]
    else:
        cmd.append(url)
    try:
        done = subprocess.run(pinned(cmd, core), capture_output=True, text=True, timeout=duration_s + 30)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish: {' '.join(cmd)}") from exc
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout}{done.stderr}")
    return parse(done.stdout, depth)


def parse(report: str, depth: int = 1) -> WrkResult:
    totals = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", report, re.M)
    rps = re.search(r"^Requests/sec:\s*([\d.]+)", report, re.M)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m|h)", report, re.M)
    if not (totals and rps and p99):
        raise BenchError(f"unexpected wrk report:\n{report}")
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", report)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", report)
    return WrkResult(
        requests=int(totals[1]),
        duration_s=float(totals[2]) * _SECONDS[totals[3]],
        rps=float(rps[1]),
        p99_ms=_trusted_p99_ms(float(p99[1]) * _SECONDS[p99[2]] * 1e3, depth),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
    )


def _trusted_p99_ms(p99_ms: float, depth: int) -> float | None:
    """wrk 4.1 "corrects" for coordinated omission with an interval computed per response, but
    records latency once per pipelined batch; the synthetic samples then land below the recorded
    minimum and the percentiles read as 0 or are skewed (wg/wrk#236). So no p99 when pipelined,
    and a 0 is reported as unknown rather than as a perfect latency.
    """
    return p99_ms if depth == 1 and p99_ms > 0 else None
