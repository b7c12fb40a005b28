"""Step 6: push the session branch (never forced; credentials only through askpass)."""

from __future__ import annotations

import time

from steps.base import StepContext, StepError, StepResult, ok, skipped
from steps.shell import CommandFailed, CommandTimedOut

PUSH_TIMEOUT_SECONDS = 300


def push_branch(ctx: StepContext, branch: str) -> None:
    ctx.git.run(
        "push", "--quiet", "origin", f"refs/heads/{branch}:refs/heads/{branch}",
        credentials=True, timeout=PUSH_TIMEOUT_SECONDS,
    )  # fmt: skip


def run(ctx: StepContext) -> StepResult:
    started = time.monotonic()
    if not ctx.config.git_push_enabled:
        return skipped(started, "GIT_PUSH_ENABLED is false")
    if ctx.git.head() is None:
        return skipped(started, "the branch has no commits")
    try:
        push_branch(ctx, ctx.command.branch)
    except (CommandFailed, CommandTimedOut) as error:
        raise StepError("PUSH_FAILED", f"push: {error}") from None
    return ok(started, branch=ctx.command.branch)
