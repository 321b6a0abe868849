"""``ReloadableTLS``: uvicorn's ``--ssl-*`` options, a certificate replaced in the running
server without touching open connections, a failed reload that keeps the old one, and a
``StartupError`` naming the file for each bad input.  Real TLS handshakes on 127.0.0.1 with
certificates from a throwaway trustme CA, on uvloop and stdlib asyncio."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import pathlib
import ssl
from typing import AsyncIterator

import h11
import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from cyserve import App
from cyserve.errors import StartupError
from cyserve.server import serve
from cyserve.server.tls import ReloadableTLS
from tests.support import RawClient


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


class Files:
    """The certificate and key files the server is configured with (one leaf per write)."""

    def __init__(self, ca: trustme.CA, folder: pathlib.Path) -> None:
        self.ca = ca
        self.cert = folder / "server.crt"
        self.key = folder / "server.key"

    def write(self) -> bytes:
        """Issue a new leaf for 127.0.0.1, write it and its key; its DER form."""
        leaf = self.ca.issue_cert("127.0.0.1")
        leaf.cert_chain_pems[0].write_to_path(str(self.cert))
        leaf.private_key_pem.write_to_path(str(self.key))
        return ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode("ascii"))


def make_app() -> App:
    app = App()

    @app.get("/")
    async def index(request):
        return request.url.scheme

    return app


@contextlib.asynccontextmanager
async def tls_client(ca: trustme.CA, port: int,
                     cert: trustme.LeafCert | None = None) -> AsyncIterator[tuple[RawClient, bytes]]:
    """A TLS connection (the CA trusted, ``cert`` presented when given) and the DER of the
    certificate the server presented in its handshake."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if cert is not None:
        cert.configure_cert(context)
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=context), 5)
    client = RawClient(reader, writer)
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        assert ssl_object.selected_alpn_protocol() in (None, "http/1.1")
        yield client, ssl_object.getpeercert(binary_form=True)
    finally:
        await client.close()


def test_reload_serves_the_new_certificate_to_new_handshakes_and_keeps_open_connections(
        run, ca, tmp_path):
    files = Files(ca, tmp_path)
    der_a = files.write()
    tls = ReloadableTLS(files.cert, files.key)

    async def main():
        server = await serve(make_app(), "127.0.0.1", 0, ssl=tls.context)
        try:
            async with tls_client(ca, server.port) as (before, seen_before):
                assert seen_before == der_a
                assert (await before.request("GET", "/")).body == b"https"
                der_b = files.write()
                assert tls.reload() and tls.reloads == 1
                async with tls_client(ca, server.port) as (after, seen_after):
                    assert seen_after == der_b != der_a
                    assert (await after.request("GET", "/")).body == b"https"
                # The connection made before the reload keeps its session and keeps serving.
                for _ in range(3):
                    reply = await before.request("GET", "/")
                    assert (reply.status, reply.body) == (200, b"https")
                assert before.writer.get_extra_info("ssl_object").getpeercert(True) == der_a
        finally:
            await server.shutdown(timeout_s=2)
    run(main)


def test_a_failed_reload_keeps_the_current_certificate_and_logs_one_line(run, ca, tmp_path,
                                                                          caplog):
    files = Files(ca, tmp_path)
    der_a = files.write()
    tls = ReloadableTLS(files.cert, files.key)
    other_key = ca.issue_cert("127.0.0.1").private_key_pem.bytes()

    async def main():
        server = await serve(make_app(), "127.0.0.1", 0, ssl=tls.context)
        try:
            for broken in (b"not a key\n", other_key):   # no key; a key of another certificate
                files.write()
                files.key.write_bytes(broken)
                caplog.clear()
                with caplog.at_level(logging.ERROR, logger="cyserve.error"):
                    assert tls.reload() is False
                lines = [r.getMessage() for r in caplog.records if r.name == "cyserve.error"]
                assert len(lines) == 1 and str(files.key) in lines[0], lines
                async with tls_client(ca, server.port) as (client, seen):
                    assert seen == der_a                  # still the last good chain
                    assert (await client.request("GET", "/")).status == 200
            files.cert.unlink()
            assert tls.reload() is False
            assert tls.reloads == 0
        finally:
            await server.shutdown(timeout_s=2)
    run(main)


def test_client_certificates_are_required_with_ssl_cert_reqs_and_ca_certs(run, ca, tmp_path):
    files = Files(ca, tmp_path)
    files.write()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    tls = ReloadableTLS(files.cert, files.key, ca_certs=ca_file, cert_reqs=ssl.CERT_REQUIRED,
                        ciphers="ECDHE+AESGCM")
    client_cert = ca.issue_cert("client@example.test")

    async def main():
        server = await serve(make_app(), "127.0.0.1", 0, ssl=tls.context)
        try:
            async with tls_client(ca, server.port, client_cert) as (client, _):
                assert (await client.request("GET", "/")).status == 200
            # Without a certificate: refused in the handshake, or (TLS 1.3, where the client
            # finishes first) by the alert and close its first read meets.
            with pytest.raises((ssl.SSLError, ConnectionError, h11.RemoteProtocolError)):
                async with tls_client(ca, server.port) as (client, _):
                    await client.request("GET", "/")
        finally:
            await server.shutdown(timeout_s=2)
    run(main)


# ---------------------------------------------------------------- startup errors
def write_encrypted_key(ca: trustme.CA, folder: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    leaf = ca.issue_cert("127.0.0.1")
    cert, key = folder / "enc.crt", folder / "enc.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    private = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.BestAvailableEncryption(b"sesame")))
    return cert, key


def test_an_encrypted_key_loads_with_its_password_and_never_prompts(ca, tmp_path):
    cert, key = write_encrypted_key(ca, tmp_path)
    assert ReloadableTLS(cert, key, password="sesame").reload()
    assert ReloadableTLS(cert, key, password=lambda: b"sesame").reload()
    with pytest.raises(StartupError, match=f"{key}: encrypted and no password was given"):
        ReloadableTLS(cert, key)
    with pytest.raises(StartupError, match=f"{key}: the password does not decrypt it"):
        ReloadableTLS(cert, key, password="wrong")


def test_bad_files_are_a_startup_error_naming_the_file_and_the_reason(ca, tmp_path):
    files = Files(ca, tmp_path)
    files.write()
    junk = tmp_path / "junk.pem"
    junk.write_text("hello\n")
    other_key = tmp_path / "other.key"
    ca.issue_cert("127.0.0.1").private_key_pem.write_to_path(str(other_key))
    cases = [
        ((tmp_path / "missing.crt", files.key), {}, "certificate file .*missing.crt: No such file"),
        ((files.cert, tmp_path / "missing.key"), {}, "private key file .*missing.key: No such file"),
        ((junk, files.key), {}, "certificate file .*junk.pem: no PEM certificate"),
        ((files.cert, junk), {}, "private key file .*junk.pem: no PEM private key"),
        ((files.cert, None), {}, "private key file .*server.crt: no PEM private key"),
        ((files.cert, other_key), {}, "other.key with certificate file .*server.crt: .*KEY_VALUES_MISMATCH"),
        ((files.cert, files.key), {"ca_certs": junk}, "CA certificates .*junk.pem: .*NO_CERTIFICATE"),
        ((files.cert, files.key), {"ca_certs": tmp_path / "no-ca.pem"}, "CA certificates .*no-ca.pem: No such file"),
        ((files.cert, files.key), {"ciphers": "NO-SUCH-CIPHER"}, "ciphers 'NO-SUCH-CIPHER': No cipher can be selected"),
        ((files.cert, files.key), {"cert_reqs": 7}, "cert_reqs 7"),
        ((files.cert, files.key), {"version": 99}, "version 99"),
    ]
    for args, options, message in cases:
        with pytest.raises(StartupError, match=message) as caught:
            ReloadableTLS(*args, **options)
        assert "\n" not in str(caught.value) and str(caught.value).startswith("TLS: ")


def test_a_certificate_file_holding_the_key_too_needs_no_keyfile(ca, tmp_path):
    both = tmp_path / "both.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(both))
    tls = ReloadableTLS(both)
    assert tls.context.verify_mode == ssl.CERT_NONE   # uvicorn's default --ssl-cert-reqs 0
    assert tls.reload()
