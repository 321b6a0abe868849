"""cyserve's WebSocket server with clients nobody here wrote: the `websockets` and `aiohttp`
clients, with and without permessage-deflate, over plain TCP and TLS (a throwaway trustme CA), on
uvloop and stdlib asyncio.  Each exchange covers text, binary, a message of several frames' worth,
ping/pong and the close handshake with a code and reason in both directions."""
from __future__ import annotations

import ssl
from typing import Any

import aiohttp
import pytest
import trustme
from websockets.asyncio.client import connect

from cyserve import App, WebSocket, WebSocketLimits, serve
from cyserve.server import tls_context

BIG = bytes(range(256)) * 3000  # 768,000 bytes: past one read, compressible


def make_app(compression: bool, closes: list[tuple[int, str]]) -> App:
    app = App(websocket=WebSocketLimits(compression=compression))

    @app.websocket("/echo")
    async def echo(ws: WebSocket):
        await ws.accept()
        try:
            async for message in ws:
                if message == "bye":
                    await ws.close(4000, "server says bye")
                    return
                await ws.send(message)
        finally:
            closes.append((ws.close_code, ws.close_reason))

    return app


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    folder = tmp_path_factory.mktemp("tls")
    chain, key = folder / "chain.pem", folder / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    cert.private_key_pem.write_to_path(str(key))
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return tls_context(str(chain), str(key)), client_context


async def start(compression: bool, server_tls: ssl.SSLContext | None, closes: list) -> Any:
    return await serve(make_app(compression, closes), "127.0.0.1", 0, ssl=server_tls)


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
@pytest.mark.parametrize("compression", [False, True], ids=["plain", "deflate"])
def test_websockets_client(run, tls, compression, secure):
    server_tls, client_tls = tls if secure else (None, None)

    async def main():
        closes: list = []
        server = await start(compression, server_tls, closes)
        url = f"{'wss' if secure else 'ws'}://127.0.0.1:{server.port}/echo"
        try:
            async with connect(url, ssl=client_tls, max_size=2 ** 21,
                               compression="deflate" if compression else None) as ws:
                negotiated = ws.response.headers.get("Sec-WebSocket-Extensions")
                assert (negotiated is not None and "permessage-deflate" in negotiated) == compression
                await ws.send("héllo")
                assert await ws.recv() == "héllo"
                await ws.send(BIG)
                assert await ws.recv() == BIG
                await (await ws.ping(b"p"))
                await ws.close(4001, "client says bye")
            assert ws.close_code == 4001  # the code echoed (RFC 6455 §5.5.1); the reason stays ours

            async with connect(url, ssl=client_tls) as ws:
                await ws.send("bye")
                with pytest.raises(Exception):
                    await ws.recv()
            assert (ws.close_code, ws.close_reason) == (4000, "server says bye")
        finally:
            await server.shutdown(timeout_s=2.0)
        assert (4001, "client says bye") in closes
    run(main)


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
@pytest.mark.parametrize("compression", [False, True], ids=["plain", "deflate"])
def test_aiohttp_client(run, tls, compression, secure):
    server_tls, client_tls = tls if secure else (None, None)

    async def main():
        closes: list = []
        server = await start(compression, server_tls, closes)
        url = f"{'wss' if secure else 'ws'}://127.0.0.1:{server.port}/echo"
        tls_kw = {"ssl": client_tls} if secure else {}
        try:
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(url, **tls_kw, compress=15 if compression else 0,
                                              max_msg_size=2 ** 21, autoping=True) as ws:
                    assert (ws.compress != 0) == compression
                    await ws.send_str("héllo")
                    assert (await ws.receive()).data == "héllo"
                    await ws.send_bytes(BIG)
                    assert (await ws.receive()).data == BIG
                    await ws.close(code=4002, message=b"aiohttp says bye")
                assert ws.close_code == 4002

                async with session.ws_connect(url, **tls_kw) as ws:
                    await ws.send_str("bye")
                    message = await ws.receive()
                    assert message.type == aiohttp.WSMsgType.CLOSE
                    assert (message.data, message.extra) == (4000, "server says bye")
        finally:
            await server.shutdown(timeout_s=2.0)
        assert (4002, "aiohttp says bye") in closes
    run(main)

