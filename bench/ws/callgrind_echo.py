"""Instructions per echoed WebSocket message in the server, counted by callgrind: cyserve, aiohttp,
websockets and picows measured by the same script, so their ratios are free of the machine's noise.

    python bench/ws/callgrind_echo.py [--only cyserve,aiohttp] [--size 256] [--connections 1]
                                      [--small 2000] [--large 12000] [--keep DIR] [--tree PATH]

Each server (``bench/ws/servers/<name>_server.py``, the same scripts ``echo.py`` runs) is started
under ``valgrind --tool=callgrind`` twice.  A client outside valgrind (plain blocking sockets, a
masked frame built once: its own cost is not counted and cannot shape the server's) opens
``--connections`` connections and echoes ``--small`` messages in one run and ``--large`` in the
other, then closes each with 1000 and stops the server with SIGTERM.  The difference of the two
instruction totals divided by the difference of the counts is what one more echoed message costs
the server: the interpreter's start-up, imports, handshakes, the close and the shutdown cancel out
(bench/micro/callgrind_per_request.py's method for HTTP).

With one connection each message is a loop wake-up, a read, the handler's turn and a write: the
``1conn`` case of ``echo.py``.  With more, every connection gets one message, then every echo is
read, so each read pass of the server finds a message on every connection, as in ``64conn``
where the server's core is saturated (under callgrind the server is the slow side in any case).

Instructions are not time (cache misses and branch mispredictions are not counted), but they do
not move with the machine's load: compare cyserve before and after a change (``--tree``, a
checkout built in place, with ``--only cyserve``) and cyserve against its peers here.  ``--keep``
keeps the large run's callgrind output for ``callgrind_annotate``.
"""
from __future__ import annotations

import argparse
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import wsprocs  # noqa: E402
from wsprocs import HOST, SERVERS, BenchError, procs  # noqa: E402

READY_TIMEOUT_S = 300.0   # start-up under callgrind is ~50x slower than native
STOP_TIMEOUT_S = 120.0
IO_TIMEOUT_S = 60.0       # one echo (the whole batch of connections) under callgrind
MASK = bytes((0x37, 0xFA, 0x21, 0x3D))


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """One client frame (RFC 6455 §5.2, FIN set, masked with MASK as §5.3 requires of a client)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    masked = bytes(b ^ MASK[i & 3] for i, b in enumerate(payload))
    return head + MASK + masked


def echo_header(size: int) -> bytes:
    """The header of the server's unmasked binary echo of ``size`` bytes."""
    if size < 126:
        return bytes((0x82, size))
    if size < 1 << 16:
        return bytes((0x82, 126)) + size.to_bytes(2, "big")
    return bytes((0x82, 127)) + size.to_bytes(8, "big")


def recv_exact(sock: socket.socket, n: int) -> bytes:
    parts, left = [], n
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise BenchError(f"the server closed the connection with {left} of {n} bytes unread")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def open_ws(port: int, path: str = "/") -> socket.socket:
    """The opening handshake (RFC 6455 §4.1) on a blocking socket; no extension offered, so every
    server runs its uncompressed path, as in echo.py."""
    sock = socket.create_connection((HOST, port), timeout=IO_TIMEOUT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)  # byte by byte: nothing past the head is taken from the socket
        if not chunk:
            raise BenchError("the server closed the connection during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise BenchError(f"handshake refused: {head.splitlines()[0]!r}")
    return sock


def drive(port: int, connections: int, messages: int, size: int) -> None:
    """Echo ``messages`` messages per connection, one in flight on each, then close each with
    1000 and read the server's close frame."""
    payload = bytes(i % 251 for i in range(size))
    frame = masked_frame(0x2, payload)
    header = echo_header(size)
    socks = [open_ws(port) for _ in range(connections)]
    try:
        for round_no in range(messages):
            for sock in socks:
                sock.sendall(frame)
            for sock in socks:
                got = recv_exact(sock, len(header) + size)
                if got[:len(header)] != header:
                    raise BenchError(f"unexpected echo header {got[:len(header)]!r}")
                if round_no == 0 and got[len(header):] != payload:
                    raise BenchError("the echo's payload differs from the message")
        close = masked_frame(0x8, (1000).to_bytes(2, "big"))
        for sock in socks:
            sock.sendall(close)
        for sock in socks:
            head = recv_exact(sock, 2)
            if head[0] & 0x0F != 0x8:
                raise BenchError(f"expected the server's close frame, got {head!r}")
            recv_exact(sock, head[1] & 0x7F)
            # The server closes TCP first (RFC 6455 §7.1.1): wait for its FIN, bounded.
            ready, _, _ = select.select([sock], [], [], IO_TIMEOUT_S)
            if ready:
                sock.recv(1)
    finally:
        for sock in socks:
            sock.close()


def read_binary(sock: socket.socket, size: int) -> bytes:
    """The next binary message's payload; pings on the way are answered (RFC 6455 §5.5.2: a
    member that only listens is pinged by servers that keep connections alive)."""
    while True:
        b0, b1 = recv_exact(sock, 2)
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(recv_exact(sock, 2), "big")
        elif n == 127:
            n = int.from_bytes(recv_exact(sock, 8), "big")
        payload = recv_exact(sock, n) if n else b""
        if b0 & 0x0F == 0x9:
            sock.sendall(masked_frame(0xA, payload))
        elif b0 & 0x0F == 0x2:
            if n != size:
                raise BenchError(f"a member got {n} bytes, expected {size}")
            return payload
        else:
            raise BenchError(f"a member got opcode {b0 & 0x0F:#x}")


def drive_broadcast(port: int, members: int, rounds: int, window: int, size: int) -> None:
    """``rounds`` times: the publisher sends ``window`` messages back to back and reads their acks,
    then every member reads them.  Then everyone closes with 1000."""
    room = [open_ws(port, "/room") for _ in range(members)]
    publisher = open_ws(port, "/publish")
    payload = bytes(i % 251 for i in range(size))
    frame = masked_frame(0x2, payload)
    try:
        for _ in range(rounds):
            publisher.sendall(frame * window)
            for _ in range(window):
                if read_binary(publisher, 3) != b"ack":
                    raise BenchError("the publisher's ack was not b'ack'")
            for sock in room:
                for _ in range(window):
                    read_binary(sock, size)
        for sock in [*room, publisher]:
            sock.sendall(masked_frame(0x8, (1000).to_bytes(2, "big")))
        for sock in [*room, publisher]:
            sock.settimeout(IO_TIMEOUT_S)
            try:
                while sock.recv(4096):   # the server's close frame, then its FIN
                    pass
            except OSError:
                pass
    finally:
        for sock in [*room, publisher]:
            sock.close()


def instructions(name: str, messages: int, args: argparse.Namespace, keep: Path | None) -> int:
    """The callgrind instruction total of one server run that echoes ``messages`` per connection;
    its callgrind output is copied to ``keep`` (a file path) when given."""
    port = procs.free_port()
    script = wsprocs.procs.APPS[f"ws-{name}"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        log = Path(tmp) / "valgrind.log"
        output = Path(tmp) / "server.out"
        env = procs._child_env(args.tree)
        env["PYTHONHASHSEED"] = "0"  # the same dict layouts in both runs
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", f"--log-file={log}",
               sys.executable, str(script), "--host", HOST, "--port", str(port)]
        with output.open("wb") as sink:
            server = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=env,
                                      start_new_session=True)
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:
                if server.poll() is not None:
                    raise BenchError(f"{name} under callgrind exited with {server.returncode}:\n"
                                     f"{_tail(output)}\n{_tail(log)}")
                try:
                    if wsprocs.handshake_ok(port):
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise BenchError(f"{name} under callgrind was not ready in {READY_TIMEOUT_S:.0f} s:\n"
                                     f"{_tail(output)}")
                time.sleep(0.5)
            if args.broadcast:
                drive_broadcast(port, args.broadcast, messages, args.window, args.size)
            else:
                drive(port, args.connections, messages, args.size)
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise BenchError(f"{name} under callgrind did not stop {STOP_TIMEOUT_S:.0f} s after SIGTERM")
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        text = log.read_text(errors="replace")
        match = re.search(r"Collected\s*:\s*(\d+)", text)
        if match is None:
            raise BenchError(f"no instruction total in callgrind's log for {name}:\n{text[-2000:]}")
        if keep is not None:
            keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(out, keep)
        return int(match.group(1))


def self_costs(path: Path) -> Counter[str]:
    """Instructions per function (self cost) of a callgrind output, recursion levels merged."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", str(path)],
                         capture_output=True, text=True, check=True, timeout=300).stdout
    costs: Counter[str] = Counter()
    for line in out.splitlines():
        match = re.match(r"\s*([\d,]+)\s+\([^)]*\)\s+(\S+?):(\S+)", line)
        if match:
            function = re.sub(r"'\d+$", "", match.group(3))
            costs[function] += int(match.group(1).replace(",", ""))
    return costs


def print_profile(small: Path, large: Path, messages: int, top: int) -> None:
    """The functions that one more echoed message runs: (large - small) / messages, self cost."""
    a, b = self_costs(small), self_costs(large)
    rows = sorted(set(a) | set(b), key=lambda k: -(b[k] - a[k]))
    print(f"  {'instr/msg':>10}  function (self cost; Cython names shortened)")
    for function in rows[:top]:
        short = re.sub(r"__pyx_[a-z]+_\d+cyserve_\d+_core_(\d+[a-z]+_)?\d+", "", function)
        print(f"  {(b[function] - a[function]) / messages:>10.1f}  {short[:110]}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="cyserve,aiohttp,websockets,picows",
                        help=f"comma list of {', '.join(SERVERS)}")
    parser.add_argument("--size", type=int, help="message size in bytes (256 for echo, 100 for broadcast)")
    parser.add_argument("--connections", type=int, default=1, help="connections, one message in flight on each")
    parser.add_argument("--small", type=int, default=2000, help="messages per connection, first run")
    parser.add_argument("--large", type=int, default=12000, help="messages per connection, second run")
    parser.add_argument("--broadcast", type=int, default=0, metavar="MEMBERS",
                        help="measure broadcast instead: MEMBERS room members, a publisher sending "
                             "--window messages per round (--small/--large rounds); per delivery")
    parser.add_argument("--window", type=int, default=2, help="broadcast: messages published per round")
    parser.add_argument("--keep", type=Path, help="keep both runs' callgrind output in this directory")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="print the N functions costing most per message (self cost, large - small)")
    parser.add_argument("--tree", help="a checkout (built in place) whose cyserve the servers import")
    args = parser.parse_args()
    if args.size is None:
        args.size = 100 if args.broadcast else 256
    names = args.only.split(",")
    if set(names) - set(SERVERS):
        parser.error(f"servers from {SERVERS}")
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    if not 0 < args.small < args.large:
        parser.error("--small must be below --large")
    # Bound: start-up and shutdown twice per server, plus the messages at a generous 5 ms each.
    per_round = args.broadcast * args.window if args.broadcast else args.connections
    total = per_round * (args.small + args.large)
    bound_s = int(len(names) * (2 * (READY_TIMEOUT_S + STOP_TIMEOUT_S) + total * 0.005)) + 60
    procs.arm_time_bound(bound_s, "bench/ws/callgrind_echo")
    if args.broadcast:
        print(f"broadcast to {args.broadcast} members, {args.window} message(s) of {args.size} B per round, "
              f"{args.small} and {args.large} rounds; bound {bound_s} s", flush=True)
    else:
        print(f"{args.connections} connection(s), {args.size} B messages, {args.small} and {args.large} "
              f"messages per connection; bound {bound_s} s", flush=True)
    unit = "delivered message" if args.broadcast else "echoed message"
    results: dict[str, float] = {}
    keep = args.keep or (Path(tempfile.mkdtemp(prefix="callgrind-echo-")) if args.profile else None)
    for name in names:
        stem = (f"callgrind.{name}.broadcast{args.broadcast}x{args.window}.{args.size}B" if args.broadcast
                else f"callgrind.{name}.{args.connections}conn.{args.size}B")
        small_out = keep / f"{stem}.{args.small}.out" if keep else None
        large_out = keep / f"{stem}.{args.large}.out" if keep else None
        small = instructions(name, args.small, args, small_out)
        large = instructions(name, args.large, args, large_out)
        messages = (args.large - args.small) * per_round
        results[name] = (large - small) / messages
        print(f"{name:<11}{results[name]:>10,.0f} instructions per {unit}", flush=True)
        if args.profile and small_out and large_out:
            print_profile(small_out, large_out, messages, args.profile)
    if keep is not None and not args.keep:
        shutil.rmtree(keep)
    signal.alarm(0)
    if "cyserve" in results and len(results) > 1:
        print(f"\ncyserve/peer (instructions per {unit}; < 1: cheaper)")
        for name, value in results.items():
            if name != "cyserve":
                print(f"  {name:<11}{results['cyserve'] / value:.2f}x   (peer/cyserve {value / results['cyserve']:.2f}x)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        sys.exit(f"bench/ws/callgrind_echo FAILED: {exc}")
    except KeyboardInterrupt:
        print("bench/ws/callgrind_echo: interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
