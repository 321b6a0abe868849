"""Correctness gate before any measurement: right status, type and body, also when pipelined."""
from __future__ import annotations

import http.client
import json
import socket
from typing import IO, Any

from procs import HOST, BenchError

# path -> (content type prefix, body check)
EXPECTED: dict[str, tuple[str, Any]] = {
    "/plaintext": ("text/plain", lambda body: body == b"Hello, World!"),
    "/json": ("application/json", lambda body: json.loads(body) == {"message": "Hello, World!"}),
}
_PIPELINE_DEPTH = 16


def check_server(name: str, port: int) -> None:
    """One request per path on its own connection, then a pipelined burst mixing the paths."""
    for path in EXPECTED:
        conn = http.client.HTTPConnection(HOST, port, timeout=5.0)
        try:
            conn.request("GET", path)
            _check_response(name, path, conn.getresponse())
        finally:
            conn.close()
    _check_pipelined(name, port)


def _check_response(name: str, path: str, response: http.client.HTTPResponse) -> None:
    content_type, body_ok = EXPECTED[path]
    body = response.read()
    got_type = response.getheader("content-type", "")
    if response.status != 200 or not got_type.startswith(content_type) or not body_ok(body):
        raise BenchError(f"{name} GET {path}: {response.status} {got_type!r} {body[:200]!r}")


def _check_pipelined(name: str, port: int) -> None:
    paths = [list(EXPECTED)[i % len(EXPECTED)] for i in range(_PIPELINE_DEPTH)]
    burst = b"".join(f"GET {p} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode() for p in paths)
    with socket.create_connection((HOST, port), timeout=5.0) as sock:
        sock.sendall(burst)  # one write: every request is in flight before any answer (RFC 9112 §9.3.2)
        stream = _SharedStream(sock.makefile("rb"))
        for path in paths:  # answers must come back in request order
            response = http.client.HTTPResponse(stream)  # type: ignore[arg-type]
            response.begin()
            _check_response(f"{name} (pipelined)", path, response)


class _SharedStream:
    """Lets consecutive HTTPResponse objects read pipelined answers from one buffered stream."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def makefile(self, mode: str) -> _Unclosable:
        return _Unclosable(self._stream)


class _Unclosable:
    """HTTPResponse closes its file at the end of a body; the next response still needs it."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def close(self) -> None:
        pass
