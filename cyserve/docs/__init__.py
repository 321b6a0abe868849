"""Dev-mode API documentation: the OpenAPI 3.1 document (``openapi``) and the viewer's assets
(``assets/``: a small bundled viewer; Swagger UI 5 from the ``docs`` extra when installed)."""
from cyserve.docs.openapi import build_spec, mount_docs

__all__ = ["build_spec", "mount_docs"]
