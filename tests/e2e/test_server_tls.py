"""HTTPS: the server over TLS on uvloop and stdlib asyncio (asyncio's TLS transport reads into
slices of the receive buffer), with a certificate from a throwaway trustme CA."""
from __future__ import annotations

import ssl

import pytest
import trustme

from cyserve import App, Client, ConnectError, serve, tls_context


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def make_app() -> App:
    app = App()

    @app.post("/echo")
    async def echo(request):
        return {"size": len(await request.body()), "scheme": request.url.scheme}

    return app


def test_https_round_trip_with_a_large_body(run, ca, tmp_path):
    cert = ca.issue_cert("127.0.0.1", "localhost")
    chain, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    cert.private_key_pem.write_to_path(str(key))
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    async def main():
        server = await serve(make_app(), "127.0.0.1", 0, ssl=tls_context(str(chain), str(key)))
        try:
            body = b"z" * (3 * 1024 * 1024)
            async with Client(verify=client_context) as client:
                reply = await client.post(f"https://127.0.0.1:{server.port}/echo", content=body)
                assert reply.status == 200
                assert await reply.json() == {"size": len(body), "scheme": "https"}
                again = await client.post(f"https://127.0.0.1:{server.port}/echo", content=b"x")
                assert (await again.json())["size"] == 1
            async with Client() as untrusting:  # system trust only: the test CA is unknown
                with pytest.raises(ConnectError):
                    await untrusting.post(f"https://127.0.0.1:{server.port}/echo", content=b"x")
        finally:
            await server.shutdown(timeout_s=2)
    run(main)


def test_serve_refuses_a_non_context_ssl_argument(run):
    async def main():
        with pytest.raises(TypeError):
            await serve_with("not a context")

    async def serve_with(value):
        await serve(make_app(), "127.0.0.1", 0, ssl=value)
    run(main)
