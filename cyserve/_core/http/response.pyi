"""The response writer of a server connection; C face only (``response.pxd``).  Handlers write
through the server role (``cyserve._core.http.server.ServerRole``)."""
