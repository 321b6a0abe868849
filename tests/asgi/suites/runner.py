"""Run a project's own test suite, from its sdist, against the cyserve ASGI adapter.

The suite runs in a subprocess ``pytest`` in the unpacked sdist (its own ``pyproject.toml``
configures it: warnings as errors, strict markers), with two plugins of ours loaded first:
``realsocket.report`` (known differences, a bound per test, the results as JSON) and the
suite's seam plugin (``realsocket.starlette_plugin`` or ``realsocket.uvicorn_plugin``).  The
subprocess as a whole is bounded too; what it reports is summarised in a ``SuiteResult``.
"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest

from . import sdist
from .realsocket.report import Difference, load_differences

__all__ = ["Suite", "SuiteResult", "run_suite"]

_HERE = pathlib.Path(__file__).resolve().parent
_REPO = _HERE.parent.parent.parent


@dataclass(frozen=True)
class Suite:
    """One suite: where its tests come from and how they are pointed at cyserve."""

    project: str
    version: str
    plugin: str                       # the seam plugin (a module of realsocket)
    paths: tuple[str, ...]            # test files or directories, relative to the sdist
    differences: pathlib.Path         # the reviewed list (TOML)
    timeout_s: float                  # the whole subprocess
    test_timeout_s: float = 60.0      # each test
    ignore: tuple[str, ...] = ()      # paths not collected (with the reason in ``ignored``)
    ignored: dict[str, str] = field(default_factory=dict)


@dataclass
class SuiteResult:
    counts: Counter[str]
    known: dict[str, list[str]]          # difference id -> its tests that failed as listed
    unexpected: dict[str, str]           # test -> failure message
    stale: list[str]                     # listed tests that passed, or entries naming no test
    duration_s: float
    exitstatus: int
    output_tail: str
    not_applicable: set[str] = field(default_factory=set)  # ids of kind "not-applicable"

    def summary(self, name: str) -> str:
        c = self.counts
        not_applicable = sum(len(v) for k, v in self.known.items() if k in self.not_applicable)
        known = sum(len(v) for v in self.known.values()) - not_applicable
        lines = [f"{name}: {c['passed']} passed, {len(self.unexpected)} unexpected failures, "
                 f"{known} known differences ({len(self.known) - len(self.not_applicable & set(self.known))} "
                 f"reasons), {not_applicable} not applicable (not run), {c['skipped']} skipped by the suite, "
                 f"{c['xfailed-by-suite']} xfailed by the suite, {c['deselected']} deselected, "
                 f"in {self.duration_s:.0f} s"]
        lines += [f"  UNEXPECTED {test}\n    " + message.replace("\n", "\n    ")
                  for test, message in sorted(self.unexpected.items())]
        lines += [f"  STALE {entry}" for entry in self.stale]
        return "\n".join(lines)


def run_suite(suite: Suite, *, env: dict[str, str] | None = None) -> SuiteResult:
    """Fetch, run and summarise ``suite``; skips the calling test when the sdist cannot be had."""
    try:
        root = sdist.fetch(suite.project, suite.version)
    except sdist.Unavailable as exc:
        pytest.skip(f"{suite.project} {suite.version} test suite unavailable: {exc}")
    differences = load_differences(str(suite.differences), (env or {}).get("CYSERVE_SUITE_LOOP", "uvloop"))
    with tempfile.TemporaryDirectory(prefix="suite-") as work:
        results_path = pathlib.Path(work) / "results.json"
        command = [sys.executable, "-m", "pytest", "-p", "realsocket.report", "-p", suite.plugin,
                   # The project's own addopts may name plugins not installed here (uvicorn's
                   # "-n 8" is pytest-xdist's); the settings that matter are kept explicitly.
                   "-o", "addopts=", "--strict-markers", "-p", "no:cacheprovider", "-p", "no:cyserve",
                   "-q", "-rN", "--tb=short", "--basetemp", str(pathlib.Path(work) / "tmp"),
                   *[f"--ignore={path}" for path in suite.ignore], *suite.paths]
        child_env = dict(os.environ)
        child_env.update(env or {})
        child_env.update({
            # realsocket (ours) and cyserve (the repository) importable from the sdist's directory.
            "PYTHONPATH": os.pathsep.join([str(_HERE), str(_REPO), child_env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "CYSERVE_SUITE_DIFFERENCES": str(suite.differences),
            "CYSERVE_SUITE_RESULTS": str(results_path),
            "CYSERVE_SUITE_TEST_TIMEOUT_S": str(suite.test_timeout_s),
            "PYTHONDONTWRITEBYTECODE": "1",
        })
        started = time.monotonic()
        try:
            done = subprocess.run(command, cwd=root, env=child_env, capture_output=True, text=True,
                                  timeout=suite.timeout_s, stdin=subprocess.DEVNULL)
            output, exitstatus = done.stdout + done.stderr, done.returncode
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            pytest.fail(f"{suite.project} suite ran past {suite.timeout_s:.0f} s; its output ended:\n{out[-4000:]}")
        duration_s = time.monotonic() - started
        if not results_path.exists():
            pytest.fail(f"{suite.project} suite wrote no results (exit {exitstatus}):\n{output[-6000:]}")
        data = json.loads(results_path.read_text(encoding="utf-8"))
    return _summarise(data, differences, duration_s, exitstatus, output)


def _summarise(data: dict[str, object], differences: list[Difference], duration_s: float, exitstatus: int,
               output: str) -> SuiteResult:
    tests: dict[str, dict[str, object]] = data["tests"]  # type: ignore[assignment]
    counts: Counter[str] = Counter()
    counts["deselected"] = int(data["deselected"])  # type: ignore[call-overload]
    known: dict[str, list[str]] = {}
    unexpected: dict[str, str] = {}
    stale = [f"{entry} (names no collected test)" for entry in data["unmatched_differences"]]  # type: ignore[attr-defined]
    for nodeid, entry in tests.items():
        outcome = str(entry["outcome"])
        difference = next((d for d in differences if d.matches(nodeid)), None)
        if outcome == "xfailed" and difference is not None:
            known.setdefault(difference.id, []).append(nodeid)
        elif outcome == "xfailed":
            counts["xfailed-by-suite"] += 1
        elif outcome == "xpassed" and difference is not None:
            stale.append(f"{difference.id}: {nodeid} passed")
        elif outcome in ("failed", "error", "xpassed"):
            unexpected[nodeid] = str(entry["message"])
        else:
            counts[outcome] += 1
    return SuiteResult(counts, known, unexpected, stale, duration_s, exitstatus, output[-3000:],
                       {d.id for d in differences if d.kind == "not-applicable"})
