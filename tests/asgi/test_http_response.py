"""``send()`` for HTTP on real sockets, both loops: framing (a declared Content-Length honoured,
never silently chunked; chunked or close-delimited otherwise), broken promises and message order
as ``RuntimeError`` raised into the app, 500 for a response never started, HEAD, write
backpressure, ``OSError`` once the client is gone, ``http.response.pathsend`` and
``http.response.trailers``, and the ``--header`` fields."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from cyserve.asgi import ASGIHost
from tests.asgi.asgi_support import no_lifespan, respond, serving
from tests.support import RawClient, exchange, fetch


async def _until(predicate: Any, timeout_s: float = 5.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(poll(), timeout_s)


def start(status: int = 200, headers: list[tuple[bytes, bytes]] | None = None,
          **extra: Any) -> dict[str, Any]:
    return {"type": "http.response.start", "status": status, "headers": headers or [], **extra}


def body(data: bytes = b"", more: bool = False) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


def scripted(script: Any, errors: list[BaseException] | None = None) -> Any:
    """An app that runs ``script(scope, send)``, keeping what ``send`` raised in ``errors``
    (and re-raising it)."""
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await no_lifespan(scope, receive, send):
            return
        try:
            await script(scope, send)
        except Exception as exc:
            if errors is not None:
                errors.append(exc)
            raise
    return app


def split(raw: bytes) -> tuple[bytes, bytes]:
    head, _, rest = raw.partition(b"\r\n\r\n")
    return head.lower(), rest


# ---------------------------------------------------------------------- framing
def test_one_body_gets_its_length_and_a_declared_length_frames_a_stream(run):
    async def script(scope: dict[str, Any], send: Any) -> None:
        if scope["path"] == "/whole":
            await send(start(201, [(b"content-type", b"text/plain"), (b"x-app", b"1")]))
            await send(body(b"whole body"))
        else:
            await send(start(200, [(b"content-length", b"10")]))
            await send(body(b"abc", more=True))
            await send(body(b"defghij", more=True))
            await send(body())

    async def main() -> None:
        async with serving(scripted(script)) as server:
            client = await RawClient.open(server.port)
            try:
                whole = await client.request("GET", "/whole")
                streamed = await client.request("GET", "/streamed")
            finally:
                await client.close()
        assert whole.status == 201 and whole.body == b"whole body"
        assert whole.headers["content-length"] == "10" and whole.headers["x-app"] == "1"
        assert "transfer-encoding" not in whole.headers
        # RFC 9112 §6.3: the length the app declared frames the body; it is not chunked.
        assert streamed.body == b"abcdefghij" and streamed.headers["content-length"] == "10"
        assert "transfer-encoding" not in streamed.headers
    run(main)


def test_a_stream_without_length_is_chunked_or_closed_for_http10(run):
    async def script(scope: dict[str, Any], send: Any) -> None:
        await send(start(200, [(b"content-type", b"text/plain")]))
        for part in (b"one ", b"two ", b"three"):
            await send(body(part, more=True))
        await send(body())

    async def main() -> None:
        async with serving(scripted(script)) as server:
            reply = await fetch(server.port)
            assert reply.body == b"one two three"
            assert reply.headers["transfer-encoding"] == "chunked"
            old = await exchange(server.port, b"GET / HTTP/1.0\r\n\r\n")
        head, rest = split(old)
        # RFC 9112 §6.1, §6.3 item 8: no chunked coding for HTTP/1.0; closing ends the body.
        assert b"transfer-encoding" not in head and b"content-length" not in head
        assert b"connection: close" in head and rest == b"one two three"
    run(main)


def test_head_gets_the_declared_length_and_no_body(run):
    async def script(scope: dict[str, Any], send: Any) -> None:
        await send(start(200, [(b"content-length", b"1234")]))
        await send(body(b"" if scope["path"] == "/empty" else b"x" * 1234))

    async def main() -> None:
        async with serving(scripted(script)) as server:
            client = await RawClient.open(server.port)
            try:
                for path in ("/empty", "/full"):
                    reply = await client.request("HEAD", path)
                    assert reply.status == 200 and reply.body == b""
                    # RFC 9110 §9.3.2: the length a GET would have had.
                    assert reply.headers["content-length"] == "1234"
                assert (await client.request("GET", "/full")).body == b"x" * 1234
            finally:
                await client.close()
    run(main)


def test_interim_status_is_refused(run):
    errors: list[BaseException] = []

    async def script(scope: dict[str, Any], send: Any) -> None:
        await send(start(101))

    async def main() -> None:
        async with serving(scripted(script, errors)) as server:
            assert (await fetch(server.port)).status == 500
        assert isinstance(errors[0], ValueError)
    run(main)


# ---------------------------------------------------------------------- broken promises
@pytest.mark.parametrize("declared, parts", [
    (3, [b"abcde"]), (10, [b"abcd"]),
], ids=["longer", "shorter"])
def test_a_single_body_that_breaks_its_length_is_500_and_closes(run, declared, parts):
    errors: list[BaseException] = []

    async def script(scope: dict[str, Any], send: Any) -> None:
        await send(start(200, [(b"content-length", b"%d" % declared)]))
        await send(body(parts[0]))

    async def main() -> None:
        async with serving(scripted(script, errors)) as server:
            raw = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _ = split(raw)
        # Nothing of the app's response went out: the core answers 500 and closes.
        assert head.startswith(b"http/1.1 500 ") and b"connection: close" in head
        assert isinstance(errors[0], RuntimeError)
        assert "Content-Length" in str(errors[0])
    run(main)


@pytest.mark.parametrize("declared, parts", [
    (5, [b"abc", b"defg"]), (10, [b"abc", b"de"]),
], ids=["longer", "shorter"])
def test_a_stream_that_breaks_its_length_is_cut_and_closed(run, declared, parts):
    errors: list[BaseException] = []

    async def script(scope: dict[str, Any], send: Any) -> None:
        await send(start(200, [(b"content-length", b"%d" % declared)]))
        await send(body(parts[0], more=True))
        await send(body(parts[1]))

    async def main() -> None:
        async with serving(scripted(script, errors)) as server:
            raw = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, rest = split(raw)
        assert head.startswith(b"http/1.1 200 ") and b"content-length: %d" % declared in head
        # Never more than declared; the connection closed short of it (RFC 9112 §6.3).
        assert len(rest) < declared and rest.startswith(b"abc")
        assert isinstance(errors[0], RuntimeError)
    run(main)


def test_an_app_swallowing_the_broken_length_still_closes_the_connection(run):
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await no_lifespan(scope, receive, send):
            return
        await send(start(200, [(b"content-length", b"4")]))
        await send(body(b"ab", more=True))
        with pytest.raises(RuntimeError):
            await send(body(b"cdef"))

    async def main() -> None:
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            try:
                await client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                data = await client.read_until_close()
            finally:
                await client.close()
        assert data.endswith(b"\r\n\r\nab")
    run(main)


def test_a_second_start_and_messages_after_the_end_raise_runtime_error(run):
    errors: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await no_lifespan(scope, receive, send):
            return
        try:
            await send(body(b"before any start"))
        except RuntimeError as exc:
            errors.append(exc)
        await send(start(200, [(b"content-type", b"text/plain")]))
        try:
            await send(start(404))
        except RuntimeError as exc:
            errors.append(exc)
        await send(body(b"the first start wins"))
        for late in (body(b"late"), body(), start(500)):
            try:
                await send(late)
            except RuntimeError as exc:
                errors.append(exc)

    async def main() -> None:
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            try:
                reply = await client.request()
                assert reply.status == 200 and reply.body == b"the first start wins"
                # The connection is still good for the next request.
                assert (await client.request()).status == 200
            finally:
                await client.close()
        assert [type(e) for e in errors] == [RuntimeError] * 10   # five for each request
        assert "http.response.start" in str(errors[0])
        assert "second" in str(errors[1])
        assert all("complete" in str(e) for e in errors[2:5])
    run(main)


def test_a_response_never_started_is_500_and_logged(run, caplog):
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await no_lifespan(scope, receive, send):
            return
        if scope["path"] == "/raises":
            raise LookupError("the app's own bug")

    async def main() -> None:
        async with serving(app) as server:
            silent = await fetch(server.port, "GET", "/returns")
            raising = await fetch(server.port, "GET", "/raises")
        assert silent.status == 500 and raising.status == 500
        assert silent.headers["connection"] == "close"
    with caplog.at_level(logging.ERROR):
        run(main)
    logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert any(r.exc_info and "without starting a response" in str(r.exc_info[1]) for r in logged)
    assert any(r.exc_info and isinstance(r.exc_info[1], LookupError) for r in logged)


def test_an_error_after_the_head_cuts_the_response_and_closes(run):
    async def script(scope: dict[str, Any], send: Any) -> None:
        await send(start(200))
        await send(body(b"partial", more=True))
        raise ValueError("mid-stream failure")

    async def main() -> None:
        async with serving(scripted(script)) as server:
            raw = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, rest = split(raw)
        assert head.startswith(b"http/1.1 200 ") and b"transfer-encoding: chunked" in head
        # The chunk went out, the last chunk never did: the client sees an incomplete body.
        assert rest.startswith(b"7\r\npartial\r\n") and not rest.endswith(b"0\r\n\r\n")
    run(main)


# ---------------------------------------------------------------------- flow
def test_streaming_waits_for_a_slow_client_and_stops_with_oserror_when_it_leaves(run):
    chunk = b"s" * (256 * 1024)
    progress: dict[str, Any] = {"sent": 0, "error": None}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await no_lifespan(scope, receive, send):
            return
        await send(start(200, [(b"content-type", b"application/octet-stream")]))
        try:
            for _ in range(400):    # 100 MiB if nothing held it back
                await send(body(chunk, more=True))
                progress["sent"] += len(chunk)
            await send(body())
        except OSError as exc:       # ASGI 2.4: the client is gone
            progress["error"] = exc

    async def main() -> None:
        async with serving(app) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            await _until(lambda: progress["sent"] > 0)
            await asyncio.sleep(0.5)
            stalled_at = progress["sent"]
            await asyncio.sleep(0.3)
            # Backpressure: the app's send() waits while nobody reads.
            assert progress["sent"] == stalled_at < 40 * 1024 * 1024, stalled_at
            received = 0
            while received < 2 * stalled_at:
                data = await asyncio.wait_for(reader.read(1 << 20), 5)
                assert data
                received += len(data)
            assert progress["sent"] > stalled_at     # reading resumed the app
            writer.transport.abort()
            await _until(lambda: progress["error"] is not None)
        assert isinstance(progress["error"], OSError)
    run(main, timeout_s=40)


def test_default_headers_are_added_unless_the_app_set_them(run):
    async def script(scope: dict[str, Any], send: Any) -> None:
        await respond(send, body=b"x", headers=[(b"x-frame", b"app's"), (b"content-type", b"a/b")])

    async def main() -> None:
        host = ASGIHost(scripted(script))
        host.default_headers = [("X-Frame", "default"), ("X-Served-By", "edge-1")]
        async with serving(host) as server:
            reply = await fetch(server.port)
        assert reply.headers["x-frame"] == "app's" and reply.headers["x-served-by"] == "edge-1"
        assert [k for k, _ in reply.raw_headers].count("x-frame") == 1
    run(main)


# ---------------------------------------------------------------------- extensions
def test_pathsend_sends_the_file_through_the_static_path(run, tmp_path):
    content = bytes(range(256)) * 1000    # larger than one file chunk
    path = tmp_path / "data.bin"
    path.write_bytes(content)

    async def script(scope: dict[str, Any], send: Any) -> None:
        assert "http.response.pathsend" in scope["extensions"]
        headers = [(b"content-type", b"application/octet-stream")]
        if scope["path"] == "/declared":
            headers.append((b"content-length", b"%d" % len(content)))
        await send(start(200, headers))
        await send({"type": "http.response.pathsend", "path": str(path)})

    async def main() -> None:
        async with serving(scripted(script)) as server:
            client = await RawClient.open(server.port)
            try:
                for target in ("/declared", "/sized"):
                    reply = await client.request("GET", target)
                    assert reply.body == content
                    assert reply.headers["content-length"] == str(len(content))
                head = await client.request("HEAD", "/sized")
                assert head.body == b"" and head.headers["content-length"] == str(len(content))
            finally:
                await client.close()
    run(main)


def test_pathsend_of_a_missing_file_raises_into_the_app(run, tmp_path):
    errors: list[BaseException] = []

    async def script(scope: dict[str, Any], send: Any) -> None:
        await send(start(200))
        await send({"type": "http.response.pathsend", "path": str(tmp_path / "absent")})

    async def main() -> None:
        async with serving(scripted(script, errors)) as server:
            assert (await fetch(server.port)).status == 500
        assert isinstance(errors[0], FileNotFoundError)
    run(main)


def trailer_app(scope: dict[str, Any]) -> Any:
    async def script(scope: dict[str, Any], send: Any) -> None:
        await send(start(200, [(b"content-type", b"text/plain")], trailers=True))
        await send(body(b"payload", more=True))
        await send(body())
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")],
                    "more_trailers": True})
        await send({"type": "http.response.trailers", "headers": [(b"server-timing", b"db;dur=3")]})
    return scripted(script)


def test_trailers_go_out_when_the_client_reads_them(run):
    async def main() -> None:
        async with serving(trailer_app({})) as server:
            client = await RawClient.open(server.port)
            try:
                await client.send(b"GET / HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n")
                await asyncio.sleep(0.2)
                raw = await asyncio.wait_for(client.reader.read(65536), 5)
                # The connection stays usable: the trailer section ended the message.
                again = await client.request("GET", "/")
            finally:
                await client.close()
        head, rest = split(raw)
        assert b"transfer-encoding: chunked" in head
        # RFC 9112 §7.1.2: the last chunk, the trailer fields, the empty line.
        assert rest == b"7\r\npayload\r\n0\r\nx-checksum: abc\r\nserver-timing: db;dur=3\r\n\r\n"
        assert again.status == 200 and again.body == b"payload"
    run(main)


def test_trailers_are_left_out_for_a_client_that_did_not_ask(run):
    async def main() -> None:
        async with serving(trailer_app({})) as server:
            raw = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n"
                                 b"Connection: close\r\n\r\n")
        _, rest = split(raw)
        assert rest == b"7\r\npayload\r\n0\r\n\r\n"
    run(main)
