"""The listening socket (cyserve.server.listen): TCP, Unix socket paths, inherited descriptors
and systemd socket activation — bound in this process, then served by real server processes."""
from __future__ import annotations

import os
import signal
import socket
import stat
import sys
from pathlib import Path

import pytest

from cyserve.config import RunConfig
from cyserve.errors import StartupError
from cyserve.server.listen import bind

from tests.server.processes import BASIC, LOOPS


@pytest.fixture
def short_dir():
    """A directory short enough for a Unix socket path (108 bytes), removed after."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="cy-", dir="/tmp") as directory:
        yield Path(directory)


def _connects(address) -> bool:
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as client:
        client.settimeout(2)
        try:
            client.connect(address)
        except OSError:
            return False
    return True


# ---------------------------------------------------------------------- TCP
def test_tcp_binds_listens_and_describes_itself():
    listener = bind(RunConfig(host="127.0.0.1", port=0, backlog=16))
    port = listener.port
    try:
        assert port and port > 0
        assert listener.url() == f"http://127.0.0.1:{port}"
        assert listener.url("https") == f"https://127.0.0.1:{port}"
        assert _connects(("127.0.0.1", port))  # listening: the kernel completes it
    finally:
        listener.close()
    assert not _connects(("127.0.0.1", port))


def test_an_ipv6_literal_binds_ipv6():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    try:
        listener = bind(RunConfig(host="::1", port=0))
    except StartupError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    try:
        assert listener.sock.family == socket.AF_INET6
        assert listener.url() == f"http://[::1]:{listener.port}"
    finally:
        listener.close()


def test_an_address_in_use_is_a_startup_error_naming_it_and_the_errno():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError) as caught:
            bind(RunConfig(host="127.0.0.1", port=port))
    assert str(caught.value) == f"could not bind 127.0.0.1:{port}: [Errno 98] Address already in use"


def test_an_address_not_on_this_host_is_a_startup_error():
    with pytest.raises(StartupError, match=r"could not bind 192\.0\.2\.1:\d+: \[Errno 99\]"):
        bind(RunConfig(host="192.0.2.1", port=0))  # TEST-NET-1 (RFC 5737): never local


def test_an_unknown_host_name_is_a_startup_error():
    with pytest.raises(StartupError, match="could not bind no-such-host.invalid:8000"):
        bind(RunConfig(host="no-such-host.invalid", port=8000))


# ---------------------------------------------------------------------- Unix sockets
def test_a_new_unix_socket_gets_mode_0666_and_is_removed_on_close(short_dir):
    path = str(short_dir / "app.sock")
    listener = bind(RunConfig(uds=path))
    try:
        assert listener.is_unix and listener.port is None
        assert listener.url() == f"unix:{path}"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o666
        assert _connects(path)
    finally:
        listener.close()
    assert not os.path.exists(path)


def test_a_stale_unix_socket_is_replaced_and_keeps_its_mode(short_dir):
    path = str(short_dir / "app.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens: a server that died
    os.chmod(path, 0o660)
    listener = bind(RunConfig(uds=path))
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        assert _connects(path)
    finally:
        listener.close()


def test_a_unix_socket_another_server_listens_on_is_left_alone(short_dir):
    path = str(short_dir / "app.sock")
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(path)
        live.listen()
        with pytest.raises(StartupError, match="another server is listening on it"):
            bind(RunConfig(uds=path))
        assert _connects(path)


def test_a_path_that_is_not_a_socket_is_never_removed(short_dir):
    path = short_dir / "app.sock"
    path.write_text("precious")
    with pytest.raises(StartupError, match="exists and is not a socket"):
        bind(RunConfig(uds=str(path)))
    assert path.read_text() == "precious"


def test_close_leaves_a_socket_file_someone_bound_since(short_dir):
    path = str(short_dir / "app.sock")
    listener = bind(RunConfig(uds=path))
    os.unlink(path)
    with socket.socket(socket.AF_UNIX) as other:
        other.bind(path)  # another server took the path
        listener.close()
        assert os.path.exists(path)


# ---------------------------------------------------------------------- inherited descriptors
def test_an_inherited_descriptor_is_adopted_with_its_family():
    original = socket.socket()
    original.bind(("127.0.0.1", 0))
    port = original.getsockname()[1]
    fd = os.dup(original.fileno())
    original.close()
    listener = bind(RunConfig(fd=fd))
    try:
        assert listener.sock.family == socket.AF_INET
        assert listener.port == port
        assert listener.description == f"http://127.0.0.1:{port} (fd {fd})"
        assert _connects(("127.0.0.1", port))
    finally:
        listener.close()


def test_a_bad_descriptor_is_a_startup_error():
    fd = os.open(os.devnull, os.O_RDONLY)
    try:
        with pytest.raises(StartupError, match=f"could not use fd {fd}"):
            bind(RunConfig(fd=fd))
        os.fstat(fd)  # still open: the caller's descriptor is not closed on failure
    finally:
        os.close(fd)


def test_systemd_variables_for_another_process_are_ignored():
    environ = {"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid() + 1)}
    listener = bind(RunConfig(port=0), environ=environ)
    try:
        assert listener.sock.family == socket.AF_INET  # TCP, not descriptor 3
        assert environ == {"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid() + 1)}
    finally:
        listener.close()


def test_malformed_systemd_variables_are_a_startup_error():
    with pytest.raises(StartupError, match="LISTEN_FDS"):
        bind(RunConfig(port=0), environ={"LISTEN_FDS": "one", "LISTEN_PID": "1"})


# ---------------------------------------------------------------------- served by processes
@pytest.mark.parametrize("loop", LOOPS)
def test_workers_serve_a_unix_socket_and_remove_it_on_exit(started, short_dir, loop):
    path = str(short_dir / "app.sock")
    server = started({"app": BASIC, "workers": 2, "uds": path, "loop": loop})
    assert server.uds == path
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666
    assert len(server.answering_pids(2)) == 2
    server.signal(signal.SIGTERM)
    assert server.wait() == 0
    assert not os.path.exists(path)


def test_one_process_serves_a_unix_socket_and_removes_it_on_exit(started, short_dir):
    path = str(short_dir / "app.sock")
    server = started({"app": BASIC, "uds": path})
    assert server.pid_of_answer() == server.proc.pid
    server.signal(signal.SIGTERM)
    assert server.wait() == 0
    assert not os.path.exists(path)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_passed_descriptor_is_served(started, workers):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = started({"app": BASIC, "workers": workers, "fd": sock.fileno()},
                         pass_fds=[sock.fileno()])
    assert server.port == port
    assert len(server.answering_pids(workers)) == workers


def test_systemd_socket_activation_serves_descriptor_3(started):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        # As systemd starts a service: the socket at descriptor 3, LISTEN_PID the service's own
        # pid (kept across exec), LISTEN_FDS=1.
        wrapper = [sys.executable, "-c",
                   "import os, sys; os.dup2(int(sys.argv[1]), 3); "
                   "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid())); "
                   "os.execv(sys.argv[2], sys.argv[2:])", str(sock.fileno())]
        server = started({"app": BASIC, "workers": 2, "port": 1}, prefix=wrapper,
                         pass_fds=[sock.fileno()])
    assert server.port == port  # not port 1: descriptor 3 wins over host/port
    assert len(server.answering_pids(2)) == 2
