"""cyserve side of bench/e2e: /plaintext, /json, /client and /stream (for slow_reader.py).

Run: python bench/e2e/apps/cyserve_app.py --port 8000  (the harness starts it for you), or
through the command line: cyserve cyserve_app:app --app-dir bench/e2e/apps --port 8000.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator

from cyserve import App, Request, Response, StreamResponse

STREAM_CHUNK_BYTES = 64 * 1024
STREAM_TOTAL_BYTES = 600 * 1024 * 1024

app = App()


@app.get("/plaintext")
async def plaintext(request: Request) -> Response:
    return Response(b"Hello, World!", content_type="text/plain")


@app.get("/json")
async def json_(request: Request) -> dict[str, str]:
    return {"message": "Hello, World!"}


@app.get("/client")
async def client(request: Request) -> Response:
    # The client address the server settled on: what the correctness gate reads to prove that
    # --proxy-headers took the trusted proxy's X-Forwarded-For (or, off, ignored it).
    found = request.client
    return Response((found[0] if found else "-").encode(), content_type="text/plain")


@app.get("/stream")
async def stream(request: Request) -> StreamResponse:
    return StreamResponse(_chunks(), content_type="application/octet-stream")


async def _chunks() -> AsyncIterator[bytes]:
    # A fresh bytes object per chunk, so a server that buffers instead of pausing grows its RSS.
    produced_bytes = 0
    try:
        while produced_bytes < STREAM_TOTAL_BYTES:
            produced_bytes += STREAM_CHUNK_BYTES
            yield b"x" * STREAM_CHUNK_BYTES
    finally:
        report_stream_end(produced_bytes)


def report_stream_end(produced_bytes: int) -> None:
    """The line slow_reader.py waits for: proof that the producer stopped, and how far it got."""
    complete = produced_bytes >= STREAM_TOTAL_BYTES
    print(f"stream-end produced_bytes={produced_bytes} complete={complete}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # As its uvicorn peer runs: no access log (the --access-log mode of run.py measures it).
    app.run(host=args.host, port=args.port, access_log=False)
