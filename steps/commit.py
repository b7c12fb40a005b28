"""Step 3: commit what changed, only when something did."""

from __future__ import annotations

import logging
import time

from steps.base import StepContext, StepError, StepResult, ok, skipped
from steps.claude.memory import AgentState
from steps.claude.undo_note import UndoneChange
from steps.git.commit_message import commit_message
from steps.processes.shell import CommandFailed
from supervisor.contract.codes import ErrorCode

log = logging.getLogger("steps.commit")


def commit_all(ctx: StepContext, *, wip: bool = False) -> str | None:
    """Stage everything (tracked and untracked, ignores respected) and commit; None when nothing changed."""
    ctx.check_lease("committing")
    undoes = ctx.taken_back.command_id if ctx.taken_back else None
    files = ctx.git.commit_everything(lambda staged: commit_message(ctx.command, staged, wip=wip, undoes=undoes))
    if not files:
        return None
    ctx.files_changed = files
    ctx.commit = ctx.git.head()
    if ctx.taken_back:
        note_undone(ctx, files)
    return ctx.commit


def note_undone(ctx: StepContext, files: list[str]) -> None:
    """The thread's agent is told at its next run that this undo took back one of its changes."""
    assert ctx.taken_back is not None
    change = UndoneChange(ctx.taken_back.command_id, ctx.taken_back.subject, tuple(files))
    try:
        AgentState.for_command(ctx.config.workspace_path, ctx.command).note_undone(ctx.command.branch, change)
    except OSError as error:  # the undo stands; only the agent's note is missing
        log.warning("could not note the undo for the thread's agent: %s", error)
        ctx.warnings.append(f"the thread's agent will not be told of this undo ({error.strerror or error})")


def run(ctx: StepContext) -> StepResult:
    started = time.monotonic()
    try:
        sha = commit_all(ctx)
    except CommandFailed as error:
        raise StepError(ErrorCode.INTERNAL, f"commit: {error}") from None
    if sha is None:
        return skipped(started, "nothing changed")
    return ok(started, commit=sha, files=len(ctx.files_changed))
