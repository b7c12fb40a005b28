"""`python -m steps.warm.manager SOCKET`: the warm build servers of one supervisor, one per checkout.

The supervisor starts it (root, ours) when BUILD_MODE=warm; workers ask it for builds over SOCKET,
in a folder only root may enter. One request per connection: a JSON line naming the checkout, one
JSON line back. A server is started on a checkout's first build and ended when what it depends on
changed (steps/warm/site.py), after a failed, timed-out or abandoned build, when it grew beyond
BUILD_WARM_MEMORY_MIB, after BUILD_WARM_IDLE_SECONDS unused, or to make room (at most MAX_WORKERS).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from steps.job import access
from steps.job.identity import build_identity_for, identity_for
from steps.job.runner import Containment, JobRunner, find_containment
from steps.warm.client import read_object
from steps.warm.server import ServerFailed, WarmServer
from steps.warm.site import fingerprint
from supervisor.common.logs import setup_logging
from supervisor.common.proctree import die_with_parent, hide_environment
from supervisor.contract.config import Config, load_config_or_exit

log = logging.getLogger("steps.warm")

REQUEST_LIMIT = 64 * 1024
REQUEST_SECONDS = 10.0
PRIVATE_FOLDERS = frozenset({".supervisor", ".jobs"})


class BadRequest(Exception):
    pass


class Manager:
    def __init__(self, config: Config, containment: Containment, folder: Path):
        self.config = config
        self.containment = containment
        self.folder = folder  # the servers' logs: ours, out of the jobs' reach
        self.servers: dict[Path, WarmServer] = {}
        self._busy: dict[Path, threading.Lock] = {}
        self._lock = threading.Lock()
        # Servers are started on this one thread, which lives as long as the manager: a sandbox dies with
        # the thread that started it, and a request's thread ends with its request.
        self._launcher = ThreadPoolExecutor(1, thread_name_prefix="warm-launch")

    # One request ---------------------------------------------------------------------------------

    def answer(self, conn: socket.socket) -> None:
        context: dict[str, Any] = {}
        try:
            request = _read_request(conn)
            context = {k: request[k] for k in ("commandId", "sessionId") if isinstance(request.get(k), str)}
            checkout = self.checkout_of(request)
            timeout = request.get("timeoutSeconds")
            if not isinstance(timeout, (int, float)) or not 0 < timeout <= 86_400:
                raise BadRequest("timeoutSeconds must be a number of seconds")
            with self._busy_lock(checkout):
                reply = self.build(checkout, float(timeout), conn, context)
        except BadRequest as error:
            reply = {"ok": False, "error": f"bad request: {error}"}
        if reply.get("abandoned"):
            return
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps(reply).encode() + b"\n")

    def checkout_of(self, request: dict[str, Any]) -> Path:
        """The checkout named, if it is a folder of the workspace and no link is on the way to it."""
        raw = request.get("checkout")
        if not isinstance(raw, str) or not os.path.isabs(raw):
            raise BadRequest("checkout must be an absolute path")
        path = Path(os.path.normpath(raw))
        workspace = Path(self.config.workspace_path)
        if not path.is_relative_to(workspace) or path == workspace:
            raise BadRequest("the checkout is not in the workspace")
        relative = path.relative_to(workspace)
        if relative.parts[0] in PRIVATE_FOLDERS:
            raise BadRequest("the checkout is not in the workspace")
        # No link below the workspace (one above it, the operator's, is theirs to make).
        if os.path.realpath(path) != os.path.join(os.path.realpath(workspace), relative) or not path.is_dir():
            raise BadRequest("the checkout is not a folder (or a link is on the way to it)")
        return path

    def build(self, checkout: Path, timeout: float, conn: socket.socket, context: dict[str, Any]) -> dict[str, Any]:
        current = fingerprint(checkout, self.config.build_dir)
        server = self.servers.get(checkout)
        if server is not None and (server.fingerprint != current or not server.alive()):
            self.end(checkout, "its scripts, config or dependencies changed" if server.alive() else "it died", context)
            server = None
        started = server is None
        if server is None:
            self._make_room(context)
            try:
                server = self._start(checkout, current, context)
            except (ServerFailed, OSError, RuntimeError) as error:
                log.warning("warm server did not start: %s", error, extra={**context, "step": "build"})
                return {"ok": False, "error": str(error)[:2000]}
        outcome = server.build(timeout, conn)
        if not outcome.ok:
            how = "timed out" if outcome.timed_out else "was abandoned" if outcome.abandoned else "failed"
            self.end(checkout, f"its build {how}", context)
            return {"ok": False, "timedOut": outcome.timed_out, "abandoned": outcome.abandoned, "error": outcome.error}
        server.fingerprint = fingerprint(checkout, self.config.build_dir)  # what the build itself wrote
        rss = server.rss_mib()
        if rss > self.config.warm_memory_mib:
            limit = self.config.warm_memory_mib
            self.end(checkout, f"it holds {rss:.0f} MiB (BUILD_WARM_MEMORY_MIB {limit})", context)
        return {"ok": True, "serverStarted": started, "builds": server.builds, "rssMiB": round(rss)}

    # Servers -----------------------------------------------------------------------------------------

    def _start(self, checkout: Path, current: str, context: dict[str, Any]) -> WarmServer:
        identity = None
        if self.containment.identity:
            job = identity_for(checkout, self.config.workspace_path, self.config.job_uid_range)
            identity = build_identity_for(job, self.config.workspace_path, self.config.job_uid_range)
            access.prepare_home(identity)
        runner = JobRunner(
            self.containment, checkout, self.config.workspace_path, self.config.sandbox_allowed_domains, identity
        )
        name = hashlib.sha256(str(checkout).encode()).hexdigest()[:16]
        began = time.monotonic()
        server = WarmServer(runner, current, self.folder / f"{name}.log", self._launch)
        with self._lock:
            self.servers[checkout] = server
        seconds = round(time.monotonic() - began, 3)
        log.info("warm server started", extra={**context, "step": "build", "seconds": seconds, "uid": server.uid})
        return server

    def _launch(self, start: Callable[[], Any]) -> Any:
        return self._launcher.submit(start).result()

    def end(self, checkout: Path, reason: str, context: dict[str, Any] | None = None) -> None:
        with self._lock:
            server = self.servers.pop(checkout, None)
        if server is not None:
            extra = {**(context or {}), "step": "build", "builds": server.builds}
            log.info("warm server ended: %s", reason, extra=extra)
            server.close()

    def _busy_lock(self, checkout: Path) -> threading.Lock:
        with self._lock:
            return self._busy.setdefault(checkout, threading.Lock())

    def _make_room(self, context: dict[str, Any]) -> None:
        """At most MAX_WORKERS servers: the least recently used one that is not building goes."""
        while len(self.servers) >= self.config.max_workers:
            idle = [(s.last_used, c) for c, s in list(self.servers.items()) if not self._busy_lock(c).locked()]
            if not idle:
                return
            self.end(min(idle)[1], "room was needed for another workspace's", context)

    def end_idle(self, now: float) -> None:
        for checkout, server in list(self.servers.items()):
            busy = self._busy_lock(checkout)
            if now - server.last_used > self.config.warm_idle_seconds and busy.acquire(blocking=False):
                try:
                    if self.servers.get(checkout) is server and now - server.last_used > self.config.warm_idle_seconds:
                        self.end(checkout, f"unused for {self.config.warm_idle_seconds:g} s")
                finally:
                    busy.release()

    def close(self) -> None:
        for checkout in list(self.servers):
            self.end(checkout, "the supervisor is stopping")
        self._launcher.shutdown()

    # Serving ---------------------------------------------------------------------------------------------

    def serve(self, listener: socket.socket, stop: threading.Event) -> None:
        listener.settimeout(1.0)
        next_check = time.monotonic()
        while not stop.is_set():
            if time.monotonic() >= next_check:
                self.end_idle(time.monotonic())
                next_check = time.monotonic() + min(30.0, self.config.warm_idle_seconds / 3)
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if stop.is_set():
                    break
                raise
            threading.Thread(target=self._answer_then_close, args=(conn,), daemon=True).start()

    def _answer_then_close(self, conn: socket.socket) -> None:
        with conn:
            try:
                self.answer(conn)
            except Exception:
                log.exception("warm build request failed")


def _read_request(conn: socket.socket) -> dict[str, Any]:
    conn.settimeout(REQUEST_SECONDS)
    try:
        request = read_object(conn, REQUEST_LIMIT)
    except OSError as error:  # ConnectionError, a timeout
        raise BadRequest(str(error) or "no request in time") from None
    conn.settimeout(None)
    return request


def listen(path: Path) -> socket.socket:
    """The manager's socket, in a folder only we may enter."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(16)
    return listener


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m steps.warm.manager SOCKET", file=sys.stderr)
        return 2
    die_with_parent(signal.SIGTERM, int(os.environ.get("WEBORDINARY_WARM_PARENT", "0")))
    config = load_config_or_exit(require_input_queue=False)
    setup_logging(config.log_format, "warm-builds")
    hide_environment()
    socket_path = Path(argv[1])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C in a terminal is the supervisor's to handle
    listener = listen(socket_path)  # first: a worker's request waits in its backlog while we probe
    manager = Manager(config, find_containment(config.sandbox), socket_path.parent)
    try:
        manager.serve(listener, stop)
    finally:
        listener.close()
        manager.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
