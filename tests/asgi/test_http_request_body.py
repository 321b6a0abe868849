"""``receive()`` for HTTP on real sockets, both loops: the request body as one message or as
chunks the core streams with its read backpressure, ``100 Continue`` only when the app reads,
and ``http.disconnect`` as soon as the client leaves (mid-body, and while the app waits after
the body), or at once after the response; a body the core refuses is its status, not the app's."""
from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

from cyserve.config import Limits
from tests.asgi.asgi_support import no_lifespan, read_body, respond, serving
from tests.support import RawClient, exchange


def test_whole_body_is_one_message_then_disconnect_after_the_response(run):
    messages: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await no_lifespan(scope, receive, send):
            return
        messages.append(await receive())
        await respond(send, body=b"done")
        started = time.monotonic()
        messages.append(await receive())   # the response is over: nobody is left to wait for
        messages.append({"waited_s": time.monotonic() - started})

    async def main() -> None:
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            try:
                reply = await client.request("POST", "/", body=b"hello body")
                assert reply.status == 200 and reply.body == b"done"
                await asyncio.wait_for(_until(lambda: len(messages) == 3), 5)
            finally:
                await client.close()
        assert messages[0] == {"type": "http.request", "body": b"hello body", "more_body": False}
        assert messages[1] == {"type": "http.disconnect"}
        assert messages[2]["waited_s"] < 0.5
    run(main)


async def _until(predicate: Any) -> None:
    while not predicate():
        await asyncio.sleep(0.01)


def test_chunked_body_arrives_in_pieces_as_sent(run):
    messages: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await no_lifespan(scope, receive, send):
            return
        while True:
            message = await receive()
            messages.append(message)
            if not message["more_body"]:
                break
        await respond(send, body=b"%d" % sum(len(m["body"]) for m in messages))

    async def main() -> None:
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            try:
                await client.send(b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                  b"\r\n5\r\nfirst\r\n")
                await asyncio.wait_for(_until(lambda: messages), 5)
                await client.send(b"6\r\nsecond\r\n0\r\n\r\n")
                reply = await client.response("POST")
                assert reply.status == 200 and reply.body == b"11"
            finally:
                await client.close()
        assert messages[0] == {"type": "http.request", "body": b"first", "more_body": True}
        assert b"".join(m["body"] for m in messages) == b"firstsecond"
        assert messages[-1]["more_body"] is False
        assert all(m["type"] == "http.request" for m in messages)
    run(main)


def test_a_slow_reader_pauses_the_upload_and_memory_stays_bounded(run):
    """The app takes nothing for a while: the server stops reading (its buffer bounded by the
    body water mark), the client's writes back up; then every byte arrives, in order."""
    size = 32 * 1024 * 1024
    holder: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await no_lifespan(scope, receive, send):
            return
        await holder["release"].wait()
        total = 0
        digest = hashlib.sha256()
        while True:
            message = await receive()
            body = message["body"]
            total += len(body)
            digest.update(body)
            if not message["more_body"]:
                break
        await respond(send, body=b"%d %s" % (total, digest.hexdigest().encode()))

    async def main() -> None:
        holder["release"] = asyncio.Event()
        chunk = bytes(range(256)) * 256   # 64 KiB
        expected = hashlib.sha256(chunk * (size // len(chunk))).hexdigest().encode()
        async with serving(app, limits=Limits(max_body_bytes=size)) as server:
            client = await RawClient.open(server.port)
            try:
                await client.send(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                                  % size)
                sent = 0
                stalled = False
                while sent < size:
                    client.writer.write(chunk)
                    sent += len(chunk)
                    try:
                        await asyncio.wait_for(client.writer.drain(), 0.5)
                    except asyncio.TimeoutError:
                        stalled = True
                        break
                assert stalled, "the server read a 32 MiB body nobody was taking"
                (stream,) = list(server.state.connections)
                assert stream.reading_paused
                # What the kernel and the server hold together is far below the body's size.
                assert sent < size // 2, sent
                holder["release"].set()
                while sent < size:
                    client.writer.write(chunk)
                    sent += len(chunk)
                    await asyncio.wait_for(client.writer.drain(), 10)
                reply = await client.response("POST", timeout_s=20)
                assert reply.status == 200
                assert reply.body == b"%d %s" % (size, expected)
            finally:
                await client.close()
    run(main, timeout_s=60)


def test_100_continue_is_sent_only_when_the_app_reads(run):
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await no_lifespan(scope, receive, send):
            return
        if scope["path"] == "/read":
            await respond(send, body=await read_body(receive))
        else:
            await respond(send, 417, b"not reading that")

    async def main() -> None:
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            try:
                await client.send(b"POST /read HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                                  b"Content-Length: 5\r\n\r\n")
                interim = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 5)
                assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
                await client.send(b"hello")
                reply = await client.response("POST")
                assert reply.status == 200 and reply.body == b"hello"
            finally:
                await client.close()
            data = await exchange(server.port, b"POST /refuse HTTP/1.1\r\nHost: x\r\n"
                                  b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n")
            # RFC 9110 §10.1.1: the final answer without the interim one; the body never came,
            # so the connection ends with it.
            assert data.startswith(b"HTTP/1.1 417 "), data
            assert b"100 Continue" not in data and b"not reading that" in data
            assert b"connection: close" in data.lower()
    run(main)


def test_client_leaving_mid_body_is_http_disconnect(run):
    messages: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await no_lifespan(scope, receive, send):
            return
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] == "http.disconnect" or not message["more_body"]:
                return

    async def main() -> None:
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            await client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npart")
            await asyncio.wait_for(_until(lambda: messages), 5)
            await client.close()
            await asyncio.wait_for(_until(lambda: messages[-1]["type"] == "http.disconnect"), 5)
        assert messages[0] == {"type": "http.request", "body": b"part", "more_body": True}
    run(main)


def test_app_waiting_after_the_body_hears_the_disconnect_at_once(run):
    heard: list[float] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await no_lifespan(scope, receive, send):
            return
        assert await read_body(receive) == b"job"
        message = await receive()      # a long poll: the client leaving is the only news
        assert message == {"type": "http.disconnect"}
        heard.append(time.monotonic())

    async def main() -> None:
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            await client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\njob")
            await asyncio.sleep(0.2)
            assert heard == []
            left = time.monotonic()
            await client.close()
            await asyncio.wait_for(_until(lambda: heard), 5)
            assert heard[0] - left < 1.0
    run(main)


def test_a_refused_body_is_the_cores_status_and_disconnect_for_the_app(run):
    messages: list[dict[str, Any]] = []
    calls: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await no_lifespan(scope, receive, send):
            return
        calls.append(scope["path"])
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] == "http.disconnect" or not message["more_body"]:
                break
        await respond(send, 200, b"the app would answer this")

    async def main() -> None:
        async with serving(app, limits=Limits(max_body_bytes=1000)) as server:
            declared = await exchange(server.port, b"POST /declared HTTP/1.1\r\nHost: x\r\n"
                                      b"Content-Length: 5000\r\n\r\n")
            assert declared.startswith(b"HTTP/1.1 413 "), declared
            client = await RawClient.open(server.port)
            try:
                await client.send(b"POST /chunked HTTP/1.1\r\nHost: x\r\n"
                                  b"Transfer-Encoding: chunked\r\n\r\n200\r\n" + b"z" * 0x200
                                  + b"\r\n")
                await asyncio.wait_for(_until(lambda: calls), 5)
                await client.send(b"".join(b"200\r\n" + b"z" * 0x200 + b"\r\n" for _ in range(3))
                                  + b"0\r\n\r\n")
                chunked = await client.read_until_close()
            finally:
                await client.close()
            assert chunked.startswith(b"HTTP/1.1 413 "), chunked
            assert b"the app would answer this" not in chunked
        # A declared length over the limit never reaches the app (RFC 9110 §15.5.14).
        assert calls == ["/chunked"]
        assert messages[-1] == {"type": "http.disconnect"}
    run(main)
