"""Retrying a request (``cyserve.config.Retries`` says when): which failures qualify, the
backoff with full jitter, ``Retry-After``, and the total deadline no wait may pass.

The Client asks a ``RetryBudget`` (one per request, its redirects included) after each failed
attempt; it answers with the seconds to wait before the next one, or None to stop.
"""
from __future__ import annotations

import random
import ssl
import time
from typing import Any

from cyserve._core.io.deadline import py_monotonic as monotonic
from cyserve.client.content import RequestContent
from cyserve.config import Retries
from cyserve.errors import (
    ConnectError, ConnectTimeout, ReadError, RemoteProtocolError, TransportError, WriteError,
)
from cyserve.files import parse_http_date

__all__ = ["RetryBudget", "parse_retry_after", "retryable_error"]

_AFTER_NOTHING = (ReadError, WriteError, RemoteProtocolError)


def retryable_error(exc: TransportError, response_bytes: int) -> bool:
    """Did this error leave the request unanswered in a way worth another try?

    Nothing was sent on a failed connect; a connection that closed or reset before any byte of
    a response came back (a server restarting, an idle connection dropped by a middlebox) gave
    no answer, and RFC 9110 §9.2.2 lets an idempotent request be sent again then.  A failed
    certificate check would fail the same way again, and an error after response bytes arrived
    (a malformed or cut response) says the server did answer."""
    if isinstance(exc, ConnectTimeout):
        return True
    if isinstance(exc, ConnectError):
        return not isinstance(exc.__cause__, ssl.SSLCertVerificationError)
    return isinstance(exc, _AFTER_NOTHING) and response_bytes == 0


def parse_retry_after(value: str | None, date: str | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (RFC 9110 §10.2.3: ``delay-seconds`` or an
    ``HTTP-date``), or None when absent or not either.  A date is measured from the response's
    ``Date`` when it has one (so the two clocks' skew cancels out), else from this clock; a date
    already past means no wait."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit() and value.isascii():
        return float(value)
    at = parse_http_date(value)
    if at is None:
        return None
    sent = parse_http_date(date)
    now = float(sent) if sent is not None else time.time()
    return max(at - now, 0.0)


class RetryBudget:
    """The retries left to one request and the wait before each."""

    __slots__ = ("_policy", "_used", "_deadline")

    def __init__(self, policy: Retries, deadline: float | None) -> None:
        self._policy = policy
        self._used = 0
        self._deadline = deadline

    @property
    def used(self) -> int:
        return self._used

    def allows(self, method: str, content: RequestContent | None) -> bool:
        """May this request be retried at all (retries left, method, a body sent again)?"""
        policy = self._policy
        return (self._used < policy.count and method in policy.methods
                and (content is None or content.replayable))

    def after_error(self, method: str, content: RequestContent | None, exc: TransportError,
                    response_bytes: int) -> float | None:
        if not (self.allows(method, content) and retryable_error(exc, response_bytes)):
            return None
        return self._take(self._backoff())

    def after_response(self, method: str, content: RequestContent | None, resp: Any
                       ) -> float | None:
        if resp.status not in self._policy.statuses or not self.allows(method, content):
            return None
        headers = resp.headers
        wait = parse_retry_after(headers.get("retry-after"), headers.get("date"))
        if wait is None:
            wait = self._backoff()
        elif wait > self._policy.max_retry_after_s:
            return None
        return self._take(wait)

    def _backoff(self) -> float:
        """Full jitter: uniform below the exponential cap (the spread matters more than the
        mean when many clients failed at once)."""
        policy = self._policy
        cap = min(policy.max_backoff_s, policy.backoff_s * 2.0 ** min(self._used, 64))
        return random.uniform(0.0, cap)

    def _take(self, wait: float) -> float | None:
        """Spend one retry on ``wait`` seconds, unless the total deadline comes first."""
        deadline = self._deadline
        if deadline is not None and monotonic() + wait >= deadline:
            return None
        self._used += 1
        return wait
