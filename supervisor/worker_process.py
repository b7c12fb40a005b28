"""One worker process per command: started in its own session, read through an event pipe."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from supervisor.contract.command import Command
from supervisor.contract.pipe import EVENT_FD_VARIABLE, PARENT_PID_VARIABLE, parse_event

log = logging.getLogger("supervisor.worker")

EventHandler = Callable[[dict[str, Any]], None]


class WorkerProcess:
    """`python -m steps.worker`, started idle (imports done, waiting for its job on stdin), then given
    one command; collects its step events and final result."""

    def __init__(self, env: dict[str, str] | None = None):
        self.command: Command | None = None
        self.mode = "idle"
        self.result: dict[str, Any] | None = None
        self._on_event: EventHandler | None = None
        read_end, write_end = os.pipe()
        try:
            child_env = dict(os.environ if env is None else env)
            child_env[EVENT_FD_VARIABLE] = str(write_end)
            child_env[PARENT_PID_VARIABLE] = str(os.getpid())
            self.process = subprocess.Popen(
                [sys.executable, "-m", "steps.worker"],
                stdin=subprocess.PIPE,
                env=child_env,
                pass_fds=(write_end,),
                start_new_session=True,  # its own session and group: the interrupt can reach all of it
                close_fds=True,
            )
        finally:
            os.close(write_end)
        self._events = os.fdopen(read_end, "rb")
        self._reader = threading.Thread(target=self._read_events, name=f"events-{self.pid}", daemon=True)
        self._reader.start()

    def assign(
        self,
        command: Command,
        on_event: EventHandler | None = None,
        *,
        mode: str = "run",
        extra: dict[str, Any] | None = None,
    ) -> WorkerProcess:
        """Hand the worker its one job; it starts at once (its interpreter is already up)."""
        self.command, self.mode, self._on_event = command, mode, on_event
        assert self.process.stdin is not None
        try:
            job = {"mode": mode, "command": command.to_dict(), **(extra or {})}
            self.process.stdin.write(json.dumps(job).encode())
            self.process.stdin.close()
        except BrokenPipeError:
            log.warning("worker exited before reading its job")
        return self

    def dismiss(self) -> None:
        """An idle worker that will get no job: closing its stdin lets it exit quietly."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        self.wait(timeout=10)

    def is_idle_and_alive(self) -> bool:
        return self.mode == "idle" and self.process.poll() is None

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read_events(self) -> None:
        with self._events:
            for line in self._events:
                event = parse_event(line)
                if event is None:
                    continue
                if event["event"] == "result":
                    self.result = event.get("response")
                if self._on_event is not None:
                    try:
                        self._on_event(event)
                    except Exception:
                        log.exception("event handler failed")

    def wait(self, timeout: float | None = None) -> int:
        """Wait for exit and for every event to be read; returns the exit code (negative: signal)."""
        code = self.process.wait(timeout)
        self._reader.join(timeout=5)
        return code


# Workers kept started ahead of need. Two, because an interrupt takes two in a row: the worker that
# commits the interrupted work (at once), then the new command's (when that one exits, ~0.15 s later).
# With one, the second was the spare started at the first take, still importing (0.25 s and more
# under load): the new command waited for the rest of its start-up.
SPARES = 2


class SpareWorkers:
    """Keeps SPARES workers started ahead of need, so a command does not wait for an interpreter to start
    and import everything (0.2 to 0.3 s here, boto3 most of it; longer on a loaded machine). An idle one
    costs about 35 MB."""

    def __init__(self, count: int = SPARES) -> None:
        self.count = count
        self._spares: deque[WorkerProcess] = deque()

    def take(self) -> WorkerProcess:
        """A worker for a job: the oldest healthy spare (the likeliest to be done starting), else a new one.
        Raises OSError only when no worker could be had. `replenish` after handing the job over."""
        while self._spares:
            spare = self._spares.popleft()
            if spare.is_idle_and_alive():
                return spare
        return WorkerProcess()

    def replenish(self) -> None:
        """Start spares until there are `count`; fork+exec returns at once, the imports happen in the child.
        A start that fails (EAGAIN, EMFILE) is only logged: the job has its worker, the spare comes later."""
        while len(self._spares) < self.count:
            try:
                self._spares.append(WorkerProcess())
            except OSError as error:
                log.warning("could not start a spare worker: %s", error)
                return

    def pids(self) -> set[int]:
        return {spare.pid for spare in self._spares}

    def close(self) -> None:
        spares, self._spares = list(self._spares), deque()
        for spare in spares:
            spare.dismiss()
