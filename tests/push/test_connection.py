"""The push connection role (``cyserve.push.connection``) end to end: docs/push-protocol.md §5
(order of frames), §6 (HELLO, WELCOME, REFUSE), §7 (calls), §9 (closing), §10 (heartbeats,
idle and hello timeouts) and §11 (violations), over real sockets of 127.0.0.1 on both loops,
through WebSocket and TCP in both their framings.
"""
from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET
from typing import Any

import orjson
import pytest

from cyserve._core.push.frames import (
    KIND_ACK, KIND_CALL, KIND_CLOSE, KIND_ERROR, KIND_HELLO, KIND_PING, KIND_PONG, KIND_PUSH,
    KIND_REFUSE, KIND_REPLY, VERSION,
)
from cyserve.config import PushLimits
from cyserve.errors import PushDenied
from cyserve.push.hub import Hub
from tests.push.hub_support import TRANSPORTS, PushClient, serving_hub, wait_until

FAST = PushLimits(heartbeat_s=0.2, idle_timeout_s=0.6, hello_timeout_s=0.4, close_timeout_s=1.0)


def echo_hub(limits: PushLimits = PushLimits(), **options: Any) -> Hub:
    hub = Hub(limits=limits, **options)

    @hub.command("echo")
    async def echo(conn: Any, data: Any) -> Any:
        return data

    return hub


# ---------------------------------------------------------------------- §6 HELLO
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_welcome_carries_every_key_and_a_secret_client_id(run: Any, transport: str) -> None:
    async def main() -> None:
        async with serving_hub(echo_hub()) as served:
            first = await served.session(transport)
            second = await served.session(transport)
            welcome = first.welcome
            assert set(welcome) == {"client_id", "resume_token", "codec", "resumed", "next_seq",
                                    "heartbeat_s", "idle_timeout_s", "max_frame_bytes",
                                    "resume_window_s"}
            assert welcome["codec"] == "json" and welcome["resumed"] is False
            assert welcome["next_seq"] == 1 and welcome["max_frame_bytes"] == 1024 * 1024
            # §6.5: 22 and 43 characters of base64url, never the peer's address.
            assert len(welcome["client_id"]) == 22 and len(welcome["resume_token"]) == 43
            assert welcome["client_id"] != second.welcome["client_id"]
            assert "127.0.0.1" not in welcome["client_id"]
            reply = await first.call("echo", {"a": [1, 2]})
            assert reply.kind == KIND_REPLY and first.value(reply.payload) == {"a": [1, 2]}
            await first.close()
            await second.close()
    run(main)


@pytest.mark.parametrize("hello, code", [
    ({"codec": 5}, "bad_hello"),
    ({"resume_token": "abc"}, "bad_hello"),
    ({"resume_token": 7, "last_seq": 0}, "bad_hello"),
    ({"resume_token": "abc", "last_seq": -1}, "bad_hello"),
    ({"codec": "yaml"}, "unsupported_codec"),
], ids=["codec-not-a-string", "token-without-last-seq", "token-not-a-string", "negative-last-seq",
        "unknown-codec"])
def test_a_malformed_hello_is_refused_and_closed(run: Any, hello: dict[str, Any], code: str) -> None:
    async def main() -> None:
        async with serving_hub(echo_hub()) as served:
            client = await served.client("tcp-json")
            await client.send(KIND_HELLO, 0, VERSION, hello)
            frames = await client.closed()
            assert [(f.kind, f.name) for f in frames] == [(KIND_REFUSE, code)]
            await client.close()
    run(main)


@pytest.mark.parametrize("transport", ["ws-text", "tcp-json"])
def test_bytes_and_xml_codecs_are_refused_in_json_framings(run: Any, transport: str) -> None:
    async def main() -> None:
        async with serving_hub(echo_hub()) as served:
            for name in ("bytes", "xml"):
                client = await served.client(transport)
                frame = await client.hello(codec=name)
                assert (frame.kind, frame.name) == (KIND_REFUSE, "unsupported_codec")
                assert await client.closed() == []
                await client.close()
    run(main)


@pytest.mark.parametrize("transport", ["ws-binary", "tcp-binary"])
def test_the_bytes_codec_hands_raw_bytes_both_ways(run: Any, transport: str) -> None:
    async def main() -> None:
        hub = Hub()

        @hub.command("reverse")
        async def reverse(conn: Any, data: Any) -> Any:
            assert type(data) is bytes and conn.codec == "bytes"
            return data[::-1]

        async with serving_hub(hub) as served:
            client = await served.session(transport, codec="bytes")
            assert client.welcome["codec"] == "bytes"
            await client.send(KIND_CALL, 1, "reverse", b"\x00\xffabc")
            reply = await client.recv_kind(KIND_REPLY)
            assert reply.payload == b"cba\xff\x00"
            await client.close()
    run(main)


@pytest.mark.parametrize("transport", ["ws-binary", "tcp-binary"])
def test_the_xml_codec_carries_elements_and_refuses_a_doctype(run: Any, transport: str) -> None:
    async def main() -> None:
        hub = Hub()

        @hub.command("tag")
        async def tag(conn: Any, data: Any) -> Any:
            assert isinstance(data, ET.Element)
            reply = ET.Element("reply", {"to": data.tag})
            reply.text = data.text
            return reply

        async with serving_hub(hub) as served:
            client = await served.session(transport, codec="xml")
            await client.send(KIND_CALL, 1, "tag", "<ping>h&amp;i</ping>".encode())
            reply = await client.recv_kind(KIND_REPLY)
            assert reply.payload == b'<reply to="ping">h&amp;i</reply>'
            bomb = b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
            await client.send(KIND_CALL, 2, "tag", bomb)
            frame = await client.recv()
            assert (frame.kind, frame.id, frame.name) == (KIND_ERROR, 2, "bad_payload")
            await client.close()
    run(main)


def test_an_unknown_version_is_refused_with_the_one_spoken(run: Any) -> None:
    async def main() -> None:
        async with serving_hub(echo_hub()) as served:
            client = await served.client("ws-binary")
            await client.send(KIND_HELLO, 0, "cyserve-push/2", {})
            frames = await client.closed()
            assert [(f.kind, f.name) for f in frames] == [(KIND_REFUSE, "unsupported_version")]
            assert VERSION in frames[0].payload
            await client.close()
    run(main)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_refused_client_gets_nothing_but_the_refusal(run: Any, transport: str) -> None:
    async def main() -> None:
        hub = echo_hub()
        seen: list[Any] = []

        @hub.on_connect
        async def auth(conn: Any, credentials: Any) -> Any:
            seen.append((credentials, conn.client_id))
            if credentials != {"token": "s3cret"}:
                raise PushDenied("wrong token")
            return "alice"

        async with serving_hub(hub) as served:
            client = await served.client(transport)
            frame = await client.hello({"token": "guess"})
            assert (frame.kind, frame.name, frame.payload) == (KIND_REFUSE, "unauthorized", "wrong token")
            assert await client.closed() == []
            await client.close()
            accepted = await served.session(transport, {"token": "s3cret"})
            # The hook runs before anything is issued: no client id yet.
            assert seen == [({"token": "guess"}, None), ({"token": "s3cret"}, None)]
            await accepted.close()
    run(main)


def test_a_failing_auth_hook_closes_with_internal_error(run: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        hub = echo_hub()

        @hub.on_connect
        async def auth(conn: Any, credentials: Any) -> Any:
            raise KeyError("the user table")

        async with serving_hub(hub) as served:
            client = await served.client("tcp-json")
            await client.send(KIND_HELLO, 0, VERSION, {})
            frames = await client.closed()
            assert [(f.kind, f.name) for f in frames] == [(KIND_CLOSE, "internal_error")]
            assert "user table" not in frames[0].payload
            await client.close()
    with caplog.at_level(logging.ERROR, logger="cyserve.push"):
        run(main)
    assert any("on_connect" in r.message and r.exc_info for r in caplog.records)


def test_past_max_connections_a_client_is_refused_server_full(run: Any) -> None:
    async def main() -> None:
        async with serving_hub(echo_hub(PushLimits(max_connections=2))) as served:
            first = await served.session("tcp-binary")
            second = await served.session("ws-binary")
            third = await served.client("tcp-json")
            frame = await third.hello()
            assert (frame.kind, frame.name) == (KIND_REFUSE, "server_full")
            await third.close()
            await first.say_close()
            await first.close()
            # A place came free.
            fourth = await served.session("tcp-json")
            await fourth.close()
            await second.close()
    run(main)


# ---------------------------------------------------------------------- §5 order
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_frame_before_hello_closes_with_protocol_error(run: Any, transport: str) -> None:
    async def main() -> None:
        async with serving_hub(echo_hub()) as served:
            client = await served.client(transport)
            await client.send(KIND_PING, 5)
            frames = await client.closed()
            assert [(f.kind, f.name) for f in frames] == [(KIND_CLOSE, "protocol_error")]
            await client.close()
    run(main)


def test_a_frame_between_hello_and_welcome_closes_with_protocol_error(run: Any) -> None:
    async def main() -> None:
        hub = echo_hub()
        release = asyncio.Event()

        @hub.on_connect
        async def auth(conn: Any, credentials: Any) -> Any:
            await release.wait()

        async with serving_hub(hub) as served:
            client = await served.client("ws-text")
            await client.send(KIND_HELLO, 0, VERSION, {})
            await client.send(KIND_PING, 1)
            frames = await client.closed()
            assert [(f.kind, f.name) for f in frames] == [(KIND_CLOSE, "protocol_error")]
            release.set()
            await client.close()
    run(main)


@pytest.mark.parametrize("transport", ["ws-binary", "tcp-json"])
def test_a_second_hello_and_an_ack_never_pushed_close_with_protocol_error(run: Any, transport: str) -> None:
    async def main() -> None:
        async with serving_hub(echo_hub()) as served:
            client = await served.session(transport)
            await client.send(KIND_HELLO, 0, VERSION, {})
            frames = await client.closed()
            assert [(f.kind, f.name) for f in frames] == [(KIND_CLOSE, "protocol_error")]
            await client.close()
            client = await served.session(transport)
            await client.send(KIND_ACK, 1)
            frames = await client.closed()
            assert [(f.kind, f.name) for f in frames] == [(KIND_CLOSE, "protocol_error")]
            await client.close()
    run(main)


# ---------------------------------------------------------------------- §7 calls
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_unknown_command_is_an_error_and_the_connection_stays(run: Any, transport: str) -> None:
    async def main() -> None:
        async with serving_hub(echo_hub()) as served:
            client = await served.session(transport)
            frame = await client.call("no.such", {"x": 1})
            assert (frame.kind, frame.name, frame.payload) == (KIND_ERROR, "unknown_command",
                                                               "no command named so")
            frame = await client.call("echo", 5)
            assert frame.kind == KIND_REPLY and client.value(frame.payload) == 5
            await client.close()
    run(main)


@pytest.mark.parametrize("transport", ["ws-binary", "tcp-binary"])
def test_undecodable_call_data_is_bad_payload_and_the_connection_stays(run: Any, transport: str) -> None:
    async def main() -> None:
        async with serving_hub(echo_hub()) as served:
            client = await served.session(transport)
            await client.send(KIND_CALL, 9, "echo", b"{not json")
            frame = await client.recv()
            assert (frame.kind, frame.id, frame.name) == (KIND_ERROR, 9, "bad_payload")
            assert (await client.call("echo", [1])).kind == KIND_REPLY
            await client.close()
    run(main)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_failing_handler_answers_a_generic_error_and_logs_the_traceback(
        run: Any, transport: str, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        hub = echo_hub()

        @hub.command("boom")
        async def boom(conn: Any, data: Any) -> Any:
            raise RuntimeError("password=hunter2 in /srv/app/secret.py")

        @hub.command("unencodable")
        async def unencodable(conn: Any, data: Any) -> Any:
            return {1, 2}  # no JSON for a set

        async with serving_hub(hub) as served:
            client = await served.session(transport)
            for name in ("boom", "unencodable"):
                frame = await client.call(name)
                assert (frame.kind, frame.name) == (KIND_ERROR, "handler_error")
                assert frame.payload == "the command failed"
            assert (await client.call("echo", "still here")).kind == KIND_REPLY
            await client.close()
    with caplog.at_level(logging.ERROR, logger="cyserve.push"):
        run(main)
    assert any("hunter2" in r.exc_text for r in caplog.records if r.exc_text)


def test_push_denied_in_a_handler_answers_its_code_and_text(run: Any) -> None:
    async def main() -> None:
        hub = Hub()

        @hub.command("admin")
        async def admin(conn: Any, data: Any) -> Any:
            if data == "nice":
                raise PushDenied("admins only", "forbidden")
            if data == "odd":
                raise PushDenied("no", "Not A Code!")
            raise PushDenied("not now")

        async with serving_hub(hub) as served:
            client = await served.session("tcp-json")
            frames = [await client.call("admin", data) for data in ("nice", "odd", "plain")]
            assert [(f.name, f.payload) for f in frames] == [
                ("forbidden", "admins only"), ("denied", "no"), ("denied", "not now")]
            await client.close()
    run(main)


@pytest.mark.parametrize("transport", ["ws-text", "tcp-binary"])
def test_calls_run_concurrently_and_replies_match_by_id(run: Any, transport: str) -> None:
    async def main() -> None:
        hub = echo_hub()
        release = asyncio.Event()

        @hub.command("wait")
        async def wait(conn: Any, data: Any) -> Any:
            await release.wait()
            return "waited"

        async with serving_hub(hub) as served:
            client = await served.session(transport)
            await client.send(KIND_CALL, 1, "wait", client.data(None))
            await client.send(KIND_CALL, 2, "echo", client.data("quick"))
            quick = await client.recv_kind(KIND_REPLY)
            assert (quick.id, client.value(quick.payload)) == (2, "quick")
            release.set()
            slow = await client.recv_kind(KIND_REPLY)
            assert (slow.id, client.value(slow.payload)) == (1, "waited")
            await client.close()
    run(main)


@pytest.mark.parametrize("transport", ["ws-binary", "tcp-json"])
def test_past_max_calls_in_flight_calls_wait_until_one_ends(run: Any, transport: str) -> None:
    async def main() -> None:
        hub = Hub(limits=PushLimits(max_calls_in_flight=2))
        running = 0
        most = 0
        gates: list[asyncio.Event] = []

        @hub.command("hold")
        async def hold(conn: Any, data: Any) -> Any:
            nonlocal running, most
            gate = asyncio.Event()
            gates.append(gate)
            running += 1
            most = max(most, running)
            await gate.wait()
            running -= 1
            return data

        async with serving_hub(hub) as served:
            client = await served.session(transport)
            for request_id in range(1, 6):
                await client.send(KIND_CALL, request_id, "hold", client.data(request_id))
            await client.send(KIND_PING, 77)
            await wait_until(lambda: len(gates) == 2)
            await asyncio.sleep(0.1)
            # The third call waits, and so does the PING read after it (frames keep their order).
            assert len(gates) == 2
            with pytest.raises(asyncio.TimeoutError):
                await client.recv(0.05, pings=True)
            order: list[Any] = []
            for index in range(5):
                await wait_until(lambda: len(gates) > index)
                gates[index].set()
                frame = await client.recv(pings=True)
                if frame.kind == KIND_PONG:
                    order.append("pong")
                    frame = await client.recv(pings=True)
                assert frame.kind == KIND_REPLY
                order.append(client.value(frame.payload))
            # Call 3 ending let calls 5 and the PING behind it go.
            assert order == [1, 2, 3, "pong", 4, 5] and most == 2
            await client.close()
    run(main)


# ---------------------------------------------------------------------- §10 heartbeats
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ping_is_answered_and_a_silent_server_pings(run: Any, transport: str) -> None:
    async def main() -> None:
        async with serving_hub(echo_hub(FAST)) as served:
            client = await served.session(transport)
            await client.send(KIND_PING, 123456789)
            pong = await client.recv(pings=True)
            assert (pong.kind, pong.id) == (KIND_PONG, 123456789)
            loop = asyncio.get_running_loop()
            started = loop.time()
            ping = await client.recv(2.0, pings=True)
            # Sent after a silence of at most heartbeat_s (one tick is half of it; the rest is
            # slack for a loaded machine: the default interval is 20 s).
            assert ping.kind == KIND_PING and loop.time() - started <= FAST.heartbeat_s + 0.5
            await client.send(KIND_PONG, ping.id)
            await client.close()
    run(main)


def test_a_server_that_sends_does_not_ping(run: Any) -> None:
    async def main() -> None:
        limits = PushLimits(heartbeat_s=0.4, idle_timeout_s=5.0)
        async with serving_hub(echo_hub(limits)) as served:
            client = await served.session("tcp-binary")
            client_id = client.welcome["client_id"]
            for n in range(1, 26):
                await served.hub.send(client_id, n)
                await asyncio.sleep(0.04)
            frames = [await client.recv(pings=True) for _ in range(25)]
            # Any frame counts as sending (§10): pushes every 40 ms leave no silence to fill.
            assert [(f.kind, f.id) for f in frames] == [(KIND_PUSH, n) for n in range(1, 26)]
            ping = await client.recv(2.0, pings=True)
            assert ping.kind == KIND_PING
            await client.close()
    run(main)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_silent_client_is_closed_with_idle_timeout(run: Any, transport: str) -> None:
    async def main() -> None:
        hub = echo_hub(FAST)
        gone: list[str] = []

        @hub.on_disconnect
        async def on_gone(conn: Any, code: str) -> None:
            gone.append(code)

        async with serving_hub(hub) as served:
            client = await served.session(transport)
            loop = asyncio.get_running_loop()
            started = loop.time()
            frames = await client.closed(3.0)   # PINGs go unanswered
            elapsed = loop.time() - started
            assert [f.kind for f in frames if f.kind != KIND_PING] == [KIND_CLOSE]
            assert frames[-1].name == "idle_timeout"
            assert FAST.idle_timeout_s - 0.05 <= elapsed <= FAST.idle_timeout_s + 1.0
            # idle_timeout keeps the session for a resume (§9): no on_disconnect.
            assert gone == []
            await client.close()
    run(main)


def test_a_client_answering_pings_is_never_idle(run: Any) -> None:
    async def main() -> None:
        async with serving_hub(echo_hub(FAST)) as served:
            client = await served.session("tcp-binary")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + FAST.idle_timeout_s * 2.5
            pings = 0
            while (left := deadline - loop.time()) > 0:
                try:
                    frame = await client.recv(left, pings=True)
                except asyncio.TimeoutError:
                    break
                # Only PINGs come (answered), no CLOSE.
                assert frame.kind == KIND_PING
                pings += 1
                await client.send(KIND_PONG, frame.id)
            assert pings >= 3
            assert (await client.call("echo", 1)).kind == KIND_REPLY
            await client.close()
    run(main)


def test_no_hello_in_time_closes_silently_before_the_first_byte(run: Any) -> None:
    async def main() -> None:
        async with serving_hub(echo_hub(FAST)) as served:
            loop = asyncio.get_running_loop()
            started = loop.time()
            silent = await PushClient.tcp(served.tcp_port)
            assert await silent.closed(3.0) == []
            assert loop.time() - started >= FAST.hello_timeout_s - 0.05
            await silent.close()
            # The first byte chose JSON lines: the close says why, in that framing.
            started = loop.time()
            partial = await served.client("tcp-json")
            await partial.send_raw(b'{"t":"hel')
            frames = await partial.closed(3.0)
            assert [(f.kind, f.name) for f in frames] == [(KIND_CLOSE, "idle_timeout")]
            assert loop.time() - started >= FAST.hello_timeout_s - 0.05
            await partial.close()
    run(main)


# ---------------------------------------------------------------------- §11 violations, §9 close
def test_an_oversize_binary_length_is_refused_before_any_of_the_frame(run: Any) -> None:
    async def main() -> None:
        async with serving_hub(echo_hub(PushLimits(max_frame_bytes=1024))) as served:
            client = await served.session("tcp-binary")
            await client.send_raw(b"\x00\x00\x04\x01")   # 1025 bytes announced
            frames = await client.closed()
            assert [(f.kind, f.id, f.name) for f in frames] == [(KIND_ERROR, 0, "too_large"),
                                                                (KIND_CLOSE, 0, "too_large")]
            await client.close()
    run(main)


@pytest.mark.parametrize("transport", ["ws-binary", "ws-text"])
def test_an_oversize_websocket_message_is_too_large_then_1009(run: Any, transport: str) -> None:
    async def main() -> None:
        async with serving_hub(echo_hub(PushLimits(max_frame_bytes=1024))) as served:
            client = await served.session(transport)
            big = "x" * 1200
            await client.send(KIND_CALL, 1, "echo", client.data(big))
            frames = await client.closed()
            assert [(f.kind, f.name) for f in frames] == [(KIND_ERROR, "too_large"),
                                                          (KIND_CLOSE, "too_large")]
            await client.close()
            assert client._ws.close_code == 1009 and client._ws.close_reason == "too_large"
    run(main)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_broken_frame_closes_with_protocol_error_naming_the_rule(run: Any, transport: str) -> None:
    async def main() -> None:
        async with serving_hub(echo_hub()) as served:
            client = await served.session(transport)
            if transport == "tcp-json":
                await client.send_raw(b'{"t":"call","id":1,"name":"echo","extra":1}\n')
            elif transport == "ws-text":
                await client.send_raw('{"t":"nope"}')
            elif transport == "ws-binary":
                await client.send_raw(bytes([13, 0]) + bytes(9))
            else:
                await client.send_raw(b"\x00\x00\x00\x0b" + bytes([13, 0]) + bytes(9))
            frames = await client.closed()
            assert [(f.kind, f.name) for f in frames] == [(KIND_CLOSE, "protocol_error")]
            assert frames[0].payload
            await client.close()
            if transport.startswith("ws-"):
                assert client._ws.close_code == 1008 and client._ws.close_reason == "protocol_error"
    run(main)


def test_a_websocket_message_of_the_other_type_is_a_protocol_error(run: Any) -> None:
    async def main() -> None:
        async with serving_hub(echo_hub()) as served:
            client = await served.session("ws-binary")
            await client.send_raw(orjson.dumps({"t": "ping", "id": 1}).decode())
            frames = await client.closed()
            assert [(f.kind, f.name) for f in frames] == [(KIND_CLOSE, "protocol_error")]
            assert "text message" in frames[0].payload
            await client.close()
    run(main)


def test_the_websocket_subprotocol_is_selected_when_offered(run: Any) -> None:
    async def main() -> None:
        async with serving_hub(echo_hub()) as served:
            offered = await PushClient.websocket(served.ws_port, subprotocols=["cyserve-push.1"])
            plain = await PushClient.websocket(served.ws_port)
            assert offered.subprotocol == "cyserve-push.1" and plain.subprotocol is None
            for client in (offered, plain):
                await client.hello()
                assert (await client.call("echo", 1)).kind == KIND_REPLY
                await client.close()
    run(main)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_client_close_is_answered_normal_and_normal_ends_the_session(run: Any, transport: str) -> None:
    async def main() -> None:
        hub = echo_hub()
        gone: list[tuple[str, str]] = []

        @hub.on_disconnect
        async def on_gone(conn: Any, code: str) -> None:
            gone.append((conn.client_id, code))

        async with serving_hub(hub) as served:
            leaving = await served.session(transport)
            frames = await leaving.say_close("normal")
            assert [(f.kind, f.name) for f in frames] == [(KIND_CLOSE, "normal")]
            await leaving.close()
            coming_back = await served.session(transport)
            frames = await coming_back.say_close("going_away")
            assert [(f.kind, f.name) for f in frames] == [(KIND_CLOSE, "normal")]
            await coming_back.close()
            for _ in range(100):
                if gone:
                    break
                await asyncio.sleep(0.01)
            assert gone == [(leaving.welcome["client_id"], "normal")]
            # going_away keeps the session: it is still there to resume (§9).
            assert coming_back.welcome["client_id"] in hub._sessions
            if transport.startswith("ws-"):
                assert leaving._ws.close_code == 1000
    run(main)


def test_nothing_is_pushed_after_the_close(run: Any) -> None:
    async def main() -> None:
        hub = echo_hub()

        @hub.command("join")
        async def join(conn: Any, data: Any) -> Any:
            await conn.join("g")
            return sorted(conn.groups)

        async with serving_hub(hub) as served:
            client = await served.session("tcp-json")
            assert client.value((await client.call("join")).payload) == ["g"]
            await client.send(KIND_CLOSE, 0, "going_away", "")
            session = hub._sessions[client.welcome["client_id"]]
            await wait_until(lambda: session.conn is None)
            await hub.publish("g", "after the close")
            frames = await client.closed()
            assert [f.kind for f in frames] == [KIND_CLOSE]
            assert KIND_PUSH not in [f.kind for f in frames]
            await client.close()
    run(main)
