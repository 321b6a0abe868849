"""TLS for the server: a context with modern defaults (``tls_context``)."""
from __future__ import annotations

import ssl as ssl_module

__all__ = ["tls_context"]


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
