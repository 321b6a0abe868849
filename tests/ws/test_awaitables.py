"""The handler API's per-message awaitables and ``broadcast``'s corked writes, on a fake transport.

``WebSocketConnection.receive``, ``send`` and ``__anext__`` return the role's coroutine-shaped
awaitables (``cyserve._core.ws.role``: ``_Receiving``, ``_Sending``) rather than coroutines.
What a coroutine guarantees must still hold: nothing happens until the first step; asyncio takes
them as coroutines (``create_task``, ``wait_for``, ``run_coroutine_threadsafe``); a cancelled or
closed wait loses no message; one awaits once.  Iteration ends on a normal close (RFC 6455
§7.4.1: 1000, 1001, a close frame without a code) whichever way the close reaches the waiter.
"""
from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from cyserve.config import WebSocketLimits
from cyserve.errors import WebSocketDisconnect
from cyserve.websocket import WebSocketConnection, broadcast
from tests.core.fakes import lose, settle
from tests.ws.test_role import BINARY, CLOSE, TEXT, Conn, close_frame, code_of, frame


def connection(c: Conn) -> WebSocketConnection:
    ws = WebSocketConnection()
    ws._role = c.role
    return ws


# ---------------------------------------------------------------- coroutine behaviour
def test_nothing_happens_until_the_first_step(run):
    async def main():
        c = Conn()
        ws = connection(c)
        sending = ws.send("later")
        receiving = ws.receive()
        assert c.written() == []                       # not sent yet
        assert c.role.receive() is not None            # no waiter registered by ws.receive()
        assert asyncio.iscoroutine(sending) and asyncio.iscoroutine(receiving)
        await sending
        assert [(op, p) for op, _, _, p in c.written()] == [(TEXT, b"later")]
        receiving.close()                              # never started: nothing to undo
        c.feed(frame(TEXT, b"x"))                     # the role's own waiter gets it
    run(main)


def test_a_queued_message_is_the_result_of_the_first_step(run):
    async def main():
        c = Conn()
        ws = connection(c)
        c.feed(frame(BINARY, b"ready"))
        step = ws.receive()
        with pytest.raises(StopIteration) as done:
            step.send(None)                            # the iterator protocol: no loop turn
        assert done.value.value == b"ready"
        c.feed(frame(TEXT, b"next"))
        assert await ws.receive() == "next"            # and through await (am_send)
    run(main)


def test_a_waiting_receive_gets_the_message_and_asyncio_takes_it_as_a_coroutine(run):
    async def main():
        c = Conn()
        ws = connection(c)
        task = asyncio.create_task(ws.receive())
        await settle()
        assert not task.done()
        c.feed(frame(TEXT, b"hello"))
        assert await asyncio.wait_for(task, 1) == "hello"
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ws.receive(), 0.01)
        c.feed(frame(BINARY, b"kept"))                 # after the timed-out wait: queued, not lost
        assert await ws.receive() == b"kept"
    run(main)


def test_closing_a_waiting_receive_keeps_the_next_message(run):
    async def main():
        c = Conn()
        ws = connection(c)
        step = ws.receive()
        future = step.send(None)                       # the step yields the role's future
        assert isinstance(future, asyncio.Future) and not future.done()
        step.close()
        assert future.cancelled()
        c.feed(frame(TEXT, b"after"))
        assert c.role.queued == 1
        assert await ws.receive() == "after"
    run(main)


def test_throwing_into_a_waiting_receive_cancels_its_wait(run):
    async def main():
        c = Conn()
        ws = connection(c)
        step = ws.receive()
        future = step.send(None)
        with pytest.raises(KeyError):
            step.throw(KeyError("boom"))
        assert future.cancelled()
        c.feed(frame(TEXT, b"still here"))
        assert await ws.receive() == "still here"
    run(main)


def test_an_awaitable_is_awaited_once(run):
    async def main():
        c = Conn()
        ws = connection(c)
        c.feed(frame(TEXT, b"one"))
        receiving = ws.receive()
        assert await receiving == "one"
        with pytest.raises(RuntimeError):
            await receiving
        sending = ws.send(b"x")
        await sending
        with pytest.raises(RuntimeError):
            await sending
        with pytest.raises(TypeError):
            ws.receive().send("not None")              # as a just-started coroutine refuses
    run(main)


def test_send_errors_come_from_the_first_step(run):
    async def main():
        c = Conn()
        ws = connection(c)
        bad = ws.send(1)                               # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await bad
        c.feed(close_frame(1000))
        with pytest.raises(WebSocketDisconnect) as caught:
            await ws.send("too late")
        assert caught.value.code == 1000
        with pytest.raises(RuntimeError):
            WebSocketConnection().send("x")            # not open: at once, as before
    run(main)


def test_send_waits_while_paused_and_resumes_at_low_water(run):
    async def main():
        c = Conn(WebSocketLimits(ping_interval_s=None, write_high_water=1000, write_low_water=100,
                                 compression=False))
        ws = connection(c)
        await ws.send("free")                          # below the high water: done at once
        c.stream.pause_writing()
        task = asyncio.create_task(ws.send(b"slow"))
        await settle()
        assert not task.done()                         # written, then waiting for the drain
        c.stream.resume_writing()
        await asyncio.wait_for(task, 1)
        assert [(op, p) for op, _, _, p in c.written()] == [(TEXT, b"free"), (BINARY, b"slow")]
        c.stream.pause_writing()
        waiting = asyncio.create_task(ws.send(b"lost"))
        await settle()
        lose(c.stream)
        with pytest.raises(WebSocketDisconnect) as caught:
            await waiting
        assert caught.value.code == 1006
    run(main)


def test_the_sync_test_clients_way_runs_them_on_the_loops_thread(run):
    # The sync TestClient makes the awaitable on its own thread and hands it to
    # run_coroutine_threadsafe: the role must only be touched on the loop's thread.
    async def main():
        c = Conn()
        ws = connection(c)
        loop = asyncio.get_running_loop()
        touched: list[bool] = []
        original = c.role

        def other_thread() -> None:
            step = ws.send("from a thread")
            touched.append(c.written() != [])          # made here: nothing sent yet
            asyncio.run_coroutine_threadsafe(step, loop).result(5)

        thread = threading.Thread(target=other_thread)
        thread.start()
        while thread.is_alive():
            await asyncio.sleep(0.01)
        thread.join()
        assert touched == [False] and original is c.role
        assert [(op, p) for op, _, _, p in c.written()] == [(TEXT, b"from a thread")]
    run(main)


# ---------------------------------------------------------------- iteration
NORMAL = [(1000, "normal"), (1001, "going away"), (None, "no code")]


@pytest.mark.parametrize("code", [code for code, _ in NORMAL], ids=[name for _, name in NORMAL])
@pytest.mark.parametrize("when", ["before", "while-waiting", "driven-by-a-task"])
def test_iteration_ends_on_a_normal_close(run, code, when):
    async def main():
        c = Conn()
        ws = connection(c)
        c.feed(frame(TEXT, b"first"))
        if when == "before":
            c.feed(close_frame(code))
            assert [m async for m in ws] == ["first"]
        elif when == "while-waiting":
            async def collect() -> list[Any]:
                return [m async for m in ws]
            task = asyncio.create_task(collect())
            await settle()                             # "first" taken, now waiting
            c.feed(close_frame(code))                  # the Task throws the close in
            assert await asyncio.wait_for(task, 1) == ["first"]
        else:
            assert await asyncio.create_task(ws.__anext__()) == "first"
            task = asyncio.create_task(ws.__anext__())  # the Task drives send()/throw()
            await settle()
            c.feed(close_frame(code))
            with pytest.raises(StopAsyncIteration):
                await asyncio.wait_for(task, 1)
        with pytest.raises(WebSocketDisconnect):
            await ws.receive()                         # receive() itself still raises
    run(main)


@pytest.mark.parametrize("when", ["before", "while-waiting"])
def test_iteration_raises_on_any_other_close(run, when):
    async def main():
        c = Conn()
        ws = connection(c)
        if when == "before":
            c.feed(close_frame(4000, "app"))
            with pytest.raises(WebSocketDisconnect) as caught:
                async for _ in ws:
                    pass
            assert caught.value.code == 4000
            return
        async def drain() -> None:
            async for _ in ws:
                pass
        task = asyncio.create_task(drain())
        await settle()
        lose(c.stream)                                 # no close frame: 1006 (§7.1.5)
        with pytest.raises(WebSocketDisconnect) as caught:
            await asyncio.wait_for(task, 1)
        assert caught.value.code == 1006
    run(main)


def test_a_cancelled_iteration_loses_no_message(run):
    async def main():
        c = Conn()
        ws = connection(c)

        async def first() -> Any:
            async for message in ws:
                return message
        task = asyncio.create_task(first())
        await settle()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        c.feed(frame(TEXT, b"survivor"))
        assert await ws.__anext__() == "survivor"
    run(main)


# ---------------------------------------------------------------- broadcast
def test_broadcasts_made_before_the_flush_reach_a_member_in_one_write(run):
    async def main():
        members = [Conn(), Conn()]
        sockets = [connection(c) for c in members]
        assert broadcast(sockets, "one") == []
        assert broadcast(sockets, b"two") == []
        await sockets[0].send("own")                  # after the broadcasts, in order
        await asyncio.sleep(0)
        assert all(c.transport.chunks == [] for c in members)   # still corked a turn later
        broadcast(sockets, b"woken")                   # a publisher woken in that turn joins in
        await settle()
        for c in members:
            assert len(c.transport.chunks) == 1
        assert [(op, p) for op, _, _, p in members[0].written()] == [
            (TEXT, b"one"), (BINARY, b"two"), (TEXT, b"own"), (BINARY, b"woken")]
        assert [(op, p) for op, _, _, p in members[1].written()] == [
            (TEXT, b"one"), (BINARY, b"two"), (BINARY, b"woken")]
        broadcast(sockets, "three")
        await settle()
        assert [len(c.transport.chunks) for c in members] == [2, 2]
    run(main)


def test_broadcast_skips_slow_closed_and_unopened_sockets(run):
    async def main():
        limits = WebSocketLimits(ping_interval_s=None, write_high_water=1000, write_low_water=100,
                                 compression=False)
        fast, slow, closing, gone = Conn(limits), Conn(limits), Conn(limits), Conn(limits)
        sockets = [connection(c) for c in (fast, slow, closing, gone)]
        slow.stream.pause_writing()
        closing.role.close(1000, "")                   # our close frame went: not sent to
        closing.written()
        lose(gone.stream)
        unopened = WebSocketConnection()
        assert broadcast([*sockets, unopened], "hi") == [sockets[1]]
        await settle()
        assert [(op, p) for op, _, _, p in fast.written()] == [(TEXT, b"hi")]
        assert slow.written() == [] and closing.written() == [] and gone.transport.chunks == []
        lose(closing.stream)
        lose(slow.stream)
        lose(fast.stream)
    run(main)


def test_a_member_lost_before_the_flush_gets_nothing(run):
    async def main():
        c = Conn()
        ws = connection(c)
        broadcast([ws], "never")
        lose(c.stream)
        await settle()
        assert c.transport.chunks == []
    run(main)


def test_a_client_member_gets_a_frame_masked_for_it(run):
    async def main():
        c = Conn(is_client=True)
        broadcast([connection(c)], "masked")
        await settle()
        [(op, _, masked, payload)] = c.written()
        assert (op, masked, payload) == (TEXT, True, b"masked")
    run(main)


def test_a_close_frame_after_a_broadcast_keeps_its_place(run):
    async def main():
        c = Conn()
        ws = connection(c)
        broadcast([ws], "last words")
        c.role.close(1000, "bye")                      # its close frame queues behind the message
        await settle()
        written = [(op, p) for op, _, _, p in c.written()]
        assert written[0] == (TEXT, b"last words")
        assert written[1][0] == CLOSE and code_of(written[1][1]) == 1000
        lose(c.stream)
    run(main)
