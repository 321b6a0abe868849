"""The head writer: framing decided in one place, Date, no header injection and no control byte in
a field value (RFC 9110 §5.5), for response and request heads alike."""
from __future__ import annotations

import email.utils

import h11
import pytest

from cyserve._core.http import serialise as writer
from cyserve._core.http.parser import parse_request_head, parse_response_head
from cyserve._core.http.serialise import HeadWriter, date_line


def parse_with_h11(raw: bytes, method: str = "GET") -> tuple[h11.Response, bytes]:
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(raw)
    response = conn.next_event()
    body = b""
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Data):
            body += event.data
        else:
            break
    return response, body


@pytest.mark.parametrize("status, length_known, http10, expected", [
    (200, True, False, writer.PY_BODY_LENGTH),
    (200, False, False, writer.PY_BODY_CHUNKED),
    (200, False, True, writer.PY_BODY_CLOSE),
    (204, True, False, writer.PY_BODY_NONE),
    (304, False, False, writer.PY_BODY_NONE),
    (101, False, False, writer.PY_BODY_NONE),
    (404, True, True, writer.PY_BODY_LENGTH),
])
def test_body_framing_follows_rfc9112(status, length_known, http10, expected):
    assert writer.py_body_framing(status, length_known, http10) == expected


def test_head_and_small_body_serialise_to_one_message_h11_accepts():
    raw = HeadWriter("cyserve").serialise(200, [("X-Id", "7"), (b"X-Raw", b"v")], "text/plain", 5,
                                          body=b"hello")
    response, body = parse_with_h11(raw)
    headers = dict(response.headers)
    assert response.status_code == 200 and body == b"hello"
    assert headers[b"content-length"] == b"5" and headers[b"x-id"] == b"7" and headers[b"x-raw"] == b"v"
    assert headers[b"server"] == b"cyserve"


def test_date_line_is_an_imf_fixdate():
    line = date_line()
    assert line.startswith(b"Date: ") and line.endswith(b" GMT\r\n")
    parsed = email.utils.parsedate_to_datetime(line[6:-2].decode())
    assert parsed.tzinfo is not None


@pytest.mark.parametrize("name, value", [
    ("X-A", "1\r\nSet-Cookie: evil=1"),
    ("X-A", "line\nbreak"),
    ("X-A", "nul\x00byte"),
    ("X-A\r\nEvil", "1"),
    ("Bad Name", "1"),
    ("", "1"),
    ("X-A", "snowman \u2603"),
], ids=["crlf-in-value", "lf-in-value", "nul-in-value", "crlf-in-name", "space-in-name", "empty-name",
        "non-latin1-value"])
def test_writer_rejects_header_injection_and_bad_fields(name, value):
    with pytest.raises(ValueError):
        HeadWriter().serialise(200, [(name, value)], None, 0)


def test_writer_owns_framing_fields():
    raw = HeadWriter().serialise(200, [("Content-Length", "999"), ("Transfer-Encoding", "gzip")],
                                 None, 3, body=b"abc")
    assert raw.count(b"Content-Length") == 1 and b"Content-Length: 3\r\n" in raw
    assert b"Transfer-Encoding" not in raw


def test_user_connection_close_is_honoured_once():
    w = HeadWriter()
    raw = w.serialise(200, [("connection", "close")], None, 0)
    assert raw.count(b"Connection: close") == 1 and w.user_close


def test_no_body_statuses_carry_no_framing_fields():
    for status in (204, 304):
        raw = HeadWriter().serialise(status, None, None, 10)
        assert b"Content-Length" not in raw and b"Transfer-Encoding" not in raw


def test_streamed_head_is_chunked_and_http10_closes():
    chunked = HeadWriter().serialise(200, None, "text/plain", -1)
    assert b"Transfer-Encoding: chunked\r\n" in chunked
    closing = HeadWriter().serialise(200, None, None, -1, http10=True, conn=writer.PY_CONN_CLOSE)
    assert b"Transfer-Encoding" not in closing and b"Connection: close\r\n" in closing


def test_unregistered_status_has_an_empty_reason_and_bad_status_is_refused():
    assert HeadWriter().serialise(299, None, None, 0).startswith(b"HTTP/1.1 299 \r\n")
    with pytest.raises(ValueError):
        HeadWriter().serialise(99, None, None, 0)
    with pytest.raises(ValueError):
        HeadWriter().serialise(600, None, None, 0)


def test_large_body_is_not_copied_behind_the_head():
    big = b"x" * 100_000
    raw = HeadWriter().serialise(200, None, None, len(big), body=big)
    assert raw.endswith(b"\r\n\r\n") and b"Content-Length: 100000" in raw


@pytest.mark.parametrize("value", ["close", "Close", "keep-alive, close", "close, x-custom", " foo ,CLOSE"])
def test_connection_close_anywhere_in_the_list_is_honoured(value):
    w = HeadWriter()
    raw = w.serialise(200, [("Connection", value)], None, 0)
    assert w.user_close and raw.count(b"Connection: close") == 1


def test_connection_without_close_keeps_the_connection():
    w = HeadWriter()
    raw = w.serialise(200, [("Connection", "keep-alive, closed")], None, 0)
    assert not w.user_close and b"Connection" not in raw


# --- field values: RFC 9110 §5.5 (field-vchar / SP / HTAB / obs-text), both roles ------------

# Every byte a field value may not hold: the controls but HTAB, and DEL.
_CTLS = [c for c in range(0x20) if c != 0x09] + [0x7F]
_CTL_IDS = [f"0x{c:02x}" for c in _CTLS]
# Every byte it may hold, obs-text included.
_VALUE_BYTES = bytes([0x09] + list(range(0x20, 0x7F)) + list(range(0x80, 0x100)))


@pytest.mark.parametrize("ctl", _CTLS, ids=_CTL_IDS)
def test_writer_refuses_every_ctl_but_htab_in_a_handler_header_value(ctl):
    for value in (f"a{chr(ctl)}b", b"a" + bytes([ctl]) + b"b"):
        with pytest.raises(ValueError, match=rf"'X-A'.*0x{ctl:02x}"):
            HeadWriter().serialise(200, [("X-A", value)], None, 0)


@pytest.mark.parametrize("ctl", _CTLS, ids=_CTL_IDS)
def test_writer_refuses_every_ctl_but_htab_in_content_type(ctl):
    with pytest.raises(ValueError, match=rf"'Content-Type'.*0x{ctl:02x}"):
        HeadWriter().serialise(200, None, f"text/plain;{chr(ctl)}x=1", 0)


@pytest.mark.parametrize("ctl", _CTLS, ids=_CTL_IDS)
def test_request_head_refuses_every_ctl_but_htab_in_a_header_value(ctl):
    with pytest.raises(ValueError, match=rf"'X-A'.*0x{ctl:02x}"):
        writer.serialise_request("GET", "/", [("Host", "a"), ("X-A", f"a{chr(ctl)}b")])


def test_writer_keeps_htab_and_obs_text_and_its_own_parser_reads_them_back():
    value = _VALUE_BYTES.decode("latin-1")
    raw = HeadWriter().serialise(200, [("X-All", value), (b"X-Raw", _VALUE_BYTES)],
                                 "text/plain; x=\"\xe9\t\"", 0)
    head = parse_response_head(raw)
    assert head.get("x-all") == value.strip(" \t") and head.get("x-raw") == value.strip(" \t")
    assert head.get("content-type") == "text/plain; x=\"\xe9\t\""
    request = writer.serialise_request("POST", "/", [("Host", "a"), ("X-All", value)])
    assert parse_request_head(request).get("x-all") == value.strip(" \t")
