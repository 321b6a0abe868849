"""The server role's state machine as a table: every phase × every event, on a fake transport.

Each case starts a connection (``server_connection`` over a ``FakeTransport``), reaches a phase
with a short scripted prefix (``PHASES``), applies one event and checks what can be seen from
outside: the responses written (parsed with h11), the transport's end (open, closed, lingering,
aborted, lost), whether reading is paused, the keep-alive verdict of the last response (h11's:
may another request follow?) and the phase the role went to, told by behaviour: in ``idle`` a
probe request is answered at once, in ``busy`` it waits, in ``body`` the input watch guards a
body, ``switched`` has another role on the stream.

Phases (server.pyx): IDLE (first request, keep-alive, part of a head), BODY (Content-Length or
chunked; the handler reading, suspended without reading, or done and the rest being discarded),
BUSY (a suspended handler, with and without pipelined requests behind it, streaming a response,
with writing paused), SWITCHED (after ``conn.upgrade``, a Python role attached), DEAD (a refused
head, lingering; a failed body with the handler still running).  An eager handler is never a
resting phase: it runs inside the pass that parsed its head, so "BUSY eager" is the ``data``
event of IDLE (with pipelined requests behind it).

Events: data, eof, lost, pause_writing, resume_writing, a deadline (the stream's input watch, the
output stall watch, the role's slot for ``Timeouts.handler_s``, the lingering close), the handler
finishing (respond, return without a response, raise, raise ``ProtocolError``), graceful
shutdown and abort.  Deadlines are fired by moving an armed slot to now (``Deadline.py_set``) and
letting the loop's timer run: no test waits for a real timeout.  A deadline slot that the phase
never arms is listed with ``armed=False``: the combination cannot happen, the case proves the slot
is not armed and that nothing changes.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from cyserve._core.http.server import server_connection
from cyserve._core.http.state import ServerState
from cyserve._core.io.deadline import PY_SLOT_INPUT, PY_SLOT_LINGER, PY_SLOT_OUTPUT, PY_SLOT_ROLE
from cyserve._core.io.pyrole import attach_python_role
from cyserve.config import Limits, ServerConfig, Timeouts, WaterMarks
from cyserve.errors import ProtocolError

from .fakes import FakeTransport, eof, feed, lose, responses, settle

SLOTS = {"input": PY_SLOT_INPUT, "output": PY_SLOT_OUTPUT, "role": PY_SLOT_ROLE,
         "linger": PY_SLOT_LINGER}
K_BODY = 3   # server.pxd: the input watch guards a request body


# ---------------------------------------------------------------- requests
def get(target: str = "/ok", *fields: str, method: str = "GET") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: x", *fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def post(target: str, body: bytes = b"", *fields: str, length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return get(target, f"Content-Length: {size}", *fields, method="POST") + body


def post_chunked(target: str, body: bytes = b"", *fields: str) -> bytes:
    return get(target, "Transfer-Encoding: chunked", *fields, method="POST") + body


UPGRADE = ("Connection: upgrade", "Upgrade: echo")


# ---------------------------------------------------------------- the app the cases drive
class EchoRole:
    """What takes the connection over after a 101: echoes, logs every event it gets."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def connection_made(self, channel: Any) -> None:
        self.log.append("role made")
        channel.expect_input(30.0)          # so the switched phase has an input watch too

    def data_received(self, channel: Any) -> None:
        data = channel.read()
        self.log.append(f"role data {data.decode()}")
        channel.write(b"echo:" + data)

    def eof_received(self, channel: Any) -> bool:
        self.log.append("role eof")
        return False

    def connection_lost(self, channel: Any, exc: BaseException | None) -> None:
        self.log.append(f"role lost {type(exc).__name__ if exc else None}")

    def timed_out(self, channel: Any, slot: int) -> None:
        self.log.append(f"role timeout {slot}")
        channel.close()

    def shutdown(self, channel: Any, abort: bool) -> None:
        self.log.append(f"role shutdown {'abort' if abort else 'graceful'}")
        if not abort:
            channel.close()


class App:
    """The entry point: the request target picks the handler's behaviour.

    ``/wait``-style handlers suspend on a gate the test resolves with an action: ``respond``,
    ``drain-respond`` (await ``conn.drain()`` first), ``read-respond``, ``return`` (no
    response), ``raise``, ``protocol`` (``ProtocolError`` 422).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.log: list[str] = []
        self.requests: list[tuple[str, bool]] = []
        self.gates: list[asyncio.Future[str]] = []

    async def entry(self, conn: Any, head: Any, body: Any) -> None:
        target = head.target
        self.requests.append((head.method, bool(head.upgrade)))
        self.log.append(f"{head.method} {target}")
        try:
            await self.route(conn, target, body)
        except BaseException as exc:
            self.log.append(f"{target} raised {type(exc).__name__}")
            raise

    async def route(self, conn: Any, target: str, body: Any) -> None:
        if target == "/ok":
            conn.respond(200, None, b"ok")
        elif target == "/close":
            conn.respond(200, [("Connection", "close")], b"ok")
        elif target == "/none":
            return
        elif target == "/raise":
            raise RuntimeError("the handler failed")
        elif target == "/proto":
            raise ProtocolError("refused by the handler", 422)
        elif target == "/wait":
            await self.act(conn, body, await self.gate())
        elif target == "/read":
            conn.respond(200, None, await read(body))
        elif target == "/read-wait":
            try:
                data = await read(body)
            except Exception as exc:  # noqa: BLE001 - the case checks what the read raised
                self.log.append(f"read failed {type(exc).__name__}")
            else:
                self.log.append(f"read {data.decode()}")
            await self.act(conn, body, await self.gate())
        elif target == "/stream":
            conn.start_stream(200, None, "text/plain")
            await conn.write(b"part")
            await self.act(conn, body, await self.gate(), streaming=True)
        elif target in ("/upgrade", "/upgrade-wait"):
            conn.upgrade("echo", None,
                         lambda stream: attach_python_role(stream, EchoRole(self.log)))
            if target == "/upgrade-wait":
                await self.act(conn, body, await self.gate())
        else:
            raise AssertionError(f"no route {target}")

    def gate(self) -> asyncio.Future[str]:
        fut = self.loop.create_future()
        self.gates.append(fut)
        return fut

    async def act(self, conn: Any, body: Any, action: str, streaming: bool = False) -> None:
        if action == "drain-respond":
            await conn.drain()
            action = "respond"
        if action == "read-respond":
            conn.respond(200, None, await read(body))
        elif action == "respond":
            if streaming:
                conn.end_stream()
            else:
                conn.respond(200, None, b"done")
        elif action == "raise":
            raise RuntimeError("the handler failed late")
        elif action == "protocol":
            raise ProtocolError("refused by the handler", 422)
        elif action != "return":
            raise AssertionError(f"no action {action}")


async def read(body: Any) -> bytes:
    return body if isinstance(body, bytes) else await body.read_all()


# ---------------------------------------------------------------- the harness
class Conn:
    def __init__(self, loop: asyncio.AbstractEventLoop, config: ServerConfig) -> None:
        self.app = App(loop)
        self.state = ServerState(self.app.entry, config, loop)
        self.stream = server_connection(self.state)
        self.transport = FakeTransport()
        self.unarmed: list[str] = []
        self.stream.connection_made(self.transport)

    async def step(self, step: tuple[Any, ...]) -> None:
        kind, *args = step
        stream, transport = self.stream, self.transport
        if kind == "data":
            feed(stream, args[0])
        elif kind == "eof":
            eof(stream, transport)
        elif kind == "lost":
            lose(stream, args[0] if args else None)
        elif kind == "pause_writing":
            # A transport pauses only above its high water mark: bytes are queued in it.
            transport.buffered = 1 << 20
            stream.pause_writing()
        elif kind == "resume_writing":
            transport.buffered = 0
            stream.resume_writing()
        elif kind == "deadline":
            slot = SLOTS[args[0]]
            if not stream.deadline.py_armed(slot):
                self.unarmed.append(args[0])
                await asyncio.sleep(0.005)
            else:
                stream.deadline.py_set(slot, 1e-6)   # due now: the loop's timer fires it
                await asyncio.sleep(0.005)
        elif kind == "handler":
            pending = [g for g in self.app.gates if not g.done()]
            assert pending, "no handler is waiting for an action"
            pending[0].set_result(args[0])
        elif kind == "shutdown":
            self.state.begin_shutdown()
        elif kind == "abort":
            self.state.abort_all()
        else:
            raise AssertionError(f"no step {kind}")
        await settle()

    def parsed(self) -> Any:
        return responses(self.transport.written, self.app.requests)

    @property
    def end(self) -> str:
        """How the connection stands: "open", "lingering", "closed", "aborted" (by the stream
        or, after an EOF it did not keep, by the transport) or "lost" (the loop reported it
        gone first)."""
        if self.stream.lost and self.transport.state in ("open", "lingering"):
            return "lost"
        return self.transport.state

    async def teardown(self) -> None:
        for gate in self.app.gates:
            if not gate.done():
                gate.set_result("return")
        await settle()
        lose(self.stream)
        await settle()


# ---------------------------------------------------------------- phases
@dataclass(frozen=True)
class Phase:
    steps: tuple[tuple[Any, ...], ...] = ()
    limits: dict[str, Any] = field(default_factory=dict)
    timeouts: dict[str, Any] = field(default_factory=dict)
    marks: dict[str, Any] = field(default_factory=dict)


PARTIAL_HEAD = b"GET /ok HTTP/1.1\r\nHo"
PHASES: dict[str, Phase] = {
    # IDLE
    "idle-first": Phase(),
    "idle-keepalive": Phase((("data", get("/ok")),)),
    "idle-partial-head": Phase((("data", PARTIAL_HEAD),)),
    "idle-keepalive-partial-head": Phase((("data", get()), ("data", PARTIAL_HEAD))),
    "idle-first-two-per-connection": Phase(limits={"max_keepalive_requests": 2}),
    # BODY: 4 of 10 bytes (or one chunk) arrived
    "body-length-reading": Phase((("data", post("/read", b"abcd", length=10)),),
                                 timeouts={"handler_s": 30.0}),
    "body-length-unread": Phase((("data", post("/wait", b"abcd", length=10)),),
                                timeouts={"handler_s": 30.0}),
    "body-length-discarding": Phase((("data", post("/ok", b"abcd", length=10)),)),
    "body-chunked-reading": Phase((("data", post_chunked("/read", b"4\r\nabcd\r\n")),),
                                  limits={"max_body_bytes": 64}),
    "body-chunked-unread": Phase((("data", post_chunked("/wait", b"4\r\nabcd\r\n")),)),
    "body-continue-owed": Phase((("data", post("/wait", b"", "Expect: 100-continue", length=4)),)),
    "body-continue-reading": Phase((("data", post("/read", b"", "Expect: 100-continue",
                                                  length=4)),)),
    # 40 unread body bytes past body_high: reading is held for the handler (PAUSE_BACKLOG).
    "body-backlog": Phase((("data", post("/wait", b"x" * 40, length=100)),),
                          marks={"body_high": 16, "body_low": 4}),
    # BUSY
    "busy": Phase((("data", get("/wait")),), timeouts={"handler_s": 30.0}),
    "busy-pipelined": Phase((("data", get("/wait") + get("/ok")),)),
    # Pipelined bytes past max_pipeline_bytes: reading is held (PAUSE_QUEUE).
    "busy-pipeline-full": Phase((("data", get("/wait") + get("/ok") * 4),),
                                limits={"max_pipeline_bytes": 64}),
    "busy-streaming": Phase((("data", get("/stream")),), timeouts={"handler_s": 30.0}),
    "busy-write-paused": Phase((("data", get("/wait")), ("pause_writing",))),
    # SWITCHED: the bytes after the upgrade head are the new role's first input.
    "switched": Phase((("data", get("/upgrade", *UPGRADE) + b"early"),)),
    "switched-handler-running": Phase((("data", get("/upgrade-wait", *UPGRADE)),),
                                      timeouts={"handler_s": 30.0}),
    # DEAD
    "dead-refused": Phase((("data", b"BAD\r\n\r\n"),)),
    "dead-refused-small-linger": Phase((("data", b"BAD\r\n\r\n"),),
                                       limits={"max_linger_bytes": 16}),
    "dead-body-failed": Phase((("data", post_chunked("/read-wait", b"4\r\nabcd\r\n")),
                               ("data", b"zz\r\n")), timeouts={"handler_s": 30.0}),
}


def config_for(phase: Phase) -> ServerConfig:
    return ServerConfig(limits=Limits(**phase.limits), timeouts=Timeouts(**phase.timeouts),
                        water_marks=WaterMarks(**phase.marks))


# ---------------------------------------------------------------- the table
def case(name: str, from_phase: str, event: Any, *, xfail: str | None = None,
         **expect: Any) -> Any:
    """``from_phase``: a key of PHASES; ``event``: one step or a list of steps;
    ``expect["phase"]``: the phase after it (see ``check_phase``); ``xfail``: a core bug."""
    steps = tuple(event) if isinstance(event, list) else (event,)
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    return pytest.param(from_phase, steps, expect, id=name, marks=marks)


OK = [200]
CASES = [
    # ------------------------------------------------------------ IDLE, first request
    case("idle-first-data-get", "idle-first", ("data", get()),
         statuses=OK, ka=True, end="open", phase="idle", served=1),
    case("idle-first-data-pipelined-eager", "idle-first", ("data", get() + get()),
         statuses=[200, 200], ka=True, end="open", phase="idle", served=2, writes=1),
    case("idle-first-data-head-request", "idle-first", ("data", get(method="HEAD")),
         statuses=OK, ka=True, end="open", phase="idle"),
    case("idle-first-data-leading-crlf", "idle-first", ("data", b"\r\n\r\n" + get()),
         statuses=OK, ka=True, end="open", phase="idle"),
    case("idle-first-data-partial-head", "idle-first", ("data", PARTIAL_HEAD),
         statuses=[], ka=None, end="open", phase="idle-no-probe", input_kind=2),
    case("idle-first-data-malformed-head", "idle-first", ("data", b"BAD\r\n\r\n"),
         statuses=[400], ka=False, end="lingering", phase="closing", served=0),
    case("idle-first-data-body-too-large", "idle-first", ("data", post("/ok", length=1 << 40)),
         statuses=[413], ka=False, end="lingering", phase="closing", log=[]),
    case("idle-first-data-connection-close", "idle-first",
         ("data", get("/ok", "Connection: close")),
         statuses=OK, ka=False, end="closed", phase="closing"),
    case("idle-first-data-close-with-pipelined-behind", "idle-first",
         ("data", get("/close") + get()),
         statuses=OK, ka=False, end="lingering", phase="closing", served=1),
    case("idle-first-data-raise-with-pipelined-behind", "idle-first",
         ("data", get("/raise") + get()),
         statuses=[500], ka=False, end="lingering", phase="closing", served=1),
    case("idle-first-data-http10", "idle-first", ("data", get().replace(b"1.1", b"1.0", 1)),
         statuses=OK, ka=False, end="closed", phase="closing"),
    case("idle-first-data-http10-keepalive", "idle-first",
         ("data", get("/ok", "Connection: keep-alive").replace(b"1.1", b"1.0", 1)),
         statuses=OK, ka=True, end="open", phase="idle", header=("connection", "keep-alive")),
    case("idle-first-max-keepalive-requests", "idle-first-two-per-connection",
         ("data", get() + get()),
         statuses=[200, 200], ka=False, end="closed", phase="closing", served=2),
    case("idle-first-data-handler-returns-nothing", "idle-first", ("data", get("/none")),
         statuses=[500], ka=False, end="closed", phase="closing"),
    case("idle-first-data-handler-raises", "idle-first", ("data", get("/raise")),
         statuses=[500], ka=False, end="closed", phase="closing",
         seen=["/raise raised RuntimeError"]),
    case("idle-first-data-handler-protocol-error", "idle-first", ("data", get("/proto")),
         statuses=[422], ka=False, end="lingering", phase="closing"),
    case("idle-first-data-upgrade", "idle-first", ("data", get("/upgrade", *UPGRADE) + b"hi"),
         statuses=[], interim=[101], switched=b"echo:hi", ka=None, end="open", phase="switched"),
    case("idle-first-eof", "idle-first", ("eof",),
         statuses=[], ka=None, end="closed", phase="idle-eof"),
    case("idle-first-lost", "idle-first", ("lost",),
         statuses=[], ka=None, end="lost", phase="lost"),
    case("idle-first-pause-writing", "idle-first", ("pause_writing",),
         statuses=[], ka=None, end="open", phase="idle"),
    case("idle-first-resume-writing", "idle-first", ("resume_writing",),
         statuses=[], ka=None, end="open", phase="idle"),
    case("idle-first-deadline-first-request", "idle-first", ("deadline", "input"),
         statuses=[], ka=None, end="closed", phase="closing"),
    case("idle-first-deadline-output-stall", "idle-first",
         [("pause_writing",), ("deadline", "output")],
         statuses=[], ka=None, end="aborted", phase="closing"),
    # Timeouts.handler_s arms SLOT_ROLE only while a handler is suspended: never in IDLE.
    case("idle-first-deadline-role-not-armed", "idle-first", ("deadline", "role"),
         armed=False, statuses=[], ka=None, end="open", phase="idle"),
    case("idle-first-deadline-linger-not-armed", "idle-first", ("deadline", "linger"),
         armed=False, statuses=[], ka=None, end="open", phase="idle"),
    # Handler done / handler error: no handler runs in IDLE (impossible).
    case("idle-first-shutdown", "idle-first", ("shutdown",),
         statuses=[], ka=None, end="closed", phase="closing"),
    case("idle-first-abort", "idle-first", ("abort",),
         statuses=[], ka=None, end="aborted", phase="closing"),

    # ------------------------------------------------------------ IDLE, kept alive
    case("idle-keepalive-data-get", "idle-keepalive", ("data", get()),
         statuses=[200, 200], ka=True, end="open", phase="idle", served=2),
    # A refused head after a kept-alive request is answered like the first one's.
    case("idle-keepalive-data-malformed-head", "idle-keepalive", ("data", b"BAD\r\n\r\n"),
         statuses=[200, 400], ka=False, end="lingering", phase="closing"),
    case("idle-keepalive-deadline-head", "idle-keepalive-partial-head", ("deadline", "input"),
         statuses=[200, 408], ka=False, end="lingering", phase="closing"),
    case("idle-keepalive-eof", "idle-keepalive", ("eof",),
         statuses=OK, ka=True, end="closed", phase="idle-eof"),
    case("idle-keepalive-lost", "idle-keepalive", ("lost",),
         statuses=OK, ka=True, end="lost", phase="lost"),
    case("idle-keepalive-deadline-keepalive", "idle-keepalive", ("deadline", "input"),
         statuses=OK, ka=True, end="closed", phase="closing", input_kind=0),
    case("idle-keepalive-deadline-output-stall", "idle-keepalive",
         [("pause_writing",), ("deadline", "output")],
         statuses=OK, ka=True, end="aborted", phase="closing"),
    case("idle-keepalive-output-progress-rearms", "idle-keepalive",
         [("pause_writing",), ("data", b""), ("deadline", "output")],
         statuses=OK, ka=True, end="aborted", phase="closing"),
    case("idle-keepalive-shutdown", "idle-keepalive", ("shutdown",),
         statuses=OK, ka=True, end="closed", phase="closing"),
    case("idle-keepalive-abort", "idle-keepalive", ("abort",),
         statuses=OK, ka=True, end="aborted", phase="closing"),

    # ------------------------------------------------------------ IDLE, part of a head
    case("idle-partial-head-data-rest", "idle-partial-head", ("data", b"st: x\r\n\r\n"),
         statuses=OK, ka=True, end="open", phase="idle"),
    case("idle-partial-head-eof", "idle-partial-head", ("eof",),
         statuses=[], ka=None, end="closed", phase="idle-eof"),
    case("idle-partial-head-lost", "idle-partial-head", ("lost",),
         statuses=[], ka=None, end="lost", phase="lost"),
    case("idle-partial-head-deadline-head", "idle-partial-head", ("deadline", "input"),
         statuses=[408], ka=False, end="lingering", phase="closing"),
    # Graceful shutdown lets a head that is arriving finish; its answer closes.
    case("idle-partial-head-shutdown", "idle-partial-head", ("shutdown",),
         statuses=[], ka=None, end="open", phase="idle-no-probe", input_kind=2),
    case("idle-partial-head-shutdown-then-rest", "idle-partial-head",
         [("shutdown",), ("data", b"st: x\r\n\r\n")],
         statuses=OK, ka=False, end="closed", phase="closing"),
    case("idle-partial-head-abort", "idle-partial-head", ("abort",),
         statuses=[], ka=None, end="aborted", phase="closing"),

    # ------------------------------------------------------------ BODY, Content-Length, read
    case("body-length-reading-data-rest", "body-length-reading", ("data", b"efghij"),
         statuses=OK, ka=True, end="open", phase="idle", last_body=b"abcdefghij"),
    case("body-length-reading-data-rest-and-pipelined", "body-length-reading",
         ("data", b"efghij" + get()),
         statuses=[200, 200], ka=True, end="open", phase="idle", served=2),
    case("body-length-reading-data-part", "body-length-reading", ("data", b"ef"),
         statuses=[], ka=None, end="open", phase="body"),
    case("body-length-reading-eof-mid-length", "body-length-reading", ("eof",),
         statuses=[400], ka=False, end="closed", phase="closing",
         seen=["/read raised ProtocolError"]),
    case("body-length-reading-lost", "body-length-reading", ("lost", ConnectionResetError()),
         statuses=[], ka=None, end="lost", phase="lost", seen=["/read raised Disconnected"]),
    case("body-length-reading-pause-writing", "body-length-reading", ("pause_writing",),
         statuses=[], ka=None, end="open", phase="body"),
    case("body-length-reading-deadline-body-idle", "body-length-reading", ("deadline", "input"),
         statuses=[408], ka=False, end="lingering", phase="closing",
         seen=["/read raised ProtocolError"]),
    case("body-length-reading-deadline-handler-timeout", "body-length-reading",
         ("deadline", "role"),
         statuses=[503], ka=False, end="lingering", phase="closing",
         seen=["/read raised CancelledError"]),
    case("body-length-reading-shutdown-then-rest", "body-length-reading",
         [("shutdown",), ("data", b"efghij")],
         statuses=OK, ka=False, end="closed", phase="closing"),
    case("body-length-reading-abort", "body-length-reading", ("abort",),
         statuses=[], ka=None, end="aborted", phase="closing",
         seen=["/read raised CancelledError"]),

    # ------------------------------------------------------------ BODY, Content-Length, unread
    case("body-length-unread-data-rest", "body-length-unread", ("data", b"efghij"),
         statuses=[], ka=None, end="open", phase="busy"),
    case("body-length-unread-handler-responds", "body-length-unread", ("handler", "respond"),
         statuses=OK, ka=True, end="open", phase="body"),
    case("body-length-unread-handler-responds-then-rest", "body-length-unread",
         [("handler", "respond"), ("data", b"efghij" + get())],
         statuses=[200, 200], ka=True, end="open", phase="idle", served=2),
    case("body-length-unread-handler-reads", "body-length-unread",
         [("handler", "read-respond"), ("data", b"efghij")],
         statuses=OK, ka=True, end="open", phase="idle", last_body=b"abcdefghij"),
    case("body-length-unread-handler-returns", "body-length-unread", ("handler", "return"),
         statuses=[500], ka=False, end="lingering", phase="closing"),
    case("body-length-unread-handler-raises", "body-length-unread", ("handler", "raise"),
         statuses=[500], ka=False, end="lingering", phase="closing"),
    case("body-length-unread-handler-protocol-error", "body-length-unread", ("handler", "protocol"),
         statuses=[422], ka=False, end="lingering", phase="closing"),
    case("body-length-unread-eof", "body-length-unread", ("eof",),
         statuses=[], ka=None, end="open", phase="dead"),
    case("body-length-unread-eof-then-handler-responds", "body-length-unread",
         [("eof",), ("handler", "respond")],
         statuses=OK, ka=False, end="closed", phase="closing"),
    case("body-length-unread-lost", "body-length-unread", ("lost",),
         statuses=[], ka=None, end="lost", phase="lost"),
    case("body-length-unread-deadline-handler-timeout", "body-length-unread", ("deadline", "role"),
         statuses=[503], ka=False, end="lingering", phase="closing",
         seen=["/wait raised CancelledError"]),
    case("body-length-unread-shutdown-then-respond", "body-length-unread",
         [("shutdown",), ("handler", "respond")],
         statuses=OK, ka=False, end="lingering", phase="closing"),
    case("body-length-unread-abort", "body-length-unread", ("abort",),
         statuses=[], ka=None, end="aborted", phase="closing",
         seen=["/wait raised CancelledError"]),
    case("body-length-unread-deadline-body-idle-then-respond", "body-length-unread",
         [("deadline", "input"), ("handler", "respond")],
         statuses=OK, ka=False, end="lingering", phase="closing"),

    # ------------------------------------------------------------ BODY, drained after the handler
    case("body-discarding-data-rest", "body-length-discarding", ("data", b"efghij"),
         statuses=OK, ka=True, end="open", phase="idle"),
    case("body-discarding-data-rest-and-pipelined", "body-length-discarding",
         ("data", b"efghij" + get()),
         statuses=[200, 200], ka=True, end="open", phase="idle", served=2),
    case("body-discarding-eof", "body-length-discarding", ("eof",),
         statuses=OK, ka=True, end="closed", phase="closing"),
    case("body-discarding-lost", "body-length-discarding", ("lost",),
         statuses=OK, ka=True, end="lost", phase="lost"),
    case("body-discarding-deadline-body-idle", "body-length-discarding", ("deadline", "input"),
         statuses=OK, ka=True, end="lingering", phase="closing"),
    case("body-discarding-shutdown-then-rest", "body-length-discarding",
         [("shutdown",), ("data", b"efghij")],
         statuses=OK, ka=True, end="closed", phase="closing"),
    case("body-discarding-abort", "body-length-discarding", ("abort",),
         statuses=OK, ka=True, end="aborted", phase="closing"),
    # Handler done / error: the handler already finished (that is what discarding means).

    # ------------------------------------------------------------ BODY, chunked
    case("body-chunked-reading-data-last-chunk", "body-chunked-reading", ("data", b"0\r\n\r\n"),
         statuses=OK, ka=True, end="open", phase="idle", last_body=b"abcd"),
    case("body-chunked-reading-data-malformed", "body-chunked-reading", ("data", b"zz\r\n"),
         statuses=[400], ka=False, end="lingering", phase="closing"),
    case("body-chunked-reading-data-over-limit", "body-chunked-reading",
         ("data", b"40\r\n" + b"y" * 64 + b"\r\n"),
         statuses=[413], ka=False, end="lingering", phase="closing"),
    case("body-chunked-reading-eof", "body-chunked-reading", ("eof",),
         statuses=[400], ka=False, end="closed", phase="closing"),
    case("body-chunked-reading-deadline-body-idle", "body-chunked-reading", ("deadline", "input"),
         statuses=[408], ka=False, end="lingering", phase="closing"),
    # A chunked body the handler did not read can't be drained safely: the answer closes.
    case("body-chunked-unread-handler-responds", "body-chunked-unread", ("handler", "respond"),
         statuses=OK, ka=False, end="lingering", phase="closing"),

    # ------------------------------------------------------------ BODY, Expect: 100-continue
    case("body-continue-reading-data", "body-continue-reading", ("data", b"abcd"),
         statuses=OK, interim=[100], ka=True, end="open", phase="idle", last_body=b"abcd"),
    # RFC 9110 §10.1.1: no 100 unless the body is wanted; unsent, the client may never send
    # it, so the answer closes.
    case("body-continue-owed-handler-responds", "body-continue-owed", ("handler", "respond"),
         statuses=OK, interim=[], ka=False, end="lingering", phase="closing"),

    # ------------------------------------------------------------ BODY, reading held (backlog)
    case("body-backlog-paused", "body-backlog", ("resume_writing",),
         statuses=[], ka=None, end="open", phase="body", paused=True),
    # A slow consumer is not a slow peer: the body idle watch is off while reading is held.
    case("body-backlog-deadline-input-not-armed", "body-backlog", ("deadline", "input"),
         armed=False, statuses=[], ka=None, end="open", phase="body", paused=True),
    case("body-backlog-handler-reads", "body-backlog",
         [("handler", "read-respond"), ("data", b"z" * 60)],
         statuses=OK, ka=True, end="open", phase="idle", paused=False,
         calls_include=["pause_reading", "resume_reading"]),
    case("body-backlog-handler-responds-unread", "body-backlog", ("handler", "respond"),
         statuses=OK, ka=False, end="lingering", phase="closing"),

    # ------------------------------------------------------------ BUSY, suspended handler
    case("busy-handler-responds", "busy", ("handler", "respond"),
         statuses=OK, ka=True, end="open", phase="idle"),
    case("busy-handler-returns", "busy", ("handler", "return"),
         statuses=[500], ka=False, end="closed", phase="closing"),
    case("busy-handler-raises", "busy", ("handler", "raise"),
         statuses=[500], ka=False, end="closed", phase="closing"),
    case("busy-handler-protocol-error", "busy", ("handler", "protocol"),
         statuses=[422], ka=False, end="lingering", phase="closing"),
    case("busy-data-pipelined-waits", "busy", ("data", get()),
         statuses=[], ka=None, end="open", phase="busy", started=False),
    case("busy-data-pipelined-then-respond", "busy", [("data", get()), ("handler", "respond")],
         statuses=[200, 200], ka=True, end="open", phase="idle", served=2),
    case("busy-eof", "busy", ("eof",),
         statuses=[], ka=None, end="open", phase="busy-eof"),
    case("busy-eof-then-respond", "busy", [("eof",), ("handler", "respond")],
         statuses=OK, end="closed", phase="closing"),
    case("busy-lost", "busy", ("lost",),
         statuses=[], ka=None, end="lost", phase="lost"),
    case("busy-lost-then-respond", "busy", [("lost",), ("handler", "respond")],
         statuses=[], ka=None, end="lost", phase="lost", seen=["/wait raised Disconnected"]),
    case("busy-pause-writing-then-respond", "busy", [("pause_writing",), ("handler", "respond")],
         statuses=OK, ka=True, end="open", phase="idle-no-probe"),
    case("busy-deadline-handler-timeout", "busy", ("deadline", "role"),
         statuses=[503], ka=False, end="closed", phase="closing",
         seen=["/wait raised CancelledError"]),
    case("busy-deadline-output-stall", "busy", [("pause_writing",), ("deadline", "output")],
         statuses=[], ka=None, end="aborted", phase="closing"),
    # The idle watch of the first request is left running under a request; firing, it is ignored.
    case("busy-deadline-first-request-ignored", "busy", ("deadline", "input"),
         statuses=[], ka=None, end="open", phase="busy"),
    case("busy-shutdown", "busy", ("shutdown",),
         statuses=[], ka=None, end="open", phase="busy"),
    case("busy-shutdown-then-respond", "busy", [("shutdown",), ("handler", "respond")],
         statuses=OK, ka=False, end="closed", phase="closing"),
    case("busy-abort", "busy", ("abort",),
         statuses=[], ka=None, end="aborted", phase="closing",
         seen=["/wait raised CancelledError"]),

    # ------------------------------------------------------------ BUSY with pipelined requests
    case("busy-pipelined-handler-responds", "busy-pipelined", ("handler", "respond"),
         statuses=[200, 200], ka=True, end="open", phase="idle", served=2),
    case("busy-pipelined-handler-raises", "busy-pipelined", ("handler", "raise"),
         statuses=[500], ka=False, end="lingering", phase="closing", served=1),
    case("busy-pipelined-shutdown-then-respond", "busy-pipelined",
         [("shutdown",), ("handler", "respond")],
         statuses=OK, ka=False, end="lingering", phase="closing", served=1),
    # The client half-closed after sending two whole requests: both deserve an answer (RFC 9112
    # §9.6, h11 and nginx answer what arrived before the FIN); an eager first handler gets both.
    case("busy-pipelined-eof-then-respond", "busy-pipelined", [("eof",), ("handler", "respond")],
         statuses=[200, 200], end="closed", phase="closing"),
    case("busy-pipeline-full-paused", "busy-pipeline-full", ("resume_writing",),
         statuses=[], ka=None, end="open", phase="busy", paused=True),
    case("busy-pipeline-full-handler-responds", "busy-pipeline-full", ("handler", "respond"),
         statuses=[200] * 5, ka=True, end="open", phase="idle", paused=False, served=5,
         calls_include=["pause_reading", "resume_reading"]),

    # ------------------------------------------------------------ BUSY, streaming a response
    case("busy-streaming-data-pipelined-waits", "busy-streaming", ("data", get()),
         statuses=[], partial=True, ka=None, end="open", phase="busy", started=True),
    case("busy-streaming-handler-ends", "busy-streaming", ("handler", "respond"),
         statuses=OK, ka=True, end="open", phase="idle", last_body=b"part"),
    case("busy-streaming-handler-returns", "busy-streaming", ("handler", "return"),
         statuses=OK, ka=True, end="open", phase="idle", last_body=b"part"),
    case("busy-streaming-handler-raises", "busy-streaming", ("handler", "raise"),
         statuses=[], partial=True, ka=None, end="closed", phase="closing"),
    case("busy-streaming-handler-protocol-error", "busy-streaming", ("handler", "protocol"),
         statuses=[], partial=True, ka=None, end="closed", phase="closing"),
    case("busy-streaming-deadline-handler-timeout", "busy-streaming", ("deadline", "role"),
         statuses=[], partial=True, ka=None, end="aborted", phase="closing"),
    case("busy-streaming-eof-then-end", "busy-streaming", [("eof",), ("handler", "respond")],
         statuses=OK, end="closed", phase="closing"),
    case("busy-streaming-lost", "busy-streaming", ("lost",),
         statuses=[], partial=True, ka=None, end="lost", phase="lost"),
    case("busy-streaming-shutdown-then-end", "busy-streaming",
         [("shutdown",), ("handler", "respond")],
         statuses=OK, end="closed", phase="closing"),

    # ------------------------------------------------------------ BUSY, writing paused
    case("busy-write-paused-handler-drains", "busy-write-paused", ("handler", "drain-respond"),
         statuses=[], ka=None, end="open", phase="busy"),
    case("busy-write-paused-resume-after-drain", "busy-write-paused",
         [("handler", "drain-respond"), ("resume_writing",)],
         statuses=OK, ka=True, end="open", phase="idle"),
    case("busy-write-paused-deadline-output-stall", "busy-write-paused",
         [("handler", "drain-respond"), ("deadline", "output")],
         statuses=[], ka=None, end="aborted", phase="closing", seen=["/wait raised Disconnected"]),
    case("busy-write-paused-lost", "busy-write-paused", [("handler", "drain-respond"), ("lost",)],
         statuses=[], ka=None, end="lost", phase="lost", seen=["/wait raised Disconnected"]),

    # ------------------------------------------------------------ SWITCHED
    case("switched-data", "switched", ("data", b"ping"),
         statuses=[], interim=[101], switched=b"echo:earlyecho:ping", ka=None, end="open",
         phase="switched", seen=["role data early", "role data ping"]),
    case("switched-eof", "switched", ("eof",),
         statuses=[], interim=[101], ka=None, end="closed", phase="switched-closed",
         seen=["role eof"]),
    case("switched-lost", "switched", ("lost", ConnectionResetError()),
         statuses=[], interim=[101], ka=None, end="lost", phase="lost",
         seen=["role lost ConnectionResetError"]),
    case("switched-pause-writing", "switched", ("pause_writing",),
         statuses=[], interim=[101], ka=None, end="open", phase="switched"),
    case("switched-resume-writing", "switched", [("pause_writing",), ("resume_writing",)],
         statuses=[], interim=[101], ka=None, end="open", phase="switched"),
    case("switched-deadline-input", "switched", ("deadline", "input"),
         statuses=[], interim=[101], ka=None, end="closed", phase="switched-closed",
         seen=["role timeout 0"]),
    case("switched-deadline-output-stall", "switched", [("pause_writing",), ("deadline", "output")],
         statuses=[], interim=[101], ka=None, end="closed", phase="switched-closed",
         seen=["role timeout 1"]),
    # The old role's handler deadline does not follow the connection to the next role.
    case("switched-deadline-role-not-armed", "switched", ("deadline", "role"),
         armed=False, statuses=[], interim=[101], ka=None, end="open", phase="switched"),
    case("switched-shutdown", "switched", ("shutdown",),
         statuses=[], interim=[101], ka=None, end="closed", phase="switched-closed",
         seen=["role shutdown graceful"]),
    case("switched-abort", "switched", ("abort",),
         statuses=[], interim=[101], ka=None, end="aborted", phase="switched-closed",
         seen=["role shutdown abort"]),
    # A handler still running after its upgrade owns nothing: its end writes nothing.
    case("switched-handler-running-returns", "switched-handler-running", ("handler", "return"),
         statuses=[], interim=[101], ka=None, end="open", phase="switched"),
    case("switched-handler-running-responds", "switched-handler-running", ("handler", "respond"),
         statuses=[], interim=[101], ka=None, end="open", phase="switched",
         seen=["/upgrade-wait raised RuntimeError"]),
    case("switched-handler-running-raises", "switched-handler-running", ("handler", "raise"),
         statuses=[], interim=[101], ka=None, end="open", phase="switched"),
    case("switched-handler-running-data", "switched-handler-running", ("data", b"ping"),
         statuses=[], interim=[101], switched=b"echo:ping", ka=None, end="open", phase="switched"),
    # Timeouts.handler_s is HTTP's (server.pyx ignores SLOT_ROLE once S_SWITCHED), yet the
    # deadline is armed after the switch and its expiry goes to the next role.
    case("switched-handler-running-deadline-role", "switched-handler-running", ("deadline", "role"),
         armed=False, statuses=[], interim=[101], ka=None, end="open", phase="switched"),

    # ------------------------------------------------------------ DEAD, a refused head (lingering)
    case("dead-refused-data-discarded", "dead-refused", ("data", get()),
         statuses=[400], ka=False, end="lingering", phase="closing", buffered=0),
    case("dead-refused-data-past-linger-bound", "dead-refused-small-linger", ("data", b"x" * 32),
         statuses=[400], ka=False, end="closed", phase="closing"),
    case("dead-refused-eof", "dead-refused", ("eof",),
         statuses=[400], ka=False, end="closed", phase="closing"),
    case("dead-refused-lost", "dead-refused", ("lost",),
         statuses=[400], ka=False, end="lost", phase="lost"),
    case("dead-refused-pause-writing", "dead-refused", ("pause_writing",),
         statuses=[400], ka=False, end="lingering", phase="closing"),
    case("dead-refused-resume-writing", "dead-refused", [("pause_writing",), ("resume_writing",)],
         statuses=[400], ka=False, end="lingering", phase="closing"),
    case("dead-refused-deadline-linger", "dead-refused", ("deadline", "linger"),
         statuses=[400], ka=False, end="closed", phase="closing"),
    case("dead-refused-deadline-output-stall", "dead-refused",
         [("pause_writing",), ("deadline", "output")],
         statuses=[400], ka=False, end="aborted", phase="closing"),
    case("dead-refused-deadline-input-not-armed", "dead-refused", ("deadline", "input"),
         armed=False, statuses=[400], ka=False, end="lingering", phase="closing"),
    case("dead-refused-shutdown", "dead-refused", ("shutdown",),
         statuses=[400], ka=False, end="lingering", phase="closing"),
    case("dead-refused-abort", "dead-refused", ("abort",),
         statuses=[400], ka=False, end="aborted", phase="closing"),
    # Handler events: a refused head never reached a handler (impossible).

    # ------------------------------------------------------------ DEAD, body failed, handler runs
    case("dead-body-failed-handler-responds", "dead-body-failed", ("handler", "respond"),
         statuses=OK, ka=False, end="lingering", phase="closing",
         seen=["read failed ProtocolError"]),
    case("dead-body-failed-handler-returns", "dead-body-failed", ("handler", "return"),
         statuses=[500], ka=False, end="lingering", phase="closing"),
    case("dead-body-failed-handler-raises", "dead-body-failed", ("handler", "raise"),
         statuses=[500], ka=False, end="lingering", phase="closing"),
    case("dead-body-failed-handler-protocol-error", "dead-body-failed", ("handler", "protocol"),
         statuses=[422], ka=False, end="lingering", phase="closing"),
    case("dead-body-failed-data-ignored", "dead-body-failed", ("data", get()),
         statuses=[], ka=None, end="open", phase="dead", paused=True),
    # Nothing reads in DEAD while the handler runs, so nothing may let the buffer fill past its
    # bound either: reading must be held (as BUSY holds it past max_pipeline_bytes).
    case("dead-body-failed-data-flood-then-respond", "dead-body-failed",
         [("data", b"x" * (96 * 1024)), ("handler", "respond")],
         statuses=OK, ka=False, end="lingering", phase="closing"),
    case("dead-body-failed-eof-then-respond", "dead-body-failed",
         [("eof",), ("handler", "respond")],
         statuses=OK, ka=False, end="closed", phase="closing"),
    case("dead-body-failed-pause-writing-then-respond", "dead-body-failed",
         [("pause_writing",), ("handler", "respond")],
         statuses=OK, ka=False, end="lingering", phase="closing"),
    case("dead-body-failed-lost", "dead-body-failed", ("lost",),
         statuses=[], ka=None, end="lost", phase="lost"),
    case("dead-body-failed-deadline-input-not-armed", "dead-body-failed", ("deadline", "input"),
         armed=False, statuses=[], ka=None, end="open", phase="dead"),
    case("dead-body-failed-deadline-handler-timeout", "dead-body-failed", ("deadline", "role"),
         statuses=[503], ka=False, end="lingering", phase="closing"),
    case("dead-body-failed-shutdown", "dead-body-failed", ("shutdown",),
         statuses=[], ka=None, end="open", phase="dead"),
    case("dead-body-failed-abort", "dead-body-failed", ("abort",),
         statuses=[], ka=None, end="aborted", phase="closing"),
]


async def check_phase(conn: Conn, phase: str) -> None:
    """Tell the role's phase from behaviour; the probe request is the keep-alive proof."""
    stream = conn.stream
    role_is_http = type(stream.role).__name__ == "ServerRole"
    if phase in ("idle", "idle-no-probe", "busy", "body", "dead", "busy-eof", "idle-eof"):
        assert role_is_http
    if phase == "idle-eof":
        # The peer half-closed an idle connection: nothing more to read, the transport closes.
        assert stream.peer_eof and not stream.closing
        return
    if phase in ("idle", "idle-no-probe", "busy", "body", "dead", "busy-eof", "switched"):
        assert not stream.closing, "the connection is closing"
    if phase == "idle-no-probe":
        # Idle, but a probe would not tell: part of a head is buffered, or writing is paused.
        return
    if phase == "idle":
        before = len(conn.parsed().replies)
        served = stream.role.requests_served
        feed(stream, get())
        await settle()
        after = conn.parsed()
        assert stream.role.requests_served == served + 1, "the probe request was not taken"
        assert len(after.replies) == before + 1 and after.replies[-1].status == 200
    elif phase == "busy":
        before = conn.transport.written
        served = stream.role.requests_served
        feed(stream, get())
        await settle()
        assert stream.role.requests_served == served, "a request ran while another was in flight"
        assert conn.transport.written == before
    elif phase == "busy-eof":
        assert stream.peer_eof
    elif phase == "body":
        assert stream.input_kind == K_BODY or stream.reading_paused
    elif phase == "dead":
        # Framing is lost: the role reads no further request, and no input watch runs.
        assert stream.input_kind == 0
    elif phase == "switched":
        assert not role_is_http
    elif phase == "switched-closed":
        # The next role ended the connection (or, after its EOF, the transport did).
        assert not role_is_http or stream.lost
        assert stream.closing or conn.transport.closed
    elif phase == "closing":
        assert stream.closing and not stream.lost
    elif phase == "lost":
        assert stream.lost
    else:
        raise AssertionError(f"no phase {phase}")


@pytest.mark.parametrize("phase, steps, expect", CASES)
def test_server_role_table(run: Any, phase: str, steps: tuple[Any, ...],
                           expect: dict[str, Any]) -> None:
    spec = PHASES[phase]

    async def main() -> None:
        conn = Conn(asyncio.get_running_loop(), config_for(spec))
        try:
            for step in spec.steps:
                await conn.step(step)
            for step in steps:
                await conn.step(step)
            transport, stream = conn.transport, conn.stream
            parsed = conn.parsed()
            assert parsed.statuses == expect["statuses"]
            assert parsed.informational == expect.get("interim", [])
            last = parsed.replies[-1].keep_alive if parsed.replies else None
            if "ka" in expect:
                assert last is expect["ka"], "keep-alive verdict"
            assert parsed.partial is expect.get("partial", False)
            if "switched" in expect:
                assert parsed.switched == expect["switched"]
            if "header" in expect:
                name, value = expect["header"]
                assert parsed.replies[-1].headers.get(name) == value
            if "last_body" in expect:
                assert parsed.replies[-1].body == expect["last_body"]
            assert conn.end == expect["end"]
            if conn.end != "aborted":   # an abort ends a linger only once the loss is reported
                assert stream.lingering is (conn.end == "lingering")
            if "started" in expect:
                assert stream.role.response_started is expect["started"]
            assert stream.reading_paused is expect.get("paused", False)
            if "served" in expect:
                assert stream.role.requests_served == expect["served"]
            if "writes" in expect:
                writes = transport.calls.count("write") + transport.calls.count("writelines")
                assert writes == expect["writes"]
            if "input_kind" in expect:
                assert stream.input_kind == expect["input_kind"]
            if "buffered" in expect:
                assert len(stream.buffer.pending()) == expect["buffered"]
            for name in expect.get("calls_include", ()):
                assert name in transport.calls
            if "log" in expect:
                assert [e for e in conn.app.log if not e.startswith("role ")] == expect["log"]
            for entry in expect.get("seen", ()):
                assert entry in conn.app.log, conn.app.log
            # A response that ends the connection is followed by its end (RFC 9112 §9.6).
            if last is False and not parsed.partial:
                assert conn.end != "open", "a response that said close left the connection open"
            await check_phase(conn, expect["phase"])
            expected_unarmed = ([s[1] for s in steps if s[0] == "deadline"]
                                if expect.get("armed") is False else [])
            assert conn.unarmed == expected_unarmed, f"deadline slots not armed: {conn.unarmed}"
        finally:
            await conn.teardown()
        # Nothing is written once the stream closed, aborted or half-closed, even by a handler
        # that finishes later.
        assert conn.transport.late_writes == []
        responses(conn.transport.written, conn.app.requests)   # what was written parses

    run(main, timeout_s=5.0)
