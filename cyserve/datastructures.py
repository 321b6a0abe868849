"""Request-side containers: case-insensitive headers, multi-valued query parameters and form
data, and the request URL."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, NamedTuple
from urllib.parse import parse_qsl

from cyserve.errors import BadRequest

if TYPE_CHECKING:
    from cyserve._core.http.head import Head

__all__ = ["Headers", "QueryParams", "FormData", "URL", "field_value"]


def field_value(fields: Iterable[tuple[str, str]], lower_name: str) -> str | None:
    """The first value of field ``lower_name`` in (name, value) pairs, whatever the pairs' case
    (field names are case-insensitive, RFC 9110 §5.1); None when it is absent."""
    for key, value in fields:
        if key.lower() == lower_name:
            return value
    return None


class Headers(Mapping[str, str]):
    """Request header fields: case-insensitive, multi-valued, read-only.

    ``headers["host"]`` and ``get`` give the first value; ``getlist`` every value in order.  Built
    over the core's parsed head: single look-ups are answered by the core without building a dict.
    """

    __slots__ = ("_head", "_items")

    def __init__(self, head: Head | None = None, items: list[tuple[str, str]] | None = None) -> None:
        self._head = head
        self._items = items

    def _all(self) -> list[tuple[str, str]]:
        if self._items is None:
            self._items = self._head.header_items() if self._head is not None else []
        return self._items

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        if self._head is not None:
            return self._head.get(name, default)
        lower = name.lower()
        for key, value in self._all():
            if key == lower:
                return value
        return default

    def getlist(self, name: str) -> list[str]:
        lower = name.lower()
        return [value for key, value in self._all() if key == lower]

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for key, _ in self._all():
            if key not in seen:
                seen.add(key)
                yield key

    def __len__(self) -> int:
        return len({key for key, _ in self._all()})

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        """Every (lower-case name, value) pair, duplicates included, in order."""
        return list(self._all())

    def __repr__(self) -> str:
        return f"Headers({self._all()!r})"


class _MultiDict(Mapping[str, Any]):
    """Ordered (key, value) pairs: ``self[key]`` is the last value, ``getlist(key)`` all of them."""

    __slots__ = ("_items", "_last")

    def __init__(self, items: list[tuple[str, Any]]) -> None:
        self._items = items
        self._last = {key: value for key, value in items}

    def __getitem__(self, key: str) -> Any:
        return self._last[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._last)

    def __len__(self) -> int:
        return len(self._last)

    def getlist(self, key: str) -> list[Any]:
        return [value for name, value in self._items if name == key]

    def multi_items(self) -> list[tuple[str, Any]]:
        return list(self._items)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items!r})"


class QueryParams(_MultiDict):
    """Query string parameters: ``params["a"]`` is the last value, ``getlist("a")`` all of them."""

    __slots__ = ()

    def __init__(self, query: str | list[tuple[str, str]] = "") -> None:
        if isinstance(query, str):
            super().__init__(parse_qsl(query, keep_blank_values=True) if query else [])
        else:
            super().__init__(list(query))


class FormData(_MultiDict):
    """A parsed form: ``form["a"]`` is the last value, ``getlist("a")`` all of them, in order.

    Values are ``str`` for plain fields and ``UploadFile`` for file parts; ``close()`` closes the
    files (their spooled temporary files are deleted).
    """

    __slots__ = ()

    def __init__(self, items: list[tuple[str, Any]] | None = None) -> None:
        super().__init__(list(items or ()))

    def close(self) -> None:
        for _, value in self._items:
            close = getattr(value, "close", None)
            if close is not None:
                close()


_DEFAULT_PORTS = {"http": 80, "https": 443}


class URL(NamedTuple):
    """The URL a request was made for (RFC 9110 §4.2, reconstructed per RFC 9112 §3.3).

    ``host`` is lower-cased and keeps an IPv6 literal's brackets; ``port`` is the explicit port,
    else the scheme's default; ``path`` and ``query`` are as sent (percent-encoding kept).
    ``str(url)`` gives the absolute URL, without the port when it is the default.
    """

    scheme: str
    host: str
    port: int
    path: str
    query: str

    @property
    def netloc(self) -> str:
        if self.port == _DEFAULT_PORTS.get(self.scheme):
            return self.host
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:
        url = f"{self.scheme}://{self.netloc}{self.path}"
        return f"{url}?{self.query}" if self.query else url

    @classmethod
    def build(cls, scheme: str, authority: str, path: str, query: str) -> "URL":
        """From ``authority`` = uri-host [":" port] (its syntax already validated by the core's
        parser); ``BadRequest`` (400) when the port is not one a TCP connection can have."""
        host, port = authority.lower(), _DEFAULT_PORTS.get(scheme, 0)
        colon = host.rfind(":")
        if colon >= 0 and "]" not in host[colon:]:
            digits = host[colon + 1:]
            host = host[:colon]
            if digits:  # an empty port means the default (RFC 3986 §3.2.3)
                port = _port(digits)
        return cls(scheme, host, port, path, query)


_MAX_PORT = 65535


def _port(digits: str) -> int:
    """The port of a request's Host (or absolute-form authority) as an int.

    RFC 3986 §3.2.3 lets a port be any number of digits, so the core's parser passes
    ``Host: x:99999`` and ``x:<5000 digits>`` (the latter would be a ValueError from int(), past
    the interpreter's 4300-digit limit: a 500).  Neither names a TCP port, so the target URI
    can't be rebuilt (RFC 9112 §3.3) and the Host is invalid: 400, as RFC 9112 §3.2 asks for an
    invalid Host.  Not a fallback to the connection's address: a URL naming an authority the
    client did not send (in a redirect, an absolute link) is worse than an answer saying why.
    The check runs when ``request.url`` is first read, so only a handler that needs the URL
    answers 400; the digit count is bounded before int() sees it.
    """
    significant = digits.lstrip("0")
    if (not digits.isascii() or not digits.isdigit() or len(significant) > 5
            or int(significant or "0") > _MAX_PORT):
        raise BadRequest("invalid Host: its port is not a TCP port, 0 to 65535 (RFC 9112 §3.2)")
    return int(significant or "0")
