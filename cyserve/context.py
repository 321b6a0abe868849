"""Request-scoped context: ``g``, a namespace private to one request, and ``current_request()``.

``Request.__init__`` binds the request to one ``ContextVar``.  The core runs each request in its
own copy of the context (``_dispatch`` in ``_core/http/server.pyx``), so the binding never leaks
into another request, nor into the loop's callbacks.  Tasks a handler starts and the background
tasks it schedules run in copies of that context, so they see the same request and the same
``g`` (what the handler stored for them), never another request's: PyLiteFlux's process-wide
``g`` (SEEDS §4.2) is the failure this avoids.  The namespace itself is made on first use of
``g``, so a request that never touches it pays for one ``ContextVar.set`` only.
"""
from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from cyserve.request import Request

__all__ = ["g", "current_request", "RequestGlobals"]

_current: ContextVar[Request | None] = ContextVar("cyserve.request", default=None)
#: Cached for ``Request.__init__`` (one attribute look-up less per request).
bind_request = _current.set

_OUTSIDE = ("cyserve.context.g used outside a request: it is bound while a handler, a task it "
            "started or a background task it scheduled runs")


class RequestGlobals:
    """The namespace behind ``g`` for one request: set, read and delete attributes freely.

    ``get(name, default)`` and ``pop(name, default)`` read without raising; ``name in g`` tests.
    """

    def get(self, name: str, default: Any = None) -> Any:
        return self.__dict__.get(name, default)

    def pop(self, name: str, *default: Any) -> Any:
        return self.__dict__.pop(name, *default)

    def __contains__(self, name: object) -> bool:
        return name in self.__dict__

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.__dict__))

    def __repr__(self) -> str:
        return f"<g {self.__dict__!r}>"


def current_request() -> Any:
    """The ``Request`` being handled in this context; ``RuntimeError`` outside a request."""
    request = _current.get()
    if request is None:
        raise RuntimeError(_OUTSIDE.replace("cyserve.context.g", "current_request()"))
    return request


def _namespace() -> RequestGlobals:
    request = _current.get()
    if request is None:
        raise RuntimeError(_OUTSIDE)
    return request.g


class _GProxy:
    """``g``: forwards to the current request's ``RequestGlobals``."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return getattr(_namespace(), name)
        except AttributeError:
            raise AttributeError(f"g has no attribute {name!r} in this request") from None

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(_namespace(), name, value)

    def __delattr__(self, name: str) -> None:
        try:
            delattr(_namespace(), name)
        except AttributeError:
            raise AttributeError(f"g has no attribute {name!r} in this request") from None

    def get(self, name: str, default: Any = None) -> Any:
        return _namespace().get(name, default)

    def pop(self, name: str, *default: Any) -> Any:
        return _namespace().pop(name, *default)

    def __contains__(self, name: object) -> bool:
        return name in _namespace()

    def __iter__(self) -> Iterator[str]:
        return iter(_namespace())

    def __repr__(self) -> str:
        request = _current.get()
        return "<g outside a request>" if request is None else repr(request.g)


g: Any = _GProxy()
