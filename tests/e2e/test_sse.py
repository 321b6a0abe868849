"""Server-sent events over real sockets: framing, keep-alive pings, the producer stopped and
closed when the client leaves, and the SSE clock example."""
from __future__ import annotations

import asyncio
import contextlib

import h11

from cyserve import App
from cyserve.sse import ServerSentEvent, SSEResponse
from tests.support import load_example, serving


class EventStreamClient:
    """Reads one streamed response as it arrives (h11 parses it: not the server's own codec)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.conn = h11.Connection(h11.CLIENT)
        self.buffer = b""
        self.ended = False

    @classmethod
    async def get(cls, port: int, target: str) -> tuple["EventStreamClient", h11.Response]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        request = h11.Request(method="GET", target=target,
                              headers=[("Host", "127.0.0.1"), ("Accept", "text/event-stream")])
        writer.write(client.conn.send(request) + client.conn.send(h11.EndOfMessage()))
        event = await client._next()
        assert isinstance(event, h11.Response), event
        return client, event

    async def _next(self, timeout_s: float = 5.0):
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.conn.receive_data(await asyncio.wait_for(self.reader.read(65536), timeout_s))

    async def event(self, timeout_s: float = 5.0) -> bytes | None:
        """The next whole event block (up to and including its blank line); None at the end."""
        while b"\n\n" not in self.buffer:
            if self.ended:
                return None
            item = await self._next(timeout_s)
            if isinstance(item, h11.Data):
                self.buffer += item.data
            elif isinstance(item, h11.EndOfMessage):
                self.ended = True
        block, self.buffer = self.buffer.split(b"\n\n", 1)
        return block + b"\n\n"

    async def rest(self) -> list[bytes]:
        events = []
        while (block := await self.event()) is not None:
            events.append(block)
        assert self.buffer == b""
        return events

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def test_sse_frames_events_and_sets_stream_headers(run):
    async def main():
        app = App()

        @app.get("/events")
        async def events(request):
            async def produce():
                yield "plain"
                yield ServerSentEvent("line one\nline two", event="multi", id="1")
                yield {"data": {"n": 2}, "id": "2", "retry": 3000}
                yield ServerSentEvent(comment="just a comment")
            return SSEResponse(produce())

        async with serving(app) as server:
            client, head = await EventStreamClient.get(server.port, "/events")
            headers = {k.decode().lower(): v.decode() for k, v in head.headers}
            assert head.status_code == 200
            assert headers["content-type"] == "text/event-stream"
            assert headers["cache-control"] == "no-cache"
            assert headers["x-accel-buffering"] == "no"
            assert headers["transfer-encoding"] == "chunked"
            assert await client.rest() == [
                b"data: plain\n\n",
                b"event: multi\nid: 1\ndata: line one\ndata: line two\n\n",
                b'id: 2\nretry: 3000\ndata: {"n":2}\n\n',
                b": just a comment\n\n",
            ]
            await client.close()
    run(main)


def test_sse_pings_only_while_the_producer_is_idle(run):
    async def main():
        app = App()

        @app.get("/idle")
        async def idle(request):
            async def produce():
                yield "first"
                await asyncio.sleep(0.45)  # idle: about four pings at 0.1 s
                yield "second"
            return SSEResponse(produce(), ping_interval_s=0.1)

        @app.get("/busy")
        async def busy(request):
            async def produce():
                for i in range(15):
                    yield f"tick {i}"
                    await asyncio.sleep(0.02)  # never near 0.25 s without a write
            return SSEResponse(produce(), ping_interval_s=0.25)

        async with serving(app) as server:
            client, _ = await EventStreamClient.get(server.port, "/idle")
            events = await client.rest()
            assert events[0] == b"data: first\n\n" and events[-1] == b"data: second\n\n"
            pings = events[1:-1]
            assert 2 <= len(pings) <= 5 and set(pings) == {b": ping\n\n"}
            await client.close()

            client, _ = await EventStreamClient.get(server.port, "/busy")
            events = await client.rest()
            assert events == [b"data: tick %d\n\n" % i for i in range(15)]
            await client.close()
    run(main)


def test_sse_producer_is_cancelled_and_closed_when_an_idle_stream_loses_its_client(run):
    async def main():
        app = App()
        outcome: list[str] = []
        finished = asyncio.Event()

        @app.get("/wait")
        async def wait(request):
            async def produce():
                try:
                    yield "hello"
                    await asyncio.Event().wait()  # a producer with nothing more to say
                    yield "never"
                except asyncio.CancelledError:
                    outcome.append("cancelled")
                    raise
                finally:
                    outcome.append("finally")
                    finished.set()
            return SSEResponse(produce(), ping_interval_s=None)

        async with serving(app) as server:
            client, _ = await EventStreamClient.get(server.port, "/wait")
            assert await client.event() == b"data: hello\n\n"
            await client.close()
            await asyncio.wait_for(finished.wait(), 3)
            assert outcome == ["cancelled", "finally"]
    run(main)


def test_sse_producer_suspended_at_a_yield_is_closed_when_the_client_leaves(run):
    async def main():
        app = App()
        finished = asyncio.Event()
        produced = []

        @app.get("/flood")
        async def flood(request):
            async def produce():
                try:
                    while True:
                        produced.append(1)
                        yield "x" * 8192  # the client stops reading: writes pause on drain
                finally:
                    finished.set()
            return SSEResponse(produce(), ping_interval_s=0.05)

        async with serving(app) as server:
            client, _ = await EventStreamClient.get(server.port, "/flood")
            assert (await client.event()).startswith(b"data: xxx")
            await asyncio.sleep(0.5)
            count = len(produced)
            await asyncio.sleep(0.3)
            assert len(produced) == count  # backpressure held the producer
            await client.close()
            await asyncio.wait_for(finished.wait(), 3)
    run(main)


def test_sse_producer_error_cuts_the_stream_without_a_clean_end(run):
    async def main():
        app = App()

        @app.get("/broken")
        async def broken(request):
            async def produce():
                yield "before"
                raise RuntimeError("producer failed")
            return SSEResponse(produce())

        async with serving(app) as server:
            client, _ = await EventStreamClient.get(server.port, "/broken")
            assert await client.event() == b"data: before\n\n"
            data = await asyncio.wait_for(client.reader.read(), 3)
            assert b"0\r\n\r\n" not in data  # no last chunk: the client can tell it was cut
            await client.close()
    run(main)


def test_sse_clock_example_streams_ticks(run):
    async def main():
        example = load_example("sse_clock")
        async with serving(example.app) as server:
            client, head = await EventStreamClient.get(server.port, "/clock?interval=0.05")
            assert head.status_code == 200
            first, second = await client.event(), await client.event()
            assert first.startswith(b"event: tick\nid: 1\ndata: ") and second.startswith(b"event: tick\nid: 2\n")
            await client.close()
            page = await EventStreamClient.get(server.port, "/")
            assert page[1].status_code == 200
            await page[0].close()
    run(main)
