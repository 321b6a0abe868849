"""Intended differences between cyserve's chunked decoder and the reference parsers.

Each difference is listed once, with the RFC reason for cyserve's behaviour.  Vectors name the
differences they exercise (``ChunkedVector.differs``); the fuzz test explains every disagreement
with httptools through ``rejected_first_by`` + ``messages`` (+ ``bytes_at``): who rejected the body
first, with which error message, on which byte.
"""
from __future__ import annotations

from dataclasses import dataclass

HTTPTOOLS = "httptools"
H11 = "h11"


@dataclass(frozen=True)
class Difference:
    id: str
    references: tuple[str, ...]  # the reference parsers this difference is seen with
    reason: str  # why cyserve behaves as it does, with the RFC section
    # How the fuzz test recognises it against httptools (None: not expected in fuzzing):
    rejected_first_by: str | None = None  # "cyserve" or HTTPTOOLS: who rejects at the divergence
    messages: tuple[str, ...] = ()  # a substring of that parser's error message
    bytes_at: bytes | None = None  # the byte at the divergence must be one of these
    # the line holding that byte, or the line just before it (llhttp may only fail once a field
    # line is complete), starts with one of these (any case):
    line_starts: tuple[bytes, ...] = ()


DIFFERENCES: dict[str, Difference] = {
    d.id: d
    for d in (
        Difference(
            "bws-in-chunk-extension",
            (HTTPTOOLS,),
            "RFC 9112 §7.1.1 chunk-ext = *( BWS \";\" BWS name [ BWS \"=\" BWS value ] ) and RFC 9110 "
            "§5.6.3 says a recipient MUST parse and remove BWS: cyserve accepts it there; llhttp "
            "rejects any whitespace in a size line.",
            rejected_first_by=HTTPTOOLS,
            messages=("Invalid character in chunk",),
            bytes_at=b" \t",
        ),
        Difference(
            "h11-bws-before-first-semicolon",
            (H11,),
            "Same grammar (RFC 9112 §7.1.1 BWS before \";\"): h11's chunk-header pattern allows no "
            "whitespace between chunk-size and the first \";\".",
        ),
        Difference(
            "empty-chunk-extension-name",
            (HTTPTOOLS,),
            "RFC 9112 §7.1.1 chunk-ext-name = token = 1*tchar: \";;\" and \";=v\" are malformed "
            "(400); llhttp skips an empty name.",
            rejected_first_by="cyserve",
            messages=("empty chunk extension name",),
        ),
        Difference(
            "empty-chunk-extension-value",
            (HTTPTOOLS,),
            "RFC 9112 §7.1.1 chunk-ext-val = token / quoted-string, neither of which is empty: "
            "\";a=\" is malformed (400); llhttp accepts an empty value.",
            rejected_first_by="cyserve",
            messages=("empty chunk extension value",),
        ),
        Difference(
            "dquote-inside-extension-token",
            (HTTPTOOLS,),
            "RFC 9112 §7.1.1 chunk-ext-val = token / quoted-string, and DQUOTE is not a tchar: "
            "\";a=b\"x\"\" is malformed (400); llhttp starts a quoted-string in mid-token.",
            rejected_first_by="cyserve",
            messages=("DQUOTE inside a token chunk extension value",),
        ),
        Difference(
            "h11-unvalidated-chunk-extensions",
            (H11,),
            "RFC 9112 §7.1.1 gives chunk extensions a grammar (tokens, quoted-strings; no CTL, RFC "
            "9110 §5.6.2/§5.6.4) and cyserve enforces it; h11 accepts any bytes but LF after \";\".",
        ),
        Difference(
            "h11-whitespace-before-crlf-in-size-line",
            (H11,),
            "RFC 9112 §7.1.1 allows BWS only before \";\" and around \"=\", never before the CRLF: "
            "cyserve (like llhttp) rejects \"5 \\r\\n\"; h11 tolerates trailing whitespace.",
        ),
        Difference(
            "chunk-size-limit",
            (HTTPTOOLS, H11),
            "RFC 9112 §7.1: recipients MUST anticipate large hexadecimal numerals and prevent integer "
            "overflow: cyserve refuses sizes of 2**62 and more (every size and running total stays "
            "inside a signed 64-bit integer); llhttp accepts up to 2**64-1, h11 any 20 hex digits.",
            rejected_first_by="cyserve",
            messages=("chunk size too large",),
        ),
        Difference(
            "h11-chunk-size-digit-limit",
            (H11,),
            "RFC 9112 §7.1 chunk-size = 1*HEXDIG: only the value is bounded, so cyserve (like "
            "llhttp) skips leading zeros; h11 refuses more than 20 digits, zeros included.",
        ),
        Difference(
            "size-line-limit",
            (HTTPTOOLS, H11),
            "RFC 9112 §7.1.1: a server ought to limit the length of chunk extensions and answer 4xx "
            "past it: cyserve refuses a size line over 4096 bytes (400); llhttp has no bound, h11 "
            "allows 16 KiB.",
            rejected_first_by="cyserve",
            messages=("chunk size line too long",),
        ),
        Difference(
            "trailer-section-limit",
            (HTTPTOOLS, H11),
            "RFC 9112 §7.1.2 trailers are bounded like a header section: past max_trailer_bytes "
            "cyserve answers 431 (RFC 6585 §5); llhttp has no bound, h11's is 16 KiB.",
            rejected_first_by="cyserve",
            messages=("trailer section too large",),
        ),
        Difference(
            "framing-field-in-trailers",
            (HTTPTOOLS, H11),
            "RFC 9110 §6.5.1/§6.5.2 and RFC 9112 §7.1.2: trailer fields are stored apart from the "
            "header section and never change framing, so cyserve exposes Content-Length or "
            "Transfer-Encoding trailers uninterpreted; llhttp runs its header framing checks on "
            "trailers and rejects them, h11 rejects the values it would reject in a header.",
            rejected_first_by=HTTPTOOLS,
            messages=("Content-Length", "Transfer-Encoding"),
            line_starts=(b"content-length:", b"transfer-encoding:"),
        ),
        Difference(
            "h11-obs-fold-in-trailers",
            (H11,),
            "RFC 9112 §5.2: a server MUST either reject obs-fold with 400 or replace it with SP; "
            "cyserve rejects it (like llhttp), h11 unfolds it.",
        ),
        Difference(
            "h11-lenient-trailer-line-ends",
            (H11,),
            "RFC 9112 §7.1 ends trailer lines with CRLF (§2.2 makes accepting a bare LF optional; "
            "cyserve refuses it, like llhttp); h11 splits the trailer section on LF, so it accepts "
            "bare LF and keeps waiting after a CR that no LF follows.",
        ),
        Difference(
            "h11-ctl-in-trailer-value",
            (H11,),
            "RFC 9110 §5.5: a field value is VCHAR, obs-text, SP and HTAB only; cyserve (like "
            "llhttp) rejects other CTLs and DEL, h11 accepts any byte but NUL and whitespace.",
        ),
    )
}
