"""``cyserve.files.OpenFile``: the file ``FileResponse`` and the ASGI adapter's
``http.response.pathsend`` both send, on uvloop and stdlib asyncio, with real files.

Opening (only regular files, a FIFO refused without blocking, the stat of the descriptor read
rather than of the path), reading and copying ranges in bounded chunks through an awaited
``write``, a file that shrinks while it is sent (a short count), the descriptor closed by
``close`` and ``async with``, and a read cancelled in its thread never racing the close.
"""
from __future__ import annotations

import asyncio
import errno
import os
import pathlib
from typing import Any

import pytest

from cyserve.files import OpenFile

DATA = bytes(range(256)) * 40  # 10240 bytes, every offset distinguishable


def closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError as exc:
        return exc.errno == errno.EBADF
    return False


@pytest.fixture
def data_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    return path


class Sink:
    """An awaited ``write`` that keeps each chunk, yielding to the loop as a transport would."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    async def write(self, data: bytes) -> None:
        self.chunks.append(data)
        await asyncio.sleep(0)


@pytest.mark.parametrize("offset, length, chunk_bytes", [
    pytest.param(0, None, 65536, id="whole-file-one-chunk"),
    pytest.param(0, None, 1000, id="whole-file-in-chunks"),
    pytest.param(100, 2500, 1024, id="middle-range"),
    pytest.param(10000, None, 64, id="tail-to-the-end"),
    pytest.param(10240, None, 64, id="offset-at-the-end-sends-nothing"),
    pytest.param(0, 0, 64, id="zero-length"),
])
def test_copy_to_sends_the_range_in_bounded_chunks(run: Any, data_file: pathlib.Path, offset: int,
                                                   length: int | None, chunk_bytes: int) -> None:
    async def main() -> None:
        sink = Sink()
        async with await OpenFile.open(data_file) as file:
            assert file.stat.st_size == len(DATA)
            sent = await file.copy_to(sink.write, offset, length, chunk_bytes)
        end = len(DATA) if length is None else offset + length
        assert b"".join(sink.chunks) == DATA[offset:end] and sent == end - offset
        assert all(0 < len(chunk) <= chunk_bytes for chunk in sink.chunks)
        assert closed(file.fd)
    run(main)


def test_read_returns_what_is_there(run: Any, data_file: pathlib.Path) -> None:
    async def main() -> None:
        file = await OpenFile.open(str(data_file))
        try:
            assert await file.read(10, 5) == DATA[5:15]
            assert await file.read(100, len(DATA) - 3) == DATA[-3:]
            assert await file.read(100, len(DATA) + 7) == b""
        finally:
            file.close()
        assert closed(file.fd)
    run(main)


def test_a_file_that_shrinks_while_sent_gives_a_short_count(run: Any,
                                                             data_file: pathlib.Path) -> None:
    async def main() -> None:
        sink = Sink()
        async with await OpenFile.open(data_file) as file:
            async def write(data: bytes) -> None:
                if not sink.chunks:
                    os.truncate(data_file, 3000)   # after the first chunk went out
                await sink.write(data)
            sent = await file.copy_to(write, 0, None, 1024)
        # stat was taken at open: the length asked for is the old size, the count says the truth.
        assert sent == 3000 and b"".join(sink.chunks) == DATA[:3000]
    run(main)


def test_the_stat_is_the_descriptors_not_the_paths(run: Any, data_file: pathlib.Path) -> None:
    async def main() -> None:
        async with await OpenFile.open(data_file) as file:
            replacement = data_file.with_name("new.bin")
            replacement.write_bytes(b"other")
            os.replace(replacement, data_file)   # the path now names another file
            assert file.stat.st_size == len(DATA)
            assert await file.read(4, 0) == DATA[:4]
    run(main)


@pytest.mark.parametrize("kind", ["missing", "directory", "fifo"])
def test_only_a_regular_file_opens(run: Any, tmp_path: pathlib.Path, kind: str) -> None:
    path = tmp_path / kind
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)   # opened without a writer: O_NONBLOCK keeps the open from waiting

    async def main() -> None:
        expected = FileNotFoundError if kind == "missing" else IsADirectoryError
        with pytest.raises(expected):
            await asyncio.wait_for(OpenFile.open(path), 5)
    run(main)


def test_copy_to_refuses_negative_or_empty_sizes(run: Any, data_file: pathlib.Path) -> None:
    async def main() -> None:
        sink = Sink()
        async with await OpenFile.open(data_file) as file:
            for args in ((0, None, 0), (-1, None, 64), (0, -5, 64)):
                with pytest.raises(ValueError):
                    await file.copy_to(sink.write, *args)
        assert sink.chunks == []
    run(main)


def test_a_cancelled_read_is_waited_for_before_the_descriptor_closes(
        run: Any, data_file: pathlib.Path) -> None:
    async def main() -> None:
        file = await OpenFile.open(data_file)
        task = asyncio.ensure_future(file.read(len(DATA), 0))
        await asyncio.sleep(0)           # the read is in its thread (or already done)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        file.close()                     # deferred while the thread still reads
        for _ in range(500):             # bounded: 5 s
            if closed(file.fd):
                break
            await asyncio.sleep(0.01)
        assert closed(file.fd)
    run(main)


def test_a_cancelled_open_closes_what_it_opened(run: Any, data_file: pathlib.Path) -> None:
    async def main() -> None:
        before = set(os.listdir("/proc/self/fd"))
        for _ in range(20):
            task = asyncio.ensure_future(OpenFile.open(data_file))
            await asyncio.sleep(0)
            task.cancel()
            try:
                opened = await task
            except asyncio.CancelledError:
                continue
            opened.close()                # the open won the race: it is ours to close
        for _ in range(500):              # bounded: the executor's jobs finish and close
            if set(os.listdir("/proc/self/fd")) <= before:
                break
            await asyncio.sleep(0.01)
        assert set(os.listdir("/proc/self/fd")) <= before
    run(main)
