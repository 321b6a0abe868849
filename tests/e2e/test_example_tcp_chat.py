"""examples/tcp_chat.py served for real on 127.0.0.1: rooms, presence, chat over TCP and WebSocket,
pushes from the HTTP endpoints, refusals, a JSON-lines session typed as with ``nc``
(docs/push-protocol.md §14), and the terminal client run as a process of its own."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cyserve.errors import PushCallError, PushRefused
from cyserve.push import Push, PushClient, connect
from tests.support import fetch, load_example, serving

ROOT = Path(__file__).resolve().parents[2]
ADMIN = [("Authorization", "Bearer admin-secret"), ("Content-Type", "application/json")]
STEP_S = 5.0  # the longest any one push, reply or line may take


@pytest.fixture
def chat(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The example module, fresh, with the demo tokens and a push port the kernel picks."""
    monkeypatch.setenv("PUSH_PORT", "0")
    monkeypatch.delenv("CHAT_TOKENS", raising=False)
    monkeypatch.delenv("CHAT_ADMIN_TOKEN", raising=False)
    return load_example("tcp_chat")


def tcp_url(chat: Any) -> str:
    host, port = chat.push.address
    return f"tcp://{host}:{port}"


async def next_push(client: PushClient) -> Push:
    item = await asyncio.wait_for(client.__anext__(), STEP_S)
    assert isinstance(item, Push), item
    return item


async def nothing_more(client: PushClient, quiet_s: float = 0.2) -> None:
    with pytest.raises(asyncio.TimeoutError):
        item = await asyncio.wait_for(client.__anext__(), quiet_s)
        pytest.fail(f"unexpected push {item!r}")


def post(port: int, target: str, body: Any, headers: list[tuple[str, str]] = ADMIN) -> Any:
    return fetch(port, "POST", target, headers, json.dumps(body).encode())


def test_rooms_presence_chat_and_http_pushes(run: Any, chat: Any) -> None:
    """alice on TCP (binary frames), bob on the WebSocket endpoint (text frames), carol on TCP
    JSON lines: joins announced to the others, a message reaching every member with the
    sender's id and name, refusals answered without dropping the connection, a notice to one
    client and an announcement to the room over HTTP, leaving by command and by ending the
    session."""
    async def main() -> None:
        async with serving(chat.app) as server:
            ws_url = f"ws://127.0.0.1:{server.port}/push"
            alice_credentials = {"name": "alice", "token": "alice-secret"}
            bob_credentials = {"name": "bob", "token": "bob-secret"}
            async with connect(tcp_url(chat), alice_credentials) as alice, \
                    connect(ws_url, bob_credentials, framing="json") as bob:
                assert alice.client_id and bob.client_id and alice.client_id != bob.client_id
                joined = await alice.call("chat.join", {"room": "lobby"}, timeout_s=STEP_S)
                assert joined == {"room": "lobby",
                                  "members": [{"id": alice.client_id, "name": "alice"}]}
                joined = await bob.call("chat.join", {"room": "lobby"}, timeout_s=STEP_S)
                assert [m["name"] for m in joined["members"]] == ["alice", "bob"]
                push = await next_push(alice)
                assert (push.seq, push.group) == (1, "room:lobby")
                assert push.data == {"type": "join", "room": "lobby", "id": bob.client_id,
                                     "name": "bob"}
                await nothing_more(bob)  # the joiner is not told of itself

                assert await bob.call("chat.send", {"room": "lobby", "text": "hi all"},
                                      timeout_s=STEP_S) == {"ok": True}
                said = {"type": "message", "room": "lobby", "from": bob.client_id, "name": "bob",
                        "text": "hi all"}
                assert (await next_push(alice)).data == said
                assert (await next_push(bob)).data == said
                who = await alice.call("chat.who", {"room": "lobby"}, timeout_s=STEP_S)
                assert [(m["id"], m["name"]) for m in who["members"]] == [
                    (alice.client_id, "alice"), (bob.client_id, "bob")]

                # Refusals are error replies; the connection stays and the next call works.
                with pytest.raises(PushCallError) as refused:
                    await bob.call("chat.send", {"room": "attic", "text": "x"}, timeout_s=STEP_S)
                assert refused.value.code == "not_member"
                with pytest.raises(PushCallError) as refused:
                    await bob.call("chat.join", {"room": "no spaces"}, timeout_s=STEP_S)
                assert refused.value.code == "bad_request"
                with pytest.raises(PushCallError) as refused:
                    await bob.call("chat.shout", {}, timeout_s=STEP_S)
                assert refused.value.code == "unknown_command"
                assert bob.connected

                # HTTP -> one client (wherever it is connected) and HTTP -> the room.
                reply = await post(server.port, f"/notify/{alice.client_id}", {"text": "psst"})
                assert (reply.status, json.loads(reply.body)) == (200, {"delivered": True})
                notice = await next_push(alice)
                assert (notice.group, notice.data) == ("", {"type": "notice", "text": "psst"})
                await nothing_more(bob)
                reply = await post(server.port, "/notify/" + "A" * 22, {"text": "anyone?"})
                assert reply.status == 404
                reply = await post(server.port, f"/notify/{alice.client_id}", {"text": "x"},
                                   headers=[("Authorization", "Bearer wrong")])
                assert reply.status == 401
                reply = await post(server.port, "/rooms/lobby/announce", {"text": "closing at 6"})
                assert (reply.status, json.loads(reply.body)) == (
                    200, {"room": "lobby", "members": 2})
                announced = {"type": "announce", "room": "lobby", "text": "closing at 6"}
                assert (await next_push(alice)).data == announced
                assert (await next_push(bob)).data == announced

                # carol joins over JSON lines and ends her session: the room hears both.
                async with connect(tcp_url(chat), {"name": "carol", "token": "carol-secret"},
                                   framing="json") as carol:
                    await carol.call("chat.join", {"room": "lobby"}, timeout_s=STEP_S)
                    for member in (alice, bob):
                        assert (await next_push(member)).data["type"] == "join"
                left = {"type": "leave", "room": "lobby", "id": carol.client_id, "name": "carol"}
                assert (await next_push(alice)).data == left
                assert (await next_push(bob)).data == left

                await bob.call("chat.leave", {"room": "lobby"}, timeout_s=STEP_S)
                assert (await next_push(alice)).data == {
                    "type": "leave", "room": "lobby", "id": bob.client_id, "name": "bob"}
                who = await alice.call("chat.who", {"room": "lobby"}, timeout_s=STEP_S)
                assert who["members"] == [{"id": alice.client_id, "name": "alice"}]
                await nothing_more(bob)
            assert chat.names == {}
    run(main)


@pytest.mark.parametrize("credentials", [
    {"name": "alice", "token": "bob-secret"},
    {"name": "mallory", "token": "alice-secret"},
    {"name": "alice"},
    "alice-secret",
    None,
], ids=["another-users-token", "unknown-name", "no-token", "not-an-object", "no-credentials"])
def test_bad_credentials_are_refused_over_tcp_and_websocket(run: Any, chat: Any,
                                                            credentials: Any) -> None:
    async def main() -> None:
        async with serving(chat.app) as server:
            for url in (tcp_url(chat), f"ws://127.0.0.1:{server.port}/push"):
                with pytest.raises(PushRefused) as refused:
                    async with connect(url, credentials, reconnect=False):
                        pass
                assert refused.value.code == "unauthorized"
    run(main)


async def json_line(reader: asyncio.StreamReader) -> dict[str, Any]:
    line = await asyncio.wait_for(reader.readline(), STEP_S)
    assert line.endswith(b"\n"), line
    value = json.loads(line)
    assert isinstance(value, dict)
    return value


def test_a_json_lines_session_as_typed_at_nc(run: Any, chat: Any) -> None:
    """docs/push-protocol.md §14 against the chat: what a person types at ``nc`` (a CR before the
    LF and a blank line included) and the exact lines the server answers."""
    async def main() -> None:
        async with serving(chat.app):
            host, port = chat.push.address
            reader, writer = await asyncio.open_connection(host, port)
            try:
                def typed(line: str) -> None:
                    writer.write(line.encode() + b"\r\n")  # nc -C

                typed('{"t":"hello","name":"cyserve-push/1","data":{"credentials":'
                      '{"name":"alice","token":"alice-secret"}}}')
                welcome = await json_line(reader)
                assert (welcome["t"], welcome["name"]) == ("welcome", "cyserve-push/1")
                data = welcome["data"]
                assert len(data["client_id"]) == 22 and len(data["resume_token"]) == 43
                assert (data["codec"], data["resumed"], data["next_seq"]) == ("json", False, 1)
                me = data["client_id"]

                typed('{"t":"call","id":1,"name":"chat.join","data":{"room":"lobby"}}')
                assert await json_line(reader) == {
                    "t": "reply", "id": 1,
                    "data": {"room": "lobby", "members": [{"id": me, "name": "alice"}]}}

                async with connect(tcp_url(chat), {"name": "bob", "token": "bob-secret"}) as bob:
                    await bob.call("chat.join", {"room": "lobby"}, timeout_s=STEP_S)
                    await bob.call("chat.send", {"room": "lobby", "text": "hello"},
                                   timeout_s=STEP_S)
                    joined = await json_line(reader)
                    assert joined == {"t": "push", "id": 1, "name": "room:lobby",
                                      "data": {"type": "join", "room": "lobby",
                                               "id": bob.client_id, "name": "bob"}}
                    line = await asyncio.wait_for(reader.readline(), STEP_S)
                    # The canonical form (§3.2): compact, keys in the order t, id, name, data.
                    assert line == (b'{"t":"push","id":2,"name":"room:lobby","data":'
                                    b'{"type":"message","room":"lobby","from":"'
                                    + bob.client_id.encode() + b'","name":"bob","text":"hello"}}\n')

                    writer.write(b"\n")  # a blank line: not a frame, just a sign of life (§10)
                    typed('{"t":"call","id":2,"name":"no.such"}')
                    error = await json_line(reader)
                    assert (error["t"], error["id"], error["name"]) == (
                        "error", 2, "unknown_command")
                    typed('{"t":"call","id":3,"name":"chat.send","data":{"room":"lobby",'
                          '"text":"hi bob"}}')
                    # The push is written while the command runs, so it comes before the
                    # reply; the protocol lets them interleave in any order (§7.1).
                    answers = sorted([await json_line(reader), await json_line(reader)],
                                     key=lambda frame: frame["t"])
                    assert answers[0]["t"] == "push" and answers[0]["id"] == 3
                    assert answers[0]["data"]["text"] == "hi bob"
                    assert answers[1] == {"t": "reply", "id": 3, "data": {"ok": True}}
                    own, pushed = await next_push(bob), await next_push(bob)
                    assert (own.seq, own.data["from"], own.data["text"]) == (
                        1, bob.client_id, "hello")
                    assert (pushed.seq, pushed.data["from"], pushed.data["text"]) == (
                        2, me, "hi bob")
                    typed('{"t":"ping","id":9}')
                    pong = await asyncio.wait_for(reader.readline(), STEP_S)
                    assert pong == b'{"t":"pong","id":9}\n'
                    typed('{"t":"close","name":"normal"}')
                    assert await asyncio.wait_for(reader.readline(), STEP_S) == (
                        b'{"t":"close","name":"normal","data":""}\n')
                    assert await asyncio.wait_for(reader.read(), STEP_S) == b""  # then it closes
                    left = await next_push(bob)
                    assert left.data == {"type": "leave", "room": "lobby", "id": me,
                                         "name": "alice"}
            finally:
                writer.close()
                await writer.wait_closed()
    run(main)


def test_a_refused_nc_session_gets_one_line_and_nothing_else(run: Any, chat: Any) -> None:
    async def main() -> None:
        async with serving(chat.app):
            host, port = chat.push.address
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(b'{"t":"hello","name":"cyserve-push/1","data":{"credentials":'
                             b'{"name":"alice","token":"guess"}}}\n')
                everything = await asyncio.wait_for(reader.read(), STEP_S)
                assert everything == (b'{"t":"refuse","name":"unauthorized",'
                                      b'"data":"unknown name or token"}\n')
            finally:
                writer.close()
                await writer.wait_closed()
    run(main)


def test_the_terminal_client_sends_a_typed_line(run: Any, chat: Any) -> None:
    """``python examples/tcp_chat.py client`` as a process: it joins (printing who is there),
    sends the line it reads, ends at end of input (exit 0) and the room sees it come and go."""
    async def main() -> None:
        async with serving(chat.app):
            async with connect(tcp_url(chat), {"name": "alice", "token": "alice-secret"}) as alice:
                await alice.call("chat.join", {"room": "lobby"}, timeout_s=STEP_S)
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, str(ROOT / "examples" / "tcp_chat.py"), "client",
                    "--url", tcp_url(chat), "--name", "carol", "--token", "carol-secret",
                    "--room", "lobby",
                    cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE)
                try:
                    out, err = await asyncio.wait_for(
                        proc.communicate(b"hello from a terminal\n"), 30)
                finally:
                    if proc.returncode is None:
                        proc.kill()
                        await proc.wait()
                assert proc.returncode == 0, err.decode()
                assert out.decode().splitlines()[0] == "joined #lobby: alice, carol"
                joined, said, left = [await next_push(alice) for _ in range(3)]
                assert (joined.data["type"], joined.data["name"]) == ("join", "carol")
                assert (said.data["name"], said.data["text"]) == ("carol", "hello from a terminal")
                assert (left.data["type"], left.data["id"]) == ("leave", joined.data["id"])
    run(main, timeout_s=40)


def test_the_terminal_client_says_when_it_cannot_connect(chat: Any) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "tcp_chat.py"), "client", "--url",
         "tcp://127.0.0.1:1", "--name", "carol", "--token", "x"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert result.stdout.startswith("cannot connect to tcp://127.0.0.1:1"), result.stdout


def test_show_formats_every_push_kind(chat: Any) -> None:
    from cyserve.push import Gap, SessionReset
    show = chat.show
    assert show(Push(1, "room:a", {"type": "message", "room": "a", "from": "x", "name": "bob",
                                   "text": "hi"}, False)) == "[#a] bob: hi"
    assert show(Push(2, "room:a", {"type": "join", "room": "a", "id": "x", "name": "bob"},
                     False)) == "* bob joined #a"
    assert show(Push(3, "room:a", {"type": "leave", "room": "a", "id": "x", "name": "bob"},
                     False)) == "* bob left #a"
    assert show(Push(4, "", {"type": "notice", "text": "psst"}, False)) == "(notice) psst"
    assert show(Gap(5, 7)) == "(missed 3 message(s))"
    assert show(SessionReset("a", "b")).startswith("(reconnected as a new session")
