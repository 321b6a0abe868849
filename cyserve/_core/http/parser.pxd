# cython: language_level=3
"""Contract of the head parser: parse one whole head in one C pass into a ``Head``.

Server and client share it (DESIGN principle 3): ``parse_request`` reads a request line,
``parse_response`` a status line; the header rules, limits and framing decision are common.

The parser is split into small modules, each with its own contract: ``scanner`` (``ParserLimits``,
``HeadScanner``), ``head`` (``Head``, ``FRAMING_*``), ``startline``, ``fields`` and ``grammar``.  The names other modules need are cimported here, so ``from cyserve._core.http.parser
cimport Head, HeadScanner, ParserLimits, FRAMING_*, parse_request`` reaches all of them.
"""
from cyserve._core.http.head cimport (
    FRAMING_CHUNKED, FRAMING_CLOSE, FRAMING_LENGTH, FRAMING_NONE, Head,
)
from cyserve._core.http.scanner cimport HeadScanner, ParserLimits


# Parse a complete head (``raw`` ends with CRLF CRLF, as ``HeadScanner.find_end`` delimits it).
# Raise ProtocolError with the status to answer on any violation.
cdef Head parse_request(bytes raw, ParserLimits limits)
# ``head_request``: the request was HEAD, so the response has no body whatever its fields say.
cdef Head parse_response(bytes raw, ParserLimits limits, bint head_request)
