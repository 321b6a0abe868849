"""Typed face of the HTTP/1.1 head parser (``cyserve._core.http.parser``).

Two steps, both strict per RFC 9112/9110 (every rejection is a ``ProtocolError`` carrying the status
a server answers with; see ``tests/vectors/parser_differences.py`` for where this is stricter or
laxer than httptools and h11):

1. ``HeadScanner.feed`` (``find_end`` from Cython) finds the end of a head in a growing buffer,
   resuming where it stopped, and refuses a bare LF (400), a too-long request line (414) or head
   (431) as soon as the bytes seen prove it.
2. ``parse_request_head`` / ``parse_response_head`` parse a whole head in one C pass into a
   ``Head`` that keeps the bytes and offsets and builds ``str`` objects only when asked.

``Head``, ``FRAMING_*`` (from ``cyserve._core.http.head``), ``HeadScanner`` and ``ParserLimits`` (from
``cyserve._core.http.scanner``) are re-exported here: this module is the parser's public entry point.
"""
from cyserve._core.http.head import FRAMING_CHUNKED as FRAMING_CHUNKED
from cyserve._core.http.head import FRAMING_CLOSE as FRAMING_CLOSE
from cyserve._core.http.head import FRAMING_LENGTH as FRAMING_LENGTH
from cyserve._core.http.head import FRAMING_NONE as FRAMING_NONE
from cyserve._core.http.head import Head as Head
from cyserve._core.http.scanner import HeadScanner as HeadScanner
from cyserve._core.http.scanner import ParserLimits as ParserLimits

def parse_request_head(raw: bytes, limits: ParserLimits | None = None) -> Head:
    """Parse one complete request head (``raw`` ends with its CRLF CRLF, as ``HeadScanner`` cuts it).

    Raises ``ProtocolError`` with the status to answer: 400 for malformed syntax, ambiguous framing
    or a missing/duplicate/invalid Host; 414, 431 for limits; 501 for a transfer coding other than
    chunked; 505 for an HTTP major version other than 1.  Raises ``ValueError`` when ``raw`` is not
    exactly one head ending with CRLF CRLF (a caller's mistake, not the peer's).
    """

def parse_response_head(
    raw: bytes, limits: ParserLimits | None = None, head_request: bool = False
) -> Head:
    """Parse one complete response head.  ``head_request``: it answers a HEAD request, so no body
    follows whatever its fields say (RFC 9112 §6.3).  Same errors as ``parse_request_head`` except
    414 and the Host rules; framing is NONE for HEAD, 1xx, 204 and 304, else CHUNKED, LENGTH or
    CLOSE.  Content-Length together with Transfer-Encoding is refused (stricter than RFC 9112 §6.3).
    """
