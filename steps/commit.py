"""Step 3: commit what changed, only when something did."""

from __future__ import annotations

import time

from steps.base import StepContext, StepError, StepResult, ok, skipped
from steps.git.commit_message import commit_message
from steps.processes.shell import CommandFailed
from supervisor.contract.codes import ErrorCode


def commit_all(ctx: StepContext, *, wip: bool = False) -> str | None:
    """Stage everything (tracked and untracked, ignores respected) and commit; None when nothing changed."""
    ctx.check_lease("committing")
    undoes = ctx.taken_back.command_id if ctx.taken_back else None
    files = ctx.git.commit_everything(lambda staged: commit_message(ctx.command, staged, wip=wip, undoes=undoes))
    if not files:
        return None
    ctx.files_changed = files
    ctx.commit = ctx.git.head()
    return ctx.commit


def run(ctx: StepContext) -> StepResult:
    started = time.monotonic()
    try:
        sha = commit_all(ctx)
    except CommandFailed as error:
        raise StepError(ErrorCode.INTERNAL, f"commit: {error}") from None
    if sha is None:
        return skipped(started, "nothing changed")
    return ok(started, commit=sha, files=len(ctx.files_changed))
