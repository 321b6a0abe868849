"""A push session as the node holding it keeps it (docs/push-protocol.md §8), the message a node
delivers to its members (§12), and the byte format hubs exchange through the broker.

- ``Message``: one pushed value as this node received it from the broker: the value encoded
  once by ``codecs.pack`` (design decision 4), and its ``PushTemplate`` built once per framing
  and codec in use, lazily (§12).  The object itself is what every member's history holds: a
  group publish costs each member one reference, not a copy.
- ``Session``: what a client id names (§1): its sequence numbers (§8.1), acks (§8.2), the
  bounded resume history (§8.4), its groups, and the connection it is attached to, if any.
  The hub owns sessions; this module only keeps one session's numbers consistent.
- ``envelope``/``open_envelope``, ``pack_fields``/``unpack_fields``: a tag byte and
  length-prefixed fields, the compact format of everything one hub says to another (publishes,
  routed requests and replies, a session handed over).

Invariants of a session's numbers: ``hist_first`` is the sequence number of ``history[0]``
(``next_seq`` when the history is empty); the entries are contiguous, a ``Message`` taking one
number and a ``Gap`` its ``span``; ``hist_bytes`` is the sum of their ``size``; ``acked`` never
decreases and is below ``next_seq``.
"""
from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from typing import Any, Final, Iterable

from cyserve._core.push.frames import (
    FRAMING_BINARY, FRAMING_JSON_LINES, FRAMING_WS_BINARY, PushTemplate,
)
from cyserve.push.codecs import BYTES, JSON, XML, Codec, for_frame, pack, unpack

__all__ = ["Gap", "Message", "Session", "envelope", "open_envelope", "pack_fields",
           "template_key", "unpack_fields"]

_log = logging.getLogger("cyserve.push")

_U32: Final = struct.Struct(">I")
_MISSING: Final = object()

# Tags of codecs.pack's format: a value already encoded the way a member's codec wants it is
# used as it is, without decoding and encoding it again.
_TAG_JSON: Final = 0x6A
_TAG_BYTES: Final = 0x62
_TAG_XML: Final = 0x78

_CODEC_INDEX: Final = {JSON.name: 0, BYTES.name: 1, XML.name: 2}


def template_key(framing: int, codec_name: str) -> int:
    """The int a connection's templates are cached under: one per (framing, codec) pair."""
    return framing * 8 + _CODEC_INDEX.get(codec_name, 7)


def push_overhead(framing: int) -> int:
    """The most a PUSH frame holds besides its template's body, counted as §11 counts a
    frame's size (without a binary length prefix or a JSON line's newline): 10 header bytes in
    the binary framings, ``{"t":"push","id":`` and 20 digits in the JSON ones."""
    if framing == FRAMING_BINARY or framing == FRAMING_WS_BINARY:
        return 10
    if framing == FRAMING_JSON_LINES:
        return 17 + 20 - 1
    return 17 + 20


# ---------------------------------------------------------------------- the byte format
def pack_fields(fields: Iterable[bytes]) -> bytes:
    """Each field as a u32 length and its bytes."""
    parts: list[bytes] = []
    for field in fields:
        parts.append(_U32.pack(len(field)))
        parts.append(field)
    return b"".join(parts)


def unpack_fields(data: bytes, start: int = 0) -> list[bytes]:
    """The fields ``pack_fields`` made (from ``start``); ValueError for bytes it did not make."""
    fields: list[bytes] = []
    end = len(data)
    at = start
    while at < end:
        if at + 4 > end:
            raise ValueError("truncated field length")
        (length,) = _U32.unpack_from(data, at)
        at += 4
        if at + length > end:
            raise ValueError("truncated field")
        fields.append(data[at:at + length])
        at += length
    return fields


def envelope(tag: int, fields: Iterable[bytes]) -> bytes:
    """One message between hubs: the tag byte, then the fields."""
    return bytes((tag,)) + pack_fields(fields)


def open_envelope(data: bytes) -> tuple[int, list[bytes]]:
    """``(tag, fields)`` of an ``envelope``; ValueError for anything else."""
    if not data:
        raise ValueError("an empty envelope")
    return data[0], unpack_fields(data, 1)


# ---------------------------------------------------------------------- history entries
class Message:
    """One pushed value as this node delivers it (see the module docstring).

    ``name``: the group, or ``""`` (a push to one client or a broadcast); ``packed``:
    ``codecs.pack`` of the value; ``flags``: ``FLAG_ACK_REQUESTED`` or 0; ``mid``: the
    publisher's message id (a group publish or broadcast; ``b""`` for a push to one client),
    which tells a handed-over session's history apart from what its new node saw meanwhile.
    """

    __slots__ = ("name", "packed", "flags", "mid", "size", "_value", "_templates")
    span: Final = 1  # sequence numbers it takes

    def __init__(self, name: str, packed: bytes, flags: int = 0, mid: bytes = b"") -> None:
        self.name = name
        self.packed = packed
        self.flags = flags
        self.mid = mid
        #: What it counts for in a history's and a queue's byte bounds.
        self.size = len(packed) + len(name)
        self._value: Any = _MISSING
        self._templates: dict[int, PushTemplate | None] | None = None

    def value(self) -> Any:
        """The application's value, unpacked once (ValueError for a corrupt ``packed``)."""
        value = self._value
        if value is _MISSING:
            value = self._value = unpack(self.packed)
        return value

    def template(self, key: int, codec: Codec, framing: int, max_frame_bytes: int) -> PushTemplate | None:
        """The PUSH for members whose framing and codec ``key`` names (``template_key``),
        built at the first call for that key; None when this value cannot reach such a member
        (its codec cannot carry it, or the frame would pass ``max_frame_bytes``): the hub then
        sends that member a GAP in its place, never nothing (§8.3)."""
        templates = self._templates
        if templates is None:
            templates = self._templates = {}
        else:
            found = templates.get(key, _MISSING)
            if found is not _MISSING:
                return found  # type: ignore[return-value]
        built = self._build(codec, framing, max_frame_bytes)
        templates[key] = built
        return built

    def _build(self, codec: Codec, framing: int, max_frame_bytes: int) -> PushTemplate | None:
        packed = self.packed
        tag = packed[0] if packed else 0
        try:
            if framing == FRAMING_BINARY or framing == FRAMING_WS_BINARY:
                # A value packed in the very encoding the member's codec uses goes as it is.
                if (tag == _TAG_JSON and codec is JSON) or (tag == _TAG_BYTES and codec is BYTES) \
                        or (tag == _TAG_XML and codec is XML):
                    payload: object = packed[1:]
                else:
                    payload = for_frame(codec, self.value(), framing)
            elif tag == _TAG_JSON:
                # The JSON framings carry the JSON value itself (§3.2); pack made it from JSON.
                payload = self.value()
            else:
                payload = for_frame(codec, self.value(), framing)
            template = PushTemplate(self.name, payload, self.flags, framing)
        except (TypeError, ValueError) as exc:
            _log.warning("push to %r: a %s member cannot receive this value (%s); it gets a GAP",
                         self.name, codec.name, exc)
            return None
        if len(template.body) + push_overhead(framing) > max_frame_bytes:
            _log.warning("push to %r: the frame would pass max_frame_bytes (%d) for a %s member; "
                         "it gets a GAP", self.name, max_frame_bytes, codec.name)
            return None
        return template


class Gap:
    """Numbers of a session that carry nothing (the broker lost what they were for): a GAP
    wherever they are replayed (§8.3)."""

    __slots__ = ("span",)
    size: Final = 0
    mid: Final = b""

    def __init__(self, span: int) -> None:
        self.span = span


# ---------------------------------------------------------------------- the session
class Session:
    """One client id's session, on the node holding it.  ``conn`` is the attached
    ``Connection`` or None (between a lost connection and a resume, for ``resume_window_s``);
    ``last_conn`` the latest one (what ``on_disconnect`` is given)."""

    __slots__ = ("client_id", "identity", "token_hash", "groups", "next_seq", "acked",
                 "history", "hist_first", "hist_bytes", "conn", "last_conn", "waiters",
                 "expiry", "moving", "ended", "lost_mark")

    def __init__(self, client_id: str, identity: Any) -> None:
        self.client_id = client_id
        self.identity = identity
        self.token_hash = ""
        self.groups: set[str] = set()
        self.next_seq = 1
        self.acked = 0
        # Made at the first push: an idle session holds no deque (bench: memory per idle
        # connection).
        self.history: deque[Message | Gap] | None = None
        self.hist_first = 1
        self.hist_bytes = 0
        self.conn: Any = None
        self.last_conn: Any = None
        #: seq -> future of a ``send(ack=True)`` waiting for its ACK (None while none waits).
        self.waiters: dict[int, asyncio.Future[bool]] | None = None
        self.expiry: asyncio.TimerHandle | None = None
        #: Being handed over to another node (§8.4): its pushes still go to the history here.
        self.moving = False
        self.ended = False
        #: ``next_seq`` just after its latest GAP for an unknown number of lost pushes (0:
        #: none): while nothing follows that GAP, another such loss has nothing to add.
        self.lost_mark = 0

    def record(self, entry: Message | Gap, max_count: int, max_bytes: int) -> int:
        """Give ``entry`` the next number(s) and keep it in the history; its (first) number."""
        seq = self.next_seq
        self.next_seq = seq + entry.span
        if max_count:
            history = self.history
            if history is None:
                history = self.history = deque()
            history.append(entry)
            self.hist_bytes += entry.size
            if len(history) > max_count or self.hist_bytes > max_bytes:
                self.trim(max_count, max_bytes)
        else:
            self.hist_first = self.next_seq
        return seq

    def trim(self, max_count: int, max_bytes: int) -> None:
        """Drop the oldest entries past either bound (§8.4: whichever is smaller)."""
        history = self.history
        if history is None:
            return
        while history and (len(history) > max_count or self.hist_bytes > max_bytes):
            entry = history.popleft()
            self.hist_first += entry.span
            self.hist_bytes -= entry.size

    def ack(self, seq: int) -> bool:
        """The client acknowledged every push up to ``seq`` (§8.2): those leave the history and
        their waiters resolve.  False when ``seq`` was never issued (a ``protocol_error``)."""
        if seq >= self.next_seq:
            return False
        if seq <= self.acked:
            return True  # below an earlier one: ignored (§8.2)
        self.acked = seq
        history = self.history
        if history:
            # The client has them: a resume will never ask for them again.
            while history and self.hist_first + history[0].span - 1 <= seq:
                entry = history.popleft()
                self.hist_first += entry.span
                self.hist_bytes -= entry.size
        waiters = self.waiters
        if waiters:
            for number in [n for n in waiters if n <= seq]:
                future = waiters.pop(number)
                if not future.done():
                    future.set_result(True)
        return True

    def fail_waiters(self) -> None:
        """Nothing more will be acknowledged here (the session ended or moved)."""
        waiters = self.waiters
        if waiters:
            self.waiters = None
            for future in waiters.values():
                if not future.done():
                    future.set_result(False)

    def mids(self) -> set[bytes]:
        """The message ids its history holds."""
        return {entry.mid for entry in self.history or () if entry.mid}

    # ------------------------------------------------------------------ handover (§8.4)
    def export(self) -> bytes:
        """Everything another node needs to continue this session (design decision 2): its
        id, identity, groups, numbers and history.  TypeError when the identity cannot be
        packed (it then cannot move)."""
        entries: list[bytes] = []
        for entry in self.history or ():
            if isinstance(entry, Message):
                entries.append(pack_fields((b"M", entry.name.encode(), b"%d" % entry.flags,
                                            entry.mid, entry.packed)))
            else:
                entries.append(pack_fields((b"G", b"%d" % entry.span)))
        return pack_fields((
            self.client_id.encode(), pack(self.identity),
            pack_fields(group.encode() for group in sorted(self.groups)),
            b"%d" % self.next_seq, b"%d" % self.acked, b"%d" % self.hist_first,
            pack_fields(entries),
        ))

    @classmethod
    def restore(cls, data: bytes, max_count: int, max_bytes: int) -> Session:
        """The session ``export`` made ``data`` from, its history within this node's bounds;
        ValueError for anything else."""
        fields = unpack_fields(data)
        if len(fields) != 7:
            raise ValueError("a session export has 7 fields")
        client_id, identity, groups, next_seq, acked, hist_first, entries = fields
        session = cls(client_id.decode(), unpack(identity))
        session.groups = {group.decode() for group in unpack_fields(groups)}
        session.next_seq = int(next_seq)
        session.acked = int(acked)
        session.hist_first = int(hist_first)
        history: deque[Message | Gap] = deque()
        size = 0
        for raw in unpack_fields(entries):
            entry = unpack_fields(raw)
            if entry[0] == b"M" and len(entry) == 5:
                message = Message(entry[1].decode(), entry[4], int(entry[2]), entry[3])
                history.append(message)
                size += message.size
            elif entry[0] == b"G" and len(entry) == 2:
                history.append(Gap(int(entry[1])))
            else:
                raise ValueError("an unknown history entry")
        if sum(entry.span for entry in history) != session.next_seq - session.hist_first:
            raise ValueError("a session export whose history does not match its numbers")
        session.history = history if history else None
        session.hist_bytes = size
        session.trim(max_count, max_bytes)
        return session

    def __repr__(self) -> str:
        state = "ended" if self.ended else "attached" if self.conn is not None else "detached"
        return f"<Session {self.client_id} {state} next_seq={self.next_seq}>"
