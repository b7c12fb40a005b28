"""What the supervisor knows about one command in its hands: message, worker, steps seen, phase."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from supervisor.contract.codes import STEP_NAMES
from supervisor.contract.command import Command
from supervisor.queues import Received
from supervisor.worker_process import WorkerProcess

# A busy agent cannot flood the chat: at most one progress event within a step per this many seconds.
PROGRESS_INTERVAL_SECONDS = 1.0
# waiting: received, no worker yet; running: the pipeline worker; interrupting: its tree is being
# ended; finishing: the worker committing the interrupted work runs.
Phase = Literal["waiting", "running", "interrupting", "finishing"]
TRANSITIONS: dict[str, frozenset[str]] = {
    "waiting": frozenset({"running"}),
    "running": frozenset({"interrupting"}),
    "interrupting": frozenset({"finishing"}),
    "finishing": frozenset({"interrupting"}),  # a cold stop ends the finishing worker too
}


class PhaseError(RuntimeError):
    """A run was asked to move to a phase it cannot reach from where it is: a bug in the loop."""


@dataclass
class Run:
    command: Command
    message: Received
    worker: WorkerProcess | None = None
    phase: Phase = "waiting"
    started: float = field(default_factory=time.monotonic)
    step: str | None = None
    step_started: float = 0.0
    outcomes: dict[str, tuple[str, int]] = field(default_factory=dict)  # step → (status, durationMs)
    tree: dict[int, float] = field(default_factory=dict)  # last snapshot: pid → creation time
    interrupt_reason: str | None = None
    interrupt_started: float | None = None
    return_message: bool = False  # interrupted by shutdown: hand the message back instead of deleting it
    finishing_since: float | None = None  # when the worker committing the interrupted work started
    finish_overdue: bool = False  # that worker ran out of time and is being ended
    progress_sent_at: float = float("-inf")
    progress_pending: dict[str, Any] | None = None  # the newest within-step event not yet sent
    # With LEASE_TABLE (supervisor/sharing/claims.py): the fence the worker shows before it writes (the
    # workspace lease we hold: table, workspace, owner, fence number), warnings for its response, and
    # whether the lease was lost (then the run ends without an answer).
    fence: dict[str, Any] | None = None
    warnings: tuple[str, ...] = ()
    lease_lost: bool = False

    @property
    def workspace(self) -> tuple[str, str, str]:
        return self.command.workspace_key

    @property
    def workspace_name(self) -> str:
        """`client/user/repo`: the workspace's key in the lease table."""
        return "/".join(self.command.workspace_key)

    def move_to(self, phase: Phase) -> None:
        """The one way a run changes phase; only the transitions in TRANSITIONS are allowed."""
        if phase not in TRANSITIONS[self.phase]:
            raise PhaseError(f"{self.command.command_id}: {self.phase} → {phase} is not a transition")
        self.phase = phase

    def on_step_event(self, event: dict[str, Any]) -> None:
        name = event.get("step")
        if name not in STEP_NAMES:
            return
        if event.get("status") == "started":
            self.step, self.step_started = name, time.monotonic()
        elif "outcome" in event:
            self.outcomes[name] = (str(event["outcome"]), int(event.get("durationMs", 0)))
            self.progress_pending = None  # the step is over: what it was doing is old news

    def queue_progress(self, body: dict[str, Any]) -> None:
        """Keep the newest within-step event; `due_progress` decides when it may go."""
        self.progress_pending = body

    def due_progress(self, now: float) -> dict[str, Any] | None:
        """The pending event when a second has passed since the last one sent (coalescing the rest)."""
        if self.progress_pending is None or now - self.progress_sent_at < PROGRESS_INTERVAL_SECONDS:
            return None
        body, self.progress_pending, self.progress_sent_at = self.progress_pending, None, now
        return body

    def steps_when_interrupted(self) -> list[dict[str, Any]]:
        """The six steps as the response lists them: finished ones as they ended, the one running
        `interrupted`, the rest `skipped`."""
        steps = []
        for name in STEP_NAMES:
            if name in self.outcomes:
                status, duration = self.outcomes[name]
            elif name == self.step:
                status, duration = "interrupted", int((time.monotonic() - self.step_started) * 1000)
            else:
                status, duration = "skipped", 0
            steps.append({"name": name, "status": status, "durationMs": duration})
        return steps

    def elapsed(self) -> float:
        return time.monotonic() - self.started
