"""Seeded differential fuzzing of the chunked decoder (RFC 9112 §7.1).

Mutations of valid chunked bodies must either decode or raise ProtocolError (nothing else), the
same way under every split, and agree with httptools (llhttp) unless the first point where the two
diverge is one of the intended differences in ``tests/vectors/chunked_differences.py``.

``CYSERVE_FUZZ_CASES`` sets the number of cases (default 3000); ``CYSERVE_FUZZ_SEED`` the seed.
"""
from __future__ import annotations

import collections
import os
import random

import pytest

from tests.vectors.chunked_differences import DIFFERENCES, HTTPTOOLS
from tests.vectors.chunked_vectors import DONE, ERROR

from .test_chunked import Outcome, bytewise_cuts, decode_split, run_httptools

CASES = int(os.environ.get("CYSERVE_FUZZ_CASES", "3000"))
SEED = int(os.environ.get("CYSERVE_FUZZ_SEED", "20240607"))
BATCHES = 20

_INTERESTING = b"\r\n \t;=\"\\:0123456789abcdefABCDEFxX-+g{\x00\x01\x7f\x80\xff"
_DATA_ALPHABET = b"\r\n0123456789abcdef;= \t\"\\:xyz"
_NAMES = (b"A", b"X-Sum", b"Expires", b"content-length", b"Transfer-Encoding", b"Server-Timing")
_TOKENS = (b"a", b"name", b"x-1", b"v", b"0", b"!#$%&'*+-.^_`|~")


def _extensions(rng: random.Random) -> bytes:
    if rng.random() < 0.7:
        return b""
    out = b""
    for _ in range(rng.randint(1, 2)):
        bws = (lambda: rng.choice((b" ", b"\t"))) if rng.random() < 0.05 else (lambda: b"")
        out += bws() + b";" + bws() + rng.choice(_TOKENS)
        kind = rng.random()
        if kind < 0.4:
            out += bws() + b"=" + bws() + rng.choice(_TOKENS)
        elif kind < 0.7:
            out += bws() + b"=" + bws() + b'"' + rng.choice((b"", b"x y", b'\\"q', b"\t\x80")) + b'"'
    return out


def _data(rng: random.Random, size: int) -> bytes:
    if rng.random() < 0.5:
        return rng.randbytes(size)
    return bytes(rng.choice(_DATA_ALPHABET) for _ in range(size))


def _trailers(rng: random.Random) -> bytes:
    lines = b""
    for _ in range(rng.choice((0, 0, 1, 2))):
        value = rng.choice((b"", b"v", b" spaced value ", b"\tx\x80", b"5", b"chunked"))
        lines += rng.choice(_NAMES) + b":" + rng.choice((b"", b" ")) + value + b"\r\n"
    return lines


def valid_body(rng: random.Random) -> bytes:
    out = b""
    for _ in range(rng.randint(0, 5)):
        size = rng.choice((1, 2, 3, 5, 10, 16, 17, rng.randint(1, 64)))
        size_text = format(size, rng.choice("xX")).encode()
        if rng.random() < 0.15:
            size_text = b"0" * rng.randint(1, 4) + size_text
        out += size_text + _extensions(rng) + b"\r\n" + _data(rng, size) + b"\r\n"
    out += b"0" * rng.randint(1, 2) + _extensions(rng) + b"\r\n" + _trailers(rng) + b"\r\n"
    if rng.random() < 0.2:
        out += rng.choice((b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"\x00junk", b"0\r\n\r\n"))
    return out


def mutate(rng: random.Random, body: bytes) -> bytes:
    data = bytearray(body)
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(data) + 1)
        kind = rng.randrange(9)
        if kind == 0 and at < len(data):
            data[at] = rng.choice(_INTERESTING)
        elif kind == 1:
            data[at:at] = bytes([rng.choice(_INTERESTING)])
        elif kind == 2 and at < len(data):
            del data[at]
        elif kind == 3:
            end = min(len(data), at + rng.randint(1, 8))
            data[at:at] = data[at:end]
        elif kind == 4:
            del data[at:at + rng.randint(1, 8)]
        elif kind == 5:
            crlf = [i for i in range(len(data) - 1) if data[i:i + 2] == b"\r\n"]
            if crlf:
                i = rng.choice(crlf)
                data[i:i + 2] = rng.choice((b"\n", b"\r", b"\r\r\n", b"\n\r"))
        elif kind == 6:
            data = data[:at]
        elif kind == 7:
            data[at:at] = rng.choice((b"f" * 16, b"4" + b"0" * 15, b"0" * 20, b"F" * 17))
        elif at < len(data):
            data[at] = data[at] ^ 0x20  # flips letter case, SP <-> NUL, "\r" <-> "-"
    return bytes(data)


def fuzz_case(index: int) -> bytes:
    rng = random.Random(SEED * 1_000_003 + index)
    body = valid_body(rng)
    return body if rng.random() < 0.1 else mutate(rng, body)


def explain_disagreement(body: bytes, ours: Outcome, theirs: Outcome) -> str | None:
    """None when cyserve and httptools agree; else the intended difference that explains the first
    point where they diverge.  Fails when no listed difference explains it."""
    our_at = ours.error_at if ours.verdict == ERROR else None
    their_at = theirs.error_at if theirs.verdict == ERROR else None
    if our_at is None and their_at is None:
        assert ours.comparable() == theirs.comparable(), f"unexplained: {body!r} {ours} {theirs}"
        return None
    if our_at == their_at:
        return None
    if their_at is None or (our_at is not None and our_at < their_at):
        first, message, at = "cyserve", ours.message, our_at
    else:
        first, message, at = HTTPTOOLS, theirs.message, their_at
    lines = body[:at + 1].lower().split(b"\n")[-2:]
    for difference in DIFFERENCES.values():
        if (difference.rejected_first_by == first
                and any(m in message for m in difference.messages)
                and (difference.bytes_at is None or body[at] in difference.bytes_at)
                and (not difference.line_starts
                     or any(line.startswith(difference.line_starts) for line in lines))):
            return difference.id
    raise AssertionError(f"unexplained disagreement at byte {at} ({first} rejected first: "
                         f"{message!r}): {body!r}\n cyserve: {ours}\n httptools: {theirs}")


def _batch_indices(batch: int) -> range:
    size = -(-CASES // BATCHES)
    return range(batch * size, min(CASES, (batch + 1) * size))


@pytest.mark.parametrize("batch", range(BATCHES))
def test_mutated_bodies_decode_or_raise_protocol_error_the_same_under_every_split(batch: int):
    for index in _batch_indices(batch):
        body = fuzz_case(index)
        rng = random.Random(index)
        bytewise = decode_split(body, bytewise_cuts(body))
        expected = bytewise.without_position()
        assert decode_split(body, []).without_position() == expected, (index, body)
        for _ in range(2):
            cuts = sorted(rng.sample(range(1, len(body)), rng.randint(0, min(5, len(body) - 1)))) \
                if len(body) > 1 else []
            assert decode_split(body, cuts).without_position() == expected, (index, body, cuts)


@pytest.mark.parametrize("batch", range(BATCHES))
def test_mutated_bodies_agree_with_httptools_except_listed_differences(batch: int):
    for index in _batch_indices(batch):
        body = fuzz_case(index)
        explain_disagreement(body, decode_split(body, bytewise_cuts(body)), run_httptools(body))


def test_fuzz_corpus_reaches_every_verdict_and_the_fuzzable_differences():
    verdicts: collections.Counter[str] = collections.Counter()
    explained: collections.Counter[str | None] = collections.Counter()
    for index in range(min(CASES, 3000)):
        body = fuzz_case(index)
        ours = decode_split(body, bytewise_cuts(body))
        verdicts[ours.verdict] += 1
        explained[explain_disagreement(body, ours, run_httptools(body))] += 1
    total = sum(verdicts.values())
    assert verdicts[DONE] > total // 10 and verdicts[ERROR] > total // 10, verdicts
    assert explained[None] > total * 0.8, explained
    for difference in ("bws-in-chunk-extension", "empty-chunk-extension-value",
                       "chunk-size-limit", "framing-field-in-trailers"):
        assert explained[difference] > 0, (difference, explained)
