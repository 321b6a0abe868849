"""uvicorn's real-socket WebSocket tests and its lifespan tests (its sdist, fetched at test time)
against the cyserve ASGI adapter (``realsocket.uvicorn_plugin`` maps their seams)."""
from __future__ import annotations

import importlib.metadata
import pathlib

import pytest

from .runner import Suite, run_suite

pytestmark = pytest.mark.asgi_suite

_HERE = pathlib.Path(__file__).resolve().parent

# The tests import uvicorn's own modules (Config, its types), so they must be the installed
# release's: the extra pins uvicorn==0.55.*.
_VERSION = importlib.metadata.version("uvicorn")

UVICORN = Suite(
    project="uvicorn", version=_VERSION, plugin="realsocket.uvicorn_plugin",
    paths=("tests/protocols/test_websocket.py", "tests/test_lifespan.py"),
    differences=_HERE / "differences" / "uvicorn.toml",
    # Measured: about 40 s; a few listed differences wait out their own timeouts.
    timeout_s=600.0, test_timeout_s=60.0,
)


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_uvicorn_websocket_and_lifespan_suites_pass_against_the_adapter(loop: str) -> None:
    if not _VERSION.startswith("0.55."):
        pytest.skip(f"the differences were reviewed against uvicorn 0.55.*, not {_VERSION}")
    result = run_suite(UVICORN, env={"CYSERVE_SUITE_LOOP": loop})
    summary = result.summary(f"uvicorn {_VERSION} WebSocket and lifespan tests on cyserve ({loop})")
    print(summary)
    assert not result.unexpected and not result.stale, summary
    assert result.counts["passed"] >= 60, summary
