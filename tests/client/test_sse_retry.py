"""The client's event-stream parser ignores a ``retry`` field that is not a plain, bounded run
of ASCII digits (WHATWG HTML §9.2.6) instead of raising out of ``iter_events``."""
from __future__ import annotations

import pytest

from cyserve.client import Client
from cyserve.client.sse import SSEDecoder
from tests.client.peers import Peer, raw_server, response


def retry_of(value: str) -> int | None:
    events = SSEDecoder().feed(f"retry: {value}\ndata: x\n\n".encode("utf-8"))
    assert [e.data for e in events] == ["x"]
    return events[0].retry


@pytest.mark.parametrize("value, expected", [
    ("1500", 1500),
    ("0", 0),
    ("000000000000001500", 1500),
    ("9999999999", 9999999999),
    ("10000000000", None),
    ("9" * 5000, None),
    ("²", None),
    ("١٢٣", None),
    ("15²", None),
    ("1.5", None),
    ("-1", None),
    (" 15", None),
    ("", None),
], ids=["ascii-digits", "zero", "leading-zeros-not-counted", "ten-digits", "eleven-digits",
        "five-thousand-digits", "superscript-two", "arabic-indic-digits", "digits-then-superscript",
        "decimal-point", "sign", "second-space", "empty"])
def test_retry_takes_only_a_bounded_run_of_ascii_digits(value, expected):
    assert retry_of(value) == expected


def test_a_huge_or_non_ascii_retry_does_not_end_iter_events_over_a_socket(run):
    stream = ("retry: " + "9" * 5000 + "\ndata: one\n\n"
              "retry: \u00b2\ndata: two\n\n"
              "retry: 2500\ndata: three\n\n").encode("utf-8")

    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(response(200, stream, [("Content-Type", "text/event-stream")]))

    async def main():
        async with raw_server(handler) as server:
            async with Client(base_url=f"http://127.0.0.1:{server.port}") as client:
                async with client.stream("GET", "/events") as resp:
                    events = [event async for event in resp.iter_events()]
        assert [(e.data, e.retry) for e in events] == [("one", None), ("two", None),
                                                       ("three", 2500)]
    run(main)
