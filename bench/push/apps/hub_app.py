"""cyserve side of bench/push: an App serving a push ``Hub`` over TCP and WebSocket.

- the push protocol on a TCP port (``BENCH_PUSH_PORT``, default 0: a free port) and at
  ``/push`` (WebSocket); ``GET /push-port`` answers the TCP port the hub listens on, ``GET
  /plaintext`` tells the harness the server is up;
- the broker: in-process by default; ``RedisBroker(BENCH_PUSH_REDIS)`` when that is set (a
  ``redis://`` URL), so several of these processes are the workers of one deployment;
- commands (the ``bytes`` codec: data and results are bytes):
  ``bench.join``: the caller joins the group ``bench``;
  ``bench.publish``: the data (a 100-byte message) is published to the group;
  ``bench.send`` / ``bench.send_ack``: the data's first 100 bytes are pushed to one client, the
  rest of it naming that client (``hub.send``; ``_ack``: ``ack=True``, the call answers once the
  client ACKed); the result is ``b"\\x01"`` when delivered.
- every client is accepted (the auth hook returns a fixed identity: no credentials to check),
  and the connection limit is raised past the benchmark's 10,000 members: capacity is what is
  measured, every other limit is ``PushLimits``' default.

Run: python bench/push/apps/hub_app.py --port 8000  (the harness starts it for you).
"""
from __future__ import annotations

import argparse
import os
from typing import Any

from cyserve import App, Request, Response
from cyserve.push import Hub, PushLimits

GROUP = "bench"
MESSAGE_BYTES = 100
MAX_CONNECTIONS = 100_000  # above any member count the benchmarks open


def _broker() -> Any:
    url = os.environ.get("BENCH_PUSH_REDIS")
    if not url:
        return None  # the Hub's in-process LocalBroker
    from cyserve.push import RedisBroker
    return RedisBroker(url)


hub = Hub(broker=_broker(), limits=PushLimits(max_connections=MAX_CONNECTIONS))
app = App()
mount = app.push(hub, port=int(os.environ.get("BENCH_PUSH_PORT", "0")), websocket="/push")


@app.get("/plaintext")
async def plaintext(request: Request) -> Response:
    return Response(b"ok", content_type="text/plain")


@app.get("/push-port")
async def push_port(request: Request) -> dict[str, Any]:
    address = mount.address
    return {"port": address[1] if address else None, "pid": os.getpid()}


@hub.on_connect
async def accept(conn: Any, credentials: Any) -> str:
    return "bench"


@hub.command("bench.join")
async def join(conn: Any, data: bytes) -> bytes:
    await hub.join(conn.client_id, GROUP)
    return b""


@hub.command("bench.publish")
async def publish(conn: Any, data: bytes) -> bytes:
    await hub.publish(GROUP, data)
    return b""


@hub.command("bench.send")
async def send(conn: Any, data: bytes) -> bytes:
    delivered = await hub.send(data[MESSAGE_BYTES:].decode(), data[:MESSAGE_BYTES])
    return b"\x01" if delivered else b"\x00"


@hub.command("bench.send_ack")
async def send_ack(conn: Any, data: bytes) -> bytes:
    delivered = await hub.send(data[MESSAGE_BYTES:].decode(), data[:MESSAGE_BYTES], ack=True, timeout_s=10.0)
    return b"\x01" if delivered else b"\x00"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app.run(host=args.host, port=args.port)
