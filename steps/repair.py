"""Repairs of a checkout left behind by a process that was killed mid-git-command."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("steps.repair")


def remove_stale_locks(checkout: Path) -> list[str]:
    """Remove git lock files. Only safe when no git process can be running in the checkout: callers hold
    the workspace lock and the tree of the previous worker is gone."""
    removed = []
    git_dir = checkout / ".git"
    for lock in (git_dir / "index.lock", git_dir / "HEAD.lock", *git_dir.glob("refs/**/*.lock")):
        if lock.is_file():
            lock.unlink()
            removed.append(str(lock.relative_to(checkout)))
    if removed:
        log.warning("removed stale git lock files", extra={"files": removed})
    return removed
