"""Static-file helpers without sockets: ranges, preconditions, validators, types, path checks."""
from __future__ import annotations

import email.message
import email.policy
import os
from urllib.parse import unquote

import pytest

from cyserve.datastructures import Headers
from cyserve.files import (MAX_RANGES, content_disposition, evaluate_preconditions, guess_type,
                           http_date, make_etag, parse_http_date, parse_range)
from cyserve.static import StaticFiles, _segments

SIZE = 100

RANGE_VECTORS = [
    ("first-byte", "bytes=0-0", [(0, 0)]),
    ("closed", "bytes=10-19", [(10, 19)]),
    ("open-ended", "bytes=90-", [(90, 99)]),
    ("suffix", "bytes=-5", [(95, 99)]),
    ("suffix-longer-than-file", "bytes=-500", [(0, 99)]),
    ("last-past-end-is-clamped", "bytes=95-1000", [(95, 99)]),
    ("whole-file", "bytes=0-99", [(0, 99)]),
    ("unit-is-case-insensitive", "Bytes=1-2", [(1, 2)]),
    ("whitespace-and-empty-elements", "bytes= 1-2 , ,4-5", [(1, 2), (4, 5)]),
    ("several-kept-in-client-order", "bytes=50-59,0-9", [(50, 59), (0, 9)]),
    ("overlapping-are-coalesced", "bytes=0-10,5-20,50-60", [(0, 20), (50, 60)]),
    ("adjacent-to-an-overlap-coalesced", "bytes=30-39,0-10,5-20,21-25", [(0, 25), (30, 39)]),
    ("unsatisfiable-dropped", "bytes=0-1,200-300", [(0, 1)]),
    ("all-unsatisfiable", "bytes=100-", []),
    ("suffix-zero-unsatisfiable", "bytes=-0", []),
    ("other-unit-ignored", "items=0-1", None),
    ("no-equals-ignored", "bytes", None),
    ("last-before-first-invalid", "bytes=5-1", None),
    ("dash-only-invalid", "bytes=-", None),
    ("sign-invalid", "bytes=+1-2", None),
    ("non-ascii-digit-invalid", "bytes=\u00b2-3", None),
    ("garbage-invalid", "bytes=a-b", None),
    ("too-many-ranges-ignored", "bytes=" + ",".join(f"{i}-{i}" for i in range(MAX_RANGES + 1)), None),
    ("max-ranges-allowed", "bytes=" + ",".join(f"{2 * i}-{2 * i}" for i in range(MAX_RANGES)),
     [(2 * i, 2 * i) for i in range(MAX_RANGES)]),
]


@pytest.mark.parametrize("value,expected", [v[1:] for v in RANGE_VECTORS], ids=[v[0] for v in RANGE_VECTORS])
def test_parse_range(value, expected):
    assert parse_range(value, SIZE) == expected


def test_ranges_of_an_empty_file_are_ignored():
    assert parse_range("bytes=0-", 0) is None
    assert parse_range("bytes=-1", 0) is None


ETAG = '"64-abc"'
MTIME = 1_600_000_000
NOW = MTIME + 3600
LM = http_date(MTIME)
BEFORE = http_date(MTIME - 10)
AFTER = http_date(MTIME + 10)

PRECONDITION_VECTORS = [
    ("none", "GET", [], 0),
    ("inm-match", "GET", [("if-none-match", ETAG)], 304),
    ("inm-weak-match-is-enough-for-get", "GET", [("if-none-match", 'W/"64-abc"')], 304),
    ("inm-in-a-list", "GET", [("if-none-match", '"x", "64-abc"')], 304),
    ("inm-over-two-lines", "GET", [("if-none-match", '"x"'), ("if-none-match", ETAG)], 304),
    ("inm-star", "GET", [("if-none-match", "*")], 304),
    ("inm-mismatch", "GET", [("if-none-match", '"other"')], 0),
    ("inm-head", "HEAD", [("if-none-match", ETAG)], 304),
    ("inm-match-on-unsafe-method-is-412", "POST", [("if-none-match", ETAG)], 412),
    ("ims-equal", "GET", [("if-modified-since", LM)], 304),
    ("ims-later", "GET", [("if-modified-since", AFTER)], 304),
    ("ims-earlier", "GET", [("if-modified-since", BEFORE)], 0),
    ("ims-invalid-ignored", "GET", [("if-modified-since", "yesterday")], 0),
    ("ims-in-the-future-ignored", "GET", [("if-modified-since", http_date(NOW + 100))], 0),
    ("ims-ignored-when-inm-present", "GET", [("if-none-match", '"other"'), ("if-modified-since", LM)], 0),
    ("ims-ignored-for-post", "POST", [("if-modified-since", LM)], 0),
    ("if-match-match", "GET", [("if-match", ETAG)], 0),
    ("if-match-star", "GET", [("if-match", "*")], 0),
    ("if-match-mismatch", "GET", [("if-match", '"other"')], 412),
    ("if-match-weak-never-matches", "GET", [("if-match", 'W/"64-abc"')], 412),
    ("ius-after-mtime", "GET", [("if-unmodified-since", AFTER)], 0),
    ("ius-before-mtime", "GET", [("if-unmodified-since", BEFORE)], 412),
    ("ius-ignored-when-if-match-present", "GET", [("if-match", ETAG), ("if-unmodified-since", BEFORE)], 0),
    ("ius-invalid-ignored", "GET", [("if-unmodified-since", "garbage")], 0),
    ("if-match-checked-before-inm", "GET", [("if-match", '"other"'), ("if-none-match", ETAG)], 412),
]


@pytest.mark.parametrize("method,fields,expected", [v[1:] for v in PRECONDITION_VECTORS],
                         ids=[v[0] for v in PRECONDITION_VECTORS])
def test_evaluate_preconditions(method, fields, expected):
    assert evaluate_preconditions(Headers(items=fields), method, ETAG, MTIME, NOW) == expected


def test_http_dates_in_all_three_formats_and_invalid_ones():
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777
    assert parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == 784111777
    assert parse_http_date("Sun Nov  6 08:49:37 1994") == 784111777
    for bad in ("", "garbage", "Sun, 99 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:49:37 GMT"):
        assert parse_http_date(bad) is None, bad
    assert parse_http_date(http_date(MTIME)) == MTIME


def test_etag_is_strong_quoted_and_changes_with_mtime_and_coding(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    os.utime(path, ns=(1, 1_000_000_001))
    first = make_etag(os.stat(path))
    os.utime(path, ns=(1, 1_000_000_002))  # same size, same second, new content
    second = make_etag(os.stat(path))
    assert first.startswith('"') and first.endswith('"') and first != second
    assert make_etag(os.stat(path), "br") == second[:-1] + '-br"'


@pytest.mark.parametrize("name,expected", [
    ("index.html", "text/html; charset=utf-8"),
    ("style.css", "text/css; charset=utf-8"),
    ("app.js", "text/javascript; charset=utf-8"),
    ("data.json", "application/json; charset=utf-8"),
    ("logo.svg", "image/svg+xml; charset=utf-8"),
    ("photo.png", "image/png"),
    ("font.woff2", "font/woff2"),
    ("module.wasm", "application/wasm"),
    ("archive.tar.gz", "application/gzip"),
    ("no-extension", "application/octet-stream"),
])
def test_guess_type(name, expected):
    assert guess_type(name) == expected


@pytest.mark.parametrize("filename", ["report.pdf", "rapport été.pdf", 'a "quoted"\\name.txt',
                                      "数据.csv", "100%.txt"])
def test_content_disposition_round_trips_through_an_rfc6266_parser(filename):
    value = content_disposition(filename)
    assert value.isascii()
    # The stdlib parser (RFC 2231) reads the ASCII fallback; a UA prefers filename* (RFC 6266 §4.3).
    msg = email.message.EmailMessage(policy=email.policy.HTTP)
    msg["Content-Disposition"] = value
    assert msg.get_content_disposition() == "attachment"
    fallback = msg.get_filename()
    assert fallback.isascii() and '"' not in fallback and "\\" not in fallback
    if "filename*=" in value:
        encoded = value.split("filename*=UTF-8''", 1)[1]
        assert all(c.isalnum() or c in "!#$&+-.^_`|~%" for c in encoded)
        assert unquote(encoded) == filename
    else:
        assert fallback == filename


@pytest.mark.parametrize("relative,expected", [
    ("a/b.txt", ["a", "b.txt"]),
    ("", []),
    ("./a//b/", ["a", "b"]),
    ("..", None),
    ("a/../b", None),
    ("a\\..\\b", None),
    ("a\x00.txt", None),
    ("...", ["..."]),
    ("..a", ["..a"]),
])
def test_path_segments(relative, expected):
    assert _segments(relative) == expected


def test_containment_is_by_directory_not_string_prefix(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root2").mkdir()
    static = StaticFiles(tmp_path / "root")
    assert static._contain(str(tmp_path / "root" / "x")) is not None
    assert static._contain(str(tmp_path / "root2" / "x")) is None
    assert static._contain(str(tmp_path / "root")) is not None
    assert static._contain(str(tmp_path)) is None


def test_static_files_arguments_are_checked(tmp_path):
    with pytest.raises(NotADirectoryError):
        StaticFiles(tmp_path / "missing")
    with pytest.raises(ValueError):
        StaticFiles(tmp_path, index="../x")
    with pytest.raises(ValueError):
        StaticFiles(tmp_path, chunk_bytes=0)
