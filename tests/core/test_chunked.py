"""ChunkedDecoder and the chunk encoder (RFC 9112 §7.1): vectors under every split, differential
checks against httptools (llhttp) and h11, round trips, and the decoder's programmer-facing rules.

The helpers here (``decode_split``, ``run_httptools``, ``run_h11``) are shared with the fuzz test.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import h11
import httptools
import pytest

from cyserve._core.http.chunked import (
    LAST_CHUNK,
    MAX_CHUNK_SIZE,
    MAX_SIZE_LINE_BYTES,
    ChunkedDecoder,
    chunk_header,
    encode_chunk,
)
from cyserve.errors import ProtocolError
from tests.vectors.chunked_differences import DIFFERENCES, H11, HTTPTOOLS
from tests.vectors.chunked_vectors import DONE, ERROR, INCOMPLETE, VECTORS, ChunkedVector

HEAD = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"


@dataclass(frozen=True)
class Outcome:
    """What a decoder made of one body.  ``error_at`` (the index of the byte whose arrival raised)
    is only known when the body was fed one byte at a time, and never compared across splits."""

    verdict: str
    data: bytes | None = None  # None for errors: data decoded before an error is not compared
    consumed: int | None = None
    trailers: tuple[tuple[bytes, bytes], ...] | None = None
    status: int | None = None
    message: str | None = None
    error_at: int | None = None

    def without_position(self) -> Outcome:
        return Outcome(self.verdict, self.data, self.consumed, self.trailers, self.status,
                       self.message)

    def comparable(self) -> tuple:
        """The part a reference parser can be compared on (no status, no message)."""
        return (self.verdict, self.data, self.consumed, self.trailers)


# --- cyserve -------------------------------------------------------------------------------------

def decode_split(body: bytes, cuts: list[int], max_trailer_bytes: int = 8192) -> Outcome:
    """Decode ``body`` fed in the pieces that ``cuts`` (sorted inner indices) delimit."""
    decoder = ChunkedDecoder(max_trailer_bytes)
    pieces: list[bytes] = []
    bounds = [0, *cuts, len(body)]
    for start, end in zip(bounds, bounds[1:]):
        try:
            out, consumed = decoder.decode(body[start:end])
        except ProtocolError as exc:
            return Outcome(ERROR, status=exc.status, message=str(exc),
                           error_at=start if end - start == 1 else None)
        assert all(type(piece) is bytes and piece for piece in out)
        pieces.extend(out)
        if decoder.done:
            assert decoder.trailers is not None
            return Outcome(DONE, b"".join(pieces), start + consumed, tuple(decoder.trailers))
        assert consumed == end - start, "a body that is not done consumes all its input"
        assert decoder.trailers is None
    return Outcome(INCOMPLETE, b"".join(pieces), len(body))


def bytewise_cuts(body: bytes) -> list[int]:
    return list(range(1, len(body)))


def splits_for(body: bytes, seed: int) -> dict[str, list[int]]:
    """Whole, one byte at a time, fixed strides, every two-piece split (bodies up to 512 bytes,
    else 64 of them) and a few random splits."""
    n = len(body)
    splits = {"whole": [], "bytewise": bytewise_cuts(body)}
    for stride in (2, 3, 7, 64):
        splits[f"stride-{stride}"] = list(range(stride, n, stride))
    two = range(1, n) if n <= 512 else sorted({1 + i * (n - 2) // 63 for i in range(64)})
    for cut in two:
        splits[f"at-{cut}"] = [cut]
    rng = random.Random(seed)
    for k in range(4):
        count = rng.randint(1, max(1, n // 3)) if n > 1 else 0
        splits[f"random-{k}"] = sorted(rng.sample(range(1, n), min(count, n - 1))) if n > 1 else []
    return splits


def expected_outcome(vector: ChunkedVector) -> Outcome:
    if vector.verdict == ERROR:
        return Outcome(ERROR, status=vector.status)
    return Outcome(vector.verdict, vector.data, vector.expected_consumed(),
                   vector.trailers if vector.verdict == DONE else None)


# --- references ----------------------------------------------------------------------------------

def _normal_trailers(fields: list[tuple[bytes, bytes]]) -> tuple[tuple[bytes, bytes], ...]:
    return tuple((bytes(name).lower(), bytes(value).strip(b" \t")) for name, value in fields)


class _Collector:
    __slots__ = ("body", "trailers", "complete")

    def __init__(self) -> None:
        self.body: list[bytes] = []
        self.trailers: list[tuple[bytes, bytes]] = []
        self.complete = False

    def on_body(self, body: bytes) -> None:
        self.body.append(bytes(body))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.trailers.append((bytes(name), bytes(value)))

    def on_message_complete(self) -> None:
        self.complete = True


def run_httptools(body: bytes) -> Outcome:
    """httptools (llhttp) fed the head, then the body one byte at a time (for the error offset and
    the consumed count), stopping when the message completes."""
    collector = _Collector()
    parser = httptools.HttpRequestParser(collector)
    parser.feed_data(HEAD)
    collector.trailers.clear()
    for i in range(len(body)):
        try:
            parser.feed_data(body[i:i + 1])
        except httptools.HttpParserError as exc:
            return Outcome(ERROR, message=str(exc), error_at=i)
        if collector.complete:
            return Outcome(DONE, b"".join(collector.body), i + 1,
                           _normal_trailers(collector.trailers))
    return Outcome(INCOMPLETE, b"".join(collector.body), len(body))


def run_h11(body: bytes) -> Outcome:
    """h11 in the server role, fed head and body at once."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(HEAD + body)
    pieces: list[bytes] = []
    try:
        event = conn.next_event()
        assert isinstance(event, h11.Request)
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Data):
                pieces.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                unread = len(conn.trailing_data[0])
                return Outcome(DONE, b"".join(pieces), len(body) - unread,
                               _normal_trailers(list(event.headers)))
            elif event is h11.NEED_DATA:
                return Outcome(INCOMPLETE, b"".join(pieces), len(body))
            else:
                raise AssertionError(f"unexpected h11 event {event!r}")
    except h11.ProtocolError as exc:  # h11 raises LocalProtocolError for a bad chunk footer
        return Outcome(ERROR, message=str(exc))


REFERENCES = {HTTPTOOLS: run_httptools, H11: run_h11}


# --- vectors -------------------------------------------------------------------------------------

_VECTOR_IDS = [v.id for v in VECTORS]


def test_vector_ids_are_unique():
    assert len(set(_VECTOR_IDS)) == len(_VECTOR_IDS)


@pytest.mark.parametrize("vector", VECTORS, ids=_VECTOR_IDS)
def test_vector_decodes_to_its_expected_outcome_under_every_split(vector: ChunkedVector):
    expected = expected_outcome(vector)
    outcomes = {name: decode_split(vector.body, cuts, vector.max_trailer_bytes)
                for name, cuts in splits_for(vector.body, seed=len(vector.body)).items()}
    for name, outcome in outcomes.items():
        got = outcome.without_position()
        if vector.verdict == ERROR:
            assert (got.verdict, got.status) == (ERROR, vector.status), name
        else:
            assert got == expected, name
    messages = {outcome.message for outcome in outcomes.values()}
    assert len(messages) == 1, f"the error message depends on the split: {messages}"


def _agreement_cases() -> list:
    return [pytest.param(vector, reference, id=f"{vector.id}-{reference}")
            for vector in VECTORS for reference in REFERENCES if reference not in vector.differs]


def _difference_cases() -> list:
    return [pytest.param(vector, reference, id=f"{vector.differs[reference]}-{vector.id}-{reference}")
            for vector in VECTORS for reference in REFERENCES if reference in vector.differs]


@pytest.mark.parametrize(("vector", "reference"), _agreement_cases())
def test_vector_agrees_with_reference_parser(vector: ChunkedVector, reference: str):
    ours = decode_split(vector.body, [], vector.max_trailer_bytes)
    theirs = REFERENCES[reference](vector.body)
    assert ours.comparable() == theirs.comparable()


@pytest.mark.parametrize(("vector", "reference"), _difference_cases())
def test_listed_difference_really_differs_from_reference_parser(vector: ChunkedVector,
                                                                reference: str):
    ours = decode_split(vector.body, [], vector.max_trailer_bytes)
    theirs = REFERENCES[reference](vector.body)
    assert ours.verdict == vector.verdict
    assert ours.comparable() != theirs.comparable()


def test_every_listed_difference_is_exercised_by_a_vector_for_each_of_its_references():
    used = {(difference, reference) for vector in VECTORS
            for reference, difference in vector.differs.items()}
    for vector in VECTORS:
        for reference, difference in vector.differs.items():
            assert difference in DIFFERENCES, (vector.id, difference)
            assert reference in DIFFERENCES[difference].references, (vector.id, difference)
    for difference in DIFFERENCES.values():
        assert difference.reason
        for reference in difference.references:
            assert (difference.id, reference) in used, (difference.id, reference)


# --- round trips ---------------------------------------------------------------------------------

def _random_chunks(rng: random.Random) -> list[bytes]:
    sizes = [rng.choice((1, 2, 15, 16, 17, 255, 256, 4096, rng.randint(1, 70000)))
             for _ in range(rng.randint(0, 12))]
    return [rng.randbytes(size) for size in sizes]


@pytest.mark.parametrize("seed", range(40))
def test_decode_of_encoded_random_chunks_round_trips_under_random_splits(seed: int):
    rng = random.Random(seed)
    chunks = _random_chunks(rng)
    stream = b"".join(encode_chunk(chunk) for chunk in chunks) + LAST_CHUNK
    expected = Outcome(DONE, b"".join(chunks), len(stream), ())
    cuts_options = [[], sorted(rng.sample(range(1, len(stream)), min(len(stream) - 1, 50)))]
    cuts_options.append(sorted(rng.sample(range(1, len(stream)), min(len(stream) - 1, 5))))
    for cuts in cuts_options:
        assert decode_split(stream, cuts).without_position() == expected


@pytest.mark.parametrize("seed", range(10))
def test_encoded_random_chunks_decode_the_same_in_httptools(seed: int):
    rng = random.Random(1000 + seed)
    chunks = [rng.randbytes(rng.randint(1, 300)) for _ in range(rng.randint(0, 6))]
    stream = b"".join(encode_chunk(chunk) for chunk in chunks) + LAST_CHUNK
    assert run_httptools(stream).comparable() == (DONE, b"".join(chunks), len(stream), ())
    assert run_h11(stream).comparable() == (DONE, b"".join(chunks), len(stream), ())


def test_decoder_hands_out_one_piece_per_contiguous_run_of_data():
    body = b"10000\r\n" + b"z" * 65536 + b"\r\n3\r\nabc\r\n0\r\n\r\n"
    pieces, consumed = ChunkedDecoder().decode(body)
    assert [len(p) for p in pieces] == [65536, 3] and consumed == len(body)
    decoder = ChunkedDecoder()
    first, _ = decoder.decode(body[:1000])
    second, _ = decoder.decode(body[1000:])
    assert [len(p) for p in first + second] == [993, 65536 - 993, 3]


# --- encoder -------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 9, 10, 15, 16, 255, 256, 4096, 65535, 2**31, 2**62, 2**63 - 1])
def test_chunk_header_is_lower_case_hex_without_leading_zeros(n: int):
    assert chunk_header(n) == b"%x\r\n" % n


@pytest.mark.parametrize("n", [0, -1])
def test_chunk_header_refuses_sizes_below_one(n: int):
    with pytest.raises(ValueError):
        chunk_header(n)


def test_encode_chunk_frames_data_with_hex_size_and_crlf():
    assert encode_chunk(b"hello") == b"5\r\nhello\r\n"
    assert encode_chunk(b"x" * 26) == b"1a\r\n" + b"x" * 26 + b"\r\n"


def test_encode_chunk_of_empty_data_is_empty_because_a_zero_chunk_ends_the_body():
    assert encode_chunk(b"") == b""


@pytest.mark.parametrize("data", [None, bytearray(b"ab"), "ab"])
def test_encode_chunk_refuses_anything_but_bytes(data):
    with pytest.raises(TypeError):
        encode_chunk(data)


def test_last_chunk_is_a_zero_chunk_with_an_empty_trailer_section():
    assert LAST_CHUNK == b"0\r\n\r\n"


# --- decoder rules for callers -------------------------------------------------------------------

def test_feeding_a_finished_decoder_raises_runtime_error():
    decoder = ChunkedDecoder()
    assert decoder.decode(LAST_CHUNK) == ([], 5)
    with pytest.raises(RuntimeError):
        decoder.decode(b"")
    with pytest.raises(RuntimeError):
        decoder.decode(b"5\r\n")


def test_feeding_a_failed_decoder_raises_runtime_error():
    decoder = ChunkedDecoder()
    with pytest.raises(ProtocolError):
        decoder.decode(b"x")
    with pytest.raises(RuntimeError):
        decoder.decode(b"0\r\n\r\n")


def test_trailers_are_none_until_the_body_is_done():
    decoder = ChunkedDecoder()
    decoder.decode(b"0\r\nA: b\r\n")
    assert decoder.trailers is None and not decoder.done
    decoder.decode(b"\r\n")
    assert decoder.trailers == [(b"a", b"b")] and decoder.done


def test_decode_accepts_bytes_like_objects():
    for data in (bytearray(b"3\r\nabc\r\n"), memoryview(b"3\r\nabc\r\n")):
        assert ChunkedDecoder().decode(data) == ([b"abc"], 8)
    with pytest.raises(TypeError):
        ChunkedDecoder().decode("3\r\nabc\r\n")


def test_negative_max_trailer_bytes_is_a_value_error():
    with pytest.raises(ValueError):
        ChunkedDecoder(-1)


def test_zero_max_trailer_bytes_refuses_any_trailer_field_but_not_the_final_crlf():
    assert ChunkedDecoder(0).decode(LAST_CHUNK) == ([], 5)
    with pytest.raises(ProtocolError) as info:
        ChunkedDecoder(0).decode(b"0\r\nA: b\r\n\r\n")
    assert info.value.status == 431


def test_size_limits_match_the_documented_constants():
    assert MAX_CHUNK_SIZE == 2**62 - 1 and MAX_SIZE_LINE_BYTES == 4096
    assert decode_split(b"%x\r\n" % MAX_CHUNK_SIZE, []).verdict == INCOMPLETE
    assert decode_split(b"%x\r\n" % (MAX_CHUNK_SIZE + 1), []).status == 400
    line = b"0" * (MAX_SIZE_LINE_BYTES - 1) + b"1;"
    assert decode_split(line, []).status == 400
    assert decode_split(line[:-1], []).verdict == INCOMPLETE


def test_protocol_errors_cite_the_rfc_rule_they_enforce():
    with pytest.raises(ProtocolError, match=r"RFC 9112 §7\.1"):
        ChunkedDecoder().decode(b"0x5\r\n")
