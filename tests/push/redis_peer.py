"""Another process with a ``RedisBroker``, for the cross-process tests of tests/push.

    python -m tests.push.redis_peer LOOP publish URL CHANNEL FIRST COUNT [SIZE [HISTORY]]
        publish COUNT messages b"<i>" (i from FIRST, padded with "." to SIZE bytes) to
        CHANNEL with a broker keeping HISTORY messages per channel, then exit
    python -m tests.push.redis_peer LOOP claim URL CLIENT_ID GROUP TTL_S
        claim CLIENT_ID, add it to GROUP, print "ready <node id>", then sleep until killed
    python -m tests.push.redis_peer LOOP node URL SUB PUB COUNT EXPECT
        subscribe SUB, print "ready <node id>", wait for a line on stdin, publish COUNT
        messages to PUB, wait (30 s at most) for EXPECT messages on SUB, print one JSON line
        {"received": [...ints...], "lost": [[channel, count]...]}, exit

LOOP is "uvloop" or "asyncio".  Every line printed is flushed at once (the test reads them).
"""
from __future__ import annotations

import asyncio
import json
import sys
from typing import Callable

import uvloop

from cyserve.push.redis import RedisBroker


def payload(i: int, size: int = 0) -> bytes:
    return (b"%d" % i).ljust(size, b".")


def number(data: bytes) -> int:
    return int(data.rstrip(b"."))


async def publish(url: str, channel: str, first: int, count: int, size: int,
                  history: int) -> None:
    broker = RedisBroker(url, history=history)
    await broker.start(lambda channel, data: None, lambda channel, count: None)
    try:
        end = first + count
        for start in range(first, end, 1000):
            await asyncio.gather(*(broker.publish(channel, payload(i, size))
                                   for i in range(start, min(end, start + 1000))))
    finally:
        await broker.close()
    print("done", flush=True)


async def claim(url: str, client_id: str, group: str, ttl_s: float) -> None:
    broker = RedisBroker(url, presence_ttl_s=ttl_s)
    await broker.start(lambda channel, data: None, lambda channel, count: None)
    await broker.claim(client_id)
    await broker.group_add(group, client_id)
    print("ready", broker.node_id, flush=True)
    await asyncio.sleep(60)   # killed before (SIGKILL: nothing released)
    await broker.close()


async def node(url: str, sub: str, pub: str, count: int, expect: int) -> None:
    received: list[int] = []
    lost: list[list[object]] = []
    done = asyncio.Event()

    def on_message(channel: str, data: bytes) -> None:
        if channel == sub:
            received.append(number(data))
            if len(received) >= expect:
                done.set()

    broker = RedisBroker(url)
    await broker.start(on_message, lambda channel, count: lost.append([channel, count]))
    try:
        await broker.subscribe(sub)
        print("ready", broker.node_id, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        for start in range(0, count, 1000):
            await asyncio.gather(*(broker.publish(pub, payload(i))
                                   for i in range(start, min(count, start + 1000))))
        try:
            async with asyncio.timeout(30):
                await done.wait()
        except TimeoutError:
            pass   # reported: the parent checks what was received
    finally:
        await broker.close()
    print(json.dumps({"received": received, "lost": lost}), flush=True)


def main(argv: list[str]) -> None:
    loop_name, mode, url, *rest = argv
    factory: Callable[[], asyncio.AbstractEventLoop] = (
        uvloop.new_event_loop if loop_name == "uvloop" else asyncio.new_event_loop)
    with asyncio.Runner(loop_factory=factory) as runner:
        if mode == "publish":
            runner.run(publish(url, rest[0], int(rest[1]), int(rest[2]),
                               int(rest[3]) if len(rest) > 3 else 0,
                               int(rest[4]) if len(rest) > 4 else 10_000))
        elif mode == "claim":
            runner.run(claim(url, rest[0], rest[1], float(rest[2])))
        elif mode == "node":
            runner.run(node(url, rest[0], rest[1], int(rest[2]), int(rest[3])))
        else:
            raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
