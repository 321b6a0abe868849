"""Every intended difference between cyserve's head parser and the reference parsers, listed once.

A difference says which peers (``httptools`` = llhttp, ``h11``) disagree with cyserve, in which mode,
which way (``cyserve`` is cyserve's verdict: ``"accept"`` or ``"reject"``), why (the RFC section that
makes cyserve's choice right or allowed), a few example heads, and ``applies(raw, mode, limits)``: a
small, independent check over the raw bytes used to classify a disagreement found by the vector and
fuzz tests.  A disagreement no listed difference explains fails those tests; an example that no longer
disagrees fails ``test_each_listed_difference_is_real``, so the list stays honest both ways.

Verdicts compare accept vs reject only (a peer that keeps waiting for more bytes has not rejected).
"""
from __future__ import annotations

import re
from typing import Callable, NamedTuple

import h11
import httptools

__all__ = ["Difference", "DIFFERENCES", "httptools_rejects", "h11_rejects", "explain"]


# ---------------------------------------------------------------------------------------------
# How the reference parsers are asked for a verdict


class _Callbacks:
    """The callbacks a server registers; only completion matters for the verdict."""

    def __init__(self) -> None:
        self.complete = False

    def on_headers_complete(self) -> None:
        self.complete = True


def httptools_rejects(raw: bytes, mode: str = "request") -> bool:
    """llhttp raised on these bytes (an upgrade or CONNECT pause is an acceptance)."""
    cls = httptools.HttpRequestParser if mode == "request" else httptools.HttpResponseParser
    parser = cls(_Callbacks())
    try:
        parser.feed_data(raw)
    except httptools.HttpParserUpgrade:
        return False
    except httptools.HttpParserError as exc:
        # A 101 without Connection: upgrade pauses llhttp after the head: that is not a refusal.
        return "Pause on CONNECT/Upgrade" not in str(exc)
    return False


def h11_rejects(raw: bytes, mode: str = "request", head_request: bool = False) -> bool:
    """h11 raised ``RemoteProtocolError`` for the first event of these bytes."""
    if mode == "request":
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 20)
    else:
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=1 << 20)
        headers = [("Host", "a")]
        if raw.startswith(b"HTTP/1.1 101"):  # h11 accepts a 101 only after asking for an upgrade
            headers += [("Connection", "upgrade"), ("Upgrade", "websocket")]
        conn.send(h11.Request(method="HEAD" if head_request else "GET", target="/", headers=headers))
        conn.send(h11.EndOfMessage())
    conn.receive_data(raw)
    try:
        conn.next_event()
    except h11.RemoteProtocolError:
        return True
    return False


# ---------------------------------------------------------------------------------------------
# A deliberately naive view of a head, only for the ``applies`` checks below


def _start_and_lines(raw: bytes) -> tuple[bytes, list[bytes]]:
    """The start line (up to the first LF, so a bare LF ends it too) and the CRLF field lines."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    start, lf, rest = head.partition(b"\n")
    if start.endswith(b"\r"):
        start = start[:-1]
    return start, rest.split(b"\r\n") if lf and rest else []


def _fields(raw: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    for line in _start_and_lines(raw)[1]:
        name, colon, value = line.partition(b":")
        if colon:
            out.append((name.lower(), value.strip(b" \t")))
    return out


def _values(raw: bytes, name: bytes) -> list[bytes]:
    return [v for n, v in _fields(raw) if n == name]


def _version(raw: bytes, mode: str) -> bytes:
    start = _start_and_lines(raw)[0]
    return start.rsplit(b" ", 1)[-1] if mode == "request" else start[:8]


def _request_parts(raw: bytes) -> list[bytes]:
    return _start_and_lines(raw)[0].split(b" ")


def _te_codings(raw: bytes) -> list[bytes]:
    return [c.strip(b" \t").lower() for v in _values(raw, b"transfer-encoding") for c in v.split(b",")]


_VERSION_RE = re.compile(rb"HTTP/(\d)\.(\d)\Z")
_TOKEN_RE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_HOST_RE = re.compile(rb"(\[[0-9A-Za-z\-._~!$&'()*+,;=:]+\]|[0-9A-Za-z\-._~!$&'()*+,;=%]+)(:\d*)?\Z")
_AUTHORITY_FORM_RE = re.compile(
    rb"(\[[0-9A-Za-z\-._~!$&'()*+,;=:]+\]|[0-9A-Za-z\-._~!$&'()*+,;=%]+):\d+\Z")
_ABSOLUTE_FORM_RE = re.compile(
    rb"(?i)https?://(\[[0-9A-Za-z\-._~!$&'()*+,;=:]+\]|[0-9A-Za-z\-._~!$&'()*+,;=%]+)(:\d*)?([/?#]|\Z)")
# llhttp's method table (httptools 0.9 / llhttp 9) for HTTP requests.
_LLHTTP_METHODS = frozenset(
    b"DELETE GET HEAD POST PUT CONNECT OPTIONS TRACE COPY LOCK MKCOL MOVE PROPFIND PROPPATCH SEARCH "
    b"UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE M-SEARCH NOTIFY SUBSCRIBE "
    b"UNSUBSCRIBE PATCH PURGE MKCALENDAR LINK UNLINK SOURCE QUERY".split())


# The comma lists cyserve takes decisions on (fields.pyx); each tolerates 8 empty elements.
_DECIDED_LISTS = (b"transfer-encoding", b"connection", b"expect", b"upgrade")


def _empty_elements(raw: bytes, name: bytes) -> int:
    """Empty elements in the list all ``name`` field lines form (an empty line counts as one)."""
    return sum(1 for v in _values(raw, name) for e in v.split(b",") if not e.strip(b" \t"))


def _htab_after_chunked(raw: bytes) -> bool:
    return any(re.search(rb"(?i)chunked[ \t]*\t", line.partition(b":")[2]) is not None
               for line in _start_and_lines(raw)[1]
               if line.partition(b":")[0].lower() == b"transfer-encoding")


def _major_minor(raw: bytes, mode: str) -> tuple[int, int] | None:
    m = _VERSION_RE.match(_version(raw, mode))
    return (int(m[1]), int(m[2])) if m else None


def _limit_passed(raw: bytes, mode: str, limits: dict[str, int]) -> bool:
    max_line = limits.get("max_request_line_bytes", 8192)
    max_head = limits.get("max_head_bytes", 65536)
    max_count = limits.get("max_header_count", 100)
    end = raw.find(b"\r\n\r\n")
    head_len = end + 4 if end >= 0 else len(raw)
    line = raw.split(b"\n", 1)[0]
    return (head_len > max_head
            or (mode == "request" and len(line.rstrip(b"\r")) > max_line)
            or len(_start_and_lines(raw)[1]) > max_count)


# ---------------------------------------------------------------------------------------------
# The differences


class Difference(NamedTuple):
    id: str
    peers: tuple[str, ...]
    modes: tuple[str, ...]
    cyserve: str  # "accept" or "reject"
    reason: str
    examples: tuple[bytes, ...]
    applies: Callable[[bytes, str, dict], bool]


_REQ = ("request",)
_RESP = ("response",)
_BOTH = ("request", "response")


def _get(*fields: bytes, start: bytes = b"GET / HTTP/1.1") -> bytes:
    return start + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"


def _ok(start: bytes, *fields: bytes) -> bytes:
    return _get(*fields, start=start)


DIFFERENCES: tuple[Difference, ...] = (
    # --- cyserve accepts ------------------------------------------------------------------------
    Difference(
        "extension-method", ("httptools",), _REQ, "accept",
        "RFC 9110 §9.1/§16.1: a method is any case-sensitive token and the registry is open; "
        "llhttp only knows a fixed table (and rejects lower-case 'get', which is another method).",
        (_get(b"Host: a", start=b"FOO-BAR / HTTP/1.1"), _get(b"Host: a", start=b"get / HTTP/1.1")),
        lambda raw, mode, limits: (bool(_TOKEN_RE.match(_request_parts(raw)[0]))
                                   and _request_parts(raw)[0] not in _LLHTTP_METHODS),
    ),
    Difference(
        "http-minor-version-above-1", ("httptools",), _BOTH, "accept",
        "RFC 9110 §6.2: a recipient processes a higher minor version of a major version it "
        "implements as the highest minor it supports, so HTTP/1.2-1.9 are handled as HTTP/1.1.",
        (_get(b"Host: a", start=b"GET / HTTP/1.2"), _ok(b"HTTP/1.5 200 OK", b"Content-Length: 0")),
        lambda raw, mode, limits: (_major_minor(raw, mode) or (0, 0))[0] == 1
        and (_major_minor(raw, mode) or (0, 0))[1] > 1,
    ),
    # --- cyserve rejects: request line ----------------------------------------------------------
    Difference(
        "fragment-in-target", ("httptools", "h11"), _REQ, "reject",
        "RFC 9112 §3.2: no request-target form has a fragment (origin-form = absolute-path "
        "['?' query], absolute-form = absolute-URI), so '#' in one is refused.",
        (_get(b"Host: a", start=b"GET /a#b HTTP/1.1"), _get(b"Host: a", start=b"GET http://a/#b HTTP/1.1")),
        lambda raw, mode, limits: len(_request_parts(raw)) > 1 and b"#" in _request_parts(raw)[1],
    ),
    Difference(
        "stray-cr-or-lf-before-start-line", ("httptools",), _BOTH, "reject",
        "RFC 9112 §2.2: a server SHOULD ignore empty lines (CRLF) before the request-line, and the "
        "protocol strips those before scanning; a lone CR or LF there is not an empty line but a "
        "bare CR/LF, which cyserve refuses (llhttp skips any CR and LF bytes).",
        (b"\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", b"\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        lambda raw, mode, limits: raw[:1] in (b"\r", b"\n"),
    ),
    Difference(
        "request-line-single-sp", ("httptools",), _REQ, "reject",
        "RFC 9112 §3: request-line = method SP request-target SP HTTP-version; parsing on "
        "whitespace runs is only a MAY, declined so cyserve never splits a line differently "
        "from an intermediary.",
        (_get(b"Host: a", start=b"GET  / HTTP/1.1"), _get(b"Host: a", start=b"GET /  HTTP/1.1")),
        lambda raw, mode, limits: b"  " in _start_and_lines(raw)[0],
    ),
    Difference(
        "http09-simple-request", ("httptools",), _REQ, "reject",
        "RFC 9112 §3 and §2.3: the request line must carry an HTTP-version; HTTP/0.9's "
        "'GET /' is not HTTP/1.1 (llhttp accepts it).",
        (b"GET /\r\n\r\n", _get(b"Host: a", start=b"GET /x")),
        lambda raw, mode, limits: len(_request_parts(raw)) == 2,
    ),
    Difference(
        "http-major-version-not-1", ("httptools", "h11"), _BOTH, "reject",
        "RFC 9110 §6.2 and §15.6.6: cyserve speaks HTTP/1.x only and answers another major "
        "version (HTTP/0.9, HTTP/2.0 written as text) with 505.",
        (_get(b"Host: a", start=b"GET / HTTP/2.0"), _ok(b"HTTP/2.0 200 OK", b"Content-Length: 0"),
         _get(b"Host: a", start=b"GET / HTTP/0.9")),
        lambda raw, mode, limits: (_major_minor(raw, mode) or (1, 0))[0] != 1,
    ),
    Difference(
        "asterisk-form-only-for-options", ("httptools", "h11"), _REQ, "reject",
        "RFC 9112 §3.2.4: the asterisk-form is exactly '*' and only used for a server-wide OPTIONS "
        "request (llhttp also accepts targets such as '*/x' with any method).",
        (_get(b"Host: a", start=b"GET * HTTP/1.1"), _get(b"Host: a", start=b"OPTIONS */x HTTP/1.1")),
        lambda raw, mode, limits: (len(_request_parts(raw)) > 1
                                   and _request_parts(raw)[1].startswith(b"*")
                                   and (_request_parts(raw)[1] != b"*"
                                        or _request_parts(raw)[0] != b"OPTIONS")),
    ),
    Difference(
        "connect-authority-form-only", ("httptools", "h11"), _REQ, "reject",
        "RFC 9112 §3.2.3 and RFC 9110 §9.3.6: a CONNECT request-target is exactly host:port.",
        (_get(b"Host: a", start=b"CONNECT /x HTTP/1.1"),
         _get(b"Host: a", start=b"CONNECT example.com HTTP/1.1")),
        lambda raw, mode, limits: (_request_parts(raw)[0] == b"CONNECT"
                                   and not (len(_request_parts(raw)) > 1
                                            and _AUTHORITY_FORM_RE.match(_request_parts(raw)[1]))),
    ),
    Difference(
        "absolute-form-http-only", ("httptools", "h11"), _REQ, "reject",
        "RFC 9112 §3.2.2 with RFC 9110 §4.2: an origin server reconstructs http(s) target URIs "
        "only; an http(s) URI with an empty host is invalid (§4.2.1) and userinfo in one is an "
        "error (§4.2.4).",
        (_get(b"Host: a", start=b"GET ftp://example.com/ HTTP/1.1"),
         _get(b"Host: a", start=b"GET http:///x HTTP/1.1"),
         _get(b"Host: a", start=b"GET http://user@a/ HTTP/1.1")),
        lambda raw, mode, limits: (len(_request_parts(raw)) > 1 and b"://" in _request_parts(raw)[1]
                                   and not _ABSOLUTE_FORM_RE.match(_request_parts(raw)[1])),
    ),
    Difference(
        "origin-form-required", ("h11",), _REQ, "reject",
        "RFC 9112 §3.2: besides the absolute, authority (CONNECT) and asterisk (OPTIONS) forms a "
        "request-target must be origin-form, i.e. start with '/'; h11 accepts any word.",
        (_get(b"Host: a", start=b"GET a/b HTTP/1.1"), _get(b"Host: a", start=b"GET a:80 HTTP/1.1")),
        lambda raw, mode, limits: (len(_request_parts(raw)) > 1
                                   and not _request_parts(raw)[1].startswith((b"/", b"*"))
                                   and b"://" not in _request_parts(raw)[1]),
    ),
    # --- cyserve rejects: Host ------------------------------------------------------------------
    Difference(
        "host-missing-or-duplicate", ("httptools",), _REQ, "reject",
        "RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host and to any "
        "request with more than one Host field; llhttp does not look at Host.",
        (_get(b"X: y"), _get(b"Host: a", b"Host: b")),
        lambda raw, mode, limits: (len(_values(raw, b"host")) > 1
                                   or (not _values(raw, b"host") and _version(raw, mode) != b"HTTP/1.0")),
    ),
    Difference(
        "host-invalid", ("httptools", "h11"), _REQ, "reject",
        "RFC 9112 §3.2: 400 for a Host field value that is not uri-host [':' port] "
        "(RFC 3986 §3.2.2-3); neither peer checks the value.",
        (_get(b"Host: a b"), _get(b"Host: u@a"), _get(b"Host: a:http")),
        lambda raw, mode, limits: any(v and not _HOST_RE.match(v) for v in _values(raw, b"host")),
    ),
    # --- framing -----------------------------------------------------------------------------------
    Difference(
        "content-length-cap", ("httptools", "h11"), _BOTH, "reject",
        "RFC 9110 §8.6: recipients must guard against overflow; cyserve caps Content-Length at "
        "2**62 (llhttp at 2**64-1, h11 not at all).",
        (_get(b"Host: a", b"Content-Length: %d" % (2**62 + 1)),),
        lambda raw, mode, limits: any(v.isdigit() and int(v) > 2**62
                                      for v in _values(raw, b"content-length")),
    ),
    Difference(
        "content-length-repeated", ("h11",), _BOTH, "reject",
        "RFC 9110 §8.6 and RFC 9112 §6.3 item 5: a recipient MAY merge identical repeated or listed "
        "Content-Length values; cyserve rejects them, as llhttp does, so no two hops disagree.",
        (_get(b"Host: a", b"Content-Length: 5", b"Content-Length: 5"), _get(b"Host: a", b"Content-Length: 5,5")),
        lambda raw, mode, limits: (len(_values(raw, b"content-length")) > 1
                                   or any(b"," in v for v in _values(raw, b"content-length"))),
    ),
    Difference(
        "cl-and-te", ("h11",), _BOTH, "reject",
        "RFC 9112 §6.1: a server MAY reject a request with both Content-Length and "
        "Transfer-Encoding (h11 lets Transfer-Encoding win, §6.3 item 3); cyserve rejects it in "
        "both modes, which is stricter than §6.3 for responses.",
        (_get(b"Host: a", b"Content-Length: 5", b"Transfer-Encoding: chunked"),
         _ok(b"HTTP/1.1 200 OK", b"Content-Length: 5", b"Transfer-Encoding: chunked")),
        lambda raw, mode, limits: bool(_values(raw, b"content-length")
                                       and _values(raw, b"transfer-encoding")),
    ),
    Difference(
        "transfer-coding-other-than-chunked", ("httptools",), _BOTH, "reject",
        "RFC 9112 §6.1: a server SHOULD answer 501 to a transfer coding it does not implement; "
        "cyserve implements only chunked, and its client refuses other codings too (llhttp "
        "accepts 'gzip, chunked', and any coding in a response).",
        (_get(b"Host: a", b"Transfer-Encoding: gzip, chunked"),
         _ok(b"HTTP/1.1 200 OK", b"Transfer-Encoding: gzip")),
        lambda raw, mode, limits: any(c not in (b"chunked", b"") for c in _te_codings(raw)),
    ),
    Difference(
        "response-chunked-not-final", ("httptools",), _RESP, "reject",
        "RFC 9112 §6.3 item 4 reads a response whose codings do not end in one chunked until close; "
        "cyserve refuses such a response (a repeated or misplaced chunked is a broken peer).",
        (_ok(b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked, chunked"),),
        lambda raw, mode, limits: bool(_values(raw, b"transfer-encoding"))
        and [c for c in _te_codings(raw) if c] != [b"chunked"],
    ),
    Difference(
        "te-empty-list-element", ("h11",), _BOTH, "accept",
        "RFC 9110 §5.6.1: a recipient MUST accept and ignore a reasonable number of empty list "
        "elements, so ', chunked' and 'chunked,' are chunked (RFC 9112 §6.3 item 4 holds: chunked "
        "is the final coding, once); h11 accepts only a Transfer-Encoding of exactly 'chunked'.",
        (_get(b"Host: a", b"Transfer-Encoding: , chunked"),
         _ok(b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked,")),
        lambda raw, mode, limits: b"" in _te_codings(raw),
    ),
    Difference(
        "te-trailing-empty-list-element", ("httptools",), _REQ, "accept",
        "RFC 9110 §5.6.1: empty list elements are ignored, so in 'chunked,' the final coding is "
        "chunked and the request is framed by it (RFC 9112 §6.3 item 4); llhttp takes the "
        "trailing comma for a coding after chunked and refuses the request.",
        (_get(b"Host: a", b"Transfer-Encoding: chunked,"),
         _get(b"Host: a", b"Transfer-Encoding: chunked , ,")),
        lambda raw, mode, limits: _te_codings(raw)[-1:] == [b""],
    ),
    Difference(
        "te-empty-field-line", ("httptools",), _BOTH, "accept",
        "RFC 9110 §5.3: the field lines of one name form one list, so an empty Transfer-Encoding "
        "line beside a 'chunked' one adds an empty element, ignored (RFC 9110 §5.6.1), and the "
        "message is chunked; llhttp refuses any empty Transfer-Encoding value.  A list with no "
        "coding at all stays malformed (400), as in llhttp.",
        (_get(b"Host: a", b"Transfer-Encoding:", b"Transfer-Encoding: chunked"),
         _ok(b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked", b"Transfer-Encoding:")),
        lambda raw, mode, limits: b"" in _values(raw, b"transfer-encoding"),
    ),
    Difference(
        "too-many-empty-list-elements", ("httptools", "h11"), _BOTH, "reject",
        "RFC 9110 §5.6.1 asks a recipient to ignore a *reasonable* number of empty list elements: "
        "cyserve ignores up to 8 in each list it decides on (Transfer-Encoding, Connection, Expect, "
        "Upgrade; all field lines of a name count together, RFC 9110 §5.3) and refuses a ninth "
        "with 400, so thousands of commas cost nothing; the peers ignore any number (h11 refuses "
        "every empty element in Transfer-Encoding, so there it agrees).",
        (_get(b"Host: a", b"Connection: ,,,,,,,,,close"),
         _get(b"Host: a", b"Expect: 100-continue" + b"," * 9),
         _get(b"Host: a", b"Connection: upgrade", b"Upgrade: ,,,,,,,,,websocket"),
         _ok(b"HTTP/1.1 200 OK", b"Connection: keep-alive,,,,,", b"Connection: ,,,,close",
             b"Content-Length: 0")),
        lambda raw, mode, limits: any(_empty_elements(raw, name) > 8 for name in _DECIDED_LISTS),
    ),
    Difference(
        "htab-after-chunked", ("httptools",), _REQ, "accept",
        "RFC 9110 §5.5 and §5.6.3: OWS (SP or HTAB) around a field value or list element is not "
        "part of it, so 'chunked<HTAB>' is chunked; llhttp takes it for another coding.",
        (_get(b"Host: a", b"Transfer-Encoding: chunked\t"),),
        lambda raw, mode, limits: _htab_after_chunked(raw),
    ),
    Difference(
        "htab-after-chunked-then-chunked", ("httptools",), _REQ, "reject",
        "RFC 9112 §6.3 item 4: chunked twice is refused; 'chunked<HTAB>' is chunked (RFC 9110 "
        "§5.6.3), which llhttp misses, so it sees one chunked after an unknown coding.",
        (_get(b"Host: a", b"Transfer-Encoding: chunked\t", b"Transfer-Encoding: chunked"),),
        lambda raw, mode, limits: _htab_after_chunked(raw),
    ),
    Difference(
        "te-on-http10", ("httptools", "h11"), _BOTH, "reject",
        "RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing; cyserve "
        "answers 400 instead of guessing.",
        (_ok(b"POST / HTTP/1.0", b"Transfer-Encoding: chunked"),
         _ok(b"HTTP/1.0 200 OK", b"Transfer-Encoding: chunked")),
        lambda raw, mode, limits: (_version(raw, mode) == b"HTTP/1.0"
                                   and bool(_values(raw, b"transfer-encoding"))),
    ),
    # --- cyserve rejects: field syntax (h11 is lenient here, llhttp agrees with cyserve) --------
    Difference(
        "obs-fold", ("h11",), _BOTH, "reject",
        "RFC 9112 §5.2: a server MUST reject obs-fold with 400 or replace it; cyserve rejects "
        "(h11 unfolds).",
        (_get(b"Host: a", b"X: a", b" b"),),
        lambda raw, mode, limits: any(line[:1] in (b" ", b"\t") for line in _start_and_lines(raw)[1]),
    ),
    Difference(
        "bare-lf", ("h11",), _BOTH, "reject",
        "RFC 9112 §2.2: a recipient MAY accept a bare LF as a line terminator; cyserve requires "
        "CRLF (h11 accepts LF).",
        (b"GET / HTTP/1.1\nHost: a\n\n", b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"),
        lambda raw, mode, limits: re.search(rb"(?<!\r)\n", raw) is not None,
    ),
    Difference(
        "ctl-in-field-value", ("h11",), _BOTH, "reject",
        "RFC 9110 §5.5: field values are VCHAR, obs-text, SP and HTAB; cyserve rejects other "
        "controls and DEL (h11 accepts anything but NUL, CR and LF).",
        (_get(b"Host: a", b"X: a\x01b"), _get(b"Host: a", b"X: a\x7fb")),
        lambda raw, mode, limits: any(re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", v)
                                      for _, v in _fields(raw)),
    ),
    # --- cyserve rejects: status line ------------------------------------------------------------
    Difference(
        "status-line-requires-sp", ("httptools", "h11"), _RESP, "reject",
        "RFC 9112 §4: status-line = HTTP-version SP status-code SP [reason-phrase]; the second SP "
        "is required even when the reason is empty.",
        (_ok(b"HTTP/1.1 200", b"Content-Length: 0"),),
        lambda raw, mode, limits: re.match(rb"HTTP/\d\.\d \d{3}\Z", _start_and_lines(raw)[0]) is not None,
    ),
    Difference(
        "status-code-range", ("httptools", "h11"), _RESP, "reject",
        "RFC 9110 §15: status codes are 100-599 (h11 accepts 600-999, llhttp 000-999).",
        (_ok(b"HTTP/1.1 600 x"),),
        lambda raw, mode, limits: (re.match(rb"HTTP/\d\.\d \d{3}", raw) is not None
                                   and not 100 <= int(raw[9:12]) <= 599),
    ),
    Difference(
        "reason-phrase-ctl", ("httptools", "h11"), _RESP, "reject",
        "RFC 9112 §4: reason-phrase = 1*(HTAB / SP / VCHAR / obs-text); controls and DEL are "
        "refused (llhttp even accepts NUL).",
        (_ok(b"HTTP/1.1 200 O\x01K"), _ok(b"HTTP/1.1 200 O\x7fK")),
        lambda raw, mode, limits: re.search(rb"[\x00-\x08\x0a-\x1f\x7f]",
                                            _start_and_lines(raw)[0][13:]) is not None,
    ),
    # --- configured limits -----------------------------------------------------------------------
    Difference(
        "configured-limits", ("httptools", "h11"), _BOTH, "reject",
        "RFC 9110 §15.5.15 (414) and RFC 6585 §5 (431): cyserve bounds the request line, the head "
        "and the field count (cyserve.config.Limits); the peers have no such limits.",
        (_get(b"Host: a", *(b"X-%d: v" % i for i in range(100))),),
        lambda raw, mode, limits: _limit_passed(raw, mode, limits),
    ),
)


def explain(raw: bytes, mode: str, peer: str, cyserve_rejects: bool,
            limits: dict[str, int] | None = None) -> Difference | None:
    """The listed difference that accounts for cyserve and ``peer`` disagreeing on ``raw``."""
    verdict = "reject" if cyserve_rejects else "accept"
    for diff in DIFFERENCES:
        if peer in diff.peers and mode in diff.modes and diff.cyserve == verdict:
            if diff.applies(raw, mode, limits or {}):
                return diff
    return None
