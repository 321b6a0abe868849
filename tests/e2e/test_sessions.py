"""Signed cookie sessions over real sockets: round trip, attributes, rotation, tampering, expiry,
the size limit, and what a request that never touches its session pays (nothing on the wire)."""
from __future__ import annotations

import base64
import json
import time

import pytest

from cyserve import App, Sessions
from tests.support import RawClient, Reply, serving

NEW_KEY = "n" * 32
OLD_KEY = "o" * 32


def set_cookies(reply: Reply) -> list[str]:
    return [value for name, value in reply.raw_headers if name.lower() == "set-cookie"]


def cookie_value(reply: Reply, name: str = "session") -> str:
    (field,) = [c for c in set_cookies(reply) if c.startswith(name + "=")]
    return field.split(";", 1)[0].split("=", 1)[1]


def make_app(sessions: Sessions) -> App:
    app = App()
    app.use(sessions)

    @app.post("/login/{user}")
    async def login(request, user: str):
        session = request.state["session"]
        session.clear()  # a new login starts from nothing (no fixation of a planted session)
        session["user"] = user
        session["cart"] = []
        return "in"

    @app.get("/me")
    async def me(request):
        assert request.session is request.state["session"]  # Starlette's spelling, the same object
        return dict(request.session)

    @app.post("/cart/{item}")
    async def add(request, item: str):
        session = request.state["session"]
        session["cart"].append(item)  # in place: the mapping cannot see it
        session.modified = True
        return session["cart"]

    @app.post("/logout")
    async def logout(request):
        request.state["session"].clear()
        return "out"

    @app.post("/big")
    async def big(request):
        request.state["session"]["blob"] = "x" * 5000
        return "too big"

    @app.get("/plain")
    async def plain(request):
        return "no session here"

    return app


async def get_me(client: RawClient, cookie: str | None) -> Reply:
    headers = [("Cookie", f"session={cookie}")] if cookie is not None else []
    return await client.request("GET", "/me", headers)


def test_session_round_trip_with_default_cookie_attributes(run):
    async def main():
        async with serving(make_app(Sessions([NEW_KEY]))) as server:
            client = await RawClient.open(server.port)
            login = await client.request("POST", "/login/ada")
            (field,) = set_cookies(login)
            name_value, *attributes = field.split("; ")
            assert name_value.startswith("session=")
            assert attributes == ["Max-Age=1209600", "Path=/", "Secure", "HttpOnly", "SameSite=Lax"]
            assert login.headers["vary"] == "Cookie"
            cookie = cookie_value(login)

            me = await get_me(client, cookie)
            assert json.loads(me.body) == {"user": "ada", "cart": []}
            assert set_cookies(me) == []  # read, not changed: not re-issued
            assert me.headers["vary"] == "Cookie"

            added = await client.request("POST", "/cart/tea", [("Cookie", f"session={cookie}")])
            assert json.loads(added.body) == ["tea"]
            me = await get_me(client, cookie_value(added))
            assert json.loads(me.body) == {"user": "ada", "cart": ["tea"]}
            await client.close()
    run(main)


def test_request_session_without_the_middleware_says_what_is_missing(run):
    async def main():
        app = App(debug=True)  # the 500 page shows the error's message
        seen = []

        @app.get("/")
        async def home(request):
            try:
                request.session
            except RuntimeError as exc:
                seen.append(str(exc))
                raise
            return "unreachable"

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("GET", "/")
            await client.close()
        assert reply.status == 500
        assert seen == ["request.session needs the Sessions middleware on this route: "
                        "app.use(Sessions([key]))"]
    run(main)


def test_a_request_that_never_touches_the_session_gets_no_cookie_and_no_vary(run):
    async def main():
        async with serving(make_app(Sessions([NEW_KEY]))) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("GET", "/plain", [("Cookie", "session=garbage")])
            assert reply.status == 200 and set_cookies(reply) == [] and "vary" not in reply.headers
            await client.close()
    run(main)


def test_clearing_the_session_deletes_the_cookie(run):
    async def main():
        async with serving(make_app(Sessions([NEW_KEY]))) as server:
            client = await RawClient.open(server.port)
            cookie = cookie_value(await client.request("POST", "/login/ada"))
            out = await client.request("POST", "/logout", [("Cookie", f"session={cookie}")])
            (field,) = set_cookies(out)
            assert field.startswith("session=; ") and "Max-Age=0" in field and "Path=/" in field
            # Without a cookie there is nothing to delete.
            assert set_cookies(await client.request("POST", "/logout")) == []
            await client.close()
    run(main)


def test_key_rotation_old_key_verifies_new_key_signs(run):
    async def main():
        async with serving(make_app(Sessions([OLD_KEY]))) as server:
            client = await RawClient.open(server.port)
            old_cookie = cookie_value(await client.request("POST", "/login/ada"))
            await client.close()
        rotated = Sessions([NEW_KEY, OLD_KEY])
        async with serving(make_app(rotated)) as server:
            client = await RawClient.open(server.port)
            me = await get_me(client, old_cookie)
            assert json.loads(me.body)["user"] == "ada"  # the old key still verifies
            added = await client.request("POST", "/cart/tea", [("Cookie", f"session={old_cookie}")])
            new_cookie = cookie_value(added)
            await client.close()
        # The re-issued cookie is signed with the first key: the new key alone verifies it ...
        assert Sessions([NEW_KEY]).decode(new_cookie)["cart"] == ["tea"]
        assert Sessions([OLD_KEY]).decode(new_cookie) == {}
        # ... and once the old key is dropped, its cookies are empty sessions.
        async with serving(make_app(Sessions([NEW_KEY]))) as server:
            client = await RawClient.open(server.port)
            assert json.loads((await get_me(client, old_cookie)).body) == {}
            assert json.loads((await get_me(client, new_cookie)).body)["user"] == "ada"
            await client.close()
    run(main)


def forged_cookies(sessions: Sessions, good: str) -> dict[str, str]:
    payload, timestamp, signature = good.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    admin = base64.urlsafe_b64encode(json.dumps({**data, "user": "root"}).encode()).rstrip(b"=")
    # The first character: all six of its bits are signature bits (the last one's low bits can be
    # base64 padding, so changing it may decode to the same signature).
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return {
        "payload-changed": f"{admin.decode()}.{timestamp}.{signature}",
        "signature-flipped": f"{payload}.{timestamp}.{flipped}",
        "unsigned": payload,
        "signature-dropped": f"{payload}.{timestamp}",
        "other-key": Sessions(["x" * 32]).encode(data),
        "signed-non-object": sessions.signer.sign(
            base64.urlsafe_b64encode(b"[1,2]").rstrip(b"=")).decode(),
        "signed-not-json": sessions.signer.sign(b"bm90IGpzb24").decode(),
        "signed-not-base64": sessions.signer.sign(b"@@@").decode(),
        "garbage": "%%%;;",
        "non-ascii": "caf%C3%A9.x.y",
        "empty-parts": "..",
    }


def test_tampered_or_unsigned_cookies_are_empty_sessions_never_errors(run):
    sessions = Sessions([NEW_KEY])

    async def main():
        async with serving(make_app(sessions)) as server:
            client = await RawClient.open(server.port)
            good = cookie_value(await client.request("POST", "/login/ada"))
            for label, cookie in forged_cookies(sessions, good).items():
                reply = await get_me(client, cookie)
                assert (reply.status, json.loads(reply.body)) == (200, {}), label
            assert json.loads((await get_me(client, good)).body)["user"] == "ada"
            await client.close()
    run(main)


def test_expiry_is_enforced_from_the_signed_timestamp(run):
    sessions = Sessions([NEW_KEY], max_age_s=60)
    now = int(time.time())
    sessions.signer.get_timestamp = lambda: now - 61  # signed 61 s ago
    expired = sessions.encode({"user": "ada"})
    sessions.signer.get_timestamp = lambda: now - 50
    fresh = sessions.encode({"user": "ada"})
    sessions.signer.get_timestamp = lambda: now + 3600
    future = sessions.encode({"user": "ada"})
    del sessions.signer.get_timestamp  # the real clock again

    async def main():
        async with serving(make_app(sessions)) as server:
            client = await RawClient.open(server.port)
            assert json.loads((await get_me(client, expired)).body) == {}
            assert json.loads((await get_me(client, future)).body) == {}
            assert json.loads((await get_me(client, fresh)).body) == {"user": "ada"}
            await client.close()
    run(main)


def test_a_session_past_the_cookie_size_limit_is_refused_not_truncated(run):
    async def main():
        async with serving(make_app(Sessions([NEW_KEY]))) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("POST", "/big")
            assert reply.status == 500 and set_cookies(reply) == []
            await client.close()
    run(main)
    with pytest.raises(ValueError, match=r"past the 4096 .*RFC 6265"):
        Sessions([NEW_KEY]).set_cookie_value({"blob": "x" * 5000})
    field = Sessions([NEW_KEY]).set_cookie_value({"blob": "x" * 2000})
    assert len(field) <= 4096


def test_cookie_attributes_are_configurable(run):
    sessions = Sessions([NEW_KEY], cookie_name="sid", secure=False, samesite="strict",
                        path="/app", domain="example.test", max_age_s=600)

    async def main():
        app = App()
        app.use(sessions)

        @app.post("/app/login")
        async def login(request):
            request.state["session"]["user"] = "ada"
            return "in"

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            (field,) = set_cookies(await client.request("POST", "/app/login"))
            assert field.split("; ")[1:] == ["Max-Age=600", "Domain=example.test", "Path=/app",
                                             "HttpOnly", "SameSite=Strict"]
            await client.close()
    run(main)


def test_sessions_refuse_weak_or_misconfigured_setups():
    with pytest.raises(TypeError):
        Sessions(NEW_KEY)  # a key, not a list of keys
    with pytest.raises(ValueError):
        Sessions([])
    with pytest.raises(ValueError, match="16 bytes"):
        Sessions(["short"])
    with pytest.raises(ValueError):
        Sessions([NEW_KEY], samesite="none", secure=False)
    with pytest.raises(ValueError):
        Sessions([NEW_KEY], max_age_s=0)
    with pytest.raises(TypeError, match="JSON-serialisable"):
        Sessions([NEW_KEY]).encode({"s": {1, 2}})
