"""`/undo`: take back the thread's last command, in place of the agent (it does not run and costs nothing).

The command to take back is the newest one on the thread's branch, not yet on the remote's default branch,
that no earlier undo took back. Every commit carrying its `Command-Id:` trailer (a WIP commit of an
interrupted run included) is reverted into the work tree, newest first; the commit step then commits the
result as this command, with an `Undoes-Command-Id:` trailer naming the one taken back, so the next
`/undo` takes the one before. The history the trailers come from is our repository's (beside the
checkout, never writable by the job), so it can be trusted; a commit pushed by someone else without our
trailers is never a candidate.

Nothing to take back, or a revert that conflicts with what came after: one clear error, the work tree
left exactly as it was, and the later steps skipped (StepError.ends_command).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from steps.base import StepContext, StepError, StepResult, ok
from steps.git.repo import Git
from supervisor.contract.codes import ErrorCode

log = logging.getLogger("steps.undo")

COMMAND_TRAILER = "Command-Id"
UNDOES_TRAILER = "Undoes-Command-Id"
WIP_PREFIX = "WIP: "  # an interrupted run's commit (steps/git/commit_message.py)
# How far back an undo looks for the thread's commands; older ones are out of its reach.
HISTORY_LIMIT = 500


@dataclass(frozen=True)
class TakenBack:
    """The command an undo takes back: its id and its commits, newest first."""

    command_id: str
    commits: tuple[str, ...]
    subject: str = ""  # its first commit's subject, from its instruction (steps/git/commit_message.py)

    def as_details(self, files: list[str]) -> dict[str, Any]:
        return {"commandId": self.command_id, "commits": list(self.commits), "files": files}


def _trailer(values: str) -> str:
    """The first value of a trailer as `%(trailers:…,valueonly,separator=%x01)` prints it."""
    return values.split("\x01")[0].strip()


def command_to_take_back(git: Git, own_command_id: str, default_branch: str | None) -> TakenBack | None:
    """The thread's newest command that no undo has taken back yet, or None when there is none."""
    exclude = [f"^refs/remotes/origin/{default_branch}"] if default_branch else []
    raw = git.run(
        "log",
        f"-{HISTORY_LIMIT}",
        "--no-merges",
        f"--format=%H%x00%(trailers:key={COMMAND_TRAILER},valueonly,separator=%x01)"
        f"%x00%(trailers:key={UNDOES_TRAILER},valueonly,separator=%x01)%x00%s",
        "HEAD",
        *exclude,
        "--",
        ok_codes=(0, 128),
    ).stdout
    undone: set[str] = set()
    target: str | None = None
    commits: list[str] = []
    subject = ""
    for line in raw.splitlines():
        sha, _, rest = line.partition("\0")
        command_values, _, rest = rest.partition("\0")
        undoes_values, _, line_subject = rest.partition("\0")
        command_id, undoes = _trailer(command_values), _trailer(undoes_values)
        if undoes:  # an undo's own commit: never taken back itself, and what it took back is gone
            undone.add(undoes)
            continue
        if not command_id or command_id in undone or command_id == own_command_id:
            continue
        target = target or command_id
        if command_id == target:
            commits.append(sha)
            subject = line_subject.removeprefix(WIP_PREFIX)  # newest first: the last seen is its first
    return TakenBack(target, tuple(commits), subject) if target else None


def revert_into_work_tree(git: Git, taken_back: TakenBack) -> None:
    """Apply the reverse of the commits (newest first) to the index and work tree, without committing.

    On a conflict the revert is aborted, which puts the work tree and index back as they were."""
    result = git.run("revert", "--no-commit", "--no-edit", *taken_back.commits, ok_codes=range(256))
    if result.exit_code == 0:
        return
    git.run("revert", "--abort", ok_codes=range(256))
    git.run("reset", "--hard", "--quiet", "HEAD")  # in case the abort had nothing to go back to
    conflicted = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("CONFLICT")]
    if conflicted:
        why = f"later changes touch the same lines ({'; '.join(conflicted[:5])})"
    else:  # not a conflict git named: say what git said
        why = f"git revert failed ({result.stderr.strip()[-300:] or f'exit {result.exit_code}'})"
    raise StepError(
        ErrorCode.UNDO_CONFLICT,
        f"command {taken_back.command_id} cannot be taken back: {why}; nothing was changed",
        ends_command=True,
        commandId=taken_back.command_id,
    )


def run(ctx: StepContext) -> StepResult:
    """The agent step of an undo command: the revert is left in the work tree for the commit step."""
    started = time.monotonic()
    ctx.agent_skipped_reason = "undo"
    taken_back = command_to_take_back(ctx.git, ctx.command.command_id, ctx.git.default_remote_branch())
    if taken_back is None:
        raise StepError(
            ErrorCode.NOTHING_TO_UNDO,
            f"nothing to undo: no command of this thread's branch {ctx.command.branch} is left to take back",
            ends_command=True,
        )
    revert_into_work_tree(ctx.git, taken_back)
    files = ctx.git.staged_paths()
    if not files:  # what it changed is already gone: undoing it would change nothing
        ctx.git.run("reset", "--hard", "--quiet", "HEAD")
        raise StepError(
            ErrorCode.NOTHING_TO_UNDO,
            f"nothing to undo: the changes of command {taken_back.command_id} are no longer in the site",
            ends_command=True,
            commandId=taken_back.command_id,
        )
    ctx.taken_back = taken_back
    ctx.agent_summary = (
        f"Took back command {taken_back.command_id} ({len(taken_back.commits)} commit(s)): "
        f"{', '.join(files[:10])}{' …' if len(files) > 10 else ''}"
    )
    log.info("undo prepared", extra={"undoes": taken_back.command_id, "commits": len(taken_back.commits)})
    return ok(started, undoes=taken_back.command_id, commits=len(taken_back.commits), files=len(files))
