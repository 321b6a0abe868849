"""Client multipart: caller-supplied part headers can't inject lines into the part head."""
from __future__ import annotations

import pytest

from cyserve.client.multipart import encode_multipart


@pytest.mark.parametrize("content_type, extra", [
    ("text/plain\r\nX-Injected: 1", {}),
    ("text/plain", {"X-Note": "a\r\nX-Injected: 1"}),
    ("text/plain", {"X-Bad\nName": "v"}),
    ("text/plain\x00", {}),
], ids=["crlf-in-content-type", "crlf-in-extra-value", "lf-in-extra-name", "nul-in-content-type"])
def test_part_headers_with_cr_lf_or_nul_are_refused(content_type, extra):
    with pytest.raises(ValueError):
        encode_multipart(None, {"f": ("a.txt", b"data", content_type, extra)})


def test_ordinary_part_headers_are_written():
    content = encode_multipart(None, {"f": ("a.txt", b"data", "text/plain", {"X-Note": "ok"})})
    assert b"Content-Type: text/plain\r\nX-Note: ok\r\n\r\ndata" in content.body
