"""The listening socket, bound once by the process that starts the server (``bind``).

Every worker serves this one socket, inherited across ``fork``: the kernel keeps one accept queue
for it for as long as any process holds it open, so a worker that stops listening (a drain, a
recycle, a crash) leaves the connections already queued for the others.  With a socket per
worker bound with ``SO_REUSEPORT`` the kernel hashes each connection to one socket's queue and
resets what is queued there when that socket closes (unless ``net.ipv4.tcp_migrate_req`` is on;
``bench/e2e/reuseport_vs_inherited.py`` shows the difference).

Where to listen, first match wins: ``uds`` (a Unix socket path), ``fd`` (a descriptor the caller
inherited, already bound), systemd socket activation (``LISTEN_FDS`` for this pid: descriptor
3, as ``sd_listen_fds(3)`` defines), else TCP on ``host``:``port``.  Every failure is a
``StartupError`` naming the address and the system's reason.
"""
from __future__ import annotations

import logging
import os
import socket
import stat
from typing import MutableMapping

from cyserve.config import RunConfig
from cyserve.errors import StartupError

__all__ = ["Listener", "bind", "SD_LISTEN_FDS_START"]

#: The first descriptor systemd passes (sd_listen_fds(3)).
SD_LISTEN_FDS_START = 3

# A Unix socket path the server creates gets these permissions (what uvicorn gives it): any
# local user may connect; restrict access with the directory's permissions.  A path that held
# a stale socket keeps the mode it had, so an operator's chmod survives restarts.
_NEW_UDS_MODE = 0o666


class Listener:
    """A bound, listening socket and how to describe it; ``close()`` removes a Unix socket
    file this process created."""

    __slots__ = ("sock", "description", "_uds_path", "_uds_inode")

    def __init__(self, sock: socket.socket, description: str, uds_path: str | None = None) -> None:
        self.sock = sock
        #: For logs: ``http://127.0.0.1:8000``, ``unix:/run/app.sock``, ``fd 3``.
        self.description = description
        self._uds_path = uds_path
        # The file we bound: close() must not remove a socket someone else bound there since.
        self._uds_inode = os.stat(uds_path).st_ino if uds_path is not None else None

    @property
    def is_unix(self) -> bool:
        return self.sock.family == socket.AF_UNIX

    @property
    def port(self) -> int | None:
        """The bound TCP port (useful with port 0); None for a Unix socket."""
        if self.sock.family in (socket.AF_INET, socket.AF_INET6):
            return int(self.sock.getsockname()[1])
        return None

    def url(self, scheme: str = "http") -> str:
        """``scheme://host:port`` for TCP (IPv6 in brackets), ``unix:PATH`` for a Unix socket."""
        if self.sock.family == socket.AF_INET6:
            host, port = self.sock.getsockname()[:2]
            return f"{scheme}://[{host}]:{port}"
        if self.sock.family == socket.AF_INET:
            host, port = self.sock.getsockname()[:2]
            return f"{scheme}://{host}:{port}"
        return self.description

    def close(self) -> None:
        """Close the socket; unlink the Unix socket file if it is still the one bound here."""
        self.sock.close()
        path, self._uds_path = self._uds_path, None
        if path is None:
            return
        try:
            if os.stat(path).st_ino == self._uds_inode:
                os.unlink(path)
        except FileNotFoundError:
            pass


def bind(config: RunConfig, *, environ: MutableMapping[str, str] | None = None,
         reuse_port: bool = False) -> Listener:
    """Bind and listen where ``config`` says (see the module docstring for the order).

    ``environ`` (default ``os.environ``) is read for systemd's ``LISTEN_PID``/``LISTEN_FDS``,
    which are removed from it once taken (they are meant for this process, not its children's
    children).  ``reuse_port`` sets ``SO_REUSEPORT`` on a TCP socket (``App.run(reuse_port=True)``:
    several independent servers on one port)."""
    env = os.environ if environ is None else environ
    if config.uds is not None:
        return _bind_unix(config.uds, config.backlog)
    if config.fd is not None:
        return _adopt(config.fd, config.backlog, f"fd {config.fd}")
    systemd = _systemd_fd(env)
    if systemd is not None:
        return _adopt(systemd, config.backlog, f"systemd socket (fd {systemd})")
    return _bind_tcp(config.host, config.port, config.backlog, reuse_port)


def _bind_tcp(host: str, port: int, backlog: int, reuse_port: bool) -> Listener:
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    shown = f"[{literal}]:{port}" if ":" in literal else f"{literal}:{port}"
    try:
        # AI_PASSIVE: an empty host means every address; the first answer is what uvicorn and
        # the OS's own resolver order would pick ("localhost" -> 127.0.0.1 before ::1).
        infos = socket.getaddrinfo(literal or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"could not bind {shown}: {exc.strerror}") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        # A restarted server must bind while its old connections sit in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise StartupError(f"could not bind {shown}: {_reason(exc)}") from exc
    listener = Listener(sock, shown)
    listener.description = listener.url()
    return listener


def _bind_unix(path: str, backlog: int) -> Listener:
    mode = _clear_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, _NEW_UDS_MODE if mode is None else mode)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise StartupError(f"could not bind unix:{path}: {_reason(exc)}") from exc
    return Listener(sock, f"unix:{path}", uds_path=path)


def _clear_stale_socket(path: str) -> int | None:
    """Remove a socket file nobody listens on and return its permission bits; None when the path
    is free.  A live socket or a file of another kind is never removed."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StartupError(f"could not bind unix:{path}: {_reason(exc)}") from exc
    if not stat.S_ISSOCK(info.st_mode):
        raise StartupError(f"could not bind unix:{path}: the path exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        pass  # nobody is listening: the file is left over from a server that is gone
    except OSError as exc:
        raise StartupError(f"could not bind unix:{path}: {_reason(exc)}") from exc
    else:
        raise StartupError(f"could not bind unix:{path}: another server is listening on it")
    finally:
        probe.close()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return stat.S_IMODE(info.st_mode)


def _adopt(fd: int, backlog: int, what: str) -> Listener:
    """A socket this process inherited, already bound; ``socket(fileno=)`` reads its family."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise StartupError(f"could not use {what}: {_reason(exc)}") from exc
    try:
        if sock.type != socket.SOCK_STREAM:
            raise StartupError(f"could not use {what}: not a stream socket")
        sock.listen(backlog)
    except OSError as exc:
        sock.detach()  # the descriptor is the caller's: report, do not close it
        raise StartupError(f"could not use {what}: {_reason(exc)}") from exc
    except StartupError:
        sock.detach()
        raise
    listener = Listener(sock, what)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        listener.description = f"{listener.url()} ({what})"
    return listener


def _systemd_fd(environ: MutableMapping[str, str]) -> int | None:
    """The first descriptor systemd passed to this process, or None.  Only when ``LISTEN_PID``
    names this process: a child that inherited the variables must not take descriptor 3."""
    fds, pid = environ.get("LISTEN_FDS"), environ.get("LISTEN_PID")
    if fds is None or pid is None:
        return None
    try:
        count, owner = int(fds), int(pid)
    except ValueError as exc:
        raise StartupError(f"LISTEN_FDS={fds!r} / LISTEN_PID={pid!r}: not numbers") from exc
    if owner != os.getpid() or count < 1:
        return None
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        environ.pop(name, None)
    if count > 1:
        # serve() takes one socket; the rest stay open but unused. Say so rather than guess.
        logging.getLogger("cyserve.error").warning(
            "systemd passed %d sockets; serving the first (fd %d) only", count,
            SD_LISTEN_FDS_START)
    return SD_LISTEN_FDS_START


def _reason(exc: OSError) -> str:
    """The system's text for an errno (``[Errno 98] Address already in use``)."""
    if exc.errno is not None:
        return f"[Errno {exc.errno}] {exc.strerror or os.strerror(exc.errno)}"
    return str(exc) or type(exc).__name__
