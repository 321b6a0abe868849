"""A push hub spread over worker processes (and hosts) through Redis: a message published on one
worker reaches the group's members on every worker.  Walkthrough: examples/push_cluster.md.

    redis-server --port 6379 --save '' &
    cyserve examples.push_cluster:app --workers 2 --port 8000     # push on tcp://127.0.0.1:9000
    python examples/push_cluster_publish.py lobby '"hello"'         # from any other process

Environment (read when a worker imports this module, so each worker makes its own broker):

- ``PUSH_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``): the Redis every worker and host of
  the deployment shares;
- ``PUSH_PORT`` (default 9000): the TCP push port.  Under ``--workers`` each worker listens on it
  with ``SO_REUSEPORT`` and the kernel spreads new connections over them;
- ``PUSH_TOKEN`` (default ``cluster-demo``): the shared secret a client must present
  (credentials ``{"name": ..., "token": ...}``); a real deployment checks per-user credentials;
- ``PUSH_PUBLISH_TIMEOUT_S`` (default 5): how long a publish may wait for an unreachable Redis.

Serve it with the ``cyserve`` command: it imports the module in each worker after forking, so
each worker has a broker of its own (a node id of its own in Redis).  ``python
examples/push_cluster.py`` runs that command for you.

Commands a client may call (docs/push-protocol.md §7):

- ``whoami`` -> ``{"pid", "node", "client_id", "name"}``: which worker holds this connection;
- ``join`` / ``leave`` ``{"group"}``: membership, wherever the other members are;
- ``publish`` ``{"group", "data"}``: one Redis PUBLISH, delivered to the members on every worker;
- ``send`` ``{"to", "data"}``: a push to one client, routed to the worker that holds it;
- ``members`` ``{"group"}``: the client ids in the group, across the deployment.

While Redis is unreachable a publish waits (``PUSH_PUBLISH_TIMEOUT_S``) and is
delivered once Redis is back; past that it fails loudly, never silently: the command answers
ERROR ``unavailable`` and the HTTP endpoints 503, and the caller decides whether to retry.

HTTP, on every worker: ``GET /whoami`` (the pid answering), ``POST /groups/{group}`` (publish
the JSON body) and ``POST /clients/{client_id}`` (push the body to one client: 404 when it is
not connected anywhere).
"""
from __future__ import annotations

import hmac
import os
import re
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cyserve import App, HTTPError  # noqa: E402
from cyserve.errors import BrokerUnavailable  # noqa: E402
from cyserve.push import Hub, PushDenied, RedisBroker  # noqa: E402
from cyserve.push.connection import Connection  # noqa: E402

REDIS_URL = os.environ.get("PUSH_REDIS_URL", "redis://127.0.0.1:6379/0")
PUSH_PORT = int(os.environ.get("PUSH_PORT", "9000"))
TOKEN = os.environ.get("PUSH_TOKEN", "cluster-demo")
PUBLISH_TIMEOUT_S = float(os.environ.get("PUSH_PUBLISH_TIMEOUT_S", "5"))
# A group or user name: short, printable, no separators that would mean something in a channel.
NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")

app = App()
hub = Hub(broker=RedisBroker(REDIS_URL, publish_timeout_s=PUBLISH_TIMEOUT_S))
push = app.push(hub, port=PUSH_PORT, websocket="/push")


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or NAME.fullmatch(value) is None:
        raise PushDenied(f"{what} is 1 to 64 letters, digits, '_', '.' or '-'", "bad_request")
    return value


def _fields(data: Any, *names: str) -> list[Any]:
    if not isinstance(data, dict) or any(name not in data for name in names):
        raise PushDenied("expected an object with " + ", ".join(names), "bad_request")
    return [data[name] for name in names]


@hub.on_connect
async def authenticate(conn: Connection, credentials: Any) -> str:
    """The identity is the client's name; the token is the deployment's shared secret, compared
    in constant time.  A refusal says nothing more than ``unauthorized`` (§6.4)."""
    if not isinstance(credentials, dict):
        raise PushDenied("credentials are {\"name\": ..., \"token\": ...}")
    token = credentials.get("token")
    if not isinstance(token, str) or not hmac.compare_digest(token.encode(), TOKEN.encode()):
        raise PushDenied("unknown token")
    name = credentials.get("name")
    if not isinstance(name, str) or NAME.fullmatch(name) is None:
        raise PushDenied("a name is 1 to 64 letters, digits, '_', '.' or '-'")
    return name


@hub.command("whoami")
async def whoami(conn: Connection, data: Any) -> dict[str, Any]:
    return {"pid": os.getpid(), "node": hub.node_id, "client_id": conn.client_id,
            "name": conn.identity}


@hub.command("join")
async def join(conn: Connection, data: Any) -> dict[str, Any]:
    [group] = _fields(data, "group")
    await conn.join(_name(group, "a group"))
    return {"ok": True}


@hub.command("leave")
async def leave(conn: Connection, data: Any) -> dict[str, Any]:
    [group] = _fields(data, "group")
    await conn.leave(_name(group, "a group"))
    return {"ok": True}


@hub.command("publish")
async def publish(conn: Connection, data: Any) -> dict[str, Any]:
    group, value = _fields(data, "group", "data")
    try:
        await hub.publish(_name(group, "a group"), value)
    except BrokerUnavailable:
        raise PushDenied("the message bus is unreachable: not published", "unavailable") from None
    return {"ok": True}


@hub.command("send")
async def send(conn: Connection, data: Any) -> dict[str, Any]:
    to, value = _fields(data, "to", "data")
    if not isinstance(to, str):
        raise PushDenied("to is a client id", "bad_request")
    try:
        return {"delivered": await hub.send(to, value)}
    except BrokerUnavailable:
        raise PushDenied("the message bus is unreachable: not sent", "unavailable") from None


@hub.command("members")
async def members(conn: Connection, data: Any) -> list[str]:
    [group] = _fields(data, "group")
    return sorted(await hub.members(_name(group, "a group")))


@app.get("/whoami")
async def http_whoami(request: Any) -> dict[str, Any]:
    return {"pid": os.getpid(), "node": hub.node_id}


@app.post("/groups/{group}")
async def http_publish(request: Any, group: str) -> dict[str, Any]:
    if NAME.fullmatch(group) is None:
        raise HTTPError(400, "a group is 1 to 64 letters, digits, '_', '.' or '-'")
    message = await request.json()
    try:
        await hub.publish(group, message)
    except BrokerUnavailable:
        raise HTTPError(503, "the message bus is unreachable: not published",
                        {"Retry-After": "5"}) from None
    return {"ok": True}


@app.post("/clients/{client_id}")
async def http_send(request: Any, client_id: str) -> dict[str, Any]:
    message = await request.json()
    try:
        delivered = await hub.send(client_id, message)
    except BrokerUnavailable:
        raise HTTPError(503, "the message bus is unreachable: not sent",
                        {"Retry-After": "5"}) from None
    if not delivered:
        raise HTTPError(404, "that client is not connected")
    return {"delivered": True}


if __name__ == "__main__":
    from cyserve.cli import main

    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main(["examples.push_cluster:app", "--workers", os.environ.get("WORKERS", "2"),
          "--port", os.environ.get("PORT", "8000"), *sys.argv[1:]])
