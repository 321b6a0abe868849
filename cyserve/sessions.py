"""Signed cookie sessions: ``app.use(Sessions(secret_keys=[new, old]))``, then in a handler
``session = request.state["session"]``, a dict-like of JSON values.

The whole session travels in one cookie (``pip install 'cyserve[sessions]'``)::

    cookie value = base64url(JSON) "." timestamp "." HMAC-SHA256 signature

signed and verified by itsdangerous' ``TimestampSigner`` (Pallets, the signer behind Flask's and
Starlette's sessions): its key list gives rotation (the first of ``secret_keys`` signs, every one
verifies), the signed timestamp gives expiry that a client cannot extend, and it compares
signatures with ``hmac.compare_digest``.  What is left here is what is cyserve's: when to read,
re-issue or delete the cookie, and its attributes and size.

- Signed, not encrypted: the client can read the session.  Keep secrets and large data
  server-side and store an id.
- Lazy: the cookie is verified the first time a handler touches the session; a request that never
  does pays for one small object.  A tampered, expired, unsigned or unparseable cookie is an empty
  session, never an error.
- Written back only when changed (``session["k"] = v``, ``del``, ``pop``, ``update``, ``clear``
  ...; set ``session.modified = True`` after mutating a nested value), with a fresh timestamp: a
  session expires ``max_age_s`` after it was last written.  Emptied, the cookie is deleted.
- A session that was read adds ``Vary: Cookie`` (RFC 9110 §12.5.5): the response depends on it.
- The cookie is refused (``ValueError``, hence a 500 and a traceback in the log) rather than sent
  when its Set-Cookie value exceeds ``max_cookie_bytes``: RFC 6265 §6.1 only promises 4096 bytes
  for name, value and attributes together, and a browser drops a larger cookie silently.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterator, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

from cyserve import _json
from cyserve.response import BaseResponse, cookie_header_value

if TYPE_CHECKING:
    from cyserve.middleware import Handler
    from cyserve.request import Request

__all__ = ["Session", "Sessions"]

_MIN_KEY_BYTES = 16  # an HMAC key shorter than this is guessable; 32 random bytes is the advice
_TWO_WEEKS_S = 14 * 24 * 3600


def _itsdangerous() -> Any:
    try:
        import itsdangerous
    except ImportError:
        raise ImportError("cyserve sessions need itsdangerous: pip install 'cyserve[sessions]' "
                          "(or pip install itsdangerous)") from None
    return itsdangerous


class Session(MutableMapping[str, Any]):
    """One request's session: a mutable mapping loaded from the cookie on first use.

    ``modified`` is set by every change made through the mapping; set it yourself after changing
    a nested value in place (``session["cart"].append(x)``).
    """

    __slots__ = ("_sessions", "_request", "_data", "_had_cookie", "modified")

    def __init__(self, sessions: Sessions, request: Request) -> None:
        self._sessions = sessions
        self._request = request
        self._data: dict[str, Any] | None = None  # None: not read yet
        self._had_cookie = False
        self.modified = False

    def _load(self) -> dict[str, Any]:
        data = self._data
        if data is None:
            raw = self._request.cookies.get(self._sessions.cookie_name)
            self._had_cookie = raw is not None
            data = self._data = self._sessions.decode(raw) if raw else {}
        return data

    @property
    def accessed(self) -> bool:
        """True once the session was read (the cookie verified) in this request."""
        return self._data is not None

    def __getitem__(self, key: str) -> Any:
        return self._load()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._load()[key] = value
        self.modified = True

    def __delitem__(self, key: str) -> None:
        del self._load()[key]
        self.modified = True

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def __contains__(self, key: object) -> bool:
        return key in self._load()

    def clear(self) -> None:
        """Empty the session: the response deletes the cookie (log out)."""
        data = self._load()
        if data or self._had_cookie:
            self.modified = True
        data.clear()

    def __repr__(self) -> str:
        return f"<Session {self._load()!r}>"


class Sessions:
    """The session middleware (``handler -> handler``); see the module docstring.

    ``secret_keys``: at least one key of 16+ bytes (``secrets.token_bytes(32)``); the first signs,
    all verify, so rotating is ``[new, old]`` and, ``max_age_s`` later, ``[new]``.
    ``max_age_s`` bounds a session's age from its signed timestamp and is the cookie's Max-Age.
    Cookie attributes default to ``HttpOnly; Secure; SameSite=Lax; Path=/`` (``secure=False`` for
    local development over http); ``max_cookie_bytes`` caps the Set-Cookie value.
    """

    def __init__(self, secret_keys: Sequence[str | bytes], *, cookie_name: str = "session",
                 max_age_s: int = _TWO_WEEKS_S, path: str = "/", domain: str | None = None,
                 secure: bool = True, httponly: bool = True, samesite: str | None = "lax",
                 max_cookie_bytes: int = 4096, salt: str = "cyserve.sessions") -> None:
        if isinstance(secret_keys, (str, bytes)):
            raise TypeError("secret_keys is a list of keys (the first signs): Sessions([key])")
        keys = [k.encode("utf-8") if isinstance(k, str) else bytes(k) for k in secret_keys]
        if not keys:
            raise ValueError("Sessions needs at least one secret key")
        if any(len(k) < _MIN_KEY_BYTES for k in keys):
            raise ValueError(f"every session key needs at least {_MIN_KEY_BYTES} bytes "
                             "(use secrets.token_bytes(32))")
        if isinstance(max_age_s, bool) or not isinstance(max_age_s, int) or max_age_s <= 0:
            raise ValueError("max_age_s must be a positive int (seconds)")
        itsdangerous = _itsdangerous()
        self._bad_signature = itsdangerous.BadSignature  # expired and malformed are subclasses
        # itsdangerous signs with the *last* key of its list and tries the newest first.
        self.signer = itsdangerous.TimestampSigner(
            list(reversed(keys)), salt=salt, key_derivation="hmac", digest_method=hashlib.sha256)
        self.cookie_name = cookie_name
        self.max_age_s = max_age_s
        self.max_cookie_bytes = max_cookie_bytes
        self._attributes: dict[str, Any] = {"path": path, "domain": domain, "secure": secure,
                                            "httponly": httponly, "samesite": samesite}
        # Misconfiguration (a bad name, SameSite=None without Secure, ...) fails here, not per request.
        cookie_header_value(cookie_name, "x", max_age=max_age_s, **self._attributes)

    # ------------------------------------------------------------------ the cookie value
    def encode(self, data: dict[str, Any]) -> str:
        """The signed cookie value for ``data`` (JSON-serialisable), timestamped now."""
        try:
            payload = _json.dumps(data)
        except TypeError as exc:
            raise TypeError(f"session values must be JSON-serialisable: {exc}") from None
        signed: bytes = self.signer.sign(base64.urlsafe_b64encode(payload).rstrip(b"="))
        return signed.decode("ascii")

    def decode(self, value: str) -> dict[str, Any]:
        """The session in a cookie value; ``{}`` unless it is signed by one of the keys, younger
        than ``max_age_s`` and a JSON object."""
        try:
            payload = self.signer.unsign(value.encode("utf-8", "surrogatepass"),
                                         max_age=self.max_age_s)
            data = _json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        except (self._bad_signature, ValueError, binascii.Error):
            return {}
        return data if isinstance(data, dict) else {}

    def set_cookie_value(self, data: dict[str, Any]) -> str:
        """The whole Set-Cookie field value for ``data``; ``ValueError`` past ``max_cookie_bytes``."""
        field = cookie_header_value(self.cookie_name, self.encode(data), max_age=self.max_age_s,
                                    **self._attributes)
        if len(field) > self.max_cookie_bytes:
            raise ValueError(
                f"session cookie {self.cookie_name!r} would be {len(field)} bytes, past the "
                f"{self.max_cookie_bytes} a browser is sure to keep (RFC 6265 §6.1): store less "
                "in the session (an id, with the data server-side)")
        return field

    # ------------------------------------------------------------------ the middleware
    def _save(self, session: Session, response: BaseResponse) -> None:
        headers = response.headers
        headers.append(("Vary", "Cookie"))
        if not session.modified:
            return
        data = session._load()
        if data:
            headers.append(("Set-Cookie", self.set_cookie_value(data)))
        elif session._had_cookie:
            response.delete_cookie(self.cookie_name, **self._attributes)

    def __call__(self, handler: Handler) -> Handler:
        async def call(request: Request) -> BaseResponse:
            session = Session(self, request)
            request.state["session"] = session
            response = await handler(request)
            if session._data is not None:
                self._save(session, response)
            return response
        return call
