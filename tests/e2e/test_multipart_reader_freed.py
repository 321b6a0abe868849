"""The multipart reader and its python-multipart parser are freed by reference counting once a
request's form was read, whether reading succeeded or failed: with automatic garbage collection
off, nothing but the dropped references can be what freed them (a parser/reader reference cycle
would keep the reader, and through it the uploads, until the cyclic GC ran)."""
from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

from cyserve import App
from cyserve import multipart
from cyserve.multipart import FormLimits
from tests.support import RawClient, serving

BOUNDARY = "cyserveReaderFreedBoundary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def part(name: str, data: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"


WHOLE = part("field", b"value") + part("file", b"x" * 4096, "f.bin") + f"--{BOUNDARY}--\r\n".encode()
TRUNCATED = WHOLE[:-20]  # no closing boundary: 400 once the body ends
TOO_MANY_PARTS = part("a", b"1") + part("b", b"2") + part("c", b"3") + f"--{BOUNDARY}--\r\n".encode()


@pytest.fixture
def readers(monkeypatch: pytest.MonkeyPatch) -> list[weakref.ref]:
    """Weak references to every _MultipartReader made while the test runs."""
    made: list[weakref.ref] = []

    class Recorded(multipart._MultipartReader):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            made.append(weakref.ref(self))
            made.append(weakref.ref(self.parser))

    monkeypatch.setattr(multipart, "_MultipartReader", Recorded)
    return made


@pytest.mark.parametrize("body, status", [(WHOLE, 200), (TRUNCATED, 400), (TOO_MANY_PARTS, 413)],
                         ids=["read-whole", "truncated-body", "limit-raised-in-a-parser-callback"])
def test_the_reader_and_its_parser_are_freed_without_the_cyclic_gc(run, readers, body, status):
    app = App()

    @app.post("/form")
    async def form(request):
        data = await request.form(FormLimits(max_parts=2))
        return {"parts": len(data)}

    async def main():
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("POST", "/form", [("Content-Type", CONTENT_TYPE)], body)
            assert reply.status == status
            await client.close()
        assert len(readers) == 2
        assert [ref() for ref in readers] == [None, None]

    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        run(main)
    finally:
        if enabled:
            gc.enable()
