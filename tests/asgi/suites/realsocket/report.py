"""pytest plugin for the suites' subprocess: known differences, a time bound per test, results.

- The reviewed list of known differences (a TOML file, ``CYSERVE_SUITE_DIFFERENCES``) marks its
  tests as strict xfails: a listed test still runs, and one that passes fails the run (the
  list must not outlive the difference).  An entry naming no collected test is reported too.
  An entry with ``run = false`` is not run at all (only for tests that would hang).
- Items parametrised on anyio's trio backend are deselected: the adapter runs on asyncio.
- Each test is bounded (``CYSERVE_SUITE_TEST_TIMEOUT_S``, SIGALRM in the main thread): a test
  that hangs fails alone instead of eating the whole run's budget.
- The outcome of every test goes to ``CYSERVE_SUITE_RESULTS`` as JSON for the outer test.
"""
from __future__ import annotations

import json
import os
import signal
import tomllib
from collections.abc import Generator
from dataclasses import dataclass
from types import FrameType
from typing import Any

import pytest

__all__ = ["Difference", "load_differences"]


@dataclass(frozen=True)
class Difference:
    id: str
    kind: str
    reason: str
    tests: tuple[str, ...]
    run: bool = True
    loops: tuple[str, ...] = ("uvloop", "asyncio")  # the runs (CYSERVE_SUITE_LOOP) it holds for

    def matches(self, nodeid: str) -> bool:
        return any(_matches(test, nodeid) for test in self.tests)


def _matches(entry: str, nodeid: str) -> bool:
    """An entry without a parameter suffix covers every parametrisation of the test; a ``*``
    stands for any run of characters (for parameter ids too long to spell out, or spelt
    differently by pytest versions: 9.0 writes a bytes parameter's value where 9.2 writes
    ``header0``).  Not fnmatch: ``[`` in a node id is literal."""
    if "*" in entry:
        first, *middle, last = entry.split("*")
        if not nodeid.startswith(first) or not nodeid.endswith(last):
            return False
        pos, end = len(first), len(nodeid) - len(last)
        for piece in middle:
            found = nodeid.find(piece, pos, end)
            if found < 0:
                return False
            pos = found + len(piece)
        return pos <= end
    return nodeid == entry or nodeid.startswith(entry + "[")


def load_differences(path: str, loop: str | None = None) -> list[Difference]:
    """The entries of a list; with ``loop``, only those that hold on that loop."""
    with open(path, "rb") as f:
        data = tomllib.load(f)
    differences = [Difference(id=entry["id"], kind=entry["kind"], reason=" ".join(entry["reason"].split()),
                              tests=tuple(entry["tests"]), run=entry.get("run", True),
                              loops=tuple(entry.get("loops", ("uvloop", "asyncio"))))
                   for entry in data.get("difference", [])]
    return [d for d in differences if loop is None or loop in d.loops]


class SuiteTimeout(Exception):
    """The test ran past the suite's bound for one test."""


class _Results:
    def __init__(self) -> None:
        self.tests: dict[str, dict[str, Any]] = {}
        self.differences: list[Difference] = []
        self.unmatched: list[str] = []
        self.deselected = 0

    def record(self, report: pytest.TestReport) -> None:
        entry = self.tests.setdefault(report.nodeid, {"outcome": "passed", "duration_s": 0.0, "message": ""})
        entry["duration_s"] += report.duration
        if report.when == "call" or report.outcome != "passed":
            if hasattr(report, "wasxfail"):
                entry["outcome"] = "xfailed" if report.skipped else "xpassed"
            elif report.failed:
                entry["outcome"] = "failed" if report.when == "call" else "error"
                entry["message"] = _short(report)
            elif report.skipped and entry["outcome"] == "passed":
                entry["outcome"] = "skipped"
                entry["message"] = _short(report)
            if report.failed and "XPASS(strict)" in str(report.longrepr):
                entry["outcome"] = "xpassed"


def _short(report: pytest.TestReport) -> str:
    text = report.longreprtext if hasattr(report, "longreprtext") else str(report.longrepr)
    lines = [line for line in text.splitlines() if line.startswith("E ")] or text.splitlines()[-3:]
    return "\n".join(lines[:12])


_results = _Results()


def pytest_configure(config: pytest.Config) -> None:
    path = os.environ.get("CYSERVE_SUITE_DIFFERENCES")
    if path:
        _results.differences = load_differences(path, os.environ.get("CYSERVE_SUITE_LOOP", "uvloop"))


def deselect_param(config: pytest.Config, items: list[pytest.Item], param: str,
                   keep: Any) -> None:
    """Deselect (as pytest reports it) the items parametrised with ``param`` whose value
    ``keep(value)`` refuses; items without that parameter stay."""
    kept: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and param in callspec.params and not keep(callspec.params[param]):
            deselected.append(item)
        else:
            kept.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    deselect_param(config, items, "anyio_backend", lambda backend: backend != "trio")
    matched: set[str] = set()
    for item in items:
        for difference in _results.differences:
            if difference.matches(item.nodeid):
                matched.add(difference.id)
                item.add_marker(pytest.mark.xfail(strict=True, run=difference.run,
                                                  reason=f"known difference {difference.id}: {difference.reason}"))
                break
    # Only differences whose file was collected can be judged (a run of one file is partial).
    collected_files = {item.nodeid.split("::", 1)[0] for item in items}
    for difference in _results.differences:
        for test in difference.tests:
            if test.split("::", 1)[0] in collected_files and not any(_matches(test, item.nodeid) for item in items):
                _results.unmatched.append(f"{difference.id}: {test}")


def pytest_deselected(items: list[pytest.Item]) -> None:
    _results.deselected += len(items)


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise SuiteTimeout(f"test ran past CYSERVE_SUITE_TEST_TIMEOUT_S={os.environ.get('CYSERVE_SUITE_TEST_TIMEOUT_S')}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, None]:
    timeout_s = float(os.environ.get("CYSERVE_SUITE_TEST_TIMEOUT_S", "60"))
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _results.record(report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get("CYSERVE_SUITE_RESULTS")
    if not path:
        return
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"tests": _results.tests, "unmatched_differences": _results.unmatched,
                   "deselected": _results.deselected, "exitstatus": int(exitstatus)}, f, indent=1)
