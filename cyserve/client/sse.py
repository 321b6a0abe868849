"""Incremental ``text/event-stream`` parser (the WHATWG HTML "server-sent events" algorithm).

Lines end with CRLF, LF or CR; ``:`` starts a comment; ``data`` lines join with LF; an empty
line dispatches the event (nothing is dispatched while the data buffer is empty); ``id`` sticks
to later events; ``retry`` takes ASCII digits only (at most ten significant ones).  Input may be
split anywhere, even inside a UTF-8 sequence or between CR and LF.
"""
from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["ServerSentEvent", "SSEDecoder"]

_EOL = re.compile(r"\r\n|\r|\n")
_MAX_RETRY_DIGITS = 10  # see SSEDecoder._line


@dataclass(frozen=True)
class ServerSentEvent:
    data: str
    event: str = "message"
    id: str = ""
    retry: int | None = None

    def json(self) -> Any:
        from cyserve import _json
        return _json.loads(self.data)


class SSEDecoder:
    __slots__ = ("_text", "_pending", "_after_cr", "_data", "_event", "_id", "_retry")

    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending = ""
        self._after_cr = False
        self._data: list[str] = []
        self._event = ""
        self._id = ""
        self._retry: int | None = None

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        text = self._text.decode(data)
        if self._after_cr and text.startswith("\n"):
            text = text[1:]   # the LF of a CRLF split across two pieces
        self._after_cr = text.endswith("\r")
        buf = self._pending + text
        events = []
        pos = 0
        for match in _EOL.finditer(buf):
            event = self._line(buf[pos:match.start()])
            pos = match.end()
            if event is not None:
                events.append(event)
        self._pending = buf[pos:]
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = ServerSentEvent("\n".join(self._data), self._event or "message", self._id,
                                    self._retry)
            self._data = []
            self._event = ""
            self._retry = None
            return event
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry":
            # WHATWG HTML §9.2.6: a value that is not ASCII digits only is ignored
            # (str.isdigit() alone also takes "²" and other Unicode digits, which int() refuses).
            # Ten significant digits hold any delay worth waiting (about 115 days in ms); a
            # longer number is ignored too, so a hostile server can't make int() do quadratic
            # work or hit the interpreter's 4300-digit limit (a ValueError out of iter_events).
            digits = value.lstrip("0")
            if value.isascii() and value.isdigit() and len(digits) <= _MAX_RETRY_DIGITS:
                self._retry = int(digits or "0")
        return None
