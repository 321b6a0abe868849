"""StaticFiles: a directory served safely, as one GET/HEAD handler.

Resolution, in one executor job so the loop never touches the disk:

1. The relative path (``request.path_params["path"]``, already percent-decoded once by the
   request; never decoded again) is refused if it holds a NUL, a backslash or a ``..`` segment.
   ``.`` and empty segments are dropped.
2. The segments are joined under the root's ``realpath`` and the result is resolved with
   ``realpath``; it must be the root or lie under ``root + os.sep`` (a plain prefix test would
   let ``/srv/static`` reach ``/srv/static2``).  A symlink may point anywhere inside the root; one
   resolving outside it is refused unless ``follow_symlinks=True``.
3. A directory URL without its trailing slash is redirected (301) to add it, so relative links in
   its index work; with the slash, ``index`` is served (no listings).  A file URL with a trailing
   slash, and anything not a regular file (FIFOs, devices), is refused.
4. With ``precompressed=True``, ``name.br`` / ``name.gz`` beside the file are offered when the
   client accepts them (q-values honoured, br preferred); the answer then carries
   ``Content-Encoding``, the original's media type and ``Vary: Accept-Encoding``, and its ETag
   names the coding.  The siblings pass the same containment test.

Every refusal is a 404, exactly like a missing file: the answer never tells what exists outside
the root or why a path was rejected.  The file itself is sent by ``FileResponse``, which checks
that the descriptor it opens is the file resolved here (a swap in between is a 404 too).
"""
from __future__ import annotations

import asyncio
import os
import stat as stat_module
from dataclasses import dataclass
from typing import Any

from cyserve.compression import negotiate
from cyserve.errors import HTTPError
from cyserve.files import FileResponse, guess_type
from cyserve.response import BaseResponse, Response

__all__ = ["StaticFiles"]

# Server preference for precompressed siblings (smallest first).
_SIBLINGS = (("br", ".br"), ("gzip", ".gz"))
_CODINGS = tuple(coding for coding, _ in _SIBLINGS)


@dataclass(frozen=True)
class _Found:
    path: str                      # the resolved (realpath) file to open
    name: str                      # the path as requested: its extension picks the media type
    stat: os.stat_result
    variants: dict[str, tuple[str, os.stat_result]]  # coding -> (resolved sibling, its stat)


_REDIRECT = object()


class StaticFiles:
    """``StaticFiles(directory, *, index="index.html", follow_symlinks=False, precompressed=True,
    chunk_bytes=65536, cache_control="no-cache")``: an async handler ``(request) -> response``
    serving the file named by ``request.path_params["path"]`` (see the module docstring).

    Register it on a GET/HEAD route ending in ``{path:path}``.  ``cache_control`` is sent on 200,
    206 and 304 (None sends none); fingerprinted assets want
    ``"public, max-age=31536000, immutable"``.  ``index=None`` turns directory indexes off.
    """

    __slots__ = ("directory", "index", "follow_symlinks", "precompressed", "chunk_bytes",
                 "cache_control", "_root", "_root_prefix")

    def __init__(self, directory: str | os.PathLike[str], *, index: str | None = "index.html",
                 follow_symlinks: bool = False, precompressed: bool = True,
                 chunk_bytes: int = 65536, cache_control: str | None = "no-cache") -> None:
        root = os.path.realpath(directory)
        if not os.path.isdir(root):
            raise NotADirectoryError(f"StaticFiles directory {os.fspath(directory)!r} is missing")
        if index is not None and ("/" in index or "\\" in index or index in ("", ".", "..")):
            raise ValueError(f"index must be a plain file name, got {index!r}")
        if chunk_bytes <= 0:
            raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
        self.directory = os.fspath(directory)
        self.index = index
        self.follow_symlinks = follow_symlinks
        self.precompressed = precompressed
        self.chunk_bytes = chunk_bytes
        self.cache_control = cache_control
        self._root = root
        self._root_prefix = root if root.endswith(os.sep) else root + os.sep

    @property
    def __name__(self) -> str:  # the router names routes after their handler
        return "static"

    async def __call__(self, request: Any) -> BaseResponse:
        method = request.method
        if method != "GET" and method != "HEAD":
            raise HTTPError(405, "Method Not Allowed", [("Allow", "GET, HEAD")])
        relative = request.path_params.get("path", "")
        segments = _segments(relative)
        if segments is None:
            raise HTTPError(404, "Not Found")
        slash = request.path.endswith("/")
        codings = _CODINGS if self.precompressed and request.headers.get("accept-encoding") else ()
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(None, self._lookup, segments, slash, codings)
        if found is None:
            raise HTTPError(404, "Not Found")
        if found is _REDIRECT:
            location = "/" + request.raw_path.lstrip("/") + "/"  # never "//host": no open redirect
            if request.query_string:
                location += "?" + request.query_string
            return Response(b"", 301, [("Location", location)])
        fields: list[tuple[str, str]] = []
        if self.cache_control is not None:
            fields.append(("Cache-Control", self.cache_control))
        path, st = found.path, found.stat
        if found.variants:
            fields.append(("Vary", "Accept-Encoding"))
            coding = negotiate(request.headers.get("accept-encoding"), tuple(found.variants))
            if coding is not None:
                path, st = found.variants[coding]
                fields.append(("Content-Encoding", coding))
        return FileResponse(path, headers=fields, content_type=guess_type(found.name),
                            chunk_bytes=self.chunk_bytes, stat_result=st, request=request)

    # ------------------------------------------------------------------ in the executor
    def _contain(self, path: str) -> str | None:
        real = os.path.realpath(path)
        if real == self._root or real.startswith(self._root_prefix) or self.follow_symlinks:
            # With follow_symlinks the lexical path is still under the root (no ".." segments),
            # only a symlink on the way may lead elsewhere.
            return real
        return None

    def _stat(self, path: str) -> tuple[str, os.stat_result] | None:
        real = self._contain(path)
        if real is None:
            return None
        try:
            return real, os.stat(real)
        except (OSError, ValueError):  # missing, ENOTDIR, ELOOP, ENAMETOOLONG, EACCES…
            return None

    def _lookup(self, segments: list[str], slash: bool, codings: tuple[str, ...]) -> Any:
        name = os.path.join(self._root, *segments)
        resolved = self._stat(name)
        if resolved is None:
            return None
        real, st = resolved
        if stat_module.S_ISDIR(st.st_mode):
            if not slash:
                return _REDIRECT
            if self.index is None:
                return None
            name = os.path.join(name, self.index)
            resolved = self._stat(name)
            if resolved is None:
                return None
            real, st = resolved
        elif slash:
            return None  # "file.txt/" names no file
        if not stat_module.S_ISREG(st.st_mode):
            return None
        variants: dict[str, tuple[str, os.stat_result]] = {}
        for coding, suffix in _SIBLINGS:
            if coding in codings:
                sibling = self._stat(name + suffix)
                if sibling is not None and stat_module.S_ISREG(sibling[1].st_mode):
                    variants[coding] = sibling
        return _Found(real, name, st, variants)


def _segments(relative: str) -> list[str] | None:
    if "\x00" in relative or "\\" in relative:
        return None
    segments = [s for s in relative.split("/") if s and s != "."]
    if ".." in segments:
        return None
    return segments
