"""Push codec throughput: 100-byte pushes encoded and decoded, frames per second, in one process.

    python bench/push/codec.py [--frames 100000] [--rounds 5] [--chunk 65536] [--json out.json]

For each framing (TCP binary, TCP JSON lines, WebSocket binary, WebSocket text):

- ``encode``: ``encode(KIND_PUSH, seq, "room:lobby", payload, 0, framing)`` per frame (the general
  encoder; in the JSON framings it serialises the payload every time);
- ``template``: ``PushTemplate(...).frame(seq)`` per frame (a group publish: the payload encoded
  once, then one small head per member, docs/push-protocol.md §12);
- ``decode``: a client's ``FrameDecoder`` fed the encoded stream in ``--chunk``-byte reads (TCP)
  or one message at a time (WebSocket), making a ``Frame`` (name, payload) per push.

The payload is 100 bytes: raw bytes in the binary framings, a JSON object whose compact encoding
is 100 bytes in the JSON ones.  Each figure is the median of ``--rounds`` rounds after a warm-up
round, in frames per second of one core (the process is pinned to its first allowed CPU).
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import orjson

from cyserve._core.push.frames import (
    FRAMING_BINARY, FRAMING_JSON_LINES, FRAMING_WS_BINARY, FRAMING_WS_TEXT, KIND_PUSH,
    FrameDecoder, PushTemplate, encode,
)

FRAMINGS = {"binary": FRAMING_BINARY, "json-lines": FRAMING_JSON_LINES,
            "ws-binary": FRAMING_WS_BINARY, "ws-text": FRAMING_WS_TEXT}
GROUP = "room:lobby"
PAYLOAD_BYTES = 100


def payload_for(framing: int) -> object:
    if framing in (FRAMING_BINARY, FRAMING_WS_BINARY):
        return bytes(range(PAYLOAD_BYTES))
    text = orjson.dumps({"from": "Xq2Vn0aLr4bQe8mT1yZc9w", "text": ""})
    value = {"from": "Xq2Vn0aLr4bQe8mT1yZc9w", "text": "x" * (PAYLOAD_BYTES - len(text))}
    assert len(orjson.dumps(value)) == PAYLOAD_BYTES
    return value


def timed(fn: Callable[[], int], rounds: int) -> float:
    """Median frames/s of ``rounds`` runs of ``fn`` (which returns its frame count)."""
    fn()
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        count = fn()
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def bench_framing(name: str, framing: int, count: int, rounds: int, chunk: int) -> dict[str, float]:
    payload = payload_for(framing)
    frames = [encode(KIND_PUSH, seq, GROUP, payload, 0, framing) for seq in range(1, count + 1)]
    stream = b"".join(frames)
    ws = framing in (FRAMING_WS_BINARY, FRAMING_WS_TEXT)
    messages = [f.decode() for f in frames] if framing == FRAMING_WS_TEXT else frames

    def run_encode() -> int:
        for seq in range(1, count + 1):
            encode(KIND_PUSH, seq, GROUP, payload, 0, framing)
        return count

    def run_template() -> int:
        template = PushTemplate(GROUP, payload, 0, framing)
        frame = template.frame
        for seq in range(1, count + 1):
            frame(seq)
        return count

    def run_decode() -> int:
        decoder = FrameDecoder(1 << 20, framing, client=True)
        got = 0
        if ws:
            feed = decoder.feed
            for message in messages:
                got += len(feed(message))
        else:
            view = memoryview(stream)
            for at in range(0, len(stream), chunk):
                got += len(decoder.feed(view[at:at + chunk]))
        assert got == count, (name, got)
        return got

    return {"frame_bytes": len(frames[0]),
            "encode": timed(run_encode, rounds),
            "template": timed(run_template, rounds),
            "decode": timed(run_decode, rounds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=65536)
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    results = {name: bench_framing(name, framing, args.frames, args.rounds, args.chunk)
               for name, framing in FRAMINGS.items()}
    versions = {"python": platform.python_version(), "orjson": orjson.__version__,
                "cython": importlib.metadata.version("Cython"), "machine": platform.machine()}
    print(f"push codec, {PAYLOAD_BYTES}-byte payloads, {args.frames} frames x {args.rounds} "
          f"rounds (median), frames/s on one core; {versions}")
    print(f"{'framing':<12}{'bytes':>7}{'encode':>14}{'template':>14}{'decode':>14}")
    for name, r in results.items():
        print(f"{name:<12}{r['frame_bytes']:>7}{r['encode']:>14,.0f}{r['template']:>14,.0f}"
              f"{r['decode']:>14,.0f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"args": vars(args), "versions": versions, "results": results}, out,
                      indent=2)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
