"""A Host (or absolute-form authority) whose port is no TCP port: the core's parser lets any
number of digits through (RFC 3986 §3.2.3), and ``request.url`` answers 400 for it (RFC 9112
§3.2) rather than a 500 from int() or a URL naming a port that does not exist."""
from __future__ import annotations

import pytest

from cyserve import App
from tests.support import RawClient, serving


def make_app() -> App:
    app = App()

    @app.get("/url")
    async def url(request):
        return str(request.url)

    @app.get("/plain")
    async def plain(request):
        return "no url read"

    return app


async def get(port: int, target: str, host: str):
    client = await RawClient.open(port)
    try:
        head = f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode("latin-1")
        await client.send(head)
        return await client.response()
    finally:
        await client.close()


@pytest.mark.parametrize("target, host", [
    ("/url", "x:" + "9" * 5000),
    ("/url", "x:65536"),
    ("/url", "x:" + "0" * 10 + "99999"),
    ("http://x:" + "1" * 5000 + "/url", "x"),
], ids=["five-thousand-digit-port", "port-above-65535", "zero-padded-port-above-65535",
        "absolute-form-five-thousand-digit-port"])
def test_a_port_that_is_no_tcp_port_answers_400_when_the_url_is_read(run, target, host):
    async def main():
        async with serving(make_app()) as server:
            reply = await get(server.port, target, host)
            assert reply.status == 400
            assert b"port" in reply.body
    run(main)


@pytest.mark.parametrize("host, url", [
    ("x:65535", "http://x:65535/url"),
    ("x:00080", "http://x/url"),
    ("x:0", "http://x:0/url"),
    ("x:", "http://x/url"),
    ("[::1]:8080", "http://[::1]:8080/url"),
], ids=["highest-port", "zero-padded-default-port", "port-zero", "empty-port-is-default",
        "ipv6-literal-with-port"])
def test_a_valid_port_is_kept_in_the_url(run, host, url):
    async def main():
        async with serving(make_app()) as server:
            reply = await get(server.port, "/url", host)
            assert reply.status == 200 and reply.body == url.encode()
    run(main)


def test_a_handler_that_does_not_read_the_url_is_not_refused(run):
    async def main():
        async with serving(make_app()) as server:
            reply = await get(server.port, "/plain", "x:" + "9" * 5000)
            assert reply.status == 200 and reply.body == b"no url read"
    run(main)
