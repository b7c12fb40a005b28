"""Progress events to the chat (PROGRESS_EVENTS=true): each step's start and end as it happens, the
agent's tool uses at most one a second per command (the newest held back, sent when its second is up)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from supervisor.contract.config import Config
from supervisor.contract.responses import progress_event
from supervisor.delivery import Delivery
from supervisor.run import Run

STEP_EVENT_KEYS = ("event", "step", "status", "outcome", "durationMs")


class Progress:
    def __init__(self, config: Config, delivery: Delivery, clock: Callable[[], float]):
        self.enabled = config.progress_events
        self.delivery = delivery
        self.clock = clock

    def report(self, run: Run, event: dict[str, Any]) -> None:
        """A worker's step or tool event, for a run still running."""
        if not self.enabled or run.phase != "running":
            return
        fields = {k: v for k, v in event.items() if k not in STEP_EVENT_KEYS}
        body = progress_event(run.command, str(event.get("step")), str(event.get("status")), **fields)
        if event["event"] == "step":
            self.delivery.send(body)
        else:  # a tool use: coalesced (Run.due_progress)
            run.queue_progress(body)
            self.flush(run)

    def flush(self, run: Run) -> None:
        """Send the run's held-back tool event once its second is up (called on every tick too)."""
        due = run.due_progress(self.clock())
        if due is not None:
            self.delivery.send(due)
