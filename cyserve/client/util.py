"""Small shared helpers of the client: pool routes, header lists, deadlines."""
from __future__ import annotations

import asyncio
import base64
from functools import lru_cache
from typing import Any, Iterable, Mapping, NamedTuple

from cyserve.client.connect import Proxy
from cyserve.errors import TotalTimeout
from cyserve.client.urls import Origin, Target, split_url
from cyserve._core.io.deadline import py_monotonic as monotonic
from cyserve.datastructures import field_value as find_header

__all__ = ["Route", "HeadersArg", "header_list", "merge_headers", "find_header", "basic_auth",
           "target_of", "remaining", "bound", "watch_total", "seconds", "merge_params"]

HeadersArg = Mapping[str, str] | Iterable[tuple[str, str]] | None


class Route(NamedTuple):
    """A pool key: the origin, and the proxy it is reached through (None: direct)."""

    origin: Origin | None  # None: plain-http requests through ``via``, which share connections
    via: Proxy | None


def header_list(headers: Any) -> list[tuple[str, str]]:
    if not headers:
        return []
    if isinstance(headers, Mapping):
        items = headers.items()
    elif hasattr(headers, "items") and callable(headers.items):
        items = headers.items()
    else:
        items = headers
    return [(str(k), str(v)) for k, v in items]


def merge_headers(base: list[tuple[str, str]], extra: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``extra`` replaces every field of ``base`` with the same name (case-insensitively)."""
    if not extra:
        return base
    names = {k.lower() for k, _ in extra}
    return [kv for kv in base if kv[0].lower() not in names] + extra


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode("utf-8")).decode("ascii")


@lru_cache(maxsize=1024)
def target_of(url: str) -> Target:
    return split_url(url)


def remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    left = deadline - monotonic()
    if left <= 0:
        raise TotalTimeout("the request took longer than its total timeout")
    return left


def bound(limit: float | None, deadline: float | None) -> tuple[float | None, bool]:
    """The smaller of a phase's own timeout and what is left of the total; True when the
    total is the one that binds (so its expiry is a TotalTimeout)."""
    left = remaining(deadline)
    if left is not None and (limit is None or left < limit):
        return left, True
    return limit, False


def total_deadline(timeouts: Any) -> float | None:
    """The monotonic time a request started now must end by (``total_s``), or None."""
    total = timeouts.total_s
    return monotonic() + total if total and total > 0 else None


def watch_total(conn: Any, deadline: float | None) -> asyncio.TimerHandle | None:
    """A loop timer that aborts ``conn`` (a connection, or a ``Response``: anything with
    ``abort(exc)``) with ``TotalTimeout`` at ``deadline``; None without a deadline.  Cancel it
    once the phase it bounds is over.

    For exchanges whose body the caller paces (``stream()``): the core's own total deadline
    runs until the body's last byte, so such an exchange passes the core none and is bounded by
    this timer until its head is in instead."""
    left = remaining(deadline)
    if left is None:
        return None
    return asyncio.get_running_loop().call_later(left, _expire, conn)


def _expire(conn: Any) -> None:
    conn.abort(TotalTimeout("the request took longer than its total timeout"))


def seconds(value: float | None) -> float:
    return value if value is not None and value > 0 else 0.0


def merge_params(base: Any, extra: Any) -> Any:
    if not base:
        return extra
    if not extra:
        return base
    items = list(base.items() if isinstance(base, Mapping) else base)
    return items + list(extra.items() if isinstance(extra, Mapping) else extra)
