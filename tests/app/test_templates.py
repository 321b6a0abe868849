"""Jinja2 templates: async rendering, autoescape, url_for, and the message when Jinja2 is missing."""
from __future__ import annotations

import sys

import pytest

from cyserve import App, Templates
from tests.support import RawClient, serving

pytest.importorskip("jinja2")


@pytest.fixture
def template_dir(tmp_path):
    (tmp_path / "hello.html").write_text(
        "<h1>Hello {{ name }}</h1><a href=\"{{ url_for('user', id=7) }}\">me</a>")
    (tmp_path / "status.html").write_text("{{ status }}")
    return tmp_path


def test_render_escapes_and_links(run, template_dir):
    async def main():
        app = App()
        templates = app.templates(str(template_dir))

        @app.get("/hello")
        async def hello(request):
            return await templates.render("hello.html", name=request.query.get("name"))

        @app.get("/users/{id:int}", name="user")
        async def user(request):
            return "user"

        @app.get("/status")
        async def status(request):
            return await templates.render("status.html", {"status": "ctx-status"}, status=201,
                                          headers={"X-T": "1"})

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("GET", "/hello?name=%3Cscript%3E")
            assert reply.headers["content-type"] == "text/html; charset=utf-8"
            assert reply.body == b'<h1>Hello &lt;script&gt;</h1><a href="/users/7">me</a>'
            made = await client.request("GET", "/status")
            assert made.status == 201 and made.body == b"ctx-status" and made.headers["x-t"] == "1"
            await client.close()
    run(main)


def test_render_text_and_environment(run, template_dir):
    templates = Templates(str(template_dir), autoescape=False)
    templates.env.globals["url_for"] = lambda name, **kw: "/x"
    assert templates.env.is_async
    text = run(lambda: templates.render_text("hello.html", name="<b>"))
    assert text == '<h1>Hello <b></h1><a href="/x">me</a>'


def test_missing_jinja2_gives_an_install_hint(monkeypatch, template_dir):
    monkeypatch.setitem(sys.modules, "jinja2", None)
    with pytest.raises(ImportError, match=r"pip install 'cyserve\[templates\]'"):
        Templates(str(template_dir))
