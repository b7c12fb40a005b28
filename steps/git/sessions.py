"""Many sessions, one checkout: uncommitted changes never travel to another session's branch.

Before a command switches branches, whatever the checkout holds uncommitted is settled:
- left by a command that died here (the ledger still names it): committed as WIP on its own branch,
  with its trailers, so a redelivery of that command finds the edits and runs the agent again;
- anything else (an operator's edits, untracked files that would block the checkout): stashed under a
  name that says which session branch it belongs to, and restored when that session comes back.
A restore that conflicts keeps the stash, leaves the tree clean, and says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from steps.base import StepContext
from steps.git.commit_message import commit_message
from steps.git.ledger import Ledger
from steps.git.repo import Git

log = logging.getLogger("steps.git.sessions")
STASH_PREFIX = "webordinary:"
NO_COMMAND = "-"


@dataclass(frozen=True)
class SessionStash:
    ref: str  # stash@{n} when listed: it shifts as stashes come and go, so list again before using it
    sha: str
    branch: str
    command_id: str
    created: str


@dataclass
class Restore:
    restored: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    error: str | None = None


def stash_name(branch: str, command_id: str | None) -> str:
    return f"{STASH_PREFIX} {branch} {command_id or NO_COMMAND}"


def session_stashes(git: Git, branch: str | None = None) -> list[SessionStash]:
    """Our stashes, newest first; only those of `branch` when given."""
    if not git.may_have_stashes():
        return []
    raw = git.out("stash", "list", "--format=%gd%x00%H%x00%ci%x00%gs", ok_codes=(0, 128))
    found = []
    for line in raw.splitlines():
        parts = line.split("\0")
        if len(parts) != 4 or STASH_PREFIX not in parts[3]:
            continue
        name = parts[3][parts[3].index(STASH_PREFIX) + len(STASH_PREFIX) :].strip()
        stash_branch, _, command_id = name.partition(" ")
        if branch is None or stash_branch == branch:
            found.append(SessionStash(parts[0], parts[1], stash_branch, command_id or NO_COMMAND, parts[2]))
    return found


def _ref_of(git: Git, sha: str) -> str | None:
    return next((s.ref for s in session_stashes(git) if s.sha == sha), None)


def stash_changes(git: Git, ledger: Ledger, branch: str, command_id: str | None) -> str:
    """Stash everything uncommitted (untracked files too) for `branch`; returns the stash's commit.

    The ledger marks the operation, so a crash between writing the stash and cleaning the tree is
    repaired (steps/repair.py) instead of leaving the same edits in two places."""
    name = stash_name(branch, command_id)
    ledger.begin_operation({"op": "stash", "name": name})
    git.run("stash", "push", "--include-untracked", "--message", name)
    ledger.end_operation()
    stash = session_stashes(git, branch)[0]
    log.warning("uncommitted changes stashed for their session", extra={"branch": branch, "stash": stash.sha})
    return stash.sha


def drop_stash(git: Git, sha: str) -> bool:
    ref = _ref_of(git, sha)
    if ref is None:
        return False
    git.run("stash", "drop", "--quiet", ref)
    return True


def restore_session(git: Git, branch: str) -> Restore:
    """Apply the branch's stashes, oldest first, dropping each one that applied cleanly."""
    result = Restore()
    for stash in reversed(session_stashes(git, branch)):
        ref = _ref_of(git, stash.sha)
        if ref is None:
            continue
        applied = git.run("stash", "apply", "--quiet", ref, ok_codes=range(256))
        if applied.exit_code == 0:
            drop_stash(git, stash.sha)
            result.restored.append(stash.sha)
            continue
        # Back to the clean tree we had: the stash keeps the edits for a person to merge.
        git.run("reset", "--quiet", "--hard", "HEAD")
        git.run("clean", "-fdq")
        result.kept = [s.sha for s in session_stashes(git, branch)]
        result.error = (
            f"uncommitted changes of {branch} (stash {stash.sha[:12]}) conflict with the branch; "
            "kept in the stash, the tree is clean (see bin/stash)"
        )
        log.warning(result.error)
        break
    if result.restored:
        log.info("restored the session's stashed changes", extra={"branch": branch, "stashes": result.restored})
    return result


def settle_leftovers(ctx: StepContext, ledger: Ledger, dirty: bool | None = None) -> dict[str, str]:
    """Uncommitted changes found before a command starts stay with the session they belong to.

    `dirty`: whether the work tree has changes, when the caller already asked git."""
    git = ctx.git
    unfinished = ledger.unfinished_command()
    ledger.end_command()
    if not (git.is_dirty() if dirty is None else dirty):
        return {}
    branch = git.current_branch() or f"detached-{(git.head() or 'none')[:8]}"
    if unfinished and unfinished.branch == branch:
        died = unfinished
        git.commit_everything(lambda staged: commit_message(died, staged, wip=True))
        log.warning(
            "a command died here; its edits are committed as WIP on its branch",
            extra={"branch": branch, "diedCommandId": died.command_id},
        )
        return {"leftovers": f"committed as WIP of {died.command_id} on {branch}"}
    sha = stash_changes(git, ledger, branch, None)
    return {"leftovers": f"stashed for {branch} ({sha[:12]})"}
