"""The push hub: sessions with client ids, groups, push-to-one, publish and broadcast, commands,
across the nodes of a deployment through a broker (docs/push-protocol.md §6-§9).

::

    hub = Hub()                                   # in-process; Hub(broker=RedisBroker(url)) across hosts

    @hub.on_connect
    async def auth(conn, credentials):           # raise PushDenied to refuse; return the identity
        ...

    @hub.command("chat.send")
    async def chat_send(conn, data):
        await hub.publish("room:" + data["room"], {"from": conn.client_id, "text": data["text"]})
        return {"ok": True}

One owner per fact: the hub owns the sessions (``cyserve.push.session``: numbers, history),
their lifecycle (HELLO to WELCOME, detach, resume, end) and the public operations, with two
parts of its own: ``Groups`` (``cyserve.push.groups``: this node's members, subscriptions and
the fan-out) and ``Router`` (``cyserve.push.routing``: requests to other nodes, handovers).
Each ``Connection`` owns one connection's protocol state; each link owns its bytes.

Across nodes (design decisions 1, 2 and 4 of issue 11): every node subscribes to ``all`` and
``n:<its node id>``, and to ``g:<group>`` while it holds members of the group (connected, or
detached within their resume window).  A publish is one broker message, whatever the number of
members; each node fans it out to its own members with one ``PushTemplate`` per framing and
codec in use.  Requests about one client (send, join, leave, disconnect, online, a resume's
handover) go to the node holding it (``broker.locate``) over ``n:<node>``, and each waits for
its reply a bounded time.  Sequence numbers and the resume history are the holding node's; a
resume landing on another node moves the session there (``Router.handover``).
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from dataclasses import replace
from typing import Any, Awaitable, Callable, Coroutine, Final, Iterable, TypeVar

from cyserve._core.push.frames import FLAG_ACK_REQUESTED
from cyserve.config import PushLimits
from cyserve.errors import BrokerUnavailable, PushClosed, PushDenied
from cyserve.push.broker import Broker, LocalBroker
from cyserve.push.codecs import Codec, codec, pack
from cyserve.push.connection import Connection
from cyserve.push.groups import Groups, fanout
from cyserve.push.link import Link
from cyserve.push.routing import TOKEN_TTL_S, T_REPLY, T_REQUEST, Router
from cyserve.push.session import (
    Gap, Message, Session, envelope, open_envelope, pack_fields, unpack_fields,
)

__all__ = ["Hub", "PUSH_SUBPROTOCOL"]

_log = logging.getLogger("cyserve.push")

#: The WebSocket subprotocol a push client may offer (§13).
PUSH_SUBPROTOCOL: Final = "cyserve-push.1"

# Envelope tags: printable, so a message read in redis-cli says what it is (the requests'
# "Q" and replies' "R" are cyserve.push.routing's).
_T_PUBLISH: Final = 0x50     # "P": g:<group>   [mid, group, exclude, packed value]
_T_BROADCAST: Final = 0x41   # "A": all         [mid, exclude, packed value]

# A request to another node (send, join, ...) waits this long for the reply before it counts
# as unanswered (the node is gone, or the broker lost the message): Hub.route_timeout_s.
_ROUTE_TIMEOUT_S: Final = 5.0

# A stopping hub waiting for its clients to resume on another node asks the broker this often
# whether one is still up to take them (every other node may be stopping too).
_TAKERS_EVERY_S: Final = 0.5

_NEW, _RUNNING, _STOPPING, _STOPPED = range(4)

_T = TypeVar("_T")
Handler = Callable[[Connection, Any], Awaitable[Any]]


def check_name(name: str, what: str = "a group name") -> None:
    """§3.3: 1..255 bytes of UTF-8 without C0 controls or DEL (ValueError otherwise)."""
    if type(name) is not str:
        raise TypeError(f"{what} is a str, not {type(name).__name__}")
    if not name:
        raise ValueError(f"{what} cannot be empty")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"{what} must be valid UTF-8 (no lone surrogates)") from None
    if size > 255:
        raise ValueError(f"{what} is at most 255 UTF-8 bytes, got {size}")
    if any(ord(char) < 0x20 or char == "\x7f" for char in name):
        raise ValueError(f"{what} cannot hold control characters (§3.3)")


class Hub:
    """A push hub (see the module docstring).

    ``broker``: how this node reaches the others (``LocalBroker()``, in-process, when None);
    ``limits``: every limit and timer (``PushLimits``); ``codecs``: the payload codecs a client
    may ask for (§6.3).
    """

    def __init__(self, broker: Broker | None = None, *, limits: PushLimits = PushLimits(),
                 codecs: Iterable[str] = ("json", "bytes", "xml")) -> None:
        if not isinstance(limits, PushLimits):
            raise TypeError(f"limits must be a PushLimits, not {type(limits).__name__}")
        self.limits = limits
        self.broker: Broker = broker if broker is not None else LocalBroker()
        #: The codecs clients may ask for, by name.
        self.codecs: dict[str, Codec] = {name: codec(name) for name in codecs}
        if not self.codecs:
            raise ValueError("a hub needs at least one codec")
        #: Command handlers by name (``@hub.command``).
        self.commands: dict[str, Handler] = {}
        self.drop_oldest = limits.slow_consumer == "drop_oldest"
        #: How long a request to another node waits for its answer (then: not delivered,
        #: ``resumed: false``, or ``BrokerUnavailable`` for a join or leave).
        self.route_timeout_s = _ROUTE_TIMEOUT_S
        self._on_connect: Callable[[Connection, Any], Awaitable[Any]] | None = None
        self._on_disconnect: Callable[[Connection, str], Awaitable[Any]] | None = None
        self._sessions: dict[str, Session] = {}
        # Sessions by the SHA-256 of their current resume token (§6.5): a resume on the node
        # holding its session is decided here, whatever the broker's directory remembers.
        self._tokens: dict[str, Session] = {}
        #: This node's groups (their members here and the subscriptions).
        self.groups = Groups(self.broker, limits)
        self._conns: set[Connection] = set()
        self._open: set[Connection] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._router = Router(self)
        # Message ids: unique per node and publish, to tell a handed-over history's messages
        # apart from those the new node saw meanwhile.  The prefix is drawn by start, as the
        # broker's node id is: workers forked after the hub was built must not share it.
        self._mid_prefix = b""
        self._mid_count = 0
        self._state = _NEW
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._stopping: asyncio.Task[None] | None = None
        # The directories written again after the broker lost them (_on_reset).
        self._resetting: asyncio.Task[None] | None = None
        self._reset_again = False
        self._conns_gone: asyncio.Event | None = None
        self._sessions_gone: asyncio.Event | None = None

    # ------------------------------------------------------------------ registration
    def on_connect(self, fn: Callable[[Connection, Any], Awaitable[Any]]) -> Callable[[Connection, Any], Awaitable[Any]]:
        """The auth hook (§6.6): ``async def auth(conn, credentials) -> identity``, run on every
        HELLO; ``PushDenied`` refuses (REFUSE ``unauthorized``).  Without it everyone is
        accepted with the identity None."""
        _check_async(fn, "on_connect")
        self._on_connect = fn
        return fn

    def on_disconnect(self, fn: Callable[[Connection, str], Awaitable[Any]]) -> Callable[[Connection, str], Awaitable[Any]]:
        """``async def gone(conn, code)``, once per session when it ends: the client's CLOSE
        ``normal``, ``hub.disconnect`` (``policy``), its resume window expired (the code its
        connection ended with), or the hub stopping (``going_away``).  Not on a drop the client
        may still resume, nor when its session moves to another node."""
        _check_async(fn, "on_disconnect")
        self._on_disconnect = fn
        return fn

    def command(self, name: str) -> Callable[[Handler], Handler]:
        """``@hub.command("chat.send")``: ``async def handler(conn, data) -> result`` answers a
        CALL of that name with REPLY ``result``; ``PushDenied(text, code)`` answers ERROR
        ``code`` (default ``denied``) with its text; any other exception ERROR
        ``handler_error`` with a generic text (logged with its traceback)."""
        check_name(name, "a command name")

        def register(fn: Handler) -> Handler:
            _check_async(fn, f"command {name!r}")
            if name in self.commands:
                raise ValueError(f"a command named {name!r} is already registered")
            self.commands[name] = fn
            return fn
        return register

    @property
    def node_id(self) -> str:
        return self.broker.node_id

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the hub is not started: await hub.start() first")
        return self._loop

    @property
    def connections(self) -> int:
        """Connections open on this node now (any state)."""
        return len(self._conns)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Connect the broker and start the heartbeat.  Idempotent."""
        if self._state != _NEW:
            return
        self._loop = asyncio.get_running_loop()
        self._mid_prefix = secrets.token_bytes(8)
        await self.broker.start(self._on_message, self._on_lost, self._on_reset)
        await self.broker.subscribe("all")
        self._state = _RUNNING
        self._ticker = self._loop.create_task(self._tick(), name="cyserve.push: heartbeat")

    async def stop(self, grace_s: float = 5.0) -> None:
        """CLOSE ``going_away`` to every connection, wait up to ``grace_s`` for them to flush
        and close (then drop the rest) and, when other nodes share the broker, for their
        clients to resume there (their sessions move); end what is left; disconnect the
        broker.  Idempotent: a second call waits for the first.

        The stop runs in a task of its own: a caller cancelled while it waits (an App's drain,
        whose task is cancelled once the HTTP side has finished) does not cut it short, and
        the next call waits for the same stop.  Cut short, it would leave the sessions neither
        handed over nor ended and the broker's entries naming a node that is gone."""
        if self._stopping is None:
            if self._state == _NEW:
                self._state = _STOPPED
            if self._state == _STOPPED:
                return
            self._state = _STOPPING
            self._stopping = self.loop.create_task(self._stop(max(0.0, grace_s)),
                                                   name="cyserve.push: stop")
        await asyncio.shield(self._stopping)

    async def _stop(self, grace_s: float) -> None:
        try:
            await self._wind_down(grace_s)
        finally:
            self._state = _STOPPED

    async def _wind_down(self, grace_s: float) -> None:
        loop = self.loop
        deadline = loop.time() + grace_s
        try:
            # No session comes over from another node from now on, and the other nodes stop
            # counting this one as a place for theirs (a stop of every node ends at once).
            await self.broker.withdraw()
        except BrokerUnavailable as exc:
            _log.warning("push hub: could not withdraw from the broker: %s", exc)
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for conn in list(self._conns):
            conn.shutdown()
        if self._conns:
            self._conns_gone = asyncio.Event()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._conns_gone.wait(), max(0.0, deadline - loop.time()))
        for conn in list(self._conns):
            conn.abort()
        # §9: going_away keeps a session for its resume.  While this node drains, a client
        # that resumes on another node takes its session there (Router.handover answers for as
        # long as the broker is open); what is still here at the deadline dies with this node
        # (its history is in its memory) and ends.  The wait lasts only while another node is
        # up and not stopping itself (broker.takers()): alone, or when every node stops, there
        # is nowhere to resume.  No session comes in meanwhile: HELLOs are refused, and one that
        # was being answered when the drain began has ended with its connection (which waited
        # for it, putting back what it took: _opening).
        if self._sessions:
            self._sessions_gone = asyncio.Event()
            while self._sessions and loop.time() < deadline and await self._takers_left(deadline):
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._sessions_gone.wait(),
                                           min(_TAKERS_EVERY_S, max(0.0, deadline - loop.time())))
        for session in list(self._sessions.values()):
            self._end(session, "going_away")
        pending = [task for task in self._tasks if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=max(0.0, deadline - loop.time()))
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks))
        self._router.cancel()
        await self.broker.close()

    async def _takers_left(self, deadline: float) -> bool:
        """Another node could still take this node's sessions; True when the broker cannot
        say by ``deadline`` (unreachable: the wait goes on to the deadline, as before there
        was a registry to ask)."""
        try:
            async with asyncio.timeout(max(0.0, deadline - self.loop.time())):
                return await self.broker.takers() > 0
        except (BrokerUnavailable, TimeoutError):
            return True

    def accept(self, link: Link) -> None:
        """A new connection (the TCP listener's, or ``serve_websocket``'s): its ``Connection``
        handles it from now on."""
        from cyserve.push.websocket import WebSocketLink
        conn = Connection(self, link, "websocket" if isinstance(link, WebSocketLink) else "tcp")
        self._conns.add(conn)
        link.start(conn)

    async def listen(self, host: str = "127.0.0.1", port: int = 0, *, sock: Any = None,
                     ssl: Any = None) -> asyncio.Server:
        """A TCP listener for this hub (``cyserve._core.push.role``); the caller closes it."""
        from cyserve._core.push.role import push_listener
        loop = self.loop
        factory = push_listener(loop, self.accept, max_frame_bytes=self.limits.max_frame_bytes)
        if sock is not None:
            return await loop.create_server(factory, sock=sock, ssl=ssl)
        return await loop.create_server(factory, host, port, ssl=ssl)

    async def serve_websocket(self, ws: Any) -> None:
        """The body of a WebSocket route (``cyserve.websocket.WebSocket``): accept it (with the
        subprotocol ``cyserve-push.1`` when offered, §13) and run it as a push connection
        until it closes."""
        from cyserve.websocket import WebSocket
        from cyserve.push.websocket import WebSocketLink
        if not isinstance(ws, WebSocket):
            raise TypeError(f"serve_websocket takes a cyserve WebSocket, not {type(ws).__name__}")
        if self._state != _RUNNING:
            await ws.reject(503, b"the push hub is not running")
            return
        limits = self.limits
        # The push protocol is the WebSocket's heartbeat (§13) and its fan-out writes one
        # prebuilt frame per member (§12): no WebSocket pings, no per-member compression.  The
        # WebSocket layer's message limit is twice the push limit, so a message somewhat over
        # it is answered by the push protocol (ERROR and CLOSE too_large, §11) and a far bigger
        # one by the WebSocket layer (1009) before it is buffered.
        size = min(2 * limits.max_frame_bytes, 1 << 30)
        ws.limits = replace(ws.limits, max_message_bytes=size, max_frame_bytes=size,
                            compression=False, ping_interval_s=None,
                            close_timeout_s=limits.close_timeout_s)
        await ws.accept(subprotocol=PUSH_SUBPROTOCOL if PUSH_SUBPROTOCOL in ws.subprotocols else None)
        link = WebSocketLink(ws, limits.max_frame_bytes)
        self.accept(link)
        await link.run()

    # ------------------------------------------------------------------ public operations
    async def send(self, client_id: str, message: Any, *, ack: bool = False,
                   timeout_s: float | None = None) -> bool:
        """Push ``message`` to one client, wherever it is connected.  True once it was
        written (with ``ack``: once the client acknowledged it, §8.2); False when the client
        is not connected, or the ACK did not come within ``timeout_s`` (None: within
        ``idle_timeout_s + resume_window_s``, by when a silent client's session has ended).
        ValueError for a message over ``max_frame_bytes``; TypeError for one that cannot be
        encoded."""
        self._on_loop()
        packed = self._packed("", message)
        wait_s = timeout_s if timeout_s is not None else (
            self.limits.idle_timeout_s + self.limits.resume_window_s)
        session = self._sessions.get(client_id)
        if session is not None:
            return await self._send_local(session, packed, ack, wait_s)
        node = await self._locate(client_id)
        if node is None:
            return False
        args = [client_id.encode(), packed, b"1" if ack else b"0", repr(wait_s).encode()]
        reply = await self._router.request(
            node, "send", args, wait_s + self.route_timeout_s if ack else self.route_timeout_s)
        return reply is not None and reply[:1] == [b"1"]

    async def publish(self, group: str, message: Any, *,
                      exclude: str | Iterable[str] | None = None) -> None:
        """Push ``message`` to every member of ``group`` on every node: one broker message,
        one template per framing and codec on each node (§12).  ``exclude``: client id(s) to
        leave out.  ValueError for a message over ``max_frame_bytes``;
        ``BrokerUnavailable`` when the broker cannot take it."""
        self._on_loop()
        check_name(group)
        packed = self._packed(group, message)
        await self.broker.publish("g:" + group, envelope(
            _T_PUBLISH, (self._next_mid(), group.encode(), _exclusions(exclude), packed)))

    async def broadcast(self, message: Any, *, exclude: str | Iterable[str] | None = None) -> None:
        """Push ``message`` to every client of every node (its PUSH's name is ``""``)."""
        self._on_loop()
        packed = self._packed("", message)
        await self.broker.publish("all", envelope(
            _T_BROADCAST, (self._next_mid(), _exclusions(exclude), packed)))

    async def join(self, client_id: str, group: str) -> None:
        """Add a client (of any node) to ``group``.  ValueError past
        ``max_groups_per_client`` or for a bad name; ``PushClosed`` when the client's session
        is gone."""
        self._on_loop()
        check_name(group)
        session = self._sessions.get(client_id)
        if session is not None:
            await self.groups.join(session, group)
            return
        self._check_routed(await self._route(client_id, "join", [group.encode()]), client_id)

    async def leave(self, client_id: str, group: str) -> None:
        """Remove a client (of any node) from ``group`` (nothing when it is not a member)."""
        self._on_loop()
        check_name(group)
        session = self._sessions.get(client_id)
        if session is not None:
            await self.groups.leave(session, group)
            return
        self._check_routed(await self._route(client_id, "leave", [group.encode()]), client_id)

    async def members(self, group: str) -> set[str]:
        """The client ids in ``group``, on every node."""
        check_name(group)
        return set(await self.broker.group_members(group))

    async def online(self, client_id: str) -> bool:
        """Whether the client is connected now, on any node (a session waiting for its
        resume is not)."""
        self._on_loop()
        session = self._sessions.get(client_id)
        if session is not None:
            return session.conn is not None
        reply = await self._route(client_id, "online", [])
        return reply is not None and reply[:1] == [b"1"]

    async def disconnect(self, client_id: str, reason: str = "") -> None:
        """End a client's session (on any node): CLOSE ``policy`` with ``reason`` if it is
        connected; ``on_disconnect`` follows with ``policy``."""
        self._on_loop()
        session = self._sessions.get(client_id)
        if session is not None:
            self._disconnect_local(session, reason)
            return
        await self._route(client_id, "disconnect", [reason.encode()])

    # ------------------------------------------------------------------ local operations
    def _on_loop(self) -> None:
        # The hub's state is its loop's alone (no locks): another thread, or another loop,
        # hands its calls over (asyncio.run_coroutine_threadsafe(hub.send(...), hub.loop)).
        if self._loop is None:
            raise RuntimeError("the hub is not started: await hub.start() first")
        if asyncio.get_running_loop() is not self._loop:
            raise RuntimeError("push hub operations run on the hub's own event loop (hub.loop): "
                               "from another thread use asyncio.run_coroutine_threadsafe")

    def _packed(self, name: str, message: Any) -> bytes:
        packed = pack(message)
        # The largest frame any framing makes of it (§11: the server never sends a frame over
        # the limit, so the publisher hears of it): the value once, the name escaped at worst,
        # the fixed keys and a 20-digit sequence number.
        size = len(packed) - 1 + 2 * len(name.encode("utf-8")) + 64
        if size > self.limits.max_frame_bytes:
            raise ValueError(f"a push of about {size} bytes passes max_frame_bytes "
                             f"({self.limits.max_frame_bytes})")
        return packed

    def _next_mid(self) -> bytes:
        self._mid_count += 1
        return self._mid_prefix + self._mid_count.to_bytes(8, "big")

    async def _send_local(self, session: Session, packed: bytes, ack: bool, wait_s: float) -> bool:
        conn = session.conn
        if conn is None:
            return False
        message = Message("", packed, FLAG_ACK_REQUESTED if ack else 0)
        seq = self._record(session, message)
        future: asyncio.Future[bool] | None = None
        if ack:
            future = self.loop.create_future()
            if session.waiters is None:
                session.waiters = {}
            session.waiters[seq] = future
        self._write(conn, message, seq)
        if future is None:
            return session.conn is conn
        try:
            return await asyncio.wait_for(future, wait_s)
        except asyncio.TimeoutError:
            return False
        finally:
            if session.waiters is not None:
                session.waiters.pop(seq, None)

    def _record(self, session: Session, entry: Message | Gap) -> int:
        limits = self.limits
        return session.record(entry, limits.resume_history_count, limits.resume_history_bytes)

    def _write(self, conn: Connection, message: Message, seq: int) -> None:
        conn.push(message.template(conn.tkey, conn.codec_obj, conn.framing,
                                   self.limits.max_frame_bytes), seq, message.size)

    def _gap(self, session: Session, count: int) -> None:
        first = self._record(session, Gap(count))
        if session.conn is not None:
            session.conn.gap(first, first + count - 1)

    def _disconnect_local(self, session: Session, reason: str) -> None:
        conn = session.conn
        if conn is not None:
            conn.close("policy", reason, end_code="policy")
        else:
            self._end(session, "policy")

    # ------------------------------------------------------------------ delivery
    def _on_message(self, channel: str, data: bytes) -> None:
        try:
            tag, fields = open_envelope(data)
            if tag == _T_PUBLISH:
                mid, raw_group, excluded, packed = fields
                group = raw_group.decode()
                self._deliver_group(group, Message(group, packed, 0, mid), _exclusion_set(excluded))
            elif tag == _T_BROADCAST:
                mid, excluded, packed = fields
                self._deliver_all(Message("", packed, 0, mid), _exclusion_set(excluded))
            elif tag == T_REQUEST:
                self._router.on_request(fields)
            elif tag == T_REPLY:
                self._router.on_reply(fields)
            else:
                raise ValueError(f"unknown envelope tag 0x{tag:02x}")
        except (ValueError, IndexError, UnicodeDecodeError):
            _log.exception("push: a malformed message on %s", channel)
        except Exception:
            # A failure here is this hub's bug; the broker's reader must go on with the next
            # message (it serves every channel of this node).
            _log.exception("push: delivering a message of %s failed", channel)

    def _deliver_group(self, name: str, message: Message, exclude: frozenset[str] | None) -> None:
        if self._router.incoming:
            for incoming in self._router.incoming.values():
                if name in incoming.groups:
                    incoming.messages.append((message, exclude))
        group = self.groups.get(name)
        if group is not None and group.members:
            fanout(group.members, message, exclude, self.limits)

    def _deliver_all(self, message: Message, exclude: frozenset[str] | None) -> None:
        for incoming in self._router.incoming.values():
            incoming.messages.append((message, exclude))
        if self._sessions:
            fanout(self._sessions.values(), message, exclude, self.limits)

    def _on_lost(self, channel: str, count: int) -> None:
        # The broker could not deliver ``count`` messages of ``channel``: every local member of
        # it gets that many numbers as a GAP (§8.3), never nothing.  ``count`` 0: how many, if
        # any, cannot be known (Redis lost its data while this node was cut off): one number,
        # and one GAP per member for all the channels of such a loss, not one per channel: a
        # member that got a GAP for an unknown count, and nothing after it, has been told all
        # there is to tell (Session.lost_mark).
        if channel.startswith("g:"):
            group = self.groups.get(channel[2:])
            sessions = list(group.members) if group is not None else []
        elif channel == "all":
            sessions = list(self._sessions.values())
        else:
            _log.warning("push: the broker lost %s of %s; the requests they carried time out",
                         f"{count} message(s)" if count else "messages", channel)
            return
        if count:
            told = sessions
        else:
            told = [session for session in sessions if session.lost_mark != session.next_seq]
            if not told:
                return  # each was told with another channel of the same loss
        _log.warning("push: the broker lost %s of %s; %d client(s) get a GAP",
                     f"{count} message(s)" if count else "an unknown number of messages",
                     channel, len(told))
        for session in told:
            self._gap(session, count or 1)
            if not count:
                session.lost_mark = session.next_seq

    def _on_reset(self) -> None:
        """The broker lost its directories (a Redis restarted without persistence or flushed,
        or that forgot this node while it was cut off): what this node holds goes there again
        (``_register_again``), so that ``members``, routing and resumes on other nodes work
        without waiting for the clients to join again."""
        if self._state != _RUNNING:
            return
        self._reset_again = True
        if self._resetting is None or self._resetting.done():
            self._resetting = self._spawn(self._register_again())

    async def _register_again(self) -> None:
        """Every session of this node, in the broker's directories again: its presence, its
        groups' members and its current resume token.  Runs until a pass finds no new loss;
        retried with a bounded backoff while the broker is unavailable."""
        broker = self.broker
        ttl_s = TOKEN_TTL_S + self.limits.resume_window_s
        failures = 0
        while self._reset_again:
            self._reset_again = False
            written = 0
            try:
                for session in list(self._sessions.values()):
                    client_id = session.client_id
                    if session.ended or session.moving:
                        continue
                    await broker.claim(client_id)
                    for name in sorted(session.groups):
                        await broker.group_add(name, client_id)
                    if session.token_hash:
                        await broker.put_token(session.token_hash, client_id, ttl_s)
                    if self._sessions.get(client_id) is not session or session.moving:
                        # It ended or moved meanwhile: what was just written is not this
                        # node's to say (release leaves another node's claim alone).
                        await broker.release(client_id)
                    written += 1
            except BrokerUnavailable as exc:
                failures += 1
                self._reset_again = True
                delay_s = min(5.0, 0.25 * (1 << min(failures, 5)))
                _log.warning("push: writing this node's %d session(s) in the broker again "
                             "failed (%s); again in %.1f s", len(self._sessions), exc, delay_s)
                await asyncio.sleep(delay_s)
                continue
            _log.info("push: the broker had lost its directories: %d session(s) of this node "
                      "written there again", written)

    # ------------------------------------------------------------------ connections
    def _admit(self, conn: Connection, credentials: Any, token: str | None,
               last_seq: int) -> asyncio.Task[None] | None:
        """A valid HELLO: REFUSE at once, or run the auth hook and the resume (a task)."""
        if self._state != _RUNNING:
            conn.refuse("going_away", "the server is shutting down")
            return None
        if len(self._conns) > self.limits.max_connections:
            conn.refuse("server_full", "too many connections; retry later")
            return None
        return self._spawn(self._authenticate(conn, credentials, token, last_seq))

    async def _authenticate(self, conn: Connection, credentials: Any, token: str | None,
                            last_seq: int) -> None:
        """The HELLO's task (``conn``'s, which may cancel it): the auth hook, then ``_opening``."""
        try:
            identity = None
            if self._on_connect is not None:
                identity = await self._on_connect(conn, credentials)
        except PushDenied as exc:
            conn.refuse("unauthorized", str(exc.text)[:1024])
            return
        except Exception:
            _log.exception("push on_connect hook failed")
            conn.close("internal_error", "the server failed")
            return
        # From here on a resume token may be used up and a session taken from another node.
        # That runs to its end in a task of its own, which gives what it took to this
        # connection or puts it back (§8.4: a client that got no WELCOME comes back with the
        # same token).  This HELLO may be called off meanwhile (its connection went, the hub
        # drains, the hello timed out): it then ends only once that is done, and the
        # connection's last word (REFUSE going_away while the hub drains) waits for its end,
        # so the client's next try, on any node, finds its token and its session again.
        hello = asyncio.current_task()
        assert hello is not None
        opening = self._spawn(self._opening(conn, hello, identity, token, last_seq))
        try:
            await asyncio.shield(opening)
        except asyncio.CancelledError:
            if not opening.done():
                await asyncio.wait((opening,))
            raise

    async def _opening(self, conn: Connection, hello: asyncio.Task[Any], identity: Any,
                    token: str | None, last_seq: int) -> None:
        """Resume the HELLO's session or make a new one, issue a token and WELCOME, unless the
        HELLO was called off or the hub stopped meanwhile: then ``_unwind``."""
        old_hash = hashlib.sha256(token.encode()).hexdigest() if token is not None else None
        session: Session | None = None
        resumed = False
        new_hash = ""
        try:
            if old_hash is not None:
                session = await self._resume(identity, old_hash, last_seq)
            resumed = session is not None
            if session is None:
                session = Session(secrets.token_urlsafe(16), identity)
                self._sessions[session.client_id] = session
                await self.broker.claim(session.client_id)
                last_seq = 0
            new_token = secrets.token_urlsafe(32)
            new_hash = hashlib.sha256(new_token.encode()).hexdigest()
            self._set_token(session, new_hash)
            await self.broker.put_token(new_hash, session.client_id,
                                        TOKEN_TTL_S + self.limits.resume_window_s)
        except BaseException as exc:
            # Cancelled (the hub stops past its grace) or the broker failed.
            if session is not None:
                await self._unwind(session, conn, old_hash if resumed else None, new_hash)
            if not isinstance(exc, BrokerUnavailable):
                raise
            _log.warning("push: the broker is unavailable; a HELLO is answered internal_error")
            conn.close("internal_error", "the server failed")
            return
        if conn.authenticating and not hello.cancelling() and session.token_hash == new_hash \
                and not session.ended and session.conn is None and self._state == _RUNNING:
            # From here on nothing awaits: WELCOME, the replay and live pushes stay in order.
            self._attach(session, conn)
            conn.welcome(session, new_token, resumed, last_seq + 1)
            if resumed:
                self._replay(session, conn, last_seq)
            return
        await self._unwind(session, conn, old_hash if resumed else None, new_hash)

    async def _unwind(self, session: Session, conn: Connection, old_hash: str | None,
                      new_hash: str) -> None:
        """A HELLO took ``session`` and its client got no WELCOME.  A new session
        (``old_hash`` None) ends: nobody knows its id or token.  A resumed one is its client's
        again, with the token the client still holds (``old_hash``), here and in the broker,
        waiting for the client's next try (§8.4; a draining hub keeps it for that, and hands
        it over to the node the client comes back on)."""
        if session.ended or session.conn is not None \
                or self._sessions.get(session.client_id) is not session:
            return
        if old_hash is None:
            session.last_conn = session.last_conn or conn
            self._end(session, "going_away")
            return
        self._set_token(session, old_hash)
        try:
            await self.broker.put_token(old_hash, session.client_id,
                                        TOKEN_TTL_S + self.limits.resume_window_s)
            if new_hash:
                await self.broker.take_token(new_hash)
        except BrokerUnavailable:
            # Its resume on this node still works (the token is in _tokens); on another node
            # it gets resumed: false, which says so.
            _log.warning("push: the broker is unavailable; session %s can resume only on this "
                         "node", session.client_id)
        if session.conn is None and not session.ended and not session.moving \
                and session.expiry is None:
            self._wait_for_resume(session)

    async def _resume(self, identity: Any, token_hash: str, last_seq: int) -> Session | None:
        """§8.4: the session the token (its SHA-256 ``token_hash``) opens, ready to attach
        here, or None (a new session).  The old connection, if still open, is closed with
        CLOSE ``replaced``.

        The node holding the session decides first, by its own token index: a resume landing
        there works whatever the broker remembers (a Redis that lost its data knows no token).
        Elsewhere the broker's directory names the session (``take_token``: single use) and
        ``locate`` its node, which hands it over (``Router.handover``)."""
        session = self._tokens.get(token_hash)
        if session is not None:
            if session.ended or session.moving or identity != session.identity \
                    or last_seq > session.next_seq - 1:
                # Not this client's to resume (a stolen token resumes nothing, §6.6), or
                # resuming elsewhere: the token stays with its session.
                return None
            # Taken for this HELLO, before any await: a second HELLO with the same token
            # finds nothing.  The caller attaches it or puts the token back (_unwind).
            self._set_token(session, "")
            if session.expiry is not None:
                session.expiry.cancel()
                session.expiry = None
            try:
                # Single use everywhere (§6.5).  An entry the broker keeps opens nothing: it
                # names this node, where the session no longer has that token.
                await self.broker.take_token(token_hash)
            except BrokerUnavailable:
                pass
            except BaseException:
                self._set_token(session, token_hash)
                if session.conn is None and not session.ended:
                    self._wait_for_resume(session)
                raise
            if session.ended:
                return None
            if session.conn is not None:
                session.conn.close("replaced", "the session was resumed on another connection")
            return session
        client_id = await self.broker.take_token(token_hash)
        if client_id is None or client_id in self._sessions:
            # Unknown, expired, or a token this node's session no longer has.
            return None
        node = await self.broker.locate(client_id)
        if node is None or node == self.node_id:
            return None
        return await self._router.handover(node, client_id, token_hash, identity, last_seq)

    def _set_token(self, session: Session, token_hash: str) -> None:
        """The session's current token from now on (``""``: none, taken by a HELLO)."""
        old = session.token_hash
        if old and self._tokens.get(old) is session:
            del self._tokens[old]
        session.token_hash = token_hash
        if token_hash:
            self._tokens[token_hash] = session

    def _attach(self, session: Session, conn: Connection) -> None:
        if session.expiry is not None:
            session.expiry.cancel()
            session.expiry = None
        session.conn = conn
        session.last_conn = conn
        self._open.add(conn)

    def _replay(self, session: Session, conn: Connection, last_seq: int) -> None:
        """After a resume's WELCOME (§8.4): a GAP for what the history no longer holds, then
        every held push after ``last_seq``, with its original flags."""
        seq = session.hist_first
        if seq > last_seq + 1:
            conn.replay_gap(last_seq + 1, seq - 1)
        max_frame = self.limits.max_frame_bytes
        for entry in session.history or ():
            end = seq + entry.span - 1
            if end > last_seq:
                if isinstance(entry, Message):
                    conn.replay(entry.template(conn.tkey, conn.codec_obj, conn.framing, max_frame), seq)
                else:
                    conn.replay_gap(max(seq, last_seq + 1), end)
            seq = end + 1

    def _detach(self, conn: Connection, end_code: str | None) -> None:
        """``conn`` closes: its session ends with ``end_code``, or waits ``resume_window_s``
        for a resume (§8.4, §9)."""
        self._open.discard(conn)
        session = conn._session
        if session is None or session.conn is not conn:
            return  # replaced: the session went on with another connection
        session.conn = None
        if end_code is not None:
            self._end(session, end_code)
        elif not session.moving:
            self._wait_for_resume(session)

    def _wait_for_resume(self, session: Session) -> None:
        """A session without a connection: ended unless resumed within ``resume_window_s``."""
        if self._state == _RUNNING:
            session.expiry = self.loop.call_later(self.limits.resume_window_s, self._expire, session)

    def _lost(self, conn: Connection, was_open: bool) -> None:
        self._conns.discard(conn)
        if was_open:
            self._detach(conn, None)
        self._open.discard(conn)
        if not self._conns and self._conns_gone is not None:
            self._conns_gone.set()

    def _expire(self, session: Session) -> None:
        session.expiry = None
        if session.conn is None and not session.ended and not session.moving:
            last = session.last_conn
            self._end(session, (last.close_code if last is not None else None) or "going_away")

    def _end(self, session: Session, code: str) -> None:
        """The session ends here (not moved): out of its groups, its id and token forgotten,
        ``on_disconnect``."""
        if session.ended:
            return
        session.ended = True
        if session.expiry is not None:
            session.expiry.cancel()
            session.expiry = None
        self._forget(session)
        self._spawn(self._ended(session, code))

    def _forget(self, session: Session) -> None:
        """Take the session off this node (it ended or moved): no more deliveries to it."""
        if self._sessions.get(session.client_id) is session:
            del self._sessions[session.client_id]
            if not self._sessions and self._sessions_gone is not None:
                self._sessions_gone.set()
        # Its token stays on the session: _ended takes it out of the broker's directory.
        if session.token_hash and self._tokens.get(session.token_hash) is session:
            del self._tokens[session.token_hash]
        session.fail_waiters()
        for group in self.groups.drop(session):
            self._spawn(self.groups.sync(group))

    async def _ended(self, session: Session, code: str) -> None:
        broker = self.broker
        try:
            for name in sorted(session.groups):
                await broker.group_remove(name, session.client_id)
            await broker.release(session.client_id)
            if session.token_hash:
                await broker.take_token(session.token_hash)
        except BrokerUnavailable:
            _log.warning("push: the broker is unavailable; session %s is left to its TTLs",
                         session.client_id)
        hook = self._on_disconnect
        if hook is not None and session.last_conn is not None:
            try:
                await hook(session.last_conn, code)
            except Exception:
                _log.exception("push on_disconnect hook failed")

    async def _tick(self) -> None:
        # One ticker for every connection (§10), at half the interval: a connection silent for
        # a whole tick gets a PING, so none goes longer than heartbeat_s without sending.
        interval = self.limits.heartbeat_s / 2
        while True:
            await asyncio.sleep(interval)
            for conn in tuple(self._open):
                conn.heartbeat()

    def _spawn(self, coroutine: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("push hub task failed", exc_info=task.exception())

    # ------------------------------------------------------------------ routing (n:<node>)
    async def _locate(self, client_id: str) -> str | None:
        node = await self.broker.locate(client_id)
        return None if node is None or node == self.node_id else node

    async def _route(self, client_id: str, op: str, args: list[bytes]) -> list[bytes] | None:
        """A request about ``client_id`` to the node holding it; None when no node does."""
        node = await self._locate(client_id)
        if node is None:
            return [b"gone"]
        return await self._router.request(node, op, [client_id.encode(), *args],
                                          self.route_timeout_s)

    def _check_routed(self, reply: list[bytes] | None, client_id: str) -> None:
        if reply is None:
            raise BrokerUnavailable(f"the node holding {client_id} did not answer")
        status = reply[0] if reply else b""
        if status == b"gone":
            raise PushClosed("normal", "the client's session has ended")
        if status == b"full":
            raise ValueError("the client is in max_groups_per_client groups already")
        if status != b"ok":
            raise BrokerUnavailable(f"the node holding {client_id} failed the request")

    def __repr__(self) -> str:
        state = ("new", "running", "stopping", "stopped")[self._state]
        return (f"<Hub {state} node={self.broker.node_id} sessions={len(self._sessions)} "
                f"connections={len(self._conns)}>")


# ---------------------------------------------------------------------- helpers
def _exclusions(exclude: str | Iterable[str] | None) -> bytes:
    if exclude is None:
        return b""
    if isinstance(exclude, str):
        exclude = (exclude,)
    return pack_fields(client_id.encode() for client_id in exclude)


def _exclusion_set(data: bytes) -> frozenset[str] | None:
    if not data:
        return None
    return frozenset(field.decode() for field in unpack_fields(data))


def _check_async(fn: Any, what: str) -> None:
    if not asyncio.iscoroutinefunction(fn) and not asyncio.iscoroutinefunction(
            getattr(fn, "__call__", None)):
        raise TypeError(f"{what} must be an async function, not {fn!r}")
