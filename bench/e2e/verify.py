"""Correctness gate before any measurement: right status, type and body, also when pipelined."""
from __future__ import annotations

import http.client
import json
import socket
from typing import IO, Any

from procs import FORWARDED_CLIENT, FORWARDED_HEADERS, HOST, BenchError

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


def check_client(name: str, port: int, *, proxy_headers: bool) -> None:
    """GET /client with wrk's proxy headers: the server must report the forwarded client when
    it trusts this peer's proxy headers, and the peer itself when proxy headers are off."""
    expected = FORWARDED_CLIENT if proxy_headers else HOST
    conn = http.client.HTTPConnection(HOST, port, timeout=5.0)
    try:
        conn.request("GET", "/client", headers=dict(line.split(": ", 1) for line in FORWARDED_HEADERS))
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 200 or body != expected.encode():
        raise BenchError(f"{name} GET /client with X-Forwarded-For (proxy headers "
                         f"{'on' if proxy_headers else 'off'}): {response.status} {body[:200]!r}, "
                         f"expected {expected!r}")


def check_access_log(name: str, output: str, *, access_log: bool) -> None:
    """After check_server: an access log that is on has a line for GET /plaintext (both
    servers' lines carry ``"GET /plaintext HTTP/1.1" 200``); one that is off wrote nothing."""
    logged = '"GET /plaintext HTTP/1.1" 200' in output
    if access_log and not logged:
        raise BenchError(f"{name}: access log on, but no line for GET /plaintext in its "
                         f"stdout:\n{output[-2000:]}")
    if not access_log and output.strip():
        raise BenchError(f"{name}: access log off, but it wrote to stdout:\n{output[-2000:]}")


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
