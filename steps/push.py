"""Step 6: push the session branch (retries, rebases and conflict branches: steps/git/remote.py)."""

from __future__ import annotations

import time

from steps.base import StepContext, StepError, StepResult, ok, skipped
from steps.git.ledger import Ledger
from steps.git.remote import Pusher, PushOutcome
from supervisor.contract.codes import ErrorCode


def push_branch(ctx: StepContext, branch: str) -> PushOutcome:
    def fenced() -> None:  # before every attempt: a retry may come long after the first check
        ctx.check_lease("pushing")

    return Pusher(ctx.git, ctx.config, Ledger(ctx.checkout), before_push=fenced).push(branch)


def run(ctx: StepContext) -> StepResult:
    started = time.monotonic()
    if not ctx.config.git_push_enabled:
        return skipped(started, "GIT_PUSH_ENABLED is false")
    if ctx.git.head() is None:
        return skipped(started, "the branch has no commits")
    outcome = push_branch(ctx, ctx.command.branch)
    if ctx.commit:  # a rebase gives the command's commit a new id
        found = ctx.git.commits_with_trailer("Command-Id", ctx.command.command_id, skip_subject_prefix="WIP:")
        ctx.commit = found[0] if found else ctx.commit
    if outcome.conflict_branch:
        conflict = outcome.conflict_branch
        ctx.warnings.append(f"the branch moved on the remote and the rebase conflicted: this work is on {conflict}")
        raise StepError(
            ErrorCode.GIT_CONFLICT,
            f"push rejected and the rebase conflicted; the work is on {conflict}",
            conflictBranch=conflict,
        )
    return ok(started, branch=ctx.command.branch)
