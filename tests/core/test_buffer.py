"""The receive buffer: zero-allocation reads into the free tail, compaction, bounded growth."""
from __future__ import annotations

import pytest

from cyserve._core.io.buffer import ReceiveBuffer


def write(buf: ReceiveBuffer, data: bytes) -> None:
    view = memoryview(buf)
    view[: len(data)] = data
    view.release()
    buf.py_commit(len(data))


def test_buffer_view_is_the_free_tail():
    buf = ReceiveBuffer(16, 64)
    assert len(buf) == 16 and len(memoryview(buf)) == 16
    write(buf, b"abcd")
    assert len(buf) == 12 and buf.pending() == b"abcd"


def test_consume_rewinds_an_emptied_buffer():
    buf = ReceiveBuffer(16, 64)
    write(buf, b"abcdef")
    buf.py_consume(6)
    assert buf.free_bytes == 16


def test_reserve_compacts_before_growing():
    buf = ReceiveBuffer(16, 64)
    write(buf, b"0123456789abcd")
    buf.py_consume(10)
    assert buf.py_reserve(8) >= 8
    assert buf.capacity_bytes == 16 and buf.pending() == b"abcd"


def test_reserve_grows_up_to_the_maximum_only():
    buf = ReceiveBuffer(16, 40)
    write(buf, b"x" * 16)
    assert buf.py_reserve(8) >= 8 and buf.capacity_bytes == 32
    write(buf, b"y" * buf.free_bytes)
    assert buf.py_reserve(64) == 8 and buf.capacity_bytes == 40
    assert buf.pending() == b"x" * 16 + b"y" * 16


def test_buffer_never_moves_while_a_view_is_exported():
    buf = ReceiveBuffer(16, 64)
    write(buf, b"x" * 16)
    view = memoryview(buf)
    with pytest.raises(BufferError):
        buf.py_reserve(8)
    view.release()
    assert buf.py_reserve(8) >= 8


def test_commit_past_the_free_tail_is_refused():
    buf = ReceiveBuffer(16, 64)
    with pytest.raises(ValueError):
        buf.py_commit(17)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError):
        ReceiveBuffer(0, 10)
    with pytest.raises(ValueError):
        ReceiveBuffer(32, 16)
