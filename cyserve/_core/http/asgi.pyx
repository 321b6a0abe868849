# cython: language_level=3
"""The ASGI adapter's per-request path and byte helpers (see asgi.pxd)."""
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_Copy
from cpython.unicode cimport PyUnicode_1BYTE_KIND, PyUnicode_Check, PyUnicode_DATA
from cpython.unicode cimport PyUnicode_DecodeLatin1, PyUnicode_GET_LENGTH, PyUnicode_KIND
from libc.stdint cimport uint32_t
from libc.string cimport memchr, memcmp

from cyserve._core.http.body cimport BodyStream
from cyserve._core.http.grammar cimport LOWER, absolute_path_start, ieq, list_element
from cyserve._core.http.framing cimport field_bytes
from cyserve._core.http.head cimport Head
from cyserve._core.http.server cimport ServerRole
from cyserve._core.io.outbox cimport READY

cdef extern from "Python.h":
    # Python 3's two-argument form (cpython.method declares Python 2's three).
    object PyMethod_New(object func, object self)

import asyncio
from urllib.parse import unquote

from cyserve.errors import ClientDisconnected, Disconnected, ProtocolError

cdef object _get_running_loop = asyncio.get_running_loop
cdef object _unquote = unquote
cdef object _CancelledError = asyncio.CancelledError

#: The ``asgi`` entry of every HTTP and WebSocket scope (one shared dict: apps read it).
ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}
cdef dict _ASGI = ASGI_VERSION
cdef str _HTTP11 = "1.1"
cdef str _HTTP10 = "1.0"
cdef str _HTTP = "http"
cdef str _HTTPS = "https"
cdef str _HEAD = "HEAD"
cdef str _BODY = "http.response.body"
cdef str _START = "http.response.start"
cdef str _PATHSEND = "http.response.pathsend"
cdef str _TRAILERS = "http.response.trailers"


cdef inline bint _named(object kind, str name) except -1:
    """``kind == name`` for an ASCII ``name``: a length check and a memcmp when ``kind`` is a
    str (an app's message types are its own str objects, never ours: no identity shortcut, and
    ``PyUnicode_Compare`` walks the shared ``http.response.`` prefix a character at a time)."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(name)
    if type(kind) is str:
        return (PyUnicode_GET_LENGTH(kind) == n and PyUnicode_KIND(kind) == PyUnicode_1BYTE_KIND
                and memcmp(PyUnicode_DATA(kind), PyUnicode_DATA(name), n) == 0)
    return kind == name


def trailers_offered(dict scope) -> bool:
    """The scope was made for a client that reads trailers (its extensions say so)."""
    return "http.response.trailers" in scope["extensions"]


cdef inline object _address(object name):
    """A socket address as ASGI writes it: ``(host, port)``; a Unix socket's path, no port."""
    if type(name) is tuple:
        return name if len(<tuple>name) == 2 else ((<tuple>name)[0], (<tuple>name)[1])
    if isinstance(name, str) and name:
        return (name, None)
    if isinstance(name, bytes) and name:
        return ((<bytes>name).decode("utf-8", "replace"), None)
    return None


# Whether a transport class carries TLS, learnt once per class: every transport of a class is
# the same in this respect (the loops' plain socket transports never, their SSL protocol
# transports always), and asking each connection costs a method call per request.
cdef dict _TLS_BY_TYPE = {}


cdef inline object _scheme_of(object transport):
    cdef object kind = type(transport)
    cdef object scheme = _TLS_BY_TYPE.get(kind)
    if scheme is None:
        scheme = (_HTTPS if transport is not None
                  and transport.get_extra_info("sslcontext") is not None else _HTTP)
        if transport is not None:
            _TLS_BY_TYPE[kind] = scheme
    return scheme


cdef inline int _respond_whole(object conn, int status, object fields, object body) except -1:
    """``conn.respond(status, fields, body)``: through C for the core's own role (the common
    case), by name for a middleware's wrapper of it."""
    if type(conn) is ServerRole:
        (<ServerRole>conn).respond(status, fields, body, None)
    else:
        conn.respond(status, fields, body, None)
    return 0


cdef inline object _gone_error(object cause):
    error = ClientDisconnected("the client closed the connection")
    if cause is not None:
        error.__cause__ = cause
    return error


# ---------------------------------------------------------------------- the entry
@cython.final
cdef class ASGIEntry:
    """One served ASGI app's per-request entry (see asgi.pxd).

    ``ASGIEntry(app, root_path, in_path, state, extra, upgrade, before, send_file)``:
    ``in_path`` says request paths already start with ``root_path`` (an ``App.mount`` prefix;
    otherwise it is prepended, as for a prefix a proxy stripped); ``upgrade`` serves requests that
    ask to upgrade; ``before(conn, head)`` runs first when given and answers False when it
    answered the request itself; ``send_file(exchange, path)`` serves pathsend."""

    def __init__(self, app, str root_path not None, bint in_path, dict state not None, extra,
                 upgrade, before, send_file):
        self.app = app
        self.root_path = root_path
        self._prepend = bool(root_path) and not in_path
        self._raw_root = root_path.encode("utf-8") if self._prepend else b""
        self.state = state
        self.extra = list(extra) if extra else None
        self._upgrade = upgrade
        self._before = before
        self._send_file = send_file
        # Every key of an http scope, in the order apps print them; the values that do not
        # change per request are already in place.
        self._template = {
            "type": "http", "asgi": _ASGI, "http_version": _HTTP11, "method": None,
            "scheme": _HTTP, "path": None, "raw_path": None, "query_string": None,
            "root_path": root_path, "headers": None, "client": None, "server": None,
            "state": None, "extensions": None,
        }

    cpdef dict http_scope(self, object conn, Head head):
        """The ``http`` scope of the request ``head`` on ``conn`` (cyserve.asgi.scope says what
        each field holds).  ``conn`` is the core's ``ServerRole`` or a middleware's wrapper of
        it (``cyserve.compression``)."""
        cdef object stream, forwarded, transport, peername, sockname
        cdef tuple target = target_bytes(head)
        cdef bytes raw_path = <bytes>target[0]
        cdef object path = PyUnicode_DecodeLatin1(PyBytes_AS_STRING(raw_path),
                                                  PyBytes_GET_SIZE(raw_path), NULL)
        cdef object client = None, scheme = None
        cdef dict scope
        if type(conn) is ServerRole:
            # The core's own connection: its facts are C fields (no attribute lookup by name).
            forwarded = (<ServerRole>conn).forwarded
            transport = (<ServerRole>conn).stream.transport
            peername = (<ServerRole>conn).stream.peername
            sockname = (<ServerRole>conn).stream.sockname
        else:
            stream = conn.stream
            forwarded = conn.forwarded
            transport = stream.transport
            peername = stream.peername
            sockname = stream.sockname
        if memchr(PyBytes_AS_STRING(raw_path), b'%', PyBytes_GET_SIZE(raw_path)) != NULL:
            path = _unquote(path)
        if forwarded is not None:
            client = forwarded[0]
            scheme = forwarded[1]
        if scheme is None:
            scheme = _scheme_of(transport)
        if client is None:
            client = _address(peername)
        if self._prepend:
            path = self.root_path + path
            raw_path = self._raw_root + raw_path
        # A copy of the template (one block copy; its keys are already hashed and placed), then
        # each per-request value stored over its key: no insertion, no resize.
        # The template's "1.1" and "http" stay unless this request differs.
        scope = PyDict_Copy(self._template)
        if head.version != 11:
            scope["http_version"] = _HTTP10
        scope["method"] = head.method
        if scheme is not _HTTP:
            scope["scheme"] = scheme
        scope["path"] = path
        scope["raw_path"] = raw_path
        scope["query_string"] = target[1]
        scope["headers"] = scope_headers(head)
        scope["client"] = client
        scope["server"] = _address(sockname)
        # A shallow copy of the lifespan state: the app may write into its own (a fresh empty
        # dict when there is nothing to copy).
        scope["state"] = PyDict_Copy(self.state) if self.state else {}
        # A fresh extensions dict per scope: an app may change its own scope (Starlette's
        # request.send_push_promise looks for "http.response.push" there), never the next one's.
        if offers_trailers(head):
            scope["extensions"] = {"http.response.pathsend": {}, "http.response.trailers": {}}
        else:
            scope["extensions"] = {"http.response.pathsend": {}}
        return scope

    async def handle(self, ServerRole conn, Head head, body):
        """The core's call for one request: the app with this request's scope and exchange."""
        if self._before is not None and not self._before(conn, head):
            return
        if head.upgrade:
            await self._upgrade(conn, head, body)
            return
        # run()'s body, inlined on purpose: awaiting run() here would add a coroutine (made,
        # driven and freed) to every request: 30,112 -> 31,022 instructions (asgi-plaintext).
        cdef HTTPExchange exchange = new_exchange(self, conn, body, _named(head.method, _HEAD),
                                                  offers_trailers(head), self.extra, None)
        scope = self.http_scope(conn, head)
        try:
            await self.app(scope, PyMethod_New(_RECEIVE, exchange), PyMethod_New(_SEND, exchange))
        except BaseException as exc:
            exchange._failed(exc)
            raise
        exchange._finish()

    async def run(self, conn, Head head, body, extra=None, on_start=None):
        """The app for one plain HTTP request, with ``extra`` fields (merged after this entry's)
        and ``on_start(status)`` told when the response head is decided (``App.mount``)."""
        if self.extra:
            extra = self.extra + list(extra) if extra else self.extra
        cdef HTTPExchange exchange = new_exchange(self, conn, body, _named(head.method, _HEAD),
                                                  offers_trailers(head), extra, on_start)
        scope = self.http_scope(conn, head)
        try:
            await self.app(scope, PyMethod_New(_RECEIVE, exchange), PyMethod_New(_SEND, exchange))
        except BaseException as exc:
            exchange._failed(exc)
            raise
        exchange._finish()


# ---------------------------------------------------------------------- the exchange
@cython.final
@cython.freelist(32)
cdef class HTTPExchange:
    """One HTTP request's ``receive`` and ``send`` for an ASGI app (see asgi.pxd and
    cyserve.asgi.http for the messages' meaning)."""

    def __init__(self):
        raise TypeError("HTTPExchange objects are made by the ASGI entry")

    # ------------------------------------------------------------------ receive
    async def receive(self):
        cdef object body = self._body
        cdef object chunk
        cdef bint more
        if body is None:
            # Everything was delivered: the next event is the client leaving, or the response
            # ending (after which nobody is left to tell anything).
            if self.phase < X_DONE:
                await self._wait_end()
            return {"type": "http.disconnect"}
        if type(body) is bytes:
            self._body = None
            return {"type": "http.request", "body": body, "more_body": False}
        try:
            chunk = await body.read()
        except Disconnected:
            self._body = None
            return {"type": "http.disconnect"}
        except ProtocolError as exc:
            self._body = None
            self.failure = exc
            return {"type": "http.disconnect"}
        if not chunk:
            self._body = None
            return {"type": "http.request", "body": b"", "more_body": False}
        more = True
        if type(body) is BodyStream and (<BodyStream>body).eof and (<BodyStream>body).buffered == 0:
            self._body = None   # that was the last of it: say so now, saving the app a call
            more = False
        return {"type": "http.request", "body": chunk, "more_body": more}

    async def _wait_end(self):
        disconnected = self._conn.stream.wait_disconnected()
        if disconnected.done():
            return
        waiter = self._waiter = _get_running_loop().create_future()
        wake = self._on_disconnect
        disconnected.add_done_callback(wake)
        try:
            await waiter
        finally:
            self._waiter = None
            disconnected.remove_done_callback(wake)

    def _on_disconnect(self, _):
        self._wake()

    cdef int _wake(self) except -1:
        """The response ended or the client left: a ``receive()`` waiting for either returns."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return 0

    # ------------------------------------------------------------------ send
    def send(self, message):
        """ASGI ``send``: the message takes effect now, and what is returned is awaited for what
        may have to wait (a streamed body while the client reads slowly, a pathsend file).

        Not a coroutine function: ASGI asks for an awaitable callable, and in the common
        response (start; one final body) nothing ever waits, so a coroutine made, driven and
        freed per message would be pure cost.  An error is raised by the call, inside the app's
        ``await send(...)`` expression as before.  The already-done awaitable is the outbox's
        shared ``READY``: awaiting it again, or never, changes nothing."""
        if type(message) is not dict:
            message = dict(message)   # any mapping, read through the dict API below
        return self._send(<dict>message)

    cdef object _send(self, dict message):
        cdef object kind = message["type"]
        cdef int phase = self.phase
        if _named(kind, _BODY):
            if phase == X_STARTED:
                if not message.get("more_body", False) and not self._trailers:
                    self._respond(message.get("body", b""))  # the common case: one write
                    return READY
                self._start(self.length)
            elif phase != X_STREAMING:
                raise self._unexpected(kind)
            return self._write(message.get("body", b""), message.get("more_body", False))
        if _named(kind, _START):
            if phase != X_IDLE:
                raise self._unexpected(kind)
            self._started(message)
            return READY
        if _named(kind, _PATHSEND):
            if phase != X_STARTED:
                raise self._unexpected(kind)
            return self._entry._send_file(self, message["path"])
        if _named(kind, _TRAILERS):
            if phase != X_TRAILERS:
                raise self._unexpected(kind)
            self._add_trailers(message)
            return READY
        raise self._unexpected(kind)

    cdef object _unexpected(self, object kind):
        cdef int phase = self.phase
        if phase == X_FAILED or self.failure is not None and phase != X_IDLE:
            if isinstance(self.failure, (Disconnected, ProtocolError)):
                return _gone_error(self.failure)
            return RuntimeError(f"ASGI message {kind!r} after the response failed: "
                                f"{self.failure}")
        if phase == X_IDLE:
            return RuntimeError(f"expected ASGI message 'http.response.start', got {kind!r}")
        if phase == X_DONE:
            return RuntimeError(f"ASGI message {kind!r} after the response was complete")
        if kind == "http.response.start":
            return RuntimeError("a second 'http.response.start' for one request")
        if phase == X_TRAILERS:
            return RuntimeError(f"expected ASGI message 'http.response.trailers', got {kind!r}")
        return RuntimeError(f"unexpected ASGI message {kind!r} while sending the response body")

    cdef object _gone(self, object exc):
        self.phase = X_DONE
        return _gone_error(exc)

    cdef int _started(self, dict message) except -1:
        if self.failure is not None:
            raise _gone_error(self.failure)  # the request was refused: the core answers it
        status = message["status"]
        if type(status) is not int or not 200 <= status <= 599:
            # RFC 9110 §15.2: interim (1xx) responses are the server's, not an ASGI start.
            raise ValueError(f"http.response.start needs a final status (200-599), got {status!r}")
        fields = message.get("headers")
        if fields is None:
            fields = []
        elif type(fields) is not list:
            fields = list(fields)
        self.length = declared_length(fields)
        if self._extra:
            fields = merged_fields(fields, self._extra)
        self.status = status
        self._fields = fields
        self._trailers = bool(message.get("trailers", False))
        self.phase = X_STARTED
        if self._on_start is not None:
            self._on_start(status)
        return 0

    cdef int _respond(self, object body) except -1:
        """The whole response: head and body in one write."""
        cdef object conn = self._conn
        cdef long long length = self.length
        if type(body) is not bytes:
            body = bytes(body)
        try:
            if length < 0:
                _respond_whole(conn, self.status, self._fields, body)
            elif self.head_request:
                # RFC 9110 §9.3.2: HEAD answers the GET's Content-Length, whatever body the app
                # sent (none, or the GET's, which the core does not send).
                conn.start_stream(self.status, self._fields, None, length)
                conn.end_stream()
            elif PyBytes_GET_SIZE(body) != length:
                self._broken(f"response content {'longer' if len(body) > length else 'shorter'} "
                             f"than its Content-Length ({len(body)} bytes, {length} declared)")
            else:
                _respond_whole(conn, self.status, self._fields, body)
        except Disconnected as exc:
            raise self._gone(exc)
        self.phase = X_DONE
        if self._waiter is not None:
            self._wake()
        return 0

    cdef int _start(self, long long length) except -1:
        try:
            self._conn.start_stream(self.status, self._fields, None, length)
        except Disconnected as exc:
            raise self._gone(exc)
        # A HEAD response's body is never sent (the core drops it), so nothing is counted.
        self._left = -1 if self.head_request else length
        self.phase = X_STREAMING
        return 0

    def start_body(self, long long length):
        """Send the head of a streamed response framed with ``length`` (-1: chunked), for the
        pathsend hook."""
        if self.phase != X_STARTED:
            raise self._unexpected("http.response.pathsend")
        self._start(length)

    def write(self, body, bint more):
        """A piece of the streamed body, written now; the awaitable returned waits while the
        client reads slowly (and, when that happens, ends the body after the wait); ``more``
        false ends it."""
        return self._write(body, more)

    cdef object _write(self, object body, bint more):
        cdef object waiting
        cdef Py_ssize_t n
        if body:
            if type(body) is not bytes:
                body = bytes(body)
            n = PyBytes_GET_SIZE(body)
            if self._left >= 0:
                if n > self._left:
                    self._broken(f"response content longer than its Content-Length "
                                 f"({n - self._left} bytes too many)")
                self._left -= n
            try:
                waiting = self._conn.write(body)
            except Disconnected as exc:
                raise self._gone(exc)
            if waiting is not READY:
                # Writing is paused (or a middleware's write is a coroutine): the body ends
                # after the wait, in the order the app asked for.
                return _drained(self, waiting, more)
        self._ended(more)
        return READY

    cdef int _ended(self, bint more) except -1:
        """After a streamed piece went out: end the body when it was the last."""
        cdef object conn = self._conn
        if not more:
            if self._left > 0:
                self._broken(f"response content shorter than its Content-Length "
                             f"({self._left} bytes missing)")
            if self._trailers:
                self.phase = X_TRAILERS
                self._trailer_fields = []
                return 0
            try:
                conn.end_stream()
            except Disconnected as exc:
                raise self._gone(exc)
            self.phase = X_DONE
            self._wake()
        return 0

    cdef int _add_trailers(self, dict message) except -1:
        self._trailer_fields.extend(message.get("headers", ()))
        if message.get("more_trailers", False):
            return 0
        try:
            if self._offered_trailers and type(self._conn) is ServerRole:
                end_with_trailers(<ServerRole>self._conn, self._trailer_fields)
            else:
                # The client did not say it reads trailers (no TE: trailers), or a middleware
                # re-encodes the body on its way: the section is optional metadata, left out
                # (RFC 9110 §6.5).
                self._conn.end_stream()
        except Disconnected as exc:
            raise self._gone(exc)
        self.phase = X_DONE
        self._wake()
        return 0

    cdef int _broken(self, str why) except -1:
        """The app broke its response's framing: fail the exchange (the connection closes)."""
        self.phase = X_FAILED
        error = RuntimeError(why)
        self.failure = error
        raise error

    # ------------------------------------------------------------------ the app's end
    def finish(self):
        """The app returned: raise what the core must answer (the refused body's
        ProtocolError), or a RuntimeError when the response is not complete (500 when nothing
        was sent, else the connection closes)."""
        self._finish()

    cdef int _finish(self) except -1:
        failure = self.failure
        cdef int phase = self.phase
        if failure is not None:
            if isinstance(failure, ProtocolError) and phase == X_IDLE:
                raise failure
            if phase == X_FAILED:
                raise RuntimeError(f"the ASGI app broke its response: {failure}")
        if phase == X_DONE or self._conn.stream.closing:
            return 0
        if phase == X_IDLE:
            raise RuntimeError("the ASGI app returned without starting a response")
        raise RuntimeError("the ASGI app returned without completing its response")

    def failed(self, exc):
        """The app raised ``exc``: when the request body was refused (and nothing was sent),
        raise that ProtocolError instead, for the core to answer with its status."""
        self._failed(exc)

    cdef int _failed(self, object exc) except -1:
        failure = self.failure
        if (isinstance(failure, ProtocolError) and self.phase == X_IDLE
                and not isinstance(exc, _CancelledError)):
            raise failure from exc
        return 0


async def _drained(HTTPExchange exchange, object waiting, bint more):
    """The rest of a streamed piece once the paused transport drained: the client leaving
    meanwhile is ``ClientDisconnected`` (ASGI 2.4's OSError), then the body ends if it was the
    last piece."""
    try:
        await waiting
    except Disconnected as exc:
        raise exchange._gone(exc)
    exchange._ended(more)


# The functions behind ``exchange.receive`` and ``exchange.send``: the entry binds them itself,
# skipping the attribute lookup by name (the same bound method objects the lookup would make).
cdef object _RECEIVE = HTTPExchange.receive
cdef object _SEND = HTTPExchange.send


cdef HTTPExchange new_exchange(ASGIEntry entry, object conn, object body, bint head_request,
                               bint offered_trailers, object extra, object on_start):
    cdef HTTPExchange x = HTTPExchange.__new__(HTTPExchange)
    x._conn = conn
    x._entry = entry
    x._body = body
    x.length = -1
    x._left = -1
    x.head_request = head_request
    x._offered_trailers = offered_trailers
    x._extra = extra
    x._on_start = on_start
    return x


def merged_fields(fields, extra):
    """``fields`` plus each ``extra`` field whose name is not among them (any case)."""
    cdef set names = set()
    cdef list added = []
    for name, _ in fields:
        names.add(name.lower().encode("latin-1") if isinstance(name, str) else bytes(name).lower())
    for pair in extra:
        name = pair[0]
        key = name.lower().encode("latin-1") if isinstance(name, str) else bytes(name).lower()
        if key not in names:
            added.append(pair)
    return list(fields) + added if added else fields


# Well-known field names, lower-case, as shared bytes objects: a request made of these costs no
# allocation for its names.  Sorted by length: names of length L are
# _NAMES[_first[L]:_first[L + 1]].
_NAMES = tuple(sorted((
    b"te", b"dnt", b"host", b"date", b"etag", b"vary", b"range", b"accept", b"cookie", b"origin",
    b"expect", b"pragma", b"referer", b"upgrade", b"if-range", b"priority", b"sec-ch-ua",
    b"connection", b"keep-alive", b"user-agent", b"x-real-ip", b"content-type", b"x-request-id",
    b"authorization", b"cache-control", b"if-none-match", b"accept-encoding", b"accept-language",
    b"content-length", b"sec-fetch-dest", b"sec-fetch-mode", b"sec-fetch-site", b"sec-fetch-user",
    b"x-forwarded-for", b"content-encoding", b"sec-ch-ua-mobile", b"x-requested-with",
    b"x-forwarded-host", b"transfer-encoding", b"if-modified-since", b"x-forwarded-proto",
    b"sec-websocket-key", b"sec-ch-ua-platform", b"sec-websocket-version",
    b"sec-websocket-protocol", b"sec-websocket-extensions", b"upgrade-insecure-requests",
), key=len))
cdef enum:
    _MAX_NAME_LEN = 32
    _MAX_NAMES = 64
cdef Py_ssize_t _first[_MAX_NAME_LEN + 2]
cdef const char* _spelled[_MAX_NAMES]


cdef int _init_names() except -1:
    cdef Py_ssize_t k, length
    lengths = [len(name) for name in _NAMES]
    if len(lengths) > _MAX_NAMES or lengths[-1] > _MAX_NAME_LEN:
        raise AssertionError("_NAMES outgrew its C tables")
    for length in range(_MAX_NAME_LEN + 2):
        _first[length] = sum(1 for n in lengths if n < length)
    for k in range(len(lengths)):
        # The tuple keeps every name alive for the module's lifetime.
        _spelled[k] = PyBytes_AS_STRING(<bytes>_NAMES[k])
    return 0


_init_names()


@cython.boundscheck(False)
@cython.wraparound(False)
cdef bytes _lower_name(const unsigned char* d, uint32_t s, uint32_t n):
    cdef char buf[_MAX_NAME_LEN]
    cdef uint32_t k
    cdef Py_ssize_t i
    cdef bytes out
    if n <= _MAX_NAME_LEN:
        for k in range(n):
            buf[k] = <char>LOWER[d[s + k]]
        for i in range(_first[n], _first[n + 1]):
            if memcmp(buf, _spelled[i], n) == 0:
                return <bytes>_NAMES[i]
        return PyBytes_FromStringAndSize(buf, n)
    out = PyBytes_FromStringAndSize(NULL, n)
    cdef char* o = PyBytes_AS_STRING(out)
    for k in range(n):
        o[k] = <char>LOWER[d[s + k]]
    return out


@cython.boundscheck(False)
@cython.wraparound(False)
cpdef list scope_headers(Head head):
    """``[(name, value)]`` bytes pairs of ``head``'s fields, names lower-cased (ASGI 3), in
    received order; surrounding whitespace is not part of a value (RFC 9110 §5.5)."""
    cdef const unsigned char* d = <const unsigned char*>PyBytes_AS_STRING(head.raw)
    cdef uint32_t* o = head._offsets
    cdef Py_ssize_t i, n = head.header_count
    cdef list items = [None] * n
    for i in range(n):
        items[i] = (_lower_name(d, o[4 * i], o[4 * i + 1] - o[4 * i]),
                    PyBytes_FromStringAndSize(<const char*>d + o[4 * i + 2],
                                              o[4 * i + 3] - o[4 * i + 2]))
    return items


cpdef tuple target_bytes(Head head):
    """``(raw_path, query_string)``: the request-target before and after ``?`` as bytes; for an
    absolute-form target the path after the authority (``/`` when empty), RFC 9112 §3.2.2."""
    cdef const unsigned char* d = <const unsigned char*>PyBytes_AS_STRING(head.raw)
    cdef Py_ssize_t s = head._target_start
    cdef Py_ssize_t e = head._query_start - 1 if head._query_start >= 0 else head._target_end
    cdef Py_ssize_t a
    cdef bytes query = b""
    if head._query_start >= 0:
        query = PyBytes_FromStringAndSize(<const char*>d + head._query_start,
                                          head._target_end - head._query_start)
    if e > s and d[s] != b'/' and d[s] != b'*':
        a = absolute_path_start(d, s, e)
        if a >= 0:
            if a == e:
                return b"/", query
            s = a
    return PyBytes_FromStringAndSize(<const char*>d + s, e - s), query


@cython.boundscheck(False)
@cython.wraparound(False)
cpdef long long declared_length(object fields) except -2:
    """The Content-Length among ``fields`` (``(name, value)`` pairs, bytes or str), or -1 when
    there is none.  ``ValueError`` for a value that is not 1*DIGIT, or for two that differ (RFC
    9110 §8.6: a list of identical values is one length; anything else is no length at all)."""
    cdef long long found = -1, value
    cdef Py_ssize_t nlen, vlen, i
    cdef const unsigned char* n
    cdef const unsigned char* v
    cdef list keep = []
    for pair in fields:
        name, text = pair
        n = field_bytes(name, &nlen, keep)
        if nlen != 14 or not ieq(n, b"content-length", 14):
            continue
        v = field_bytes(text, &vlen, keep)
        if vlen == 0 or vlen > 18:
            raise ValueError(f"content-length {text!r} is not a length (RFC 9110 §8.6)")
        value = 0
        for i in range(vlen):
            if v[i] < 48 or v[i] > 57:
                raise ValueError(f"content-length {text!r} is not a length (RFC 9110 §8.6)")
            value = value * 10 + (v[i] - 48)
        if found >= 0 and found != value:
            raise ValueError("two different content-length values (RFC 9110 §8.6)")
        found = value
    return found


cpdef bint offers_trailers(Head head) except -1:
    """The request's ``TE`` field lists ``trailers``: the client will read a trailer section
    (RFC 9110 §10.1.4), so a response may carry one."""
    cdef const unsigned char* d = <const unsigned char*>PyBytes_AS_STRING(head.raw)
    cdef uint32_t* o = head._offsets
    cdef Py_ssize_t i, pos, start, stop, end
    for i in range(head.header_count):
        if o[4 * i + 1] - o[4 * i] != 2 or not ieq(d + o[4 * i], b"te", 2):
            continue
        pos = o[4 * i + 2]
        end = o[4 * i + 3]
        while True:
            start = list_element(d, &pos, end, &stop)
            if start < 0:
                break
            # t-codings may carry a weight ("trailers" takes none, but be lenient on OWS).
            if stop - start >= 8 and ieq(d + start, b"trailers", 8) and (
                    stop - start == 8 or d[start + 8] == b';' or d[start + 8] == b' '):
                return True
    return False


cpdef int end_with_trailers(ServerRole conn, object fields) except -1:
    """End the streamed response of ``conn`` with ``fields`` as its trailer section (RFC 9112
    §7.1.2), through the core's ``end_stream(trailers)``, which checks and writes them.

    Only a chunked body has a trailer section: a response that sends no body (HEAD, 204, 304),
    or one framed by a Content-Length or by the close (HTTP/1.0), ends as ``end_stream`` ends it
    (RFC 9110 §6.5.1: trailers are metadata a recipient may discard).  ``ValueError`` for a field
    that is not a token and a latin-1 value without controls (RFC 9110 §5.5), or one that may not
    be a trailer (§6.5.1)."""
    conn.end_stream(fields if conn.trailers_allowed else None)
    return 0
