"""Step 1: the site's checkout, on the session branch, with its dependencies installed.

Clone when missing (into a temporary folder renamed into place, so a crash never leaves half a
clone), else fetch; then switch to `thread-…`, creating it from the remote's default branch.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

from steps.base import StepContext, StepError, StepResult, ok
from steps.git.checkout import clone, exclude_build_output, fetch, restore_work_tree, switch_to_branch
from steps.git.layout import adopt_inner_git_dir
from steps.git.ledger import Ledger
from steps.git.remote import push_pending
from steps.git.repair import repair
from steps.git.sessions import restore_session, settle_leftovers
from steps.job.identity import build_uids
from steps.processes import deps
from steps.processes.shell import CommandFailed, CommandTimedOut
from steps.processes.strays import end_strays
from supervisor.contract.codes import ErrorCode

log = logging.getLogger(__name__)


def _install(ctx: StepContext) -> str:
    """Dependencies are the build's prerequisite, not the agent's: a failed install is reported by the
    build (which tries again), and the command goes on."""
    try:
        installed = deps.ensure_dependencies(ctx.checkout, ctx.jobs)
    except (CommandFailed, CommandTimedOut) as error:
        log.warning("installing dependencies failed; the build will try again: %s", error)
        return "failed"
    if installed == deps.INSTALLED_OUT_OF_SYNC:
        ctx.warnings.append(deps.OUT_OF_SYNC_WARNING)
    return installed


def run(ctx: StepContext) -> StepResult:
    started = time.monotonic()
    try:
        details: dict[str, object] = {}
        if ctx.checkout.is_dir() and (strays := end_strays(ctx.checkout, build_uids(ctx.config.job_uid_range))):
            details["endedStrays"] = strays
        if ctx.checkout.is_dir():
            details["adopted"] = adopt_inner_git_dir(ctx.checkout, ctx.git.git_dir)
        cloned = not ctx.git.is_repo()
        if not cloned and not ctx.checkout.is_dir():  # a clone cut short just before its rename, or removed
            details["restoredWorkTree"] = restore_work_tree(ctx)
            cloned = not details["restoredWorkTree"]
        if cloned:
            clone(ctx)
            reachable = True
        ctx.jobs.prepare_workspace()  # the checkout shared with the job, its home, nothing of it running
        dirty: bool | None = None
        if not cloned:
            details["repaired"] = repair(ctx.checkout, ctx.git)
            # The work tree's status does not depend on the fetch: both run at once (each a few ms of git).
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="status") as beside:
                status = beside.submit(ctx.git.is_dirty)
                reachable = fetch(ctx)
                dirty = status.result()
        ledger = Ledger(ctx.checkout)
        exclude_build_output(ctx)
        details.update(settle_leftovers(ctx, ledger, dirty))
        if reachable and ctx.config.git_push_enabled and ledger.pending_pushes():
            outcomes = push_pending(ctx.git, ctx.config, ledger, before_push=lambda: ctx.check_lease("pushing"))
            details["pendingPushes"] = {branch: str(outcome) for branch, outcome in outcomes.items()}
        details["branch"] = switch_to_branch(ctx)
        restored = restore_session(ctx.git, ctx.command.branch)
        if restored.error:
            ctx.warnings.append(restored.error)
        details["restoredStashes"] = len(restored.restored)
        ledger.begin_command(ctx.command.to_dict())
        details["dependencies"] = _install(ctx)
    except (CommandFailed, CommandTimedOut) as error:
        raise StepError(ErrorCode.INTERNAL, f"workspace: {error}") from None
    except OSError as error:  # the volume full or read-only: the machine's failure, said once, not a crash
        raise StepError(ErrorCode.INTERNAL, f"workspace: {error}") from None
    return ok(started, cloned=cloned, **{k: v for k, v in details.items() if v})
