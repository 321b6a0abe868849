"""Chunked body vectors (RFC 9112 §7.1): data only, one descriptive id each.

Each vector is a request body that follows a ``Transfer-Encoding: chunked`` head, the verdict
cyserve must reach (``done``, ``incomplete`` or ``error``), and the decoded data, consumed count,
trailers or status.  ``differs`` maps a reference parser to the intended difference
(``chunked_differences.DIFFERENCES``) that makes it disagree on this vector; any reference not named
there must agree.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tests.vectors.chunked_differences import H11, HTTPTOOLS

DONE = "done"
INCOMPLETE = "incomplete"
ERROR = "error"


@dataclass(frozen=True)
class ChunkedVector:
    id: str
    body: bytes
    verdict: str
    data: bytes = b""  # decoded chunk data (done / incomplete)
    consumed: int | None = None  # done: index just past the final CRLF; default len(body)
    trailers: tuple[tuple[bytes, bytes], ...] = ()
    status: int | None = None  # error: the ProtocolError status
    max_trailer_bytes: int = 8192
    differs: dict[str, str] = field(default_factory=dict)  # reference -> difference id

    def expected_consumed(self) -> int | None:
        if self.verdict == ERROR:
            return None
        return len(self.body) if self.consumed is None else self.consumed


_ALL_BYTES = bytes(range(256))
_NEXT_REQUEST = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"

VECTORS: list[ChunkedVector] = [
    # --- valid bodies -------------------------------------------------------------------------
    ChunkedVector("single-chunk", b"5\r\nhello\r\n0\r\n\r\n", DONE, b"hello"),
    ChunkedVector("several-chunks", b"5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n", DONE,
                  b"hello world"),
    ChunkedVector("only-last-chunk", b"0\r\n\r\n", DONE, b""),
    ChunkedVector("upper-case-hex-size", b"A\r\n0123456789\r\n0\r\n\r\n", DONE, b"0123456789"),
    ChunkedVector("lower-case-hex-size", b"a\r\n0123456789\r\n0\r\n\r\n", DONE, b"0123456789"),
    ChunkedVector("mixed-case-hex-size", b"1aF\r\n" + b"x" * 0x1AF + b"\r\n0\r\n\r\n", DONE,
                  b"x" * 0x1AF),
    ChunkedVector("every-hex-digit-as-a-size",
                  b"".join(b"%c\r\n%s\r\n" % (d, b"x" * int(chr(d), 16))
                           for d in b"123456789abcdefABCDEF") + b"0\r\n\r\n",
                  DONE, b"".join(b"x" * int(chr(d), 16) for d in b"123456789abcdefABCDEF")),
    ChunkedVector("extension-quoted-value-with-every-qdtext-byte",
                  b"5;a=\"" + bytes(c for c in _ALL_BYTES if c == 9 or 0x20 <= c != 0x7f
                                    and c not in b'"\\') + b"\"\r\nhello\r\n0\r\n\r\n",
                  DONE, b"hello"),
    ChunkedVector("extension-quoted-pair-of-every-escapable-byte",
                  b"5;a=\"" + b"".join(b"\\%c" % c for c in _ALL_BYTES
                                       if c == 9 or 0x20 <= c != 0x7f) + b"\"\r\nhello\r\n0\r\n\r\n",
                  DONE, b"hello"),
    ChunkedVector("leading-zeros-in-sizes", b"0005\r\nhello\r\n000\r\n\r\n", DONE, b"hello"),
    ChunkedVector("twenty-five-digit-size-of-leading-zeros",
                  b"0" * 24 + b"5\r\nhello\r\n0\r\n\r\n", DONE, b"hello",
                  differs={H11: "h11-chunk-size-digit-limit"}),
    ChunkedVector("data-containing-crlf-and-lf", b"7\r\nab\r\ncd\n\r\n0\r\n\r\n", DONE,
                  b"ab\r\ncd\n"),
    ChunkedVector("data-with-every-byte-value", b"100\r\n" + _ALL_BYTES + b"\r\n0\r\n\r\n", DONE,
                  _ALL_BYTES),
    ChunkedVector("sixty-four-kib-chunk", b"10000\r\n" + b"z" * 65536 + b"\r\n0\r\n\r\n", DONE,
                  b"z" * 65536),
    ChunkedVector("extension-with-token-value", b"5;name=value\r\nhello\r\n0\r\n\r\n", DONE,
                  b"hello"),
    ChunkedVector("extension-without-value", b"5;name\r\nhello\r\n0\r\n\r\n", DONE, b"hello"),
    ChunkedVector("several-extensions", b"5;a=1;b;c=\"x y\"\r\nhello\r\n0\r\n\r\n", DONE,
                  b"hello"),
    ChunkedVector("extension-with-quoted-value", b"5;a=\"b c\\\"d\"\r\nhello\r\n0\r\n\r\n", DONE,
                  b"hello"),
    ChunkedVector("extension-with-empty-quoted-value", b"5;a=\"\"\r\nhello\r\n0\r\n\r\n", DONE,
                  b"hello"),
    ChunkedVector("extension-quoted-value-with-obs-text-and-htab",
                  b"5;a=\"\x80\xff\t\\\x80\"\r\nhello\r\n0\r\n\r\n", DONE, b"hello"),
    ChunkedVector("extension-on-last-chunk", b"5\r\nhello\r\n0;a=b\r\n\r\n", DONE, b"hello"),
    ChunkedVector("bws-before-extension", b"5 ;a=b\r\nhello\r\n0\r\n\r\n", DONE, b"hello",
                  differs={HTTPTOOLS: "bws-in-chunk-extension",
                           H11: "h11-bws-before-first-semicolon"}),
    ChunkedVector("bws-around-extension-equals", b"5; a =\tb\r\nhello\r\n0\r\n\r\n", DONE,
                  b"hello", differs={HTTPTOOLS: "bws-in-chunk-extension"}),
    ChunkedVector("bws-between-extensions", b"5;a=b ; c\r\nhello\r\n0\r\n\r\n", DONE, b"hello",
                  differs={HTTPTOOLS: "bws-in-chunk-extension"}),
    ChunkedVector("largest-accepted-chunk-size", b"3fffffffffffffff\r\nabc", INCOMPLETE, b"abc"),
    ChunkedVector("size-line-at-limit", b"0" * 4095 + b"5\r\nhello\r\n0\r\n\r\n", DONE, b"hello",
                  differs={H11: "h11-chunk-size-digit-limit"}),
    ChunkedVector("trailers",
                  b"5\r\nhello\r\n0\r\nExpires: never\r\nX-Sum:  abc \t\r\n\r\n", DONE, b"hello",
                  trailers=((b"expires", b"never"), (b"x-sum", b"abc"))),
    ChunkedVector("trailer-with-empty-value", b"0\r\nA:\r\n\r\n", DONE, trailers=((b"a", b""),)),
    ChunkedVector("trailer-value-with-htab-and-obs-text", b"0\r\nA: b\tc\x80\xff\r\n\r\n", DONE,
                  trailers=((b"a", b"b\tc\x80\xff"),)),
    ChunkedVector("duplicate-trailer-names", b"0\r\nA:b\r\na: c\r\n\r\n", DONE,
                  trailers=((b"a", b"b"), (b"a", b"c"))),
    ChunkedVector("trailer-section-at-limit", b"0\r\nX-Long: " + b"a" * 6 + b"\r\n\r\n", DONE,
                  trailers=((b"x-long", b"aaaaaa"),), max_trailer_bytes=16),
    ChunkedVector("empty-transfer-encoding-trailer", b"0\r\nTransfer-Encoding:\r\n\r\n", DONE,
                  trailers=((b"transfer-encoding", b""),),
                  differs={HTTPTOOLS: "framing-field-in-trailers", H11: "framing-field-in-trailers"}),
    ChunkedVector("content-length-trailer", b"5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n", DONE,
                  b"hello", trailers=((b"content-length", b"5"),),
                  differs={HTTPTOOLS: "framing-field-in-trailers"}),
    ChunkedVector("transfer-encoding-trailer",
                  b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n", DONE, b"hello",
                  trailers=((b"transfer-encoding", b"chunked"),),
                  differs={HTTPTOOLS: "framing-field-in-trailers"}),
    ChunkedVector("body-followed-by-next-request", b"5\r\nhello\r\n0\r\n\r\n" + _NEXT_REQUEST, DONE,
                  b"hello", consumed=15),
    ChunkedVector("body-with-trailers-followed-by-next-request",
                  b"0\r\nA: b\r\n\r\n" + _NEXT_REQUEST, DONE, consumed=11,
                  trailers=((b"a", b"b"),)),
    ChunkedVector("body-followed-by-garbage", b"0\r\n\r\n\x00\xffgarbage", DONE, consumed=5),
    # --- incomplete bodies --------------------------------------------------------------------
    ChunkedVector("empty-input", b"", INCOMPLETE),
    ChunkedVector("truncated-in-size", b"5", INCOMPLETE),
    ChunkedVector("truncated-in-extension", b"5;a=\"b", INCOMPLETE),
    ChunkedVector("truncated-after-size-cr", b"5\r", INCOMPLETE),
    ChunkedVector("truncated-in-data", b"5\r\nhel", INCOMPLETE, b"hel"),
    ChunkedVector("truncated-before-data-crlf", b"5\r\nhello", INCOMPLETE, b"hello"),
    ChunkedVector("truncated-after-last-chunk", b"5\r\nhello\r\n0\r\n", INCOMPLETE, b"hello"),
    ChunkedVector("truncated-in-trailer", b"0\r\nA: b\r\n", INCOMPLETE),
    ChunkedVector("truncated-after-final-cr", b"0\r\n\r", INCOMPLETE),
    # --- malformed chunk sizes ----------------------------------------------------------------
    ChunkedVector("size-with-0x-prefix", b"0x5\r\nhello\r\n0\r\n\r\n", ERROR, status=400),
    ChunkedVector("negative-size", b"-5\r\nhello\r\n0\r\n\r\n", ERROR, status=400),
    ChunkedVector("size-with-plus-sign", b"+5\r\nhello\r\n0\r\n\r\n", ERROR, status=400),
    ChunkedVector("space-before-size", b" 5\r\nhello\r\n0\r\n\r\n", ERROR, status=400),
    ChunkedVector("htab-before-size", b"\t5\r\nhello\r\n0\r\n\r\n", ERROR, status=400),
    ChunkedVector("empty-size-line", b"\r\nhello\r\n0\r\n\r\n", ERROR, status=400),
    ChunkedVector("non-hex-size", b"g\r\nhello\r\n0\r\n\r\n", ERROR, status=400),
    # The bytes on either side of each HEXDIG range, and obs-text whose low nibble is a digit's:
    # none of them is a hex digit (RFC 5234 §B.1), first in the size or after a digit.
    *(ChunkedVector(f"size-starting-with-byte-{c:02x}-next-to-hexdig",
                    bytes([c]) + b"\r\nhello\r\n0\r\n\r\n", ERROR, status=400)
      for c in b"/:@G`g\xb5\xc1\xe6"),
    *(ChunkedVector(f"size-continuing-with-byte-{c:02x}-next-to-hexdig",
                    b"5" + bytes([c]) + b"\r\nhello\r\n0\r\n\r\n", ERROR, status=400)
      for c in b"/:@G`g\xb5\xc1\xe6"),
    ChunkedVector("nul-after-size", b"5\x00\r\nhello\r\n0\r\n\r\n", ERROR, status=400),
    ChunkedVector("extension-without-size", b";a\r\nhello\r\n0\r\n\r\n", ERROR, status=400),
    ChunkedVector("missing-size-after-data", b"5\r\nhello\r\n\r\n", ERROR, status=400),
    ChunkedVector("size-overflow", b"10000000000000000\r\n", ERROR, status=400,
                  differs={H11: "chunk-size-limit"}),
    ChunkedVector("size-of-2-62", b"4000000000000000\r\n", ERROR, status=400,
                  differs={HTTPTOOLS: "chunk-size-limit", H11: "chunk-size-limit"}),
    ChunkedVector("size-of-2-64-minus-1", b"ffffffffffffffff\r\n", ERROR, status=400,
                  differs={HTTPTOOLS: "chunk-size-limit", H11: "chunk-size-limit"}),
    ChunkedVector("trailing-space-after-size", b"5 \r\nhello\r\n0\r\n\r\n", ERROR, status=400,
                  differs={H11: "h11-whitespace-before-crlf-in-size-line"}),
    ChunkedVector("trailing-htab-after-size", b"5\t\r\nhello\r\n0\r\n\r\n", ERROR, status=400,
                  differs={H11: "h11-whitespace-before-crlf-in-size-line"}),
    ChunkedVector("size-line-over-limit", b"0" * 4096 + b"5\r\nhello\r\n0\r\n\r\n", ERROR,
                  status=400, differs={HTTPTOOLS: "size-line-limit"}),
    ChunkedVector("extension-over-limit", b"5;a=" + b"b" * 5000 + b"\r\nhello\r\n0\r\n\r\n", ERROR,
                  status=400, differs={HTTPTOOLS: "size-line-limit", H11: "size-line-limit"}),
    # --- malformed chunk extensions -----------------------------------------------------------
    ChunkedVector("trailing-space-after-extension", b"5;a=b \r\nhello\r\n0\r\n\r\n", ERROR,
                  status=400, differs={H11: "h11-whitespace-before-crlf-in-size-line"}),
    ChunkedVector("semicolon-without-extension", b"5;\r\nhello\r\n0\r\n\r\n", ERROR, status=400,
                  differs={H11: "h11-unvalidated-chunk-extensions"}),
    ChunkedVector("empty-extension-name-between-semicolons", b"5;;a\r\nhello\r\n0\r\n\r\n", ERROR,
                  status=400, differs={HTTPTOOLS: "empty-chunk-extension-name",
                                       H11: "h11-unvalidated-chunk-extensions"}),
    ChunkedVector("extension-value-without-name", b"5;=b\r\nhello\r\n0\r\n\r\n", ERROR, status=400,
                  differs={HTTPTOOLS: "empty-chunk-extension-name",
                           H11: "h11-unvalidated-chunk-extensions"}),
    ChunkedVector("empty-extension-value", b"5;a=\r\nhello\r\n0\r\n\r\n", ERROR, status=400,
                  differs={HTTPTOOLS: "empty-chunk-extension-value",
                           H11: "h11-unvalidated-chunk-extensions"}),
    ChunkedVector("ctl-in-extension-name", b"5;a\x01\r\nhello\r\n0\r\n\r\n", ERROR, status=400,
                  differs={H11: "h11-unvalidated-chunk-extensions"}),
    ChunkedVector("obs-text-in-extension-token", b"5;a=\x80\r\nhello\r\n0\r\n\r\n", ERROR,
                  status=400, differs={H11: "h11-unvalidated-chunk-extensions"}),
    ChunkedVector("quoted-extension-name", b"5;\"a\"\r\nhello\r\n0\r\n\r\n", ERROR, status=400,
                  differs={H11: "h11-unvalidated-chunk-extensions"}),
    ChunkedVector("nul-in-quoted-extension-value", b"5;a=\"\x00\"\r\nhello\r\n0\r\n\r\n", ERROR,
                  status=400, differs={H11: "h11-unvalidated-chunk-extensions"}),
    ChunkedVector("del-in-quoted-extension-value", b"5;a=\"\x7f\"\r\nhello\r\n0\r\n\r\n", ERROR,
                  status=400, differs={H11: "h11-unvalidated-chunk-extensions"}),
    ChunkedVector("ctl-in-quoted-pair", b"5;a=\"\\\x01\"\r\nhello\r\n0\r\n\r\n", ERROR,
                  status=400, differs={H11: "h11-unvalidated-chunk-extensions"}),
    ChunkedVector("dquote-inside-extension-token", b"5;a=b\"x\"\r\nhello\r\n0\r\n\r\n", ERROR,
                  status=400, differs={HTTPTOOLS: "dquote-inside-extension-token",
                                       H11: "h11-unvalidated-chunk-extensions"}),
    ChunkedVector("unterminated-quoted-extension-value", b"5;a=\"b\r\nhello\r\n0\r\n\r\n", ERROR,
                  status=400, differs={H11: "h11-unvalidated-chunk-extensions"}),
    ChunkedVector("token-after-quoted-extension-value", b"5;a=\"b\"c\r\nhello\r\n0\r\n\r\n", ERROR,
                  status=400, differs={H11: "h11-unvalidated-chunk-extensions"}),
    ChunkedVector("cr-inside-extension", b"5;a\rb\r\nhello\r\n0\r\n\r\n", ERROR, status=400,
                  differs={H11: "h11-unvalidated-chunk-extensions"}),
    # --- line ends ----------------------------------------------------------------------------
    ChunkedVector("bare-lf-after-size", b"5\nhello\r\n0\r\n\r\n", ERROR, status=400),
    ChunkedVector("bare-lf-after-extension", b"5;a=b\nhello\r\n0\r\n\r\n", ERROR, status=400),
    ChunkedVector("cr-without-lf-after-size", b"5\rhello\r\n0\r\n\r\n", ERROR, status=400),
    ChunkedVector("double-cr-after-size", b"5\r\r\nhello\r\n0\r\n\r\n", ERROR, status=400),
    ChunkedVector("bare-lf-after-data", b"5\r\nhello\n0\r\n\r\n", ERROR, status=400),
    ChunkedVector("missing-crlf-after-data", b"5\r\nhelloXX0\r\n\r\n", ERROR, status=400),
    ChunkedVector("data-longer-than-size", b"5\r\nhello!\r\n0\r\n\r\n", ERROR, status=400),
    ChunkedVector("data-shorter-than-size", b"6\r\nhello\r\n0\r\n\r\n", ERROR, status=400),
    ChunkedVector("cr-cr-lf-after-data", b"5\r\nhello\r\r\n0\r\n\r\n", ERROR, status=400),
    ChunkedVector("bare-lf-after-last-chunk", b"5\r\nhello\r\n0\n\r\n", ERROR, status=400),
    ChunkedVector("bare-lf-ending-body", b"5\r\nhello\r\n0\r\n\n", ERROR, status=400,
                  differs={H11: "h11-lenient-trailer-line-ends"}),
    ChunkedVector("cr-cr-lf-ending-body", b"0\r\n\r\r\n", ERROR, status=400,
                  differs={H11: "h11-lenient-trailer-line-ends"}),
    ChunkedVector("garbage-after-final-cr", b"0\r\n\rX", ERROR, status=400,
                  differs={H11: "h11-lenient-trailer-line-ends"}),
    # --- malformed trailer sections -----------------------------------------------------------
    ChunkedVector("trailer-too-large", b"0\r\nX-Long: " + b"a" * 20 + b"\r\n\r\n", ERROR, status=431,
                  max_trailer_bytes=16,
                  differs={HTTPTOOLS: "trailer-section-limit", H11: "trailer-section-limit"}),
    ChunkedVector("trailer-line-one-byte-over-limit", b"0\r\nX-Long: " + b"a" * 7 + b"\r\n\r\n",
                  ERROR, status=431, max_trailer_bytes=16,
                  differs={HTTPTOOLS: "trailer-section-limit", H11: "trailer-section-limit"}),
    ChunkedVector("whitespace-before-trailer-colon", b"0\r\nA : b\r\n\r\n", ERROR, status=400),
    ChunkedVector("trailer-obs-fold", b"0\r\nA: b\r\n c\r\n\r\n", ERROR, status=400,
                  differs={H11: "h11-obs-fold-in-trailers"}),
    ChunkedVector("whitespace-before-first-trailer", b"0\r\n A: b\r\n\r\n", ERROR, status=400),
    ChunkedVector("trailer-bare-lf", b"0\r\nA: b\n\r\n", ERROR, status=400,
                  differs={H11: "h11-lenient-trailer-line-ends"}),
    ChunkedVector("ctl-in-trailer-value", b"0\r\nA: b\x01c\r\n\r\n", ERROR, status=400,
                  differs={H11: "h11-ctl-in-trailer-value"}),
    ChunkedVector("del-in-trailer-value", b"0\r\nA: b\x7f\r\n\r\n", ERROR, status=400,
                  differs={H11: "h11-ctl-in-trailer-value"}),
    ChunkedVector("nul-in-trailer-value", b"0\r\nA: \x00\r\n\r\n", ERROR, status=400),
    ChunkedVector("cr-in-trailer-value", b"0\r\nA: b\rc\r\n\r\n", ERROR, status=400),
    ChunkedVector("trailer-without-colon", b"0\r\nA\r\n\r\n", ERROR, status=400),
    ChunkedVector("trailer-with-empty-name", b"0\r\n: b\r\n\r\n", ERROR, status=400),
    ChunkedVector("non-token-trailer-name", b"0\r\n{: b\r\n\r\n", ERROR, status=400),
    ChunkedVector("obs-text-in-trailer-name", b"0\r\n\x80: b\r\n\r\n", ERROR, status=400),
]
