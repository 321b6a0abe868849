"""The ASGI adapter's cheap ``send`` on real sockets, both loops: a plain method whose message
takes effect at the call (errors raised by the call, inside the app's ``await send(...)``), that
returns an already-done awaitable unless something may wait (a streamed piece while the client
reads slowly: the body then ends only after the wait); any mapping as a message; a ``receive()``
waiting for the end hears ``http.disconnect`` when the response completes; the scope's state is a
fresh dict per request."""
from __future__ import annotations

import asyncio
import inspect
import types
import warnings
from typing import Any

import pytest

from tests.asgi.asgi_support import no_lifespan, serving
from tests.support import RawClient


async def get_once(app: Any) -> Any:
    """``GET /`` from ``app`` served on 127.0.0.1, on a connection of its own; the reply."""
    async with serving(app) as server:
        client = await RawClient.open(server.port)
        try:
            return await client.request("GET", "/")
        finally:
            await client.close()


async def _until(predicate: Any, timeout_s: float = 5.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(poll(), timeout_s)


def start(status: int = 200, headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {"type": "http.response.start", "status": status,
            "headers": headers if headers is not None else [(b"content-type", b"text/plain")]}


def body(data: bytes = b"", more: bool = False) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


def test_send_raises_a_bad_message_at_the_call_and_the_app_can_still_answer(run):
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await no_lifespan(scope, receive, send):
            return
        # The call itself raises: before anything is awaited.
        with pytest.raises(RuntimeError, match="expected ASGI message 'http.response.start'"):
            send(body(b"too early"))
        seen.append("body before start")
        with pytest.raises(KeyError):
            send({"status": 200})
        seen.append("no type")
        # ...which is inside the app's own await expression, as with a coroutine send.
        with pytest.raises(ValueError, match="final status"):
            await send(start(103))
        seen.append("interim status")
        with pytest.raises(RuntimeError, match="got 'http.response.nonsense'"):
            await send({"type": "http.response.nonsense"})
        seen.append("unknown type")
        await send(start(200))
        await send(body(b"answered after four refusals"))

    async def main() -> None:
        reply = await get_once(app)
        assert reply.status == 200 and reply.body == b"answered after four refusals"
        assert seen == ["body before start", "no type", "interim status", "unknown type"]
    run(main)


def test_a_done_send_awaited_twice_or_never_changes_nothing(run):
    facts: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await no_lifespan(scope, receive, send):
            return
        with warnings.catch_warnings():
            warnings.simplefilter("error")   # no "coroutine ... was never awaited"
            send(start(200, [(b"content-length", b"11")]))   # never awaited: took effect
            done = send(body(b"hello", more=True))
            facts["coroutine"] = inspect.iscoroutine(done)
            facts["awaitable"] = inspect.isawaitable(done)
            facts["results"] = [await done, await done]
            # asyncio's helpers take it like any awaitable.
            facts["wait_for"] = await asyncio.wait_for(send(body(b" ", more=True)), 5)
            facts["gather"] = await asyncio.gather(send(body(b"world")))
        with pytest.raises(RuntimeError, match="after the response was complete"):
            send(body(b"late"))

    async def main() -> None:
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            try:
                reply = await client.request("GET", "/")
                again = await client.request("GET", "/")    # the connection was kept
            finally:
                await client.close()
        assert reply.status == 200 and reply.body == b"hello world"
        assert reply.headers["content-length"] == "11" and again.body == b"hello world"
        assert facts == {"coroutine": False, "awaitable": True, "results": [None, None],
                         "wait_for": None, "gather": [None]}
    run(main)


def test_send_takes_any_mapping_as_a_message(run):
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await no_lifespan(scope, receive, send):
            return
        await send(types.MappingProxyType(start(202, [(b"x-kind", b"proxy")])))
        await send(types.MappingProxyType(body(b"read-only message")))

    async def main() -> None:
        reply = await get_once(app)
        assert reply.status == 202 and reply.body == b"read-only message"
        assert reply.headers["x-kind"] == "proxy"
    run(main)


def test_a_last_piece_sent_while_the_client_is_slow_waits_and_then_ends_the_body(run):
    # Far beyond what the kernel's socket buffers hold (tcp_wmem's maximum is a few MiB and an
    # unread receive buffer does not grow): the transport must pause.
    big = b"b" * (16 * 1024 * 1024)
    progress: dict[str, Any] = {"first": None, "last_returned": False}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await no_lifespan(scope, receive, send):
            return
        await send(start(200, [(b"content-type", b"application/octet-stream")]))
        first = send(body(b"head ", more=True))
        progress["first"] = inspect.iscoroutine(first)
        await first
        await send(body(big))           # the last piece: chunked body ends after the wait
        progress["last_returned"] = True

    async def main() -> None:
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            try:
                await client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                await _until(lambda: progress["first"] is not None)
                await asyncio.sleep(0.3)
                # Backpressure: the app's await of the last piece waits while nobody reads.
                assert progress["last_returned"] is False
                reply = await client.response("GET", timeout_s=20)
                await _until(lambda: progress["last_returned"])
                again = await client.request("GET", "/")    # the body was ended properly
            finally:
                await client.close()
        assert progress["first"] is False     # no wait for a piece written at once
        assert reply.status == 200 and reply.headers["transfer-encoding"] == "chunked"
        assert len(reply.body) == 5 + len(big) and reply.body == b"head " + big
        assert again.status == 200 and len(again.body) == 5 + len(big)
    run(main, timeout_s=60)


@pytest.mark.parametrize("ending", ["whole", "streamed", "trailers"])
def test_a_receive_waiting_for_the_end_hears_disconnect_when_the_response_completes(run, ending):
    heard: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await no_lifespan(scope, receive, send):
            return
        assert (await receive())["body"] == b"ping"

        async def listen() -> None:
            heard.append(await receive())   # waits: the body was delivered, the client stays

        listener = asyncio.ensure_future(listen())
        await asyncio.sleep(0.05)
        assert heard == []
        if ending == "whole":
            await send(start(200))
            await send(body(b"pong"))
        elif ending == "streamed":
            await send(start(200))
            await send(body(b"po", more=True))
            assert heard == []
            await send(body(b"ng"))
        else:
            await send({**start(200), "trailers": True})
            await send(body(b"pong"))
            assert heard == []
            await send({"type": "http.response.trailers",
                        "headers": [(b"x-checksum", b"1")]})
        await asyncio.wait_for(listener, 5)

    async def main() -> None:
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            try:
                reply = await client.request("POST", "/", body=b"ping")
                await _until(lambda: heard)
            finally:
                await client.close()
        assert reply.status == 200 and reply.body == b"pong"
        assert heard == [{"type": "http.disconnect"}]
    run(main)


def test_each_request_gets_a_fresh_empty_state_dict(run):
    states: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await no_lifespan(scope, receive, send):
            return
        states.append(dict(scope["state"]))
        scope["state"]["written by"] = scope["path"]    # must not reach the next request
        await send(start(200))
        await send(body(b"ok"))

    async def main() -> None:
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            try:
                for path in ("/one", "/two", "/three"):
                    assert (await client.request("GET", path)).body == b"ok"
            finally:
                await client.close()
        assert states == [{}, {}, {}]
    run(main)
