"""Stopping: the first SIGTERM/SIGINT is a warm stop, the second a cold one; deadlines checked each tick.

Warm: receive nothing more, hand back what has not started, let running work finish until
SHUTDOWN_GRACE_SECONDS - INTERRUPT_GRACE_SECONDS - RESERVE, then interrupt it (its work is committed as
WIP and pushed, its message handed back). Cold: interrupt everything at once with no grace.
With IDLE_EXIT_SECONDS, a supervisor that has received nothing and run nothing that long stops warm
by itself (a service scaled on queue depth then goes to zero).
"""

from __future__ import annotations

from dataclasses import dataclass

from supervisor.contract.config import Config

# Time kept back from SHUTDOWN_GRACE_SECONDS for committing interrupted work and leaving.
RESERVE_SECONDS = 3.0


@dataclass
class Shutdown:
    grace: float
    interrupt_grace: float
    idle_exit: float | None = None
    started: float | None = None
    forced: bool = False
    last_activity: float = 0.0

    @classmethod
    def of(cls, config: Config) -> Shutdown:
        return cls(config.shutdown_grace_seconds, config.interrupt_grace_seconds, config.idle_exit_seconds)

    @property
    def stopping(self) -> bool:
        return self.started is not None

    def begin(self, now: float) -> bool:
        """Start a warm stop; False when one was already under way (then it is `force`'s turn)."""
        if self.started is not None:
            return False
        self.started = now
        return True

    def force(self) -> bool:
        """Turn the stop cold; False when it already was."""
        if self.forced:
            return False
        self.forced = True
        return True

    def interrupt_due(self, now: float) -> bool:
        """Running work has had its time: interrupt it now, leaving the grace to end and commit it."""
        if self.started is None:
            return False
        return now - self.started >= max(0.0, self.grace - self.interrupt_grace - RESERVE_SECONDS)

    def idle_due(self, now: float, *, busy: bool) -> bool:
        """Time for an idle stop: IDLE_EXIT_SECONDS with nothing received and nothing running."""
        if busy:
            self.last_activity = now
            return False
        return self.idle_exit is not None and not self.stopping and now - self.last_activity >= self.idle_exit

    def time_left(self, now: float) -> float:
        return self.grace - (now - self.started) if self.started is not None else self.grace
