"""examples/fastapi_app.py answers the same on cyserve and on uvicorn (issue 12 §2).

Each server is started by its own command line with the same arguments, the one word that
differs being the program (``cyserve examples.fastapi_app:app ...`` / ``uvicorn
examples.fastapi_app:app ...``), on a listening socket this test made (``--fd``), both on the
loop under test.  The same recorded requests go to both, in the same order, over raw sockets:
every route with good and bad inputs (pydantic 422s, a dependency's 401, 404s, 405s), percent-
encoded paths and queries, a chunked upload and a chunked JSON body, ``Expect: 100-continue``,
HEAD, HTTP/1.0, a streamed response, background tasks and a ``yield`` dependency seen through
the audit log, and WebSocket exchanges (a denial through ``websocket.http.response``, a
subprotocol, text both ways, a close with code and reason).  Responses are parsed by h11 (neither
server's codec) and compared: status, interim statuses, header fields, and body byte for byte.

What the comparison normalises (``comparable``), each once:
- ``Date`` and ``Server``: the time and the server's name (RFC 9110 §6.6.1, §10.2.4);
- the fields the server's core decides, ``Content-Length``, ``Transfer-Encoding`` (framing, RFC
  9112 §6.1-6.3) and ``Connection`` (persistence and the 101's ``Upgrade`` token, RFC 9112 §9.3,
  RFC 9110 §7.6.1, §7.8): compared by name and value, but not by the letter case of their names
  nor their position.  Both servers take the length from the app or write their own framing;
  cyserve's writer, the one place that decides a message's framing and persistence, puts these
  after the app's fields in canonical case, where uvicorn keeps the app's lowercase in place.
  Field names are case-insensitive (RFC 9110 §5.1) and the order of fields with different names
  is not significant (RFC 9110 §5.3);
- chunked bodies are compared after decoding: where chunk boundaries fall is the writer's choice
  (RFC 9112 §7.1), the content is the app's.
Every other field is compared as sent: the same names, letter case, values and order.

One intended difference, listed in ``INTENDED`` with its reason: after answering a refused
WebSocket handshake uvicorn closes the connection (``Connection: close``); cyserve keeps it (the
test checks that it then answers the next request on it).
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator

import pytest

pytest.importorskip("fastapi", reason="FastAPI is installed by the test extra")
pytest.importorskip("uvicorn")
from wsproto.connection import Connection, ConnectionType  # noqa: E402
from wsproto.events import CloseConnection, Ping, TextMessage  # noqa: E402

from tests.support import Reply, RawClient  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
APP = "examples.fastapi_app:app"
SERVERS = ("cyserve", "uvicorn")
START_TIMEOUT_S = 30.0  # FastAPI and pydantic import in a few seconds on a loaded machine
STEP_TIMEOUT_S = 10.0  # any one response or WebSocket message
TOKEN = [("X-Token", "secret")]
JSON = [("Content-Type", "application/json")]
DROPPED = {b"date", b"server"}  # dropped before comparing (the module docstring)
# Compared without the letter case of their names or their position (the module docstring).
CORE_FIELDS = {b"content-length", b"transfer-encoding", b"connection"}
# label -> (server, the core field that server adds, why it is intended)
INTENDED: dict[str, tuple[str, tuple[bytes, bytes], str]] = {
    "ws denied": ("uvicorn", (b"connection", b"close"),
                  "a refused WebSocket handshake is a complete HTTP exchange (a GET without a "
                  "body, answered in full by the app through websocket.http.response, the "
                  "protocol not switched), so cyserve keeps the connection persistent (RFC 9112 "
                  "§9.3; RFC 9110 §7.8 lets a server go on in HTTP/1.1 after an Upgrade it does "
                  "not take); uvicorn closes it"),
}


# ----------------------------------------------------------------- the two servers
def command(server: str, fd: int, loop: str) -> list[str]:
    """The same command line for both servers but the program's name."""
    script = Path(sys.executable).parent / server
    program = [str(script)] if script.is_file() else [sys.executable, "-m", server]
    return [*program, APP, "--fd", str(fd), "--loop", loop, "--no-access-log",
            "--log-level", "warning"]


@contextlib.contextmanager
def started(server: str, loop: str, log_dir: Path) -> Iterator[tuple[int, Path]]:
    """``server`` serving the example on a socket bound and listening here (connections wait in
    its backlog until the server accepts, so no polling for readiness); (port, log) for the
    block, then SIGTERM, and SIGKILL to its group if it is still there."""
    log = log_dir / f"{server}.log"
    with socket.socket() as listener, log.open("wb") as out:
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        port = listener.getsockname()[1]
        proc = subprocess.Popen(command(server, listener.fileno(), loop), cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, pass_fds=(listener.fileno(),),
                                start_new_session=True)
    try:
        yield port, log
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# ----------------------------------------------------------------- what is compared
@dataclass
class Answer:
    """One exchange as compared: the label says which recorded request it answers."""

    label: str
    status: int
    informational: list[int]
    fields: list[tuple[bytes, bytes]]
    core_fields: list[tuple[bytes, bytes]]  # CORE_FIELDS, lowercased and sorted
    body: bytes
    extra: list[Any] = field(default_factory=list)  # WebSocket messages and close, in order
    reused: list[Any] = field(default_factory=list)  # not compared: see INTENDED


def comparable(label: str, reply: Reply, extra: list[Any] | None = None) -> Answer:
    """The reply with the normalisations of the module docstring applied, nothing else."""
    fields, core = [], []
    for name, value in reply.raw_headers:
        raw = (name.encode("latin-1"), value.encode("latin-1"))
        lower = raw[0].lower()
        if lower in DROPPED:
            continue
        if lower in CORE_FIELDS:
            core.append((lower, raw[1]))
        else:
            fields.append(raw)
    return Answer(label, reply.status, reply.informational, fields, sorted(core), reply.body,
                  extra or [])


Exchange = Callable[[int], Awaitable[list[Answer]]]


# ----------------------------------------------------------------- the recorded requests
def multipart(parts: list[tuple[str, str | None, str | None, bytes]]) -> tuple[str, bytes]:
    """(content type, body) of a multipart/form-data body (RFC 7578): parts are (name,
    filename, content type, data)."""
    boundary = "cyserve-differential-7d1f0"
    chunks = []
    for name, filename, content_type, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        chunks.append(head.encode() + b"\r\n" + data + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(chunks)


def chunked(body: bytes, size: int) -> bytes:
    """``body`` in the chunked transfer coding (RFC 9112 §7.1), ``size`` bytes a chunk."""
    out = [f"{len(body[i:i + size]):x}\r\n".encode() + body[i:i + size] + b"\r\n"
           for i in range(0, len(body), size)]
    return b"".join(out) + b"0\r\n\r\n"


UPLOAD = bytes(range(256)) * 800 + b"tail"  # 200 KiB and a bit: several reads on both servers


async def http_exchanges(port: int) -> list[Answer]:
    """Most requests on one keep-alive connection, in order (the app's state depends on it)."""
    answers: list[Answer] = []
    client = await RawClient.open(port)

    async def ask(label: str, method: str, target: str, headers: list[tuple[str, str]] | None = None,
                  body: bytes = b"") -> None:
        reply = await asyncio.wait_for(client.request(method, target, headers, body), STEP_TIMEOUT_S)
        answers.append(comparable(label, reply))

    async def raw(label: str, method: str, head: bytes, body: bytes = b"",
                  wait_for_100: bool = False) -> None:
        await client.send(head)
        if wait_for_100:  # the body goes only after the interim answer (RFC 9110 §10.1.1)
            line = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), STEP_TIMEOUT_S)
            assert line.startswith(b"HTTP/1.1 100 "), line  # taken off the wire: h11 never sees it
        await client.send(body)
        reply = await client.response(method, timeout_s=STEP_TIMEOUT_S)
        if wait_for_100:
            reply.informational.insert(0, 100)
        answers.append(comparable(label, reply))

    try:
        await ask("index", "GET", "/")
        await ask("product", "GET", "/products/3")
        await ask("product percent-encoded", "GET", "/products/%34%32")
        await ask("product missing", "GET", "/products/0")
        await ask("product id not an int", "GET", "/products/abc")
        await ask("create without token", "POST", "/items", JSON,
                  b'{"name": "lamp", "price": 12.5}')
        await ask("create", "POST", "/items", TOKEN + JSON,
                  b'{"name": "lamp", "price": 12.5, "tags": ["home", "light"]}')
        await ask("create invalid fields", "POST", "/items", TOKEN + JSON,
                  b'{"name": "", "price": -1, "tags": "x"}')
        await ask("create malformed json", "POST", "/items", TOKEN + JSON, b'{"name": "lamp",')
        await ask("create no body", "POST", "/items", TOKEN + JSON)
        document = json.dumps({"name": "desk \u00e9", "price": 99.0, "tags": ["office"]}).encode()
        await raw("create chunked body", "POST",
                  b"POST /items HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Token: secret\r\n"
                  b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
                  chunked(document, 7))
        await raw("create with 100-continue", "POST",
                  b"POST /items HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Token: secret\r\n"
                  b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
                  b"Content-Length: 31\r\n\r\n",
                  b'{"name": "chair", "price": 45 }', wait_for_100=True)
        await ask("list page", "GET", "/items?offset=1&limit=%32")
        await ask("list bad limit", "GET", "/items?limit=0")
        await ask("list", "GET", "/items")
        await ask("export stream", "GET", "/items/export")
        await ask("read item", "GET", "/items/1")
        await ask("read missing item", "GET", "/items/99")
        await ask("delete without token", "DELETE", "/items/2")
        await ask("delete", "DELETE", "/items/2", TOKEN)
        await ask("delete again", "DELETE", "/items/2", TOKEN)
        await ask("health", "GET", "/health")
        await ask("health HEAD", "HEAD", "/health")
        await ask("HEAD on a GET-only route", "HEAD", "/products/1")
        await ask("wrong method", "PUT", "/items", TOKEN + JSON, b"{}")
        await ask("no such route", "GET", "/nowhere?x=1")
        content_type, form = multipart([("note", None, None, "caf\u00e9".encode()),
                                        ("file", "data.bin", "application/octet-stream", UPLOAD)])
        await ask("upload", "POST", "/upload", [("Content-Type", content_type)], form)
        await raw("upload chunked", "POST",
                  f"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n".encode(), chunked(form, 16 * 1024 + 3))
        content_type, no_file = multipart([("note", None, None, b"no file")])
        await ask("upload without file", "POST", "/upload", [("Content-Type", content_type)], no_file)
        # Every POST /items whose token passed opened a unit of work (the yield dependency runs
        # before the body is validated) except the malformed JSON one (FastAPI refuses a body
        # that does not parse before it solves dependencies): 3 with an item created
        # (open, created, close) and 2 without, then 2 deletes (open, close): 17 entries, the
        # last of each written after its response went out, so the app waits for all of them.
        await ask("audit log", "GET", "/audit?min_entries=17")
    finally:
        await client.close()

    # HTTP/1.0 on a connection of its own: the answer is delimited and the server closes after.
    old = await RawClient.open(port)
    try:
        reply = await asyncio.wait_for(old.request("GET", "/products/7", version="1.0"),
                                       STEP_TIMEOUT_S)
        answers.append(comparable("HTTP/1.0", reply))
    finally:
        await old.close()
    return answers


# ----------------------------------------------------------------- WebSocket exchanges
KEY = base64.b64encode(b"cyserve-differ-1").decode()  # fixed: both answers carry the same accept


def upgrade_head(target: str, protocols: str | None) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {KEY}", "Sec-WebSocket-Version: 13"]
    if protocols:
        lines.append(f"Sec-WebSocket-Protocol: {protocols}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def switched(port: int, target: str, protocols: str | None) -> tuple[
        Reply, asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """The handshake over a raw socket; the 101's head parsed here (h11 stops at a 101), and the
    bytes read past it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(upgrade_head(target, protocols))
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = await asyncio.wait_for(reader.read(4096), STEP_TIMEOUT_S)
        assert chunk, f"closed during the handshake: {received!r}"
        received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    fields = [(name, value.strip()) for name, _, value in (line.partition(":") for line in lines)]
    return Reply(int(status_line.split()[1]), {}, b"", [], fields), reader, writer, rest


async def websocket_exchanges(port: int) -> list[Answer]:
    answers: list[Answer] = []
    # Refused before accepting: the app's own HTTP answer (websocket.http.response).  Where the
    # connection stays open (INTENDED), the next request on it must be answered.
    client = await RawClient.open(port)
    try:
        await client.send(upgrade_head("/ws?token=wrong", "json"))
        reply = await client.response("GET", timeout_s=STEP_TIMEOUT_S)
        after: list[Any] = []
        if reply.headers.get("connection", "").lower() != "close":
            after.append((await client.request("GET", "/products/5")).status)
        answers.append(comparable("ws denied", reply))
        answers[-1].reused = after
    finally:
        await client.close()

    reply, reader, writer, rest = await switched(port, "/ws?token=secret", "chat, json")
    try:
        assert reply.status == 101, reply
        ws = Connection(ConnectionType.CLIENT, trailing_data=rest)
        seen: list[Any] = []
        for message in ({"op": "say", "text": "hello"}, {"op": "say", "text": "\u00e7a va"},
                        {"op": "bye"}):
            writer.write(ws.send(TextMessage(data=json.dumps(message))))
        closed = False
        while not closed:
            for event in ws.events():
                if isinstance(event, TextMessage):
                    seen.append(("text", event.data, event.message_finished))
                elif isinstance(event, CloseConnection):
                    seen.append(("close", event.code, event.reason))
                    writer.write(ws.send(event.response()))
                    closed = True
                elif isinstance(event, Ping):
                    writer.write(ws.send(event.response()))
                else:
                    seen.append(("unexpected", repr(event)))
            if not closed:
                data = await asyncio.wait_for(reader.read(65536), STEP_TIMEOUT_S)
                assert data, f"the server dropped the connection without a close frame: {seen}"
                ws.receive_data(data)
        # After the closing handshake the server ends the TCP connection (RFC 6455 §7.1.1).
        assert await asyncio.wait_for(reader.read(), STEP_TIMEOUT_S) == b""
        answers.append(comparable("ws session", reply, seen))
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return answers


# ----------------------------------------------------------------- the test
async def both(ports: dict[str, int], exchange: Exchange) -> dict[str, list[Answer]]:
    """The exchange against each server at once (each has its own state)."""
    results = await asyncio.gather(*(exchange(port) for port in ports.values()))
    return dict(zip(ports, results))


def differences(answers: dict[str, list[Answer]]) -> list[str]:
    cy, uv = answers["cyserve"], answers["uvicorn"]
    assert [a.label for a in cy] == [a.label for a in uv]
    out = []
    for a, b in zip(cy, uv):
        if a.label in INTENDED:
            server, extra_field, _ = INTENDED[a.label]
            added_by, other = (a, b) if server == "cyserve" else (b, a)
            if extra_field not in added_by.core_fields or extra_field in other.core_fields:
                out.append(f"{a.label}: the intended difference {extra_field!r} from {server} "
                           "is gone: remove it from INTENDED")
            else:
                added_by.core_fields.remove(extra_field)
        for what in ("status", "informational", "fields", "core_fields", "body", "extra"):
            if getattr(a, what) != getattr(b, what):
                out.append(f"{a.label}: {what} differ\n  cyserve {getattr(a, what)!r}\n"
                           f"  uvicorn {getattr(b, what)!r}")
    return out


@contextlib.asynccontextmanager
async def _servers(loop: str, log_dir: Path) -> AsyncIterator[dict[str, int]]:
    with contextlib.ExitStack() as stack:
        started_ = {name: stack.enter_context(started(name, loop, log_dir)) for name in SERVERS}
        ports = {name: port for name, (port, _) in started_.items()}
        try:
            # The first answer from each: imports and the lifespan startup are done.
            first = await both(ports, lambda port: _first_answer(port))
            assert all(a[0].status == 200 for a in first.values()), first
            yield ports
        except BaseException:
            for name, (_, log) in started_.items():
                print(f"--- {name} log\n{log.read_text(errors='replace')[-3000:]}")
            raise


async def _first_answer(port: int) -> list[Answer]:
    """``GET /``, waiting up to START_TIMEOUT_S: the request sits in the listener's backlog until
    the server has imported the app and run its lifespan startup."""
    client = await RawClient.open(port)
    try:
        await client.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        reply = await client.response("GET", timeout_s=START_TIMEOUT_S)
        return [comparable("first", reply)]
    finally:
        await client.close()


def test_fastapi_example_answers_as_on_uvicorn(run: Any, request: pytest.FixtureRequest) -> None:
    loop = request.node.callspec.params["run"]

    async def main() -> dict[str, list[Answer]]:
        with tempfile.TemporaryDirectory(prefix="fastapi-differential-") as tmp:
            async with _servers(loop, Path(tmp)) as ports:
                answers = await both(ports, http_exchanges)
                for name, ws_answers in (await both(ports, websocket_exchanges)).items():
                    answers[name] += ws_answers
                return answers

    answers = run(main, timeout_s=START_TIMEOUT_S + 60)
    found = differences(answers)
    assert not found, "\n".join(found)
    by_label = {a.label: a for a in answers["cyserve"]}
    # The differential proves sameness; these prove the recorded requests reached what they
    # were meant to (a broken app would answer both servers alike).
    assert by_label["create"].status == 201 and (b"location", b"/items/1") in by_label["create"].fields
    assert by_label["create with 100-continue"].informational == [100]
    assert by_label["create chunked body"].status == 201
    assert by_label["create invalid fields"].status == 422
    assert by_label["create without token"].status == 401
    assert json.loads(by_label["product percent-encoded"].body)["id"] == 42
    assert by_label["export stream"].core_fields == [(b"transfer-encoding", b"chunked")]
    assert by_label["export stream"].body.count(b"\n") == 4  # 3 items and the end line
    assert by_label["health HEAD"].body == b"" and by_label["health HEAD"].status == 200
    assert by_label["HEAD on a GET-only route"].status == 405
    assert by_label["wrong method"].status == 405 and by_label["no such route"].status == 404
    upload = json.loads(by_label["upload"].body)
    assert upload["size"] == len(UPLOAD) and upload["note"] == "caf\u00e9"
    assert upload["sha256"] == hashlib.sha256(UPLOAD).hexdigest()
    assert json.loads(by_label["upload chunked"].body) == upload
    assert by_label["upload without file"].status == 422
    entries = json.loads(by_label["audit log"].body)["entries"]
    assert len(entries) == 17 and entries.count("close DELETE /items/2") == 2
    assert [e for e in entries if e.startswith("created")] == [f"created item {i}" for i in (1, 2, 3)]
    assert by_label["ws denied"].status == 401
    assert by_label["ws denied"].reused == [200]  # cyserve's connection went on (INTENDED)
    session = by_label["ws session"]
    assert session.status == 101
    assert [value for name, value in session.fields if name.lower() == b"sec-websocket-protocol"] == [b"json"]
    assert session.extra == [
        ("text", json.dumps({"n": 1, "echo": {"op": "say", "text": "hello"}}, separators=(",", ":")), True),
        ("text", json.dumps({"n": 2, "echo": {"op": "say", "text": "\u00e7a va"}},
                            separators=(",", ":"), ensure_ascii=False), True),
        ("close", 4000, "bye after 2")]
