"""The client role's state machine as a table: every phase × every event, on a fake transport.

Each case opens a connection (``client_connection`` over a ``FakeTransport``), reaches a phase
with a short scripted prefix (``PHASES``), applies one event (or a short list) and checks what a
caller and the pool can see: how ``start()``'s future resolved (a status, or ``None`` with
``conn.error`` of a given type), the body read to its end (bytes or the exception it raises), an
upload's ``send_body`` (done, pending, or what it raised), the listener's calls
(``connection_released`` / ``connection_closed``: the pool's view, consecutive repeats folded),
the transport's end and whether reading is held.

Phases (client.pyx): IDLE (fresh, and pooled after an exchange), HEAD (request sent, nothing or
part of a head back; with the request body still open, with the upload waiting on a paused
transport; asked to upgrade), BODY (Content-Length, chunked, close-delimited; held by an unread
backlog), DONE (the response complete while the request body is still open: an early answer),
SWITCHED (a 101 answered an upgrade), DEAD (after a failure, after ``close()``).

Events: data (the rest of a response, bytes beyond its framing, unsolicited bytes, interim 1xx
beyond ``ClientLimits.max_interim_responses``, a 101 with and without ``upgrade=True``,
malformed heads and chunking), EOF, lost (clean and with an error), writable
(``resume_writing``), paused (``pause_writing``), deadlines (read, write stall, total, the pooled
idle expiry), abort, and the caller's own moves (``send_body``, ``end_body``, ``stop_body``,
``start``).  Deadlines are fired by moving an armed slot to now (``Deadline.py_set``); a
deadline the phase never arms is listed with ``armed=False`` (the combination cannot happen) and
the case proves nothing changes.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from cyserve._core.http.client import client_connection
from cyserve._core.http.state import ClientState
from cyserve._core.io.deadline import PY_SLOT_INPUT, PY_SLOT_OUTPUT, PY_SLOT_ROLE
from cyserve._core.io.pyrole import attach_python_role
from cyserve.config import ClientLimits
from cyserve.errors import (
    ReadError, ReadTimeout, RemoteProtocolError, TotalTimeout, WriteError, WriteTimeout,
)

from .fakes import FakeTransport, eof, feed, lose, settle

# deadline name -> (slot, the input watch's kind for SLOT_INPUT: client.pxd K_READ, K_IDLE)
DEADLINES = {"read": (PY_SLOT_INPUT, 1), "idle": (PY_SLOT_INPUT, 2),
             "write": (PY_SLOT_OUTPUT, None), "total": (PY_SLOT_ROLE, None)}
HOST = [("Host", "x")]
TIMED = {"read_s": 30.0, "write_s": 30.0, "total_s": 30.0}


def response(status: int = 200, *fields: str, body: bytes = b"", length: bool = True) -> bytes:
    lines = [f"HTTP/1.1 {status} Status", *fields]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


OK = response(body=b"ok")
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: upgrade\r\n\r\n"
EARLY_413 = response(413, "Connection: close")
CHUNKED_HEAD = response(200, "Transfer-Encoding: chunked", length=False)


class Listener:
    """The pool's side: what the connection told it, in order, consecutive repeats folded.

    Folded because a failed or closed connection is reported twice: at once by ``_shut`` (so
    the pool frees the slot now) and again when the loop reports the loss; ``Pool`` takes the
    second as a no-op.
    """

    def __init__(self) -> None:
        self.events: list[str] = []

    def _add(self, event: str) -> None:
        if not self.events or self.events[-1] != event:
            self.events.append(event)

    def connection_released(self, conn: Any) -> None:
        self._add("released")

    def connection_closed(self, conn: Any) -> None:
        self._add("closed")


class EchoRole:
    """The next protocol after a 101."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def data_received(self, channel: Any) -> None:
        data = channel.read()
        self.seen.append(data)
        channel.write(b"echo:" + data)


# ---------------------------------------------------------------- the harness
class Client:
    def __init__(self, loop: asyncio.AbstractEventLoop, limits: ClientLimits) -> None:
        self.loop = loop
        self.state = ClientState(loop, limits)
        self.stream = client_connection(self.state, origin=("http", "x", 80))
        self.conn = self.stream.role
        self.listener = Listener()
        self.conn.listener = self.listener
        self.transport = FakeTransport()
        self.future: asyncio.Future[Any] | None = None
        self.uploads: list[asyncio.Task[None]] = []
        self.raised: list[type[BaseException]] = []
        self.unarmed: list[str] = []
        self.role: EchoRole | None = None
        self.chunks: list[bytes] = []
        self.stream.connection_made(self.transport)

    async def step(self, step: tuple[Any, ...]) -> None:
        kind, *args = step
        stream, transport, conn = self.stream, self.transport, self.conn
        try:
            if kind == "start":
                options = dict(args[0]) if args else {}
                method = options.pop("method", "GET")
                fields = HOST + list(options.pop("fields", ()))
                self.future = conn.start(method, "/", fields, **options)
            elif kind == "data":
                feed(stream, args[0])
            elif kind == "eof":
                eof(stream, transport)
            elif kind == "lost":
                lose(stream, args[0] if args else None)
            elif kind == "pause_writing":
                transport.buffered = 1 << 20   # paused: bytes are queued in the transport
                stream.pause_writing()
            elif kind == "resume_writing":
                transport.buffered = 0
                stream.resume_writing()
            elif kind == "deadline":
                slot, input_kind = DEADLINES[args[0]]
                armed = stream.deadline.py_armed(slot) and (
                    input_kind is None or stream.input_kind == input_kind)
                if armed:
                    stream.deadline.py_set(slot, 1e-6)   # due now: the loop's timer fires it
                else:
                    self.unarmed.append(args[0])
                await asyncio.sleep(0.005)
            elif kind == "send_body":
                self.uploads.append(self.loop.create_task(conn.send_body(args[0])))
            elif kind == "end_body":
                conn.end_body()
            elif kind == "stop_body":
                conn.stop_body()
            elif kind == "abort":
                conn.abort()
            elif kind == "close":
                conn.close()
            elif kind == "read_chunk":
                body = self.future.result()[1]
                self.chunks.append(await asyncio.wait_for(body.read(), 0.5))
            elif kind == "attach":
                self.role = EchoRole()
                attach_python_role(stream, self.role)
            else:
                raise AssertionError(f"no step {kind}")
        except AssertionError:
            raise
        except Exception as exc:  # noqa: BLE001 - a caller's move that raises: the case checks it
            self.raised.append(type(exc))
        await settle()

    @property
    def end(self) -> str:
        if self.stream.lost and self.transport.state == "open":
            return "lost"
        return self.transport.state

    def result(self) -> Any:
        """``start()``'s future: "pending", the status, or the type of ``conn.error``."""
        fut = self.future
        if fut is None:
            return None
        if not fut.done():
            return "pending"
        value = fut.result()
        if value is None:
            assert self.conn.error is not None, "resolved None without an error"
            return type(self.conn.error)
        return value[0].status

    def upload(self) -> Any:
        task = self.uploads[-1]
        if not task.done():
            return "pending"
        exc = task.exception()
        return "done" if exc is None else type(exc)

    async def body(self) -> Any:
        head_body = self.future.result()
        body = head_body[1]
        if isinstance(body, bytes):
            return body
        # Not wait_for: the client's timeouts are TimeoutErrors too, like wait_for's own.
        task = asyncio.ensure_future(body.read_all())
        done, _ = await asyncio.wait([task], timeout=0.5)
        if not done:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return "pending"
        exc = task.exception()
        return task.result() if exc is None else type(exc)

    async def teardown(self) -> None:
        lose(self.stream)
        await settle()
        for task in self.uploads:
            if not task.done():
                task.cancel()
        if self.uploads:
            await asyncio.gather(*self.uploads, return_exceptions=True)


# ---------------------------------------------------------------- phases
@dataclass(frozen=True)
class Phase:
    steps: tuple[tuple[Any, ...], ...] = ()
    limits: dict[str, Any] = field(default_factory=dict)


def start(**options: Any) -> tuple[Any, ...]:
    return ("start", {**TIMED, **options})


UPLOAD = start(method="POST", content_length=10)
UPGRADE = start(upgrade=True, fields=[("Connection", "upgrade"), ("Upgrade", "echo")])
PHASES: dict[str, Phase] = {
    "idle-fresh": Phase(),
    "idle-pooled": Phase((start(), ("data", OK))),
    "head": Phase((start(),), limits={"max_interim_responses": 2}),
    "head-partial": Phase((start(), ("data", b"HTTP/1.1 200 OK\r\nConte"))),
    "head-upload": Phase((UPLOAD,)),
    "head-upload-paused": Phase((UPLOAD, ("pause_writing",), ("send_body", b"0123456789"))),
    "head-upgrade": Phase((UPGRADE,)),
    "body-length": Phase((start(), ("data", response(body=b"abcdefghij")[:-7]))),
    "body-chunked": Phase((start(), ("data", CHUNKED_HEAD + b"3\r\nabc\r\n"))),
    "body-close": Phase((start(), ("data", response(200, length=False) + b"abc"))),
    "body-backlog": Phase((start(), ("data", response(body=b"x" * 100)[:-80])),
                          limits={"read_high": 8, "read_low": 2}),
    "done-upload-open": Phase((UPLOAD, ("data", EARLY_413))),
    "done-upload-open-keepalive": Phase((UPLOAD, ("data", response(200)))),
    "switched": Phase((UPGRADE, ("data", SWITCH + b"tail"))),
    "dead-failed": Phase((start(), ("data", b"garbage\r\n\r\n"))),
    "dead-closed": Phase((("close",),)),
}


def case(name: str, from_phase: str, event: Any, *, xfail: str | None = None,
         **expect: Any) -> Any:
    """``from_phase``: a key of PHASES; ``event``: one step or a list of steps;
    ``expect["phase"]``: the phase after it (see ``check_phase``); ``xfail``: a core bug."""
    steps = tuple(event) if isinstance(event, list) else (event,)
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    return pytest.param(from_phase, steps, expect, id=name, marks=marks)


RELEASED, CLOSED = ["released"], ["closed"]
CASES = [
    # ------------------------------------------------------------ IDLE, fresh
    # RFC 9112 §9.3: nothing may arrive before a request; the framing can't be trusted.
    case("idle-fresh-data-unsolicited", "idle-fresh", ("data", OK),
         result=None, end="closed", listener=CLOSED, phase="dead"),
    case("idle-fresh-eof", "idle-fresh", ("eof",),
         result=None, end="closed", listener=[], phase="dead"),
    case("idle-fresh-lost", "idle-fresh", ("lost",),
         result=None, end="lost", listener=CLOSED, phase="lost"),
    case("idle-fresh-paused", "idle-fresh", ("pause_writing",),
         result=None, end="open", listener=[], phase="idle"),
    case("idle-fresh-writable", "idle-fresh", [("pause_writing",), ("resume_writing",)],
         result=None, end="open", listener=[], phase="idle"),
    # A connection that never carried an exchange has no keep-alive expiry (the pool opens one
    # for a request and uses it at once); no read deadline without a request.
    case("idle-fresh-deadline-idle-not-armed", "idle-fresh", ("deadline", "idle"),
         armed=False, result=None, end="open", listener=[], phase="idle"),
    case("idle-fresh-deadline-read-not-armed", "idle-fresh", ("deadline", "read"),
         armed=False, result=None, end="open", listener=[], phase="idle"),
    case("idle-fresh-deadline-total-not-armed", "idle-fresh", ("deadline", "total"),
         armed=False, result=None, end="open", listener=[], phase="idle"),
    # No exchange set write_s: a paused transport arms no stall watch.
    case("idle-fresh-deadline-write-not-armed", "idle-fresh",
         [("pause_writing",), ("deadline", "write")],
         armed=False, result=None, end="open", listener=[], phase="idle"),
    case("idle-fresh-abort", "idle-fresh", ("abort",),
         result=None, error=ReadError, end="aborted", listener=CLOSED, phase="dead"),
    case("idle-fresh-close", "idle-fresh", ("close",),
         result=None, end="closed", listener=CLOSED, phase="dead"),
    # HEAD: the response's Content-Length describes a body that is not sent (RFC 9110 §9.3.2).
    case("idle-fresh-head-request", "idle-fresh",
         [start(method="HEAD", head_request=True),
          ("data", response(200, "Content-Length: 10", length=False))],
         result=200, end="open", listener=RELEASED, phase="idle", body=b""),
    case("idle-fresh-start", "idle-fresh", start(),
         result="pending", end="open", listener=[], phase="head", sent_tail=b"Host: x\r\n\r\n"),

    # ------------------------------------------------------------ IDLE, pooled after an exchange
    case("idle-pooled-data-unsolicited", "idle-pooled", ("data", OK),
         result=200, end="closed", listener=["released", "closed"], phase="dead"),
    case("idle-pooled-eof", "idle-pooled", ("eof",),
         result=200, end="closed", listener=RELEASED, phase="dead"),
    case("idle-pooled-lost", "idle-pooled", ("lost",),
         result=200, end="lost", listener=["released", "closed"], phase="lost"),
    case("idle-pooled-deadline-idle", "idle-pooled", ("deadline", "idle"),
         result=200, end="closed", listener=["released", "closed"], phase="dead"),
    case("idle-pooled-deadline-total-not-armed", "idle-pooled", ("deadline", "total"),
         armed=False, result=200, end="open", listener=RELEASED, phase="idle"),
    case("idle-pooled-paused", "idle-pooled", ("pause_writing",),
         result=200, end="open", listener=RELEASED, phase="idle"),
    case("idle-pooled-abort", "idle-pooled", ("abort",),
         result=200, error=ReadError, end="aborted", listener=["released", "closed"], phase="dead"),
    case("idle-pooled-close", "idle-pooled", ("close",),
         result=200, end="closed", listener=["released", "closed"], phase="dead"),
    # The next exchange replaces the idle expiry with its own watches.
    case("idle-pooled-start-then-idle-deadline", "idle-pooled", [start(), ("deadline", "idle")],
         armed=False, result="pending", end="open", listener=RELEASED, phase="head"),
    case("idle-pooled-start-then-response", "idle-pooled", [start(), ("data", OK)],
         result=200, end="open", listener=RELEASED, phase="idle", body=b"ok"),

    # ------------------------------------------------------------ HEAD, nothing back yet
    case("head-data-response", "head", ("data", OK),
         result=200, end="open", listener=RELEASED, phase="idle", body=b"ok"),
    case("head-data-response-close", "head",
         ("data", response(200, "Connection: close", body=b"ok")),
         result=200, end="closed", listener=CLOSED, phase="dead", body=b"ok"),
    case("head-data-response-then-extra-bytes", "head", ("data", OK + b"HTTP/1.1"),
         result=200, end="closed", listener=CLOSED, phase="dead", body=b"ok"),
    case("head-data-no-content", "head", ("data", response(204, length=False)),
         result=204, end="open", listener=RELEASED, phase="idle", body=b""),
    case("head-data-chunked-whole", "head",
         ("data", CHUNKED_HEAD + b"3\r\nabc\r\n0\r\n\r\n"),
         result=200, end="open", listener=RELEASED, phase="idle", body=b"abc"),
    case("head-data-part-of-head", "head", ("data", b"HTTP/1.1 200 OK\r\n"),
         result="pending", end="open", listener=[], phase="head"),
    case("head-data-interim-within-limit", "head", ("data", CONTINUE * 2 + OK),
         result=200, end="open", listener=RELEASED, phase="idle", body=b"ok"),
    case("head-data-interim-beyond-limit", "head", ("data", CONTINUE * 3 + OK),
         result=RemoteProtocolError, error=RemoteProtocolError, end="aborted", listener=CLOSED,
         phase="dead"),
    case("head-data-101-not-asked", "head", ("data", SWITCH),
         result=RemoteProtocolError, error=RemoteProtocolError, end="aborted", listener=CLOSED,
         phase="dead"),
    case("head-data-malformed", "head", ("data", b"garbage\r\n\r\n"),
         result=RemoteProtocolError, error=RemoteProtocolError, end="aborted", listener=CLOSED,
         phase="dead"),
    case("head-data-close-delimited-head", "head", ("data", response(200, length=False)),
         result=200, end="open", listener=[], phase="body"),
    case("head-eof", "head", ("eof",),
         result=RemoteProtocolError, error=RemoteProtocolError, end="aborted", listener=CLOSED,
         phase="dead"),
    case("head-lost", "head", ("lost",),
         result=RemoteProtocolError, error=RemoteProtocolError, end="lost", listener=CLOSED,
         phase="lost"),
    case("head-lost-error", "head", ("lost", ConnectionResetError()),
         result=ReadError, error=ReadError, end="lost", listener=CLOSED, phase="lost"),
    case("head-paused", "head", ("pause_writing",),
         result="pending", end="open", listener=[], phase="head"),
    case("head-writable", "head", [("pause_writing",), ("resume_writing",)],
         result="pending", end="open", listener=[], phase="head"),
    case("head-deadline-read", "head", ("deadline", "read"),
         result=ReadTimeout, error=ReadTimeout, end="aborted", listener=CLOSED, phase="dead"),
    case("head-deadline-write-stall", "head", [("pause_writing",), ("deadline", "write")],
         result=WriteTimeout, error=WriteTimeout, end="aborted", listener=CLOSED, phase="dead"),
    # The stall watch runs only while the transport is paused.
    case("head-deadline-write-not-armed", "head", ("deadline", "write"),
         armed=False, result="pending", end="open", listener=[], phase="head"),
    case("head-deadline-total", "head", ("deadline", "total"),
         result=TotalTimeout, error=TotalTimeout, end="aborted", listener=CLOSED, phase="dead"),
    case("head-abort", "head", ("abort",),
         result=ReadError, error=ReadError, end="aborted", listener=CLOSED, phase="dead"),
    case("head-start-again", "head", start(),
         raised=RuntimeError, result="pending", end="open", listener=[], phase="head"),

    # ------------------------------------------------------------ HEAD, part of a head back
    case("head-partial-data-rest", "head-partial", ("data", b"nt-Length: 0\r\n\r\n"),
         result=200, end="open", listener=RELEASED, phase="idle", body=b""),
    case("head-partial-eof", "head-partial", ("eof",),
         result=RemoteProtocolError, error=RemoteProtocolError, end="aborted", listener=CLOSED,
         phase="dead"),
    case("head-partial-deadline-read", "head-partial", ("deadline", "read"),
         result=ReadTimeout, error=ReadTimeout, end="aborted", listener=CLOSED, phase="dead"),

    # ------------------------------------------------------------ HEAD, request body still open
    case("head-upload-send-and-end", "head-upload", [("send_body", b"0123456789"), ("end_body",)],
         upload="done", result="pending", end="open", listener=[], phase="head",
         sent_tail=b"\r\n\r\n0123456789", input_kind=1),
    case("head-upload-send-too-much", "head-upload", ("send_body", b"0123456789x"),
         upload=ValueError, result=WriteError, error=WriteError, end="aborted", listener=CLOSED,
         phase="dead"),
    case("head-upload-end-short", "head-upload", ("end_body",),
         raised=ValueError, result=WriteError, error=WriteError, end="aborted", listener=CLOSED,
         phase="dead"),
    case("head-upload-data-early-response", "head-upload", ("data", EARLY_413),
         result=413, end="open", listener=[], phase="done"),
    case("head-upload-eof", "head-upload", ("eof",),
         result=RemoteProtocolError, error=RemoteProtocolError, end="aborted", listener=CLOSED,
         phase="dead"),
    case("head-upload-lost", "head-upload", ("lost", ConnectionResetError()),
         result=ReadError, error=ReadError, end="lost", listener=CLOSED, phase="lost"),
    # The read deadline starts when the request is complete: not while it is being sent.
    case("head-upload-deadline-read-not-armed", "head-upload", ("deadline", "read"),
         armed=False, result="pending", end="open", listener=[], phase="head"),
    case("head-upload-deadline-total", "head-upload", ("deadline", "total"),
         result=TotalTimeout, error=TotalTimeout, end="aborted", listener=CLOSED, phase="dead"),
    case("head-upload-paused-send", "head-upload",
         [("pause_writing",), ("send_body", b"0123456789")],
         upload="pending", result="pending", end="open", listener=[], phase="head"),
    case("head-upload-abort", "head-upload", ("abort",),
         result=ReadError, error=ReadError, end="aborted", listener=CLOSED, phase="dead"),

    # ------------------------------------------------------------ HEAD, upload waiting on drain
    case("head-upload-paused-writable", "head-upload-paused", ("resume_writing",),
         upload="done", result="pending", end="open", listener=[], phase="head"),
    case("head-upload-paused-deadline-write", "head-upload-paused", ("deadline", "write"),
         upload=WriteTimeout, result=WriteTimeout, error=WriteTimeout, end="aborted",
         listener=CLOSED, phase="dead"),
    # An early answer wakes the uploader so it can stop (upload.py then calls stop_body).
    case("head-upload-paused-early-response", "head-upload-paused", ("data", EARLY_413),
         upload="done", result=413, end="open", listener=[], phase="done"),
    case("head-upload-paused-eof", "head-upload-paused", ("eof",),
         upload=RemoteProtocolError, result=RemoteProtocolError, error=RemoteProtocolError,
         end="aborted", listener=CLOSED, phase="dead"),
    case("head-upload-paused-abort", "head-upload-paused", ("abort",),
         upload=ReadError, result=ReadError, error=ReadError, end="aborted", listener=CLOSED,
         phase="dead"),
    # The uploader must see the connection's error (a ClientError; upload.py catches
    # TransportError), as it does on EOF and abort.
    case("head-upload-paused-lost", "head-upload-paused", ("lost", ConnectionResetError()),
         upload=ReadError, result=ReadError, error=ReadError, end="lost", listener=CLOSED,
         phase="lost"),

    # ------------------------------------------------------------ HEAD, asked to upgrade
    case("head-upgrade-data-101", "head-upgrade", ("data", SWITCH + b"tail"),
         result=101, end="open", listener=[], phase="switched", unread=b"tail"),
    case("head-upgrade-data-declined", "head-upgrade", ("data", OK),
         result=200, end="open", listener=RELEASED, phase="idle", body=b"ok"),
    case("head-upgrade-eof", "head-upgrade", ("eof",),
         result=RemoteProtocolError, error=RemoteProtocolError, end="aborted", listener=CLOSED,
         phase="dead"),

    # ------------------------------------------------------------ BODY, Content-Length
    case("body-length-data-rest", "body-length", ("data", b"defghij"),
         result=200, end="open", listener=RELEASED, phase="idle", body=b"abcdefghij"),
    case("body-length-data-part", "body-length", ("data", b"de"),
         result=200, end="open", listener=[], phase="body"),
    case("body-length-data-rest-and-extra", "body-length", ("data", b"defghij" + b"HTTP"),
         result=200, end="closed", listener=CLOSED, phase="dead", body=b"abcdefghij"),
    case("body-length-eof", "body-length", ("eof",),
         result=200, error=RemoteProtocolError, end="aborted", listener=CLOSED, phase="dead",
         body=RemoteProtocolError),
    case("body-length-lost", "body-length", ("lost", ConnectionResetError()),
         result=200, error=ReadError, end="lost", listener=CLOSED, phase="lost", body=ReadError),
    case("body-length-paused", "body-length", ("pause_writing",),
         result=200, end="open", listener=[], phase="body"),
    case("body-length-deadline-read", "body-length", ("deadline", "read"),
         result=200, error=ReadTimeout, end="aborted", listener=CLOSED, phase="dead",
         body=ReadTimeout),
    case("body-length-deadline-total", "body-length", ("deadline", "total"),
         result=200, error=TotalTimeout, end="aborted", listener=CLOSED, phase="dead",
         body=TotalTimeout),
    case("body-length-deadline-write-stall", "body-length",
         [("pause_writing",), ("deadline", "write")],
         result=200, error=WriteTimeout, end="aborted", listener=CLOSED, phase="dead",
         body=WriteTimeout),
    case("body-length-abort", "body-length", ("abort",),
         result=200, error=ReadError, end="aborted", listener=CLOSED, phase="dead", body=ReadError),

    # ------------------------------------------------------------ BODY, chunked
    case("body-chunked-data-last-chunk", "body-chunked", ("data", b"0\r\n\r\n"),
         result=200, end="open", listener=RELEASED, phase="idle", body=b"abc"),
    case("body-chunked-data-malformed", "body-chunked", ("data", b"zz\r\n"),
         result=200, error=RemoteProtocolError, end="aborted", listener=CLOSED, phase="dead",
         body=RemoteProtocolError),
    case("body-chunked-eof", "body-chunked", ("eof",),
         result=200, error=RemoteProtocolError, end="aborted", listener=CLOSED, phase="dead",
         body=RemoteProtocolError),
    case("body-chunked-lost", "body-chunked", ("lost",),
         result=200, error=RemoteProtocolError, end="lost", listener=CLOSED, phase="lost",
         body=RemoteProtocolError),
    case("body-chunked-abort", "body-chunked", ("abort",),
         result=200, error=ReadError, end="aborted", listener=CLOSED, phase="dead", body=ReadError),
    case("body-chunked-deadline-read", "body-chunked", ("deadline", "read"),
         result=200, error=ReadTimeout, end="aborted", listener=CLOSED, phase="dead",
         body=ReadTimeout),

    # ------------------------------------------------------------ BODY, close-delimited
    case("body-close-data", "body-close", ("data", b"def"),
         result=200, end="open", listener=[], phase="body"),
    # RFC 9112 §6.3 item 8: the close is what ends this body.
    case("body-close-eof", "body-close", ("eof",),
         result=200, end="closed", listener=CLOSED, phase="dead", body=b"abc"),
    case("body-close-lost-clean", "body-close", ("lost",),
         result=200, end="lost", listener=CLOSED, phase="lost", body=b"abc"),
    case("body-close-lost-error", "body-close", ("lost", ConnectionResetError()),
         result=200, error=ReadError, end="lost", listener=CLOSED, phase="lost", body=ReadError),

    # ------------------------------------------------------------ BODY, reading held (backlog)
    case("body-backlog-held", "body-backlog", ("pause_writing",),
         result=200, end="open", listener=[], phase="body", paused=True),
    # A slow reader is not a slow server: no read deadline while reading is held.
    case("body-backlog-deadline-read-not-armed", "body-backlog", ("deadline", "read"),
         armed=False, result=200, end="open", listener=[], phase="body", paused=True),
    case("body-backlog-read-and-rest", "body-backlog", [("read_chunk",), ("data", b"x" * 80)],
         result=200, end="open", listener=RELEASED, phase="idle", body=b"x" * 80,
         calls_include=["pause_reading", "resume_reading"]),

    # ------------------------------------------------------------ DONE, request body still open
    case("done-stop-body", "done-upload-open", ("stop_body",),
         result=413, end="closed", listener=CLOSED, phase="dead"),
    case("done-send-and-end", "done-upload-open", [("send_body", b"0123456789"), ("end_body",)],
         upload="done", result=413, end="closed", listener=CLOSED, phase="dead"),
    case("done-data-extra", "done-upload-open", ("data", b"HTTP"),
         result=413, end="open", listener=[], phase="done"),
    case("done-eof", "done-upload-open", ("eof",),
         result=413, end="closed", listener=[], phase="dead"),
    case("done-lost", "done-upload-open", ("lost",),
         result=413, error=WriteError, end="lost", listener=CLOSED, phase="lost"),
    case("done-paused", "done-upload-open", ("pause_writing",),
         result=413, end="open", listener=[], phase="done"),
    case("done-deadline-read-not-armed", "done-upload-open", ("deadline", "read"),
         armed=False, result=413, end="open", listener=[], phase="done"),
    case("done-deadline-total", "done-upload-open", ("deadline", "total"),
         result=413, error=TotalTimeout, end="aborted", listener=CLOSED, phase="dead"),
    case("done-abort", "done-upload-open", ("abort",),
         result=413, error=ReadError, end="aborted", listener=CLOSED, phase="dead"),
    # A kept-alive early answer: the exchange ends (and the pool gets it back) only once the
    # request was sent in full too.
    case("done-keepalive-send-and-end", "done-upload-open-keepalive",
         [("send_body", b"0123456789"), ("end_body",)],
         upload="done", result=200, end="open", listener=RELEASED, phase="idle"),
    case("done-keepalive-stop-body", "done-upload-open-keepalive", ("stop_body",),
         result=200, end="closed", listener=CLOSED, phase="dead"),

    # ------------------------------------------------------------ SWITCHED (101 to an upgrade)
    case("switched-data-stays-for-next-role", "switched", ("data", b"more"),
         result=101, end="open", listener=[], phase="switched", unread=b"tailmore"),
    case("switched-attach-next-role", "switched", ("attach",),
         result=101, end="open", listener=[], phase="attached", sent_tail=b"echo:tail"),
    case("switched-eof", "switched", ("eof",),
         result=101, end="closed", listener=[], phase="dead"),
    case("switched-paused", "switched", ("pause_writing",),
         result=101, end="open", listener=[], phase="switched"),
    case("switched-lost", "switched", ("lost",),
         result=101, end="lost", listener=CLOSED, phase="lost"),
    case("switched-deadline-read-not-armed", "switched", ("deadline", "read"),
         armed=False, result=101, end="open", listener=[], phase="switched"),
    case("switched-deadline-total-not-armed", "switched", ("deadline", "total"),
         armed=False, result=101, end="open", listener=[], phase="switched"),
    case("switched-abort", "switched", ("abort",),
         result=101, error=ReadError, end="aborted", listener=CLOSED, phase="dead"),

    # ------------------------------------------------------------ DEAD
    case("dead-failed-data-ignored", "dead-failed", ("data", OK),
         result=RemoteProtocolError, error=RemoteProtocolError, end="aborted", listener=CLOSED,
         phase="dead"),
    case("dead-failed-eof", "dead-failed", ("eof",),
         result=RemoteProtocolError, error=RemoteProtocolError, end="aborted", listener=CLOSED,
         phase="dead"),
    case("dead-failed-lost", "dead-failed", ("lost",),
         result=RemoteProtocolError, error=RemoteProtocolError, end="aborted", listener=CLOSED,
         phase="lost"),
    case("dead-failed-start-raises-the-error", "dead-failed", start(),
         raised=RemoteProtocolError, result=RemoteProtocolError, error=RemoteProtocolError,
         end="aborted", listener=CLOSED, phase="dead"),
    case("dead-failed-abort-keeps-first-error", "dead-failed", ("abort",),
         result=RemoteProtocolError, error=RemoteProtocolError, end="aborted", listener=CLOSED,
         phase="dead"),
    # An aborted stream keeps its slots until the loop reports the loss; one that fires
    # meanwhile finds the connection closing and changes nothing.
    case("dead-failed-deadline-read-ignored", "dead-failed", ("deadline", "read"),
         result=RemoteProtocolError, error=RemoteProtocolError, end="aborted",
         listener=CLOSED, phase="dead"),
    case("dead-failed-deadline-total-ignored", "dead-failed", ("deadline", "total"),
         result=RemoteProtocolError, error=RemoteProtocolError, end="aborted",
         listener=CLOSED, phase="dead"),
    case("dead-closed-start-raises", "dead-closed", start(),
         raised=RuntimeError, result=None, end="closed", listener=CLOSED, phase="dead"),
    case("dead-closed-data-ignored", "dead-closed", ("data", OK),
         result=None, end="closed", listener=CLOSED, phase="dead"),
    case("dead-closed-lost", "dead-closed", ("lost",),
         result=None, end="closed", listener=CLOSED, phase="lost"),
]


def check_phase(client: Client, phase: str) -> None:
    """Tell the role's phase from what a caller and the pool can see."""
    conn, stream = client.conn, client.stream
    if phase in ("idle", "head", "body", "done", "switched", "attached"):
        assert not stream.closing and not client.transport.is_closing()
    if phase == "idle":
        assert conn.is_reusable and conn.response_complete
    elif phase == "head":
        assert client.future is not None and not client.future.done()
        assert not conn.response_complete and not conn.is_reusable
    elif phase == "body":
        assert client.future.done() and not isinstance(client.future.result()[1], bytes)
        assert not conn.response_complete and not conn.is_reusable
    elif phase == "done":
        # The response is complete while the request body is still open: the exchange waits.
        assert conn.response_complete and conn.request_open and not conn.is_reusable
    elif phase == "switched":
        assert client.future.result()[1] is None
        assert stream.role is conn and not conn.response_complete and not conn.is_reusable
    elif phase == "attached":
        assert stream.role is not conn and client.role is not None
    elif phase == "dead":
        assert not conn.is_reusable
        assert stream.closing or client.transport.is_closing()
    elif phase == "lost":
        assert stream.lost and not conn.is_reusable
    else:
        raise AssertionError(f"no phase {phase}")


@pytest.mark.parametrize("phase, steps, expect", CASES)
def test_client_role_table(run: Any, phase: str, steps: tuple[Any, ...],
                           expect: dict[str, Any]) -> None:
    spec = PHASES[phase]

    async def main() -> None:
        client = Client(asyncio.get_running_loop(), ClientLimits(**spec.limits))
        try:
            for step in spec.steps:
                await client.step(step)
            assert client.raised == [], f"the prefix raised {client.raised}"
            for step in steps:
                await client.step(step)
            conn, stream = client.conn, client.stream
            assert client.result() == expect["result"]
            error = expect.get("error")
            assert (type(conn.error) if conn.error is not None else None) is error
            assert client.end == expect["end"]
            assert client.listener.events == expect["listener"]
            assert client.raised == ([expect["raised"]] if "raised" in expect else [])
            if "upload" in expect:
                assert client.upload() == expect["upload"]
            assert stream.reading_paused is expect.get("paused", False)
            if "sent_tail" in expect:
                assert client.transport.written.endswith(expect["sent_tail"])
            if "unread" in expect:
                assert stream.buffer.pending() == expect["unread"]
            if "input_kind" in expect:
                assert stream.input_kind == expect["input_kind"]
            for name in expect.get("calls_include", ()):
                assert name in client.transport.calls
            check_phase(client, expect["phase"])
            if "body" in expect:
                assert await client.body() == expect["body"]
            expected_unarmed = ([s[1] for s in steps if s[0] == "deadline"]
                                if expect.get("armed") is False else [])
            assert client.unarmed == expected_unarmed, f"deadline slots not armed: {client.unarmed}"
        finally:
            await client.teardown()
        assert client.transport.late_writes == []

    run(main, timeout_s=5.0)
