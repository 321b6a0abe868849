# cython: language_level=3
"""The response writer (see response.pxd)."""
cimport cython
from cpython.bytes cimport PyBytes_GET_SIZE

from cyserve._core.http.framing cimport BodyWriter, body_writer
from cyserve._core.http.serialise cimport (
    BODY_CHUNKED, BODY_CLOSE, BODY_LENGTH, BODY_NONE, COALESCE_BODY_BYTES, CONN_CLOSE,
    CONN_UPGRADE, HeadWriter, body_framing,
)
from cyserve._core.io.outbox cimport READY, Outbox

from cyserve.errors import again


@cython.final
cdef class ResponseWriter:
    """The response being written on one server connection (see response.pxd)."""

    cdef int respond(self, int status, object fields, object body, object content_type,
                     int conn) except -1:
        cdef Py_ssize_t blen
        cdef int framing
        cdef bint silent
        cdef bytes head
        if self.state != R_NONE:
            raise RuntimeError("a response was already started for this request")
        if type(body) is not bytes:
            body = bytes(body)
        blen = PyBytes_GET_SIZE(body)
        framing = body_framing(status, True, self._http10)
        silent = self._head_request or framing == BODY_NONE
        head = self._heads.head(status, fields, content_type, framing,
                                blen if framing == BODY_LENGTH else -1, conn,
                                None if silent else body)
        if self._heads.user_close or conn == CONN_CLOSE:
            self.close_after = True
        self.state = R_DONE
        self.status = status
        self._out.send(head)
        if not silent:
            self.sent = blen
            if blen > COALESCE_BODY_BYTES:
                self._out.send(body)
        return 0

    cdef int start(self, int status, object fields, object content_type,
                   long long content_length, int conn) except -1:
        cdef int framing
        cdef bytes head
        if self.state != R_NONE:
            raise RuntimeError("a response was already started for this request")
        framing = body_framing(status, content_length >= 0, self._http10)
        if framing == BODY_CLOSE:
            conn = CONN_CLOSE   # RFC 9112 §6.3 item 8: the close is what ends this body
        head = self._heads.head(status, fields, content_type, framing, content_length, conn, None)
        if self._heads.user_close or conn == CONN_CLOSE:
            self.close_after = True
        self.state = R_STREAMING
        self.status = status
        self._silent = self._head_request or framing == BODY_NONE
        self._body.start(framing, content_length, self._silent)
        self._out.send(head)
        return 0

    cdef object write(self, object data):
        if self.state != R_STREAMING:
            raise RuntimeError("write() needs a response started with start_stream()")
        if self._out.closed:
            raise again(self._out.error)
        if type(data) is not bytes:
            data = bytes(data)
        self._body.write(<bytes>data)
        if PyBytes_GET_SIZE(<bytes>data) == 0:
            return READY
        if not self._silent:
            self.sent += PyBytes_GET_SIZE(<bytes>data)
        return self._out.drain()

    cdef int end(self, object trailers) except -1:
        cdef int short
        if self.state != R_STREAMING:
            raise RuntimeError("end_stream() needs a response started with start_stream()")
        if trailers is None:
            short = self._body.finish()
        else:
            # Checked even when the client is gone: a malformed field is the handler's mistake.
            short = self._body.finish_trailers(trailers)
        self.state = R_DONE
        if short and not self._out.closed:
            # Fewer bytes than promised: the client would wait for the rest (RFC 9112 §6.3).
            self.close_after = True
        return 0

    cdef bint trailers_allowed(self) noexcept:
        return self.state == R_STREAMING and not self._silent and self._body.framing == BODY_CHUNKED

    cdef int switching(self, str protocol, object fields) except -1:
        cdef list all_fields = [("Upgrade", protocol)]
        cdef bytes head
        if self.state != R_NONE:
            raise RuntimeError("a response was already started for this request")
        # protocol = protocol-name ["/" protocol-version], both tokens (RFC 9110 §7.8).
        if not protocol or not all(c.isalnum() or c in "!#$%&'*+-.^_`|~/" for c in protocol):
            raise ValueError(f"{protocol!r} is not a protocol name (RFC 9110 §7.8)")
        if fields:
            all_fields.extend(fields)
        # RFC 9110 §7.8, §15.2.2: a 101 names the protocol switched to in Upgrade and carries
        # "Connection: Upgrade"; it has no content and ends this connection's HTTP.
        head = self._heads.head(101, all_fields, None, BODY_NONE, -1, CONN_UPGRADE, None)
        self.state = R_DONE
        self.status = 101
        self.close_after = True
        self._out.send(head)
        return 0


cdef ResponseWriter response_writer(Outbox out, object server_name, bint date_header):
    cdef ResponseWriter w = ResponseWriter.__new__(ResponseWriter)
    w._out = out
    w._heads = HeadWriter(server_name, date_header)
    w._body = body_writer(out)
    return w
