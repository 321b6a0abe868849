"""Form parsing without sockets: multipart fed whole, a byte at a time and in other splits;
urlencoded; every limit and malformed body answered with its status; files closed on failure."""
from __future__ import annotations

from typing import AsyncIterator

import pytest

from cyserve.errors import HTTPError
from cyserve.multipart import FormLimits, UploadFile, _MultipartReader, parse_form

BOUNDARY = "----cyserve-test-7MA4YWxkTrZu0gW"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
URLENCODED = "application/x-www-form-urlencoded"


def part(name: str, value: bytes, filename: str | None = None, content_type: str | None = None,
         extra: list[str] | None = None) -> bytes:
    disposition = f'Content-Disposition: form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    lines = [disposition] + ([f"Content-Type: {content_type}"] if content_type else []) + (extra or [])
    return (f"--{BOUNDARY}\r\n" + "".join(f"{line}\r\n" for line in lines) + "\r\n").encode() + value + b"\r\n"


def multipart(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


async def chunks_of(body: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i:i + size]


SAMPLE = multipart(
    part("title", "Grüße\r\nline two".encode()),
    part("tag", b"a"),
    part("tag", b"b"),
    part("empty", b""),
    part("doc", b"--not-a-boundary\r\n--" + BOUNDARY[:-1].encode() + b"\r\nbinary\x00\xff" * 50,
         filename="résumé.txt", content_type="text/plain"),
    part("blob", b"", filename="", content_type="application/octet-stream"),
)


@pytest.mark.parametrize("split", [len(SAMPLE), 1, 2, 7, 64, 1000], ids=lambda n: f"chunks-of-{n}")
def test_multipart_parses_the_same_however_the_body_is_split(run, split):
    async def main():
        form = await parse_form(MULTIPART, chunks_of(SAMPLE, split), FormLimits())
        try:
            assert form["title"] == "Grüße\r\nline two"
            assert form.getlist("tag") == ["a", "b"] and form["tag"] == "b"
            assert form["empty"] == ""
            doc = form["doc"]
            assert isinstance(doc, UploadFile)
            assert (doc.filename, doc.content_type) == ("résumé.txt", "text/plain")
            expected = b"--not-a-boundary\r\n--" + BOUNDARY[:-1].encode() + b"\r\nbinary\x00\xff" * 50
            assert doc.size == len(expected) and await doc.read() == expected
            assert doc.in_memory and doc.headers["content-type"] == "text/plain"
            blob = form["blob"]
            assert blob.filename == "" and blob.size == 0 and await blob.read() == b""
            assert list(form) == ["title", "tag", "empty", "doc", "blob"]
        finally:
            form.close()
        assert doc.file.closed
    run(main)


def test_file_past_the_spool_threshold_moves_to_disk(run):
    async def main():
        data = bytes(range(256)) * 64  # 16 KiB
        body = multipart(part("f", data, filename="big.bin"))
        form = await parse_form(MULTIPART, chunks_of(body, 3000), FormLimits(spool_max_bytes=4096))
        upload = form["f"]
        assert not upload.in_memory and upload.size == len(data)
        assert await upload.read(10) == data[:10]
        await upload.seek(0)
        assert await upload.read() == data
        form.close()
    run(main)


def test_upload_save_copies_the_content(run, tmp_path):
    async def main():
        body = multipart(part("f", b"saved bytes", filename="a.txt"))
        form = await parse_form(MULTIPART, chunks_of(body, 5), FormLimits())
        assert await form["f"].save(str(tmp_path / "out.txt")) == 11
        assert (tmp_path / "out.txt").read_bytes() == b"saved bytes"
        form.close()
    run(main)


def test_urlencoded_form(run):
    async def main():
        body = b"a=1&b=x+y&a=2&c=%C3%BC&empty=&bad=%FF"
        form = await parse_form(f"{URLENCODED}; charset=utf-8", chunks_of(body, 3), FormLimits())
        assert form.getlist("a") == ["1", "2"] and form["b"] == "x y" and form["c"] == "ü"
        assert form["empty"] == "" and form["bad"] == "\ufffd"
    run(main)


ERRORS = [
    pytest.param(MULTIPART, multipart(*(part(f"f{i}", b"v") for i in range(4))), FormLimits(max_parts=3),
                 413, "FormLimits.max_parts", id="too-many-parts"),
    pytest.param(MULTIPART, multipart(part("f", b"x" * 11)), FormLimits(max_field_bytes=10),
                 413, "FormLimits.max_field_bytes", id="field-too-large"),
    pytest.param(MULTIPART, multipart(part("f", b"x" * 1001, filename="a")), FormLimits(max_file_bytes=1000),
                 413, "FormLimits.max_file_bytes", id="file-too-large"),
    pytest.param(MULTIPART, multipart(part("f", b"x" * 5000, filename="a")), FormLimits(max_total_bytes=4000),
                 413, "FormLimits.max_total_bytes", id="body-too-large"),
    pytest.param(MULTIPART, multipart(part("f", b"v", extra=["X-A: 1", "X-B: 2"])), FormLimits(max_part_headers=2),
                 413, "FormLimits.max_part_headers", id="too-many-part-headers"),
    pytest.param(MULTIPART, multipart(part("f", b"v", extra=["X-A: " + "a" * 200])),
                 FormLimits(max_part_header_bytes=100), 413, "FormLimits.max_part_header_bytes",
                 id="part-headers-too-large"),
    pytest.param(URLENCODED, b"&".join(b"f%d=v" % i for i in range(5)), FormLimits(max_parts=4),
                 413, "FormLimits.max_parts", id="too-many-urlencoded-fields"),
    pytest.param(URLENCODED, b"a=" + b"x" * 11, FormLimits(max_field_bytes=10),
                 413, "FormLimits.max_field_bytes", id="urlencoded-field-too-large"),
    pytest.param(URLENCODED, b"a=" + b"x" * 100, FormLimits(max_total_bytes=50),
                 413, "FormLimits.max_total_bytes", id="urlencoded-body-too-large"),
    pytest.param(MULTIPART, multipart(part("f", b"v"))[:-10], FormLimits(),
                 400, "closing boundary", id="truncated-body"),
    pytest.param(MULTIPART, b"", FormLimits(), 400, "closing boundary", id="empty-body"),
    pytest.param("multipart/form-data", multipart(part("f", b"v")), FormLimits(),
                 400, "boundary parameter", id="no-boundary-parameter"),
    pytest.param(MULTIPART, f"--{BOUNDARY}\r\nX-A: 1\r\n\r\nv\r\n--{BOUNDARY}--\r\n".encode(), FormLimits(),
                 400, "no Content-Disposition", id="part-without-content-disposition"),
    pytest.param(MULTIPART, f"--{BOUNDARY}\r\nContent-Disposition: attachment\r\n\r\nv\r\n--{BOUNDARY}--\r\n"
                 .encode(), FormLimits(), 400, "'form-data' with a name", id="disposition-not-form-data"),
    pytest.param(MULTIPART, f"--{BOUNDARY}\r\nBad Header\r\n\r\nv\r\n--{BOUNDARY}--\r\n".encode(),
                 FormLimits(), 400, "malformed multipart body", id="malformed-part-header"),
    pytest.param("application/json", b"{}", FormLimits(), 415, "multipart/form-data", id="not-a-form"),
    pytest.param(None, b"a=1", FormLimits(), 415, "None", id="no-content-type"),
]


@pytest.mark.parametrize("content_type, body, limits, status, detail", ERRORS)
def test_form_errors_answer_with_status_and_a_clear_detail(run, content_type, body, limits, status, detail):
    async def main():
        for split in (len(body) or 1, 1, 17):
            with pytest.raises(HTTPError) as info:
                await parse_form(content_type, chunks_of(body, split), limits)
            assert info.value.status == status and detail in info.value.detail, info.value.detail
    run(main)


def test_files_are_closed_when_parsing_fails(run):
    async def main():
        body = multipart(part("ok", b"y" * 100, filename="a"), part("big", b"x" * 5000, filename="b"))
        reader = _MultipartReader(BOUNDARY.encode(), FormLimits(max_file_bytes=1000, spool_max_bytes=64))
        with pytest.raises(HTTPError):
            await reader.read(chunks_of(body, 512))
        assert len(reader.files) == 2 and all(f.file.closed for f in reader.files)
    run(main)
