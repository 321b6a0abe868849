# cython: language_level=3
"""Masking (RFC 6455 §5.3): the XOR a word at a time, and the keys a client masks with; see
mask.pxd."""
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

import os

cdef enum:
    _KEY_POOL_BYTES = 4096          # masking keys drawn from os.urandom at a time (1024 frames)


@cython.boundscheck(False)
@cython.wraparound(False)
cdef void mask_copy(unsigned char* dst, const unsigned char* src, Py_ssize_t n,
                    const unsigned char* key, unsigned int offset) noexcept nogil:
    """dst[j] = src[j] ^ key[(offset + j) % 4] for j < n, a 64-bit word at a time: the key is
    rotated to ``offset`` once and repeated twice into the word.  dst may equal src."""
    cdef unsigned char rotated[8]
    cdef uint64_t word, key64, w0, w1, w2, w3
    cdef Py_ssize_t i = 0
    cdef int j
    for j in range(8):
        rotated[j] = key[(offset + j) & 3]
    memcpy(&key64, rotated, 8)
    while i + 32 <= n:
        # Four independent words per turn: the compiler keeps them in vector registers.
        memcpy(&w0, src + i, 8)
        memcpy(&w1, src + i + 8, 8)
        memcpy(&w2, src + i + 16, 8)
        memcpy(&w3, src + i + 24, 8)
        w0 ^= key64
        w1 ^= key64
        w2 ^= key64
        w3 ^= key64
        memcpy(dst + i, &w0, 8)
        memcpy(dst + i + 8, &w1, 8)
        memcpy(dst + i + 16, &w2, 8)
        memcpy(dst + i + 24, &w3, 8)
        i += 32
    while i + 8 <= n:
        memcpy(&word, src + i, 8)
        word ^= key64
        memcpy(dst + i, &word, 8)
        i += 8
    # i is a multiple of 8 here, so byte i's key byte is rotated[i & 7].
    while i < n:
        dst[i] = src[i] ^ rotated[i & 7]
        i += 1


# §5.3: "the masking key MUST be derived from a strong source of entropy": keys come from
# os.urandom, drawn _KEY_POOL_BYTES at a time and handed out 4 bytes per frame, each used once.
# A forked child forgets the pool it inherited, so two processes never send the same keys.
cdef unsigned char _key_pool[_KEY_POOL_BYTES]
cdef Py_ssize_t _key_next = _KEY_POOL_BYTES
cdef object _urandom = os.urandom


cdef int fresh_key(unsigned char* key) except -1:
    global _key_next
    cdef bytes fresh
    if _key_next + 4 > _KEY_POOL_BYTES:
        fresh = _urandom(_KEY_POOL_BYTES)
        memcpy(_key_pool, PyBytes_AS_STRING(fresh), _KEY_POOL_BYTES)
        _key_next = 0
    memcpy(key, _key_pool + _key_next, 4)
    _key_next += 4
    return 0


def _forget_keys():
    global _key_next
    _key_next = _KEY_POOL_BYTES


os.register_at_fork(after_in_child=_forget_keys)


def mask(data, bytes key not None, unsigned int offset=0) -> bytes:
    """``data`` XORed with the 4-byte ``key`` starting at key byte ``offset`` (masking and
    unmasking are the same operation)."""
    cdef const unsigned char[::1] view = data
    cdef Py_ssize_t n = view.shape[0]
    if len(key) != 4:
        raise ValueError("a masking key is 4 bytes")
    out = PyBytes_FromStringAndSize(NULL, n)
    if n:
        mask_copy(<unsigned char*>PyBytes_AS_STRING(out), &view[0], n,
                  <const unsigned char*>PyBytes_AS_STRING(key), offset)
    return out


def new_key() -> bytes:
    """A fresh masking key, from the pool."""
    cdef unsigned char key[4]
    fresh_key(key)
    return PyBytes_FromStringAndSize(<char*>key, 4)
