# cython: language_level=3
"""Contract of the incremental UTF-8 validator (RFC 3629 §4) WebSocket text is checked with
(RFC 6455 §8.1: 1007 for invalid text).

A deterministic automaton over byte classes: a sequence is rejected on the first byte that no
valid text continues (overlong forms, surrogates and code points above U+10FFFF included), so a
peer's bad text fails as soon as its bytes arrive, across any number of pieces.
"""

cdef enum:
    UTF8_ACCEPT = 0   # between characters: everything so far is valid and complete
    UTF8_REJECT = 1   # invalid; absorbing
    # other values: inside a multi-byte character

# The state after p[0:n], starting from ``state``; UTF8_REJECT as soon as a byte makes the text
# invalid (the rest is not read).
cdef unsigned int utf8_scan(unsigned int state, const unsigned char* p, Py_ssize_t n) noexcept nogil
