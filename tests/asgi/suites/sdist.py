"""The suites' source: a project's sdist from PyPI, downloaded with pip at test time and unpacked
into a cache directory reused across runs (nothing of it is vendored into this repository)."""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile

__all__ = ["cache_dir", "fetch"]

# A download is one small file; a slow index still answers well inside this.
_DOWNLOAD_TIMEOUT_S = 180.0


class Unavailable(Exception):
    """The sdist is neither cached nor downloadable (no network): the suite is skipped."""


def cache_dir() -> pathlib.Path:
    """``$CYSERVE_SUITE_CACHE``, else ``<tmp>/cyserve-asgi-suites`` (pytest's cache provider is
    off in this project, so the cache lives beside it rather than in ``.pytest_cache``)."""
    configured = os.environ.get("CYSERVE_SUITE_CACHE")
    root = pathlib.Path(configured) if configured else pathlib.Path(tempfile.gettempdir()) / "cyserve-asgi-suites"
    root.mkdir(parents=True, exist_ok=True)
    return root


def fetch(project: str, version: str) -> pathlib.Path:
    """The unpacked sdist of ``project==version`` (its top directory, holding ``tests/``).

    Unpacked once into a temporary name and renamed into place, so a run interrupted halfway
    never leaves a partial tree that a later run would take for a complete one."""
    root = cache_dir()
    unpacked = root / f"{project}-{version}"
    if (unpacked / "tests").is_dir():
        return unpacked
    archive = _download(project, version, root)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{project}-", dir=root))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(staging, filter="data")
        tops = [p for p in staging.iterdir() if p.is_dir()]
        if len(tops) != 1 or not (tops[0] / "tests").is_dir():
            raise Unavailable(f"{archive.name} has no single top directory with tests/ in it")
        try:
            tops[0].rename(unpacked)
        except OSError:
            if not (unpacked / "tests").is_dir():  # not a concurrent run that got there first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return unpacked


def _download(project: str, version: str, root: pathlib.Path) -> pathlib.Path:
    archives = root / "archives"
    archives.mkdir(exist_ok=True)
    found = _archive_in(archives, project, version)
    if found is not None:
        return found
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--disable-pip-version-check", "--quiet", f"{project}=={version}", "-d", str(archives)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=_DOWNLOAD_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise Unavailable(f"pip download {project}=={version} timed out after {exc.timeout:.0f} s") from exc
    found = _archive_in(archives, project, version)
    if done.returncode != 0 or found is None:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise Unavailable(f"no cached sdist of {project}=={version} and pip could not download it: {last}")
    return found


def _archive_in(archives: pathlib.Path, project: str, version: str) -> pathlib.Path | None:
    # PyPI normalises sdist names to lower case with underscores (PEP 625).
    stem = f"{project.replace('-', '_').lower()}-{version}"
    for candidate in (archives / f"{stem}.tar.gz", archives / f"{project}-{version}.tar.gz"):
        if candidate.is_file():
            return candidate
    return None
