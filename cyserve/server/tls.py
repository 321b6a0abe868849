"""TLS for the server: a context with modern defaults (``tls_context``), and one whose
certificate the running process can replace (``ReloadableTLS``, uvicorn's ``--ssl-*`` options).

Reloading works because OpenSSL copies the certificate and key of an ``SSL_CTX`` into each
connection when the connection is made (``SSL_new``): loading a new chain into the same context
changes what later handshakes present and leaves every open connection as it was, with nothing
to re-listen or re-wrap.  A new chain is read once, checked in a scratch context, and only then
loaded into the live one: a failed ``load_cert_chain`` on the live context could leave it with
the new certificate and no key (OpenSSL drops a key that does not match a newly set
certificate), and every handshake after it would fail.
"""
from __future__ import annotations

import logging
import os
import re
import ssl as ssl_module
import tempfile
from typing import Callable, Union

from cyserve.errors import StartupError

__all__ = ["ReloadableTLS", "tls_context"]

_log = logging.getLogger("cyserve.error")

Password = Union[str, bytes, Callable[[], Union[str, bytes]], None]

_SSL_C_SUFFIX = re.compile(r"\s*\(_ssl\.c:\d+\)$")


def tls_context(certfile: str, keyfile: str | None = None, *, password: str | None = None,
                cafile: str | None = None, require_client_cert: bool = False) -> ssl_module.SSLContext:
    """A server TLS context with modern defaults: TLS 1.2+, the certificate chain from
    ``certfile``/``keyfile``, ALPN ``http/1.1``; ``cafile`` + ``require_client_cert`` for mTLS."""
    context = ssl_module.create_default_context(ssl_module.Purpose.CLIENT_AUTH, cafile=cafile)
    context.minimum_version = ssl_module.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile, password)
    context.set_alpn_protocols(["http/1.1"])
    if require_client_cert:
        context.verify_mode = ssl_module.CERT_REQUIRED
    return context


class _ChainError(Exception):
    """A certificate chain that can't be loaded; the message is one line naming the file."""


class ReloadableTLS:
    """A server ``SSLContext`` (``.context``, for ``serve(ssl=...)``) whose certificate chain
    ``reload()`` replaces in place.

    The arguments are uvicorn's ``--ssl-*`` options: ``certfile`` (PEM, the certificate then its
    chain; it may hold the key too), ``keyfile``, ``password`` (for an encrypted key: ``str``,
    ``bytes`` or a callable returning one, asked again at each reload), ``ca_certs`` (to verify
    client certificates), ``cert_reqs`` (``ssl.CERT_NONE``/``CERT_OPTIONAL``/``CERT_REQUIRED``
    or their ints), ``ciphers`` (an OpenSSL cipher string; None keeps OpenSSL's default) and
    ``version`` (the ``ssl.PROTOCOL_*`` the context is made with; uvicorn's default,
    ``PROTOCOL_TLS_SERVER``).  ALPN offers ``http/1.1``.

    A file that can't be read or loaded raises ``StartupError`` naming the file and OpenSSL's
    reason.  OpenSSL never prompts for a key's passphrase on the terminal: an encrypted key
    without ``password`` is an error.
    """

    __slots__ = ("certfile", "keyfile", "password", "ca_certs", "context", "reloads")

    def __init__(self, certfile: str | os.PathLike[str], keyfile: str | os.PathLike[str] | None = None,
                 password: Password = None, ca_certs: str | os.PathLike[str] | None = None,
                 cert_reqs: int = ssl_module.CERT_NONE, ciphers: str | None = None,
                 version: int = ssl_module.PROTOCOL_TLS_SERVER) -> None:
        self.certfile = os.fspath(certfile)
        self.keyfile = os.fspath(keyfile) if keyfile is not None else None
        self.password = password
        self.ca_certs = os.fspath(ca_certs) if ca_certs is not None else None
        #: Successful reloads so far.
        self.reloads = 0
        try:
            context = ssl_module.SSLContext(version)
        except ValueError as exc:
            raise StartupError(f"TLS: version {version}: {exc}") from None
        try:
            context.verify_mode = ssl_module.VerifyMode(cert_reqs)
        except ValueError as exc:
            raise StartupError(f"TLS: cert_reqs {cert_reqs}: {exc} (0: none, 1: optional, "
                               "2: required)") from None
        try:
            self._load(context, self._read())
        except _ChainError as exc:
            raise StartupError(f"TLS: {exc}") from None
        if self.ca_certs is not None:
            try:
                context.load_verify_locations(self.ca_certs)
            except ssl_module.SSLError as exc:  # before OSError: it is one
                raise StartupError(f"TLS: CA certificates {self.ca_certs}: {_reason(exc)}") from None
            except OSError as exc:
                raise StartupError(f"TLS: CA certificates {self.ca_certs}: {exc.strerror or exc}") from None
        if ciphers:
            try:
                context.set_ciphers(ciphers)
            except ssl_module.SSLError as exc:
                raise StartupError(f"TLS: ciphers {ciphers!r}: {_reason(exc)}") from None
        context.set_alpn_protocols(["http/1.1"])
        self.context: ssl_module.SSLContext = context

    def reload(self) -> bool:
        """Load the certificate chain from the same files into the same context: handshakes
        from now on present it, open connections keep theirs.  On failure the old chain stays,
        one error line is logged, and False is returned."""
        try:
            pems = self._read()
            self._load(ssl_module.SSLContext(ssl_module.PROTOCOL_TLS_SERVER), pems)  # the check
            self._load(self.context, pems)
        except _ChainError as exc:
            _log.error("TLS reload failed, keeping the current certificate: %s", exc)
            return False
        self.reloads += 1
        _log.info("TLS certificate reloaded from %s", self.certfile)
        return True

    # ---------------------------------------------------------------- loading
    def _read(self) -> tuple[bytes, bytes | None]:
        """The two files' bytes, read once (a reload checks and loads the same bytes)."""
        return (_read_file(self.certfile, "certificate file"),
                None if self.keyfile is None else _read_file(self.keyfile, "private key file"))

    def _load(self, context: ssl_module.SSLContext, pems: tuple[bytes, bytes | None]) -> None:
        cert_pem, key_pem = pems
        # Which file is at fault: OpenSSL's "PEM lib" alone names neither.  A certificate is
        # looked for first, in a scratch store (the live context's is left alone).
        try:
            ssl_module.SSLContext(ssl_module.PROTOCOL_TLS_SERVER).load_verify_locations(
                cadata=cert_pem.decode("ascii"))
        except (UnicodeDecodeError, ssl_module.SSLError):
            raise _ChainError(f"certificate file {self.certfile}: no PEM certificate in it") from None
        key_name = self.keyfile or self.certfile
        key_text = key_pem if key_pem is not None else cert_pem
        if b"PRIVATE KEY-----" not in key_text:
            raise _ChainError(f"private key file {key_name}: no PEM private key in it")
        encrypted = b"ENCRYPTED" in key_text
        password = self.password
        if password is None:
            # Never let OpenSSL prompt on the terminal: an empty passphrase fails instead.
            password = b""
        # load_cert_chain takes paths: the bytes read once go through a private directory.
        with tempfile.TemporaryDirectory(prefix="cyserve-tls-") as folder:
            cert_path = os.path.join(folder, "cert.pem")
            _write_private(cert_path, cert_pem)
            key_path = None
            if key_pem is not None:
                key_path = os.path.join(folder, "key.pem")
                _write_private(key_path, key_pem)
            try:
                context.load_cert_chain(cert_path, key_path, password)
            except ssl_module.SSLError as exc:
                if encrypted and exc.reason is None:  # "PEM lib": the key did not decrypt
                    why = ("encrypted and no password was given" if self.password is None
                           else "the password does not decrypt it")
                    raise _ChainError(f"private key file {key_name}: {why}") from None
                raise _ChainError(f"private key file {key_name} with certificate file "
                                  f"{self.certfile}: {_reason(exc)}") from None
            except (OSError, ValueError, TypeError) as exc:
                raise _ChainError(f"private key file {key_name}: {exc}") from None


def _read_file(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise _ChainError(f"{what} {path}: {exc.strerror or exc}") from None


def _write_private(path: str, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def _reason(exc: ssl_module.SSLError) -> str:
    """OpenSSL's reason without CPython's source location."""
    if isinstance(exc.strerror, str):
        text = exc.strerror
    elif len(exc.args) == 1 and isinstance(exc.args[0], str):
        text = exc.args[0]  # set_ciphers' "No cipher can be selected."
    else:
        text = str(exc)
    return _SSL_C_SUFFIX.sub("", text)
