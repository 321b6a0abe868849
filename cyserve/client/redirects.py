"""Redirect policy (RFC 9110 §15.4): what the next hop sends, or None to stop following.

- 303 turns any method but HEAD into GET; 301 and 302 turn POST into GET (what every browser
  does, and RFC 9110 §15.4.2/§15.4.3 allow).  The body and the fields that describe it go.
- 307 and 308 keep the method and the body, but only a body that can be sent again (bytes, a
  file, a path); a one-shot stream stops the chain and the 3xx response is returned as is.
- When the origin (scheme, host, port) changes, Authorization, Cookie and a caller's Host are
  dropped (RFC 9110 §15.4: credentials are for the origin they were given to); cookies from the
  jar are recomputed for each hop's URL anyway.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from cyserve.client.content import RequestContent
from cyserve.errors import RemoteProtocolError
from cyserve.client.urls import join_location, split_url

__all__ = ["Hop", "next_hop"]

_BODY_FIELDS = frozenset({"content-type", "content-length", "transfer-encoding", "content-encoding"})
_CREDENTIAL_FIELDS = frozenset({"authorization", "cookie", "host"})


class Hop(NamedTuple):
    method: str
    url: str
    headers: list[tuple[str, str]]
    content: RequestContent | None


def next_hop(hop: Hop, status: int, location: str | None) -> Hop | None:
    if location is None or status not in (301, 302, 303, 307, 308):
        return None
    url = join_location(hop.url, location)
    try:
        new_origin = split_url(url).origin
    except ValueError as exc:
        raise RemoteProtocolError(f"the redirect Location {location!r} is not usable: {exc}") from None
    method, content, headers = hop.method, hop.content, hop.headers
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method = "GET"
        content = None
        headers = [(k, v) for k, v in headers if k.lower() not in _BODY_FIELDS]
    elif content is not None and not content.replayable:
        return None
    if new_origin != split_url(hop.url).origin:
        headers = [(k, v) for k, v in headers if k.lower() not in _CREDENTIAL_FIELDS]
    return Hop(method, url, headers, content)


def redirect_location(response: Any) -> str | None:
    location: str | None = response.headers.get("location")
    return location
