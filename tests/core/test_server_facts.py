"""The server role's facts for operations, on a fake transport: the response observer
(``ServerState.observer``), the request counters and the per-request ``conn.forwarded`` slot.

Each observer case drives one connection through a script and compares what the observer heard
(target or None, status, content bytes) with a table; durations are checked to be sane (never
negative, at least the time a handler slept, bounded).  What the server wrote is parsed with h11
(``fakes.responses``), so each observed status is also one the client really got.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from cyserve._core.http.serialise import HeadWriter
from cyserve._core.http.server import server_connection
from cyserve._core.http.state import ServerState
from cyserve._core.io.deadline import PY_SLOT_INPUT
from cyserve._core.io.pyrole import attach_python_role
from cyserve.config import Limits, ServerConfig
from cyserve.errors import Disconnected

from .fakes import FakeTransport, feed, lose, responses, settle


def get(target: str, *fields: str, method: str = "GET") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: x", *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def post(target: str, body: bytes, length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return get(target, f"Content-Length: {size}", method="POST") + body


class Observer:
    def __init__(self) -> None:
        self.calls: list[tuple[str | None, int, int]] = []
        self.durations: list[float] = []
        self.conns: list[Any] = []
        self.forwarded: list[Any] = []

    def response_done(self, conn: Any, head: Any, status: int, sent_bytes: int,
                      duration_s: float) -> None:
        self.calls.append((None if head is None else head.target, status, sent_bytes))
        self.durations.append(duration_s)
        self.conns.append(conn)
        self.forwarded.append(conn.forwarded)


class Handlers:
    """The entry point: the request target picks what the handler does."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.gates: list[asyncio.Future[None]] = []
        self.seen_forwarded: list[Any] = []
        self.active: list[int] = []
        self.state: ServerState | None = None

    async def entry(self, conn: Any, head: Any, body: Any) -> None:
        target = head.target
        self.seen_forwarded.append(conn.forwarded)
        assert self.state is not None
        self.active.append(self.state.requests_active)
        if target == "/hello":
            conn.respond(200, None, b"hello")
        elif target == "/empty":
            conn.respond(204, None, b"")
        elif target == "/forward":
            conn.forwarded = (("203.0.113.9", 0), "https", "example.org")
            conn.respond(200, None, b"fwd")
        elif target == "/sleep":
            await asyncio.sleep(0.05)
            conn.respond(200, None, b"slept")
        elif target == "/stream":
            conn.start_stream(200, None, "text/plain")
            await conn.write(b"abc")
            await conn.write(b"defgh")
            conn.end_stream()
        elif target == "/stream-return":
            conn.start_stream(200, None, "text/plain")
            await conn.write(b"abcd")          # returns without end_stream: the core ends it
        elif target == "/stream-wait":
            conn.start_stream(200, None, "text/plain")
            await conn.write(b"12345")
            await self.gate()
            await conn.write(b"more")
            conn.end_stream()
        elif target == "/stream-raise":
            conn.start_stream(200, None, "text/plain")
            await conn.write(b"xy")
            raise RuntimeError("failed mid-stream")
        elif target == "/length":
            conn.start_stream(200, None, "text/plain", 3)
            await conn.write(b"abc")
            conn.end_stream()
        elif target == "/none":
            return
        elif target == "/raise":
            raise RuntimeError("the handler failed")
        elif target == "/wait":
            await self.gate()
            conn.respond(200, None, b"waited")
        elif target == "/upgrade":
            conn.upgrade("echo", None, lambda stream: attach_python_role(stream, Echo()))
        else:
            raise AssertionError(f"no route {target}")

    def gate(self) -> asyncio.Future[None]:
        fut = self.loop.create_future()
        self.gates.append(fut)
        return fut

    def open_gates(self) -> None:
        for gate in self.gates:
            if not gate.done():
                gate.set_result(None)


class Echo:
    def data_received(self, channel: Any) -> None:
        channel.write(channel.read())


class Conn:
    def __init__(self, loop: asyncio.AbstractEventLoop, config: ServerConfig | None = None,
                 state: ServerState | None = None, handlers: Handlers | None = None) -> None:
        self.handlers = handlers or Handlers(loop)
        self.state = state or ServerState(self.handlers.entry, config or ServerConfig(), loop)
        self.handlers.state = self.state
        self.stream = server_connection(self.state)
        self.transport = FakeTransport()
        self.stream.connection_made(self.transport)

    async def feed(self, data: bytes) -> None:
        feed(self.stream, data)
        await settle()

    async def close(self) -> None:
        self.handlers.open_gates()
        await settle()
        lose(self.stream)
        await settle()


UPGRADE = ("Connection: upgrade", "Upgrade: echo")

# (id, bytes the client sends, what the observer hears: (target or None, status, content bytes))
OBSERVED = [
    ("whole-response", get("/hello"), [("/hello", 200, 5)]),
    ("head-request-sends-no-content", get("/hello", method="HEAD"), [("/hello", 200, 0)]),
    ("no-content-status", get("/empty"), [("/empty", 204, 0)]),
    ("streamed-chunked", get("/stream"), [("/stream", 200, 8)]),
    ("streamed-ended-by-the-core", get("/stream-return"), [("/stream-return", 200, 4)]),
    ("streamed-with-length", get("/length"), [("/length", 200, 3)]),
    ("pipelined-each-once", get("/hello") + get("/stream") + get("/hello"),
     [("/hello", 200, 5), ("/stream", 200, 8), ("/hello", 200, 5)]),
    ("no-response-is-500", get("/none"), [("/none", 500, len(b"500 Internal Server Error\n"))]),
    ("handler-raised-is-500", get("/raise"),
     [("/raise", 500, len(b"500 Internal Server Error\n"))]),
    ("failed-mid-stream-reports-what-was-sent", get("/stream-raise"), [("/stream-raise", 200, 2)]),
    ("switching-protocols", get("/upgrade", *UPGRADE), [("/upgrade", 101, 0)]),
    ("parser-error-has-no-head", b"BAD\r\n\r\n", [(None, 400, None)]),
    ("request-after-a-good-one-fails-to-parse", get("/hello") + b"GET / HTTP/1.1\r\nA\r\n\r\n",
     [("/hello", 200, 5), (None, 400, None)]),
    ("body-too-large-has-its-head", post("/hello", b"", length=10_000), [("/hello", 413, None)]),
]


@pytest.mark.parametrize("data, expected", [pytest.param(d, e, id=i) for i, d, e in OBSERVED])
def test_observer_hears_each_response_once(run: Any, data: bytes,
                                           expected: list[tuple[str | None, int, int | None]]
                                           ) -> None:
    async def main() -> None:
        conn = Conn(asyncio.get_running_loop(),
                    ServerConfig(limits=Limits(max_body_bytes=1000)))
        observer = Observer()
        conn.state.observer = observer
        await conn.feed(data)
        await conn.close()
        method = "HEAD" if data.startswith(b"HEAD ") else "GET"   # h11 must know a HEAD
        parsed = responses(conn.transport.written,
                           [(method, b"Upgrade" in data) for _ in expected])
        # What the client got: every observed status but a 101 (h11 stops there) and a response
        # cut short (h11 sees it partial).
        complete = [status for _, status, _ in expected if status != 101]
        assert parsed.statuses == (complete[:-1] if parsed.partial else complete)
        # ``None`` in the table: the core's own text, whose length is whatever the reply says.
        replies = iter(parsed.replies)
        for (target, status, sent), (want_target, want_status, want_sent) in zip(observer.calls,
                                                                                 expected):
            assert (target, status) == (want_target, want_status)
            reply = next(replies, None) if status != 101 else None
            if want_sent is None:
                assert reply is not None
                want_sent = len(reply.body)
            assert sent == want_sent
        assert len(observer.calls) == len(expected)
        assert all(conn_ is conn.stream.role or conn.stream.lost for conn_ in observer.conns)
        assert all(0.0 <= d < 1.0 for d in observer.durations)

    run(main, timeout_s=5.0)


def test_observer_duration_runs_from_the_head_to_the_last_byte(run: Any) -> None:
    async def main() -> None:
        conn = Conn(asyncio.get_running_loop())
        observer = Observer()
        conn.state.observer = observer
        await conn.feed(get("/sleep"))
        for _ in range(100):
            if observer.calls:
                break
            await asyncio.sleep(0.01)
        assert observer.calls == [("/sleep", 200, 5)]
        assert 0.045 <= observer.durations[0] < 2.0
        await conn.close()

    run(main, timeout_s=5.0)


def test_observer_hears_a_response_cut_short_by_the_client_leaving(run: Any) -> None:
    async def main() -> None:
        conn = Conn(asyncio.get_running_loop())
        observer = Observer()
        conn.state.observer = observer
        await conn.feed(get("/stream-wait"))
        assert observer.calls == []           # the response is still being written
        lose(conn.stream, ConnectionResetError())
        await settle()
        assert observer.calls == [("/stream-wait", 200, 5)]
        conn.handlers.open_gates()            # the handler's next write sees Disconnected
        await settle()
        assert observer.calls == [("/stream-wait", 200, 5)]   # once only

    run(main, timeout_s=5.0)


def test_observer_is_not_told_of_a_request_the_client_left_before_any_response(run: Any) -> None:
    async def main() -> None:
        conn = Conn(asyncio.get_running_loop())
        observer = Observer()
        conn.state.observer = observer
        await conn.feed(get("/wait"))
        lose(conn.stream)
        await settle()
        conn.handlers.open_gates()
        await settle()
        assert observer.calls == []

    run(main, timeout_s=5.0)


def test_observer_hears_the_408_of_a_head_that_stalled(run: Any) -> None:
    async def main() -> None:
        conn = Conn(asyncio.get_running_loop())
        observer = Observer()
        conn.state.observer = observer
        await conn.feed(b"GET /hello HTTP/1.1\r\nHo")
        conn.stream.deadline.py_set(PY_SLOT_INPUT, 1e-6)
        await asyncio.sleep(0.01)
        await settle()
        assert observer.calls == [(None, 408, len(responses(conn.transport.written)
                                                  .replies[0].body))]
        await conn.close()

    run(main, timeout_s=5.0)


def test_observer_set_mid_request_starts_with_the_next_request(run: Any) -> None:
    async def main() -> None:
        conn = Conn(asyncio.get_running_loop())
        await conn.feed(get("/wait"))
        observer = Observer()
        conn.state.observer = observer
        conn.handlers.open_gates()
        await settle()
        assert observer.calls == []
        await conn.feed(get("/hello"))
        assert observer.calls == [("/hello", 200, 5)]
        conn.state.observer = None
        await conn.feed(get("/hello"))
        assert observer.calls == [("/hello", 200, 5)]
        await conn.close()

    run(main, timeout_s=5.0)


def test_a_failing_observer_is_logged_and_the_connection_goes_on(
        run: Any, caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def response_done(self, *args: Any) -> None:
            raise ValueError("the log disk is full")

    async def main() -> None:
        conn = Conn(asyncio.get_running_loop())
        conn.state.observer = Broken()
        await conn.feed(get("/hello") + get("/hello"))
        assert responses(conn.transport.written).statuses == [200, 200]
        assert conn.transport.state == "open"
        await conn.close()

    with caplog.at_level(logging.ERROR, logger="cyserve.server"):
        run(main, timeout_s=5.0)
    failures = [r for r in caplog.records if "observer" in r.getMessage()]
    assert len(failures) == 2 and failures[0].exc_info is not None


# ---------------------------------------------------------------- counters
def test_requests_total_counts_parsed_heads_across_connections(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        handlers = Handlers(loop)
        state = ServerState(handlers.entry, ServerConfig(limits=Limits(max_body_bytes=10)), loop)
        assert state.requests_total == 0
        first = Conn(loop, state=state, handlers=handlers)
        await first.feed(get("/hello") + get("/hello"))
        second = Conn(loop, state=state, handlers=handlers)
        await second.feed(post("/hello", b"", length=100))   # 413: parsed, refused: counted
        assert state.requests_total == 3
        third = Conn(loop, state=state, handlers=handlers)
        await third.feed(b"BAD\r\n\r\n")                      # no head: not a request
        assert state.requests_total == 3
        for conn in (first, second, third):
            await conn.close()

    run(main, timeout_s=5.0)


def test_requests_active_counts_running_handlers(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        handlers = Handlers(loop)
        state = ServerState(handlers.entry, ServerConfig(), loop)
        a = Conn(loop, state=state, handlers=handlers)
        b = Conn(loop, state=state, handlers=handlers)
        await a.feed(get("/wait"))
        await b.feed(get("/wait"))
        assert state.requests_active == 2
        assert handlers.active == [1, 2]      # each handler sees itself counted
        handlers.open_gates()
        await settle()
        assert state.requests_active == 0
        await a.feed(get("/raise"))
        await b.feed(get("/hello"))
        assert state.requests_active == 0
        await a.close()
        await b.close()

    run(main, timeout_s=5.0)


def test_requests_active_falls_when_a_waiting_handler_is_cancelled(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        conn = Conn(loop)
        await conn.feed(get("/wait"))
        assert conn.state.requests_active == 1
        conn.state.abort_all()
        await settle()
        assert conn.state.requests_active == 0
        lose(conn.stream)
        await settle()

    run(main, timeout_s=5.0)


# ---------------------------------------------------------------- conn.forwarded
def test_forwarded_is_reset_when_each_request_starts(run: Any) -> None:
    async def main() -> None:
        conn = Conn(asyncio.get_running_loop())
        observer = Observer()
        conn.state.observer = observer
        await conn.feed(get("/forward") + get("/hello") + get("/forward"))
        await conn.feed(b"BAD\r\n\r\n")
        assert conn.handlers.seen_forwarded == [None, None, None]
        fwd = (("203.0.113.9", 0), "https", "example.org")
        # The observer sees what the handler set for its own request; an answer given before
        # any head concerns no request, so nothing forwarded goes with it.
        assert observer.forwarded == [fwd, None, fwd, None]
        await conn.close()

    run(main, timeout_s=5.0)


def test_forwarded_is_settable_and_starts_as_none(run: Any) -> None:
    async def main() -> None:
        conn = Conn(asyncio.get_running_loop())
        role = conn.stream.role
        assert role.forwarded is None
        role.forwarded = (None, "https", None)
        assert role.forwarded == (None, "https", None)
        await conn.close()

    run(main, timeout_s=5.0)


# ---------------------------------------------------------------- limits (fake transports)
def test_connections_over_the_per_address_cap_get_503_and_close(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        handlers = Handlers(loop)
        state = ServerState(handlers.entry, ServerConfig(limit_connections_per_ip=2), loop)
        observer = Observer()
        state.observer = observer
        conns = [Conn(loop, state=state, handlers=handlers) for _ in range(3)]
        assert state.connections_from("127.0.0.1") == 2
        refused = conns[2]
        assert responses(refused.transport.written).statuses == [503]
        assert "connection" in responses(refused.transport.written).replies[0].headers
        assert refused.transport.state in ("lingering", "closed")
        assert observer.calls[0][:2] == (None, 503)
        lose(refused.stream)
        await settle()
        assert state.connections_from("127.0.0.1") == 2    # the refused one was never counted
        await conns[0].close()
        assert state.connections_from("127.0.0.1") == 1
        again = Conn(loop, state=state, handlers=handlers)
        await again.feed(get("/hello"))
        assert responses(again.transport.written).statuses == [200]
        for conn in (conns[1], again):
            await conn.close()
        assert state.connections_from("127.0.0.1") == 0

    run(main, timeout_s=5.0)


def test_per_address_cap_is_released_after_a_switch_to_another_role(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        handlers = Handlers(loop)
        state = ServerState(handlers.entry, ServerConfig(limit_connections_per_ip=1), loop)
        conn = Conn(loop, state=state, handlers=handlers)
        await conn.feed(get("/upgrade", *UPGRADE))
        assert state.connections_from("127.0.0.1") == 1
        lose(conn.stream)
        await settle()
        assert state.connections_from("127.0.0.1") == 0

    run(main, timeout_s=5.0)


def test_limit_concurrency_refuses_while_handlers_run(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        handlers = Handlers(loop)
        state = ServerState(handlers.entry, ServerConfig(limit_concurrency=1), loop)
        busy = Conn(loop, state=state, handlers=handlers)
        await busy.feed(get("/wait"))
        other = Conn(loop, state=state, handlers=handlers)
        await other.feed(get("/hello"))
        reply = responses(other.transport.written).replies
        assert [r.status for r in reply] == [503] and not reply[0].keep_alive
        handlers.open_gates()
        await settle()
        assert responses(busy.transport.written).statuses == [200]
        await other.close()
        third = Conn(loop, state=state, handlers=handlers)
        await third.feed(get("/hello"))
        assert responses(third.transport.written).statuses == [503]  # two connections open
        await busy.close()
        await third.close()
        last = Conn(loop, state=state, handlers=handlers)
        await last.feed(get("/hello") + get("/hello"))
        assert responses(last.transport.written).statuses == [200, 200]
        await last.close()

    run(main, timeout_s=5.0)


def test_limits_off_by_default_and_validated() -> None:
    config = ServerConfig()
    assert config.limit_concurrency is None and config.limit_connections_per_ip is None
    assert config.date_header is True and config.proxy_protocol is False
    for name in ("limit_concurrency", "limit_connections_per_ip"):
        with pytest.raises(ValueError, match=name):
            ServerConfig(**{name: 0})


def test_disconnected_is_what_a_writer_sees_after_the_cut(run: Any) -> None:
    # The observer's "lost mid-response" report must not change what the handler sees.
    async def main() -> None:
        loop = asyncio.get_running_loop()
        seen: list[str] = []

        async def entry(conn: Any, head: Any, body: Any) -> None:
            conn.start_stream(200, None, "text/plain")
            await conn.write(b"a")
            await gate
            try:
                await conn.write(b"b")
            except Disconnected:
                seen.append("disconnected")
                raise

        gate = loop.create_future()
        state = ServerState(entry, ServerConfig(), loop)
        state.observer = Observer()
        conn = Conn(loop, state=state)
        await conn.feed(get("/x"))
        lose(conn.stream)
        gate.set_result(None)
        await settle()
        assert seen == ["disconnected"]
        assert state.observer.calls == [("/x", 200, 1)]

    run(main, timeout_s=5.0)


# ---------------------------------------------------------------- Date and Server fields
@pytest.mark.parametrize("server_name, date", [("cyserve", True), ("cyserve", False), (None, True),
                                               (None, False)])
def test_head_writer_writes_date_and_server_only_when_asked(server_name: str | None,
                                                            date: bool) -> None:
    head = HeadWriter(server_name, date).serialise(200, [("X-A", "1")], "text/plain", 2, body=b"ok")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK"
    assert any(line.startswith(b"Date: ") for line in lines) is date
    assert (b"Server: cyserve" in lines) is (server_name is not None)
    assert head.endswith(b"\r\n\r\nok") and b"X-A: 1" in lines
