"""picows side of bench/ws: ``/`` echoes, ``/room`` joins the room, ``/publish`` broadcasts.

picows is callback-based: a frame arrives in ``on_ws_frame`` and is answered from there, with no
coroutine per message (its documented fast path).  It has no permessage-deflate.

Run: python bench/ws/servers/picows_server.py --port 8000  (the harness starts it for you).
"""
from __future__ import annotations

import argparse
import asyncio
import signal

import uvloop
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

ROOM: set[WSTransport] = set()
MAX_FRAME_BYTES = 16 * 1024 * 1024


def _close_back(transport: WSTransport, frame: WSFrame) -> None:
    transport.send_close(frame.get_close_code(), frame.get_close_message())
    transport.disconnect()


class Echo(WSListener):
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            _close_back(transport, frame)
        elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION):
            transport.send(frame.msg_type, frame.get_payload_as_memoryview(), frame.fin)


class Member(WSListener):
    def on_ws_connected(self, transport: WSTransport) -> None:
        ROOM.add(transport)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        ROOM.discard(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            _close_back(transport, frame)


class Publisher(WSListener):
    """Each binary message goes to every room member, then b"ack" goes back to the publisher."""

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            _close_back(transport, frame)
        elif frame.msg_type == WSMsgType.BINARY:
            message = frame.get_payload_as_bytes()
            for member in ROOM:
                member.send(WSMsgType.BINARY, message)
            transport.send(WSMsgType.BINARY, b"ack")


def route(request: WSUpgradeRequest) -> WSListener | None:
    path = request.path  # bytes
    if path == b"/":
        return Echo()
    if path == b"/room":
        return Member()
    if path == b"/publish":
        return Publisher()
    return None  # picows answers 404


async def main(host: str, port: int) -> None:
    server = await ws_create_server(route, host, port, max_frame_size=MAX_FRAME_BYTES,
                                    websocket_handshake_timeout=10, backlog=4096)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"picows listening on ws://{host}:{port}", flush=True)
    await stop.wait()
    server.close()
    for member in list(ROOM):
        member.send_close(WSCloseCode.GOING_AWAY)
        member.disconnect()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(main(args.host, args.port))
