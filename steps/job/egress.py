"""The host side of a sandbox's network, in the worker as daemon threads, for the length of one command.

A job's sandbox has no network of its own; steps/job/netbridge.py inside relays its loopback ports to
unix sockets served here: a forward hands each connection to one loopback port of the host, the
proxy to the destinations on the allowlist only (CONNECT for HTTPS, absolute-form requests for HTTP).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger("steps.job.sandbox")

CHUNK = 65536
HEAD_LIMIT = 65536  # a request head longer than this is no client we serve
HEAD_TIMEOUT = 30.0  # a connection that never sends its request does not hold a thread forever
CONNECT_TIMEOUT = 15.0


def split_host_port(text: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]` or `[v6]:port`; a bare IPv6 address has no port."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, None


def normal(host: str) -> str:
    return host.lower().rstrip(".")


class Allowlist:
    """`host` allows ports 443 and 80, `host:port` that port only; `*.host` is any subdomain of host."""

    def __init__(self, entries: Iterable[str]):
        self.rules: list[tuple[str, tuple[int, ...]]] = []
        for entry in entries:
            host, port = split_host_port(entry)
            self.rules.append((normal(host), (443, 80) if port is None else (port,)))

    def allows(self, host: str, port: int) -> bool:
        host = normal(host)
        return any(
            port in ports and (host == rule or (rule.startswith("*.") and host.endswith(rule[1:])))
            for rule, ports in self.rules
        )


def pump(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(CHUNK):
            target.sendall(data)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)  # pass the EOF on; the other direction may still be talking


def connect(host: str, port: int) -> socket.socket:
    """Never a link-local address by name: a rebound name must not reach the instance metadata or the
    task's credentials endpoint (169.254.x) from the worker's network."""
    error: OSError = OSError(f"no usable address for {host}")
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        ip = ipaddress.ip_address(str(address[0]).partition("%")[0])
        if ip.is_link_local and normal(host) != str(ip):
            continue
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(CONNECT_TIMEOUT)
            sock.connect(address)
            sock.settimeout(None)
            return sock
        except OSError as failed:
            sock.close()
            error = failed
    raise error


def read_head(client: socket.socket) -> tuple[bytes, bytes]:
    """The request head (without its blank line) and whatever came after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(CHUNK)
        if not chunk or len(data) > HEAD_LIMIT:
            raise ValueError("no complete request head")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def origin_form(method: str, path: str, version: str, headers: list[bytes]) -> bytes:
    """The request as the server wants it: origin-form, one request per connection."""
    hop = (b"connection:", b"proxy-connection:", b"proxy-authorization:", b"keep-alive:")
    kept = [line for line in headers if not line.lower().startswith(hop)]
    return b"\r\n".join([f"{method} {path} {version}".encode("latin-1"), *kept, b"Connection: close", b"", b""])


def answer(client: socket.socket, status: str) -> None:
    body = f"{status}\n".encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    with contextlib.suppress(OSError):
        client.sendall(head.encode() + body)


class Egress:
    """The listening sockets of one command and every connection through them; `close` ends them all."""

    def __init__(self, owner: tuple[int, int] | None):
        self.owner = owner  # who may connect (the job's uid/gid) when we are root
        self.sockets: set[socket.socket] = set()
        self.threads: list[threading.Thread] = []
        self.paths: list[Path] = []
        self.refused: set[str] = set()
        self.lock = threading.Lock()
        self.closed = False

    def forward(self, path: Path, host: str, port: int) -> None:
        self._listen(path, lambda client: self._relay(client, self._track(connect(host, port))))

    def proxy(self, path: Path, allowlist: Allowlist) -> None:
        self._listen(path, lambda client: self._proxy(client, allowlist))

    def close(self) -> None:
        with self.lock:
            self.closed = True
            sockets, self.sockets = list(self.sockets), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in accept or recv; close alone does not
            sock.close()
        deadline = time.monotonic() + 2.0  # a thread still resolving or connecting upstream is a daemon
        for thread in self.threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        for path in self.paths:
            path.unlink(missing_ok=True)

    def _track(self, sock: socket.socket) -> socket.socket:
        with self.lock:
            if self.closed:
                sock.close()
                raise OSError("sandbox egress closed")
            self.sockets.add(sock)
        return sock

    def _forget(self, *socks: socket.socket) -> None:
        with self.lock:
            self.sockets.difference_update(socks)
        for sock in socks:
            sock.close()

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name="sandbox-egress")
        with self.lock:
            self.threads = [t for t in self.threads if t.is_alive()]
            self.threads.append(thread)
        thread.start()

    def _listen(self, path: Path, handle: Callable[[socket.socket], None]) -> None:
        listener = self._track(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
        listener.bind(str(path))
        self.paths.append(path)
        os.chmod(path, 0o600)
        if self.owner is not None:
            os.chown(path, *self.owner)
        listener.listen(64)
        self._spawn(self._accept, listener, handle)

    def _accept(self, listener: socket.socket, handle: Callable[[socket.socket], None]) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = listener.accept()
                self._spawn(self._serve, self._track(client), handle)

    def _serve(self, client: socket.socket, handle: Callable[[socket.socket], None]) -> None:
        try:
            handle(client)
        except (OSError, ValueError):
            self._forget(client)  # upstream unreachable, or no request we understand: the client sees it close

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
        back.start()
        pump(client, upstream)
        back.join()
        self._forget(client, upstream)

    def _proxy(self, client: socket.socket, allowlist: Allowlist) -> None:
        client.settimeout(HEAD_TIMEOUT)
        head, rest = read_head(client)
        client.settimeout(None)
        request, *headers = head.split(b"\r\n")
        method, target, version = request.decode("latin-1").split(" ")
        if method == "CONNECT":
            host, port = split_host_port(target)
            path = ""
        else:
            url = urlsplit(target)
            if url.scheme != "http" or not url.hostname:
                answer(client, "400 Bad Request")
                return self._forget(client)
            host, port = url.hostname, url.port or 80
            path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        if port is None or not allowlist.allows(host, port):
            self._refuse(client, target if port is None else f"{host}:{port}")
            return None
        try:
            upstream = self._track(connect(host, port))
        except OSError:
            answer(client, "502 Bad Gateway")
            return self._forget(client)
        try:
            if method == "CONNECT":
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                upstream.sendall(rest)
            else:
                upstream.sendall(origin_form(method, path, version, headers) + rest)
        except OSError:
            return self._forget(client, upstream)
        self._relay(client, upstream)
        return None

    def _refuse(self, client: socket.socket, destination: str) -> None:
        with self.lock:
            first = destination not in self.refused
            self.refused.add(destination)
        if first:  # one line per destination, not per retry
            log.warning("sandbox refused a connection to %s", destination)
        answer(client, "403 Forbidden")
        self._forget(client)
