# cython: language_level=3
"""Contract of WebSocket masking (RFC 6455 §5.3): the XOR, and the keys a client masks with.

``mask_copy`` works a 64-bit word at a time with the key rotated to the payload offset, so a
frame unmasked in several pieces gives the same bytes.  Keys come from ``os.urandom`` ("a strong
source of entropy"), drawn 4 KiB at a time and handed out 4 bytes per frame, each used once; a
forked child forgets the pool it inherited.
"""

# dst[j] = src[j] ^ key[(offset + j) % 4] for j < n; dst may equal src.
cdef void mask_copy(unsigned char* dst, const unsigned char* src, Py_ssize_t n,
                    const unsigned char* key, unsigned int offset) noexcept nogil
# Four fresh key bytes into ``key``.
cdef int fresh_key(unsigned char* key) except -1
