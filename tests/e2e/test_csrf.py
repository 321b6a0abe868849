"""CSRF over real sockets: the Origin/Referer check, the double-submit token (header, urlencoded
and multipart field), exempt routes, safe methods, sensitive cookies and the token in templates."""
from __future__ import annotations

from urllib.parse import quote

import pytest

from cyserve import CSRF, App, csrf_token
from cyserve.templates import Templates
from tests.support import RawClient, Reply, serving

SELF = "http://127.0.0.1"  # RawClient sends Host: 127.0.0.1, so this is the request's own origin
EVIL = "https://evil.example"


def set_cookies(reply: Reply) -> list[str]:
    return [value for name, value in reply.raw_headers if name.lower() == "set-cookie"]


def make_app(**options) -> App:
    options.setdefault("secure", False)
    app = App()
    app.use(CSRF(**options))

    @app.get("/form")
    async def form(request):
        return csrf_token(request)

    @app.get("/plain")
    async def plain(request):
        return "no token here"

    @app.route("/submit", methods=["POST", "PUT", "PATCH", "DELETE"])
    async def submit(request):
        if request.method == "POST" and request.headers.get("content-type", "").startswith(
                ("application/x-www-form-urlencoded", "multipart/form-data")):
            return "ok " + (await request.form()).get("name", "")  # the form, parsed once
        return "ok"

    @app.post("/hooks/{provider}")
    async def hook(request, provider: str):
        return f"hook {provider}"

    return app


class Browser:
    """A client holding the CSRF cookie and a token from the form page, like a browser tab."""

    def __init__(self, client: RawClient, cookie: str, token: str) -> None:
        self.client, self.cookie, self.token = client, cookie, token

    @classmethod
    async def open(cls, port: int) -> "Browser":
        client = await RawClient.open(port)
        page = await client.request("GET", "/form")
        (field,) = set_cookies(page)
        assert field.startswith("csrf=") and "HttpOnly" not in field and "SameSite=Lax" in field
        assert page.headers["vary"] == "Cookie"
        return cls(client, field.split(";", 1)[0].split("=", 1)[1], page.body.decode())

    async def post(self, path: str = "/submit", *, origin: str | None = SELF,
                   referer: str | None = None, token: str | None = "form", cookie: bool = True,
                   method: str = "POST", extra: list[tuple[str, str]] = ()) -> Reply:
        headers = list(extra)
        if origin is not None:
            headers.append(("Origin", origin))
        if referer is not None:
            headers.append(("Referer", referer))
        if cookie:
            headers.append(("Cookie", f"csrf={self.cookie}"))
        body = b""
        if token == "form":
            headers.append(("Content-Type", "application/x-www-form-urlencoded"))
            body = f"name=ada&csrf_token={quote(self.token)}".encode()
        elif token is not None:
            headers.append(("X-CSRF-Token", token))
        return await self.client.request(method, path, headers, body)


def refused(reply: Reply, reason: str) -> bool:
    body = reply.body
    return reply.status == 403 and body.startswith(b"CSRF check failed: ") and reason.encode() in body


def test_same_origin_form_post_with_the_token_is_accepted(run):
    async def main():
        async with serving(make_app()) as server:
            tab = await Browser.open(server.port)
            assert len(tab.token) == 86 and len(tab.cookie) == 43  # masked token, raw secret
            reply = await tab.post()
            assert (reply.status, reply.body) == (200, b"ok ada")
            assert set_cookies(reply) == []  # the cookie stays as it is
            # The header carries it too, masked or as the cookie's own value (what a script reads).
            assert (await tab.post(token=tab.token)).status == 200
            assert (await tab.post(token=tab.cookie)).status == 200
            # Every masking is valid; the page's token changes per render, the cookie does not.
            page = await tab.client.request("GET", "/form", [("Cookie", f"csrf={tab.cookie}")])
            assert page.body.decode() != tab.token and set_cookies(page) == []
            assert (await tab.post(token=page.body.decode())).status == 200
            await tab.client.close()
    run(main)


def test_multipart_form_field_carries_the_token(run):
    async def main():
        async with serving(make_app()) as server:
            tab = await Browser.open(server.port)
            boundary = "b0undary"
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n"
                    f"{tab.token}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"name\""
                    f"\r\n\r\ngrace\r\n--{boundary}--\r\n").encode()
            headers = [("Origin", SELF), ("Cookie", f"csrf={tab.cookie}"),
                       ("Content-Type", f"multipart/form-data; boundary={boundary}")]
            reply = await tab.client.request("POST", "/submit", headers, body)
            assert (reply.status, reply.body) == (200, b"ok grace")
            without = body.split(b"--" + boundary.encode(), 2)[2]  # the name part only
            reply = await tab.client.request("POST", "/submit", headers,
                                             b"--" + boundary.encode() + without)
            assert refused(reply, "token is missing")
            await tab.client.close()
    run(main)


def test_cross_origin_and_opaque_origins_are_refused(run):
    async def main():
        async with serving(make_app()) as server:
            tab = await Browser.open(server.port)
            assert refused(await tab.post(origin=EVIL), f"Origin {EVIL} is neither this site's "
                           "origin (http://127.0.0.1) nor a trusted one")
            assert refused(await tab.post(origin="null"), "Origin null")
            assert refused(await tab.post(origin="http://127.0.0.1:8080"), "Origin")  # port differs
            assert refused(await tab.post(origin="https://127.0.0.1"), "Origin")  # scheme differs
            assert refused(await tab.post(origin="not a url"), "not an http(s) origin")
            # Origin wins over Referer: a same-site Referer cannot launder a foreign Origin.
            assert refused(await tab.post(origin=EVIL, referer=SELF + "/form"), "Origin")
            await tab.client.close()
    run(main)


def test_referer_is_checked_when_origin_is_absent(run):
    async def main():
        async with serving(make_app()) as server:
            tab = await Browser.open(server.port)
            assert (await tab.post(origin=None, referer=SELF + "/form?x=1")).status == 200
            assert refused(await tab.post(origin=None, referer=EVIL + "/page"),
                           f"Referer {EVIL} is neither")
            # Neither header (no browser sends that on a post): the token still decides.
            assert (await tab.post(origin=None)).status == 200
            assert refused(await tab.post(origin=None, token=None), "token is missing")
            await tab.client.close()
        async with serving(make_app(require_origin=True)) as server:
            tab = await Browser.open(server.port)
            assert refused(await tab.post(origin=None), "no Origin or Referer header")
            await tab.client.close()
    run(main)


def test_trusted_origins_exact_and_wildcard(run):
    async def main():
        app = make_app(trusted_origins=["https://app.example", "https://*.corp.example:8443"])
        async with serving(app) as server:
            tab = await Browser.open(server.port)
            assert (await tab.post(origin="https://app.example")).status == 200
            assert (await tab.post(origin="https://APP.example:443")).status == 200
            assert (await tab.post(origin="https://a.b.corp.example:8443")).status == 200
            assert refused(await tab.post(origin="https://corp.example:8443"), "Origin")
            assert refused(await tab.post(origin="https://a.corp.example"), "Origin")  # port 443
            assert refused(await tab.post(origin="http://app.example"), "Origin")
            assert refused(await tab.post(origin="https://app.example.evil"), "Origin")
            await tab.client.close()
    run(main)


def test_missing_or_wrong_token_or_cookie_is_refused(run):
    async def main():
        async with serving(make_app()) as server:
            tab = await Browser.open(server.port)
            other = await Browser.open(server.port)  # another browser's valid pair
            assert refused(await tab.post(token=None), "token is missing: send it in the "
                           "X-CSRF-Token header or the csrf_token form field")
            assert refused(await tab.post(token=other.token), "does not match the cookie")
            assert refused(await tab.post(token=other.cookie), "does not match the cookie")
            assert refused(await tab.post(token="A" * 86), "does not match")
            assert refused(await tab.post(token="!not base64!"), "does not match")
            assert refused(await tab.post(token="é"), "does not match")
            assert refused(await tab.post(cookie=False), "csrf cookie is missing")
            tab.cookie = "tooshort"
            assert refused(await tab.post(), "csrf cookie is missing or malformed")
            for method in ("PUT", "PATCH", "DELETE"):
                assert refused(await other.post(method=method, token=None), "token is missing")
                assert (await other.post(method=method, token=other.token)).status == 200
            await tab.client.close()
            await other.client.close()
    run(main)


def test_safe_methods_are_untouched_and_get_no_cookie_unless_a_page_asks(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            for method in ("GET", "HEAD", "OPTIONS"):
                reply = await client.request(method, "/plain", [("Origin", EVIL)])
                assert reply.status in (200, 204), method
                assert set_cookies(reply) == [] and "vary" not in reply.headers
            await client.close()
    run(main)


def test_exempt_routes_and_sensitive_cookies(run):
    async def main():
        async with serving(make_app(exempt=["/hooks/{provider}"])) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("POST", "/hooks/stripe", [("Origin", EVIL)], b"{}")
            assert (reply.status, reply.body) == (200, b"hook stripe")
            assert refused(await client.request("POST", "/submit", [("Origin", EVIL)]), "Origin")
            await client.close()
        async with serving(make_app(sensitive_cookies=["session"])) as server:
            client = await RawClient.open(server.port)
            # No session cookie: no ambient authority to abuse, so no check.
            assert (await client.request("POST", "/submit", [("Origin", EVIL)])).status == 200
            reply = await client.request("POST", "/submit", [("Origin", EVIL),
                                                             ("Cookie", "theme=dark; session=abc")])
            assert refused(reply, "Origin")
            await client.close()
    run(main)


def test_secure_default_uses_a_host_prefixed_cookie(run):
    async def main():
        async with serving(make_app(secure=True)) as server:
            client = await RawClient.open(server.port)
            (field,) = set_cookies(await client.request("GET", "/form"))
            assert field.startswith("__Host-csrf=")
            assert field.split("; ")[1:] == ["Max-Age=31536000", "Path=/", "Secure", "SameSite=Lax"]
            await client.close()
    run(main)


def test_templates_get_the_token_from_the_current_request(run):
    jinja2 = pytest.importorskip("jinja2")
    templates = Templates("unused", loader=jinja2.DictLoader({
        "form.html": '<input name="csrf_token" value="{{ csrf_token() }}">'}))
    templates.env.globals["csrf_token"] = csrf_token

    async def main():
        app = make_app()

        @app.get("/page")
        async def page(request):
            return await templates.render("form.html")

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("GET", "/page")
            token = reply.body.decode().split('value="')[1].split('"')[0]
            cookie = set_cookies(reply)[0].split(";", 1)[0].split("=", 1)[1]
            posted = await client.request("POST", "/submit", [
                ("Origin", SELF), ("Cookie", f"csrf={cookie}"), ("X-CSRF-Token", token)])
            assert posted.status == 200
            await client.close()
    run(main)


def test_csrf_refuses_misconfiguration_and_a_token_without_the_middleware():
    with pytest.raises(ValueError):
        CSRF(trusted_origins=["app.example"])  # no scheme
    with pytest.raises(ValueError):
        CSRF(secure=False, samesite="none")

    class Bare:
        state: dict = {}

    with pytest.raises(RuntimeError, match="needs the CSRF middleware"):
        csrf_token(Bare())
