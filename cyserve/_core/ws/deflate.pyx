# cython: language_level=3
"""permessage-deflate (RFC 7692): negotiation and the per-connection codecs (see deflate.pxd).

Decisions:

- The codecs drive Python's ``zlib`` objects with negative ``wbits`` (raw DEFLATE, RFC 7692 §7.2):
  portable, and a message costs zlib's own work plus a few attribute lookups.
- A zlib object exists only while it has a window worth keeping: it is made when a message first
  needs it and dropped at the message's end when the context is not taken over (§7.1.1), so an
  idle no-takeover connection holds no zlib memory at all.
- Inflation is bounded (§8, security considerations): ``decompress(data, max_out + 1)`` never
  produces more than the caller's remaining budget plus one byte, and zlib keeps the input it did
  not reach in ``unconsumed_tail``, which the next call resumes from.
- Window 8 (§7.1.2): zlib refuses to compress raw DEFLATE with an 8-bit window (zlib 1.2.9+
  rejects it; older releases silently used 9).  Compressing is therefore never done with 8: a
  server declines an offer whose ``server_max_window_bits=8`` binds it, and a client fails a
  response whose ``client_max_window_bits=8`` binds it.  Inflating is always possible: a stream
  made with an 8-bit window only refers 256 bytes back, which a 9-bit window covers, so the
  ``Inflater`` uses 9 wherever 8 was negotiated.
- memLevel: by default ``wbits - 7`` (12 -> 5, 15 -> 8, zlib's own default), a hash table with as
  many heads as the window has positions.  zlib's deflate state is then
  ``(1 << (wbits + 2)) + (1 << (memLevel + 9))`` = ``1 << (wbits + 3)`` bytes plus ~6 KiB of
  fixed state (32 KiB + 6 KiB at window 12; 256 KiB + 6 KiB at 15), and inflate's is
  ``1 << wbits`` plus ~7 KiB (11 KiB at 12): ~49 KiB per connection compressing both ways at the
  default window 12, under websockets' ~64 KiB (window 12, memLevel 5).
- A peer may end a message with a block whose BFINAL bit is set (§7.2.3.4 allows it): that ends
  the DEFLATE stream, so the next message starts a fresh one; a later back reference into the old
  window then fails as corrupt data (zlib never reads outside the window it has).  Bytes after
  such a block inside the same message are corrupt data too.
- Negotiation parses ``Sec-WebSocket-Extensions`` by RFC 6455 §9.1 (tokens, ``;`` parameters,
  token or quoted-string values whose unescaped text must be a token) with RFC 9110 §5.6.1's empty
  list elements allowed.  Extension and parameter names are compared exactly (RFC 7692 spells them
  in lower case).  A server that cannot parse the header declines compression instead of failing
  the handshake (the connection is still good without it); a client fails on anything it cannot
  accept (§7, "the client MUST _Fail the WebSocket Connection_").
"""
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.string cimport memcmp, memcpy

import re
import zlib

cdef object _compressobj = zlib.compressobj
cdef object _decompressobj = zlib.decompressobj
cdef object _ZlibError = zlib.error
cdef int _Z_SYNC_FLUSH = zlib.Z_SYNC_FLUSH
cdef int _DEFLATED = zlib.DEFLATED

# The empty stored block a sync flush ends with: the sender removes it, the receiver appends it
# (RFC 7692 §7.2.1, §7.2.2).
cdef bytes _TAIL = b"\x00\x00\xff\xff"
# An empty message: §7.2.1 applied to no data leaves the 3 header bits of the empty stored block,
# which the receiver's _TAIL completes.
cdef bytes _EMPTY_MESSAGE = b"\x00"

_NAME = "permessage-deflate"
_DECLINED = (None, None, None)
# RFC 7692 §7.1.2.1/§7.1.2.2: a window value is a decimal 8..15 without leading zeros.
_WINDOW_BITS = {str(bits): bits for bits in range(8, 16)}


cdef inline Py_ssize_t _cap(Py_ssize_t max_out) except -1:
    """zlib's ``max_length`` for a budget of ``max_out`` bytes: one more, to tell "at the limit"
    from "past it" (0 would mean unlimited to zlib)."""
    if max_out < 0:
        raise ValueError(f"max_out must be >= 0, got {max_out}")
    return max_out + 1 if max_out < PY_SSIZE_T_MAX else max_out


cdef bytes _inflate(object z, object data, Py_ssize_t max_out, bint at_end):
    cdef bytes out
    try:
        out = z.decompress(data, _cap(max_out))
    except _ZlibError as exc:
        raise ValueError(f"permessage-deflate: corrupt compressed data ({exc})") from None
    # After a BFINAL block the rest lands in unused_data: at the message's end that is our own
    # _TAIL; before it, it is the peer's bytes past the end of its DEFLATE stream.
    if not at_end and z.eof and PyBytes_GET_SIZE(z.unused_data):
        raise ValueError("permessage-deflate: data after the final DEFLATE block of a message")
    return out


@cython.final
cdef class Inflater:
    """The receive direction: inflates one message at a time, within a byte budget."""

    def __init__(self, int wbits, bint no_context_takeover):
        if not 8 <= wbits <= 15:
            raise ValueError(f"window bits must be 8..15 (RFC 7692 §7.1.2), got {wbits}")
        # An 8-bit window's stream never refers more than 256 bytes back: 9 bits cover it.
        self._wbits = 9 if wbits == 8 else wbits
        self._no_takeover = no_context_takeover
        self._in_message = False
        self._z = None

    @property
    def wbits(self):
        return self._wbits

    @property
    def no_context_takeover(self):
        return self._no_takeover

    @property
    def in_message(self):
        return self._in_message

    cpdef bytes feed(self, object data, Py_ssize_t max_out):
        cdef object z = self._z
        cdef bytes tail
        _cap(max_out)
        if z is not None:
            tail = z.unconsumed_tail            # input left unread by a call over its bound
            if PyBytes_GET_SIZE(tail):
                data = tail + data
        if not data:
            return b""                          # an empty fragment changes nothing
        if z is None:
            z = self._z = _decompressobj(-self._wbits)
        self._in_message = True
        if z.eof:
            raise ValueError("permessage-deflate: data after the final DEFLATE block of a message")
        return _inflate(z, data, max_out, False)

    cpdef bytes end_message(self, Py_ssize_t max_out):
        cdef object z = self._z
        cdef bytes tail
        cdef bytes out = b""
        _cap(max_out)
        if not self._in_message:
            # No compressed byte arrived (RSV1 on an empty payload): an empty message.  The
            # appended 00 00 ff ff alone is not a whole block (a stored block's header bits come
            # from the sender), so zlib is left untouched rather than stranded inside a block.
            return out
        self._in_message = False
        if not z.eof:
            tail = z.unconsumed_tail
            out = _inflate(z, tail + _TAIL if PyBytes_GET_SIZE(tail) else _TAIL, max_out, True)
        if self._no_takeover or z.eof:
            self._z = None
        return out


cdef inline int _default_memlevel(int wbits) noexcept:
    # As many hash heads as window positions (see the module docstring).
    return min(9, max(1, wbits - 7))


@cython.final
cdef class Deflater:
    """The send direction: compresses one whole message for a frame with RSV1 set."""

    def __init__(self, int wbits, bint no_context_takeover, int level=6, memlevel=None):
        if wbits == 8:
            raise ValueError("zlib cannot compress raw DEFLATE with an 8-bit window; use 9..15")
        if not 9 <= wbits <= 15:
            raise ValueError(f"window bits must be 9..15, got {wbits}")
        if not -1 <= level <= 9:
            raise ValueError(f"compression level must be -1..9, got {level}")
        cdef int mem = _default_memlevel(wbits) if memlevel is None else memlevel
        if not 1 <= mem <= 9:
            raise ValueError(f"memlevel must be 1..9, got {mem}")
        self._wbits = wbits
        self._level = level
        self._memlevel = mem
        self._no_takeover = no_context_takeover
        self._z = None

    @property
    def wbits(self):
        return self._wbits

    @property
    def no_context_takeover(self):
        return self._no_takeover

    @property
    def level(self):
        return self._level

    @property
    def memlevel(self):
        return self._memlevel

    cpdef bytes compress(self, object data):
        cdef object z
        cdef bytes head, flushed, out
        cdef Py_ssize_t n_head, n_flushed
        if not data:
            return _EMPTY_MESSAGE
        z = self._z
        if z is None:
            z = self._z = _compressobj(self._level, _DEFLATED, -self._wbits, self._memlevel)
        head = z.compress(data)
        flushed = z.flush(_Z_SYNC_FLUSH)
        if self._no_takeover:
            self._z = None
        n_head = PyBytes_GET_SIZE(head)
        n_flushed = PyBytes_GET_SIZE(flushed) - 4
        if n_flushed < 0 or memcmp(PyBytes_AS_STRING(flushed) + n_flushed, PyBytes_AS_STRING(_TAIL), 4):
            raise RuntimeError("zlib's sync flush did not end with 00 00 ff ff")
        if n_head == 0:
            return PyBytes_FromStringAndSize(PyBytes_AS_STRING(flushed), n_flushed)
        out = PyBytes_FromStringAndSize(NULL, n_head + n_flushed)
        memcpy(PyBytes_AS_STRING(out), PyBytes_AS_STRING(head), n_head)
        memcpy(PyBytes_AS_STRING(out) + n_head, PyBytes_AS_STRING(flushed), n_flushed)
        return out


# --- negotiation: Sec-WebSocket-Extensions (RFC 6455 §9.1, RFC 7692 §5, §7.1) -------------------

cdef object _ows = re.compile(r"[ \t]*").match
cdef object _token = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+").match
cdef object _is_token = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+").fullmatch
cdef object _quoted = re.compile(
    r'"((?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*)"').match
cdef object _unescape = re.compile(r"\\(.)", re.S).sub


cdef str _expect_token(str value, Py_ssize_t* i, str what):
    m = _token(value, i[0])
    if m is None:
        got = repr(value[i[0]]) if i[0] < len(value) else "the end"
        raise ValueError(f"Sec-WebSocket-Extensions: expected {what} at offset {i[0]}, got {got}")
    i[0] = m.end()
    return m.group()


cdef list _parse(str value):
    """``[(name, [(param, value or None), ...]), ...]`` in order, duplicates kept."""
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t n = len(value)
    cdef list result = []
    cdef list params
    while True:
        i = _ows(value, i).end()
        if i == n:
            return result
        if value[i] == ",":         # an empty list element (RFC 9110 §5.6.1)
            i += 1
            continue
        name = _expect_token(value, &i, "an extension name")
        params = []
        i = _ows(value, i).end()
        while i < n and value[i] == ";":
            i = _ows(value, i + 1).end()
            param = _expect_token(value, &i, "a parameter name")
            i = _ows(value, i).end()
            arg = None
            if i < n and value[i] == "=":
                i = _ows(value, i + 1).end()
                if i < n and value[i] == '"':
                    m = _quoted(value, i)
                    if m is None:
                        raise ValueError(f"Sec-WebSocket-Extensions: bad quoted-string at offset {i}")
                    arg = _unescape(r"\1", m.group(1))
                    if _is_token(arg) is None:
                        # RFC 6455 §9.1: the unescaped value MUST conform to the token ABNF.
                        raise ValueError(f"Sec-WebSocket-Extensions: quoted value {arg!r} is not a token")
                    i = m.end()
                else:
                    arg = _expect_token(value, &i, "a parameter value")
                i = _ows(value, i).end()
            params.append((param, arg))
        result.append((name, params))
        if i < n:
            if value[i] != ",":
                raise ValueError(f"Sec-WebSocket-Extensions: unexpected {value[i]!r} at offset {i}")
            i += 1


def parse_extensions(str value):
    result = []
    for name, params in _parse(value):
        found = {}
        for param, arg in params:
            if param in found:
                raise ValueError(f"Sec-WebSocket-Extensions: {name} has {param} twice")
            found[param] = arg
        result.append((name, found))
    return result


cdef object _server_accept(list params, object limits):
    """The response and codecs for one ``permessage-deflate`` offer, or None to decline it."""
    cdef bint server_nct = False, client_nct = False, client_bits_offered = False
    cdef int server_bits = 15, client_bits = 15, window, send_bits, recv_bits
    seen = set()
    for param, arg in params:
        if param in seen:
            return None                     # §7: a duplicate parameter declines the offer
        seen.add(param)
        if param == "server_no_context_takeover":
            if arg is not None:
                return None                 # §7.1.1.1: no value
            server_nct = True
        elif param == "client_no_context_takeover":
            if arg is not None:
                return None                 # §7.1.1.2: no value
            client_nct = True
        elif param == "server_max_window_bits":
            bits = _WINDOW_BITS.get(arg)    # §7.1.2.1: a value is required
            if bits is None:
                return None
            server_bits = bits
        elif param == "client_max_window_bits":
            client_bits_offered = True      # §7.1.2.2: the value is optional
            if arg is not None:
                bits = _WINDOW_BITS.get(arg)
                if bits is None:
                    return None
                client_bits = bits
        else:
            return None                     # §7: an unknown parameter declines the offer
    if server_bits == 8:
        # §7.1.2.1: we must compress within 8 bits, which zlib cannot (module docstring).
        return None
    window = limits.compression_window_bits
    send_bits = min(window, server_bits)
    # §7.1.2.2: without client_max_window_bits in the offer the response must not limit the
    # client, which may then use up to 15 bits.
    recv_bits = min(window, client_bits) if client_bits_offered else 15
    response = [_NAME]
    if server_nct:
        response.append("server_no_context_takeover")    # §7.1.1.1: accepting it means echoing it
    if client_nct:
        # §7.1.1.2: echoing the client's hint lets our inflater drop its window between messages.
        response.append("client_no_context_takeover")
    if send_bits < 15 or "server_max_window_bits" in seen:
        # §7.1.2.1: the same or a smaller value; allowed unasked, so the client's inflater can
        # keep a smaller window.
        response.append(f"server_max_window_bits={send_bits}")
    if client_bits_offered:
        response.append(f"client_max_window_bits={recv_bits}")
    return ("; ".join(response), Inflater(recv_bits, client_nct),
            Deflater(send_bits, server_nct, limits.compression_level))


def server_negotiate(offer_header, limits):
    if not limits.compression or not offer_header:
        return _DECLINED
    try:
        offers = _parse(offer_header)
    except ValueError:
        return _DECLINED                    # an unparsable offer: the connection goes uncompressed
    for name, params in offers:
        if name == _NAME:                   # §5: the first acceptable offer wins
            accepted = _server_accept(params, limits)
            if accepted is not None:
                return accepted
    return _DECLINED


def client_offer(limits):
    if not limits.compression:
        raise ValueError("WebSocketLimits.compression is off: offer no extension")
    window = limits.compression_window_bits
    # §7.1.2.2: client_max_window_bits without a value lets the server pick our window.
    if window < 15:
        return f"{_NAME}; client_max_window_bits; server_max_window_bits={window}"
    return f"{_NAME}; client_max_window_bits"


def client_accept(str response_header, limits):
    cdef int window, offered_server_bits, server_bits = 0, client_bits = 0
    cdef bint server_nct = False, client_nct = False
    if not limits.compression:
        raise ValueError("permessage-deflate: the server answered an extension we did not offer")
    extensions = _parse(response_header)
    if len(extensions) != 1 or extensions[0][0] != _NAME:
        # RFC 6455 §4.1: an extension we did not ask for fails the connection.
        names = ", ".join([name for name, _ in extensions]) or "nothing"
        raise ValueError(f"permessage-deflate: the server answered {names}, not one permessage-deflate")
    window = limits.compression_window_bits
    offered_server_bits = window if window < 15 else 0
    seen = set()
    for param, arg in extensions[0][1]:
        if param in seen:
            raise ValueError(f"permessage-deflate: the server's answer has {param} twice")
        seen.add(param)
        if param == "server_no_context_takeover" or param == "client_no_context_takeover":
            if arg is not None:
                raise ValueError(f"permessage-deflate: {param} takes no value, got {arg!r}")
            if param == "server_no_context_takeover":
                server_nct = True           # §7.1.1.1: the server may add it unasked
            else:
                client_nct = True           # §7.1.1.2: the server may require it unasked
        elif param == "server_max_window_bits":
            bits = _WINDOW_BITS.get(arg)
            if bits is None:
                raise ValueError(f"permessage-deflate: bad server_max_window_bits {arg!r}")
            if offered_server_bits and bits > offered_server_bits:
                # §7.1.2.1: the same or a smaller value than the offer.
                raise ValueError(f"permessage-deflate: server_max_window_bits={bits} is larger "
                                 f"than the {offered_server_bits} offered")
            server_bits = bits
        elif param == "client_max_window_bits":
            bits = _WINDOW_BITS.get(arg)    # §7.1.2.2: a response carries a value
            if bits is None:
                raise ValueError(f"permessage-deflate: bad client_max_window_bits {arg!r}")
            if bits == 8:
                raise ValueError("permessage-deflate: the server requires client_max_window_bits=8, "
                                 "which zlib cannot compress with")
            client_bits = bits
        else:
            raise ValueError(f"permessage-deflate: the server answered the unknown parameter {param}")
    if offered_server_bits and not server_bits:
        # §7.1.2.1: accepting our server_max_window_bits means answering it.
        raise ValueError(f"permessage-deflate: the server ignored server_max_window_bits="
                         f"{offered_server_bits}")
    return (Inflater(server_bits or 15, server_nct),
            Deflater(min(window, client_bits) if client_bits else window, client_nct,
                     limits.compression_level))
