"""A request's form files are closed when its response is done, over real sockets: after a whole
response, after an error, after a stream that reads the upload, and after the background calls
that were handed the upload.  Automatic garbage collection is off in these tests, so nothing but
the App can be what closed the files (their spooled temporary files sit in reference cycles)."""
from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import os
from typing import Any, Iterator

import pytest

from cyserve import App, HTTPError, StreamResponse
from cyserve.multipart import FormLimits, UploadFile
from tests.support import RawClient, serving

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")

BOUNDARY = "cyserveClosedFilesBoundary42"
# Past the spool threshold: every upload becomes an unlinked temporary file on disk.
LIMITS = FormLimits(spool_max_bytes=64 * 1024)
PAYLOAD = bytes(range(256)) * 1024  # 256 KiB
UPLOADS = 20


def deleted_files_open() -> int:
    """File descriptors of this process that point at deleted files (spooled uploads)."""
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except FileNotFoundError:  # the descriptor listdir itself used, gone by now
            continue
        if "(deleted)" in target:
            count += 1
    return count


@contextlib.contextmanager
def no_automatic_gc() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def upload_body(data: bytes = PAYLOAD) -> bytes:
    head = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="f.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n")
    return head.encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()


async def upload(client: RawClient, target: str) -> Any:
    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    return await client.request("POST", target, [("Content-Type", content_type)], upload_body())


def passthrough(handler: Any) -> Any:
    async def call(request: Any) -> Any:
        return await handler(request)
    return call


def make_app(with_middleware: bool) -> App:
    app = App()
    if with_middleware:  # the other shape of the request path: a guard around every endpoint
        app.use(passthrough)

    async def the_file(request: Any) -> UploadFile:
        form = await request.form(LIMITS)
        file = form["file"]
        assert not file.in_memory
        return file

    @app.post("/size")
    async def size(request):
        return {"size": (await the_file(request)).size}

    @app.post("/http-error")
    async def http_error(request):
        await the_file(request)
        raise HTTPError(422, "no thanks")

    @app.post("/crash")
    async def crash(request):
        await the_file(request)
        raise RuntimeError("handler bug after the form was read")

    @app.post("/stream")
    async def stream(request):
        file = await the_file(request)

        async def chunks():
            while True:
                await asyncio.sleep(0)  # the response is in flight between chunks
                chunk = await file.read(16 * 1024)
                if not chunk:
                    return
                yield chunk
        return StreamResponse(chunks(), content_type="application/octet-stream")

    return app


@pytest.mark.parametrize("with_middleware", [False, True], ids=["bare", "middleware"])
def test_form_files_are_closed_when_each_response_is_written(run, with_middleware):
    async def main():
        async with serving(make_app(with_middleware)) as server:
            client = await RawClient.open(server.port)
            before = deleted_files_open()
            for _ in range(UPLOADS):
                reply = await upload(client, "/size")
                assert reply.status == 200 and reply.body == b'{"size":%d}' % len(PAYLOAD)
                assert deleted_files_open() == before
            await client.close()

    with no_automatic_gc():
        run(main)


@pytest.mark.parametrize("with_middleware", [False, True], ids=["bare", "middleware"])
def test_form_files_are_closed_when_the_handler_raised(run, with_middleware, caplog):
    async def main():
        async with serving(make_app(with_middleware)) as server:
            client = await RawClient.open(server.port)
            before = deleted_files_open()
            for _ in range(3):
                assert (await upload(client, "/http-error")).status == 422
                assert deleted_files_open() == before
                assert (await upload(client, "/crash")).status == 500
                assert deleted_files_open() == before
            await client.close()

    with no_automatic_gc():
        run(main)


def test_a_streamed_response_may_read_the_upload_and_it_is_closed_after_the_stream(run):
    async def main():
        async with serving(make_app(False)) as server:
            client = await RawClient.open(server.port)
            before = deleted_files_open()
            for _ in range(3):
                reply = await upload(client, "/stream")
                assert reply.status == 200 and reply.headers["transfer-encoding"] == "chunked"
                assert reply.body == PAYLOAD  # read from the file while the stream ran
                assert deleted_files_open() == before
            await client.close()

    with no_automatic_gc():
        run(main)


def test_background_calls_may_use_the_upload_and_it_is_closed_after_the_last(run):
    async def main():
        app = App()
        release = asyncio.Event()
        digests: list[str] = []

        async def consume(file: UploadFile) -> None:
            await release.wait()  # the response is long gone by then
            await file.seek(0)
            digests.append(hashlib.sha256(await file.read()).hexdigest())

        def note(text: str) -> None:  # a sync call after it: runs in a thread, in order
            digests.append(text)

        @app.post("/later")
        async def later(request):
            form = await request.form(LIMITS)
            request.background(consume, form["file"])
            request.background(note, "second call ran")
            return "accepted"

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            before = deleted_files_open()
            reply = await upload(client, "/later")
            assert reply.status == 200 and reply.body == b"accepted"
            await asyncio.sleep(0.05)
            assert deleted_files_open() == before + 1  # kept open for the background calls
            release.set()
            for _ in range(200):
                if deleted_files_open() == before:
                    break
                await asyncio.sleep(0.01)
            assert digests == [hashlib.sha256(PAYLOAD).hexdigest(), "second call ran"]
            assert deleted_files_open() == before
            await client.close()

    with no_automatic_gc():
        run(main)
