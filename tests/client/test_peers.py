"""Against servers nobody here wrote (aiohttp's, nginx), over TLS (a trustme CA), and through
an HTTP proxy (absolute-form and CONNECT)."""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from cyserve import App, Response
from cyserve.client import Client, ClientTimeouts, ConnectError
from cyserve.errors import ClientError
from tests.client.peers import proxy_server, serving_tls
from tests.support import serving

PAYLOAD = b"the same streaming API on both sides " * 4000


# ---------------------------------------------------------------------- aiohttp's server

@contextlib.asynccontextmanager
async def aiohttp_server():
    web = pytest.importorskip("aiohttp.web")
    transports: set[int] = set()

    async def small(request):
        transports.add(id(request.transport))
        return web.Response(text="hi from aiohttp")

    async def chunked(request):
        transports.add(id(request.transport))
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(PAYLOAD), 7000):
            await resp.write(PAYLOAD[i:i + 7000])
        await resp.write_eof()
        return resp

    async def compressed(request):
        transports.add(id(request.transport))
        resp = web.Response(body=PAYLOAD)
        resp.enable_compression()
        return resp

    async def upload(request):
        transports.add(id(request.transport))
        body = await request.read()
        return web.Response(text=f"{len(body)} {request.headers.get('Transfer-Encoding', '-')}")

    app = web.Application()
    app.router.add_get("/small", small)
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/gzip", compressed)
    app.router.add_post("/upload", upload)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield port, transports
    finally:
        await runner.cleanup()


def test_against_aiohttp_server_keep_alive_chunked_gzip_and_upload(run):
    async def body():
        for i in range(0, len(PAYLOAD), 10000):
            yield PAYLOAD[i:i + 10000]

    async def main():
        async with aiohttp_server() as (port, transports):
            async with Client(base_url=f"http://127.0.0.1:{port}") as client:
                for _ in range(5):
                    assert await (await client.get("/small")).text() == "hi from aiohttp"
                resp = await client.get("/chunked")
                assert resp.headers["transfer-encoding"] == "chunked" and resp.content == PAYLOAD
                resp = await client.get("/gzip")
                assert resp.headers["content-encoding"] in ("gzip", "deflate", "br")
                assert resp.content == PAYLOAD
                resp = await client.post("/upload", content=body())
                assert await resp.text() == f"{len(PAYLOAD)} chunked"
                assert len(transports) == 1   # every request on one kept-alive connection
    run(main)


# ---------------------------------------------------------------------- nginx

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def nginx_server(tmp_path):
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if binary is None:
        pytest.skip("nginx is not installed (.ci/run installs it with apt)")
    port = _free_port()
    root = tmp_path / "www"
    (root / "dav").mkdir(parents=True)
    (root / "big.txt").write_bytes(PAYLOAD)
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""
daemon off;
master_process off;
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log warn;
events {{ worker_connections 64; }}
http {{
    log_format conn '$connection $request';
    access_log {tmp_path}/access.log conn;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    keepalive_requests 1000;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        gzip on;
        gzip_types *;
        gzip_min_length 1;
        location /dav/ {{ dav_methods PUT DELETE; client_max_body_size 10m; }}
    }}
}}
""")
    proc = subprocess.Popen([binary, "-c", str(conf), "-p", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not start: {proc.stderr.read()!r}")
                time.sleep(0.05)
        yield port, tmp_path / "access.log"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        proc.stderr.close()


def test_against_nginx_keep_alive_chunked_upload_and_gzip(run, tmp_path):
    async def chunks():
        for i in range(0, len(PAYLOAD), 9000):
            yield PAYLOAD[i:i + 9000]

    with nginx_server(tmp_path) as (port, access_log):
        async def main():
            async with Client(base_url=f"http://127.0.0.1:{port}") as client:
                resp = await client.get("/big.txt")
                # nginx compresses on the fly: no length known, so the body comes chunked
                assert resp.headers["content-encoding"] == "gzip"
                assert resp.headers["transfer-encoding"] == "chunked"
                assert resp.content == PAYLOAD
                resp = await client.get("/big.txt", headers={"Accept-Encoding": "identity"})
                assert resp.headers["content-length"] == str(len(PAYLOAD)) and resp.content == PAYLOAD
                resp = await client.put("/dav/up.bin", content=chunks())   # chunked upload
                assert resp.status in (201, 204)
                resp = await client.get("/dav/up.bin", headers={"Accept-Encoding": "identity"})
                assert resp.content == PAYLOAD
                assert (await client.head("/big.txt")).content == b""
                assert (await client.get("/missing")).status == 404
        run(main)
        deadline = time.monotonic() + 3   # nginx logs a request after sending its response
        while len(lines := access_log.read_text().splitlines()) < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        # "$connection $request": six requests, one connection number (keep-alive)
        assert len(lines) == 6 and len({line.split()[0] for line in lines}) == 1


# ---------------------------------------------------------------------- TLS (trustme)

@pytest.fixture
def tls(tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(server_ctx)
    client_cert = ca.issue_cert("client@example.test")
    cert_path = tmp_path / "client.pem"
    client_cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    localhost_only = ca.issue_cert("localhost")
    mismatch_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    localhost_only.configure_cert(mismatch_ctx)
    return {"ca": ca, "ca_path": str(ca_path), "server_ctx": server_ctx,
            "client_cert": str(cert_path), "mismatch_ctx": mismatch_ctx}


def tls_app() -> App:
    app = App()

    @app.get("/")
    async def index(request):
        return "secure hello"

    return app


def test_https_verifies_with_the_given_ca_and_fails_without_it(run, tls, caplog):
    async def main():
        async with serving_tls(tls_app(), tls["server_ctx"]) as server:
            url = f"https://127.0.0.1:{server.port}/"
            async with Client(verify=tls["ca_path"]) as client:
                for _ in range(3):
                    assert await (await client.get(url)).text() == "secure hello"
                assert len(server.state.connections) == 1
            ctx = ssl.create_default_context()
            tls["ca"].configure_trust(ctx)
            async with Client(verify=ctx) as client:
                assert (await client.get(url)).status == 200
            async with Client() as client:   # the system store does not know this CA
                with pytest.raises(ConnectError, match="verification failed"):
                    await client.get(url)
            async with Client(verify=False) as client:
                assert (await client.get(url)).status == 200
            # plain http to a TLS port is not silently "upgraded"
            async with Client(timeout=ClientTimeouts(read_s=2)) as client:
                with pytest.raises(ClientError):
                    await client.get(f"http://127.0.0.1:{server.port}/")
    with caplog.at_level(logging.WARNING, logger="cyserve.client"):
        run(main)
    assert any("verification is DISABLED" in r.getMessage() for r in caplog.records)


def test_https_checks_the_host_name(run, tls):
    async def main():
        async with serving_tls(tls_app(), tls["mismatch_ctx"]) as server:
            async with Client(verify=tls["ca_path"]) as client:
                with pytest.raises(ConnectError, match="verification failed"):
                    await client.get(f"https://127.0.0.1:{server.port}/")
                resp = await client.get(f"https://localhost:{server.port}/")   # SNI + name match
                assert resp.status == 200
    run(main)


def test_client_certificate(run, tls):
    server_ctx = tls["server_ctx"]
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    tls["ca"].configure_trust(server_ctx)

    async def main():
        async with serving_tls(tls_app(), server_ctx) as server:
            url = f"https://127.0.0.1:{server.port}/"
            async with Client(verify=tls["ca_path"], cert=tls["client_cert"]) as client:
                assert (await client.get(url)).status == 200
            async with Client(verify=tls["ca_path"], timeout=2) as client:
                with pytest.raises(ClientError):
                    await client.get(url)
    run(main)


# ---------------------------------------------------------------------- proxies

def test_http_through_a_proxy_uses_absolute_form(run):
    app = App()

    @app.get("/hello")
    async def hello(request):
        return Response(f"hello via {request.headers.get('host')}".encode())

    async def main():
        async with serving(app) as server, proxy_server() as proxy:
            async with Client(proxy=f"http://user:secret@127.0.0.1:{proxy.port}") as client:
                url = f"http://127.0.0.1:{server.port}/hello"
                for _ in range(2):
                    resp = await client.get(url)
                    assert await resp.text() == f"hello via 127.0.0.1:{server.port}"
                assert proxy.forwards == [url, url]
                assert proxy.auth[0].startswith("Basic ")
    run(main)


def test_https_through_a_connect_tunnel(run, tls):
    async def main():
        async with serving_tls(tls_app(), tls["server_ctx"]) as server, proxy_server() as proxy:
            async with Client(proxy=f"http://127.0.0.1:{proxy.port}", verify=tls["ca_path"]) as client:
                for _ in range(3):
                    assert await (await client.get(f"https://127.0.0.1:{server.port}/")).text() == "secure hello"
                assert proxy.connects == [f"127.0.0.1:{server.port}"]   # one tunnel, reused
    run(main)
