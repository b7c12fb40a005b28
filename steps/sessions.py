"""Keeping each session's edits on its own branch when one checkout serves many sessions."""

from __future__ import annotations

import logging

from steps.base import StepContext
from steps.commit_message import leftover_message

log = logging.getLogger("steps.sessions")


def preserve_leftovers(ctx: StepContext) -> dict[str, str]:
    """Uncommitted changes found before a command starts stay with the branch they were made on.

    They are committed as WIP on that branch (never carried to the new session's branch); on a
    detached HEAD, where no branch owns them, they are stashed under a name that says so.
    """
    git = ctx.git
    if not git.is_dirty():
        return {}
    branch = git.current_branch()
    if branch is None:
        git.run("stash", "push", "--include-untracked", "--message", "webordinary: leftovers on a detached HEAD")
        log.warning("uncommitted changes on a detached HEAD were stashed")
        return {"leftovers": "stashed"}
    git.run("add", "--all")
    git.run(
        "commit",
        "--quiet",
        "--no-verify",
        "--cleanup=verbatim",
        "--file",
        "-",
        stdin=leftover_message(git.staged_paths()),
    )
    log.warning("uncommitted changes left in the workspace were committed as WIP", extra={"branch": branch})
    return {"leftovers": f"committed on {branch}"}
