"""How the hubs of a deployment ask each other about one client (design decisions 1 and 2 of
issue 11): requests over ``n:<node id>`` with their replies, and a session's handover from the
node that held it to the node its client resumed on (docs/push-protocol.md §8.4).

The ``Router`` is the hub's own part (one per hub, made by it): it uses the hub's sessions,
groups and local operations, and owns only the requests in flight and the handovers coming in.
A request waits ``Hub.route_timeout_s`` for its reply, then counts as unanswered: the caller
says so (``False``, ``resumed: false``, ``BrokerUnavailable``), never nothing.

Requests (``op``, then its arguments; the first is always the client id):
``send`` (packed value, ack, wait) -> ``1``/``0``; ``join``/``leave`` (group) -> ``ok``,
``full``, ``gone``; ``online`` -> ``1``/``0``; ``disconnect`` (reason) -> ``ok``/``gone``;
``move`` (token hash, packed identity, last seq) -> ``ok`` and the groups, or ``no``; ``take``
-> ``ok`` and the session's export, or ``no``.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Final

from cyserve.errors import BrokerUnavailable, PushClosed
from cyserve.push.codecs import pack, unpack
from cyserve.push.session import Message, Session, envelope

if TYPE_CHECKING:
    from cyserve.push.hub import Hub

__all__ = ["Incoming", "Router", "T_REPLY", "T_REQUEST", "TOKEN_TTL_S"]

_log = logging.getLogger("cyserve.push")

T_REQUEST: Final = 0x51     # "Q": n:<node>  [reply node, request id, op, args...]
T_REPLY: Final = 0x52       # "R": n:<node>  [request id, results...]

# A resume token's entry in the broker's directory outlives a long connection this long; the
# session, not the entry, decides whether a resume works (a stale entry finds no session).
TOKEN_TTL_S: Final = 86400.0


class Incoming:
    """A session being handed over to this node: the groups its old node named, and what this
    node received for it since it subscribed to them, delivered once the session is here."""

    __slots__ = ("groups", "messages")

    def __init__(self, groups: set[str]) -> None:
        self.groups = groups
        self.messages: list[tuple[Message, frozenset[str] | None]] = []


class Router:
    """Requests to other nodes and the answers to theirs (see the module docstring)."""

    __slots__ = ("_hub", "_requests", "_count", "incoming")

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._requests: dict[int, asyncio.Future[list[bytes]]] = {}
        self._count = 0
        #: Sessions being handed over to this node, by client id.
        self.incoming: dict[str, Incoming] = {}

    def on_request(self, fields: list[bytes]) -> None:
        self._hub._spawn(self._serve(fields))

    def on_reply(self, fields: list[bytes]) -> None:
        future = self._requests.get(int(fields[0]))
        if future is not None and not future.done():
            future.set_result(fields[1:])

    def cancel(self) -> None:
        """The hub stops: nothing more will be answered."""
        for future in self._requests.values():
            future.cancel()
        self._requests.clear()

    async def request(self, node: str, op: str, args: list[bytes],
                      timeout_s: float) -> list[bytes] | None:
        """Ask ``node``; its reply's fields, or None when none came within ``timeout_s``."""
        hub = self._hub
        self._count += 1
        request_id = self._count
        future: asyncio.Future[list[bytes]] = hub.loop.create_future()
        self._requests[request_id] = future
        try:
            await hub.broker.publish("n:" + node, envelope(
                T_REQUEST, (hub.node_id.encode(), b"%d" % request_id, op.encode(), *args)))
            return await asyncio.wait_for(future, timeout_s)
        except asyncio.TimeoutError:
            return None
        finally:
            self._requests.pop(request_id, None)

    async def _serve(self, fields: list[bytes]) -> None:
        reply_node, request_id, op, *args = fields
        try:
            result = await self._answer(op.decode(), args)
        except Exception:
            _log.exception("push: a request %r from node %s failed", op, reply_node)
            result = [b"error"]
        try:
            await self._hub.broker.publish("n:" + reply_node.decode(),
                                           envelope(T_REPLY, (request_id, *result)))
        except BrokerUnavailable:
            _log.warning("push: could not answer node %s (the broker is unavailable)", reply_node)

    async def _answer(self, op: str, args: list[bytes]) -> list[bytes]:
        hub = self._hub
        client_id = args[0].decode()
        session = hub._sessions.get(client_id)
        if op == "take":
            return await self._give(session)
        if session is None:
            return [b"gone"]
        if op == "send":
            ok = await hub._send_local(session, args[1], args[2] == b"1", float(args[3]))
            return [b"1" if ok else b"0"]
        if op == "join":
            try:
                await hub.groups.join(session, args[1].decode())
            except ValueError:
                return [b"full"]
            except PushClosed:
                return [b"gone"]
            return [b"ok"]
        if op == "leave":
            await hub.groups.leave(session, args[1].decode())
            return [b"ok"]
        if op == "online":
            return [b"1" if session.conn is not None else b"0"]
        if op == "disconnect":
            hub._disconnect_local(session, args[1].decode())
            return [b"ok"]
        if op == "move":
            return await self._move_out(session, args[1].decode(), args[2], int(args[3]))
        raise ValueError(f"unknown request {op!r}")

    # ------------------------------------------------------------------ handover (§8.4)
    async def handover(self, node: str, client_id: str, token_hash: str, identity: Any,
                       last_seq: int) -> Session | None:
        """Move ``client_id``'s session from ``node`` to this one, in two requests:

        1. ``move``: the old node checks the token, the identity and ``last_seq``, closes the
           old connection with CLOSE ``replaced`` and names the session's groups, while it
           keeps receiving the session's pushes;
        2. this node subscribes to those groups and from then on keeps what it receives for
           the session; ``take``: the old node hands the session over (numbers, history,
           groups) and forgets it.  What this node received meanwhile and the history lacks
           (by message id) follows the history, so nothing published during the move is lost
           or doubled.
        A node that does not answer in time: None (``resumed: false``, never a silent loss),
        and the token (taken by the caller) goes back to the directory: the node may only have
        been slow, and the client's next try finds the session there."""
        hub = self._hub
        try:
            packed_identity = pack(identity)
        except TypeError:
            _log.warning("push: an identity that cannot be packed cannot resume on another node")
            await hub.broker.put_token(token_hash, client_id, TOKEN_TTL_S)
            return None
        reply = await self.request(node, "move", [client_id.encode(), token_hash.encode(),
                                                  packed_identity, b"%d" % last_seq],
                                   hub.route_timeout_s)
        if reply is None:
            await self._give_back(token_hash, client_id)
        if not reply or reply[0] != b"ok":
            # "no": the old node judged the token (it put it back itself when it stays good).
            return None
        incoming = Incoming({name.decode() for name in reply[1:]})
        self.incoming[client_id] = incoming
        held = [hub.groups.group(name) for name in incoming.groups]
        session: Session | None = None
        try:
            for group in held:
                group.holds += 1
            for group in held:
                await hub.groups.sync(group)
            reply = await self.request(node, "take", [client_id.encode()], hub.route_timeout_s)
            if reply and reply[0] == b"ok" and len(reply) == 2:
                session = self._install(reply[1], identity, incoming)
            elif reply is None:
                # The old node keeps the session (it waits for a resume again after
                # 2 * route_timeout_s) unless it gave it and the reply was lost.
                await self._give_back(token_hash, client_id)
        finally:
            del self.incoming[client_id]
            for group in held:
                group.holds -= 1
        for group in held:
            await hub.groups.sync(group)
        if session is None:
            return None
        try:
            for name in sorted(session.groups):
                await hub.groups.sync(hub.groups.group(name))
                # Again: a directory that pruned the client while no node held it (between the
                # old node's release and this claim) lists it again.
                await hub.broker.group_add(name, client_id)
            await hub.broker.claim(client_id)
        except BaseException:
            # Its token is used: nobody can resume it now.
            hub._end(session, "going_away")
            raise
        return session

    async def _give_back(self, token_hash: str, client_id: str) -> None:
        try:
            await self._hub.broker.put_token(token_hash, client_id, TOKEN_TTL_S)
        except BrokerUnavailable:
            _log.warning("push: could not put back the resume token of %s (the broker is "
                         "unavailable)", client_id)

    def _install(self, data: bytes, identity: Any, incoming: Incoming) -> Session | None:
        """The session a ``take`` reply carries, now this node's; then what this node received
        for it during the move that its history lacks."""
        hub = self._hub
        limits = hub.limits
        try:
            session = Session.restore(data, limits.resume_history_count, limits.resume_history_bytes)
        except (ValueError, UnicodeDecodeError):
            _log.exception("push: a session handed over could not be read; it is lost")
            return None
        session.identity = identity
        hub._sessions[session.client_id] = session
        for name in session.groups:
            hub.groups.group(name).members.add(session)
        seen = session.mids()
        for message, exclude in incoming.messages:
            if message.mid not in seen and (exclude is None or session.client_id not in exclude):
                hub._record(session, message)
        return session

    async def _move_out(self, session: Session, token_hash: str, packed_identity: bytes,
                        last_seq: int) -> list[bytes]:
        """Step 1 of a handover, on the node holding the session."""
        if session.ended or session.moving or session.token_hash != token_hash:
            return [b"no"]
        try:
            same = unpack(pack(session.identity)) == unpack(packed_identity)
        except (TypeError, ValueError):
            same = False
        if not same or last_seq > session.next_seq - 1:
            await self._hub.broker.put_token(token_hash, session.client_id, TOKEN_TTL_S)
            return [b"no"]
        session.moving = True
        if session.expiry is not None:
            session.expiry.cancel()
        # If the new node never comes for it, the session goes back to waiting for a resume.
        hub = self._hub
        session.expiry = hub.loop.call_later(2 * hub.route_timeout_s, self._unmove, session)
        if session.conn is not None:
            session.conn.close("replaced", "the session was resumed on another connection")
        return [b"ok", *(name.encode() for name in sorted(session.groups))]

    def _unmove(self, session: Session) -> None:
        session.expiry = None
        session.moving = False
        if session.conn is None and not session.ended:
            self._hub._wait_for_resume(session)

    async def _give(self, session: Session | None) -> list[bytes]:
        """Step 2 of a handover: the session, exported and forgotten in one step (no push can
        fall between the two)."""
        if session is None or not session.moving or session.ended:
            return [b"no"]
        data = session.export()
        session.ended = True
        if session.expiry is not None:
            session.expiry.cancel()
            session.expiry = None
        self._hub._forget(session)
        # Released before the reply: the new node claims it after.
        try:
            await self._hub.broker.release(session.client_id)
        except BrokerUnavailable:
            # The session is in the reply, and this node's presence entry expires by itself
            # (or is overwritten by the new node's claim): failing here would lose it.
            _log.warning("push: could not release %s (the broker is unavailable)", session.client_id)
        return [b"ok", data]
