"""The network inside a job's sandbox: runs there as the command's parent, standard library only.

Usage: netbridge.py [ADDRESS:PORT=SOCKET ...] -- COMMAND [ARG ...]

The sandbox has its own network namespace with nothing but `lo`. For each ADDRESS:PORT (a loopback
address, `[::1]:PORT` for IPv6) this listens there and relays every connection to the unix socket
SOCKET, whose other end the worker holds outside (steps/job/sandbox.py): a forwarded loopback port of
the host, or the allowlisting proxy. Then it runs the command and exits with its exit code (128+N
when signal N killed it).

The worker signals every process of the tree itself (SIGINT, SIGTERM, SIGKILL), so the bridge must
outlive its command: it catches those signals and does nothing with them. A caught signal (unlike an
ignored one) is back to its default in the command after exec, whatever disposition we inherited.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import threading

CHUNK = 65536


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def pump(source: socket.socket, target: socket.socket) -> None:
    """Copy one direction until EOF, then pass the EOF on (the other direction may still be talking)."""
    with contextlib.suppress(OSError):
        while data := source.recv(CHUNK):
            target.sendall(data)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


def relay(left: socket.socket, right: socket.socket) -> None:
    """Both directions; the sockets are closed when both are done."""
    back = threading.Thread(target=pump, args=(right, left), daemon=True)
    back.start()
    pump(left, right)
    back.join()
    left.close()
    right.close()


def serve(listener: socket.socket, socket_path: str) -> None:
    while True:
        client, _ = listener.accept()
        outside = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            outside.connect(socket_path)
        except OSError:
            client.close()  # the worker's side is gone: the command sees the connection drop
            outside.close()
            continue
        threading.Thread(target=relay, args=(client, outside), daemon=True).start()


def listen(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((address, port))
    listener.listen(64)
    return listener


def _nothing(_signum: int, _frame: object) -> None:
    return None


def main(args: list[str]) -> int:
    if "--" not in args or args.index("--") == len(args) - 1:
        print("usage: netbridge.py [ADDRESS:PORT=SOCKET ...] -- COMMAND [ARG ...]", file=sys.stderr)
        return 2
    split = args.index("--")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _nothing)
    for spec in args[:split]:
        address, _, socket_path = spec.partition("=")
        listener = listen(*parse_address(address))  # listening before the command starts
        threading.Thread(target=serve, args=(listener, socket_path), daemon=True).start()
    try:
        command = subprocess.Popen(args[split + 1 :], restore_signals=True)
    except OSError as error:
        print(f"netbridge: {args[split + 1]}: {error.strerror}", file=sys.stderr)
        return 126 if isinstance(error, PermissionError) else 127  # as a shell would
    code = command.wait()
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
