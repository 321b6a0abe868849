"""A chunked response ended with a trailer section by the core: ``conn.end_stream(trailers)``
(RFC 9112 §7.1.2, RFC 9110 §6.5).

Over real sockets on 127.0.0.1, on uvloop and stdlib asyncio, a listener runs the core's server
role with a test entry (no App): the bytes after the head are compared byte for byte, and read
again with h11 (an independent parser) so the trailer section is one another implementation
reads.  Then what may not be sent: malformed fields and fields RFC 9110 §6.5.1 keeps out of a
trailer section (``ValueError``, the response still streaming, so the handler can end it plainly),
trailers on a body framed by Content-Length (``ValueError``), and the responses that have no
trailer section at all (HEAD, 204, an HTTP/1.0 client: checked and dropped).  The core's own
bookkeeping is kept: the observer hears each response once, keep-alive and pipelining go on, a
handler that fails on its trailers cuts the response short and closes.  Last, the ASGI adapter's
``end_with_trailers`` goes through the same call.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable

import h11
import pytest

from tests.asgi.asgi_support import no_lifespan
from tests.asgi.asgi_support import serving as serving_asgi
from tests.support import listening_core

Handler = Callable[[Any, Any, Any], Awaitable[None]]


class Observer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def response_done(self, conn: Any, head: Any, status: int, sent_bytes: int,
                      duration_s: float) -> None:
        self.calls.append((head.target, status, sent_bytes))


def listening(handler: Handler, observer: Observer | None = None) -> Any:
    """A listener on 127.0.0.1 whose requests all go to ``handler(conn, head, body)``."""
    return listening_core(handler, observer=observer)


class Client:
    """A raw connection: requests go out as bytes, each response is read through h11 while the
    exact bytes it came in are kept."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.h11 = h11.Connection(h11.CLIENT)

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, port: int) -> AsyncIterator["Client"]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            yield cls(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def get(self, target: str, method: str = "GET",
                  te_trailers: bool = True) -> tuple[bytes, h11.Response, bytes, list[Any]]:
        """``(raw bytes after the head, h11's response, body, trailer fields)``."""
        conn = self.h11
        if conn.our_state is h11.DONE:
            conn.start_next_cycle()
        headers = [("Host", "x")] + ([("TE", "trailers")] if te_trailers else [])
        conn.send(h11.Request(method=method, target=target, headers=headers))
        wire = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
        self.writer.write(wire.encode("latin-1") + b"\r\n")
        conn.send(h11.EndOfMessage())
        raw = bytearray()
        response: h11.Response | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await asyncio.wait_for(self.reader.read(65536), 5)
                raw += data
                conn.receive_data(data)
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert response is not None
                _, _, after_head = bytes(raw).partition(b"\r\n\r\n")
                return after_head, response, bytes(body), list(event.headers)
            else:
                raise AssertionError(f"unexpected h11 event {event!r}")


def lower_fields(fields: Iterable[Any]) -> list[tuple[bytes, bytes]]:
    return [(bytes(name).lower(), bytes(value)) for name, value in fields]


# ---------------------------------------------------------------------------- sent byte for byte
async def streamed(conn: Any, trailers: Any, status: int = 200, length: int = -1) -> None:
    conn.start_stream(status, [("Trailer", "X-Checksum")], "text/plain", length)
    await conn.write(b"abc")
    await conn.write(b"defgh")
    conn.end_stream(trailers)


def test_trailer_section_is_sent_byte_for_byte_and_the_connection_stays(run: Any) -> None:
    observer = Observer()

    async def handler(conn: Any, head: Any, body: Any) -> None:
        assert not conn.trailers_allowed          # nothing started yet
        if head.target == "/plain":
            conn.respond(200, None, b"next")
            return
        conn.start_stream(200, None, "text/plain")
        assert conn.trailers_allowed
        await conn.write(b"abc")
        conn.end_stream([("X-Checksum", "abc"), (b"Server-Timing", b"db;dur=3"),
                         ("Content-Digest", "sha-256=:AAAA:"), ("Grpc-Status", 0)])
        assert not conn.trailers_allowed          # ended

    async def main() -> None:
        async with listening(handler, observer) as port, Client.open(port) as client:
            raw, response, body, trailers = await client.get("/t")
            again = await client.get("/plain")
        # RFC 9112 §7.1.2: the last chunk, each field line as given (names keep their case,
        # a non-str value is its str), the empty line; one trailer section ends the message.
        assert raw == (b"3\r\nabc\r\n0\r\nX-Checksum: abc\r\nServer-Timing: db;dur=3\r\n"
                       b"Content-Digest: sha-256=:AAAA:\r\nGrpc-Status: 0\r\n\r\n")
        assert (b"transfer-encoding", b"chunked") in lower_fields(response.headers)
        assert body == b"abc"
        assert lower_fields(trailers) == [(b"x-checksum", b"abc"), (b"server-timing", b"db;dur=3"),
                                          (b"content-digest", b"sha-256=:AAAA:"),
                                          (b"grpc-status", b"0")]
        # The next request on the same connection is answered: keep-alive was kept.
        assert again[2] == b"next"
        # The observer heard each response once, with the content bytes (no framing, no trailers).
        assert observer.calls == [("/t", 200, 3), ("/plain", 200, 4)]
    run(main)


def test_empty_trailers_end_like_no_trailers(run: Any) -> None:
    async def handler(conn: Any, head: Any, body: Any) -> None:
        length = 8 if head.target == "/length" else -1
        await streamed(conn, [], length=length)

    async def main() -> None:
        async with listening(handler) as port, Client.open(port) as client:
            chunked = await client.get("/chunked")
            length = await client.get("/length")
        assert chunked[0] == b"3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n" and chunked[3] == []
        # No fields: nothing to carry, so a Content-Length body ends as it always does.
        assert length[0] == b"abcdefgh"
    run(main)


def test_pipelined_requests_each_get_their_trailers_in_order(run: Any) -> None:
    async def handler(conn: Any, head: Any, body: Any) -> None:
        conn.start_stream(200, None, "text/plain")
        await conn.write(head.target.encode())
        conn.end_stream([("X-Target", head.target)])

    async def main() -> None:
        async with listening(handler) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(b"".join(f"GET /{n} HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n"
                                      .encode() for n in (1, 2, 3)))
                raw = b""
                while raw.count(b"X-Target") < 3:
                    data = await asyncio.wait_for(reader.read(65536), 5)
                    assert data, f"closed after {raw!r}"
                    raw += data
            finally:
                writer.close()
        bodies = [part.partition(b"\r\n\r\n")[2] for part in raw.split(b"HTTP/1.1 200 OK")[1:]]
        assert bodies == [f"2\r\n/{n}\r\n0\r\nX-Target: /{n}\r\n\r\n".encode() for n in (1, 2, 3)]
    run(main)


# ---------------------------------------------------------------------------- refused fields
REFUSED = [
    pytest.param(("Content-Length", "3"), id="framing-content-length"),
    pytest.param(("transfer-encoding", "chunked"), id="framing-transfer-encoding"),
    pytest.param(("Trailer", "X-A"), id="framing-trailer"),
    pytest.param(("Connection", "close"), id="connection"),
    pytest.param(("Keep-Alive", "timeout=5"), id="keep-alive"),
    pytest.param(("TE", "trailers"), id="te"),
    pytest.param(("Upgrade", "websocket"), id="upgrade"),
    pytest.param(("Host", "example.org"), id="routing-host"),
    pytest.param(("Cache-Control", "no-store"), id="control-cache-control"),
    pytest.param(("Date", "Sun, 06 Nov 1994 08:49:37 GMT"), id="control-date"),
    pytest.param(("Location", "/elsewhere"), id="control-location"),
    pytest.param(("Vary", "accept"), id="control-vary"),
    pytest.param(("Retry-After", "5"), id="control-retry-after"),
    pytest.param(("Authorization", "Basic eDp5"), id="authorization"),
    pytest.param(("WWW-Authenticate", "Basic"), id="www-authenticate"),
    pytest.param(("Set-Cookie", "a=b"), id="set-cookie"),
    pytest.param((b"CONTENT-TYPE", b"text/html"), id="content-type-bytes-any-case"),
    pytest.param(("Content-Encoding", "gzip"), id="content-encoding"),
    pytest.param(("Content-Range", "bytes 0-1/2"), id="content-range"),
    pytest.param(("X-Bad", "a\r\nX-Injected: 1"), id="crlf-in-value"),
    pytest.param(("X-Bad", "a\nb"), id="lf-in-value"),
    pytest.param(("X-Bad", b"a\x00b"), id="nul-in-value"),
    pytest.param(("X-Bad", "a\x7fb"), id="del-in-value"),
    pytest.param(("X-Bad", "caf\u20ac"), id="value-not-latin-1"),
    pytest.param(("X Bad", "1"), id="space-in-name"),
    pytest.param(("X-Bad:", "1"), id="colon-in-name"),
    pytest.param(("", "1"), id="empty-name"),
]


@pytest.mark.parametrize("field", REFUSED)
def test_a_field_that_may_not_be_a_trailer_is_refused_and_the_response_still_ends(
        run: Any, field: tuple[Any, Any]) -> None:
    errors: list[BaseException] = []

    async def handler(conn: Any, head: Any, body: Any) -> None:
        conn.start_stream(200, None, "text/plain")
        await conn.write(b"abc")
        try:
            conn.end_stream([("X-Good", "1"), field])
        except ValueError as exc:
            errors.append(exc)
        # Refused before anything was written: the response is still streaming.
        assert conn.trailers_allowed
        conn.end_stream()

    async def main() -> None:
        async with listening(handler) as port, Client.open(port) as client:
            raw, _, _, trailers = await client.get("/")
            again = await client.get("/")
        assert len(errors) == 2   # once per request
        assert raw == b"3\r\nabc\r\n0\r\n\r\n" and trailers == []
        assert again[0] == raw   # the connection was kept
    run(main)


def test_a_handler_failing_on_its_trailers_cuts_the_response_short(run: Any) -> None:
    async def handler(conn: Any, head: Any, body: Any) -> None:
        conn.start_stream(200, None, "text/plain")
        await conn.write(b"abc")
        conn.end_stream([("Set-Cookie", "a=b")])   # raises into the core

    async def main() -> None:
        async with listening(handler) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                raw = await asyncio.wait_for(reader.read(), 5)   # until the server closes
            finally:
                writer.close()
        # The head went out and the body can't be ended as framed: no last chunk, then close
        # (the client sees an incomplete message, never a wrong one).
        assert raw.endswith(b"\r\n\r\n3\r\nabc\r\n")
    run(main)


# ------------------------------------------------------------------- no trailer section to fill
def test_trailers_on_a_content_length_body_are_a_value_error(run: Any) -> None:
    errors: list[BaseException] = []

    async def handler(conn: Any, head: Any, body: Any) -> None:
        conn.start_stream(200, None, "text/plain", 8)
        assert not conn.trailers_allowed
        await conn.write(b"abcdefgh")
        try:
            conn.end_stream([("X-Checksum", "abc")])
        except ValueError as exc:
            errors.append(exc)
        conn.end_stream()

    async def main() -> None:
        async with listening(handler) as port, Client.open(port) as client:
            get = await client.get("/")
            head = await client.get("/", method="HEAD")
        # RFC 9112 §7.1.2: only the chunked coding has a trailer section.  The same handler
        # fails the same way for HEAD, though nothing of the body is sent then.
        assert len(errors) == 2 and all("Content-Length" in str(e) for e in errors)
        assert get[0] == b"abcdefgh" and get[3] == []
        assert (b"content-length", b"8") in lower_fields(head[1].headers) and head[0] == b""
    run(main)


def test_a_response_without_a_body_drops_its_trailers(run: Any) -> None:
    seen: list[bool] = []

    async def handler(conn: Any, head: Any, body: Any) -> None:
        status = 204 if head.target == "/204" else 200
        conn.start_stream(status, None, "text/plain")
        seen.append(conn.trailers_allowed)
        await conn.write(b"abc")
        conn.end_stream([("X-Checksum", "abc")])

    async def main() -> None:
        async with listening(handler) as port, Client.open(port) as client:
            head = await client.get("/head", method="HEAD")
            no_content = await client.get("/204")
            get = await client.get("/get")
        # HEAD (RFC 9110 §9.3.2) and 204 (§15.3.5) have no content, so no chunked coding and no
        # trailer section: the response ends at its head, and the connection goes on.
        assert seen == [False, False, True]
        assert head[0] == b""
        assert (b"transfer-encoding", b"chunked") in lower_fields(head[1].headers)
        assert no_content[0] == b"" and no_content[1].status_code == 204
        assert get[0] == b"3\r\nabc\r\n0\r\nX-Checksum: abc\r\n\r\n"
    run(main)


def test_bad_trailers_are_refused_even_when_they_would_be_dropped(run: Any) -> None:
    errors: list[BaseException] = []

    async def handler(conn: Any, head: Any, body: Any) -> None:
        conn.start_stream(200, None, "text/plain")
        try:
            conn.end_stream([("Content-Type", "text/html")])
        except ValueError as exc:
            errors.append(exc)
        conn.end_stream()

    async def main() -> None:
        async with listening(handler) as port, Client.open(port) as client:
            head = await client.get("/", method="HEAD")
        # The same mistake fails for HEAD as for GET.
        assert len(errors) == 1 and head[0] == b""
    run(main)


def test_an_http10_client_gets_the_body_without_a_trailer_section(run: Any) -> None:
    seen: list[bool] = []

    async def handler(conn: Any, head: Any, body: Any) -> None:
        conn.start_stream(200, None, "text/plain")
        seen.append(conn.trailers_allowed)
        await conn.write(b"abc")
        conn.end_stream([("X-Checksum", "abc")])

    async def main() -> None:
        async with listening(handler) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(b"GET / HTTP/1.0\r\nTE: trailers\r\n\r\n")
                raw = await asyncio.wait_for(reader.read(), 5)
            finally:
                writer.close()
        # RFC 9112 §6.3 item 8: an HTTP/1.0 client reads no chunked coding; the close ends the
        # body, and there is no trailer section to put the fields in.
        assert seen == [False]
        head, _, rest = raw.partition(b"\r\n\r\n")
        assert b"transfer-encoding" not in head.lower() and rest == b"abc"
    run(main)


def test_trailers_after_the_client_left_raise_nothing(run: Any) -> None:
    done: asyncio.Future[BaseException | None]

    async def handler(conn: Any, head: Any, body: Any) -> None:
        conn.start_stream(200, None, "text/plain")
        await conn.write(b"abc")
        await asyncio.wait_for(conn.stream.wait_disconnected(), 5)
        try:
            conn.end_stream([("X-Checksum", "abc")])
        except BaseException as exc:
            done.set_result(exc)
            raise
        done.set_result(None)

    async def main() -> None:
        nonlocal done
        done = asyncio.get_running_loop().create_future()
        async with listening(handler) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.wait_for(reader.readuntil(b"abc\r\n"), 5)
            writer.close()
            # Ending the body of a client that is gone is no error (as end_stream() without
            # trailers): nothing is written, and the handler's work is over.
            assert await asyncio.wait_for(done, 5) is None
    run(main)


def test_end_stream_without_a_stream_is_a_runtime_error(run: Any) -> None:
    errors: list[BaseException] = []

    async def handler(conn: Any, head: Any, body: Any) -> None:
        try:
            conn.end_stream([("X-A", "1")])
        except RuntimeError as exc:
            errors.append(exc)
        conn.respond(200, None, b"ok")

    async def main() -> None:
        async with listening(handler) as port, Client.open(port) as client:
            raw = await client.get("/")
        assert raw[0] == b"ok" and len(errors) == 1
    run(main)


# ---------------------------------------------------------------------------- through ASGI
def test_asgi_trailers_on_a_declared_length_are_left_out(run: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await no_lifespan(scope, receive, send):
            return
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"content-length", b"3")]})
        await send({"type": "http.response.body", "body": b"abc", "more_body": False})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")]})

    async def main() -> None:
        async with serving_asgi(app) as server, Client.open(server.port) as client:
            first = await client.get("/")
            second = await client.get("/")
        # end_with_trailers: a body framed by the app's Content-Length has no trailer section,
        # so the response just ends (and the connection stays usable).
        assert first[0] == b"abc" and first[3] == [] and second[0] == b"abc"
    run(main)

