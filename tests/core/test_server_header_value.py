"""The Server header value (``App(server_header=...)``, ``ServerConfig.server_header``) is checked
as every field value the writer sends (RFC 9110 §5.5): no control byte but HTAB, and no DEL;
obs-text is allowed.  The check is the head writer's, made once per connection."""
from __future__ import annotations

import pytest

from cyserve._core.http.serialise import HeadWriter


@pytest.mark.parametrize("name, byte", [
    ("cy\rserve", "0x0d"), ("cy\nserve", "0x0a"), ("cy\x00serve", "0x00"), ("cy\x01serve", "0x01"),
    ("cy\x1bserve", "0x1b"), ("cy\x1fserve", "0x1f"), ("cy\x7fserve", "0x7f"),
], ids=["cr", "lf", "nul", "soh", "esc", "unit-separator", "del"])
def test_a_server_name_with_a_control_byte_is_refused_naming_the_header_and_byte(name, byte):
    with pytest.raises(ValueError) as caught:
        HeadWriter(name)
    assert "'Server'" in str(caught.value) and byte in str(caught.value)


@pytest.mark.parametrize("name", ["cyserve/0.1 (linux)", "cy\tserve", "caf\u00e9"],
                         ids=["product-and-comment", "htab", "obs-text"])
def test_a_server_name_without_controls_is_written(name):
    head = HeadWriter(name).serialise(200, None, None, 0)
    assert b"\r\nServer: " + name.encode("latin-1") + b"\r\n" in head


def test_an_app_with_a_control_byte_in_its_server_header_is_refused_when_made() -> None:
    from cyserve import App

    with pytest.raises(ValueError, match="RFC 9110"):
        App(server_header="cy\x7fserve")
    with pytest.raises(ValueError, match="RFC 9110"):
        App(server_header="cy\nserve")
    assert App(server_header="cy\tserve \xe9").config.server_header == "cy\tserve \xe9"
