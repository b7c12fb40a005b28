"""What every step shares: its context in, its result out."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from steps.fence import Fence
from steps.git.repo import Git
from steps.job.runner import UNCONFINED, Containment, JobRunner
from supervisor.contract.command import Command
from supervisor.contract.config import Config

if TYPE_CHECKING:
    from steps.undo import TakenBack  # steps.undo imports this module

Status = Literal["ok", "failed", "skipped", "interrupted"]
ProgressReporter = Callable[[str, str, dict[str, Any]], None]


@dataclass(frozen=True)
class StepResult:
    status: Status
    duration_ms: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    error_code: str | None = None
    ends_command: bool = False  # a failure after which the later steps are skipped (StepError.ends_command)


class StepError(Exception):
    """A step failed in a way the response should name (error code + one-line reason)."""

    def __init__(self, error_code: str, message: str, *, ends_command: bool = False, **details: Any):
        super().__init__(message)
        self.error_code = error_code
        self.details = details
        # True when nothing was changed and nothing later is worth doing (a bad attachment, nothing to
        # undo): the later steps are skipped instead of building and deploying what did not change.
        self.ends_command = ends_command


@dataclass
class StepContext:
    """Everything a step may read, and the facts earlier steps left for later ones."""

    config: Config
    command: Command
    checkout: Path
    git: Git
    # Facts shared between steps: set by one, read by a later one.
    agent_summary: str = ""
    agent_skipped_reason: str | None = None
    files_changed: list[str] = field(default_factory=list)
    commit: str | None = None
    build_ok: bool = False
    # Things a person should know that are not failures (a stash kept on conflict, a pending push...).
    warnings: list[str] = field(default_factory=list)
    # The command an undo takes back (steps/undo.py); the commit names it, the response too.
    taken_back: TakenBack | None = None
    # The attachments placed in the checkout for the agent (steps/attachments): the response's `attachments`.
    attachments: list[dict[str, Any]] = field(default_factory=list)
    # What the agent run cost and did (the response's `agent` object), once the CLI has run.
    agent_report: dict[str, Any] | None = None
    # Live progress within a step (step, status, fields): the worker sends it to the supervisor.
    on_progress: ProgressReporter = field(default=lambda _step, _status, _fields: None)
    # The workspace lease to show before writing (LEASE_TABLE set: steps/fence.py); None: one container.
    fence: Fence | None = None
    # What this worker can do to contain the jobs (steps/job/runner.py); unconfined outside a worker.
    containment: Containment = UNCONFINED

    @cached_property
    def jobs(self) -> JobRunner:
        """Runs the agent, npm and the build of this checkout under the containment's layers."""
        config = self.config
        return JobRunner.for_checkout(
            self.containment, self.checkout, config.workspace_path, config.sandbox_allowed_domains, config.job_uid_range
        )

    def check_lease(self, before: str) -> None:
        """Raise steps.fence.LeaseLost unless this container still holds the workspace."""
        if self.fence is not None:
            self.fence.check(before)

    @property
    def build_folder(self) -> Path:
        """BUILD_DIR in this checkout: where the build writes and the deploy reads."""
        return self.checkout / self.config.build_dir


Step = Callable[[StepContext], StepResult]


def ok(started: float, **details: Any) -> StepResult:
    return StepResult("ok", elapsed_ms(started), details)


def skipped(started: float, reason: str, **details: Any) -> StepResult:
    return StepResult("skipped", elapsed_ms(started), {"reason": reason, **details})


def elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def workspace_path(config: Config, command: Command) -> Path:
    """{WORKSPACE_PATH}/{clientId}/{userId}/{repo name}; every part was validated as a safe name."""
    return Path(config.workspace_path, command.client_id, command.user_id, command.repo_name)
