"""The handler trampoline (``cyserve/_core/http/eager.pyx``) on a fake transport, on both loops.

A handler's first step runs inside the pass that parsed its head, and inside the handler's own
Task: ``asyncio.current_task()`` is that Task from the first line, the same object after the
first suspension, and the one the server cancels.  What the trampoline is for stays true: a
handler that ends in its first step is answered before ``buffer_updated`` returns and leaves no
Task pending behind it.  On 3.11 that Task is a lazily initialised ``HandlerTask``, on 3.12+ an
eagerly started ``asyncio.Task``; the cases hold for both.

The protocol is fed from the test's own coroutine, so a Task (the test's) is current around each
feed: the handler must see its own Task, and the test's must be current again afterwards.
"""
from __future__ import annotations

import asyncio
import contextvars
import gc
import weakref
from typing import Any, Awaitable, Callable

from cyserve._core.http.server import server_connection
from cyserve._core.http.state import ServerState
from cyserve.config import ServerConfig, Timeouts

from .fakes import FakeTransport, feed, responses, settle

Entry = Callable[[Any, Any, Any], Awaitable[None]]
REQUEST_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("request_var", default="unset")


def get(target: str = "/") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode("latin-1")


class Conn:
    """One server connection on a FakeTransport, its entry point given by the test."""

    def __init__(self, entry: Entry, config: ServerConfig | None = None) -> None:
        self.state = ServerState(entry, config or ServerConfig(), asyncio.get_running_loop())
        self.stream = server_connection(self.state)
        self.transport = FakeTransport()
        self.stream.connection_made(self.transport)

    def send(self, data: bytes) -> None:
        feed(self.stream, data)

    def statuses(self) -> list[int]:
        return responses(b"".join(self.transport.chunks)).statuses

    def bodies(self) -> list[bytes]:
        return [reply.body for reply in responses(b"".join(self.transport.chunks)).replies]

    def close(self) -> None:
        if not self.stream.lost:
            self.stream.connection_lost(None)


def test_the_first_step_runs_inside_a_task_of_its_own_and_is_answered_at_once(run):
    async def main():
        seen: list[Any] = []
        outer = asyncio.current_task()
        before = asyncio.all_tasks()

        async def entry(conn, head, body):
            task = asyncio.current_task()
            seen.append((isinstance(task, asyncio.Task), task is outer, task.done()))
            conn.respond(200, None, b"ok")

        conn = Conn(entry)
        conn.send(get())
        # Answered inside buffer_updated: no loop turn, and nothing left scheduled.
        assert conn.statuses() == [200]
        assert seen == [(True, False, False)]
        assert asyncio.current_task() is outer
        assert asyncio.all_tasks() == before
        conn.close()
    run(main)


def test_a_handler_that_ends_in_its_first_step_leaves_no_task_behind(run):
    async def main():
        refs: list[weakref.ref[asyncio.Task[Any]]] = []
        before = asyncio.all_tasks()

        async def entry(conn, head, body):
            refs.append(weakref.ref(asyncio.current_task()))  # type: ignore[arg-type]
            if head.target == "/raise":
                raise LookupError("the handler failed")
            conn.respond(200, None, b"ok")

        conn = Conn(entry)
        conn.send(get() * 2 + get("/raise"))
        assert conn.statuses() == [200, 200, 500]
        assert len(refs) == 3 and len({id(ref) for ref in refs}) == 3
        assert [ref() for ref in refs] == [None, None, None]   # nothing kept them: gone already
        assert asyncio.all_tasks() == before
        conn.close()
    run(main)


def test_the_task_after_the_first_suspension_is_the_same_task(run):
    async def main():
        seen: list[Any] = []
        gate = asyncio.get_running_loop().create_future()

        async def entry(conn, head, body):
            seen.append(asyncio.current_task())
            await gate
            seen.append(asyncio.current_task())
            conn.respond(200, None, b"later")

        conn = Conn(entry)
        conn.send(get())
        assert conn.statuses() == []
        assert seen[0] in asyncio.all_tasks() and not seen[0].done()
        gate.set_result(None)
        await settle()
        assert conn.statuses() == [200]
        assert seen[1] is seen[0] and seen[0].done() and seen[0].result() is None
        conn.close()
    run(main)


def test_a_kept_task_ends_as_its_handler_ended(run):
    async def main():
        kept: list[asyncio.Task[Any]] = []

        async def entry(conn, head, body):
            task = asyncio.current_task()
            assert task is not None
            kept.append(task)
            if head.target == "/raise":
                raise LookupError("the handler failed")
            conn.respond(200, None, b"ok")

        conn = Conn(entry)
        conn.send(get("/ok"))
        conn.send(get("/raise"))
        assert conn.statuses() == [200, 500]   # both answered in the pass that parsed them
        await settle()
        returned, raised = kept
        assert returned.done() and returned.result() is None
        assert raised.done() and isinstance(raised.exception(), LookupError)
        conn.close()
    run(main)


def test_a_kept_task_whose_handler_raised_is_not_reported_as_never_retrieved(run):
    async def main():
        kept: list[asyncio.Task[Any]] = []

        async def entry(conn, head, body):
            task = asyncio.current_task()
            assert task is not None
            kept.append(task)
            raise LookupError("the handler failed")

        conn = Conn(entry)
        conn.send(get())
        assert conn.statuses() == [500]
        await settle()
        assert kept[0].done()
        kept.clear()
        gc.collect()   # a Task with an unretrieved exception reports it to the loop when freed
        await settle()
        conn.close()
    run(main)   # the fixture fails on anything the loop's exception handler saw


def test_cancellation_asked_for_in_the_first_step_reaches_the_task(run):
    async def main():
        seen: list[Any] = []

        async def entry(conn, head, body):
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            task.cancel("asked early")   # the last message is the one the CancelledError carries
            task.uncancel()
            seen.append(task.cancelling())
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError as exc:
                seen.append(("cancelled", task.cancelling(), exc.args))
                task.uncancel()
            conn.respond(200, None, b"survived")

        conn = Conn(entry)
        conn.send(get())
        await settle()
        assert seen == [1, ("cancelled", 1, ("asked early",))]
        assert conn.statuses() == [200]
        conn.close()
    run(main)


def test_a_cancel_before_the_task_takes_over_cancels_what_the_handler_awaits(run):
    async def main():
        seen: list[Any] = []
        awaited = asyncio.get_running_loop().create_future()

        async def entry(conn, head, body):
            seen.append(asyncio.current_task())
            try:
                await awaited
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise

        conn = Conn(entry)
        conn.send(get())
        seen[0].cancel()   # before the loop turned even once: as a Task waiting on it would
        await settle()
        assert seen[1:] == ["cancelled"] and awaited.cancelled() and seen[0].cancelled()
        assert conn.statuses() == [500]
        conn.close()
    run(main)


def test_the_task_works_fully_in_the_first_step(run):
    async def main():
        loop = asyncio.get_running_loop()
        seen: dict[str, Any] = {}
        done: list[asyncio.Task[Any]] = []

        async def entry(conn, head, body):
            task = asyncio.current_task()
            assert task is not None
            seen["loop"] = task.get_loop()
            seen["name"] = task.get_name()
            seen["repr"] = repr(task)
            seen["stack"] = task.get_stack()
            seen["code"] = task.get_coro().cr_code
            task.add_done_callback(done.append)
            REQUEST_VAR.set("set after the Task was made whole")
            await asyncio.sleep(0)
            seen["var"] = REQUEST_VAR.get()
            conn.respond(200, None, b"ok")

        conn = Conn(entry)
        conn.send(get())
        await settle()
        assert seen["loop"] is loop and seen["name"].startswith("Task-")
        assert "pending" in seen["repr"] and seen["stack"]
        assert seen["code"] is entry.__code__
        assert seen["var"] == "set after the Task was made whole"
        assert len(done) == 1 and done[0].done() and conn.statuses() == [200]
        conn.close()
    run(main)


def test_a_done_callback_added_in_a_step_that_ends_runs(run):
    async def main():
        done: list[asyncio.Task[Any]] = []

        async def entry(conn, head, body):
            task = asyncio.current_task()
            assert task is not None
            task.add_done_callback(done.append)
            conn.respond(200, None, b"ok")

        conn = Conn(entry)
        conn.send(get())
        assert conn.statuses() == [200]
        await settle()
        assert len(done) == 1 and done[0].result() is None
        conn.close()
    run(main)


def test_contextvars_stay_per_request(run):
    async def main():
        seen: list[str] = []
        gates: list[asyncio.Future[None]] = []

        async def entry(conn, head, body):
            seen.append(f"{head.target} sees {REQUEST_VAR.get()}")
            REQUEST_VAR.set(head.target)
            if head.target == "/wait":
                gate = asyncio.get_running_loop().create_future()
                gates.append(gate)
                await gate
                seen.append(f"{head.target} resumed with {REQUEST_VAR.get()}")
            conn.respond(200, None, REQUEST_VAR.get().encode())

        first, second = Conn(entry), Conn(entry)
        first.send(get("/wait"))
        second.send(get("/quick") + get("/quick-again"))
        gates[0].set_result(None)
        await settle()
        assert seen == ["/wait sees unset", "/quick sees unset", "/quick-again sees unset",
                        "/wait resumed with /wait"]
        assert REQUEST_VAR.get() == "unset"
        assert first.bodies() == [b"/wait"] and second.bodies() == [b"/quick", b"/quick-again"]
        first.close()
        second.close()
    run(main)


def test_a_timeout_entered_in_the_first_step_fires_and_lets_through(run):
    async def main():
        async def entry(conn, head, body):
            try:
                async with asyncio.timeout(0 if head.target == "/fire" else 5):
                    await asyncio.sleep(0.01 if head.target == "/fire" else 0)
            except TimeoutError:
                conn.respond(504, None, b"fired")
                return
            conn.respond(200, None, b"in time")

        conn = Conn(entry)
        conn.send(get("/fire"))
        await asyncio.sleep(0.1)
        conn.send(get("/quick"))
        await settle()
        assert conn.bodies() == [b"fired", b"in time"]
        conn.close()
    run(main)


def test_the_server_cancels_the_task_the_handler_saw(run):
    async def main():
        seen: list[Any] = []

        async def entry(conn, head, body):
            first = asyncio.current_task()
            try:
                async with asyncio.timeout(30):
                    await asyncio.sleep(30)
            except asyncio.CancelledError:
                # The server's cancel, not the timeout's: asyncio.timeout lets it through.
                seen.append(asyncio.current_task() is first)
                raise

        conn = Conn(entry, ServerConfig(timeouts=Timeouts(handler_s=0.05)))
        conn.send(get())
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.02)
        await settle()
        assert seen == [True] and conn.statuses() == [503]
        conn.close()
    run(main)


def test_a_task_factory_still_makes_the_handler_tasks(run):
    async def main():
        loop = asyncio.get_running_loop()
        made: list[asyncio.Task[Any]] = []
        seen: list[Any] = []

        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
            task = asyncio.Task(coro, loop=loop, **kwargs)
            made.append(task)
            return task

        async def entry(conn, head, body):
            seen.append(asyncio.current_task())
            await asyncio.sleep(0)
            seen.append(asyncio.current_task())
            conn.respond(200, None, b"ok")

        loop.set_task_factory(factory)
        try:
            conn = Conn(entry)
            conn.send(get())
            await settle()
        finally:
            loop.set_task_factory(None)
        assert seen == [made[0], made[0]] and conn.statuses() == [200]
        conn.close()
    run(main)
