"""server/wiring.py: a RunConfig applied to an App — options given on the command line change
the app's settings, options left at their defaults keep the app's own, bad TLS files are a
StartupError naming the file."""
from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from cyserve import App, Timeouts, WebSocketLimits
from cyserve.config import RunConfig
from cyserve.errors import StartupError
from cyserve.server import wiring
from cyserve.testing import TestClient


def make_app() -> App:
    app = App(timeouts=Timeouts(keepalive_s=30.0), websocket=WebSocketLimits(max_message_bytes=4096))

    @app.get("/")
    async def index(request):  # type: ignore[no-untyped-def]
        return "hi"

    @app.get("/own")
    async def own(request):  # type: ignore[no-untyped-def]
        from cyserve import Response
        return Response(b"x", headers={"x-team": "app"})
    return app


def test_defaults_keep_the_apps_settings() -> None:
    app = make_app()
    wiring.prepare(app, RunConfig())
    assert app.config.timeouts.keepalive_s == 30.0
    assert app.websocket_limits.max_message_bytes == 4096
    assert app.config.server_header == "cyserve"
    # uvicorn's defaults: proxy headers trusted from 127.0.0.1, the access log on.
    assert [type(m).__name__ for m in app.middlewares] == ["ProxyHeaders"]


def test_given_options_change_them() -> None:
    app = make_app()
    prepared = wiring.prepare(app, RunConfig(
        timeout_keep_alive=7, timeout_head=3, timeout_graceful_shutdown=2, max_body_size=1000,
        server_header=False, backlog=64, ws_max_size=2048, ws_max_queue=4, ws_ping_interval=0,
        ws_ping_timeout=5, ws_per_message_deflate=False))
    timeouts, limits = app.config.timeouts, app.config.limits
    assert (timeouts.keepalive_s, timeouts.head_s, timeouts.shutdown_s) == (7.0, 3.0, 2.0)
    assert limits.max_body_bytes == 1000
    assert app.config.server_header is None and app.config.backlog == 64
    ws = app.websocket_limits
    assert (ws.max_message_bytes, ws.max_frame_bytes, ws.max_receive_queue) == (2048, 2048, 4)
    assert ws.ping_interval_s is None and ws.ping_timeout_s == 5 and ws.compression is False
    assert prepared.ssl is None


def test_header_option_adds_fields_the_response_lacks() -> None:
    app = make_app()
    wiring.prepare(app, RunConfig(headers=(("X-Team", "ops"), ("X-Region", "eu"))))
    with TestClient(app) as client:
        plain = client.get("/")
        own = client.get("/own")
    assert plain.headers.get("x-team") == "ops" and plain.headers.get("x-region") == "eu"
    assert own.headers.getlist("x-team") == ["app"]  # the app's own value is kept, not doubled
    assert own.headers.get("x-region") == "eu"


def test_bad_ws_option_is_a_startup_error() -> None:
    with pytest.raises(StartupError, match="WebSocket options"):
        wiring.prepare(make_app(), RunConfig(ws_max_size=0))


def test_tls_from_ssl_options(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(certfile)
    cert.private_key_pem.write_to_path(keyfile)
    prepared = wiring.prepare(make_app(), RunConfig(ssl_certfile=str(certfile), ssl_keyfile=str(keyfile)))
    assert isinstance(prepared.ssl, ssl.SSLContext)
    with pytest.raises(StartupError, match="missing.pem: No such file"):
        wiring.prepare(make_app(), RunConfig(ssl_certfile=str(tmp_path / "missing.pem")))
    with pytest.raises(StartupError, match="TLS: "):
        wiring.prepare(make_app(), RunConfig(ssl_certfile=str(keyfile), ssl_keyfile=str(certfile)))
    with pytest.raises(StartupError, match="needs --ssl-certfile"):
        wiring.prepare(make_app(), RunConfig(ssl_keyfile=str(keyfile)))


def test_bad_option_values_are_startup_errors() -> None:
    with pytest.raises(StartupError, match="--forwarded-allow-ips"):
        wiring.prepare(make_app(), RunConfig(forwarded_allow_ips="10.0.0.300"))
    with pytest.raises(StartupError, match="--health-path"):
        wiring.prepare(make_app(), RunConfig(health_path="healthz"))
    with pytest.raises(StartupError, match="--proxy-protocol cannot be combined"):
        wiring.prepare(make_app(), RunConfig(proxy_protocol=True, ssl_certfile="cert.pem"))
    with pytest.raises(StartupError, match="--header"):
        wiring.prepare(make_app(), RunConfig(headers=(("bad name", "x"),)))


def test_served_with_every_concern(run, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    """prepare + serve + attach: health, metrics, the access log and proxy headers all see the
    running server, in the order the docstring gives."""
    import asyncio
    import logging

    from cyserve import Client
    from cyserve.server import serve

    app = make_app()

    @app.get("/who")
    async def who(request):  # type: ignore[no-untyped-def]
        return {"client": request.client[0], "scheme": request.url.scheme}

    prepared = wiring.prepare(app, RunConfig(health_path="/healthz", metrics="/metrics",
                                             headers=(("X-Team", "ops"),)))
    assert [type(m).__name__ for m in app.middlewares] == ["ProxyHeaders", "DefaultHeaders",
                                                           "Health", "Metrics"]

    async def main() -> None:
        server = await serve(app, "127.0.0.1", 0, configure=prepared.configure)
        prepared.attach(server)
        base = f"http://127.0.0.1:{server.port}"
        try:
            async with Client(base_url=base) as client:
                ready = await client.get("/healthz/ready")
                assert ready.status == 200 and ready.headers.get("x-team") == "ops"
                who = await client.get("/who", headers={"x-forwarded-for": "203.0.113.9",
                                                        "x-forwarded-proto": "https"})
                assert await who.json() == {"client": "203.0.113.9", "scheme": "https"}
                scrape = await (await client.get("/metrics")).text()
                assert 'cyserve_requests_total{method="GET",status_class="2xx"}' in scrape
        finally:
            await server.shutdown()
        await asyncio.sleep(0)

    with caplog.at_level(logging.INFO, logger="cyserve.access"):
        run(main)
    lines = [r.getMessage() for r in caplog.records if r.name == "cyserve.access"]
    assert any(line.startswith("203.0.113.9") and '"GET /who HTTP/1.1" 200' in line for line in lines), lines
