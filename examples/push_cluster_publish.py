"""Publish to the push cluster of examples/push_cluster.py from any process (a script, a cron
job, a task queue's worker) that serves nothing: a ``Hub`` on the same ``RedisBroker``, started
without a listener, is a node of the deployment like the workers.

    python examples/push_cluster_publish.py --group lobby '{"text": "hello"}'  # to a group
    python examples/push_cluster_publish.py --to=CLIENT_ID '"just you"'        # to one client
    python examples/push_cluster_publish.py --group lobby --count 10000        # {"n": 0..9999}

The message is JSON (``'"text"'``, ``'{"a": 1}'``).  Write ``--to=ID``: a client id may begin
with ``-``.  A group publish is one Redis round trip whatever the number of members (the
workers fan it out); ``--count`` sends a burst of ``{"n": i}`` messages, queued on the broker's
one connection in order and written in batches.
A push to one client prints whether it was delivered (the worker holding the client answers
through Redis).  The last line of output is a JSON summary; the exit status is 0 when everything
was published (and, with ``--to``, delivered), 1 when a client was not connected, 2 when Redis
could not be reached within the broker's ``publish_timeout_s`` (said on stderr: nothing is
dropped silently; messages of a burst before the failure may have been published).
``PUSH_REDIS_URL`` as for the cluster.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cyserve.errors import BrokerUnavailable  # noqa: E402
from cyserve.push import Hub, RedisBroker  # noqa: E402

REDIS_URL = os.environ.get("PUSH_REDIS_URL", "redis://127.0.0.1:6379/0")
# A burst keeps at most this many publishes queued at once: under the broker's publish_buffer,
# so no publish waits for room and the queue order is the call order.
WINDOW = 1000


async def publish(hub: Hub, group: str, message: Any, count: int | None) -> dict[str, Any]:
    started = time.perf_counter()
    if count is None:
        await hub.publish(group, message)
        sent = 1
    else:
        for first in range(0, count, WINDOW):
            # Each publish is queued in the order its task first runs (the order made here);
            # gather waits for the window before the next is queued.
            await asyncio.gather(*(hub.publish(group, {"n": n})
                                   for n in range(first, min(count, first + WINDOW))))
        sent = count
    return {"published": sent, "group": group, "seconds": round(time.perf_counter() - started, 3)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--group", help="the group to publish to")
    target.add_argument("--to", action="append", metavar="CLIENT_ID",
                        help="push to this client instead (repeatable)")
    parser.add_argument("message", nargs="?", default="null", help="the message, as JSON")
    parser.add_argument("--count", type=int, help="a burst of COUNT messages {\"n\": i}")
    parser.add_argument("--redis", default=REDIS_URL, help="the Redis URL (PUSH_REDIS_URL)")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                        help="the event loop (default uvloop)")
    args = parser.parse_args(argv)
    if args.count is not None and (args.to or args.count < 1):
        parser.error("--count is a positive number of messages to a --group")
    try:
        message = json.loads(args.message)
    except ValueError as exc:
        parser.error(f"the message is not JSON: {exc}")
    factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    if args.loop == "uvloop":
        import uvloop
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        try:
            summary = runner.run(run(args.redis, args.group, args.to or [], message, args.count))
        except BrokerUnavailable as exc:
            print(f"push_cluster_publish: {exc}", file=sys.stderr)
            return 2
    print(json.dumps(summary), flush=True)
    return 0 if all(summary.get("delivered", {}).values()) else 1


async def run(url: str, group: str | None, to: list[str], message: Any,
              count: int | None) -> dict[str, Any]:
    hub = Hub(broker=RedisBroker(url))
    await hub.start()
    try:
        if group is not None:
            return await publish(hub, group, message, count)
        return {"delivered": {client_id: await hub.send(client_id, message) for client_id in to}}
    finally:
        await hub.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
