"""``TestClient.push()``: a push client to the app's hub, in the sync and async forms, over the
TCP listener and the WebSocket endpoint (the real hub and role, on 127.0.0.1)."""
from __future__ import annotations

import asyncio

import pytest

from cyserve import App
from cyserve.errors import PushCallError, PushRefused
from cyserve.push import Gap, Hub, Push, PushDenied
from cyserve.testing import TestClient


def make_app(*, port: int | None = 0, websocket: str | None = "/push") -> tuple[App, Hub]:
    app = App()
    hub = Hub()

    @hub.on_connect
    async def auth(conn: object, credentials: object) -> object:
        if credentials != {"token": "s3cret"}:
            raise PushDenied("bad token")
        return "alice"

    @hub.command("room.join")
    async def join(conn: object, data: dict[str, str]) -> dict[str, object]:
        await hub.join(conn.client_id, "room:" + data["room"])  # type: ignore[attr-defined]
        return {"ok": True, "members": len(await hub.members("room:" + data["room"]))}

    @hub.command("room.say")
    async def say(conn: object, data: dict[str, str]) -> None:
        await hub.publish("room:" + data["room"], {"text": data["text"]})

    app.push(hub, port=port, websocket=websocket)
    return app, hub


@pytest.mark.parametrize("transport", ["tcp", "websocket"])
def test_sync_form(transport: str) -> None:
    app, hub = make_app()
    with TestClient(app) as tc:
        with tc.push({"token": "s3cret"}, transport=transport) as push:
            assert push.client_id and len(push.client_id) == 22
            assert push.call("room.join", {"room": "a"}) == {"ok": True, "members": 1}
            push.call("room.say", {"room": "a", "text": "hi"})
            item = push.receive(timeout_s=5)
            assert isinstance(item, Push)
            assert (item.seq, item.group, item.data) == (1, "room:a", {"text": "hi"})
            with pytest.raises(PushCallError) as failed:
                push.call("no.such")
            assert failed.value.code == "unknown_command"
            with pytest.raises(TimeoutError):
                push.receive(timeout_s=0.05)
        with pytest.raises(PushRefused) as refused:
            with tc.push({"token": "wrong"}, transport=transport):
                pass
        assert refused.value.code == "unauthorized"


@pytest.mark.parametrize("transport", ["tcp", "websocket"])
def test_async_form(transport: str, run: object) -> None:
    app, hub = make_app()

    async def main() -> None:
        async with TestClient(app) as tc:
            async with tc.push({"token": "s3cret"}, transport=transport, auto_ack=False) as push:
                await push.call("room.join", {"room": "b"})
                for n in range(3):
                    await hub.publish("room:b", n)
                got = [await asyncio.wait_for(push.__anext__(), 5) for _ in range(3)]
                assert [(p.seq, p.data) for p in got] == [(1, 0), (2, 1), (3, 2)]
                assert not any(isinstance(p, Gap) for p in got)
                # ack=True resolves when the client acknowledged the push (here: by hand).
                sent = asyncio.ensure_future(hub.send(push.client_id, "direct", ack=True, timeout_s=5))
                direct = await asyncio.wait_for(push.__anext__(), 5)
                assert (direct.seq, direct.group, direct.data, direct.ack_requested) == (4, "", "direct", True)
                assert not sent.done()
                await direct.ack()
                assert await asyncio.wait_for(sent, 5) is True

    run(main)  # type: ignore[operator]


def test_which_hub_and_transport() -> None:
    app, _ = make_app(port=None)
    with TestClient(app) as tc:
        with pytest.raises(RuntimeError, match="no TCP listener"):
            tc.push(transport="tcp")
        with pytest.raises(ValueError, match="transport must be"):
            tc.push(transport="udp")
    bare = App()
    with TestClient(bare) as tc:
        with pytest.raises(RuntimeError, match="serves no push hub"):
            tc.push()
