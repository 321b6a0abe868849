"""Seeded fuzzing of the head parser (RFC 9112 §2-6) -- h11's invariant plus a differential check.

Random mutations of valid heads (byte flips, inserted CR/LF/NUL/SP/HTAB/colon/comma, deletions,
truncations, duplicated or swapped lines, spliced framing fields) must either parse or raise
ProtocolError -- never another exception -- with the same outcome under every split, and reach the
same accept/reject verdict as httptools unless a difference listed in
``tests/vectors/parser_differences.py`` explains the disagreement.

``CYSERVE_FUZZ_CASES`` sets the number of request cases (default 3000; responses get a third of it);
``CYSERVE_FUZZ_SEED`` the seed.
"""
from __future__ import annotations

import collections
import os
import random

import pytest

from tests.vectors.parser_differences import explain, httptools_rejects
from tests.vectors.parser_vectors import REQUEST_VECTORS, RESPONSE_VECTORS, Outcome, parse_in_pieces

CASES = int(os.environ.get("CYSERVE_FUZZ_CASES", "3000"))
SEED = int(os.environ.get("CYSERVE_FUZZ_SEED", "9112"))
BATCHES = 10

_INSERTS = (b"\r", b"\n", b"\r\n", b"\x00", b" ", b"\t", b":", b",", b"\x7f", b"\x80", b"\x01", b"?",
            b"/", b"*", b"\r\n ", b"\r\n\r\n")
_FIELDS = (b"Content-Length: 5", b"Content-Length: 0", b"Content-Length: +1", b"Transfer-Encoding: chunked",
           b"Transfer-Encoding: gzip", b"Host: b", b"Host:", b"Connection: close", b"Connection: upgrade",
           b"Upgrade: websocket", b"Expect: 100-continue", b"X-Empty:", b"Content-Length: 99999999999999999999")


def _bases(vectors: list) -> list[bytes]:
    return [v.raw for v in vectors if v.status is None and not v.limits and len(v.raw) < 600]


_REQUEST_BASES = _bases(REQUEST_VECTORS)
_RESPONSE_BASES = _bases(RESPONSE_VECTORS)


def _mutate(rng: random.Random, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(8)
        pos = rng.randrange(len(data) + 1) if data else 0
        if kind == 0 and data:  # flip a byte to anything
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif kind == 1:  # insert a byte the grammar cares about
            data[pos:pos] = rng.choice(_INSERTS)
        elif kind == 2 and data:  # delete a run
            del data[pos:pos + rng.randint(1, 3)]
        elif kind == 3:  # truncate
            del data[pos:]
        elif kind in (4, 5):  # duplicate or swap field lines
            lines = bytes(data).split(b"\r\n")
            if len(lines) > 3:
                i, j = rng.randrange(1, len(lines) - 2), rng.randrange(1, len(lines) - 2)
                if kind == 4:
                    lines.insert(j, lines[i])
                else:
                    lines[i], lines[j] = lines[j], lines[i]
                data = bytearray(b"\r\n".join(lines))
        elif kind == 6:  # splice in a framing or connection field
            lines = bytes(data).split(b"\r\n")
            lines.insert(rng.randrange(1, max(len(lines), 2)), rng.choice(_FIELDS))
            data = bytearray(b"\r\n".join(lines))
        else:  # change a character's case
            if data:
                i = min(pos, len(data) - 1)
                data[i:i + 1] = bytes(data[i:i + 1]).swapcase()
    return bytes(data)


def _complete(raw: bytes, mode: str) -> bytes:
    """Drop leading empty lines, as the protocol does before scanning (RFC 9112 §2.2), and give a
    truncated input an end, so both parsers reach a verdict on the same bytes."""
    while raw.startswith(b"\r\n"):
        raw = raw[2:]
    whole = parse_in_pieces(raw, mode=mode)
    if whole.status is None and whole.end < 0:
        return raw + b"\r\n\r\n"
    return raw


def _check(raw: bytes, mode: str, rng: random.Random, mismatches: collections.Counter) -> str | None:
    whole = parse_in_pieces(raw, mode=mode)
    plans = [list(range(1, len(raw))), sorted(rng.sample(range(1, len(raw)), min(3, len(raw) - 1)))]
    for cuts in plans:
        outcome = parse_in_pieces(raw, cuts, mode=mode)
        if outcome != whole:
            return f"split {cuts} gives {outcome.status}, whole gives {whole.status}: {raw!r}"
    if whole.status is None and whole.end < 0:
        return f"complete input judged incomplete: {raw!r}"
    ours = whole.status is not None
    # llhttp sees the head cyserve delimited, or everything when the scanner refused early.
    theirs = httptools_rejects(raw[:whole.end] if whole.end >= 0 else raw, mode)
    if ours != theirs:
        diff = explain(raw, mode, "httptools", ours)
        if diff is None:
            return (f"cyserve {'rejects' if ours else 'accepts'} ({whole.status}), httptools does "
                    f"not, and no listed difference explains it: {raw!r}")
        mismatches[diff.id] += 1
    return None


def _fuzz(mode: str, bases: list[bytes], cases: int, batch: int) -> None:
    rng = random.Random(f"{SEED}-{mode}-{batch}")
    mismatches: collections.Counter = collections.Counter()
    failures = []
    for _ in range(cases):
        raw = _complete(_mutate(rng, rng.choice(bases)), mode)
        if not raw:
            continue
        problem = _check(raw, mode, rng, mismatches)
        if problem:
            failures.append(problem)
    assert not failures, f"{len(failures)} failures, first: {failures[:3]}"


@pytest.mark.parametrize("batch", range(BATCHES))
def test_fuzzed_request_heads_parse_or_raise_protocol_error_consistently(batch: int) -> None:
    _fuzz("request", _REQUEST_BASES, CASES // BATCHES, batch)


@pytest.mark.parametrize("batch", range(BATCHES))
def test_fuzzed_response_heads_parse_or_raise_protocol_error_consistently(batch: int) -> None:
    _fuzz("response", _RESPONSE_BASES, CASES // 3 // BATCHES, batch)


def test_fuzz_mutations_reach_both_verdicts() -> None:
    """The mutator is not trivially breaking (or sparing) every head."""
    rng = random.Random(SEED)
    verdicts = collections.Counter(
        parse_in_pieces(_complete(_mutate(rng, rng.choice(_REQUEST_BASES)), "request")).status for _ in range(300))
    assert verdicts[None] > 20 and sum(verdicts.values()) - verdicts[None] > 100
    assert {400, 501} <= set(verdicts)


def test_outcome_type_is_shared() -> None:
    assert Outcome._fields == ("status", "end", "fields")
