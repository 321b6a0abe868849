"""Client multipart part headers carry no control byte but HTAB, DEL included (RFC 9110 §5.5):
the ValueError names the header and the byte.  Names must be tokens (RFC 9110 §5.1)."""
from __future__ import annotations

import pytest

from cyserve.client.multipart import encode_multipart


@pytest.mark.parametrize("filename, content_type, extra, header, byte", [
    ("a.txt", "text/plain\x01", {}, "Content-Type", "0x01"),
    ("a.txt", "text/plain", {"X-Note": "a\x7fb"}, "X-Note", "0x7f"),
    ("a.txt", "text/plain", {"X-Note": "bell\x07"}, "X-Note", "0x07"),
    ("a.txt", "text/plain", {"X-Note": "esc\x1b[0m"}, "X-Note", "0x1b"),
    ("a\x00.txt", "text/plain", {}, "Content-Disposition", "0x00"),
    ("a\x0b.txt", "text/plain", {}, "Content-Disposition", "0x0b"),
], ids=["soh-in-content-type", "del-in-extra-value", "bel-in-extra-value", "esc-in-extra-value",
        "nul-in-filename", "vt-in-filename"])
def test_a_control_byte_in_a_part_header_value_is_refused_by_name_and_byte(
        filename, content_type, extra, header, byte):
    with pytest.raises(ValueError) as caught:
        encode_multipart(None, {"f": (filename, b"data", content_type, extra)})
    assert repr(header) in str(caught.value) and byte in str(caught.value)


@pytest.mark.parametrize("name", ["X-Bad\tName", "X Bad", "X-Bad\x7f", "X:Bad", ""],
                         ids=["htab", "space", "del", "colon", "empty"])
def test_a_part_header_name_that_is_not_a_token_is_refused(name):
    with pytest.raises(ValueError, match="not a token"):
        encode_multipart(None, {"f": ("a.txt", b"data", "text/plain", {name: "v"})})


def test_a_control_byte_in_a_plain_field_name_is_refused():
    with pytest.raises(ValueError, match="Content-Disposition.*0x01"):
        encode_multipart({"a\x01": "v"}, None)


def test_htab_and_obs_text_in_part_header_values_are_written():
    content = encode_multipart(None, {"f": ("caf\u00e9.txt", b"data", "text/plain",
                                            {"X-Note": "a\tb \u00e9"})})
    assert 'filename="caf\u00e9.txt"'.encode() in content.body
    assert "X-Note: a\tb \u00e9\r\n".encode() in content.body
