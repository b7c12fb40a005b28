"""Broken states a crash can leave in a checkout, found and repaired before a command starts.

Every repair keeps what was committed or written: an interrupted rebase, merge, cherry-pick or revert
is aborted (back to the branch as it was), stale lock files are removed, a detached HEAD with commits
or edits of its own gets a `recovered-…` branch, and a stash of ours cut short is completed.
Callers hold the workspace lock and no process of an earlier worker is left, so no git is running here.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from steps.git.layout import git_dir_for
from steps.git.ledger import Ledger
from steps.git.repo import Git

log = logging.getLogger("steps.git.repair")
IN_PROGRESS = (
    ("rebase-merge", ("rebase", "--abort")),
    ("rebase-apply", ("rebase", "--abort")),
    ("MERGE_HEAD", ("merge", "--abort")),
    ("CHERRY_PICK_HEAD", ("cherry-pick", "--abort")),
    ("REVERT_HEAD", ("revert", "--abort")),
)


def remove_stale_locks(checkout: Path) -> list[str]:
    """Remove git lock files left by a killed git process."""
    removed = []
    git_dir = git_dir_for(checkout)
    for lock in (git_dir / "index.lock", git_dir / "HEAD.lock", *git_dir.glob("refs/**/*.lock")):
        if lock.is_file():
            lock.unlink()
            removed.append(str(lock.relative_to(git_dir)))
    if removed:
        log.warning("removed stale git lock files", extra={"files": removed})
    return removed


def _abort_in_progress(git: Git, git_dir: Path) -> list[str]:
    done = []
    for marker, abort in IN_PROGRESS:
        if not (git_dir / marker).exists():
            continue
        result = git.run(*abort, ok_codes=range(256))
        if result.exit_code != 0 and (git_dir / marker).is_dir():
            shutil.rmtree(git_dir / marker)  # git could not abort it: the branch ref was never moved
        elif result.exit_code != 0:
            (git_dir / marker).unlink(missing_ok=True)
        done.append(f"aborted an unfinished {abort[0]}")
    return done


def _finish_cut_short_stash(git: Git, ledger: Ledger) -> list[str]:
    operation = ledger.unfinished_operation()
    if not operation:
        return []
    ledger.end_operation()
    if operation.get("op") != "stash":
        return []
    name = operation.get("name", "")
    stashed = any(name in line for line in git.out("stash", "list", "--format=%gs").splitlines())
    if stashed and git.is_dirty():
        # The stash holds these edits already: the crash came before the tree was cleaned.
        git.run("reset", "--quiet", "--hard", "HEAD")
        git.run("clean", "-fdq")
        return ["completed a stash cut short (the tree still held the stashed edits)"]
    return []


def _attach_detached_head(git: Git) -> list[str]:
    if git.current_branch() is not None:
        return []
    head = git.head()
    if head is None:
        return []
    on_a_branch = bool(git.out("branch", "--contains", head, "--format=%(refname)"))
    if on_a_branch and not git.is_dirty():
        return []  # nothing here that a branch does not already hold
    name = f"recovered-{head[:12]}"
    if git.has_ref(f"refs/heads/{name}"):
        git.run("checkout", "--quiet", name)
    else:
        git.run("checkout", "--quiet", "-b", name)
    return [f"detached HEAD kept on branch {name}"]


def broken_states(checkout: Path, git: Git) -> list[str]:
    """What `repair` would act on, without changing anything (for `bin/workspace`)."""
    git_dir = git_dir_for(checkout)
    locks = (git_dir / "index.lock", git_dir / "HEAD.lock", *git_dir.glob("refs/**/*.lock"))
    found = [f"stale lock {lock.relative_to(git_dir)}" for lock in locks if lock.is_file()]
    found += [f"unfinished {abort[0]}" for marker, abort in IN_PROGRESS if (git_dir / marker).exists()]
    operation = Ledger(checkout).unfinished_operation()
    if operation:
        found.append(f"unfinished {operation.get('op')} ({operation.get('name')})")
    if git.head() is not None and git.current_branch() is None:
        found.append("detached HEAD")
    return found


def repair(checkout: Path, git: Git) -> list[str]:
    """Repair whatever a crash left; returns what was done (empty when the checkout was fine)."""
    git_dir = git_dir_for(checkout)
    done = [f"removed {lock}" for lock in remove_stale_locks(checkout)]
    done += _abort_in_progress(git, git_dir)
    done += _finish_cut_short_stash(git, Ledger(checkout))
    done += _attach_detached_head(git)
    for action in done:
        log.warning("repaired: %s", action)
    return done
