"""``--reload``: which file changes restart the workers (``ChangeFilter``) and the watcher that
reports them (``watch``, run in a process of its own that the supervisor forks).

The watcher is a separate process, not a thread of the supervisor: the supervisor forks its
workers, and forking a process while a watcher thread holds a lock leaves that lock held forever
in the child.  It writes one JSON line per batch of changes on a pipe; the supervisor answers
each batch with a rolling restart, so the old worker serves until the new one is ready, and a
file that no longer imports leaves the old worker serving (the supervisor logs the failure and
restarts on the next change).

watchfiles is an extra (``pip install 'cyserve[reload]'``); nothing imports it unless reload is on.
"""
from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

from cyserve.config import RunConfig
from cyserve.errors import StartupError

__all__ = ["ChangeFilter", "require_watchfiles", "watch", "parse_batch", "watched_dirs"]

# Editors' and Python's by-products: never a reason to restart (uvicorn's list, in spirit).
_IGNORED_SUFFIXES = (".pyc", ".pyo", ".pyd", "~", ".swp", ".swx", ".tmp")
_IGNORED_DIRS = frozenset({"__pycache__", "node_modules"})
_DEFAULT_INCLUDES = ("*.py",)
_IDLE_MS = 100  # how long watchfiles waits before reporting that nothing changed


def require_watchfiles() -> None:
    """A ``StartupError`` naming the extra when watchfiles is not installed (checked without
    importing it: the supervisor forks workers, which need none of it)."""
    if importlib.util.find_spec("watchfiles") is None:
        raise StartupError("--reload needs watchfiles: pip install 'cyserve[reload]'")


def watched_dirs(config: RunConfig) -> list[Path]:
    """``reload_dirs`` (the current directory when none), absolute; a missing one is an error."""
    dirs = [Path(d).resolve() for d in (config.reload_dirs or (os.getcwd(),))]
    for directory in dirs:
        if not directory.is_dir():
            raise StartupError(f"--reload-dir {directory}: not a directory")
    return dirs


class ChangeFilter:
    """Decides whether a changed path restarts the server.

    A path counts when its name matches ``*.py`` or one of ``includes`` (globs on the name or on
    the path relative to the watched directory), unless: a directory on the way or the file is
    hidden (a leading dot), which only an include that itself starts with a dot matches, as in
    a shell's globbing (``--reload-include .env`` works, ``*.html`` skips ``.draft.html``); a
    directory on the way is ``__pycache__``; the name is an editor's or Python's by-product
    (``.pyc``, ``~``, swap files); or it matches one of ``excludes`` (on the name, the relative
    path, or any directory on the way).  An exclude beats an include."""

    __slots__ = ("_roots", "_includes", "_explicit", "_excludes")

    def __init__(self, roots: Sequence[Path], includes: Sequence[str] = (),
                 excludes: Sequence[str] = ()) -> None:
        self._roots = tuple(roots)
        self._includes = _DEFAULT_INCLUDES + tuple(includes)
        self._explicit = tuple(p for p in includes if p.startswith("."))  # may match hidden
        self._excludes = tuple(excludes)

    def __call__(self, change: Any, path: str) -> bool:
        """watchfiles' filter signature: ``(Change, path) -> keep``."""
        return self.matches(path)

    def matches(self, path: str) -> bool:
        parts = self._relative_parts(Path(path))
        if not parts:
            return False
        name, dirs = parts[-1], parts[:-1]
        relative = "/".join(parts)
        if name.endswith(_IGNORED_SUFFIXES) or any(d in _IGNORED_DIRS for d in dirs):
            return False
        if self._excludes and any(_matches(p, name, relative) or
                                  any(fnmatch.fnmatchcase(d, p) for d in dirs)
                                  for p in self._excludes):
            return False
        if any(part.startswith(".") for part in parts):
            return any(_matches(p, name, relative) for p in self._explicit)
        return any(_matches(p, name, relative) for p in self._includes)

    def _relative_parts(self, path: Path) -> tuple[str, ...]:
        for root in self._roots:
            try:
                return path.relative_to(root).parts
            except ValueError:
                continue
        return (path.name,) if path.name else ()


def _matches(pattern: str, name: str, relative: str) -> bool:
    return fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(relative, pattern)


def watch(config: RunConfig, out_fd: int, keep_going: Callable[[], bool]) -> None:
    """The watcher process's body: watch ``reload_dirs`` and write each batch of changed paths
    that pass the filter as one JSON line on ``out_fd``; return when ``keep_going()`` turns
    false (the supervisor is gone) or the pipe breaks.

    The first line is an empty batch, written once the watch is in place: the supervisor starts
    the first worker only then, so no edit falls between the worker's import and the watch.
    ``reload_delay`` is the quiet time that closes a batch: an editor's save (write, rename,
    chmod) arrives as one batch, one restart."""
    import watchfiles

    dirs = watched_dirs(config)
    accept = ChangeFilter(dirs, config.reload_includes, config.reload_excludes)
    step_ms = max(10, int(config.reload_delay * 1000))

    class _Stop:
        # watchfiles polls ``is_set()`` every step: the watcher ends soon after its parent.
        def is_set(self) -> bool:
            return not keep_going()

    watching = False
    # yield_on_timeout: an empty batch every _IDLE_MS while nothing changes; the first one says
    # the watch is in place.
    for changes in watchfiles.watch(*dirs, watch_filter=accept, step=step_ms,
                                    debounce=max(1600, 4 * step_ms), stop_event=_Stop(),
                                    rust_timeout=_IDLE_MS, yield_on_timeout=True,
                                    raise_interrupt=False):
        if not changes and watching:
            continue
        watching = True
        paths = sorted({path for _, path in changes})
        try:
            os.write(out_fd, (json.dumps(paths) + "\n").encode())
        except BrokenPipeError:
            return


def parse_batch(line: bytes) -> list[str]:
    """The paths of one line ``watch`` wrote."""
    paths = json.loads(line)
    return [str(p) for p in paths]
