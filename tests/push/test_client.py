"""The push client (``cyserve.push.client``) against a scripted server (tests/push/client_support.py)
that speaks docs/push-protocol.md with the codec's encoder and server-side decoder: the session
(HELLO/WELCOME, REFUSE), calls, pushes and acks, gaps, reconnect and resume, SessionReset, the
close codes that end the client, heartbeats and the idle timeout, frame limits, TLS and codecs,
over TCP and WebSocket in both framings; then end to end against the real ``Hub`` served by an
App (``app.push``: its TCP listener and WebSocket endpoint).  Every test runs on uvloop and stdlib
asyncio (the ``run`` fixture).
"""
from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any, AsyncIterator, Callable

import pytest

from cyserve._core.push.frames import (
    FLAG_ACK_REQUESTED, FRAMING_WS_TEXT, KIND_ACK, KIND_CALL, KIND_CLOSE, KIND_ERROR, KIND_GAP,
    KIND_PING, KIND_PONG, KIND_PUSH, KIND_REPLY, KIND_WELCOME, VERSION, encode,
)
from cyserve.config import PushLimits
from cyserve import App
from cyserve.errors import PushCallError, PushClosed, PushDenied, PushRefused
from cyserve.push.client import Gap, Push, PushClient, SessionReset, connect
from cyserve.push.hub import Hub
from tests.push.client_support import WIRES, Peer, WsIO, scripted, wire_args
from tests.support import serving

FAST: dict[str, Any] = {"backoff_s": (0.01, 0.05), "connect_timeout_s": 5.0}


async def take(push: PushClient, n: int, timeout_s: float = 5.0) -> list[Any]:
    """The next ``n`` items of the client's iteration."""
    async def go() -> list[Any]:
        items = []
        async for item in push:
            items.append(item)
            if len(items) == n:
                break
        return items
    return await asyncio.wait_for(go(), timeout_s)


async def failure(push: PushClient, timeout_s: float = 5.0) -> BaseException:
    """What iteration raises once the items already received are taken."""
    async def go() -> BaseException:
        try:
            async for _ in push:
                pass
        except (PushClosed, PushRefused) as exc:
            return exc
        raise AssertionError("iteration ended without an error")
    return await asyncio.wait_for(go(), timeout_s)


# ---------------------------------------------------------------------- the session
@pytest.mark.parametrize("wire", WIRES)
def test_hello_welcome_then_close_normal(run: Callable[..., Any], wire: str) -> None:
    transport, framing = wire_args(wire)
    seen: list[Any] = []

    async def script(peer: Peer) -> None:
        hello = await peer.handshake("abc", heartbeat_s=20)
        seen.append(hello)
        close = await peer.expect(KIND_CLOSE)
        seen.append((close.name, close.payload))
        peer.send(KIND_CLOSE, 0, "normal", "")   # §9: the server's answer
        seen.append(await peer.closed())

    async def main() -> None:
        async with scripted(transport, script) as server:
            push = connect(server.url, {"token": "s3cret"}, framing=framing, **FAST)
            assert not push.connected and push.client_id is None
            async with push:
                assert push.connected
                assert push.client_id == "abc"
                assert push.resumed is False
                assert push.welcome is not None and push.welcome["resume_token"] == "token-0"
                assert push.last_seq == 0
            assert not push.connected
            # After close(): iteration ends, calls refuse.
            assert await take(push, 1) == []
            with pytest.raises(PushClosed) as info:
                await push.call("x")
            assert info.value.code == "normal"
            if transport == "ws":
                assert server.subprotocols == [["cyserve-push.1"]]   # §13
    run(main)
    # §6.1: the version, the codec, the credentials; no resume on a first connect.
    assert seen[0] == {"codec": "json", "credentials": {"token": "s3cret"}}
    assert seen[1] == ("normal", "")
    assert seen[2] == []   # nothing after its CLOSE


@pytest.mark.parametrize("wire", ["tcp-binary", "ws-json"])
@pytest.mark.parametrize("code", ["unauthorized", "server_full", "bad_hello"])
def test_first_connect_refused_raises_push_refused(run: Callable[..., Any], wire: str,
                                                   code: str) -> None:
    transport, framing = wire_args(wire)

    async def script(peer: Peer) -> None:
        await peer.refuse(code, "no")

    async def main() -> None:
        async with scripted(transport, script) as server:
            push = connect(server.url, framing=framing, **FAST)
            with pytest.raises(PushRefused) as info:
                async with push:
                    raise AssertionError("connected")
            assert (info.value.code, info.value.text) == (code, "no")
            assert len(server.peers) == 1   # the first connect is one attempt
            assert await take(push, 1) == []
    run(main)


def test_first_connect_to_a_closed_port_raises_oserror(run: Callable[..., Any]) -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        with pytest.raises(OSError):
            async with connect(f"tcp://127.0.0.1:{port}", **FAST):
                raise AssertionError("connected")
    run(main)


def test_welcome_missing_a_key_is_a_protocol_error(run: Callable[..., Any]) -> None:
    seen: list[Any] = []

    async def script(peer: Peer) -> None:
        await peer.expect_hello()
        peer.send(KIND_WELCOME, 0, VERSION, {"client_id": "x"})
        seen.append(await peer.expect(KIND_CLOSE))

    async def main() -> None:
        async with scripted("tcp", script) as server:
            with pytest.raises(PushClosed) as info:
                async with connect(server.url, **FAST):
                    raise AssertionError("connected")
            assert info.value.code == "protocol_error"
    run(main)
    assert seen[0].name == "protocol_error"


# ---------------------------------------------------------------------- calls
@pytest.mark.parametrize("wire", WIRES)
def test_concurrent_calls_are_matched_by_id(run: Callable[..., Any], wire: str) -> None:
    transport, framing = wire_args(wire)
    ids: list[int] = []

    async def script(peer: Peer) -> None:
        await peer.handshake()
        calls = [await peer.expect(KIND_CALL) for _ in range(3)]
        ids.extend(c.id for c in calls)
        # Answered in reverse order (§7.1: replies come in any order).
        for call in reversed(calls):
            arg = call.payload if not peer.binary else __import__("orjson").loads(call.payload)
            if call.name == "fail":
                peer.send(KIND_ERROR, call.id, "handler_error", "it broke")
            else:
                peer.send_data(KIND_REPLY, call.id, "", {"cmd": call.name, "arg": arg})
        again = await peer.expect(KIND_CALL)
        peer.send_data(KIND_REPLY, again.id, "", None)
        await peer.closed()

    async def main() -> None:
        async with scripted(transport, script) as server:
            async with connect(server.url, framing=framing, **FAST) as push:
                results = await asyncio.gather(
                    push.call("a", 1, timeout_s=5), push.call("fail", None, timeout_s=5),
                    push.call("b", [2, "x"], timeout_s=5), return_exceptions=True)
                assert results[0] == {"cmd": "a", "arg": 1}
                assert isinstance(results[1], PushCallError)
                assert (results[1].code, results[1].text) == ("handler_error", "it broke")
                assert results[2] == {"cmd": "b", "arg": [2, "x"]}
                # The connection stays after an ERROR (§7.2).
                assert await push.call("c", timeout_s=5) is None
    run(main)
    assert sorted(ids) == [1, 2, 3]   # request ids from 1 up, none reused


def test_call_timeout_raises_timeout_error_and_late_reply_is_ignored(
        run: Callable[..., Any]) -> None:
    async def script(peer: Peer) -> None:
        await peer.handshake()
        slow = await peer.expect(KIND_CALL)
        nxt = await peer.expect(KIND_CALL)
        peer.send_data(KIND_REPLY, slow.id, "", "late")   # after its caller gave up
        peer.send_data(KIND_REPLY, nxt.id, "", "on time")
        await peer.closed()

    async def main() -> None:
        async with scripted("tcp", script) as server:
            async with connect(server.url, **FAST) as push:
                with pytest.raises(TimeoutError):
                    await push.call("slow", timeout_s=0.1)
                assert await push.call("next", timeout_s=5) == "on time"
                assert push.connected
    run(main)


def test_call_over_the_servers_frame_limit_raises_before_sending(run: Callable[..., Any]) -> None:
    got: list[Any] = []

    async def script(peer: Peer) -> None:
        await peer.handshake(max_frame_bytes=128)
        got.append(await peer.expect(KIND_CALL))
        peer.send_data(KIND_REPLY, got[0].id, "", "ok")
        await peer.closed()

    async def main() -> None:
        async with scripted("tcp", script) as server:
            async with connect(server.url, **FAST) as push:
                with pytest.raises(ValueError, match="max_frame_bytes"):
                    await push.call("big", "x" * 200, timeout_s=5)
                assert await push.call("small", "x", timeout_s=5) == "ok"
    run(main)
    assert got[0].name == "small"


# ---------------------------------------------------------------------- pushes, acks, gaps
@pytest.mark.parametrize("wire", WIRES)
def test_pushes_in_order_and_auto_ack_after_the_next_item_is_asked(
        run: Callable[..., Any], wire: str) -> None:
    transport, framing = wire_args(wire)
    order: list[str] = []

    async def script(peer: Peer) -> None:
        await peer.handshake()
        peer.send_data(KIND_PUSH, 1, "room:a", {"n": 1})
        peer.send_data(KIND_PUSH, 2, "", {"n": 2}, FLAG_ACK_REQUESTED)
        peer.send_data(KIND_PUSH, 3, "room:a", {"n": 3})
        # The client holds push 2; its CALL comes before any ACK.
        first = await peer.recv()
        order.append(f"{first.kind}:{first.name or first.id}")
        peer.send_data(KIND_REPLY, first.id, "", True)
        second = await peer.recv()
        order.append(f"{second.kind}:{second.id}")
        await peer.closed()

    async def main() -> None:
        async with scripted(transport, script) as server:
            async with connect(server.url, framing=framing, **FAST) as push:
                items = await take(push, 2)
                assert items == [Push(1, "room:a", {"n": 1}, False),
                                 Push(2, "", {"n": 2}, True)]
                assert await push.call("mark", timeout_s=5) is True
                items = await take(push, 1)   # asking for item 3 acks item 2 (§8.2)
                assert items == [Push(3, "room:a", {"n": 3}, False)]
                assert push.last_seq == 3
    run(main)
    assert order == [f"{KIND_CALL}:mark", f"{KIND_ACK}:2"]


def test_manual_ack(run: Callable[..., Any]) -> None:
    acks: list[int] = []

    async def script(peer: Peer) -> None:
        await peer.handshake()
        peer.send_data(KIND_PUSH, 1, "", "a", FLAG_ACK_REQUESTED)
        peer.send_data(KIND_PUSH, 2, "", "b", FLAG_ACK_REQUESTED)
        acks.append((await peer.expect(KIND_ACK)).id)
        peer.send_data(KIND_PUSH, 3, "", "c")
        acks.extend(f.id for f in await peer.closed() if f.kind == KIND_ACK)

    async def main() -> None:
        async with scripted("tcp", script) as server:
            async with connect(server.url, auto_ack=False, **FAST) as push:
                one, two = await take(push, 2)    # asking for item 2 acks nothing
                await two.ack()                   # only what the application acks goes
                assert await take(push, 1) == [Push(3, "", "c", False)]
    run(main)
    assert acks == [2]


@pytest.mark.parametrize("wire", ["tcp-binary", "ws-json"])
def test_gap_is_surfaced_in_order(run: Callable[..., Any], wire: str) -> None:
    transport, framing = wire_args(wire)

    async def script(peer: Peer) -> None:
        await peer.handshake()
        peer.send_data(KIND_PUSH, 1, "g", 1)
        peer.send(KIND_GAP, 2, "", 4)
        peer.send_data(KIND_PUSH, 5, "g", 5)
        peer.send(KIND_GAP, 3, "", 5)          # already announced: nothing new
        peer.send_data(KIND_PUSH, 6, "g", 6)
        await peer.closed()

    async def main() -> None:
        async with scripted(transport, script) as server:
            async with connect(server.url, framing=framing, **FAST) as push:
                assert await take(push, 4) == [Push(1, "g", 1, False), Gap(2, 4),
                                               Push(5, "g", 5, False), Push(6, "g", 6, False)]
                assert push.last_seq == 6
    run(main)


def test_a_hole_without_gap_is_a_protocol_error(run: Callable[..., Any]) -> None:
    closes: list[Any] = []

    async def script(peer: Peer) -> None:
        await peer.handshake()
        peer.send_data(KIND_PUSH, 1, "", "one")
        peer.send_data(KIND_PUSH, 3, "", "three")   # §8.1: numbers without holes
        closes.extend(f.name for f in await peer.closed() if f.kind == KIND_CLOSE)

    async def main() -> None:
        async with scripted("tcp", script) as server:
            async with connect(server.url, **FAST) as push:
                assert await take(push, 1) == [Push(1, "", "one", False)]
                error = await failure(push)
                assert isinstance(error, PushClosed) and error.code == "protocol_error"
                assert len(server.peers) == 1   # not reconnected (§9)
    run(main)
    assert closes == ["protocol_error"]


def test_bytes_codec(run: Callable[..., Any]) -> None:
    got: list[Any] = []

    async def script(peer: Peer) -> None:
        hello = await peer.handshake()
        got.append(hello["codec"])
        call = await peer.expect(KIND_CALL)
        got.append(call.payload)
        peer.send(KIND_REPLY, call.id, "", b"\x00\xffreply")
        peer.send(KIND_PUSH, 1, "raw", b"\x01\x02")
        await peer.closed()

    async def main() -> None:
        async with scripted("tcp", script) as server:
            async with connect(server.url, codec="bytes", **FAST) as push:
                assert await push.call("raw", b"\xde\xad", timeout_s=5) == b"\x00\xffreply"
                assert await take(push, 1) == [Push(1, "raw", b"\x01\x02", False)]
    run(main)
    assert got == ["bytes", b"\xde\xad"]


# ---------------------------------------------------------------------- reconnect and resume
@pytest.mark.parametrize("wire", WIRES)
def test_reconnect_resumes_drops_duplicates_and_fails_the_call_in_flight(
        run: Callable[..., Any], wire: str) -> None:
    transport, framing = wire_args(wire)
    hellos: list[dict[str, Any]] = []
    acks: list[int] = []

    async def script(peer: Peer) -> None:
        if peer.index == 0:
            hellos.append(await peer.handshake("sess", token="t0"))
            peer.send_data(KIND_PUSH, 1, "g", "p1")
            peer.send_data(KIND_PUSH, 2, "g", "p2", FLAG_ACK_REQUESTED)
            await peer.expect(KIND_CALL)    # a call the connection's loss leaves unanswered
            peer.drop()
            return
        hellos.append(await peer.handshake("sess", token="t1", resumed=True, next_seq=3))
        peer.send_data(KIND_PUSH, 2, "g", "p2", FLAG_ACK_REQUESTED)   # a duplicate (§8.5)
        peer.send_data(KIND_PUSH, 3, "g", "p3")
        call = await peer.expect(KIND_CALL)
        peer.send_data(KIND_REPLY, call.id, "", "after")
        acks.extend(f.id for f in await peer.closed() if f.kind == KIND_ACK)

    async def main() -> None:
        async with scripted(transport, script) as server:
            async with connect(server.url, {"k": 1}, framing=framing, **FAST) as push:
                assert await take(push, 2) == [Push(1, "g", "p1", False),
                                               Push(2, "g", "p2", True)]
                with pytest.raises(PushClosed) as info:
                    await push.call("lost", timeout_s=5)   # never resent
                assert info.value.code == "going_away"
                # The next call waits for the reconnect and goes on the new connection.
                assert await push.call("again", timeout_s=5) == "after"
                assert push.resumed and push.client_id == "sess"
                assert await take(push, 1) == [Push(3, "g", "p3", False)]
                assert push.last_seq == 3
    run(main)
    # §8.4: the token of the last WELCOME, the highest number received, the credentials again.
    assert hellos[1] == {"codec": "json", "credentials": {"k": 1}, "resume_token": "t0",
                         "last_seq": 2}
    assert acks == [2]   # the ACK asked for on the lost connection went on the new one


def test_reconnect_into_a_new_session_yields_session_reset(run: Callable[..., Any]) -> None:
    hellos: list[dict[str, Any]] = []

    async def script(peer: Peer) -> None:
        if peer.index == 0:
            await peer.handshake("old", token="t0")
            peer.send_data(KIND_PUSH, 1, "g", "old-1")
            peer.send_data(KIND_PUSH, 2, "g", "old-2", FLAG_ACK_REQUESTED)
            peer.send(KIND_CLOSE, 0, "going_away", "restarting")
            return
        hellos.append(await peer.handshake("new", token="t1", resumed=False, next_seq=1))
        peer.send_data(KIND_PUSH, 1, "", "new-1")
        frames = await peer.closed()
        # The old session's push 2 is not acked in the new one (it would be out of range).
        assert [f for f in frames if f.kind == KIND_ACK] == []

    async def main() -> None:
        async with scripted("tcp", script) as server:
            async with connect(server.url, **FAST) as push:
                assert await take(push, 4) == [
                    Push(1, "g", "old-1", False), Push(2, "g", "old-2", True),
                    SessionReset("old", "new"), Push(1, "", "new-1", False)]
                assert push.client_id == "new" and push.resumed is False
                assert push.last_seq == 1
    run(main)
    assert hellos[0]["resume_token"] == "t0" and hellos[0]["last_seq"] == 2


@pytest.mark.parametrize("code", ["going_away", "idle_timeout", "slow_consumer", "internal_error",
                                  "a_later_versions_code"])
def test_close_codes_that_keep_the_session_reconnect_with_resume(run: Callable[..., Any],
                                                                 code: str) -> None:
    hellos: list[dict[str, Any]] = []

    async def script(peer: Peer) -> None:
        if peer.index == 0:
            await peer.handshake("s", token="t0")
            peer.send_data(KIND_PUSH, 1, "", "one")
            peer.send(KIND_CLOSE, 0, code, "")
            return
        hellos.append(await peer.handshake("s", token="t1", resumed=True, next_seq=2))
        peer.send_data(KIND_PUSH, 2, "", "two")
        await peer.closed()

    async def main() -> None:
        async with scripted("tcp", script) as server:
            async with connect(server.url, **FAST) as push:
                assert await take(push, 2) == [Push(1, "", "one", False), Push(2, "", "two", False)]
                assert push.resumed and len(server.peers) == 2
    run(main)
    # §9: a code this version does not know is treated as going_away.
    assert hellos[0]["resume_token"] == "t0" and hellos[0]["last_seq"] == 1


@pytest.mark.parametrize("code", ["policy", "replaced", "normal"])
def test_final_close_codes_end_the_client(run: Callable[..., Any], code: str) -> None:
    async def script(peer: Peer) -> None:
        await peer.handshake()
        peer.send_data(KIND_PUSH, 1, "", "last")
        peer.send(KIND_CLOSE, 0, code, "bye")

    async def main() -> None:
        async with scripted("tcp", script) as server:
            async with connect(server.url, **FAST) as push:
                assert await take(push, 1) == [Push(1, "", "last", False)]
                error = await failure(push)
                assert isinstance(error, PushClosed)
                assert (error.code, error.text) == (code, "bye")
                await asyncio.sleep(0.2)   # 4 backoffs' worth: nothing reconnects
                assert len(server.peers) == 1 and not push.connected
                with pytest.raises(PushClosed):
                    await push.call("x", timeout_s=1)
    run(main)


def test_refuse_on_reconnect_retries_server_full_and_stops_at_unauthorized(
        run: Callable[..., Any]) -> None:
    async def script(peer: Peer) -> None:
        if peer.index == 0:
            await peer.handshake()
            peer.drop()
        elif peer.index == 1:
            await peer.refuse("server_full", "busy")
        else:
            await peer.refuse("unauthorized", "token expired")

    async def main() -> None:
        async with scripted("tcp", script) as server:
            async with connect(server.url, **FAST) as push:
                error = await failure(push)
                assert isinstance(error, PushRefused)
                assert (error.code, error.text) == ("unauthorized", "token expired")
                assert len(server.peers) == 3
    run(main)


def test_reconnect_attempts_are_bounded(run: Callable[..., Any]) -> None:
    async def script(peer: Peer) -> None:
        if peer.index == 0:
            await peer.handshake()
            peer.send(KIND_CLOSE, 0, "slow_consumer", "")
        else:
            await peer.refuse("going_away", "draining")

    async def main() -> None:
        async with scripted("tcp", script) as server:
            async with connect(server.url, max_reconnect_attempts=3, **FAST) as push:
                error = await failure(push)
                assert isinstance(error, PushClosed) and error.code == "going_away"
                assert "3 reconnect attempts" in error.text
                assert isinstance(error.__cause__, PushRefused)
                assert len(server.peers) == 4
    run(main)


def test_reconnect_false_ends_on_a_lost_connection(run: Callable[..., Any]) -> None:
    async def script(peer: Peer) -> None:
        await peer.handshake()
        peer.drop()

    async def main() -> None:
        async with scripted("tcp", script) as server:
            async with connect(server.url, reconnect=False, **FAST) as push:
                error = await failure(push)
                assert isinstance(error, PushClosed) and error.code == "going_away"
                assert len(server.peers) == 1
    run(main)


def test_close_while_reconnecting_stops_at_once(run: Callable[..., Any]) -> None:
    async def script(peer: Peer) -> None:
        if peer.index == 0:
            await peer.handshake()
            peer.drop()
        else:
            await peer.refuse("server_full")

    async def main() -> None:
        async with scripted("tcp", script) as server:
            push = connect(server.url, backoff_s=(0.05, 0.05))
            async with push:
                while len(server.peers) < 2:
                    await asyncio.sleep(0.01)
                assert not push.connected
                waiter = asyncio.ensure_future(take(push, 1))
                await asyncio.wait_for(push.close(), 2.0)
                assert await waiter == []   # the iteration ends with the close
    run(main)


# ---------------------------------------------------------------------- heartbeats (§10)
@pytest.mark.parametrize("wire", ["tcp-json", "ws-binary"])
def test_heartbeat_ping_and_pong(run: Callable[..., Any], wire: str) -> None:
    transport, framing = wire_args(wire)
    seen: list[Any] = []

    async def script(peer: Peer) -> None:
        await peer.handshake(heartbeat_s=0.1, idle_timeout_s=5)
        peer.send(KIND_PING, 77)
        seen.append(await peer.expect(KIND_PONG))
        # Nothing sent by the client for heartbeat_s: its PING comes.
        ping = await peer.expect(KIND_PING, timeout_s=2)
        seen.append(ping)
        peer.send(KIND_PONG, ping.id)
        await peer.closed()

    async def main() -> None:
        async with scripted(transport, script) as server:
            async with connect(server.url, framing=framing, **FAST) as push:
                while len(seen) < 2:
                    await asyncio.sleep(0.02)
                assert push.connected
    run(main)
    assert seen[0].id == 77
    assert seen[1].id >= 1


def test_idle_server_is_closed_and_resumed(run: Callable[..., Any]) -> None:
    seen: list[Any] = []

    async def script(peer: Peer) -> None:
        if peer.index == 0:
            await peer.handshake("s", token="t0", heartbeat_s=0.05, idle_timeout_s=0.3)
            peer.send_data(KIND_PUSH, 1, "", "x")
            # Silent from here on: the client's PINGs go unanswered.
            seen.extend((f.kind, f.name) for f in await peer.closed() if f.kind != KIND_PING)
            return
        seen.append(await peer.handshake("s", token="t1", resumed=True, next_seq=2))
        await peer.closed()

    async def main() -> None:
        async with scripted("tcp", script) as server:
            async with connect(server.url, **FAST) as push:
                assert await take(push, 1) == [Push(1, "", "x", False)]
                while len(server.peers) < 2 or not push.connected:
                    await asyncio.sleep(0.02)
                assert push.resumed
    run(main)
    assert seen[0] == (KIND_CLOSE, "idle_timeout")
    assert seen[1]["resume_token"] == "t0" and seen[1]["last_seq"] == 1


# ---------------------------------------------------------------------- broken servers (§11)
@pytest.mark.parametrize("wire", ["tcp-binary", "ws-binary", "tcp-json"])
def test_frame_over_max_frame_bytes_closes_too_large(run: Callable[..., Any], wire: str) -> None:
    transport, framing = wire_args(wire)
    closes: list[str] = []

    async def script(peer: Peer) -> None:
        await peer.handshake()
        peer.send_data(KIND_PUSH, 1, "", "y" * 2000)
        closes.extend(f.name for f in await peer.closed() if f.kind == KIND_CLOSE)

    async def main() -> None:
        async with scripted(transport, script) as server:
            async with connect(server.url, framing=framing, limits=PushLimits(max_frame_bytes=1024),
                               **FAST) as push:
                error = await failure(push)
                assert isinstance(error, PushClosed)
                # A JSON line is refused as broken framing once the limit passes without a
                # newline (§3.2); a length prefix or a WebSocket message as too large.
                assert error.code == ("protocol_error" if framing == "json" else "too_large")
                assert len(server.peers) == 1
    run(main)
    if transport == "tcp":
        assert closes == ["protocol_error" if framing == "json" else "too_large"]


@pytest.mark.parametrize("bad", ["call-from-server", "push-before-welcome", "second-welcome",
                                 "text-message-on-binary-ws"])
def test_a_frame_the_server_may_not_send_is_a_protocol_error(run: Callable[..., Any],
                                                             bad: str) -> None:
    transport = "ws" if bad == "text-message-on-binary-ws" else "tcp"
    closes: list[str] = []

    async def script(peer: Peer) -> None:
        if bad == "push-before-welcome":
            await peer.expect_hello()
            peer.send_data(KIND_PUSH, 1, "", 1)
        else:
            await peer.handshake()
            if bad == "call-from-server":
                peer.write(encode(KIND_CALL, 1, "x", b"", 0, peer.framing))
            elif bad == "second-welcome":
                peer.welcome()
            else:
                assert isinstance(peer.io, WsIO)
                peer.io.write(b'{"t":"ping","id":1}', FRAMING_WS_TEXT)   # §13: the other type
        closes.extend(f.name for f in await peer.closed() if f.kind == KIND_CLOSE)

    async def main() -> None:
        async with scripted(transport, script) as server:
            push = connect(server.url, **FAST)
            if bad == "push-before-welcome":
                with pytest.raises(PushClosed) as info:
                    await push.open()
                assert info.value.code == "protocol_error"
                await push.close()
                return
            async with push:
                error = await failure(push)
                assert isinstance(error, PushClosed) and error.code == "protocol_error"
    run(main)
    if transport == "tcp":
        assert closes == ["protocol_error"]


# ---------------------------------------------------------------------- flow control
def test_unread_pushes_pause_reading_and_lose_nothing(run: Callable[..., Any]) -> None:
    total = 20_000
    written = asyncio.Event()

    async def script(peer: Peer) -> None:
        await peer.handshake()
        body = "z" * 1000   # 20 MB: more than the kernel's socket buffers take at first
        for seq in range(1, total + 1):
            peer.send_data(KIND_PUSH, seq, "g", body)
        written.set()
        await peer.closed(timeout_s=10)

    async def main() -> None:
        async with scripted("tcp", script) as server:
            async with connect(server.url, max_queued_pushes=64, **FAST) as push:
                await asyncio.wait_for(written.wait(), 5)
                await asyncio.sleep(0.5)   # time enough to read it all, were reading not paused
                # Held: the bound plus what one read pass brought (256 KiB: ~250 pushes).
                assert len(push._items) < 1000
                items = await take(push, total, timeout_s=20)
                assert [item.seq for item in items] == list(range(1, total + 1))
    run(main, timeout_s=40)


# ---------------------------------------------------------------------- arguments
@pytest.mark.parametrize("kwargs, match", [
    ({"url": "http2://x:1"}, "push URL"),
    ({"url": "tcp://127.0.0.1"}, "host:port"),
    ({"framing": "xml"}, "framing"),
    ({"codec": "yaml"}, "unknown codec"),
    ({"codec": "bytes", "framing": "json"}, "json codec only"),
    ({"backoff_s": (0, 1)}, "backoff_s"),
    ({"backoff_s": (2, 1)}, "backoff_s"),
    ({"connect_timeout_s": 0}, "connect_timeout_s"),
    ({"max_reconnect_attempts": -1}, "max_reconnect_attempts"),
    ({"max_queued_pushes": 0}, "max_queued_pushes"),
], ids=["scheme", "no-port", "framing", "codec", "bytes-over-json", "backoff-zero",
        "backoff-reversed", "timeout", "attempts", "queue"])
def test_connect_refuses_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    url = kwargs.pop("url", "tcp://127.0.0.1:9")
    with pytest.raises(ValueError, match=match):
        connect(url, **kwargs)


def test_session_items_compare_by_value() -> None:
    assert Push(1, "g", {"a": 1}, True) == Push(1, "g", {"a": 1}, True)
    assert Push(1, "g", 1, False) != Push(2, "g", 1, False)
    assert Gap(1, 2) == Gap(1, 2) != Gap(1, 3)
    assert SessionReset("a", "b") == SessionReset("a", "b") != SessionReset("a", "c")
    assert "ack_requested=True" in repr(Push(1, "", None, True))


# ---------------------------------------------------------------------- TLS and codecs
def test_tcp_over_tls(run: Callable[..., Any]) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    async def script(peer: Peer) -> None:
        await peer.handshake()
        call = await peer.expect(KIND_CALL)
        peer.send_data(KIND_REPLY, call.id, "", "over tls")
        await peer.closed()

    async def main() -> None:
        async with scripted("tcp", script, ssl=server_ctx) as server:
            async with connect(server.url, ssl=client_ctx, **FAST) as push:
                assert await push.call("x", timeout_s=5) == "over tls"
            # Without the CA the certificate is refused: the first connect raises.
            with pytest.raises(ssl.SSLError):
                async with connect(server.url.replace("tcp://", "tcps://"), **FAST):
                    raise AssertionError("connected")
    run(main)


def test_xml_codec_over_binary(run: Callable[..., Any]) -> None:
    got: list[Any] = []

    async def script(peer: Peer) -> None:
        got.append((await peer.handshake())["codec"])
        peer.send(KIND_PUSH, 1, "feed", b"<note to='a'>hi</note>")
        peer.send(KIND_PUSH, 2, "feed", b"<!DOCTYPE x [<!ENTITY e 'boom'>]><x>&e;</x>")
        got.extend(f.name for f in await peer.closed() if f.kind == KIND_CLOSE)

    async def main() -> None:
        async with scripted("tcp", script) as server:
            async with connect(server.url, codec="xml", **FAST) as push:
                (item,) = await take(push, 1)
                assert item.data.tag == "note" and item.data.text == "hi"
                # §6.3: a DOCTYPE is refused; a push that cannot be decoded cannot be skipped
                # silently, so the session ends with protocol_error.
                error = await failure(push)
                assert isinstance(error, PushClosed) and error.code == "protocol_error"
    run(main)
    assert got == ["xml", "protocol_error"]


# ---------------------------------------------------------------------- against the real Hub
def chat_hub(limits: PushLimits | None = None) -> Hub:
    """A Hub with an auth hook (token "s3cret", identity "ann") and three commands."""
    hub = Hub(limits=limits or PushLimits())

    @hub.on_connect
    async def auth(conn: Any, credentials: Any) -> str:
        if credentials != {"token": "s3cret"}:
            raise PushDenied("bad token")
        return "ann"

    @hub.command("join")
    async def join(conn: Any, room: Any) -> dict[str, Any]:
        await hub.join(conn.client_id, room)
        return {"joined": room, "identity": conn.identity}

    @hub.command("boom")
    async def boom(conn: Any, data: Any) -> None:
        raise RuntimeError("/secret/path: internals")

    return hub


@contextlib.asynccontextmanager
async def hub_urls(hub: Hub) -> AsyncIterator[dict[str, str]]:
    """``hub`` served by an App (``app.push``: a TCP listener and a WebSocket endpoint); the
    URL of each transport."""
    app = App()
    mount = app.push(hub, port=0, websocket="/push")
    async with serving(app) as server:
        host, port = mount.address
        yield {"tcp": f"tcp://{host}:{port}", "ws": f"ws://127.0.0.1:{server.port}/push"}


@pytest.mark.parametrize("wire", WIRES)
def test_hub_session_calls_pushes_acks_and_resume(run: Callable[..., Any], wire: str) -> None:
    transport, framing = wire_args(wire)

    async def main() -> None:
        hub = chat_hub()
        async with hub_urls(hub) as urls:
            url = urls[transport]
            with pytest.raises(PushRefused) as refused:
                async with connect(url, {"token": "wrong"}, framing=framing, **FAST):
                    raise AssertionError("connected")
            assert (refused.value.code, refused.value.text) == ("unauthorized", "bad token")

            async with connect(url, {"token": "s3cret"}, framing=framing, **FAST) as push:
                client_id = push.client_id
                assert client_id and await hub.online(client_id)
                assert await push.call("join", "lobby", timeout_s=5) == {
                    "joined": "lobby", "identity": "ann"}
                with pytest.raises(PushCallError) as info:
                    await push.call("no.such", timeout_s=5)
                assert info.value.code == "unknown_command"
                with pytest.raises(PushCallError) as info:
                    await push.call("boom", timeout_s=5)
                assert info.value.code == "handler_error" and "secret" not in info.value.text

                await hub.publish("lobby", {"n": 1})
                acked = asyncio.ensure_future(hub.send(client_id, "direct", ack=True, timeout_s=5))
                assert await take(push, 2) == [Push(1, "lobby", {"n": 1}, False),
                                               Push(2, "", "direct", True)]
                assert not acked.done()
                # Asking for the next item acks push 2 (§8.2), which resolves the send.
                following = asyncio.ensure_future(take(push, 2))
                assert await asyncio.wait_for(acked, 5) is True

                # The connection drops; what is published meanwhile comes after the resume.
                assert push._conn is not None
                push._conn.abort()
                await hub.publish("lobby", {"n": 3})
                await hub.publish("lobby", {"n": 4})
                assert await following == [Push(3, "lobby", {"n": 3}, False),
                                           Push(4, "lobby", {"n": 4}, False)]
                assert push.resumed and push.client_id == client_id
                assert await hub.members("lobby") == {client_id}
            # close() ended the session (§9 normal).
            assert not await hub.online(client_id)
    run(main)


@pytest.mark.parametrize("wire", ["tcp-binary", "ws-json"])
def test_hub_disconnect_ends_the_client_with_policy(run: Callable[..., Any], wire: str) -> None:
    transport, framing = wire_args(wire)

    async def main() -> None:
        hub = chat_hub()
        async with hub_urls(hub) as urls:
            async with connect(urls[transport], {"token": "s3cret"}, framing=framing,
                               **FAST) as push:
                assert push.client_id is not None
                await hub.disconnect(push.client_id, "banned")
                error = await failure(push)
                assert isinstance(error, PushClosed)
                assert (error.code, error.text) == ("policy", "banned")
    run(main)


def test_hub_expired_session_yields_session_reset(run: Callable[..., Any]) -> None:
    async def main() -> None:
        hub = chat_hub(PushLimits(resume_window_s=0))
        async with hub_urls(hub) as urls:
            async with connect(urls["tcp"], {"token": "s3cret"}, **FAST) as push:
                old = push.client_id
                assert old is not None
                await push.call("join", "lobby", timeout_s=5)
                assert push._conn is not None
                push._conn.abort()
                (reset,) = await take(push, 1)
                new = push.client_id
                assert new is not None and new != old
                assert reset == SessionReset(old, new)
                assert not push.resumed
                assert await hub.members("lobby") == set()   # the groups went with the session
    run(main)


@pytest.mark.parametrize("wire", ["tcp-json", "ws-binary"])
def test_hub_heartbeats_keep_a_quiet_session(run: Callable[..., Any], wire: str) -> None:
    transport, framing = wire_args(wire)

    async def main() -> None:
        hub = chat_hub(PushLimits(heartbeat_s=0.1, idle_timeout_s=0.6))
        async with hub_urls(hub) as urls:
            async with connect(urls[transport], {"token": "s3cret"}, framing=framing,
                               **FAST) as push:
                conn = push._conn
                await asyncio.sleep(1.5)   # 2.5 idle timeouts with nothing to say but PINGs
                assert push.connected and push._conn is conn   # never reconnected
    run(main)
