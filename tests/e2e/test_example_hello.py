"""The README's demo server (examples/hello.py) answers every route it advertises."""
from __future__ import annotations

from tests.support import RawClient, load_example, serving


def test_hello_example_serves_its_routes(run):
    async def main():
        async with serving(load_example("hello").app) as server:
            client = await RawClient.open(server.port)
            assert (await client.request("GET", "/plaintext")).body == b"Hello, World!"
            assert (await client.request("GET", "/json")).body == b'{"message":"Hello, World!"}'
            hello = await client.request("GET", "/hello/ada?lang=en")
            assert hello.body == b'{"hello":"ada","query":{"lang":"en"}}'
            echo = await client.request("POST", "/echo", [("Content-Type", "text/plain")], b"ping")
            assert echo.body == b"ping"
            stream = await client.request("GET", "/stream?n=3")
            assert stream.body == b"chunk 0\nchunk 1\nchunk 2\n"
            assert (await client.request("GET", "/")).status == 200
            await client.close()
    run(main)
