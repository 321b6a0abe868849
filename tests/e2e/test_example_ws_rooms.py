"""examples/ws_rooms.py: tokens and origins checked before the upgrade, presence, relaying to one
peer and to the room, bad messages answered without dropping the connection.  The peers are the
`websockets` library's client (a WebSocket stack nobody here wrote)."""
from __future__ import annotations

import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support import fetch, load_example, serving


async def recv(ws) -> dict:
    return json.loads(await ws.recv())


def test_rooms_relay_and_presence(run):
    async def main():
        example = load_example("ws_rooms")
        async with serving(example.app) as server:
            base = f"ws://127.0.0.1:{server.port}/rooms/lobby"
            tokens = {}
            for name in ("alice", "bob", "carol"):
                reply = await fetch(server.port, "GET", f"/token/{name}")
                tokens[name] = json.loads(reply.body)["token"]

            with pytest.raises(InvalidStatus) as refused:  # no token: never upgraded
                async with connect(base):
                    pass
            assert refused.value.response.status_code == 401
            with pytest.raises(InvalidStatus) as forged:
                async with connect(base + "?token=alice." + "0" * 64):
                    pass
            assert forged.value.response.status_code == 401

            async with connect(f"{base}?token={tokens['alice']}") as alice:
                welcome = await recv(alice)
                assert welcome["type"] == "welcome" and welcome["peers"] == []
                alice_id = welcome["id"]
                async with connect(f"{base}?token={tokens['bob']}") as bob:
                    bob_welcome = await recv(bob)
                    assert bob_welcome["peers"] == [{"id": alice_id, "name": "alice"}]
                    bob_id = bob_welcome["id"]
                    assert await recv(alice) == {"type": "join", "id": bob_id, "name": "bob"}

                    await alice.send(json.dumps({"type": "offer", "to": bob_id, "data": {"sdp": "v=0"}}))
                    assert await recv(bob) == {"type": "offer", "from": alice_id, "data": {"sdp": "v=0"}}

                    async with connect(f"{base}?token={tokens['carol']}") as carol:
                        carol_id = (await recv(carol))["id"]
                        assert (await recv(alice))["id"] == carol_id
                        assert (await recv(bob))["id"] == carol_id
                        await carol.send(json.dumps({"type": "candidate", "data": "c1"}))  # the room
                        for peer in (alice, bob):
                            assert await recv(peer) == {"type": "candidate", "from": carol_id, "data": "c1"}

                    for peer in (alice, bob):
                        assert await recv(peer) == {"type": "leave", "id": carol_id}
                    await bob.send("not json")
                    assert (await recv(bob))["type"] == "error"
                    await bob.send(json.dumps({"type": "answer", "to": "nobody"}))
                    assert "nobody" in (await recv(bob))["error"]
                    await bob.send(json.dumps({"type": "bye"}))
                    assert "unknown type" in (await recv(bob))["error"]
                assert await recv(alice) == {"type": "leave", "id": bob_id}
            assert example.rooms == {}
    run(main)


def test_rooms_refuse_a_foreign_origin_before_the_upgrade(run, monkeypatch):
    async def main():
        example = load_example("ws_rooms")
        monkeypatch.setattr(example, "ALLOWED_ORIGINS", {"https://example.org"})
        token = example.token_for("dora")
        async with serving(example.app) as server:
            url = f"ws://127.0.0.1:{server.port}/rooms/r?token={token}"
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url, origin="https://evil.example"):
                    pass
            assert refused.value.response.status_code == 403
            async with connect(url, origin="https://example.org") as ws:
                assert (await recv(ws))["type"] == "welcome"
    run(main)
