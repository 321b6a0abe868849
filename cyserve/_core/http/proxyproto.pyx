# cython: language_level=3
"""The PROXY protocol role (see proxyproto.pxd).  The format is HAProxy's "PROXY protocol"
specification, versions 1 (text) and 2 (binary), as section numbers below (§2.1, §2.2)."""
cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize

from cyserve._core.io.buffer cimport ReceiveBuffer
from cyserve._core.io.deadline cimport SLOT_INPUT
from cyserve._core.io.stream cimport RoleHooks, Stream

import logging
import socket

cdef object _log = logging.getLogger("cyserve.server")
cdef object _inet_pton = socket.inet_pton
cdef object _inet_ntop = socket.inet_ntop
cdef object _AF_INET = socket.AF_INET
cdef object _AF_INET6 = socket.AF_INET6

# §2.2: the v2 signature, chosen so that no v1 line nor any HTTP request starts with it.
cdef bytes _V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
cdef bytes _V1_PREFIX = b"PROXY "


# ---------------------------------------------------------------- parsing
cdef str _port(str text):
    # §2.1: a decimal port in 0..65535; a leading zero is refused (no proxy writes one, and a
    # lenient reading would let "080" and "80" both mean 80).
    if not (0 < len(text) <= 5 and text.isdigit() and text.isascii()):
        raise ValueError(f"bad port {text!r} in the PROXY line")
    if len(text) > 1 and text[0] == "0":
        raise ValueError(f"port {text!r} in the PROXY line has a leading zero")
    if int(text) > 65535:
        raise ValueError(f"port {text!r} in the PROXY line is past 65535")
    return text


cdef object _address(object family, str text):
    # The address as the loop would give it: canonical text (inet_ntop of inet_pton).
    try:
        return _inet_ntop(family, _inet_pton(family, text))
    except OSError:
        raise ValueError(f"bad address {text!r} in the PROXY line") from None


@cython.boundscheck(False)
@cython.wraparound(False)
cdef object _parse_v1(const unsigned char* data, Py_ssize_t n):
    # §2.1: "PROXY" SP ("TCP4" | "TCP6" | "UNKNOWN") [SP src SP dst SP sport SP dport] CRLF,
    # 107 bytes at most.
    cdef Py_ssize_t i, limit = n if n < V1_MAX_BYTES else V1_MAX_BYTES
    cdef Py_ssize_t lf = -1
    for i in range(limit):
        if data[i] == 10:
            lf = i
            break
        if i < 6 and data[i] != (<const unsigned char*>_V1_PREFIX)[i]:
            raise ValueError("not a PROXY protocol header")
        # The line is printable ASCII and single spaces; CR only just before LF.
        if (data[i] < 0x20 or data[i] > 0x7e) and not (data[i] == 13
                                                       and (i + 1 == n or data[i + 1] == 10)):
            raise ValueError(f"byte 0x{data[i]:02x} in the PROXY line")
    if lf < 0:
        if n >= V1_MAX_BYTES:
            raise ValueError(f"the PROXY line is longer than {V1_MAX_BYTES} bytes")
        return None
    if lf < 7 or data[lf - 1] != 13:
        raise ValueError("the PROXY line does not end with CRLF")
    line = PyBytes_FromStringAndSize(<const char*>data + 6, lf - 7).decode("ascii")
    parts = line.split(" ")
    if parts[0] == "UNKNOWN":
        # The proxy could not tell (a health check, a protocol it does not know): the receiver
        # ignores the rest of the line and keeps the socket's addresses.
        return (lf + 1, 1, None)
    if parts[0] == "TCP4":
        family = _AF_INET
    elif parts[0] == "TCP6":
        family = _AF_INET6
    else:
        raise ValueError(f"unknown protocol {parts[0]!r} in the PROXY line")
    if len(parts) != 5:
        raise ValueError("the PROXY line needs source, destination and both ports")
    source = _address(family, parts[1])
    _address(family, parts[2])
    port = int(_port(parts[3]))
    _port(parts[4])
    if family is _AF_INET:
        return (lf + 1, 1, (source, port))
    return (lf + 1, 1, (source, port, 0, 0))   # the loop's shape for an IPv6 peer


@cython.boundscheck(False)
@cython.wraparound(False)
cdef object _parse_v2(const unsigned char* data, Py_ssize_t n, Py_ssize_t max_bytes):
    # §2.2: 12-byte signature, version (high nibble, 2) and command, family and transport, the
    # length of what follows (network order), the addresses, then TLVs (§2.2.7), skipped here.
    cdef const unsigned char* sig = <const unsigned char*>_V2_SIGNATURE
    cdef Py_ssize_t i, length, total
    cdef int command, family, transport
    for i in range(n if n < 12 else 12):
        if data[i] != sig[i]:
            raise ValueError("not a PROXY protocol header")
    if n < V2_HEADER_BYTES:
        return None
    if data[12] >> 4 != 2:
        raise ValueError(f"PROXY protocol version {data[12] >> 4} (2 expected)")
    command = data[12] & 0x0f
    length = (<Py_ssize_t>data[14] << 8) | data[15]
    total = V2_HEADER_BYTES + length
    if total > max_bytes:
        raise ValueError(f"a {total}-byte PROXY header is longer than the {max_bytes} allowed")
    if n < total:
        return None
    if command == 0:
        # LOCAL: the proxy's own connection (a health check); the socket's addresses stand and
        # the rest of the block, family included, is ignored.
        return (total, 2, None)
    if command != 1:
        raise ValueError(f"unknown PROXY command 0x{command:x}")
    family = data[13] >> 4
    transport = data[13] & 0x0f
    # §2.2: the defined pairs are UNSPEC/UNSPEC and INET, INET6 or UNIX with STREAM or DGRAM;
    # any other value must be refused.
    if not ((family == 0 and transport == 0) or (1 <= family <= 3 and 1 <= transport <= 2)):
        raise ValueError(f"unknown PROXY address family/transport 0x{data[13]:02x}")
    if family == 1:
        if length < 12:
            raise ValueError("the PROXY header is too short for IPv4 addresses")
        source = _inet_ntop(_AF_INET, PyBytes_FromStringAndSize(<const char*>data + 16, 4))
        return (total, 2, (source, (<int>data[24] << 8) | data[25]))
    if family == 2:
        if length < 36:
            raise ValueError("the PROXY header is too short for IPv6 addresses")
        source = _inet_ntop(_AF_INET6, PyBytes_FromStringAndSize(<const char*>data + 16, 16))
        return (total, 2, (source, (<int>data[48] << 8) | data[49], 0, 0))
    if family == 3 and length < 216:
        raise ValueError("the PROXY header is too short for Unix socket addresses")
    # UNSPEC (the proxy hides the addresses) and UNIX (a path, not an address an HTTP client
    # has): the socket's peer stands.
    return (total, 2, None)


cdef object parse_header(const unsigned char* data, Py_ssize_t n, Py_ssize_t max_bytes):
    if n == 0:
        return None
    if data[0] == 80:    # "P"
        return _parse_v1(data, n)
    if data[0] == 13:    # "\r", the v2 signature's first byte
        return _parse_v2(data, n, max_bytes)
    raise ValueError("not a PROXY protocol header")


def parse_proxy_header(bytes data not None, Py_ssize_t max_bytes=V2_HEADER_BYTES + 65535):
    """Python face of ``parse_header`` (tests)."""
    return parse_header(<const unsigned char*>data, len(data), max_bytes)


# ---------------------------------------------------------------- the stream's calls (RoleHooks)
cdef int _made(object role) except -1:
    cdef ProxyRole self = <ProxyRole>role
    cdef object peer = self.stream.peername
    cdef object host = (<tuple>peer)[0] if type(peer) is tuple else "unix:"
    try:
        trusted = bool(self._trusted(host))
    except Exception as exc:
        _log.error("proxy_trusted(%r) failed; the peer is not trusted", host, exc_info=exc)
        trusted = False
    if not trusted:
        # Straight to HTTP: only a trusted peer may say who the client is.
        return self._hand_over()
    self.stream.expect_input(K_PROXY_HEADER, self._timeout_s, False)
    return 0


cdef int _data(object role) except -1:
    return (<ProxyRole>role)._read()


cdef int _eof(object role) except -1:
    # The peer half-closed before its header was whole: there will be no request.
    return 0


cdef int _lost(object role, object exc) except -1:
    return 0


cdef int _expired(object role, int slot, int kind) except -1:
    cdef ProxyRole self = <ProxyRole>role
    if slot == SLOT_INPUT:
        self._fail("the PROXY header did not arrive in time")
    else:
        self.stream.close()
    return 0


cdef int _shutdown(object role, int mode) except -1:
    # Nothing is in flight before the header: the connection just closes.
    (<ProxyRole>role).stream.close()
    return 0


cdef RoleHooks _HOOKS
_HOOKS.made = _made
_HOOKS.data = _data
_HOOKS.eof = _eof
_HOOKS.lost = _lost
_HOOKS.expired = _expired
_HOOKS.shutdown = _shutdown


@cython.final
cdef class ProxyRole:
    """Reads one PROXY header, then hands the stream on (see proxyproto.pxd)."""

    def __init__(self):
        raise TypeError("ProxyRole is made by proxy_first()")

    cdef int _read(self) except -1:
        cdef Stream stream = self.stream
        cdef ReceiveBuffer buf = stream.buffer
        try:
            result = parse_header(buf.head(), buf.size(), self._max_bytes)
        except ValueError as exc:
            return self._fail(str(exc))
        if result is None:
            return 0   # more to come; the deadline bounds the wait
        consumed, version, peer = result
        buf.consume(consumed)
        self.version = version
        if peer is not None:
            stream.set_peer(peer)
        return self._hand_over()

    cdef int _fail(self, str why) except -1:
        # The spec: a receiver that cannot read the header must not guess; it drops the
        # connection (no HTTP answer: the peer is a proxy speaking another protocol).
        _log.info("dropping %s: %s", self.stream.socket_peername, why)
        self.stream.close()
        return 0

    cdef int _hand_over(self) except -1:
        # The bytes after the header stay in the buffer: the next role's first input.
        self.stream.switch(self._next, self._next_hooks)
        self._next = None
        return 0


cdef ProxyRole proxy_first(Stream stream, object trusted, double timeout_s, Py_ssize_t max_bytes,
                           object next_role, const RoleHooks* next_hooks):
    cdef ProxyRole role = ProxyRole.__new__(ProxyRole)
    role.stream = stream
    role._trusted = trusted
    role._timeout_s = timeout_s
    role._max_bytes = max_bytes
    role._next = next_role
    role._next_hooks = next_hooks
    stream.attach(role, &_HOOKS)
    return role
