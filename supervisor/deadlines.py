"""Which runs the loop interrupts on a tick, and how: every phase of a worker is bounded. Pure: no I/O,
no processes; the loop carries out what `due_interrupts` returns.

- A finishing worker (committing an interrupted command's work) past its limit.
- A warm stop's interrupt time: the running commands (their work is committed as WIP, their message
  handed back).
- A warm stop's last seconds: whatever still finishes is ended too, at once, its message handed back, so
  the supervisor leaves within SHUTDOWN_GRACE_SECONDS (the orchestrator kills it after that, and what it
  had not released or sent would be lost).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from supervisor.run import Run
from supervisor.shutdown import Shutdown

# Kept back from the grace for the ladder (no SIGINT grace then: SIGTERM, 2 s, SIGKILL) and for leaving.
LAST_SECONDS = 3.0


@dataclass(frozen=True)
class Due:
    run: Run
    reason: str
    return_message: bool
    grace: float | None = None  # None: INTERRUPT_GRACE_SECONDS
    overdue: bool = False  # a finishing worker cut short: its command is answered with what it committed


def due_interrupts(now: float, runs: Iterable[Run], shutdown: Shutdown, finish_limit: float) -> list[Due]:
    due: list[Due] = []
    interrupt_running = shutdown.interrupt_due(now)
    last_seconds = shutdown.stopping and shutdown.time_left(now) <= LAST_SECONDS
    for run in runs:
        if run.phase == "running" and interrupt_running:
            due.append(Due(run, "the supervisor is shutting down", return_message=True))
        elif run.phase == "finishing" and last_seconds:
            reason = f"{run.interrupt_reason}; the supervisor's stop grace ran out while committing its work"
            due.append(Due(run, reason, return_message=True, grace=0.0, overdue=True))
        elif run.phase == "finishing" and now - (run.finishing_since or now) > finish_limit:
            reason = f"{run.interrupt_reason}; committing its work took longer than {finish_limit:g} s"
            due.append(Due(run, reason, return_message=run.return_message, overdue=True))
    return due
