"""This node's groups and the fan-out of a push to many sessions (docs/push-protocol.md §12).

A group exists on a node while it has local members (sessions connected here, or detached and
within their resume window) or while a session being handed over here holds it; for exactly
that long the node is subscribed to ``g:<name>`` (design decision 1 of issue 11: one broker
message per publish reaches every node with members, never one per client).  The broker's
group directory (who is a member, on every node) is kept beside it by the hub's join and leave.

``fanout`` is the hot path of a publish: per member its next sequence number, one reference in
its history, and the template's head written before the body every member shares.  Its loop is
compiled (``cyserve._core.push.fanout``): per member, slots read in place and C calls instead of
interpreted bytecode, and a TCP member's queue bound proven at its outbox without asking the
transport.  Measured: the loop alone over 100 real TCP members (20 publishes, callgrind), 3,565
instructions per delivery in Python, 1,359 compiled; ``python bench/push/fanout.py --members 1000
--ws-members '' --one-duration 0 --rounds 2 --duration 3`` on a quiet run (other 1 %), 335,928
-> 352,481 delivered/s, server 2.93 -> 2.73 us per delivery (user 0.66 -> 0.55 us; the rest is
the kernel's sends, about two pushes per write).
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from cyserve._core.push.fanout import fanout
from cyserve.errors import PushClosed
from cyserve.push.session import Session

if TYPE_CHECKING:
    from cyserve.config import PushLimits
    from cyserve.push.broker import Broker

__all__ = ["Group", "Groups", "fanout"]


class Group:
    """One group's members on this node, and whether this node is subscribed to it."""

    __slots__ = ("name", "members", "holds", "subscribed", "lock")

    def __init__(self, name: str) -> None:
        self.name = name
        self.members: set[Session] = set()
        #: Handovers in progress that need the subscription before the session is here.
        self.holds = 0
        self.subscribed = False
        self.lock: asyncio.Lock | None = None


class Groups:
    """The groups of one hub's node (see the module docstring)."""

    __slots__ = ("_broker", "_limits", "_groups")

    def __init__(self, broker: Broker, limits: PushLimits) -> None:
        self._broker = broker
        self._limits = limits
        self._groups: dict[str, Group] = {}

    def get(self, name: str) -> Group | None:
        return self._groups.get(name)

    def group(self, name: str) -> Group:
        """The group, made when it has no member here yet (``sync`` drops it when unused)."""
        group = self._groups.get(name)
        if group is None:
            group = self._groups[name] = Group(name)
        return group

    async def join(self, session: Session, name: str) -> None:
        """``session`` joins ``name``; subscribed before this returns, so a publish made after
        it reaches the client.  ValueError past ``max_groups_per_client``; PushClosed for a
        session that ended."""
        if session.ended:
            raise PushClosed("normal", "the client's session has ended")
        if name in session.groups:
            return
        if len(session.groups) >= self._limits.max_groups_per_client:
            raise ValueError(f"the client is in {len(session.groups)} groups already "
                             f"(max_groups_per_client)")
        group = self.group(name)
        group.members.add(session)
        session.groups.add(name)
        await self.sync(group)
        await self._broker.group_add(name, session.client_id)

    async def leave(self, session: Session, name: str) -> None:
        if name not in session.groups:
            return
        session.groups.discard(name)
        group = self._groups.get(name)
        if group is not None:
            group.members.discard(session)
            await self.sync(group)
        await self._broker.group_remove(name, session.client_id)

    def drop(self, session: Session) -> list[Group]:
        """Take ``session`` out of its groups' local members (its directory entries are the
        caller's); the groups left without a member, to ``sync``."""
        emptied: list[Group] = []
        for name in session.groups:
            group = self._groups.get(name)
            if group is not None:
                group.members.discard(session)
                if not group.members and not group.holds:
                    emptied.append(group)
        return emptied

    async def sync(self, group: Group) -> None:
        """Bring the subscription to ``g:<name>`` in line with the members (one change at a
        time per group, so a join and a leave racing cannot leave it wrong)."""
        if group.lock is None:
            group.lock = asyncio.Lock()
        async with group.lock:
            while (bool(group.members) or group.holds > 0) != group.subscribed:
                if group.subscribed:
                    await self._broker.unsubscribe("g:" + group.name)
                    group.subscribed = False
                else:
                    await self._broker.subscribe("g:" + group.name)
                    group.subscribed = True
        if not group.members and not group.holds and not group.subscribed \
                and not group.lock.locked() and self._groups.get(group.name) is group:
            del self._groups[group.name]

