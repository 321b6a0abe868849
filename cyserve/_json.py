"""The JSON codec: orjson (several times faster than the stdlib, see README), with the stdlib as the
fallback for the values orjson refuses (integers past 64 bits)."""
from __future__ import annotations

import json as _stdlib
from typing import Any, Callable

import orjson

__all__ = ["dumps", "loads"]

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(data: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """Compact UTF-8 JSON; ``default`` turns unknown types into serialisable ones."""
    try:
        return orjson.dumps(data, default=default, option=_OPTIONS)
    except TypeError:
        if default is None and not _has_big_int(data):
            raise
        return _stdlib.dumps(data, separators=(",", ":"), ensure_ascii=False,
                             default=default).encode("utf-8")


def _has_big_int(data: Any) -> bool:
    if isinstance(data, int) and not isinstance(data, bool):
        return not -(2**63) <= data < 2**64
    if isinstance(data, dict):
        return any(_has_big_int(v) for v in data.values())
    if isinstance(data, (list, tuple)):
        return any(_has_big_int(v) for v in data)
    return False


def loads(data: bytes | str) -> Any:
    """Parse JSON; raises ``ValueError`` (orjson.JSONDecodeError) on invalid input."""
    return orjson.loads(data)
