"""The push client: ``connect()`` to a cyserve push server over TCP or WebSocket
(docs/push-protocol.md, ``cyserve-push/1``), calls, pushes, acks, reconnect and resume.

    async with connect("tcp://127.0.0.1:9000", credentials={"token": "s3cret"}) as push:
        reply = await push.call("chat.send", {"room": "a", "text": "hi"}, timeout_s=10)
        async for item in push:          # Push, Gap or SessionReset, in sequence order
            ...

What it does, and the section of the protocol behind each rule:

- HELLO once per connection, then nothing until WELCOME or REFUSE (§5, §6): the HELLO names the
  codec and carries the credentials, and on a reconnect the last resume token and ``last_seq``
  (§8.4).  The first connect fails loudly (the transport's error, ``TimeoutError`` past
  ``connect_timeout_s``, ``PushRefused``); only a session that was established is reconnected.
- Calls (§7): request ids from 1 up, never reused by this client, replies matched by id.  A call
  that the connection's end left unanswered fails with ``PushClosed``: the server may have run
  it, so it is never sent again behind the caller's back.
- Pushes (§8): in sequence order.  A push numbered at or below the highest seen is a duplicate
  of a resume (§8.5) and dropped; a GAP is handed over as ``Gap``; a hole that no GAP announced
  breaks §8.1 and closes with ``protocol_error``.  Acks (§8.2): with ``auto_ack`` a requested
  ACK goes when the application asks for the next item (it is done with the last one), else
  when it calls ``Push.ack()``.
- Heartbeats (§10): PING after ``heartbeat_s`` (the WELCOME's) without sending, PONG to every
  PING, and after ``idle_timeout_s`` without a byte from the server: CLOSE ``idle_timeout`` and
  a reconnect with resume.
- Closing (§9): CLOSE ``going_away``, ``idle_timeout``, ``slow_consumer``, ``internal_error``,
  an unknown code or a lost connection reconnect with bounded, jittered exponential backoff and
  resume; ``normal``, ``policy``, ``replaced``, ``protocol_error`` and ``too_large`` end the
  client.  REFUSE ``server_full``/``going_away`` (and unknown codes) are retried; the four that
  MUST NOT be retried unchanged (§6.4) end it.  A resume answered ``resumed: false`` is a new
  session: its groups and in-flight pushes are gone, which the application learns from a
  ``SessionReset`` item, never silently.
- A frame the server should not have sent (§3-§5, §11): CLOSE ``protocol_error`` (or
  ``too_large``) and ``PushClosed`` to the application; nothing is reconnected (§9).

Flow control: pushes wait in a queue until the application iterates; past ``max_queued_pushes``
reading pauses, so the server sees a slow consumer (§8.6) instead of this process growing.  An
application that only makes calls should still iterate (or raise the bound), since replies
queue behind unread pushes.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import random
import ssl as _ssl
from typing import TYPE_CHECKING, Any, Final, Mapping, Sequence, Union
from urllib.parse import urlsplit

from cyserve._core.push.frames import (
    FLAG_ACK_REQUESTED, FRAMING_BINARY, FRAMING_JSON_LINES, FRAMING_WS_BINARY,
    FRAMING_WS_TEXT, KIND_ACK, KIND_CALL, KIND_CLOSE, KIND_HELLO, VERSION, Frame, encode,
)
from cyserve.config import PushLimits, WebSocketLimits
from cyserve.errors import ClientError, PushCallError, PushClosed, PushRefused, again
from cyserve.push._clientconn import (
    _C_CLOSING, _C_DONE, _C_HELLO, _C_OPEN, _Connection, _TcpWire, _Wire, _WsWire,
)
from cyserve.push.codecs import Codec, codec as find_codec

if TYPE_CHECKING:
    from cyserve.client import Client

__all__ = ["Gap", "Push", "PushClient", "SessionReset", "connect"]

_log = logging.getLogger("cyserve.push.client")

SUBPROTOCOL: Final = "cyserve-push.1"
"""The WebSocket subprotocol offered (§13); the server works without it too."""

# §9: the close codes after which the session is kept and the client comes back with resume.
# A code not in CLOSE_CODES (a later version's) is treated as going_away, so it reconnects too.
_FINAL_CLOSE: Final = frozenset({"normal", "policy", "replaced", "protocol_error", "too_large"})
# §6.4: a client MUST NOT retry these unchanged; the others MAY be retried with backoff.
_FINAL_REFUSE: Final = frozenset({"unauthorized", "unsupported_version", "unsupported_codec",
                                  "bad_hello"})
# §13: the WebSocket close code that goes with a push close code (as the server maps them).
_WELCOME_KEYS: Final = ("client_id", "resume_token", "codec", "resumed", "next_seq",
                        "heartbeat_s", "idle_timeout_s", "max_frame_bytes", "resume_window_s")
_SCHEMES: Final = {"tcp": "tcp", "tcps": "tcp", "ws": "ws", "wss": "ws", "http": "ws",
                   "https": "ws"}

# A PushClient's states (PushClient._state; moved by open, _ended, _reconnect_loop, _fail and
# _shut only):
#   NEW -> OPEN (open: a WELCOME) -> RECONNECTING (_ended: a code that comes back, §9)
#   RECONNECTING -> OPEN (a WELCOME) | FAILED (a final code, or the attempts ran out)
#   OPEN -> FAILED (_ended: a final code); NEW/OPEN/RECONNECTING -> CLOSED (close())
# Invariants: in OPEN, _conn is the WELCOMEd connection; _error is set exactly in FAILED;
# CLOSED and FAILED are final (close() on a FAILED client keeps its error for iteration).
_NEW, _OPEN, _RECONNECTING, _CLOSED, _FAILED = range(5)



# ---------------------------------------------------------------------- what iteration yields
class Push:
    """One push (§8.1): ``seq`` (the session's sequence number), ``group`` (``""`` for a push to
    this client alone), ``data`` (decoded by the session codec) and ``ack_requested``."""

    __slots__ = ("seq", "group", "data", "ack_requested", "_client", "_epoch")

    def __init__(self, seq: int, group: str, data: Any, ack_requested: bool,
                 client: PushClient | None = None, epoch: int = 0) -> None:
        self.seq = seq
        self.group = group
        self.data = data
        self.ack_requested = ack_requested
        self._client = client
        self._epoch = epoch

    async def ack(self) -> None:
        """Send ACK for this push (§8.2): the server's ``send(..., ack=True)`` resolves.  While
        reconnecting the ACK goes after a resume; a push of a session that was reset is not
        acked (that session is gone)."""
        if self._client is not None:
            self._client._ack(self.seq, self._epoch)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Push):
            return NotImplemented
        return (self.seq, self.group, self.data, self.ack_requested) == (
            other.seq, other.group, other.data, other.ack_requested)

    __hash__ = None  # type: ignore[assignment]  # a value with a mutable payload

    def __repr__(self) -> str:
        ack = ", ack_requested=True" if self.ack_requested else ""
        return f"Push(seq={self.seq}, group={self.group!r}, data={self.data!r}{ack})"


class Gap:
    """Pushes ``first``..``last`` (inclusive) of this session will never arrive (§8.3): the
    resume history no longer held them, or the server's ``drop_oldest`` policy dropped them."""

    __slots__ = ("first", "last")

    def __init__(self, first: int, last: int) -> None:
        self.first = first
        self.last = last

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Gap):
            return NotImplemented
        return (self.first, self.last) == (other.first, other.last)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Gap(first={self.first}, last={self.last})"


class SessionReset:
    """A reconnect could not resume (§8.4 case 2: the window expired, the server restarted, the
    node holding the session is gone): the client is a new session, ``new_client_id``, in no
    group, and pushes of the old one that were not received are lost."""

    __slots__ = ("old_client_id", "new_client_id")

    def __init__(self, old_client_id: str, new_client_id: str) -> None:
        self.old_client_id = old_client_id
        self.new_client_id = new_client_id

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SessionReset):
            return NotImplemented
        return (self.old_client_id, self.new_client_id) == (other.old_client_id,
                                                            other.new_client_id)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SessionReset(old_client_id={self.old_client_id!r}, new_client_id={self.new_client_id!r})"


Item = Union[Push, Gap, SessionReset]


# ---------------------------------------------------------------------- the client
class PushClient:
    """A push session with a server, across reconnects.  Made by ``connect()``; ``async with``
    it to connect (and close at the end), then ``call`` and iterate.

    Properties: ``client_id`` (the session's, or None before the first WELCOME), ``resumed``
    (of the last WELCOME), ``connected`` (a WELCOMEd connection is up now), ``welcome`` (the last
    WELCOME's dict), ``last_seq`` (the highest sequence number received, PUSH or GAP).
    """

    __slots__ = ("_url", "_kind", "_host", "_port", "_ws_url", "_ssl", "_credentials",
                 "_codec", "_framing", "_limits", "_reconnect", "_backoff", "_auto_ack",
                 "_headers", "_http", "_own_http", "_connect_timeout_s", "_max_attempts",
                 "_max_queued", "_client_id", "_resume_token", "_last_seq", "_welcome", "_epoch",
                 "_conn", "_state", "_error", "_items", "_waiter", "_ack_due", "_unsent_ack",
                 "_call_id", "_reconnector", "_settled", "_loop", "_dead")

    def __init__(self, url: str, credentials: Any, codec: str, framing: str,
                 limits: PushLimits | None, reconnect: bool, backoff_s: tuple[float, float],
                 auto_ack: bool, ssl: _ssl.SSLContext | None,
                 headers: Mapping[str, str] | Sequence[tuple[str, str]] | None,
                 client: Client | None, connect_timeout_s: float,
                 max_reconnect_attempts: int | None, max_queued_pushes: int) -> None:
        parts = urlsplit(url)
        kind = _SCHEMES.get(parts.scheme.lower())
        if kind is None:
            raise ValueError(f"a push URL is tcp://, tcps://, ws:// or wss://, got {url!r}")
        if framing not in ("binary", "json"):
            raise ValueError(f"framing is 'binary' or 'json', got {framing!r}")
        self._codec: Codec = find_codec(codec)
        if framing == "json" and codec != "json":
            # §3.2, §6.3: the JSON framings carry JSON only; the server would refuse the HELLO.
            raise ValueError(f"the json framing carries the json codec only, not {codec!r}")
        low, high = backoff_s
        if not 0 < low <= high:
            raise ValueError(f"backoff_s is (first, most) with 0 < first <= most, got {backoff_s!r}")
        if connect_timeout_s <= 0:
            raise ValueError(f"connect_timeout_s must be positive, got {connect_timeout_s!r}")
        if max_reconnect_attempts is not None and max_reconnect_attempts < 0:
            raise ValueError(f"max_reconnect_attempts must be >= 0 or None, got {max_reconnect_attempts!r}")
        if max_queued_pushes < 1:
            raise ValueError(f"max_queued_pushes must be positive, got {max_queued_pushes!r}")
        self._url = url
        self._kind = kind
        self._host = parts.hostname or ""
        self._port = 0
        self._ws_url = url
        self._ssl = ssl
        if kind == "tcp":
            if not self._host or parts.port is None or parts.path not in ("", "/"):
                raise ValueError(f"a tcp:// push URL is tcp://host:port, got {url!r}")
            self._port = parts.port
            if parts.scheme.lower() == "tcps" and ssl is None:
                self._ssl = _ssl.create_default_context()
            self._framing = FRAMING_BINARY if framing == "binary" else FRAMING_JSON_LINES
        else:
            self._framing = FRAMING_WS_BINARY if framing == "binary" else FRAMING_WS_TEXT
        self._credentials = credentials
        self._limits = limits or PushLimits()
        self._reconnect = reconnect
        self._backoff = (float(low), float(high))
        self._auto_ack = auto_ack
        self._headers = headers
        self._http = client
        self._own_http = False
        self._connect_timeout_s = connect_timeout_s
        self._max_attempts = max_reconnect_attempts
        self._max_queued = max_queued_pushes
        # the session (§1): survives connections
        self._client_id: str | None = None
        self._resume_token: str | None = None
        self._last_seq = 0
        self._welcome: dict[str, Any] | None = None
        self._epoch = 0   # + 1 at each SessionReset: an old session's pushes are not acked
        # the state (see the table at the top)
        self._conn: _Connection | None = None
        self._state = _NEW
        self._error: BaseException | None = None
        self._items: collections.deque[Item] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._ack_due: Push | None = None
        self._unsent_ack = 0
        self._call_id = 0
        self._reconnector: asyncio.Task[None] | None = None
        self._settled: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dead: _Connection | None = None   # the last connection that ended, until buried

    # ------------------------------------------------------------------ properties
    @property
    def client_id(self) -> str | None:
        return self._client_id

    @property
    def resumed(self) -> bool:
        return bool(self._welcome and self._welcome["resumed"])

    @property
    def connected(self) -> bool:
        return self._state == _OPEN and self._conn is not None and self._conn.state == _C_OPEN

    @property
    def welcome(self) -> dict[str, Any] | None:
        return self._welcome

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def __repr__(self) -> str:
        state = ("new", "open", "reconnecting", "closed", "failed")[self._state]
        return f"<PushClient {self._url} {state} client_id={self._client_id!r}>"

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> PushClient:
        await self.open()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and not issubclass(exc_type, Exception):
            await self._shut(graceful=False)   # cancelled or interrupted: no CLOSE handshake
        else:
            await self.close()

    async def open(self) -> None:
        """Connect and wait for WELCOME: one attempt, whose failure is raised (the transport's
        error, ``TimeoutError`` past ``connect_timeout_s``, ``PushRefused``, ``PushClosed``)."""
        if self._state != _NEW:
            raise RuntimeError("this push client was already opened")
        self._loop = asyncio.get_running_loop()
        self._settled = asyncio.Event()
        try:
            await self._attempt()   # its WELCOME made the client OPEN (_welcomed)
        except BaseException:
            await self._shut(graceful=False)
            raise

    async def close(self) -> None:
        """End the session (§9): CLOSE ``normal``, wait for the server's answer (at most
        ``close_timeout_s``), close the connection.  Calls in flight fail with ``PushClosed``;
        iteration ends after the items already received.  Idempotent."""
        await self._shut(graceful=True)

    async def _shut(self, graceful: bool) -> None:
        if self._state in (_CLOSED, _NEW):
            self._state = _CLOSED
            await self._close_http()
            return
        was_failed = self._state == _FAILED
        if not was_failed:
            self._state = _CLOSED
        task, self._reconnector = self._reconnector, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        conn, self._conn = self._conn, None
        if conn is not None and conn.wire is not None:
            self._dead = conn
            if graceful and conn.state == _C_OPEN:
                conn.send(KIND_CLOSE, 0, "normal", "")
                conn.state = _C_CLOSING
                # §9: the server answers CLOSE normal and closes; wait for that, bounded.
                try:
                    await asyncio.wait_for(conn.wire.wait_gone(), self._limits.close_timeout_s)
                except asyncio.TimeoutError:
                    pass
            conn.end(PushClosed("normal", "closed by the client"))
            if not graceful:
                conn.abort()
        await self._bury()
        self._wake()
        if self._settled is not None:
            self._settled.set()
        await self._close_http()

    async def _bury(self) -> None:
        """Wait until the last connection's transport is gone (bounded: then dropped), so no
        transport outlives the client."""
        conn, self._dead = self._dead, None
        if conn is None or conn.wire is None:
            return
        try:
            await asyncio.wait_for(conn.wire.wait_gone(), self._limits.close_timeout_s)
        except asyncio.TimeoutError:
            conn.abort()
            await conn.wire.wait_gone()
        except asyncio.CancelledError:
            # A reconnect cancelled by close(): close() buries it instead.
            if self._dead is None:
                self._dead = conn
            raise

    async def _close_http(self) -> None:
        http, self._http = self._http, None
        if http is not None and self._own_http:
            await http.aclose()

    # ------------------------------------------------------------------ connecting
    async def _attempt(self) -> None:
        """One connection up to WELCOME (within ``connect_timeout_s``), or its failure.  The
        WELCOME itself makes the client OPEN (``_welcomed``), in the read that brought it."""
        conn = _Connection(self, self._framing, self._limits.max_frame_bytes)
        hello: dict[str, Any] = {"codec": self._codec.name, "credentials": self._credentials}
        if self._resume_token is not None:
            # §8.4: the token of the last WELCOME and the highest number received.
            hello["resume_token"] = self._resume_token
            hello["last_seq"] = self._last_seq
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                conn.wire = await self._open_wire(conn)
                conn.send(KIND_HELLO, 0, VERSION, hello)
                await conn.ready
        except BaseException:
            if conn.state != _C_HELLO and conn.state != _C_DONE:
                # Cancelled after its WELCOME was taken: the connection is the session's now,
                # and whoever cancelled (close()) closes it.
                raise
            if conn.state != _C_DONE:
                conn.state = _C_DONE
                if conn.wire is not None:
                    conn.wire.abort()
            if conn.wire is not None:
                await asyncio.shield(conn.wire.wait_gone())
            raise

    async def _open_wire(self, conn: _Connection) -> _Wire:
        loop = asyncio.get_running_loop()
        if self._kind == "tcp":
            _, wire = await loop.create_connection(
                lambda: _TcpWire(conn), self._host, self._port, ssl=self._ssl,
                server_hostname=self._host if self._ssl is not None else None)
            return wire
        if self._http is None:
            from cyserve.client import Client
            self._http = Client(verify=self._ssl if self._ssl is not None else True)
            self._own_http = True
        ws_limits = WebSocketLimits(
            max_message_bytes=self._limits.max_frame_bytes,
            max_frame_bytes=self._limits.max_frame_bytes,
            # §13: the push PING/PONG is the heartbeat on WebSocket too.
            ping_interval_s=None, ping_timeout_s=None,
            close_timeout_s=self._limits.close_timeout_s)
        ws = await self._http.websocket(self._ws_url, subprotocols=[SUBPROTOCOL],
                                        headers=self._headers, limits=ws_limits,
                                        timeout=self._connect_timeout_s).__aenter__()
        return _WsWire(conn, ws, self._framing == FRAMING_WS_TEXT)

    def _check_welcome(self, payload: object) -> str:
        """Why a WELCOME breaks §6.2 (every key present, typed) or §8.4, or ``""``."""
        if not isinstance(payload, dict):
            return "WELCOME is not an object"
        for key in _WELCOME_KEYS:
            if key not in payload:
                return f"WELCOME without {key}"
        if not isinstance(payload["client_id"], str) or not isinstance(payload["resume_token"], str):
            return "WELCOME client_id and resume_token are strings"
        if payload["codec"] != self._codec.name:
            return "WELCOME names another codec than the HELLO asked for"
        resumed, next_seq = payload["resumed"], payload["next_seq"]
        if type(resumed) is not bool or type(next_seq) is not int:
            return "WELCOME resumed is a boolean, next_seq an integer"
        for key in ("heartbeat_s", "idle_timeout_s", "resume_window_s"):
            value = payload[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                return f"WELCOME {key} is a number >= 0"
        if not payload["heartbeat_s"] or payload["idle_timeout_s"] <= payload["heartbeat_s"]:
            return "WELCOME idle_timeout_s must exceed heartbeat_s > 0"
        frame_max = payload["max_frame_bytes"]
        if type(frame_max) is not int or frame_max < 64:
            return "WELCOME max_frame_bytes is an integer >= 64"
        if resumed:
            if self._resume_token is None:
                return "WELCOME resumed a session no HELLO asked to resume"
            if payload["client_id"] != self._client_id or next_seq != self._last_seq + 1:
                return "a resumed WELCOME changes the client id or skips sequence numbers"
        elif next_seq != 1:
            return "a new session's WELCOME has next_seq 1"
        return ""

    def _welcomed(self, conn: _Connection, welcome: dict[str, Any]) -> None:
        """A WELCOME (checked by ``_check_welcome``) arrived on ``conn``: the session takes it,
        and the client is OPEN from here, so that the frames after it in the same read (a CLOSE,
        a violation) end this connection as any other."""
        if self._state in (_NEW, _RECONNECTING):
            self._conn = conn
            self._state = _OPEN
            assert self._settled is not None
            self._settled.set()
        old = self._client_id
        self._welcome = welcome
        self._client_id = welcome["client_id"]
        self._resume_token = welcome["resume_token"]
        if welcome["resumed"]:
            if self._unsent_ack:
                # An ACK that could not go while disconnected: the server sent that push in
                # this session, so it may be acked on the new connection (§8.2).
                conn.send(KIND_ACK, self._unsent_ack)
        elif old is not None:
            # §8.4 case 2: a new session; say so in the stream, in its place in the order.
            self._epoch += 1
            self._last_seq = 0
            self._ack_due = None
            self._enqueue(SessionReset(old, welcome["client_id"]), conn)
        self._unsent_ack = 0

    def _ended(self, conn: _Connection, error: PushClosed | PushRefused) -> None:
        """An OPEN connection ended (the server's CLOSE, a violation, loss, idleness)."""
        if conn is not self._conn or self._state != _OPEN:
            return
        self._conn = None
        self._dead = conn
        assert self._settled is not None
        self._settled.clear()
        comes_back = error.code not in _FINAL_CLOSE
        if comes_back and self._reconnect and self._max_attempts != 0:
            self._state = _RECONNECTING
            _log.info("push connection to %s ended (%s); reconnecting", self._url, error.code)
            assert self._loop is not None
            self._reconnector = self._loop.create_task(
                self._reconnect_loop(), name="cyserve.push.client: reconnect")
        else:
            self._fail(error)

    async def _reconnect_loop(self) -> None:
        # The old connection's transport goes first: nothing of it outlives the reconnect.
        await self._bury()
        attempt = 0
        low, high = self._backoff
        while True:
            # Bounded exponential backoff, jittered so that clients a restart dropped together
            # do not all come back in the same instant; the first try waits up to `low`.
            delay = min(high, low * (2 ** attempt)) if attempt else low
            await asyncio.sleep(delay * random.uniform(0.5, 1.0) if attempt else random.uniform(0, delay))
            attempt += 1
            try:
                await self._attempt()   # its WELCOME made the client OPEN (_welcomed)
            except PushRefused as exc:
                if exc.code in _FINAL_REFUSE:
                    self._fail(exc)
                    return
                error: BaseException = exc
            except PushClosed as exc:
                if exc.code in _FINAL_CLOSE:
                    self._fail(exc)
                    return
                error = exc
            except (OSError, ClientError) as exc:
                # Refused, reset, unreachable, TLS, TimeoutError (an OSError) past
                # connect_timeout_s, and the WebSocket handshake's failures (ClientError).
                error = exc
            except Exception as exc:
                # Anything else will not get better by trying again: the application hears of
                # it from its next call or iteration rather than from a log line.
                self._fail(exc)
                return
            else:
                if self._reconnector is asyncio.current_task():
                    self._reconnector = None
                _log.info("push connection to %s %s after %d attempt(s)", self._url,
                          "resumed" if self.resumed else "opened a new session", attempt)
                return
            _log.debug("push reconnect attempt %d to %s failed: %s", attempt, self._url, error)
            if self._max_attempts is not None and attempt >= self._max_attempts:
                failure = PushClosed("going_away", f"gave up after {attempt} reconnect attempts")
                failure.__cause__ = error
                self._fail(failure)
                return

    def _fail(self, error: BaseException) -> None:
        """The end that the application did not ask for: calls and iteration raise ``error``."""
        self._state = _FAILED
        self._error = error
        self._reconnector = None
        self._conn = None
        self._wake()
        if self._settled is not None:
            self._settled.set()
        _log.info("push connection to %s closed for good: %s", self._url, error)

    # ------------------------------------------------------------------ calls
    async def call(self, command: str, data: Any = None, *, timeout_s: float | None = None) -> Any:
        """Run ``command`` on the server (§7) and return its REPLY's data.  ``PushCallError``
        for an ERROR; ``PushClosed`` when the connection ended before the answer (the command
        may have run); ``TimeoutError`` after ``timeout_s`` (the reply, if it comes, is
        dropped).  While reconnecting it waits for the connection, within ``timeout_s``."""
        async with asyncio.timeout(timeout_s):
            conn = await self._open_connection()
            self._call_id += 1
            call_id = self._call_id
            payload = self._codec.encode(data) if self._binary else data
            frame = encode(KIND_CALL, call_id, command, payload, 0, self._framing)
            size = len(frame) - (4 if self._framing == FRAMING_BINARY else
                                 1 if self._framing == FRAMING_JSON_LINES else 0)
            if size > conn.max_send_bytes:
                raise ValueError(f"the CALL is {size} bytes, over the server's max_frame_bytes "
                                 f"({conn.max_send_bytes}, §11)")
            assert self._loop is not None
            future: asyncio.Future[Any] = self._loop.create_future()
            conn.calls[call_id] = future
            try:
                conn.write(frame)
                assert conn.wire is not None
                await conn.wire.drain()
                return await future
            finally:
                conn.calls.pop(call_id, None)

    @property
    def _binary(self) -> bool:
        return self._framing == FRAMING_BINARY or self._framing == FRAMING_WS_BINARY

    async def _open_connection(self) -> _Connection:
        while True:
            if self._state == _OPEN and self._conn is not None:
                return self._conn
            if self._state == _FAILED:
                assert self._error is not None
                raise again(self._error)
            if self._state in (_CLOSED, _NEW):
                raise PushClosed("normal", "the push client is closed" if self._state == _CLOSED
                                 else "the push client is not open: use `async with connect(...)`")
            assert self._settled is not None
            await self._settled.wait()

    def _replied(self, conn: _Connection, call: asyncio.Future[Any], payload: object) -> None:
        if not self._binary:
            call.set_result(payload)
            return
        assert isinstance(payload, bytes)
        try:
            value = self._codec.decode(payload)
        except ValueError as exc:
            call.set_exception(PushCallError("bad_payload", f"the reply cannot be decoded: {exc}"))
            return
        call.set_result(value)

    # ------------------------------------------------------------------ pushes
    def _pushed(self, conn: _Connection, frame: Frame) -> None:
        seq = frame.id
        if seq <= self._last_seq:
            return   # §8.5: a duplicate after a resume
        if seq != self._last_seq + 1:
            conn.violated("protocol_error", "a push number skipped without a GAP (§8.1)")
            return
        data = frame.payload
        if self._binary:
            assert isinstance(data, bytes)
            try:
                data = self._codec.decode(data)
            except ValueError:
                # Skipping it would lose it silently; the session cannot go on without it.
                conn.violated("protocol_error", "push data the session codec cannot decode")
                return
        self._last_seq = seq
        self._enqueue(Push(seq, frame.name, data, bool(frame.flags & FLAG_ACK_REQUESTED), self,
                           self._epoch), conn)

    def _gapped(self, conn: _Connection, first: int, last: int) -> None:
        if last <= self._last_seq:
            return   # announced already (a resume's overlap)
        if first > self._last_seq + 1:
            conn.violated("protocol_error", "a GAP that skips numbers it does not cover (§8.1)")
            return
        first = max(first, self._last_seq + 1)
        self._last_seq = last
        self._enqueue(Gap(first, last), conn)

    def _enqueue(self, item: Item, conn: _Connection) -> None:
        self._items.append(item)
        if len(self._items) >= self._max_queued:
            conn.pause_reading()
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _ack(self, seq: int, epoch: int) -> None:
        if epoch != self._epoch:
            return   # that session is gone (SessionReset): nobody waits for this ACK
        conn = self._conn
        if self._state == _OPEN and conn is not None and conn.state == _C_OPEN:
            conn.send(KIND_ACK, seq)
        elif self._state == _RECONNECTING:
            self._unsent_ack = max(self._unsent_ack, seq)

    def __aiter__(self) -> PushClient:
        return self

    async def __anext__(self) -> Item:
        """The next ``Push``, ``Gap`` or ``SessionReset``.  Ends (``StopAsyncIteration``) after
        ``close()``; raises ``PushClosed``/``PushRefused`` once the session ended for good
        (after the items received before)."""
        due, self._ack_due = self._ack_due, None
        if due is not None:
            # auto_ack (§8.2): asking for the next item says the last one was processed.
            self._ack(due.seq, due._epoch)
        while not self._items:
            if self._state == _FAILED:
                assert self._error is not None
                raise again(self._error)
            if self._state in (_CLOSED, _NEW):
                raise StopAsyncIteration
            if self._waiter is not None:
                raise RuntimeError("another task is already iterating this push client")
            assert self._loop is not None
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.popleft()
        if len(self._items) <= self._max_queued // 2 and self._conn is not None:
            self._conn.resume_reading()
        if self._auto_ack and type(item) is Push and item.ack_requested:
            self._ack_due = item
        return item


def connect(url: str, credentials: Any = None, *, codec: str = "json", framing: str = "binary",
            limits: PushLimits | None = None, reconnect: bool = True,
            backoff_s: tuple[float, float] = (0.1, 5.0), auto_ack: bool = True,
            ssl: _ssl.SSLContext | None = None,
            headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
            client: Client | None = None, connect_timeout_s: float = 10.0,
            max_reconnect_attempts: int | None = None,
            max_queued_pushes: int = 1024) -> PushClient:
    """A push client for ``url``: ``tcp://host:port`` (``tcps://``, or ``ssl=`` a context, for
    TLS) or ``ws://host:port/path`` (``wss://``).  ``async with`` it to connect.

    ``credentials``: any JSON value for the server's auth hook (§6.6), sent in every HELLO.
    ``codec``: ``json``, ``bytes`` or ``xml`` (§6.3; the binary framing only for the last two).
    ``framing``: ``binary`` (length-prefixed frames / binary messages) or ``json`` (JSON lines /
    text messages).  ``limits``: this side's ``PushLimits`` (``max_frame_bytes`` bounds what it
    accepts, ``close_timeout_s`` its close); the heartbeat and idle timer are the WELCOME's.
    ``reconnect``: come back with resume after a connection ends with a code that allows it
    (§9), waiting ``backoff_s`` = (first, most) seconds, doubled per failed attempt, jittered;
    ``max_reconnect_attempts`` consecutive failures end the client (None: never).
    ``auto_ack``: ACK a push that asks for it when the next item is asked for; else call
    ``Push.ack()``.  ``headers``/``client``: the WebSocket handshake's extra fields and the
    ``cyserve.client.Client`` to open it with (one of its own by default).
    ``connect_timeout_s``: each connection attempt, up to WELCOME.  ``max_queued_pushes``:
    received items not yet iterated past which reading pauses (backpressure)."""
    return PushClient(url, credentials, codec, framing, limits, reconnect, backoff_s, auto_ack,
                      ssl, headers, client, connect_timeout_s, max_reconnect_attempts,
                      max_queued_pushes)
