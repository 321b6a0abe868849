"""The head parser (RFC 9112/9110): every vector under every split, the Head API, the scanner's
incremental contract, limits, and parse(serialise(head)) == head for both roles."""
from __future__ import annotations

import pytest

from cyserve._core.http import parser
from cyserve._core.http.parser import (FRAMING_CHUNKED, FRAMING_CLOSE, FRAMING_LENGTH, FRAMING_NONE,
                                  Head, HeadScanner, ParserLimits, parse_request_head,
                                  parse_response_head)
from cyserve.config import Limits
from cyserve.errors import ProtocolError
from tests.vectors.parser_vectors import (FRAMING_BY_NAME, REQUEST_VECTORS, RESPONSE_VECTORS,
                                          VECTORS, Vector, parse_in_pieces, split_plans)

BROWSER_GET = (
    b"GET /search?q=cyserve&lang=en HTTP/1.1\r\n"
    b"Host: www.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: session=abc123; theme=dark\r\n\r\n"
)


def _by_id(vectors: list[Vector]) -> dict[str, Vector]:
    return {v.id: v for v in vectors}


# --- vectors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS, ids=[v.id for v in VECTORS])
def test_parser_vector_verdict_is_the_same_under_every_split(vector: Vector) -> None:
    outcomes = {
        name: parse_in_pieces(vector.raw, cuts, vector.mode, vector.limits, vector.head_request)
        for name, cuts in split_plans(vector.raw).items()
    }
    whole = outcomes["whole"]
    for name, outcome in outcomes.items():
        assert outcome == whole, f"split {name!r} disagrees with the whole head"
    assert whole.status == vector.status
    if vector.status is None:
        assert whole.end == len(vector.raw)
        for key, expected in vector.fields.items():
            if key == "framing":
                expected = FRAMING_BY_NAME[expected]
            assert whole.fields[key] == expected, key


def test_vector_ids_are_unique() -> None:
    ids = [v.id for v in VECTORS]
    assert len(ids) == len(set(ids))


# --- named rules (each also a vector; these read as the spec) -------------------------------


def _status(raw: bytes, **limits: int) -> int | None:
    return parse_in_pieces(raw, limits=limits).status


def test_parser_rejects_cl_and_te_both_present() -> None:
    assert _status(_by_id(REQUEST_VECTORS)["cl-and-te-both-present"].raw) == 400


def test_parser_rejects_duplicate_content_length() -> None:
    assert _status(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n") == 400


@pytest.mark.parametrize("value", [b"+5", b"-1", b"0x5", b"5 5", b"", b"5,5", b"%d" % (2**62 + 1)])
def test_parser_rejects_malformed_content_length(value: bytes) -> None:
    assert _status(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + value + b"\r\n\r\n") == 400


@pytest.mark.parametrize("codings, status", [
    (b"gzip, chunked", 501), (b"identity", 501), (b"foo", 501),
    (b"chunked, chunked", 400), (b"chunked, gzip", 400),
])
def test_parser_answers_transfer_codings_other_than_final_chunked(codings: bytes, status: int) -> None:
    assert _status(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + codings + b"\r\n\r\n") == status


def test_parser_rejects_transfer_encoding_on_http10() -> None:
    assert _status(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n") == 400


def test_parser_combines_transfer_encoding_lines_into_one_list() -> None:
    raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert _status(raw) == 400


@pytest.mark.parametrize("field, message", [
    (b"Transfer-Encoding: %bchunked", "malformed Transfer-Encoding"),
    (b"Connection: %bclose", "Connection list"),
    (b"Expect: %b100-continue", "Expect list"),
    (b"Upgrade: %bwebsocket", "Upgrade list"),
], ids=["transfer-encoding", "connection", "expect", "upgrade"])
def test_parser_ignores_eight_empty_list_elements_and_refuses_the_ninth(field: bytes,
                                                                        message: str) -> None:
    """RFC 9110 §5.6.1: a reasonable number of empty elements is ignored (8 per list)."""
    head = b"POST / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n"
    assert _status(head + field % (b" ," * 8) + b"\r\n\r\n") is None
    with pytest.raises(ProtocolError, match=message) as info:
        parse_request_head(head + field % (b" ," * 9) + b"\r\n\r\n")
    assert info.value.status == 400


@pytest.mark.parametrize("raw", [
    b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n: a\r\n\r\n",
], ids=["space-before-colon", "obs-fold", "bare-lf", "nul", "empty-name"])
def test_parser_rejects_malformed_field_lines(raw: bytes) -> None:
    assert _status(raw) == 400


def test_parser_answers_505_for_other_major_versions() -> None:
    assert _status(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n") == 505


def test_parser_treats_higher_http1_minor_version_as_http11() -> None:
    assert parse_in_pieces(b"GET / HTTP/1.7\r\nHost: a\r\n\r\n").fields["version"] == 11


def test_parser_requires_exactly_one_valid_host_on_http11() -> None:
    assert _status(b"GET / HTTP/1.1\r\n\r\n") == 400
    assert _status(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n") == 400
    assert _status(b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n") == 400
    assert _status(b"GET / HTTP/1.0\r\n\r\n") is None


def test_parser_content_length_zero_means_no_body() -> None:
    head = parse_request_head(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
    assert head.framing == FRAMING_NONE and head.content_length == -1


# --- Head API -------------------------------------------------------------------------------


def test_head_exposes_request_fields() -> None:
    head = parse_request_head(BROWSER_GET)
    assert head.method == "GET" and head.version == 11 and head.status == 0 and head.reason == ""
    assert head.target == "/search?q=cyserve&lang=en"
    assert head.raw_target == b"/search?q=cyserve&lang=en"
    assert head.path == "/search" and head.query_string == "q=cyserve&lang=en"
    assert head.raw == BROWSER_GET
    assert head.header_count == 7 and head.keep_alive and head.framing == FRAMING_NONE
    assert head.header_items()[1] == ("user-agent", head.get("USER-agent"))


def test_head_registered_methods_are_interned() -> None:
    for method in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"):
        head = parse_request_head(method.encode() + b" / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert head.method is parse_request_head(head.raw).method
        assert head.method == method
    connect = parse_request_head(b"CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\n\r\n")
    assert connect.method == "CONNECT" and connect.path == "a:1"
    assert parse_request_head(b"PURGE / HTTP/1.1\r\nHost: a\r\n\r\n").method == "PURGE"


def test_head_well_known_field_names_are_shared_str_objects() -> None:
    first = parse_request_head(BROWSER_GET).header_items()
    second = parse_request_head(BROWSER_GET.replace(b"User-Agent", b"USER-AGENT")).header_items()
    assert all(a[0] is b[0] for a, b in zip(first, second))
    odd = parse_request_head(b"GET / HTTP/1.1\r\nHost: a\r\nX-Odd: 1\r\n\r\n").header_items()[1][0]
    assert odd == "x-odd"


def test_head_header_items_are_cached_and_raw_items_keep_case() -> None:
    head = parse_request_head(b"GET / HTTP/1.1\r\nHost: a\r\nX-Two: 1\r\nx-two:  2 \r\n\r\n")
    assert head.header_items() is head.header_items()
    assert head.header_items() == [("host", "a"), ("x-two", "1"), ("x-two", "2")]
    assert head.raw_items() == [(b"Host", b"a"), (b"X-Two", b"1"), (b"x-two", b"2")]


def test_head_get_compares_names_case_insensitively() -> None:
    head = parse_request_head(b"GET / HTTP/1.1\r\nHost: a\r\nX-Two: 1\r\nx-two: 2\r\n\r\n")
    assert head.get("x-TWO") == "1"
    assert head.get("x-tw") is None and head.get("x-twos", "d") == "d"
    assert head.get("h\u00f6st") is None
    assert head.get_all("X-two") == ["1", "2"] and head.get_all("nope") == []


def test_head_values_are_latin1_decoded() -> None:
    head = parse_request_head(b"GET / HTTP/1.1\r\nHost: a\r\nX: caf\xe9\r\n\r\n")
    assert head.get("x") == "caf\u00e9"


def test_head_long_field_names_are_lowered_too() -> None:
    name = b"X-" + b"Ab" * 60
    head = parse_request_head(b"GET / HTTP/1.1\r\nHost: a\r\n" + name + b": v\r\n\r\n")
    assert head.header_items()[1] == (name.decode().lower(), "v")
    assert head.get(name.decode().upper()) == "v"


def test_head_repr_names_the_message() -> None:
    assert repr(parse_request_head(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")).startswith("<Head GET '/x' HTTP/1.1")
    assert "200 'OK'" in repr(parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))


def test_head_cannot_be_built_directly() -> None:
    with pytest.raises(TypeError):
        Head()


def test_framing_constants_are_python_ints() -> None:
    assert (FRAMING_NONE, FRAMING_LENGTH, FRAMING_CHUNKED, FRAMING_CLOSE) == (0, 1, 2, 3)
    assert parser.FRAMING_CHUNKED == 2


@pytest.mark.parametrize("raw", [b"GET / HTTP/1.1\r\nHost: a\r\n", b"GET / HTTP/1.1\r\n\r\nX",
                                 b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\n\r\n", b""])
def test_parse_refuses_bytes_that_are_not_exactly_one_head(raw: bytes) -> None:
    with pytest.raises(ValueError):
        parse_request_head(raw)


def test_parse_response_to_head_request_has_no_body() -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert parse_response_head(raw, None, True).framing == FRAMING_NONE
    assert parse_response_head(raw).framing == FRAMING_CHUNKED


# --- limits -----------------------------------------------------------------------------------


def test_parser_limits_defaults_match_config() -> None:
    default, from_config = ParserLimits(), ParserLimits.from_config(Limits())
    for name in ("max_request_line_bytes", "max_head_bytes", "max_header_count"):
        assert getattr(default, name) == getattr(from_config, name)
    assert "max_head_bytes=65536" in repr(default)


@pytest.mark.parametrize("kwargs", [dict(max_head_bytes=0), dict(max_request_line_bytes=-1),
                                    dict(max_header_count=0), dict(max_head_bytes=2**31),
                                    dict(max_request_line_bytes=100, max_head_bytes=50)])
def test_parser_limits_reject_nonsense(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        ParserLimits(**kwargs)


def test_scanner_answers_414_as_soon_as_the_request_line_passes_its_limit() -> None:
    limits = ParserLimits(max_request_line_bytes=20, max_head_bytes=100)
    line = b"GET /" + b"a" * 15  # 20 bytes: exactly the limit
    scanner = HeadScanner(limits)
    assert scanner.feed(line) == -1
    assert scanner.feed(line + b"\r") == -1
    assert scanner.feed(line + b"\r\n") == -1
    for too_long in (line + b"a", line + b"\r\r", line + b"a\n"):
        with pytest.raises(ProtocolError) as info:
            HeadScanner(limits).feed(too_long)
        assert info.value.status == 414


def test_scanner_answers_431_as_soon_as_the_head_cannot_end_in_time() -> None:
    scanner = HeadScanner(ParserLimits(max_request_line_bytes=50, max_head_bytes=64))
    head = b"GET / HTTP/1.1\r\nX: " + b"v" * 60
    assert scanner.feed(head[:63]) == -1
    with pytest.raises(ProtocolError) as info:
        scanner.feed(head[:64])
    assert info.value.status == 431
    exact = b"GET / HTTP/1.1\r\nX: " + b"v" * 41 + b"\r\n\r\n"
    assert HeadScanner(ParserLimits(max_request_line_bytes=50, max_head_bytes=64)).feed(exact) == 64


def test_scanner_has_no_414_in_response_mode() -> None:
    scanner = HeadScanner(ParserLimits(max_request_line_bytes=10, max_head_bytes=100), True)
    assert scanner.feed(b"HTTP/1.1 200 " + b"x" * 40 + b"\r\n\r\n") == 57


def test_parser_answers_431_for_too_many_fields() -> None:
    raw = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X: v\r\n" * 3 + b"\r\n"
    with pytest.raises(ProtocolError) as info:
        parse_request_head(raw, ParserLimits(max_header_count=3))
    assert info.value.status == 431
    assert parse_request_head(raw, ParserLimits(max_header_count=4)).header_count == 4


# --- scanner contract -------------------------------------------------------------------------


def test_scanner_never_rescans_examined_bytes() -> None:
    """Resuming at ``_scanned``: bytes already examined are not read again, so corrupting them
    afterwards goes unnoticed -- which proves a byte-at-a-time head costs linear time."""
    scanner = HeadScanner()
    first = b"GET / HTTP/1.1\r\nHost: a\r\nX: 1"
    assert scanner.feed(first) == -1
    corrupted = first.replace(b"X: 1", b"X\n 1")  # a bare LF inside what was already scanned
    assert scanner.feed(corrupted + b"\r\n\r\n") == len(first) + 4


def test_scanner_finds_crlf_crlf_straddling_two_feeds() -> None:
    raw = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    for cut in range(len(raw) - 4, len(raw)):
        scanner = HeadScanner()
        assert scanner.feed(raw[:cut]) == -1
        assert scanner.feed(raw) == len(raw)


def test_scanner_repeats_its_answer_until_reset() -> None:
    scanner = HeadScanner()
    raw = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\n"
    assert scanner.feed(raw) == 27
    assert scanner.feed(raw) == 27
    scanner.reset()
    assert scanner.feed(raw[27:]) == -1


def test_scanner_reports_bare_lf_early() -> None:
    with pytest.raises(ProtocolError) as info:
        HeadScanner().feed(b"GET / HTTP/1.1\r\nHost: a\n")
    assert info.value.status == 400


def test_scanner_restarts_when_given_a_shorter_buffer() -> None:
    scanner = HeadScanner()
    assert scanner.feed(b"GET / HTTP/1.1\r\nHost: a\r\n") == -1
    assert scanner.feed(b"GET / HTTP/1.1\r\n\r\n") == 18


def test_scanner_finds_a_large_head_fed_byte_by_byte() -> None:
    raw = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-Long: " + b"v" * 20000 + b"\r\n\r\n"
    scanner = HeadScanner()
    ends = [scanner.feed(raw[:i]) for i in range(1, len(raw) + 1)]
    assert ends[-1] == len(raw) and set(ends[:-1]) == {-1}


# --- round trips ------------------------------------------------------------------------------


def _serialise(fields: dict, mode: str) -> bytes:
    version = b"HTTP/1.%d" % (fields["version"] - 10)
    if mode == "request":
        start = fields["method"].encode() + b" " + fields["raw_target"] + b" " + version
    else:
        start = version + b" %d " % fields["status"] + fields["reason"].encode("latin-1")
    lines = b"".join(n + b": " + v + b"\r\n" for n, v in fields["raw_headers"])
    return start + b"\r\n" + lines + b"\r\n"


_ACCEPTED = [v for v in VECTORS if v.status is None]


@pytest.mark.parametrize("vector", _ACCEPTED, ids=[v.id for v in _ACCEPTED])
def test_parse_of_serialised_head_gives_the_same_fields(vector: Vector) -> None:
    first = parse_in_pieces(vector.raw, mode=vector.mode, limits=vector.limits, head_request=vector.head_request)
    raw = _serialise(first.fields, vector.mode)
    again = parse_in_pieces(raw, mode=vector.mode, limits=vector.limits, head_request=vector.head_request)
    assert again.status is None
    for key in first.fields:
        if key != "raw":
            assert again.fields[key] == first.fields[key], key


def test_round_trip_covers_both_roles() -> None:
    assert {v.mode for v in _ACCEPTED} == {"request", "response"}
    assert len(REQUEST_VECTORS) > 100 and len(RESPONSE_VECTORS) > 20
