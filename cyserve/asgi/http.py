"""One HTTP request and response of an ASGI app over the core's server role (``conn``): what
the messages mean.  The per-request object is ``HTTPExchange`` (``cyserve._core.http.asgi``, in
Cython: it runs twice per request for every request); its bound ``receive`` and ``send`` are what
the app is called with.  It owns the response's state; the core owns the connection's
(keep-alive, framing on the wire, backpressure).  This module holds what is rare: the file of
``http.response.pathsend``.

States of the response (``phase``), one way only::

    IDLE --start--> STARTED --body, more_body false--> DONE        (one conn.respond: one write)
                       |--body, more_body true / pathsend--> STREAMING --last body--> DONE
                       |                                          \\--(trailers)--> TRAILERS --> DONE
    any --a broken promise (Content-Length)--> FAILED

``http.response.start`` is held until the first body message, so the common response (start,
then one body) leaves as one ``conn.respond``: head and body in one write.  A ``content-length``
the app set frames the body (RFC 9112 §6.3: never silently chunked); a body longer or shorter
than it is a ``RuntimeError`` raised into the app, and the connection closes (the core answers
500 when nothing went out, else cuts the response short).  A second start, or any message after
the end, is a ``RuntimeError``.  A response never started becomes the core's 500 (logged).

The request body: a body the core handed up whole is one ``http.request`` message; a streamed
one (``BodyStream``) is read chunk by chunk as the app asks, so the core's read backpressure and
``100 Continue`` (sent on the first read, RFC 9110 §10.1.1) apply unchanged.  Once the body was
delivered, ``receive()`` waits for the client to leave, or for the response to end, and returns
``http.disconnect``; a client that leaves mid-body is ``http.disconnect`` at once.  A body the
core refused (too large, malformed chunking, too slow: a ``ProtocolError``) is ``http.disconnect``
to the app; the core then answers it with its own status (413, 400, 408) when no response went
out.  ``send()`` on a connection that is gone raises ``ClientDisconnected``, an ``OSError``, as
ASGI 2.4 asks (apps stop streaming on it).
"""
from __future__ import annotations

from typing import Any, Awaitable

from cyserve._core.http.asgi import HTTPExchange, merged_fields
from cyserve.files import OpenFile

__all__ = ["HTTPExchange", "merged_fields", "send_file"]

_FILE_CHUNK_BYTES = 65536


async def send_file(exchange: HTTPExchange, path: str) -> None:
    """``http.response.pathsend``: the file at ``path`` as the body of the started response,
    read off the loop in chunks (``cyserve.files.OpenFile``, as ``FileResponse`` reads) and
    written with backpressure; framed with the app's Content-Length, else the file's size.  A
    missing file raises into the app before anything was sent; a file that shrank meanwhile ends
    short, which the exchange reports as the app's broken promise."""
    def more(data: bytes) -> Awaitable[Any]:
        return exchange.write(data, True)

    async with await OpenFile.open(path) as file:
        length = exchange.length if exchange.length >= 0 else file.stat.st_size
        exchange.start_body(length)
        if not exchange.head_request:
            await file.copy_to(more, 0, length, _FILE_CHUNK_BYTES)
        await exchange.write(b"", False)
