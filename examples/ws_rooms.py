"""Signalling rooms over WebSocket: peers join a room and relay WebRTC offers, answers and ICE
candidates to one peer or to the whole room, with presence on join and leave.

    python examples/ws_rooms.py                                   # serves http://127.0.0.1:8000
    curl http://127.0.0.1:8000/token/alice                        # {"token": "..."}
    websocat "ws://127.0.0.1:8000/rooms/lobby?token=..."          # then send JSON messages

Blazeio's README builds rooms from raw protocol access and multi-waiter events; here the room is
a WebSocket route and the checks happen before the upgrade:

- the token (an HMAC of the name, checked in constant time) and, when ``ALLOWED_ORIGINS`` is
  set, the ``Origin`` are verified before ``accept``: a refused peer gets a plain 401 or 403,
  never a WebSocket;
- the joiner gets ``{"type": "welcome", "id", "peers"}``; the others ``{"type": "join", "id",
  "name"}``, and ``{"type": "leave", "id"}`` when it goes;
- ``{"type": "offer" | "answer" | "candidate", "to": id, "data": ...}`` reaches peer ``id`` with
  ``"from"`` added, or the whole room without ``"to"``; anything else gets an ``error`` message
  and the connection stays;
- messages are bounded (64 KiB), and a room-wide message is encoded once for every member
  (``broadcast``); a member too slow to keep up is skipped, told, and closed.
"""
import asyncio
import hashlib
import hmac
import json
import os
import secrets
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cyserve import App, HTTPError, WebSocket, WebSocketDisconnect, WebSocketLimits  # noqa: E402
from cyserve.websocket import broadcast  # noqa: E402

# A fresh key per process unless given: tokens from an earlier run stop working.
KEY = os.environ.get("ROOMS_KEY", "").encode() or secrets.token_bytes(32)
ALLOWED_ORIGINS = {o for o in os.environ.get("ALLOWED_ORIGINS", "").split(",") if o}
RELAYED = {"offer", "answer", "candidate"}

app = App()
# room name -> {peer id: (name, socket)}
rooms: dict[str, dict[str, tuple[str, WebSocket]]] = {}
closing: set[asyncio.Task] = set()  # closes of slow members, held until done


def token_for(name: str) -> str:
    return name + "." + hmac.new(KEY, name.encode(), hashlib.sha256).hexdigest()


def name_of(token: str) -> str | None:
    name, _, _ = token.rpartition(".")
    if not name or not hmac.compare_digest(token_for(name), token):
        return None
    return name


@app.get("/token/{name}")
async def issue(request, name: str):
    """A demo login: anyone gets a token for any name (a real app checks a password first)."""
    if not name.isalnum() or len(name) > 32:
        raise HTTPError(400, "a name is 1 to 32 letters or digits")
    return {"token": token_for(name)}


async def send_to_room(room: dict[str, tuple[str, WebSocket]], message: dict, skip: str = "") -> None:
    sockets = [ws for peer, (_, ws) in room.items() if peer != skip]
    for slow in broadcast(sockets, json.dumps(message)):
        # It missed this message: close it (it may rejoin), without waiting for its handshake.
        task = asyncio.ensure_future(slow.close(1008, "too slow to keep up with the room"))
        closing.add(task)
        task.add_done_callback(closing.discard)


@app.websocket("/rooms/{room_name}", limits=WebSocketLimits(max_message_bytes=64 * 1024))
async def room_socket(ws: WebSocket, room_name: str):
    if ALLOWED_ORIGINS and ws.headers.get("origin") not in ALLOWED_ORIGINS:
        await ws.reject(403, b"origin not allowed\n")
        return
    name = name_of(ws.query.get("token", ""))
    if name is None:
        await ws.reject(401, b"a valid ?token= is needed (GET /token/<name>)\n")
        return
    await ws.accept()
    room = rooms.setdefault(room_name, {})
    me = secrets.token_urlsafe(8)
    await ws.send_json({"type": "welcome", "id": me,
                        "peers": [{"id": peer, "name": who} for peer, (who, _) in room.items()]})
    room[me] = (name, ws)
    await send_to_room(room, {"type": "join", "id": me, "name": name}, skip=me)
    try:
        async for raw in ws:
            try:
                message = json.loads(raw)
                kind = message["type"]
            except (ValueError, TypeError, KeyError):
                await ws.send_json({"type": "error", "error": "send a JSON object with a type"})
                continue
            if kind not in RELAYED:
                await ws.send_json({"type": "error", "error": f"unknown type {kind!r}"})
                continue
            relayed = {"type": kind, "from": me, "data": message.get("data")}
            target = message.get("to")
            if target is None:
                await send_to_room(room, relayed, skip=me)
            elif target in room:
                try:
                    await room[target][1].send_json(relayed)
                except WebSocketDisconnect:
                    pass  # it is leaving: its own handler announces that
            else:
                await ws.send_json({"type": "error", "error": f"no peer {target!r} in this room"})
    finally:
        room.pop(me, None)
        if room:
            await send_to_room(room, {"type": "leave", "id": me})
        else:
            rooms.pop(room_name, None)


if __name__ == "__main__":
    app.run(host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8000")))
