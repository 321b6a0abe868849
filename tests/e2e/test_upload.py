"""Uploads over real sockets: a multi-MB multipart file spooled to disk with bounded memory,
chunked uploads, urlencoded forms, limits answered 413/400/415, and the upload example."""
from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import pathlib
import tracemalloc

from cyserve import App
from cyserve.multipart import FormLimits, UploadFile
from tests.support import RawClient, serving

BOUNDARY = "cyserveE2EBoundary0123456789"
EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
BLOCK = bytes(range(256)) * 256  # 64 KiB


def part_head(name: str, filename: str | None = None, content_type: str = "application/octet-stream") -> bytes:
    disposition = f'Content-Disposition: form-data; name="{name}"'
    if filename is None:
        return f"--{BOUNDARY}\r\n{disposition}\r\n\r\n".encode()
    return f'--{BOUNDARY}\r\n{disposition}; filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n'.encode()


def form_body(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> bytes:
    out = b""
    for name, value in fields.items():
        out += part_head(name) + value.encode() + b"\r\n"
    for name, (filename, data) in files.items():
        out += part_head(name, filename) + data + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


async def post(client: RawClient, target: str, body: bytes) -> tuple[int, bytes]:
    reply = await client.request("POST", target, [("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")],
                                 body)
    return reply.status, reply.body


def upload_app(peaks: list[int]) -> App:
    app = App()

    @app.post("/upload")
    async def upload(request):
        base = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
        if tracemalloc.is_tracing():
            tracemalloc.reset_peak()
        form = await request.form()
        if tracemalloc.is_tracing():
            peaks.append(tracemalloc.get_traced_memory()[1] - base)
        files = {}
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                digest = await asyncio.get_running_loop().run_in_executor(
                    None, lambda f=value.file: hashlib.sha256(f.read()).hexdigest())
                files[name] = {"filename": value.filename, "size": value.size, "sha256": digest,
                               "in_memory": value.in_memory}
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        form.close()
        return {"fields": fields, "files": files, "same": await request.form() is form}

    @app.post("/limited")
    async def limited(request):
        form = await request.form(FormLimits(max_parts=3, max_field_bytes=100, max_file_bytes=1000,
                                             max_total_bytes=20_000))
        form.close()
        return "ok"

    @app.post("/urlencoded")
    async def urlencoded(request):
        form = await request.form()
        return {"a": form.getlist("a"), "b": form["b"]}

    return app


def test_multi_megabyte_upload_is_spooled_to_disk_without_the_body_in_memory(run):
    size = 6 * 1024 * 1024
    expected = hashlib.sha256()
    for _ in range(size // len(BLOCK)):
        expected.update(BLOCK)

    async def main():
        peaks: list[int] = []
        async with serving(upload_app(peaks)) as server:
            client = await RawClient.open(server.port)
            head = part_head("note") + b"hello\r\n" + part_head("file", "big.bin")
            tail = f"\r\n--{BOUNDARY}--\r\n".encode()
            length = len(head) + size + len(tail)
            await client.send(
                f"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n"
                f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n".encode() + head)
            for _ in range(size // len(BLOCK)):  # made on the fly: the client holds 64 KiB at a time
                await client.send(BLOCK)
            await client.send(tail)
            reply = await client.response("POST", timeout_s=20)
            await client.close()
            return reply, peaks

    tracemalloc.start()
    try:
        reply, peaks = run(main, timeout_s=60)
    finally:
        tracemalloc.stop()
    assert reply.status == 200, reply.body
    data = json.loads(reply.body)
    assert data["fields"] == {"note": "hello"} and data["same"] is True
    assert data["files"]["file"] == {"filename": "big.bin", "size": size, "sha256": expected.hexdigest(),
                                     "in_memory": False}
    # Python memory allocated while the 6 MiB form was read: the 1 MiB spool, a few body chunks.
    assert peaks and peaks[0] < 3 * 1024 * 1024, f"peak {peaks[0]} bytes while parsing the form"


def test_chunked_multipart_upload_and_urlencoded_form(run):
    async def main():
        async with serving(upload_app([])) as server:
            client = await RawClient.open(server.port)
            body = form_body({"a": "1", "b": "ü"}, {"f": ("x.txt", b"file bytes\r\n--almost")})
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 50]), body[i:i + 50]) for i in range(0, len(body), 50))
            await client.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                              b"Content-Type: multipart/form-data; boundary=" + BOUNDARY.encode() + b"\r\n\r\n"
                              + chunks + b"0\r\n\r\n")
            reply = await client.response("POST")
            data = json.loads(reply.body)
            assert data["fields"] == {"a": "1", "b": "ü"}
            assert data["files"]["f"]["size"] == len(b"file bytes\r\n--almost") and data["files"]["f"]["in_memory"]
            plain = await client.request("POST", "/urlencoded", [("Content-Type", "application/x-www-form-urlencoded")],
                                         b"a=1&a=2&b=x+y%21")
            assert json.loads(plain.body) == {"a": ["1", "2"], "b": "x y!"}
            await client.close()
    run(main)


def test_form_limits_and_malformed_bodies_are_answered_with_their_status(run):
    async def main():
        async with serving(upload_app([])) as server:
            client = await RawClient.open(server.port)
            cases = [
                (form_body({}, {"f": ("a.bin", b"x" * 1001)}), 413, b"FormLimits.max_file_bytes"),
                (form_body({"a": "1", "b": "2", "c": "3", "d": "4"}, {}), 413, b"FormLimits.max_parts"),
                (form_body({"a": "x" * 101}, {}), 413, b"FormLimits.max_field_bytes"),
                (form_body({}, {"f": ("a.bin", b"x" * 900), "g": ("b.bin", b"x" * 900)})
                 + b"epilogue" * 3000, 413, b"FormLimits.max_total_bytes"),
                (form_body({"a": "1"}, {})[:-8], 400, b"closing boundary"),
            ]
            for body, status, detail in cases:
                code, text = await post(client, "/limited", body)
                assert code == status and detail in text, (code, text)
                if client.writer.is_closing():
                    client = await RawClient.open(server.port)
            wrong = await client.request("POST", "/limited", [("Content-Type", "application/json")], b"{}")
            assert wrong.status == 415
            await client.close()
    run(main)


def test_upload_example_stores_files_under_safe_names(run, monkeypatch, tmp_path):
    monkeypatch.setenv("UPLOAD_DIR", str(tmp_path))
    spec = importlib.util.spec_from_file_location("example_upload", EXAMPLES / "upload.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)

    async def main():
        async with serving(example.app) as server:
            client = await RawClient.open(server.port)
            page = await client.request("GET", "/")
            assert page.status == 200 and b'enctype="multipart/form-data"' in page.body
            body = (part_head("note") + b"two files\r\n"
                    + part_head("file", "../../etc/passwd") + b"root:x\r\n"
                    + part_head("file", "photo é.jpg") + BLOCK * 20 + b"\r\n"
                    + part_head("file", "") + b"\r\n"
                    + f"--{BOUNDARY}--\r\n".encode())
            code, text = await post(client, "/upload", body)
            await client.close()
            return code, text

    code, text = run(main)
    assert code == 200, text
    data = json.loads(text)
    assert data["note"] == "two files" and [f["name"] for f in data["files"]] == ["../../etc/passwd", "photo é.jpg"]
    assert data["files"][1]["size"] == len(BLOCK) * 20
    assert data["files"][1]["sha256"] == hashlib.sha256(BLOCK * 20).hexdigest()
    stored = sorted(p.name for p in tmp_path.iterdir())
    assert len(stored) == 2 and all("/" not in name and not name.startswith(".") for name in stored)
    assert any(name.endswith("-passwd") for name in stored) and any(name.endswith("-photo__.jpg") for name in stored)
    assert (tmp_path / data["files"][0]["stored_as"]).read_bytes() == b"root:x"
