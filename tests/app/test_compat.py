"""Blazeio's Deliver and Areion's create_*_response spellings build correct responses."""
from __future__ import annotations

import pytest

from cyserve import App
from cyserve.compat import (
    Deliver,
    create_html_response,
    create_json_response,
    create_redirect_response,
    create_text_response,
    create_xml_response,
)
from tests.support import RawClient, serving


def test_deliver_text_json_and_status_headers():
    text = Deliver.text("hi", 201, {"X-A": "1"})
    assert (text.body, text.status, text.content_type) == (b"hi", 201, "text/plain; charset=utf-8")
    assert ("X-A", "1") in text.headers
    data = Deliver.json({"a": [1, 2]})
    assert data.body == b'{"a":[1,2]}' and data.content_type == "application/json"
    indented = Deliver.json({"a": 1}, indent=2)
    assert indented.body == b'{\n  "a": 1\n}'


@pytest.mark.parametrize("attribute, media_type", [
    ("text_html", "text/html; charset=utf-8"),
    ("application_octet_stream", "application/octet-stream"),
    ("application_x_www_form_urlencoded", "application/x-www-form-urlencoded"),
    ("image_svg_xml", "image/svg+xml"),
    ("application_ld_json", "application/ld+json"),
    ("application_vnd_api_json", "application/vnd.api+json"),
    ("application_vnd_ms_excel", "application/vnd.ms-excel"),
    ("text_csv", "text/csv; charset=utf-8"),
])
def test_deliver_attribute_names_a_content_type(attribute, media_type):
    assert getattr(Deliver, attribute)("x").content_type == media_type


def test_deliver_path_redirects_instead_of_sending_200():
    # Blazeio's Deliver(path=...) sent 200 with a Location (its status test never held).
    response = Deliver.text("moved", path="/new")
    assert response.status == 302 and ("Location", "/new") in response.headers
    assert Deliver.text("gone", 301, path="/elsewhere").status == 301


def test_deliver_rejects_bad_names_and_arguments():
    with pytest.raises(AttributeError):
        Deliver.nounderscore("x")
    with pytest.raises(TypeError):
        Deliver.text()
    with pytest.raises(TypeError):
        Deliver.text("x", bogus=1)


def test_areion_helpers():
    assert create_json_response({"k": "v"}, 202).body == b'{"k":"v"}'
    assert create_text_response("t").content_type == "text/plain; charset=utf-8"
    assert create_html_response("<b>x</b>").content_type == "text/html; charset=utf-8"
    assert create_xml_response("<a/>").content_type == "application/xml; charset=utf-8"
    redirect = create_redirect_response("/to")
    assert redirect.status == 301 and ("Location", "/to") in redirect.headers
    with pytest.raises(ValueError):
        create_redirect_response("/to", 200)
    with pytest.raises(ValueError):
        create_redirect_response("/to\r\nSet-Cookie: x=1")


def test_deliver_with_the_request_first_over_a_real_socket(run):
    async def main():
        app = App()

        @app.get("/d")
        async def blazeio_style(r):
            return Deliver.text_html(r, "<p>ok</p>")

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("GET", "/d")
            assert reply.body == b"<p>ok</p>" and reply.headers["content-type"] == "text/html; charset=utf-8"
            await client.close()
    run(main)
