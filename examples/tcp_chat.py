"""A chat over TCP long connections (and WebSocket): PyLiteFlux's chat, done right.

    python examples/tcp_chat.py                   # HTTP on :8000, push on tcp://127.0.0.1:9000
                                                  # and ws://127.0.0.1:8000/push
    python examples/tcp_chat.py client --name alice --token alice-secret      # in two terminals
    python examples/tcp_chat.py client --name bob --token bob-secret
    nc 127.0.0.1 9000                             # or by hand (docs/push-protocol.md §14)
    curl -X POST -H 'Authorization: Bearer admin-secret' -d '{"text": "hi"}' \\
        http://127.0.0.1:8000/rooms/lobby/announce

``cyserve examples.tcp_chat:app`` serves it too.  What PyLiteFlux did, and what happens here:

- one ``recv(1024)`` was one message -> framed messages (length-prefixed, or JSON lines for
  ``nc``) with a size limit, on TCP and WebSocket alike (docs/push-protocol.md §3);
- the client id was the peer's ``ip:port``, and a falsy id broadcast to everyone -> the server
  issues an unguessable id after the auth hook accepted the client's credentials; a message goes
  to a room (a group) or to one client, never to everyone by accident;
- nothing was authenticated -> a token per user (``CHAT_TOKENS``, compared in constant time):
  an unknown name or token gets a refusal and nothing else; the HTTP endpoints that push want
  the admin token (``CHAT_ADMIN_TOKEN``);
- commands were routed by a string in the payload, errors crashed the loop -> named commands with
  request ids; an unknown one or a refusal is an error reply and the connection stays;
- pushes were written from any thread -> the hub writes, once per message and room, the same
  frame bytes to every member, and a slow member cannot stall the others.

Commands (``push.call(name, data)``): ``chat.join`` / ``chat.leave`` ``{"room"}``, ``chat.send``
``{"room", "text"}`` (members only), ``chat.who`` ``{"room"}``.  Pushes are JSON objects with a
``type``: ``message`` (``room``, ``from`` = the sender's client id, ``name``, ``text``),
``join`` / ``leave`` (``room``, ``id``, ``name``), ``announce`` (``room``, ``text``) and
``notice`` (``text``, to one client).  A client that drops keeps its session for
``resume_window_s`` (it comes back with every message it missed): it leaves its rooms when the
session ends, not when the connection drops.

HTTP: ``POST /notify/{client_id}`` ``{"text"}`` pushes a notice to one client (404 when it is
not connected); ``POST /rooms/{room}/announce`` ``{"text"}`` to a room.  Both want
``Authorization: Bearer <CHAT_ADMIN_TOKEN>``.

Environment: ``PORT`` (HTTP, 8000), ``PUSH_PORT`` (TCP push, 9000; 0 for any free port),
``CHAT_TOKENS`` (``name:token,name:token``; default the demo table below) and
``CHAT_ADMIN_TOKEN`` (default ``admin-secret``).  The demo secrets are for trying it out; set
your own before serving anyone else.
"""
from __future__ import annotations

import argparse
import asyncio
import hmac
import os
import re
import sys
import threading
from typing import Any, TextIO

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cyserve import App, HTTPError, Request  # noqa: E402
from cyserve.errors import PushCallError, PushClosed, PushRefused  # noqa: E402
from cyserve.push import Gap, Hub, Push, PushClient, PushDenied, SessionReset, connect  # noqa: E402
from cyserve.push.connection import Connection  # noqa: E402

DEMO_TOKENS = "alice:alice-secret,bob:bob-secret,carol:carol-secret"
ROOM = re.compile(r"[A-Za-z0-9_-]{1,32}")
MAX_TEXT = 2000  # characters in one chat line


def parse_tokens(text: str) -> dict[str, str]:
    """``name:token,name:token`` -> {name: token}."""
    table = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, sep, token = entry.partition(":")
        if not sep or not name or not token:
            raise ValueError(f"CHAT_TOKENS entries are name:token, got {entry!r}")
        table[name] = token
    return table


TOKENS = parse_tokens(os.environ.get("CHAT_TOKENS", DEMO_TOKENS))
ADMIN_TOKEN = os.environ.get("CHAT_ADMIN_TOKEN", "admin-secret")

app = App()
hub = Hub()  # in-process: the chat is one process (examples/push_cluster.py spreads a hub out)
push = app.push(hub, port=int(os.environ.get("PUSH_PORT", "9000")), websocket="/push")
# client id -> name, for ``chat.who`` and the notices (one process: a dict is the directory).
names: dict[str, str] = {}


def _same(given: str, expected: str) -> bool:
    # Constant time: how much of a token matched must not show in the answer's timing.
    return hmac.compare_digest(given.encode(), expected.encode())


def _room(data: Any) -> str:
    room = data.get("room") if isinstance(data, dict) else None
    if not isinstance(room, str) or ROOM.fullmatch(room) is None:
        raise PushDenied("a room is 1 to 32 letters, digits, '_' or '-'", "bad_request")
    return room


def _group(room: str) -> str:
    return "room:" + room


def _name(conn: Connection) -> str:
    return str(conn.identity)


@hub.on_connect
async def authenticate(conn: Connection, credentials: Any) -> str:
    """The identity is the user's name, once its token matched; anything else is refused
    (REFUSE ``unauthorized``: no client id, no token, no push)."""
    if not isinstance(credentials, dict):
        raise PushDenied("credentials are {\"name\": ..., \"token\": ...}")
    name, token = credentials.get("name"), credentials.get("token")
    expected = TOKENS.get(name) if isinstance(name, str) else None
    # Compared even for an unknown name, so that a wrong name answers as fast as a wrong token.
    matched = _same(token if isinstance(token, str) else "", expected or "\0" * 32)
    if expected is None or not matched:
        raise PushDenied("unknown name or token")
    return str(name)


@hub.on_disconnect
async def gone(conn: Connection, code: str) -> None:
    """The session ended (a client's CLOSE, its resume window passed, the server stopping):
    the rooms it was in hear that it left.  The hub took it out of them already."""
    client_id = conn.client_id
    if client_id is None:
        return
    name = names.pop(client_id, _name(conn))
    for group in sorted(conn.groups):
        await hub.publish(group, {"type": "leave", "room": group[len("room:"):], "id": client_id,
                                  "name": name})


@hub.command("chat.join")
async def chat_join(conn: Connection, data: Any) -> dict[str, Any]:
    room = _room(data)
    client_id = conn.client_id
    assert client_id is not None  # commands run after WELCOME
    names[client_id] = _name(conn)
    if _group(room) not in conn.groups:
        await conn.join(_group(room))
        await hub.publish(_group(room), {"type": "join", "room": room, "id": client_id,
                                         "name": names[client_id]}, exclude=client_id)
    return {"room": room, "members": await _members(room)}


@hub.command("chat.leave")
async def chat_leave(conn: Connection, data: Any) -> dict[str, Any]:
    room = _room(data)
    if _group(room) in conn.groups:
        await conn.leave(_group(room))
        await hub.publish(_group(room), {"type": "leave", "room": room, "id": conn.client_id,
                                         "name": _name(conn)})
    return {"room": room, "left": True}


@hub.command("chat.send")
async def chat_send(conn: Connection, data: Any) -> dict[str, Any]:
    room = _room(data)
    text = data.get("text")
    if not isinstance(text, str) or not 1 <= len(text) <= MAX_TEXT:
        raise PushDenied(f"text is 1 to {MAX_TEXT} characters", "bad_request")
    if _group(room) not in conn.groups:
        raise PushDenied(f"join #{room} first", "not_member")
    # Every member gets it, the sender too: its copy says where the message is in the room's
    # order.
    await hub.publish(_group(room), {"type": "message", "room": room, "from": conn.client_id,
                                     "name": _name(conn), "text": text})
    return {"ok": True}


@hub.command("chat.who")
async def chat_who(conn: Connection, data: Any) -> dict[str, Any]:
    room = _room(data)
    return {"room": room, "members": await _members(room)}


async def _members(room: str) -> list[dict[str, str]]:
    ids = await hub.members(_group(room))
    return sorted(({"id": client_id, "name": names.get(client_id, "?")} for client_id in ids),
                  key=lambda member: (member["name"], member["id"]))


# ---------------------------------------------------------------------- HTTP: pushes from outside
def _admin(request: Request) -> None:
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not _same(token.strip(), ADMIN_TOKEN):
        raise HTTPError(401, "an admin bearer token is needed", {"WWW-Authenticate": "Bearer"})


async def _text(request: Request) -> str:
    body = await request.json()
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str) or not 1 <= len(text) <= MAX_TEXT:
        raise HTTPError(400, f'send {{"text": ...}} with 1 to {MAX_TEXT} characters')
    return text


@app.post("/notify/{client_id}")
async def notify(request: Request, client_id: str) -> dict[str, Any]:
    """A push to one client, wherever it is connected; 404 when it is not."""
    _admin(request)
    text = await _text(request)
    if not await hub.send(client_id, {"type": "notice", "text": text}):
        raise HTTPError(404, "no client with that id is connected")
    return {"delivered": True}


@app.post("/rooms/{room}/announce")
async def announce(request: Request, room: str) -> dict[str, Any]:
    _admin(request)
    if ROOM.fullmatch(room) is None:
        raise HTTPError(400, "a room is 1 to 32 letters, digits, '_' or '-'")
    text = await _text(request)
    await hub.publish(_group(room), {"type": "announce", "room": room, "text": text})
    return {"room": room, "members": len(await hub.members(_group(room)))}


# ---------------------------------------------------------------------- the terminal client
def show(item: Push | Gap | SessionReset) -> str:
    """One line for a person."""
    if isinstance(item, Gap):
        return f"(missed {item.last - item.first + 1} message(s))"
    if isinstance(item, SessionReset):
        return "(reconnected as a new session: the rooms are joined again)"
    data = item.data if isinstance(item.data, dict) else {"type": "?", "text": repr(item.data)}
    kind = data.get("type")
    if kind == "message":
        return f"[#{data['room']}] {data['name']}: {data['text']}"
    if kind in ("join", "leave"):
        return f"* {data['name']} {'joined' if kind == 'join' else 'left'} #{data['room']}"
    if kind == "announce":
        return f"[#{data['room']}] ANNOUNCEMENT: {data['text']}"
    if kind == "notice":
        return f"(notice) {data['text']}"
    return f"(push) {data!r}"


def _read_lines(loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None],
                source: TextIO) -> None:
    # A thread, because a terminal, a pipe and a file all read the same way with it; it is a
    # daemon, so a line never typed does not keep the process alive.
    try:
        for line in source:
            loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\r\n"))
        loop.call_soon_threadsafe(lines.put_nowait, None)
    except RuntimeError:
        pass  # the loop closed: the client is gone


async def run_client(url: str, name: str, token: str, room: str,
                     source: TextIO = sys.stdin, out: TextIO = sys.stdout) -> int:
    """Join ``room``, print what arrives, send each line read (``/join ROOM``, ``/leave``,
    ``/who``, ``/quit`` are commands).  Returns the exit status: 0 after end of input or
    ``/quit``, 1 when the session was refused or ended by the server."""
    def say(text: str) -> None:
        print(text, file=out, flush=True)

    try:
        client = connect(url, {"name": name, "token": token})
        await client.open()
    except PushRefused as exc:
        say(f"refused: {exc.code}")
        return 1
    except OSError as exc:
        say(f"cannot connect to {url}: {exc}")
        return 1
    rooms = {room}
    current = room
    try:
        say(_joined(await client.call("chat.join", {"room": room}, timeout_s=10)))
        printer = asyncio.ensure_future(_print_pushes(client, rooms, say))
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        threading.Thread(target=_read_lines, args=(asyncio.get_running_loop(), lines, source),
                         daemon=True).start()
        while True:
            line_task = asyncio.ensure_future(lines.get())
            done, _ = await asyncio.wait({line_task, printer}, return_when=asyncio.FIRST_COMPLETED)
            if printer in done:
                line_task.cancel()
                return printer.result()
            line = line_task.result()
            if line is None or line.strip() == "/quit":
                printer.cancel()
                return 0
            current = await _command(client, line, current, rooms, say)
    except PushClosed as exc:
        say(f"closed: {exc.code}")
        return 1
    finally:
        await client.close()


async def _command(client: PushClient, line: str, current: str, rooms: set[str],
                   say: Any) -> str:
    """One typed line; returns the room lines go to from now on."""
    word, _, rest = line.strip().partition(" ")
    try:
        if word == "/join" and rest:
            say(_joined(await client.call("chat.join", {"room": rest.strip()}, timeout_s=10)))
            rooms.add(rest.strip())
            return rest.strip()
        if word == "/leave":
            target = rest.strip() or current
            await client.call("chat.leave", {"room": target}, timeout_s=10)
            rooms.discard(target)
            return current if target != current else next(iter(sorted(rooms)), current)
        if word == "/who":
            reply = await client.call("chat.who", {"room": rest.strip() or current}, timeout_s=10)
            say(f"#{reply['room']}: " + ", ".join(m["name"] for m in reply["members"]))
            return current
        if line.strip():
            await client.call("chat.send", {"room": current, "text": line}, timeout_s=10)
    except PushCallError as exc:
        say(f"! {exc.code}: {exc.text}")
    return current


def _joined(reply: dict[str, Any]) -> str:
    return f"joined #{reply['room']}: " + ", ".join(m["name"] for m in reply["members"])


async def _print_pushes(client: PushClient, rooms: set[str], say: Any) -> int:
    try:
        async for item in client:
            say(show(item))
            if isinstance(item, SessionReset):
                # A new session has no groups (§8.4): join the rooms again, without holding up
                # the pushes behind this one.
                for room in sorted(rooms):
                    asyncio.ensure_future(client.call("chat.join", {"room": room}, timeout_s=10))
    except PushClosed as exc:
        say(f"closed by the server: {exc.code}")
        return 1
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="The push chat: serve it, or be its client.")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve the chat (the default)")
    client = commands.add_parser("client", help="a terminal client")
    client.add_argument("--url", default="tcp://127.0.0.1:9000",
                        help="tcp://host:port or ws://host:port/push")
    client.add_argument("--name", required=True)
    client.add_argument("--token", required=True)
    client.add_argument("--room", default="lobby", type=_room_arg)
    args = parser.parse_args(argv)
    if args.command == "client":
        return asyncio.run(run_client(args.url, args.name, args.token, args.room))
    app.run(host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8000")))
    return 0


def _room_arg(text: str) -> str:
    if ROOM.fullmatch(text) is None:
        raise argparse.ArgumentTypeError("a room is 1 to 32 letters, digits, '_' or '-'")
    return text


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
