"""Responses without sockets: Set-Cookie serialisation, redirects, HTML, JSON hooks, SSE framing,
form limits."""
from __future__ import annotations

import datetime
from decimal import Decimal

import pytest

from cyserve.multipart import FormLimits
from cyserve.request import parse_cookie_header
from cyserve.response import HTMLResponse, JSONResponse, RedirectResponse, Response, to_response
from cyserve.sse import ServerSentEvent, SSEResponse, _encode_item

UTC = datetime.timezone.utc


def set_cookie(*args, **kwargs) -> str:
    response = Response(b"")
    response.set_cookie(*args, **kwargs)
    ((name, value),) = response.headers
    assert name == "Set-Cookie"
    return value


SET_COOKIE_VECTORS = [
    pytest.param(("sid", "abc"), {}, "sid=abc; Path=/; SameSite=Lax", id="defaults-path-root-samesite-lax"),
    pytest.param(("sid", "abc"), {"max_age": 60, "httponly": True, "secure": True, "samesite": "strict"},
                 "sid=abc; Max-Age=60; Path=/; Secure; HttpOnly; SameSite=Strict", id="all-flags"),
    pytest.param(("sid", "abc"), {"samesite": "None", "secure": True, "partitioned": True},
                 "sid=abc; Path=/; Secure; SameSite=None; Partitioned", id="samesite-none-partitioned"),
    pytest.param(("sid", "abc"), {"samesite": None, "path": None}, "sid=abc", id="samesite-and-path-omitted"),
    pytest.param(("sid", "abc"), {"domain": "example.com", "path": "/app"},
                 "sid=abc; Domain=example.com; Path=/app; SameSite=Lax", id="domain-and-path"),
    pytest.param(("sid", "abc"), {"expires": datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)},
                 "sid=abc; Expires=Wed, 02 Jan 2030 03:04:05 GMT; Path=/; SameSite=Lax", id="expires-aware"),
    pytest.param(("sid", "abc"), {"expires": datetime.datetime(2030, 1, 2, 3, 4, 5)},
                 "sid=abc; Expires=Wed, 02 Jan 2030 03:04:05 GMT; Path=/; SameSite=Lax", id="expires-naive-is-utc"),
    pytest.param(("sid", 'a b;c,"d\\e%'), {"samesite": None, "path": None},
                 "sid=a%20b%3Bc%2C%22d%5Ce%25", id="unsafe-octets-percent-encoded"),
    pytest.param(("sid", "ü"), {"samesite": None, "path": None}, "sid=%C3%BC", id="non-ascii-utf8-encoded"),
    pytest.param(("sid", "a!#$&'()*+-./:<=>?@[]^_`{|}~z"), {"samesite": None, "path": None},
                 "sid=a!#$&'()*+-./:<=>?@[]^_`{|}~z", id="cookie-octets-kept"),
    pytest.param(("__Host-id", "1"), {"secure": True}, "__Host-id=1; Path=/; Secure; SameSite=Lax",
                 id="host-prefix-when-allowed"),
]


@pytest.mark.parametrize("args, kwargs, expected", SET_COOKIE_VECTORS)
def test_set_cookie_serialises_per_rfc_6265(args, kwargs, expected):
    assert set_cookie(*args, **kwargs) == expected


@pytest.mark.parametrize("value", ["plain", 'a b;c,"d\\e%', "ü€", "100%", "%41", ""])
def test_cookie_values_round_trip_through_request_cookies(value):
    line = set_cookie("k", value, samesite=None, path=None)
    assert parse_cookie_header(line) == {"k": value}


SET_COOKIE_ERRORS = [
    pytest.param(("a b", "v"), {}, ValueError, id="space-in-name"),
    pytest.param(("a;b", "v"), {}, ValueError, id="semicolon-in-name"),
    pytest.param(("a\r\nX-Evil: 1", "v"), {}, ValueError, id="crlf-in-name"),
    pytest.param(("", "v"), {}, ValueError, id="empty-name"),
    pytest.param(("a", 1), {}, TypeError, id="non-str-value"),
    pytest.param(("a", "v"), {"samesite": "none"}, ValueError, id="samesite-none-without-secure"),
    pytest.param(("a", "v"), {"samesite": "sometimes"}, ValueError, id="unknown-samesite"),
    pytest.param(("a", "v"), {"partitioned": True}, ValueError, id="partitioned-without-secure"),
    pytest.param(("a", "v"), {"path": "/x;Domain=evil"}, ValueError, id="semicolon-in-path"),
    pytest.param(("a", "v"), {"path": "/x\r\n"}, ValueError, id="crlf-in-path"),
    pytest.param(("a", "v"), {"domain": "evil.com; Secure"}, ValueError, id="junk-in-domain"),
    pytest.param(("a", "v"), {"domain": "a..b"}, ValueError, id="empty-label-in-domain"),
    pytest.param(("a", "v"), {"max_age": "60"}, TypeError, id="max-age-not-int"),
    pytest.param(("a", "v"), {"max_age": True}, TypeError, id="max-age-bool"),
    pytest.param(("a", "v"), {"expires": "tomorrow"}, TypeError, id="expires-string"),
    pytest.param(("__Secure-a", "v"), {}, ValueError, id="secure-prefix-without-secure"),
    pytest.param(("__Host-a", "v"), {"secure": True, "path": "/app"}, ValueError, id="host-prefix-with-path"),
    pytest.param(("__Host-a", "v"), {"secure": True, "domain": "x.com"}, ValueError, id="host-prefix-with-domain"),
]


@pytest.mark.parametrize("args, kwargs, error", SET_COOKIE_ERRORS)
def test_set_cookie_rejects_unsafe_input(args, kwargs, error):
    response = Response(b"")
    with pytest.raises(error):
        response.set_cookie(*args, **kwargs)
    assert response.headers == []


def test_set_cookie_expires_in_seconds_is_an_http_date_in_the_future():
    line = set_cookie("a", "v", expires=3600)
    stamp = line.split("Expires=")[1].split(";")[0]
    when = datetime.datetime.strptime(stamp, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC)
    delta = when - datetime.datetime.now(UTC)
    assert datetime.timedelta(minutes=59) < delta <= datetime.timedelta(hours=1)


def test_delete_cookie_expires_it_with_matching_path_and_domain():
    response = JSONResponse({})
    response.delete_cookie("sid", path="/app", domain="example.com", secure=True)
    assert response.headers == [("Set-Cookie", "sid=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; "
                                               "Domain=example.com; Path=/app; Secure; SameSite=Lax")]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_statuses(status):
    response = RedirectResponse("/next", status)
    assert response.status == status and response.body == b"" and response.headers == [("Location", "/next")]


def test_redirect_defaults_to_307_and_encodes_what_a_uri_cannot_hold():
    response = RedirectResponse("https://example.com/päth?q=a b&r=%2F#frag")
    assert response.status == 307
    assert response.headers == [("Location", "https://example.com/p%C3%A4th?q=a%20b&r=%2F#frag")]


@pytest.mark.parametrize("status", [200, 300, 304, 305, 404])
def test_redirect_rejects_non_redirect_statuses(status):
    with pytest.raises(ValueError, match="redirect status"):
        RedirectResponse("/x", status)


@pytest.mark.parametrize("url", ["/x\r\nSet-Cookie: a=1", "/x\nX: y", "/x\rX: y", "/x\0"])
def test_redirect_rejects_header_injection(url):
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        RedirectResponse(url)


def test_html_response_and_json_default_hook():
    html = HTMLResponse("<p>ü</p>", 201, {"X-A": "1"})
    assert (html.status, html.content_type, html.body, html.headers) == \
        (201, "text/html; charset=utf-8", "<p>ü</p>".encode(), [("X-A", "1")])
    data = JSONResponse({"when": datetime.date(2030, 1, 2), "price": Decimal("1.50")},
                        default=lambda o: str(o) if isinstance(o, Decimal) else o.isoformat())
    assert data.body == b'{"when":"2030-01-02","price":"1.50"}' and data.content_type == "application/json"
    with pytest.raises(TypeError):
        JSONResponse({"x": object()})


def test_handler_results_map_to_responses():
    assert to_response("hi").content_type == "text/plain; charset=utf-8"
    assert to_response(b"\x00").content_type == "application/octet-stream"
    assert to_response([1]).body == b"[1]"
    empty = to_response(None)
    assert (empty.status, empty.body) == (204, b"")
    made = to_response(({"a": 1}, 201, {"X-A": "1"}))
    assert (made.status, made.body, made.headers) == (201, b'{"a":1}', [("X-A", "1")])
    redirect = RedirectResponse("/x")
    assert to_response(redirect) is redirect
    with pytest.raises(TypeError):
        to_response(object())


SSE_VECTORS = [
    pytest.param("hello", b"data: hello\n\n", id="str-is-data"),
    pytest.param("a\nb\r\nc\rd", b"data: a\ndata: b\ndata: c\ndata: d\n\n", id="multi-line-data-split-on-all-line-ends"),
    pytest.param("", b"data: \n\n", id="empty-data"),
    pytest.param({"data": {"n": 1}, "event": "tick", "id": "7"}, b'event: tick\nid: 7\ndata: {"n":1}\n\n',
                 id="dict-of-fields-json-data"),
    pytest.param(ServerSentEvent(comment="one\ntwo"), b": one\n: two\n\n", id="comment-only"),
    pytest.param(ServerSentEvent("x", retry=1500), b"retry: 1500\ndata: x\n\n", id="retry"),
    pytest.param(ServerSentEvent([1, 2]), b"data: [1,2]\n\n", id="list-as-json"),
    pytest.param(ServerSentEvent(b"raw\nbytes"), b"data: raw\ndata: bytes\n\n", id="bytes-are-utf8-data"),
    pytest.param(ServerSentEvent("d", event="e", id="i", retry=1, comment="c"),
                 b": c\nevent: e\nid: i\nretry: 1\ndata: d\n\n", id="field-order"),
]


@pytest.mark.parametrize("item, wire", SSE_VECTORS)
def test_sse_event_framing(item, wire):
    assert _encode_item(item) == wire


def test_sse_json_data_uses_the_default_hook():
    assert _encode_item({"data": {"d": datetime.date(2030, 1, 2)}}, default=str) == b'data: {"d":"2030-01-02"}\n\n'


@pytest.mark.parametrize("kwargs", [
    pytest.param({"event": "a\nb"}, id="newline-in-event"),
    pytest.param({"event": "a\rb"}, id="cr-in-event"),
    pytest.param({"id": "1\n2"}, id="newline-in-id"),
    pytest.param({"id": "1\0"}, id="nul-in-id"),
    pytest.param({"retry": -1}, id="negative-retry"),
    pytest.param({"retry": 1.5}, id="float-retry"),
])
def test_sse_event_rejects_fields_that_would_break_framing(kwargs):
    with pytest.raises(ValueError):
        ServerSentEvent("x", **kwargs)


def test_sse_response_headers_and_needs_an_async_iterable():
    async def events():
        yield "x"

    response = SSEResponse(events(), headers={"Cache-Control": "no-store"})
    assert response.content_type == "text/event-stream"
    assert response.headers == [("Cache-Control", "no-store"), ("X-Accel-Buffering", "no")]
    with pytest.raises(TypeError, match="async iterable"):
        SSEResponse(["x"])
    with pytest.raises(TypeError):
        _encode_item({"data": "x", "colour": "red"})


def test_form_limits_must_be_positive():
    assert FormLimits().max_parts == 1000
    with pytest.raises(ValueError, match="max_file_bytes"):
        FormLimits(max_file_bytes=0)
