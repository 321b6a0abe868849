"""Head parsing: cyserve against httptools (llhttp) on the same bytes, one group per input.

Run: ``python -m pytest bench/micro/test_parser_bench.py --benchmark-only``

Per group: cyserve finding the head end and parsing it (what the protocol does per request),
cyserve also building ``header_items()`` (what a handler reading every header costs), and httptools
with the callbacks a server registers (``on_url``, ``on_header`` collecting into a list,
``on_headers_complete``).  Parsers are reused across rounds, as on a keep-alive connection.
"""
from __future__ import annotations

from typing import Callable

import httptools
import pytest

from cyserve._core.http.parser import HeadScanner, parse_request_head

TINY_GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"

BROWSER_GET = (
    b"GET /static/app.js?v=4f3a2c HTTP/1.1\r\n"
    b"Host: www.example.com\r\n"
    b"Connection: keep-alive\r\n"
    b"sec-ch-ua: \"Chromium\";v=\"120\", \"Not?A_Brand\";v=\"24\"\r\n"
    b"sec-ch-ua-mobile: ?0\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"Chrome/120.0.0.0 Safari/537.36\r\n"
    b"sec-ch-ua-platform: \"Linux\"\r\n"
    b"Accept: */*\r\n"
    b"Sec-Fetch-Site: same-origin\r\n"
    b"Sec-Fetch-Mode: no-cors\r\n"
    b"Sec-Fetch-Dest: script\r\n"
    b"Referer: https://www.example.com/\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Accept-Language: en-US,en;q=0.9\r\n"
    b"Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark\r\n\r\n"
)


def _big_head() -> bytes:
    lines = [b"GET /api/v1/items?page=3&sort=name HTTP/1.1", b"Host: api.example.com"]
    i = 0
    while sum(len(line) + 2 for line in lines) < 4000:
        lines.append(b"X-Custom-Header-%02d: %s" % (i, b"value-%d-" % i * 6))
        i += 1
    lines.append(b"Cookie: " + b"k=v; " * 40)
    return b"\r\n".join(lines) + b"\r\n\r\n"


BIG_HEAD = _big_head()

INPUTS = {"tiny-get": TINY_GET, "browser-get": BROWSER_GET, "4k-head": BIG_HEAD}


def cyserve_parse(raw: bytes) -> Callable[[], object]:
    scanner = HeadScanner()

    def parse() -> object:
        scanner.reset()
        end = scanner.feed(raw)
        return parse_request_head(raw if end == len(raw) else raw[:end])

    return parse


def cyserve_parse_items(raw: bytes) -> Callable[[], object]:
    parse = cyserve_parse(raw)

    def parse_items() -> object:
        head = parse()
        return head.header_items()

    return parse_items


class _ServerCallbacks:
    __slots__ = ("url", "headers", "complete")

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.complete = False

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.complete = True


def httptools_parse(raw: bytes) -> Callable[[], object]:
    callbacks = _ServerCallbacks()
    parser = httptools.HttpRequestParser(callbacks)

    def parse() -> object:
        callbacks.headers = []
        parser.feed_data(raw)
        return callbacks.headers

    return parse


VARIANTS = {"cyserve": cyserve_parse, "cyserve+header_items": cyserve_parse_items,
            "httptools": httptools_parse}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("name", list(INPUTS))
def test_parse_head(benchmark, name: str, variant: str) -> None:
    raw = INPUTS[name]
    benchmark.group = f"parse-{name}"
    benchmark.name = variant
    result = benchmark(VARIANTS[variant](raw))
    assert result is not None


def test_inputs_are_what_their_names_say() -> None:
    assert BROWSER_GET.count(b"\r\n") - 2 == 14 and 3900 < len(BIG_HEAD) < 4400
    for raw in INPUTS.values():
        assert len(cyserve_parse_items(raw)()) == len(httptools_parse(raw)())
