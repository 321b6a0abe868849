"""StaticFiles and FileResponse over real sockets: traversal, symlinks, indexes, validators,
conditional requests, ranges (single and multipart), precompressed variants, big files."""
from __future__ import annotations

import asyncio
import brotli
import email
import email.policy
import gzip
import hashlib
import os
import socket
from pathlib import Path

import pytest

from cyserve import App, WaterMarks
from cyserve.files import FileResponse, http_date
from cyserve.static import StaticFiles
from tests.support import RawClient, serving

MTIME = 1_600_000_000  # files get an old mtime: date validators are then strong (RFC 9110 §13.1.5)
TEXT = b"0123456789abcdefghijklmnopqrstuvwxyz" * 3  # 108 bytes
JS = b"function hello() { return 'hello, world'; }\n" * 40


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp/root (served), tmp/root2 (a sibling sharing the prefix), tmp/outside."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "empty").mkdir()
    (tmp_path / "root2").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "secret.txt").write_bytes(b"top secret")
    (tmp_path / "root2" / "secret.txt").write_bytes(b"sibling secret")
    (tmp_path / "outside" / "secret.txt").write_bytes(b"outside secret")
    (root / "index.html").write_bytes(b"<h1>root</h1>")
    (root / "text.txt").write_bytes(TEXT)
    (root / "sub" / "index.html").write_bytes(b"<h1>sub</h1>")
    (root / "style.css").write_bytes(b"body{}")
    (root / "logo.png").write_bytes(b"\x89PNG....")
    (root / "app.js").write_bytes(JS)
    (root / "app.js.gz").write_bytes(gzip.compress(JS, mtime=0))
    (root / "app.js.br").write_bytes(brotli.compress(JS))
    (root / "only.css").write_bytes(b"p{}" * 100)
    (root / "only.css.gz").symlink_to(tmp_path / "outside" / "secret.txt")  # escapes: never served
    (root / "inside-link.txt").symlink_to(root / "text.txt")
    (root / "outside-link.txt").symlink_to(tmp_path / "outside" / "secret.txt")
    (root / "outside-dir").symlink_to(tmp_path / "outside")
    os.mkfifo(root / "fifo")
    for path in root.rglob("*"):
        if not path.is_symlink() and path.is_file():
            os.utime(path, (MTIME, MTIME))
    return tmp_path


def make_app(directory: Path, **kw) -> App:
    app = App()
    app.route("/assets/{path:path}", methods=["GET", "HEAD"])(StaticFiles(directory, **kw))
    return app


async def get(client: RawClient, target: str, *headers: tuple[str, str], method: str = "GET"):
    return await client.request(method, target, list(headers))


def test_serves_a_file_with_type_validators_and_cache_control(run, tree):
    async def main():
        async with serving(make_app(tree / "root")) as server:
            client = await RawClient.open(server.port)
            reply = await get(client, "/assets/text.txt")
            assert reply.status == 200 and reply.body == TEXT
            h = reply.headers
            assert h["content-type"] == "text/plain; charset=utf-8"
            assert h["content-length"] == str(len(TEXT))
            assert h["etag"].startswith('"') and h["etag"].endswith('"')
            assert h["last-modified"] == http_date(MTIME)
            assert h["accept-ranges"] == "bytes" and h["cache-control"] == "no-cache"
            assert "vary" not in h  # no precompressed sibling: the answer does not vary
            assert (await get(client, "/assets/style.css")).headers["content-type"] == "text/css; charset=utf-8"
            assert (await get(client, "/assets/logo.png")).headers["content-type"] == "image/png"
            head = await get(client, "/assets/text.txt", method="HEAD")
            assert head.status == 200 and head.body == b"" and head.headers["content-length"] == str(len(TEXT))
            assert head.headers["etag"] == h["etag"]
            post = await get(client, "/assets/text.txt", method="POST")
            assert post.status == 405 and post.headers["allow"] == "GET, HEAD, OPTIONS"
            await client.close()
    run(main)


TRAVERSALS = [
    "/assets/../secret.txt",
    "/assets/%2e%2e/secret.txt",
    "/assets/%2E%2E/secret.txt",
    "/assets/..%2fsecret.txt",
    "/assets/%2e%2e%2fsecret.txt",
    "/assets/sub/../../secret.txt",
    "/assets/sub/%2e%2e/%2e%2e/secret.txt",
    "/assets/../root2/secret.txt",  # sibling directory sharing the root's name as a prefix
    "/assets/..%2froot2%2fsecret.txt",
    "/assets/..%5csecret.txt",  # backslash
    "/assets/sub%5c..%5c..%5csecret.txt",
    "/assets/text.txt%00.png",  # NUL
    "/assets/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/assets//etc/passwd",
    "/assets/outside-link.txt",
    "/assets/outside-dir/secret.txt",
    "/assets/fifo",
    "/assets/missing.txt",
    "/assets/text.txt/",
    "/assets/empty/",
]


def test_traversal_symlink_escapes_and_odd_paths_are_404(run, tree):
    async def main():
        async with serving(make_app(tree / "root")) as server:
            client = await RawClient.open(server.port)
            for target in TRAVERSALS:
                reply = await get(client, target)
                assert reply.status == 404, target
                assert b"secret" not in reply.body and b"root:" not in reply.body, target
            # the connection survived every refusal
            assert (await get(client, "/assets/text.txt")).status == 200
            await client.close()
    run(main)


def test_symlinks_inside_the_root_work_and_follow_symlinks_allows_escapes(run, tree):
    async def main():
        async with serving(make_app(tree / "root")) as server:
            client = await RawClient.open(server.port)
            assert (await get(client, "/assets/inside-link.txt")).body == TEXT
            await client.close()
        async with serving(make_app(tree / "root", follow_symlinks=True)) as server:
            client = await RawClient.open(server.port)
            assert (await get(client, "/assets/outside-link.txt")).body == b"outside secret"
            assert (await get(client, "/assets/outside-dir/secret.txt")).body == b"outside secret"
            assert (await get(client, "/assets/../secret.txt")).status == 404  # ".." never
            await client.close()
    run(main)


def test_directories_redirect_to_the_slash_then_serve_their_index(run, tree):
    async def main():
        async with serving(make_app(tree / "root")) as server:
            client = await RawClient.open(server.port)
            moved = await get(client, "/assets/sub?x=1")
            assert moved.status == 301 and moved.headers["location"] == "/assets/sub/?x=1"
            assert (await get(client, "/assets/sub/")).body == b"<h1>sub</h1>"
            root = await get(client, "/assets/")
            assert root.body == b"<h1>root</h1>" and root.headers["content-type"] == "text/html; charset=utf-8"
            await client.close()
        async with serving(make_app(tree / "root", index=None)) as server:
            client = await RawClient.open(server.port)
            assert (await get(client, "/assets/sub/")).status == 404
            await client.close()
    run(main)


def test_root_mount_redirect_never_becomes_protocol_relative(run, tree):
    async def main():
        (tree / "root" / "evil.com").mkdir()
        app = App()
        app.route("/{path:path}", methods=["GET", "HEAD"])(StaticFiles(tree / "root"))
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            moved = await get(client, "//evil.com")
            assert moved.status == 301 and moved.headers["location"] == "/evil.com/"
            await client.close()
    run(main)


def test_conditional_requests_answer_304_and_412(run, tree):
    async def main():
        async with serving(make_app(tree / "root")) as server:
            client = await RawClient.open(server.port)
            first = await get(client, "/assets/text.txt")
            etag = first.headers["etag"]
            for fields in ([("If-None-Match", etag)], [("If-None-Match", "W/" + etag)],
                           [("If-None-Match", f'"nope", {etag}')], [("If-None-Match", "*")],
                           [("If-Modified-Since", http_date(MTIME))],
                           [("If-Modified-Since", http_date(MTIME + 60))]):
                reply = await get(client, "/assets/text.txt", *fields)
                assert reply.status == 304, fields
                assert reply.body == b"" and "content-length" not in reply.headers
                assert reply.headers["etag"] == etag and reply.headers["cache-control"] == "no-cache"
                assert reply.headers["last-modified"] == http_date(MTIME)
            for fields in ([("If-None-Match", '"nope"')],
                           [("If-None-Match", '"nope"'), ("If-Modified-Since", http_date(MTIME))],
                           [("If-Modified-Since", http_date(MTIME - 60))],
                           [("If-Modified-Since", "not a date")],
                           [("If-Match", etag)], [("If-Match", "*")],
                           [("If-Unmodified-Since", http_date(MTIME))]):
                reply = await get(client, "/assets/text.txt", *fields)
                assert reply.status == 200 and reply.body == TEXT, fields
            for fields in ([("If-Match", '"nope"')], [("If-Match", "W/" + etag)],
                           [("If-Unmodified-Since", http_date(MTIME - 60))]):
                reply = await get(client, "/assets/text.txt", *fields)
                assert reply.status == 412 and reply.body == b"", fields
            head = await get(client, "/assets/text.txt", ("If-None-Match", etag), method="HEAD")
            assert head.status == 304
            await client.close()
    run(main)


def test_single_ranges_if_range_and_416(run, tree):
    async def main():
        async with serving(make_app(tree / "root")) as server:
            client = await RawClient.open(server.port)
            etag = (await get(client, "/assets/text.txt")).headers["etag"]
            n = len(TEXT)
            for spec, (first, last) in (("bytes=0-4", (0, 4)), ("bytes=100-", (100, n - 1)),
                                        ("bytes=-3", (n - 3, n - 1)), ("bytes=2-100000", (2, n - 1)),
                                        ("bytes=0-10,5-20", (0, 20))):
                reply = await get(client, "/assets/text.txt", ("Range", spec))
                assert reply.status == 206, spec
                assert reply.headers["content-range"] == f"bytes {first}-{last}/{n}"
                assert reply.body == TEXT[first:last + 1]
                assert reply.headers["content-length"] == str(last - first + 1)
                assert reply.headers["content-type"] == "text/plain; charset=utf-8"
            bad = await get(client, "/assets/text.txt", ("Range", f"bytes={n}-"))
            assert bad.status == 416 and bad.headers["content-range"] == f"bytes */{n}" and bad.body == b""
            whole = [("Range", "bytes=5-1"), ("Range", "lines=1-2"),
                     ("Range", "bytes=" + ",".join(f"{i}-{i}" for i in range(0, 40, 2)))]
            for field in whole:
                reply = await get(client, "/assets/text.txt", field)
                assert reply.status == 200 and reply.body == TEXT, field
            head = await get(client, "/assets/text.txt", ("Range", "bytes=0-4"), method="HEAD")
            assert head.status == 200 and head.headers["content-length"] == str(n)
            if_range = [(etag, 206), ('"stale"', 200), ("W/" + etag, 200),
                        (http_date(MTIME), 206), (http_date(MTIME - 1), 200), ("garbage", 200)]
            for validator, status in if_range:
                reply = await get(client, "/assets/text.txt", ("Range", "bytes=0-4"), ("If-Range", validator))
                assert reply.status == status, validator
                assert reply.body == (TEXT[:5] if status == 206 else TEXT)
            await client.close()
    run(main)


def parse_byteranges(content_type: str, body: bytes) -> list[tuple[str, str, bytes]]:
    """Split a multipart/byteranges body per RFC 2046 §5.1.1 (the CRLF before a delimiter is
    part of the delimiter)."""
    assert content_type.startswith("multipart/byteranges; boundary=")
    delimiter = b"--" + content_type.split("boundary=", 1)[1].encode()
    assert body.startswith(delimiter + b"\r\n") and body.endswith(b"\r\n" + delimiter + b"--\r\n")
    inner = body[len(delimiter) + 2:-(len(delimiter) + 6)]
    parts = []
    for part in inner.split(b"\r\n" + delimiter + b"\r\n"):
        head, _, data = part.partition(b"\r\n\r\n")
        fields = dict(line.decode().split(": ", 1) for line in head.split(b"\r\n"))
        parts.append((fields["Content-Range"], fields["Content-Type"], data))
    return parts


def test_multiple_ranges_are_multipart_byteranges_that_parse_back(run, tree):
    async def main():
        async with serving(make_app(tree / "root")) as server:
            client = await RawClient.open(server.port)
            n = len(TEXT)
            reply = await get(client, "/assets/text.txt", ("Range", "bytes=50-59, 0-4, -3"))
            assert reply.status == 206 and "content-range" not in reply.headers
            assert int(reply.headers["content-length"]) == len(reply.body)
            parts = parse_byteranges(reply.headers["content-type"], reply.body)
            assert parts == [(f"bytes 50-59/{n}", "text/plain; charset=utf-8", TEXT[50:60]),
                             (f"bytes 0-4/{n}", "text/plain; charset=utf-8", TEXT[0:5]),
                             (f"bytes {n - 3}-{n - 1}/{n}", "text/plain; charset=utf-8", TEXT[-3:])]
            # An independent parser agrees.
            message = email.message_from_bytes(
                b"Content-Type: " + reply.headers["content-type"].encode() + b"\r\n\r\n" + reply.body,
                policy=email.policy.HTTP)
            assert [p.get_content().encode() for p in message.iter_parts()] == [TEXT[50:60], TEXT[0:5], TEXT[-3:]]
            # A fresh random boundary each time.
            again = await get(client, "/assets/text.txt", ("Range", "bytes=0-0,2-2"))
            assert again.headers["content-type"] != reply.headers["content-type"]
            assert [p[2] for p in parse_byteranges(again.headers["content-type"], again.body)] == [b"0", b"2"]
            await client.close()
    run(main)


def test_precompressed_siblings_are_negotiated(run, tree):
    async def main():
        async with serving(make_app(tree / "root")) as server:
            client = await RawClient.open(server.port)
            tags = set()
            for accept, coding, decode in (("br, gzip", "br", brotli.decompress),
                                           ("gzip, deflate", "gzip", gzip.decompress),
                                           ("br;q=0, gzip;q=0.5", "gzip", gzip.decompress),
                                           ("*", "br", brotli.decompress),
                                           ("identity", None, bytes),
                                           ("br;q=0, gzip;q=0", None, bytes)):
                reply = await get(client, "/assets/app.js", ("Accept-Encoding", accept))
                assert reply.status == 200, accept
                assert reply.headers.get("content-encoding") == coding, accept
                assert reply.headers["content-type"] == "text/javascript; charset=utf-8"
                assert reply.headers["vary"] == "Accept-Encoding"
                assert decode(reply.body) == JS
                tags.add((coding, reply.headers["etag"]))
                if coding:
                    assert reply.headers["etag"].endswith(f'-{coding}"')
            assert len({tag for _, tag in tags}) == len({c for c, _ in tags}) == 3
            plain = await get(client, "/assets/app.js")
            assert plain.body == JS and "content-encoding" not in plain.headers
            br_tag = next(tag for coding, tag in tags if coding == "br")
            cached = await get(client, "/assets/app.js", ("Accept-Encoding", "br"), ("If-None-Match", br_tag))
            assert cached.status == 304 and cached.headers["vary"] == "Accept-Encoding"
            ranged = await get(client, "/assets/app.js", ("Accept-Encoding", "gzip"), ("Range", "bytes=0-9"))
            assert ranged.status == 206 and ranged.headers["content-encoding"] == "gzip"
            assert ranged.body == (tree / "root" / "app.js.gz").read_bytes()[:10]
            # A sibling that is a symlink out of the root is not a variant.
            only = await get(client, "/assets/only.css", ("Accept-Encoding", "gzip"))
            assert only.body == b"p{}" * 100 and "content-encoding" not in only.headers
            await client.close()
        async with serving(make_app(tree / "root", precompressed=False)) as server:
            client = await RawClient.open(server.port)
            reply = await get(client, "/assets/app.js", ("Accept-Encoding", "br"))
            assert reply.body == JS and "content-encoding" not in reply.headers
            await client.close()
    run(main)


def test_file_response_download_name_and_vanished_or_swapped_files(run, tree):
    async def main():
        app = App()
        root = tree / "root"

        @app.get("/download")
        async def download(request):
            return FileResponse(root / "text.txt", filename="rapport été.txt", request=request)

        @app.get("/gone")
        async def gone(request):
            return FileResponse(root / "nope.txt")

        @app.get("/swapped")
        async def swapped(request):
            # The caller checked style.css, but another file is what gets opened.
            return FileResponse(root / "text.txt", stat_result=os.stat(root / "style.css"))

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            reply = await get(client, "/download")
            assert reply.body == TEXT and reply.headers["content-type"] == "text/plain; charset=utf-8"
            assert reply.headers["content-disposition"] == (
                "attachment; filename=\"rapport _t_.txt\"; filename*=UTF-8''rapport%20%C3%A9t%C3%A9.txt")
            assert (await get(client, "/download", ("Range", "bytes=1-2"))).body == TEXT[1:3]
            assert (await get(client, "/gone")).status == 404
            assert (await get(client, "/swapped")).status == 404
            await client.close()
    run(main)


async def open_small_window_client(port: int) -> RawClient:
    """A client whose kernel receive buffer is small, so the server feels it stop reading."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=64 * 1024)
    return RawClient(reader, writer)


def test_big_file_streams_in_chunks_with_bounded_memory_to_a_slow_client(run, tree, monkeypatch):
    size = 32 * 1024 * 1024
    data = os.urandom(1024 * 1024) * 32
    (tree / "root" / "big.bin").write_bytes(data)
    read_sizes: list[int] = []
    real_pread = os.pread

    def counting_pread(fd, n, offset):
        chunk = real_pread(fd, n, offset)
        read_sizes.append(len(chunk))
        return chunk

    monkeypatch.setattr(os, "pread", counting_pread)

    async def main():
        read_sizes.clear()
        app = App(water_marks=WaterMarks(write_high=64 * 1024, write_low=16 * 1024))
        app.route("/assets/{path:path}", methods=["GET", "HEAD"])(StaticFiles(tree / "root"))
        async with serving(app) as server:
            client = await open_small_window_client(server.port)
            await client.send(b"GET /assets/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await client.reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 ") and b"\r\ncontent-length: %d\r\n" % size in head.lower()
            body = bytearray(await client.reader.readexactly(1024))  # then stall
            await asyncio.sleep(0.4)
            stalled = sum(read_sizes)
            await asyncio.sleep(0.4)
            assert sum(read_sizes) == stalled, "the server kept reading the file for a stalled client"
            # Kernel socket buffers, the write high water mark and one chunk: a few MB, not 32.
            assert stalled < 8 * 1024 * 1024
            assert max(read_sizes) <= 64 * 1024
            (conn,) = server.state.connections
            assert conn.transport.get_write_buffer_size() <= 2 * 64 * 1024
            body += await asyncio.wait_for(client.reader.readexactly(size - 1024), 30)
            await client.close()
            return bytes(body)

    body = run(main)
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert sum(read_sizes) == size


def open_fds_to(path: Path) -> int:
    target = str(path)
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == target
        except OSError:
            continue
    return count


async def wait_for_no_fds(path: Path) -> None:
    for _ in range(100):
        if open_fds_to(path) == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path} is still open")


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_the_file_is_closed_when_the_client_leaves_or_the_server_cancels(run, tree):
    big = tree / "root" / "big.bin"
    big.write_bytes(b"\xab" * (16 * 1024 * 1024))

    async def main():
        from cyserve import serve
        async with serving(make_app(tree / "root")) as server:
            client = await open_small_window_client(server.port)
            await client.send(b"GET /assets/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            await client.reader.readexactly(4096)
            await asyncio.sleep(0.1)
            assert open_fds_to(big) == 1  # mid-download: one descriptor, the response's
            client.writer.transport.abort()
            await wait_for_no_fds(big)
        # A stalled download cut by shutdown's grace period: the handler task is cancelled.
        server = await serve(make_app(tree / "root"), "127.0.0.1", 0)
        client = await open_small_window_client(server.port)
        await client.send(b"GET /assets/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        await client.reader.readexactly(4096)
        await asyncio.sleep(0.1)
        await server.shutdown(timeout_s=0.2)
        await wait_for_no_fds(big)
        await client.close()
    run(main)
