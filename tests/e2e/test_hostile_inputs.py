"""Requests built to crash the app layer, over real sockets: content codings stacked hundreds
deep, numbers longer than int() converts (Range positions, int and float path segments), and
multipart part headers past their limits.  Each gets its 4xx, never a 500."""
from __future__ import annotations

import gzip
import json
import logging
import os
from pathlib import Path

import pytest

from cyserve import App, FormLimits
from cyserve.codecs import MAX_CODINGS
from cyserve.compression import Compression
from cyserve.files import FileResponse
from tests.support import RawClient, serving

HUGE = "9" * 5000  # past sys.int_info.default_max_str_digits (4300)
TEXT = b"0123456789abcdefghijklmnopqrstuvwxyz" * 3  # 108 bytes


@pytest.fixture
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """A 500 logs its traceback: every test here checks nothing at ERROR or above was logged."""
    caplog.set_level(logging.ERROR)
    yield caplog
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


# ---------------------------------------------------------------------- stacked codings
def echo_app(calls: list[int]) -> App:
    app = App()
    app.use(Compression())

    @app.post("/echo")
    async def echo(request):
        calls.append(1)
        return await request.body()

    return app


def test_request_codings_stacked_past_the_bound_are_415(run, no_errors_logged):
    calls: list[int] = []

    async def main():
        async with serving(echo_app(calls)) as server:
            client = await RawClient.open(server.port)
            for count in (600, MAX_CODINGS + 1):
                codings = ", ".join(["gzip"] * count)
                reply = await client.request("POST", "/echo", [("Content-Encoding", codings)],
                                             b"not even gzip")
                assert reply.status == 415, count
                assert reply.headers["accept-encoding"] == "br, gzip, deflate"
                assert f"more than {MAX_CODINGS} content codings".encode() in reply.body
            # The same number as separate field lines counts the same (RFC 9110 §5.3).
            lines = [("Content-Encoding", "gzip")] * (MAX_CODINGS + 1)
            reply = await client.request("POST", "/echo", lines, b"x")
            assert reply.status == 415
            await client.close()
        assert calls == []
    run(main)


def test_request_codings_up_to_the_bound_are_decoded(run, no_errors_logged):
    body = b"hello, layers"
    for _ in range(MAX_CODINGS):
        body = gzip.compress(body)

    async def main():
        async with serving(echo_app([])) as server:
            client = await RawClient.open(server.port)
            codings = ", ".join(["gzip"] * MAX_CODINGS + ["identity"] * 3)
            reply = await client.request("POST", "/echo", [("Content-Encoding", codings)], body)
            assert reply.status == 200 and reply.body == b"hello, layers"
            await client.close()
    run(main)


# ---------------------------------------------------------------------- Range digits
@pytest.mark.parametrize("spec, status, served", [
    # RFC 9110 §14.1.1: a last-pos at or past the end means "to the end", however long.
    (f"bytes=0-{HUGE}", 206, (0, len(TEXT) - 1)),
    (f"bytes=-{HUGE}", 206, (0, len(TEXT) - 1)),  # a suffix longer than the file: all of it
    (f"bytes=100-{HUGE}", 206, (100, len(TEXT) - 1)),
    (f"bytes=0-{'0' * 5000}7", 206, (0, 7)),  # leading zeros are still a small number
    # A first-pos past the end is unsatisfiable, and no other range is: 416 (§15.5.17).
    (f"bytes={HUGE}-", 416, None),
    (f"bytes={HUGE}-{HUGE}9", 416, None),
    (f"bytes=0-3,{HUGE}-", 206, (0, 3)),  # the satisfiable one is served
    # last-pos < first-pos makes the field invalid: ignored, the whole file (§14.1.1, §14.2).
    (f"bytes={HUGE}-1", 200, None),
    (f"bytes={HUGE}9-{HUGE}", 200, None),
], ids=["huge-last", "huge-suffix", "huge-last-from-100", "zero-padded-last", "huge-first",
        "huge-first-and-last", "huge-second-range", "huge-first-small-last",
        "huge-last-below-first"])
def test_range_positions_longer_than_int_converts(run, tmp_path, no_errors_logged, spec, status,
                                                  served):
    (tmp_path / "text.txt").write_bytes(TEXT)
    app = App()
    app.static("/assets", str(tmp_path))

    @app.get("/file")
    async def file(request):
        return FileResponse(tmp_path / "text.txt", request=request)

    async def main():
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            for target in ("/assets/text.txt", "/file"):
                reply = await client.request("GET", target, [("Range", spec)])
                assert reply.status == status, target
                if status == 206:
                    first, last = served
                    assert reply.headers["content-range"] == f"bytes {first}-{last}/{len(TEXT)}"
                    assert reply.body == TEXT[first:last + 1]
                elif status == 416:
                    assert reply.headers["content-range"] == f"bytes */{len(TEXT)}"
                else:
                    assert reply.body == TEXT
            await client.close()
    run(main)


# ---------------------------------------------------------------------- path numbers
def numbers_app() -> App:
    app = App()

    @app.get("/items/{id:int}")
    async def item(request, id: int):
        return {"id": id}

    @app.get("/files/{id:int}.txt")
    async def text_file(request, id: int):
        return {"file": id}

    @app.get("/at/{x:float}")
    async def at(request, x: float):
        return {"x": x}

    @app.get("/items/{name}/{id:int}")
    async def named(request, name: str, id: int):
        return {"name": name, "id": id}

    return app


def test_numeric_path_segments_past_what_converts_are_404(run, no_errors_logged):
    async def main():
        async with serving(numbers_app()) as server:
            client = await RawClient.open(server.port)
            for target in (f"/items/{HUGE}", f"/items/-{HUGE}", f"/files/{HUGE}.txt",
                           f"/items/x/{HUGE}", f"/at/{'9' * 400}", f"/at/{'9' * 400}.5"):
                reply = await client.request("GET", target)
                assert reply.status == 404, target[:20]
            for target, expected in (("/items/12", {"id": 12}), ("/files/-3.txt", {"file": -3}),
                                     (f"/items/{'9' * 4300}", {"id": int("9" * 4300)}),
                                     ("/at/2.5", {"x": 2.5}), ("/items/x/7", {"name": "x", "id": 7})):
                reply = await client.request("GET", target)
                assert reply.status == 200 and json.loads(reply.body) == expected, target[:20]
            await client.close()
    run(main, timeout_s=30)


# ---------------------------------------------------------------------- multipart part headers
BOUNDARY = "hostile-boundary"


def multipart_with(extra_lines: list[str]) -> bytes:
    head = "\r\n".join(['Content-Disposition: form-data; name="f"'] + extra_lines)
    return (f"--{BOUNDARY}\r\n{head}\r\n\r\nvalue\r\n--{BOUNDARY}--\r\n").encode()


def form_app() -> App:
    app = App()

    @app.post("/form")
    async def form(request):
        return dict((await request.form()).multi_items())

    @app.post("/roomy")
    async def roomy(request):
        limits = FormLimits(max_part_headers=20, max_part_header_bytes=16 * 1024)
        return dict((await request.form(limits)).multi_items())

    return app


@pytest.mark.parametrize("target, extra, status, says", [
    ("/form", [f"X-{i}: v" for i in range(FormLimits.max_part_headers)], 413,
     b"FormLimits.max_part_headers"),
    ("/form", ["X-Long: " + "a" * 5000], 413, b"FormLimits.max_part_header_bytes"),
    ("/form", ["X-" + "a" * 5000 + ": v"], 413, b"FormLimits.max_part_header_bytes"),
    ("/form", [f"X-{i}: " + "a" * 600 for i in range(7)], 413, b"FormLimits.max_part_header_bytes"),
    # Limits raised by the app hold: more lines and bigger ones than the parser's own defaults.
    ("/roomy", [f"X-{i}: v" for i in range(12)], 200, b'"f":"value"'),
    ("/roomy", ["X-Long: " + "a" * 6000], 200, b'"f":"value"'),
    ("/roomy", [f"X-{i}: v" for i in range(20)], 413, b"FormLimits.max_part_headers"),
    # Malformed, not too large: 400.
    ("/form", ["X Bad: v"], 400, b"malformed multipart body"),
    ("/form", [": no name"], 400, b"malformed multipart body"),
], ids=["too-many-lines", "long-value", "long-name", "many-long-lines", "raised-line-limit",
        "raised-size-limit", "past-raised-line-limit", "space-in-name", "empty-name"])
def test_part_header_limits_answer_413_and_malformed_headers_400(run, no_errors_logged, target,
                                                                  extra, status, says):
    async def main():
        async with serving(form_app()) as server:
            client = await RawClient.open(server.port)
            reply = await client.request(
                "POST", target, [("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")],
                multipart_with(extra))
            assert reply.status == status and says in reply.body, reply.body[:200]
            await client.close()
    run(main)
