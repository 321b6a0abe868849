# cython: language_level=3
"""Contract of the field-line walk: every field line of a head in one pure-C pass.

``parser`` calls ``scan_fields`` once per head, after the start line.  It records each field's
four offsets and, on the way, what the framing and connection decisions need (Content-Length,
Transfer-Encoding, Host, Connection, Expect, Upgrade); the decisions themselves stay in ``parser``.
"""
from libc.stdint cimport uint32_t


cdef struct FieldLines:
    # Ownership of ``offsets``: the caller points it at a block of ``capacity`` fields (its stack)
    # with ``heap`` false.  When more fields arrive, scan_fields moves them to a PyMem block and sets
    # ``heap``; the caller then frees ``offsets`` whatever scan_fields returned.
    uint32_t* offsets               # 4 per field: name start, name end, value start, value end
    Py_ssize_t count
    Py_ssize_t capacity
    Py_ssize_t max_count            # one more field than this is E_TOO_MANY_FIELDS (431)
    bint heap
    # The caller sets every field below to 0/False, content_length to -1.
    int cl_count
    long long content_length
    int te_lines
    int te_elements                 # codings named (empty elements not counted)
    int te_chunked                  # how many "chunked" codings
    bint te_last_chunked            # the last coding seen so far is chunked
    bint te_unknown                 # some other coding
    bint te_malformed
    int host_count
    bint host_invalid
    bint conn_close
    bint conn_keep_alive
    bint conn_upgrade
    bint expect_continue
    bint upgrade_field              # an Upgrade field naming at least one protocol
    # Empty elements seen so far in each list (RFC 9110 §5.6.1), bounded by
    # grammar.MAX_EMPTY_LIST_ELEMENTS: one more is E_TE_MALFORMED / E_CONNECTION_MALFORMED / ...
    int te_empty
    int conn_empty
    int expect_empty
    int upgrade_empty


# Walk the field lines from d[p] (the first byte after the start line) to the empty line, which
# must be d[n-2:n]: d[0:n] ends with CR LF CR LF.  Returns a grammar.ParseError code, E_OK when
# every field line is well-formed (RFC 9112 §5, RFC 9110 §5.5); E_NOMEM when growing fails.
cdef int scan_fields(const unsigned char* d, Py_ssize_t p, Py_ssize_t n, FieldLines* f) noexcept
