"""Where a checkout's git directory lives: beside the checkout, never inside it.

Everything inside the checkout can be written by the job (the agent, npm, the site's build), and a
`.git/` it can write is code it can make our git run: hooks, `core.fsmonitor`, filter drivers,
`insteadOf` rewrites of the push URL (git's own security boundary). So the repository is
`{parent}/.{name}.git`, owned by the worker and closed to everyone else, and our git always runs with
`GIT_DIR`/`GIT_WORK_TREE` set (steps/git/repo.py): a `.git` the job plants in the checkout is never read.

A checkout made before this layout has its `.git/` inside; `adopt_inner_git_dir` moves it out once and
strips whatever in it could run code or point elsewhere (hooks, the whole config, alternates, worktrees).
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import time
from pathlib import Path

log = logging.getLogger("steps.git.layout")

# Written in place of whatever config an adopted repository had: nothing of the old one is kept.
CLEAN_CONFIG = """[core]
\trepositoryformatversion = 0
\tfilemode = true
\tbare = false
\tlogallrefupdates = true
"""
# Parts of a repository that can run programs or make git read another repository.
UNSAFE_PARTS = (
    "hooks",
    "commondir",
    "worktrees",
    "objects/info/alternates",
    "objects/info/http-alternates",
    "info/attributes",
)


def git_dir_for(checkout: Path) -> Path:
    """The repository of `checkout`: `.{name}.git` in the same folder (client and user ids never start with '.')."""
    return checkout.parent / f".{checkout.name}.git"


def inner_git_entry(checkout: Path) -> os.stat_result | None:
    """lstat of `{checkout}/.git` (never followed), or None when there is none."""
    try:
        return (checkout / ".git").lstat()
    except FileNotFoundError:
        return None


def adopt_inner_git_dir(checkout: Path, git_dir: Path) -> str | None:
    """Move a checkout's own `.git/` beside it and make it safe; returns what was done, or None when there
    was nothing to adopt. A `.git` that is a file or a link (it would point git elsewhere) is moved aside."""
    entry = inner_git_entry(checkout)
    if entry is None or git_dir.exists():
        return None  # with a repository beside it, a `.git` in the checkout is never read (GIT_DIR)
    inner = checkout / ".git"
    if not stat.S_ISDIR(entry.st_mode):
        aside = checkout.parent / f".{checkout.name}.untrusted-git-{int(time.time())}"
        os.rename(inner, aside)
        log.warning("the checkout's .git is not a folder; moved it aside", extra={"to": str(aside)})
        return f"moved an untrusted .git aside to {aside.name}"
    os.rename(inner, git_dir)
    os.chmod(git_dir, 0o700)
    strip_unsafe_parts(git_dir)
    log.warning("moved the checkout's .git beside it and removed its hooks and config", extra={"gitDir": str(git_dir)})
    return "moved .git out of the checkout (hooks and config dropped)"


def strip_unsafe_parts(git_dir: Path) -> None:
    """Remove what could run code or redirect git, and start the config afresh."""
    for part in UNSAFE_PARTS:
        target = git_dir / part
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
    (git_dir / "config").unlink(missing_ok=True)
    (git_dir / "config").write_text(CLEAN_CONFIG)
    (git_dir / "hooks").mkdir()
