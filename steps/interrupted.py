"""Finishing a command whose process tree the supervisor has ended: its edits are committed and pushed.

Runs in a fresh worker once nothing of the old tree is left, so git is not racing a dying agent.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from steps.agent import already_done
from steps.base import StepContext, StepError, elapsed_ms
from steps.commit import commit_all
from steps.git.ledger import Ledger
from steps.git.repair import repair
from steps.processes.shell import CommandFailed, CommandTimedOut
from steps.push import push_branch
from supervisor.contract.codes import ErrorCode
from supervisor.contract.responses import final_response

log = logging.getLogger("steps.interrupted")


def _wip_of(ctx: StepContext) -> str | None:
    """This command's newest commit, WIP included (an earlier finisher may have made it)."""
    found = ctx.git.commits_with_trailer("Command-Id", ctx.command.command_id)
    return found[0] if found else None


def finish_interrupted(ctx: StepContext, steps: list[dict[str, Any]], reason: str) -> dict[str, Any]:
    started = time.monotonic()
    git, branch = ctx.git, ctx.command.branch
    wip: str | None = None
    pushed = False
    error = reason
    # No checkout folder: the interrupt came while the first clone ran (the next workspace step writes it).
    present = git.is_repo() and ctx.checkout.is_dir()
    if present:
        repair(ctx.checkout, git)  # the tree that was interrupted may have been mid-git-command
        on_branch = git.current_branch() == branch
        if on_branch:
            wip = commit_all(ctx, wip=True)
            if wip:
                log.info("interrupted edits committed as WIP", extra={"commit": wip, "files": len(ctx.files_changed)})
            Ledger(ctx.checkout).end_command()
        elif git.is_dirty():
            log.warning("interrupted before its branch was checked out; changes stay on %s", git.current_branch())
        if ctx.config.git_push_enabled and git.has_ref(f"refs/heads/{branch}"):
            try:
                pushed = push_branch(ctx, branch).pushed
            except (StepError, CommandFailed, CommandTimedOut) as push_error:  # the WIP commit stays; said so
                error = f"{reason}; the edits are committed but the push failed: {push_error}"
    commit = (wip or already_done(ctx) or _wip_of(ctx)) if present else None
    if commit and not ctx.files_changed:
        ctx.files_changed = git.files_in(commit)
    return final_response(
        ctx.command,
        preview_url=ctx.config.preview_url_for(ctx.command),
        summary=f"Interrupted: {reason}.",
        files_changed=ctx.files_changed,
        commit=commit,
        steps=steps,
        duration_ms=elapsed_ms(started),
        build_success=any(s["name"] == "build" and s["status"] == "ok" for s in steps),
        deploy_success=any(s["name"] == "deploy" and s["status"] == "ok" for s in steps),
        push_success=pushed,
        interrupted=True,
        error=error,
        error_code=ErrorCode.INTERRUPTED,
    )
