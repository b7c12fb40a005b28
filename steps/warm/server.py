"""One warm build server: `node server.mjs` in a checkout, run as the build identity in the job's sandbox.

It runs the site's code (its config, its integrations), so it is the job's code: between builds every
process of it is stopped (SIGSTOP), so it can do nothing while the agent or anyone else works; it is
ended (SIGKILL) whenever a build fails, times out, is abandoned or leaves it too big.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psutil

from steps.job.runner import JobRunner
from steps.processes import shell
from supervisor.common import proc_scan, proctree

log = logging.getLogger("steps.warm")

SERVER_SCRIPT = Path(__file__).resolve().with_name("server.mjs")
# A larger young generation: a build allocates much that dies young, and a server lives for many builds.
# Rebuilds of bench_build's 1,000-page site took ~7 % less with it (medians of 6 runs, twice); no flag
# for a full GC between builds: that made the next build slower.
NODE_FLAGS = ("--max-semi-space-size=64",)
READY_SECONDS = 60.0
ANSWER_LIMIT = 64 * 1024
LOG_TAIL_BYTES = 4096
# How long a pause waits for every process to show as stopped (one in uninterruptible sleep stops later).
PAUSE_WAIT_SECONDS = 1.0


Launch = Callable[[Callable[[], Any]], Any]


def _now(start: Callable[[], Any]) -> Any:
    return start()


class ServerFailed(Exception):
    """The server could not start, or died: the caller builds cold."""


@dataclass(frozen=True)
class Outcome:
    ok: bool
    error: str = ""
    timed_out: bool = False
    abandoned: bool = False  # the worker went away mid-build (interrupted)


class WarmServer:
    def __init__(self, runner: JobRunner, fingerprint: str, log_path: Path, launch: Launch = _now):
        self.checkout = runner.checkout
        self.fingerprint = fingerprint
        self.uid = runner.identity.uid if runner.identity is not None else None
        self.last_used = time.monotonic()
        self.builds = 0
        self._log_path = log_path
        self._log: IO[bytes] = open(log_path, "ab", buffering=0)  # noqa: SIM115 (kept for the server's life)
        self._buffer = b""
        self._token = secrets.token_hex(16).encode()  # tells its answers from other lines on its stdout
        self._stack = contextlib.ExitStack()
        env = shell.scrubbed_env(NODE_ENV="production", ASTRO_TELEMETRY_DISABLED="1")
        node = shutil.which("node") or "node"
        try:
            self.process = self._stack.enter_context(
                runner.spawned(
                    [node, *NODE_FLAGS, str(SERVER_SCRIPT)],
                    env=env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=self._log,
                    launch=launch,
                )
            )
            assert self.process.stdin is not None
            self.process.stdin.write(self._token + b"\n")
            self.process.stdin.flush()
            answer = self._answer(time.monotonic() + READY_SECONDS)
            if not isinstance(answer, dict) or answer.get("ready") is not True:
                raise ServerFailed(f"the warm server did not start: {self._describe(answer)}")
        except BaseException:
            self.close()
            raise
        self.pause()

    # Building --------------------------------------------------------------------------------------

    def build(self, timeout: float, client: socket.socket) -> Outcome:
        """One build; `client` is the worker's connection: when it closes, the build is abandoned."""
        self.last_used = time.monotonic()
        self.builds += 1
        os.ftruncate(self._log.fileno(), 0)  # the server appends: its next line starts the file again
        self.resume()
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(b"build\n")
            self.process.stdin.flush()
        except OSError:
            return Outcome(False, f"the warm server is gone: {self.tail()}")
        try:
            answer = self._answer(time.monotonic() + timeout, client)
        except TimeoutError:
            return Outcome(False, f"did not finish within {timeout:g} s", timed_out=True)
        except ConnectionAbortedError:
            return Outcome(False, "abandoned", abandoned=True)
        except ServerFailed as error:
            return Outcome(False, str(error))
        finally:
            self.last_used = time.monotonic()
        if isinstance(answer, dict) and answer.get("ok") is True:
            self.end_detached()
            self.pause()
            return Outcome(True)
        return Outcome(False, self._describe(answer))

    def _answer(self, deadline: float, client: socket.socket | None = None) -> Any:
        """The server's next answer line. TimeoutError at the deadline, ConnectionAbortedError when the
        client hung up, ServerFailed when the server ended."""
        assert self.process.stdout is not None
        stdout = self.process.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ, "server")
            if client is not None:
                selector.register(client, selectors.EVENT_READ, "client")
            while (answer := self._take_answer()) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                for key, _ in selector.select(left):
                    if key.data == "client":
                        if not client.recv(1, socket.MSG_PEEK):  # type: ignore[union-attr]
                            raise ConnectionAbortedError
                        client.recv(4096)  # type: ignore[union-attr]  # nothing more is expected: dropped
                        continue
                    chunk = os.read(stdout, 65536)
                    if not chunk:
                        raise ServerFailed(f"the warm server ended: {self.tail()}")
                    self._buffer += chunk
                    if len(self._buffer) > ANSWER_LIMIT:
                        raise ServerFailed("the warm server's answer is too long")
        return answer

    def _take_answer(self) -> Any | None:
        """The first answer in what the server printed; other lines go to its log."""
        while b"\n" in self._buffer:
            line, _, self._buffer = self._buffer.partition(b"\n")
            if not line.startswith(self._token + b" "):
                self._log.write(line + b"\n")
                continue
            try:
                return json.loads(line[len(self._token) + 1 :])
            except ValueError:
                raise ServerFailed("the warm server's answer is not JSON") from None
        return None

    def _describe(self, answer: Any) -> str:
        error = answer.get("error") if isinstance(answer, dict) else None
        return str(error)[:2000] if error else self.tail()

    def tail(self) -> str:
        """The end of what the last build printed (its error, usually)."""
        try:
            with open(self._log_path, "rb") as log_file:
                log_file.seek(max(0, os.path.getsize(self._log_path) - LOG_TAIL_BYTES))
                return log_file.read().decode(errors="replace").strip()[-LOG_TAIL_BYTES:]
        except OSError:
            return ""

    # Its processes ---------------------------------------------------------------------------------

    def processes(self) -> list[psutil.Process]:
        """Every process of the server: its tree, and with an identity every process of that uid
        (one that escaped the tree still is the server's: nothing else runs as it)."""
        pids = set(proctree.snapshot(self.process.pid))
        if self.uid is not None:
            pids.update(proc_scan.pids_of_uid(self.uid))
        found = []
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                found.append(psutil.Process(pid))
        return found

    def _signal_all(self, sig: signal.Signals) -> None:
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                proc.send_signal(sig)

    def end_detached(self) -> list[int]:
        """End what the build detached into a session of its own (a daemon meant to outlive it): the
        server keeps only what stays in its session (esbuild's service), stopped with it."""
        try:
            session = os.getsid(self.process.pid)
        except OSError:
            return []
        detached: dict[int, float] = {}
        for proc in self.processes():
            with contextlib.suppress(OSError, psutil.Error):
                if os.getsid(proc.pid) != session:
                    detached[proc.pid] = proc.create_time()
        if detached:
            log.warning("ending processes the build detached", extra={"pids": sorted(detached)})
            proctree.end_tree(detached, grace=0, first_signal=signal.SIGKILL)
        return sorted(detached)

    def pause(self) -> None:
        """SIGSTOP every process and wait until each is stopped (at most PAUSE_WAIT_SECONDS): a signal
        takes effect when its process next runs, and the worker's answer is meant to find it stopped."""
        self._signal_all(signal.SIGSTOP)
        deadline = time.monotonic() + PAUSE_WAIT_SECONDS
        while any(_still_running(proc) for proc in self.processes()) and time.monotonic() < deadline:
            time.sleep(0.002)

    def resume(self) -> None:
        self._signal_all(signal.SIGCONT)

    def rss_mib(self) -> float:
        total = 0
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total / 2**20

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        """Kill every process of the server (stopped ones too) and end its sandbox's egress."""
        leftovers = {}
        if hasattr(self, "process"):
            for proc in self.processes():
                with contextlib.suppress(psutil.Error):
                    leftovers[proc.pid] = proc.create_time()
        self._stack.close()
        for pipe in (getattr(self, "process", None) and (self.process.stdin, self.process.stdout)) or ():
            if pipe is not None:
                pipe.close()
        if leftovers:
            proctree.end_tree(leftovers, grace=0, first_signal=signal.SIGKILL)
        self._log.close()


def _still_running(proc: psutil.Process) -> bool:
    """Not yet stopped (a zombie or a process gone counts as stopped: it runs no more)."""
    try:
        return proc.status() not in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP, psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False
