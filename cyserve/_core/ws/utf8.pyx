# cython: language_level=3
"""Incremental UTF-8 validation (RFC 3629 §4) for WebSocket text (RFC 6455 §8.1); see utf8.pxd.
"""
cimport cython
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

# A deterministic automaton over byte classes, built from §4's syntax:
#
#   UTF8-1 = %x00-7F
#   UTF8-2 = %xC2-DF UTF8-tail
#   UTF8-3 = %xE0 %xA0-BF UTF8-tail / %xE1-EC 2( UTF8-tail ) /
#            %xED %x80-9F UTF8-tail / %xEE-EF 2( UTF8-tail )
#   UTF8-4 = %xF0 %x90-BF 2( UTF8-tail ) / %xF1-F3 3( UTF8-tail ) / %xF4 %x80-8F 2( UTF8-tail )
#
# The restricted second bytes after E0, ED, F0 and F4 are what excludes overlong forms, the
# surrogates U+D800-DFFF and everything above U+10FFFF; C0, C1 and F5-FF can never appear.  So a
# sequence is rejected on its first byte that no valid text continues (the earliest possible).
cdef enum:
    _U_TAIL1 = 2    # one UTF8-tail due
    _U_TAIL2 = 3    # two UTF8-tails due
    _U_TAIL3 = 4    # three UTF8-tails due
    _U_E0 = 5       # after E0: A0-BF, then one tail
    _U_ED = 6       # after ED: 80-9F, then one tail
    _U_F0 = 7       # after F0: 90-BF, then two tails
    _U_F4 = 8       # after F4: 80-8F, then two tails
    _U_STATES = 9

cdef enum:
    _B_ASCII = 0    # 00-7F
    _B_T80 = 1      # 80-8F  (tails are split where E0, ED, F0 and F4 restrict them)
    _B_T90 = 2      # 90-9F
    _B_TA0 = 3      # A0-BF
    _B_NEVER = 4    # C0-C1, F5-FF
    _B_L2 = 5       # C2-DF
    _B_E0 = 6
    _B_L3 = 7       # E1-EC, EE-EF
    _B_ED = 8
    _B_F0 = 9
    _B_L4 = 10      # F1-F3
    _B_F4 = 11
    _B_CLASSES = 12

cdef unsigned char _UTF8_CLASS[256]
cdef unsigned char _UTF8_NEXT[_U_STATES * _B_CLASSES]
# The same grammar by lead byte, for whole characters checked in one step: the sequence's length
# (0: not a lead byte of a multi-byte character) and the range of its second byte.
cdef unsigned char _UTF8_LEN[256]
cdef unsigned char _UTF8_LO2[256]
cdef unsigned char _UTF8_HI2[256]


cdef void _utf8_build() noexcept:
    """Fill the two tables from the grammar above (once, at import)."""
    cdef int b, s, c
    for b in range(256):
        if b < 0x80:
            c = _B_ASCII
        elif b < 0x90:
            c = _B_T80
        elif b < 0xA0:
            c = _B_T90
        elif b < 0xC0:
            c = _B_TA0
        elif b < 0xC2 or b > 0xF4:
            c = _B_NEVER
        elif b < 0xE0:
            c = _B_L2
        elif b == 0xE0:
            c = _B_E0
        elif b == 0xED:
            c = _B_ED
        elif b < 0xF0:
            c = _B_L3
        elif b == 0xF0:
            c = _B_F0
        elif b < 0xF4:
            c = _B_L4
        else:
            c = _B_F4
        _UTF8_CLASS[b] = c
    for s in range(_U_STATES * _B_CLASSES):
        _UTF8_NEXT[s] = UTF8_REJECT
    _UTF8_NEXT[UTF8_ACCEPT * _B_CLASSES + _B_ASCII] = UTF8_ACCEPT
    _UTF8_NEXT[UTF8_ACCEPT * _B_CLASSES + _B_L2] = _U_TAIL1
    _UTF8_NEXT[UTF8_ACCEPT * _B_CLASSES + _B_E0] = _U_E0
    _UTF8_NEXT[UTF8_ACCEPT * _B_CLASSES + _B_L3] = _U_TAIL2
    _UTF8_NEXT[UTF8_ACCEPT * _B_CLASSES + _B_ED] = _U_ED
    _UTF8_NEXT[UTF8_ACCEPT * _B_CLASSES + _B_F0] = _U_F0
    _UTF8_NEXT[UTF8_ACCEPT * _B_CLASSES + _B_L4] = _U_TAIL3
    _UTF8_NEXT[UTF8_ACCEPT * _B_CLASSES + _B_F4] = _U_F4
    for c in range(_B_T80, _B_TA0 + 1):     # the three UTF8-tail classes
        _UTF8_NEXT[_U_TAIL1 * _B_CLASSES + c] = UTF8_ACCEPT
        _UTF8_NEXT[_U_TAIL2 * _B_CLASSES + c] = _U_TAIL1
        _UTF8_NEXT[_U_TAIL3 * _B_CLASSES + c] = _U_TAIL2
    _UTF8_NEXT[_U_E0 * _B_CLASSES + _B_TA0] = _U_TAIL1
    _UTF8_NEXT[_U_ED * _B_CLASSES + _B_T80] = _U_TAIL1
    _UTF8_NEXT[_U_ED * _B_CLASSES + _B_T90] = _U_TAIL1
    _UTF8_NEXT[_U_F0 * _B_CLASSES + _B_T90] = _U_TAIL2
    _UTF8_NEXT[_U_F0 * _B_CLASSES + _B_TA0] = _U_TAIL2
    _UTF8_NEXT[_U_F4 * _B_CLASSES + _B_T80] = _U_TAIL2
    for b in range(256):
        _UTF8_LEN[b] = 2 if 0xC2 <= b <= 0xDF else 3 if 0xE0 <= b <= 0xEF else 4 if 0xF0 <= b <= 0xF4 else 0
        _UTF8_LO2[b] = 0xA0 if b == 0xE0 else 0x90 if b == 0xF0 else 0x80
        _UTF8_HI2[b] = 0x9F if b == 0xED else 0x8F if b == 0xF4 else 0xBF


_utf8_build()


@cython.boundscheck(False)
@cython.wraparound(False)
cdef unsigned int utf8_scan(unsigned int state, const unsigned char* p,
                            Py_ssize_t n) noexcept nogil:
    """The validator's state after p[0:n], starting from ``state``; UTF8_REJECT as soon as a byte
    makes the text invalid (the rest is not read).  Between characters, runs of ASCII are skipped
    8 bytes at a time and a whole valid multi-byte character (with 4 bytes left to read, so every
    index is below n) in one step; anything else, including every invalid byte, goes one byte at
    a time through the automaton, so where a text fails does not depend on the shortcuts."""
    cdef Py_ssize_t i = 0
    cdef uint64_t word
    cdef unsigned char c, size
    while i < n:
        c = p[i]
        if state == UTF8_ACCEPT:
            if c < 0x80:
                i += 1
                while i + 8 <= n:
                    memcpy(&word, p + i, 8)
                    if word & 0x8080808080808080ULL:
                        break
                    i += 8
                while i < n and p[i] < 0x80:
                    i += 1
                continue
            size = _UTF8_LEN[c]
            if (size and i + 4 <= n and _UTF8_LO2[c] <= p[i + 1] <= _UTF8_HI2[c]
                    and (size < 3 or (p[i + 2] & 0xC0) == 0x80)
                    and (size < 4 or (p[i + 3] & 0xC0) == 0x80)):
                i += size
                continue
        state = _UTF8_NEXT[state * _B_CLASSES + _UTF8_CLASS[c]]
        if state == UTF8_REJECT:
            return state
        i += 1
    return state


def scan(data, unsigned int state=UTF8_ACCEPT) -> int:
    """The validator's state after ``data`` (bytes-like) from ``state``: 0 (``ACCEPT``) between
    characters, 1 (``REJECT``) once invalid, anything else inside a character."""
    cdef const unsigned char[::1] view = data
    if view.shape[0] == 0:
        return state
    return utf8_scan(state, &view[0], view.shape[0])


ACCEPT = UTF8_ACCEPT
REJECT = UTF8_REJECT
