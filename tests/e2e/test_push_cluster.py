"""Push across processes, everything real (issue 11 §5 "cross-process", examples/push_cluster.md):
a redis-server, ``cyserve examples.push_cluster:app --workers 2`` as the user runs it, members
spread over both workers (each connection asks which worker holds it), and a third process
(examples/push_cluster_publish.py: a Hub on its own RedisBroker, no listener) publishing a
burst to the group and pushing to one client on each worker.  A client dropped on one worker
resumes on the other with everything it missed; a rolling restart resumes every session; a
Redis outage loses nothing silently; SIGTERM: every member hears CLOSE ``going_away``.  Each
test runs with the cluster, the publisher and the members on uvloop, then on stdlib asyncio;
every wait is bounded and every process is killed at teardown.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from cyserve.errors import PushCallError, PushClosed
from cyserve.push import Gap, Push, PushClient, SessionReset, connect
from tests.push.redis_support import RedisServer, free_port
from tests.server.processes import Server
from tests.support import fetch

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "e2e-cluster-token"
GROUP = "burst"
BURST = 10_000
START_S = 30.0   # from launching the cluster to a member on each worker
BURST_S = 60.0   # from launching the publisher to every member holding every message
STEP_S = 10.0    # one call, one push, one process that must end by itself
STOP_S = 20.0    # from SIGTERM to the supervisor's exit
PUBLISH_WAIT_S = 1.0  # how long the cluster's publishes wait for an unreachable Redis
JSON_BODY = [("Content-Type", "application/json")]


def loop_name(request: pytest.FixtureRequest) -> str:
    """The loop of this parametrisation of the ``run`` fixture (tests/conftest.py): the
    cluster and the publisher run on it too."""
    name = request.node.callspec.params["run"]
    assert name in ("uvloop", "asyncio")
    return str(name)


class Cluster:
    """``cyserve examples.push_cluster:app --workers 2`` on a free HTTP port and a free push port,
    on the Redis given; its output goes to files (tests/server/processes.py's ``Server``, whose
    ``close`` ends the supervisor and every process under it)."""

    def __init__(self, tmp_path: Path, redis_url: str, loop: str) -> None:
        self.redis_url = redis_url
        self.loop = loop
        self.push_port = free_port()
        self.http_port = free_port()
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("CYSERVE_", "UVICORN_")) and key != "WEB_CONCURRENCY"}
        env.update(PUSH_REDIS_URL=redis_url, PUSH_PORT=str(self.push_port), PUSH_TOKEN=TOKEN,
                   PUSH_PUBLISH_TIMEOUT_S=str(PUBLISH_WAIT_S), PYTHONPATH=str(ROOT))
        out_path = tmp_path / f"cluster-{time.monotonic_ns()}.out"
        err_path = out_path.with_suffix(".err")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cyserve", "examples.push_cluster:app", "--workers", "2",
                 "--host", "127.0.0.1", "--port", str(self.http_port), "--loop", loop,
                 "--timeout-graceful-shutdown", "5"],
                cwd=ROOT, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        self.server = Server(proc, out_path, err_path)

    @property
    def tcp_url(self) -> str:
        return f"tcp://127.0.0.1:{self.push_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.http_port}/push"

    def output(self) -> str:
        return self.server.output()


@pytest.fixture
def cluster(tmp_path: Path, redis_server: RedisServer,
            request: pytest.FixtureRequest) -> Iterator[Cluster]:
    started = Cluster(tmp_path, redis_server.url, loop_name(request))
    try:
        started.server.wait_listening(START_S)
        yield started
    finally:
        started.server.close()


class Member:
    """A push client of the cluster and the worker (pid) holding its connection."""

    def __init__(self, client: PushClient, pid: int, transport: str) -> None:
        self.client = client
        self.pid = pid
        self.transport = transport

    @property
    def client_id(self) -> str:
        client_id = self.client.client_id
        assert client_id is not None
        return client_id


async def open_member(url: str, name: str, transport: str, reconnect: bool) -> Member | None:
    """A member, or None when the connection was refused (a worker not listening yet)."""
    client = connect(url, {"name": name, "token": TOKEN}, reconnect=reconnect,
                     connect_timeout_s=STEP_S, max_queued_pushes=2 * BURST)
    try:
        await client.open()
    except (OSError, PushClosed):
        return None
    try:
        me = await client.call("whoami", timeout_s=STEP_S)
    except BaseException:
        await client.close()
        raise
    assert me["client_id"] == client.client_id and me["name"] == name
    return Member(client, int(me["pid"]), transport)


async def spread_members(cluster: Cluster, *, tcp_per_worker: int, ws_per_worker: int,
                         reconnect: bool = False) -> list[Member]:
    """Connect until each of the two workers holds ``tcp_per_worker`` TCP members (the kernel
    spreads the SO_REUSEPORT port by a hash of the client's address; a worker that has not
    bound it yet gets none, hence a deadline rather than a count of attempts), then up to
    ``ws_per_worker`` WebSocket members per worker (the HTTP socket is one accept queue that
    both workers take from, unevenly: at least one is required, within 40 attempts).
    Connections beyond those are closed."""
    kept: list[Member] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_S
    for transport, url, per_worker, attempts in (
            ("tcp", cluster.tcp_url, tcp_per_worker, None),
            ("websocket", cluster.ws_url, ws_per_worker, 40)):
        counts: dict[int, int] = {}
        attempt = 0
        while per_worker and not (len(counts) == 2 and min(counts.values()) >= per_worker):
            if attempts is not None and attempt >= attempts:
                break
            assert loop.time() < deadline, (
                f"{transport} members by worker {counts} after {START_S} s:\n{cluster.output()}")
            attempt += 1
            member = await open_member(url, f"{transport}{attempt}", transport, reconnect)
            if member is None:
                await asyncio.sleep(0.05)
            elif counts.get(member.pid, 0) >= per_worker:
                await member.client.close()
                await asyncio.sleep(0.01)
            else:
                counts[member.pid] = counts.get(member.pid, 0) + 1
                kept.append(member)
    workers = cluster.server.workers()
    pids = {member.pid for member in kept}
    assert len(pids) == 2 and pids <= workers, (pids, workers, cluster.output())
    for pid in pids:
        assert sum(1 for m in kept if m.pid == pid and m.transport == "tcp") == tcp_per_worker
    assert any(m.transport == "websocket" for m in kept) or not ws_per_worker
    return kept


async def close_all(members: list[Member]) -> None:
    await asyncio.gather(*(member.client.close() for member in members), return_exceptions=True)


async def third_process(cluster: Cluster, *args: str) -> dict[str, Any]:
    """examples/push_cluster_publish.py with ``args``, on the cluster's Redis and loop: its
    JSON summary, once it exited 0 (bounded)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "examples" / "push_cluster_publish.py"),
        "--redis", cluster.redis_url, "--loop", cluster.loop, *args,
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), BURST_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, (proc.returncode, out, err.decode())
    summary = json.loads(out.decode().splitlines()[-1])
    assert isinstance(summary, dict)
    return summary


async def receive(member: Member, count: int) -> list[Push | Gap | SessionReset]:
    client = member.client
    return [await client.__anext__() for _ in range(count)]


def check_burst(member: Member, items: list[Push | Gap | SessionReset]) -> None:
    """Exactly once and in order: sequence numbers 1..BURST without a hole, payloads n = 0..BURST-1
    in the publisher's order, nothing but pushes of the group."""
    where = f"member {member.client_id} ({member.transport}) on worker {member.pid}"
    for index, item in enumerate(items):
        assert isinstance(item, Push), f"{where}: item {index} is {item!r}"
        assert (item.seq, item.group, item.data) == (index + 1, GROUP, {"n": index}), (
            f"{where}: item {index} is {item!r}")


def test_a_burst_from_a_third_process_reaches_every_member_on_both_workers_once_in_order(
        run: Any, cluster: Cluster) -> None:
    """10,000 publishes in a burst from a process serving nothing; members on both workers,
    over TCP and WebSocket, each get all of them exactly once, in order, with their session's
    sequence numbers.  Then a push to one client on each worker from the same kind of process:
    routed through Redis to the worker holding it."""
    async def main() -> None:
        members = await spread_members(cluster, tcp_per_worker=2, ws_per_worker=1)
        try:
            for member in members:
                joined = await member.client.call("join", {"group": GROUP}, timeout_s=STEP_S)
                assert joined == {"ok": True}
            listed = await members[0].client.call("members", {"group": GROUP}, timeout_s=STEP_S)
            assert sorted(listed) == sorted(m.client_id for m in members)

            readers = [asyncio.ensure_future(receive(member, BURST)) for member in members]
            try:
                summary = await third_process(cluster, "--group", GROUP, "--count", str(BURST))
                assert summary["published"] == BURST
                done, pending = await asyncio.wait(readers, timeout=BURST_S)
                assert not pending, (
                    f"{len(pending)} member(s) short of {BURST} after {BURST_S} s; "
                    f"last_seq: {[m.client.last_seq for m in members]}")
            finally:
                for reader in readers:
                    reader.cancel()
                await asyncio.gather(*readers, return_exceptions=True)
            for member, reader in zip(members, readers):
                check_burst(member, reader.result())

            # Push-to-one from the third process: one client on each worker.
            targets = {}
            for member in members:
                targets.setdefault(member.pid, member)
            assert len(targets) == 2
            # --to=ID: a client id may begin with "-" (base64url).
            summary = await third_process(
                cluster, *[f"--to={m.client_id}" for m in targets.values()], '{"direct": true}')
            assert summary == {"delivered": {m.client_id: True for m in targets.values()}}
            for member in targets.values():
                item = await asyncio.wait_for(member.client.__anext__(), STEP_S)
                assert isinstance(item, Push), item
                assert (item.seq, item.group, item.data) == (BURST + 1, "", {"direct": True})
            # And over HTTP, whichever worker answers the request (404 for nobody).
            for member in targets.values():
                reply = await fetch(cluster.http_port, "POST", f"/clients/{member.client_id}",
                                    JSON_BODY, b'{"http": true}')
                assert (reply.status, json.loads(reply.body)) == (200, {"delivered": True})
                item = await asyncio.wait_for(member.client.__anext__(), STEP_S)
                assert isinstance(item, Push), item
                assert (item.seq, item.group, item.data) == (BURST + 2, "", {"http": True})
            reply = await fetch(cluster.http_port, "POST", "/clients/" + "A" * 22, JSON_BODY, b"1")
            assert reply.status == 404
            # The others got nothing more.
            for member in members:
                if member not in targets.values():
                    with pytest.raises(asyncio.TimeoutError):
                        await asyncio.wait_for(member.client.__anext__(), 0.2)
        finally:
            await close_all(members)
    run(main, timeout_s=START_S + 2 * BURST_S)


async def raw_json_member(
        cluster: Cluster) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int]:
    """A member speaking JSON lines on a socket of its own (as ``nc`` would), and its worker."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_S
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", cluster.push_port)
            break
        except ConnectionRefusedError:
            assert loop.time() < deadline, cluster.output()
            await asyncio.sleep(0.05)
    writer.write(json.dumps({"t": "hello", "name": "cyserve-push/1", "data": {
        "credentials": {"name": "raw", "token": TOKEN}}}).encode() + b"\n")
    welcome = json.loads(await asyncio.wait_for(reader.readline(), STEP_S))
    assert welcome["t"] == "welcome", welcome
    writer.write(b'{"t":"call","id":1,"name":"whoami"}\n')
    reply = json.loads(await asyncio.wait_for(reader.readline(), STEP_S))
    assert reply["t"] == "reply" and reply["id"] == 1, reply
    return reader, writer, int(reply["data"]["pid"])


def test_sigterm_closes_every_push_connection_with_going_away(run: Any, cluster: Cluster) -> None:
    """SIGTERM to the supervisor: both workers drain, every push connection gets CLOSE
    ``going_away`` (the client may resume elsewhere, docs/push-protocol.md §9) before its
    socket closes, and the supervisor exits 0."""
    async def main() -> None:
        members = await spread_members(cluster, tcp_per_worker=1, ws_per_worker=1)
        reader, writer, raw_pid = await raw_json_member(cluster)
        try:
            assert raw_pid in cluster.server.workers()
            cluster.server.signal(signal.SIGTERM)
            # The nc-style member: the CLOSE line, then the end of the stream.
            rest = await asyncio.wait_for(reader.read(), STOP_S)
            assert rest == (b'{"t":"close","name":"going_away",'
                            b'"data":"the server is shutting down"}\n')
            for member in members:
                with pytest.raises(PushClosed) as closed:
                    await asyncio.wait_for(member.client.__anext__(), STOP_S)
                assert closed.value.code == "going_away"
                assert closed.value.text != "the connection was lost", (
                    f"{member.transport} member on worker {member.pid}: no CLOSE frame")
            code = await asyncio.get_running_loop().run_in_executor(
                None, cluster.server.wait, STOP_S)
            assert code == 0, cluster.output()
        finally:
            writer.close()
            await asyncio.gather(writer.wait_closed(), return_exceptions=True)
            await close_all(members)
    run(main, timeout_s=START_S + 2 * STOP_S)


async def whoami(member: Member, not_on: set[int], timeout_s: float) -> int:
    """The pid of the worker holding the member's connection once it is none of ``not_on``
    (calls that the end of a connection failed are asked again; bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            pid = int((await member.client.call("whoami", timeout_s=STEP_S))["pid"])
        except PushClosed:
            pid = 0  # the call was on a connection that ended: ask on the next one
        if pid and pid not in not_on:
            return pid
        assert loop.time() < deadline, f"{member.client} still on {pid} after {timeout_s} s"
        await asyncio.sleep(0.1)


def test_a_rolling_restart_resumes_every_session(run: Any, cluster: Cluster) -> None:
    """SIGHUP restarts the workers one by one; each drains with CLOSE ``going_away`` and its
    members reconnect to another worker (an old one not yet draining, or a new one).  Every
    session moves with its client (docs/push-protocol.md §8.4, §9 ``going_away``): resumed, the
    same client id, its sequence numbers going on, its groups kept, nothing replayed twice and
    no SessionReset, although a resume may meet a worker just as it begins draining (REFUSE
    ``going_away``: the client tries again with the same token, which that worker did not
    use up).  Afterwards a publish from a third process reaches every member, numbered on."""
    async def main() -> None:
        members = await spread_members(cluster, tcp_per_worker=3, ws_per_worker=0,
                                       reconnect=True)
        try:
            for member in members:
                await member.client.call("join", {"group": GROUP}, timeout_s=STEP_S)
            await third_process(cluster, "--group", GROUP, '{"phase": "before"}')
            for member in members:
                item = await asyncio.wait_for(member.client.__anext__(), STEP_S)
                assert isinstance(item, Push) and (item.seq, item.data) == (1, {"phase": "before"})
            old = {member.pid for member in members}
            ids = [member.client_id for member in members]

            cluster.server.signal(signal.SIGHUP)
            for member in members:
                member.pid = await whoami(member, old, START_S)
            assert {m.pid for m in members} <= cluster.server.workers()

            for member, client_id in zip(members, ids):
                where = f"member {client_id} now on worker {member.pid}"
                assert member.client.resumed is True, f"{where}: not resumed\n{cluster.output()}"
                assert member.client_id == client_id, where
                # Nothing was published meanwhile: nothing to hear of (no GAP, no SessionReset).
                with pytest.raises(asyncio.TimeoutError):
                    item = await asyncio.wait_for(member.client.__anext__(), 0.3)
                    pytest.fail(f"{where}: {item!r}")
            await third_process(cluster, "--group", GROUP, '{"phase": "after"}')
            for member in members:
                item = await asyncio.wait_for(member.client.__anext__(), STEP_S)
                assert isinstance(item, Push), item
                assert (item.seq, item.data) == (2, {"phase": "after"}), item
        finally:
            await close_all(members)
    run(main, timeout_s=3 * START_S)


async def pushes_until(member: Member, data: Any) -> list[Push | Gap | SessionReset]:
    """What the member receives up to and including the push of ``data`` (bounded)."""
    items: list[Push | Gap | SessionReset] = []
    while True:
        item = await asyncio.wait_for(member.client.__anext__(), STEP_S)
        items.append(item)
        if isinstance(item, Push) and item.data == data:
            return items


def test_a_redis_outage_delays_or_fails_publishes_never_silently(
        run: Any, cluster: Cluster, redis_server: RedisServer) -> None:
    """Redis stopped (its data gone with it, as after a crash without persistence): a publish
    made meanwhile waits and is delivered once Redis is back; members hear of what the restart
    may have cost through GAPs (docs/push-protocol.md §8.3), never by silence.  A publish that
    waits longer than its bound fails loudly (HTTP 503, ERROR ``unavailable``) and is not
    delivered later behind the caller's back."""
    async def main() -> None:
        members = await spread_members(cluster, tcp_per_worker=1, ws_per_worker=0)
        loop = asyncio.get_running_loop()
        try:
            for member in members:
                await member.client.call("join", {"group": GROUP}, timeout_s=STEP_S)

            redis_server.stop()
            waiting = asyncio.ensure_future(fetch(cluster.http_port, "POST", f"/groups/{GROUP}",
                                                  JSON_BODY, b'{"phase": "outage"}'))
            await asyncio.sleep(PUBLISH_WAIT_S / 4)
            assert not waiting.done()
            await loop.run_in_executor(None, redis_server.start)
            reply = await asyncio.wait_for(waiting, STEP_S)
            assert reply.status == 200, reply
            for member in members:
                items = await pushes_until(member, {"phase": "outage"})
                assert all(isinstance(item, Gap) for item in items[:-1]), items

            redis_server.stop()
            started = loop.time()
            reply = await fetch(cluster.http_port, "POST", f"/groups/{GROUP}", JSON_BODY,
                                b'{"phase": "lost"}')
            assert reply.status == 503 and reply.headers["retry-after"] == "5", reply
            assert loop.time() - started < PUBLISH_WAIT_S + STEP_S
            with pytest.raises(PushCallError) as refused:
                await members[0].client.call("publish", {"group": GROUP, "data": {"phase": "lost"}},
                                             timeout_s=STEP_S)
            assert refused.value.code == "unavailable"
            await loop.run_in_executor(None, redis_server.start)
            deadline = loop.time() + STEP_S
            while True:  # the workers' publish connections come back within their backoff
                reply = await fetch(cluster.http_port, "POST", f"/groups/{GROUP}", JSON_BODY,
                                    b'{"phase": "back"}')
                if reply.status == 200:
                    break
                assert reply.status == 503 and loop.time() < deadline, reply
            for member in members:
                items = await pushes_until(member, {"phase": "back"})
                assert not any(isinstance(item, Push) and item.data == {"phase": "lost"}
                               for item in items), items
                assert all(isinstance(item, Gap) or item.data == {"phase": "back"}
                           for item in items), items
        finally:
            await close_all(members)
    run(main, timeout_s=START_S + 6 * STEP_S)


class RawSession:
    """A client on its own JSON-lines socket (as ``nc``), to drop a connection without CLOSE and
    come back with a chosen resume token and ``last_seq`` (docs/push-protocol.md §8.4)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.next_call = 1

    async def hello(self, **resume: Any) -> dict[str, Any]:
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", self.cluster.push_port), STEP_S)
        self.next_call = 1
        await self.send({"t": "hello", "name": "cyserve-push/1",
                         "data": {"credentials": {"name": "raw", "token": TOKEN}, **resume}})
        welcome = await self.frame()
        assert welcome["t"] == "welcome", welcome
        data = welcome["data"]
        assert isinstance(data, dict)
        return data

    async def send(self, frame: dict[str, Any]) -> None:
        assert self.writer is not None
        self.writer.write(json.dumps(frame).encode() + b"\n")
        await self.writer.drain()

    async def frame(self) -> dict[str, Any]:
        assert self.reader is not None
        line = await asyncio.wait_for(self.reader.readline(), STEP_S)
        assert line.endswith(b"\n"), (line, self.cluster.output())
        frame = json.loads(line)
        assert isinstance(frame, dict)
        return frame

    async def call(self, name: str, data: Any = None) -> tuple[Any, list[dict[str, Any]]]:
        """The reply's data, and the pushes that came before it."""
        call_id = self.next_call
        self.next_call += 1
        await self.send({"t": "call", "id": call_id, "name": name, "data": data})
        pushes = []
        while True:
            frame = await self.frame()
            if frame["t"] == "reply" and frame["id"] == call_id:
                return frame["data"], pushes
            assert frame["t"] in ("push", "gap"), frame
            pushes.append(frame)

    def drop(self) -> None:
        """The connection breaks: no CLOSE, a reset (the session waits for a resume)."""
        assert self.writer is not None
        self.writer.transport.abort()


def test_a_dropped_client_resumes_on_the_other_worker_with_everything_it_missed(
        run: Any, cluster: Cluster) -> None:
    """A session's history lives on the worker that held it; a client dropped there that comes
    back on the other worker (the kernel picks) gets its session handed over through Redis
    (``take_token`` + ``locate``, then the old worker's ``n:<node>`` channel): the same client
    id, ``resumed: true``, every push published while it was away, in order, with its sequence
    numbers going on, and its groups.  Resumes that land on the same worker again are resumed
    there; the client drops and comes back until it lands on the other one (bounded)."""
    async def main() -> None:
        publisher = await spread_members(cluster, tcp_per_worker=1, ws_per_worker=0)
        raw = RawSession(cluster)
        try:
            welcome = await raw.hello()
            client_id, token, last_seq = welcome["client_id"], welcome["resume_token"], 0
            me, _ = await raw.call("whoami")
            first_pid = int(me["pid"])
            assert (await raw.call("join", {"group": GROUP}))[0] == {"ok": True}
            published = 0
            for attempt in range(24):
                raw.drop()
                for _ in range(3):
                    published += 1
                    await publisher[0].client.call(
                        "publish", {"group": GROUP, "data": {"n": published}}, timeout_s=STEP_S)
                welcome = await raw.hello(resume_token=token, last_seq=last_seq)
                assert (welcome["client_id"], welcome["resumed"], welcome["next_seq"]) == (
                    client_id, True, last_seq + 1), welcome
                token = welcome["resume_token"]
                me, pushes = await raw.call("whoami")
                # What it missed, in order, numbered on from where it was (the pushes made
                # before the WELCOME are replayed before any reply, §8.4).
                assert [(p["t"], p["id"], p["name"], p["data"]) for p in pushes] == [
                    ("push", seq, GROUP, {"n": seq}) for seq in range(last_seq + 1, published + 1)]
                last_seq = published
                if int(me["pid"]) != first_pid:
                    break
            else:
                pytest.fail(f"24 resumes all landed on worker {first_pid}")
            # The groups went with it: a publish now reaches it on its new worker.
            await publisher[0].client.call(
                "publish", {"group": GROUP, "data": {"n": published + 1}}, timeout_s=STEP_S)
            push = await raw.frame()
            assert (push["t"], push["id"], push["data"]) == (
                "push", published + 1, {"n": published + 1})
        finally:
            if raw.writer is not None:
                raw.writer.close()
                await asyncio.gather(raw.writer.wait_closed(), return_exceptions=True)
            await close_all(publisher)
    run(main, timeout_s=START_S + 6 * STEP_S)
