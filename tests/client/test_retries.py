"""Retries (``Client(retries=...)``, ``cyserve.config.Retries``) against scripted raw servers:
what is retried and what never is, the backoff and ``Retry-After`` waits, the total timeout,
and the connection kept across a drained 503.  Backoffs are tiny so the suite stays fast."""
from __future__ import annotations

import asyncio
import email.utils
import socket
import ssl

import pytest

import cyserve.client.client as client_module
import cyserve.client.retries as retries_module
from cyserve.client import (
    Client, ClientTimeouts, ConnectError, ReadTimeout, RemoteProtocolError, Retries,
    TransportError,
)
from cyserve.client.content import RequestContent
from cyserve.client.retries import RetryBudget, parse_retry_after, retryable_error
from cyserve.config import IDEMPOTENT_METHODS, to_retries
from tests.client.peers import Peer, raw_server, response

FAST = Retries(count=3, backoff_s=0.01, max_backoff_s=0.02)


def scripted(*answers: bytes | None):
    """A handler answering successive requests (over any connections) with ``answers`` in
    turn, the last one repeated; ``None`` closes the connection without a byte of answer."""
    served = 0

    async def handler(peer: Peer) -> None:
        nonlocal served
        while True:
            if await peer.request() is None:
                return
            answer = answers[min(served, len(answers) - 1)]
            served += 1
            if answer is None:
                peer.writer.close()
                return
            await peer.send(answer)
    return handler


def url(server) -> str:
    return f"http://127.0.0.1:{server.port}/"


# ---------------------------------------------------------------------- configuration

def test_retries_are_off_by_default_and_a_count_means_retries_count():
    assert Retries().count == 0 and Client().retries.count == 0
    assert Client(retries=3).retries == Retries(count=3)
    assert to_retries(None) == Retries()
    policy = Retries(count=2, statuses=[503], methods=["get"])
    assert policy.statuses == frozenset({503}) and policy.methods == frozenset({"GET"})
    assert IDEMPOTENT_METHODS == {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}
    assert "POST" not in Retries().methods and "PATCH" not in Retries().methods
    with pytest.raises(ValueError):
        Retries(count=-1)
    with pytest.raises(ValueError):
        Retries(backoff_s=-0.1)
    with pytest.raises(TypeError):
        Client(retries="3")
    with pytest.raises(TypeError):
        Client(retries=True)


RETRY_AFTER_VECTORS = [
    ("delta-seconds", "120", None, 120.0),
    ("delta-seconds-padded", " 7 ", None, 7.0),
    ("zero", "0", None, 0.0),
    ("negative-is-not-delta", "-5", None, None),
    ("fraction-is-not-delta", "1.5", None, None),
    ("garbage", "soon", None, None),
    ("empty", "", None, None),
    ("absent", None, None, None),
    ("imf-fixdate-from-date", "Sun, 06 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:48:37 GMT", 60.0),
    ("rfc850-date-from-date", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:07 GMT", 30.0),
    ("asctime-date-from-date", "Sun Nov  6 08:49:37 1994", "Sun, 06 Nov 1994 08:49:36 GMT", 1.0),
    ("date-in-the-past-is-no-wait", "Sun, 06 Nov 1994 08:49:37 GMT", None, 0.0),
    ("bad-date-header-falls-back-to-our-clock", "Sun, 06 Nov 1994 08:49:37 GMT", "nonsense", 0.0),
]


@pytest.mark.parametrize("value,date,expected", [v[1:] for v in RETRY_AFTER_VECTORS],
                         ids=[v[0] for v in RETRY_AFTER_VECTORS])
def test_parse_retry_after(value, date, expected):
    assert parse_retry_after(value, date) == expected


def test_a_future_retry_after_date_is_measured_from_our_clock_without_a_date_field():
    import time
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28.0 <= parse_retry_after(when) <= 30.0


def test_which_errors_are_retried():
    cert = ConnectError("certificate")
    cert.__cause__ = ssl.SSLCertVerificationError("unknown CA")
    refused = ConnectError("refused")
    refused.__cause__ = ConnectionRefusedError()
    assert retryable_error(refused, 0)
    assert not retryable_error(cert, 0)
    assert retryable_error(RemoteProtocolError("closed"), 0)
    assert not retryable_error(RemoteProtocolError("cut"), 10)   # the server did answer
    assert not retryable_error(ReadTimeout("slow"), 0)


def test_backoff_is_full_jitter_under_a_capped_exponential():
    policy = Retries(count=100, backoff_s=0.1, max_backoff_s=0.5)
    budget = RetryBudget(policy, None)
    caps = [0.1, 0.2, 0.4, 0.5, 0.5, 0.5]
    for cap in caps:
        waits = [budget._backoff() for _ in range(200)]
        assert all(0.0 <= w <= cap for w in waits)
        assert max(waits) > cap / 2   # spread over the range, not a constant
        assert budget.after_error("GET", None, ConnectError("x"), 0) is not None  # one more used


def test_one_shot_bodies_and_non_idempotent_methods_are_never_allowed():
    budget = RetryBudget(Retries(count=5), None)
    assert budget.allows("GET", None) and budget.allows("PUT", RequestContent(b"x"))
    assert not budget.allows("POST", None) and not budget.allows("PATCH", RequestContent(b"x"))
    assert not budget.allows("PUT", RequestContent(stream=lambda: None, replayable=False))


# ---------------------------------------------------------------------- over sockets

def test_503_is_retried_until_success_and_the_connection_is_kept(run):
    async def main():
        busy = response(503, b"busy", reason="Service Unavailable")
        async with raw_server(scripted(busy, busy, response(200, b"done"))) as server:
            async with Client(retries=FAST) as client:
                resp = await client.get(url(server))
                assert resp.status == 200 and resp.content == b"done"
            assert len(server.requests) == 3
            assert server.connections == 1   # each 503's small body drained, connection reused
    run(main)


def test_without_retries_a_503_is_returned_at_once(run):
    async def main():
        async with raw_server(scripted(response(503))) as server:
            async with Client() as client:
                assert (await client.get(url(server))).status == 503
            assert len(server.requests) == 1
    run(main)


@pytest.mark.parametrize("status", [502, 503, 504])
def test_retries_stop_at_count_and_return_the_last_response(run, status):
    async def main():
        async with raw_server(scripted(response(status, b"no"))) as server:
            async with Client(retries=Retries(count=2, backoff_s=0.01)) as client:
                resp = await client.get(url(server))
                assert resp.status == status and resp.content == b"no"
            assert len(server.requests) == 3
    run(main)


def test_other_statuses_are_not_retried(run):
    async def main():
        async with raw_server(scripted(response(500), response(200))) as server:
            async with Client(retries=FAST) as client:
                assert (await client.get(url(server))).status == 500
            assert len(server.requests) == 1
    run(main)


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_non_idempotent_methods_are_never_retried(run, method):
    async def main():
        async with raw_server(scripted(response(503), response(200))) as server:
            async with Client(retries=FAST) as client:
                resp = await client.request(method, url(server), content=b"order")
                assert resp.status == 503
            assert len(server.requests) == 1
        async with raw_server(scripted(None, response(200))) as server:
            async with Client(retries=FAST) as client:
                with pytest.raises(TransportError):
                    await client.request(method, url(server), content=b"order")
            assert server.connections == 1
    run(main)


def test_a_streamed_upload_is_never_retried(run):
    async def main():
        async def chunks():
            yield b"part-1"
            yield b"part-2"

        async with raw_server(scripted(response(503), response(200))) as server:
            async with Client(retries=FAST) as client:
                resp = await client.put(url(server), content=chunks())
                assert resp.status == 503
            assert len(server.requests) == 1
    run(main)


def test_a_put_with_bytes_is_retried_with_the_same_body(run):
    async def main():
        async with raw_server(scripted(response(502), response(201))) as server:
            async with Client(retries=FAST) as client:
                assert (await client.put(url(server), content=b"state")).status == 201
            assert [body for _, body in server.requests] == [b"state", b"state"]
    run(main)


def test_a_connection_closed_before_any_answer_is_retried(run):
    async def main():
        async with raw_server(scripted(None, None, response(200, b"ok"))) as server:
            async with Client(retries=FAST) as client:
                assert (await client.get(url(server))).content == b"ok"
            assert server.connections == 3
        async with raw_server(scripted(None)) as server:
            async with Client(retries=Retries(count=2, backoff_s=0.01)) as client:
                with pytest.raises(TransportError):
                    await client.get(url(server))
            assert server.connections == 3
    run(main)


def test_an_error_after_response_bytes_is_not_retried(run):
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Le")   # then the connection closes

    async def main():
        async with raw_server(handler) as server:
            async with Client(retries=FAST) as client:
                with pytest.raises(RemoteProtocolError):
                    await client.get(url(server))
            assert server.connections == 1
    run(main)


def test_a_read_timeout_is_not_retried(run):
    async def handler(peer: Peer) -> None:
        await peer.request()
        await asyncio.sleep(5)

    async def main():
        async with raw_server(handler) as server:
            async with Client(retries=FAST, timeout=ClientTimeouts(read_s=0.2)) as client:
                with pytest.raises(ReadTimeout):
                    await client.get(url(server))
            assert server.connections == 1
    run(main)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connect_errors_are_retried_until_the_server_is_up(run):
    async def main():
        port = free_port()
        served = asyncio.Event()

        async def on_connection(reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(response(200, b"up"))
            await writer.drain()
            writer.close()
            served.set()

        async def start_late():
            await asyncio.sleep(0.15)
            return await asyncio.start_server(on_connection, "127.0.0.1", port)

        starting = asyncio.create_task(start_late())
        try:
            policy = Retries(count=20, backoff_s=0.05, max_backoff_s=0.05)
            async with Client(retries=policy) as client:
                resp = await client.get(f"http://127.0.0.1:{port}/")
                assert resp.content == b"up"
        finally:
            server = await starting
            server.close()
            await server.wait_closed()
        assert served.is_set()
    run(main)


def test_connect_errors_end_with_the_last_error_once_retries_are_spent(run, monkeypatch):
    attempts = []
    real = client_module.open_connection

    async def counting(*args, **kwargs):
        attempts.append(1)
        return await real(*args, **kwargs)
    monkeypatch.setattr(client_module, "open_connection", counting)

    async def main():
        async with Client(retries=Retries(count=2, backoff_s=0.01)) as client:
            with pytest.raises(ConnectError):
                await client.get(f"http://127.0.0.1:{free_port()}/")
    run(main)
    assert len(attempts) == 3


def test_backoff_waits_stay_under_their_caps(run):
    async def main():
        async with raw_server(scripted(response(503))) as server:
            policy = Retries(count=4, backoff_s=0.02, max_backoff_s=0.05)
            async with Client(retries=policy) as client:
                loop = asyncio.get_running_loop()
                start = loop.time()
                assert (await client.get(url(server))).status == 503
                # waits of at most 0.02, 0.04, 0.05, 0.05 s: 0.16 s, plus five exchanges
                assert loop.time() - start < 0.16 + 0.5
            assert len(server.requests) == 5
    run(main)


def test_retry_after_seconds_is_waited_for(run):
    async def main():
        busy = response(503, headers=[("Retry-After", "1")])
        async with raw_server(scripted(busy, response(200))) as server:
            # no backoff at all: only Retry-After can make the client wait
            async with Client(retries=Retries(count=1, backoff_s=0)) as client:
                loop = asyncio.get_running_loop()
                start = loop.time()
                assert (await client.get(url(server))).status == 200
                assert 0.95 <= loop.time() - start < 2.0
    run(main)


def test_retry_after_date_is_measured_from_the_responses_date(run):
    async def main():
        # The server's clock is decades off; Retry-After is one second after its Date.
        busy = response(503, headers=[("Date", "Sun, 06 Nov 1994 08:49:37 GMT"),
                                      ("Retry-After", "Sun, 06 Nov 1994 08:49:38 GMT")])
        async with raw_server(scripted(busy, response(200))) as server:
            async with Client(retries=Retries(count=1, backoff_s=0)) as client:
                loop = asyncio.get_running_loop()
                start = loop.time()
                assert (await client.get(url(server))).status == 200
                assert 0.95 <= loop.time() - start < 2.0
    run(main)


def test_a_retry_after_past_the_cap_returns_the_response(run):
    async def main():
        busy = response(503, headers=[("Retry-After", "3600")])
        async with raw_server(scripted(busy, response(200))) as server:
            async with Client(retries=Retries(count=3, max_retry_after_s=5)) as client:
                resp = await client.get(url(server))
                assert resp.status == 503 and resp.headers["retry-after"] == "3600"
            assert len(server.requests) == 1
    run(main)


def test_an_unparseable_retry_after_falls_back_to_the_backoff(run):
    async def main():
        busy = response(503, headers=[("Retry-After", "in a while")])
        async with raw_server(scripted(busy, response(200))) as server:
            async with Client(retries=FAST) as client:
                assert (await client.get(url(server))).status == 200
            assert len(server.requests) == 2
    run(main)


def test_no_wait_runs_past_the_total_timeout(run):
    async def main():
        busy = response(503, headers=[("Retry-After", "2")])
        async with raw_server(scripted(busy, response(200))) as server:
            timeouts = ClientTimeouts(total_s=1.0)
            async with Client(retries=Retries(count=3), timeout=timeouts) as client:
                loop = asyncio.get_running_loop()
                start = loop.time()
                assert (await client.get(url(server))).status == 503
                assert loop.time() - start < 0.5   # returned at once, not after a doomed wait
            assert len(server.requests) == 1
    run(main)


def test_the_backoff_loop_ends_within_the_total_timeout(run, monkeypatch):
    # Every wait is its cap (0.2 s): within a total of 0.7 s there is room for three retries.
    monkeypatch.setattr(retries_module.random, "uniform", lambda low, high: high)

    async def main():
        async with raw_server(scripted(response(503))) as server:
            timeouts = ClientTimeouts(total_s=0.7)
            policy = Retries(count=50, backoff_s=0.2, max_backoff_s=0.2)
            async with Client(retries=policy, timeout=timeouts) as client:
                loop = asyncio.get_running_loop()
                start = loop.time()
                assert (await client.get(url(server))).status == 503
                assert loop.time() - start < 0.7
            assert len(server.requests) == 4
    run(main)


def test_a_streamed_response_is_retried_and_a_large_body_closes_its_connection(run):
    async def main():
        large = response(503, b"x" * 200_000)
        async with raw_server(scripted(large, response(200, b"fine"))) as server:
            async with Client(retries=FAST) as client:
                async with client.stream("GET", url(server)) as resp:
                    assert resp.status == 200
                    assert b"".join([c async for c in resp.iter_bytes()]) == b"fine"
            # a body past what is drained is not read to keep its connection: it is closed
            assert server.connections == 2
    run(main)


def test_retries_are_shared_by_the_redirects_of_one_request(run):
    async def main():
        moved = response(302, headers=[("Location", "/next")])
        busy = response(503)
        async with raw_server(scripted(busy, moved, busy, busy, response(200))) as server:
            async with Client(retries=Retries(count=2, backoff_s=0.01)) as client:
                resp = await client.get(url(server))
                assert resp.status == 503   # 503, 302, 503, 503: the two retries are spent
            assert [req.target for req, _ in server.requests] == [b"/", b"/", b"/next", b"/next"]
    run(main)
