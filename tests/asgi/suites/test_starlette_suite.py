"""Starlette's own test suite (its sdist, fetched at test time) against the cyserve ASGI adapter,
every app served over real sockets on 127.0.0.1 (``realsocket.starlette_plugin``)."""
from __future__ import annotations

import importlib.util
import os
import pathlib

import pytest

from .runner import Suite, run_suite

pytestmark = pytest.mark.asgi_suite

_HERE = pathlib.Path(__file__).resolve().parent

# The suite's OpenTelemetry middleware tests need the SDK (starlette's dev dependency group).
_NO_OTEL = importlib.util.find_spec("opentelemetry") is None or importlib.util.find_spec("opentelemetry.sdk") is None

STARLETTE = Suite(
    project="starlette", version="1.10.0", plugin="realsocket.starlette_plugin", paths=("tests",),
    differences=_HERE / "differences" / "starlette.toml",
    # Measured: about 2 minutes per loop on a loaded 2-core machine; the bound leaves room.
    timeout_s=900.0, test_timeout_s=60.0,
    ignore=("tests/middleware/test_opentelemetry.py",) if _NO_OTEL else (),
)


# Each loop costs about 2 minutes of CI; the suite runs on uvloop there (what `cyserve` serves
# with) and on stdlib asyncio too with CYSERVE_ASGI_SUITES_FULL=1 (the adapter's own tests in
# tests/asgi run on both loops either way).
_LOOPS = (["uvloop", "asyncio"] if os.environ.get("CYSERVE_ASGI_SUITES_FULL") == "1"
          else ["uvloop"])


@pytest.mark.parametrize("loop", _LOOPS)
def test_starlette_suite_passes_against_the_adapter(loop: str) -> None:
    result = run_suite(STARLETTE, env={"CYSERVE_SUITE_LOOP": loop, "CYSERVE_SUITE_SERVER": "cyserve"})
    summary = result.summary(f"starlette {STARLETTE.version} on cyserve ({loop})")
    print(summary)
    if _NO_OTEL:
        print("  not collected: tests/middleware/test_opentelemetry.py (opentelemetry-sdk is not installed)")
    assert not result.unexpected and not result.stale, summary
    # A run that collected almost nothing (a broken plugin, an import error) fails here.
    assert result.counts["passed"] >= 600, summary
