"""Who may enter what on the workspace volume, when jobs run as their own identity.

    {WORKSPACE_PATH}/                      worker, 0711: others may pass through, not list
      {clientId}/{userId}/                 worker, 0711
        {repo}/                            worker, group = the job, 2770: the job and our git share it
        .{repo}.git/  .{repo}.lock         worker, 0700 / 0600: the repository and the lock, never the job's
      .supervisor/  .agent/…/sessions/     worker, 0700
      .jobs/{uid}/                         the job, 0700: its HOME

The checkout is shared through its group: our git writes with umask 007 into folders whose set-group-id
bit hands every new file the job's group, so the job can edit what git checked out and git (as root)
reads whatever the job wrote. A checkout from before (another owner, no group) is handed over once.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from steps.git.layout import git_dir_for
from steps.job.identity import JobIdentity

log = logging.getLogger("steps.job.access")
PASS_THROUGH = 0o711
OTHERS_PASS = 0o011  # group and others may traverse
SHARED_FOLDER = 0o2770
MARKER = "job-group"  # in the repository's webordinary/ folder: the group the checkout was handed to


def pass_through(folder: Path, up_to: Path) -> None:
    """Let everyone traverse `folder` and its parents up to `up_to` (inclusive), but list none of them; above
    `up_to`, a folder of ours that others cannot pass (a temporary folder holding a local run) gets o+x."""
    below = True
    for path in (folder, *folder.parents):
        info = path.stat()
        if info.st_uid == os.geteuid() and below:
            os.chmod(path, (info.st_mode & 0o7777 & ~0o066) | PASS_THROUGH)
        elif info.st_uid == os.geteuid() and not info.st_mode & 0o001:
            log.warning("let jobs pass through %s to reach the workspace (o+x)", path)
            os.chmod(path, info.st_mode & 0o7777 | OTHERS_PASS)
        below = below and path != up_to


def prepare_home(identity: JobIdentity) -> None:
    identity.home.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(identity.home.parent, PASS_THROUGH)
    identity.home.mkdir(exist_ok=True)
    identity.owns(identity.home)
    os.chmod(identity.home, 0o700)


def shared_folder(folder: Path, identity: JobIdentity) -> None:
    """A folder our git and the job share (a checkout, or a clone's staging folder)."""
    os.chown(folder, os.geteuid(), identity.gid, follow_symlinks=False)
    os.chmod(folder, SHARED_FOLDER)


def _shared_mode(info: os.stat_result) -> int:
    """Group access like the owner's; folders hand their group on; no set-id bit on a file the job may write."""
    mode = stat.S_IMODE(info.st_mode)
    if stat.S_ISDIR(info.st_mode):
        return mode | 0o2070
    return (mode & ~0o6000) | 0o060 | (0o010 if mode & 0o100 else 0)


def forget_hand_over(checkout: Path) -> None:
    """The checkout's files were written anew (steps/git/checkout.py): the next hand_over walks them all."""
    (git_dir_for(checkout) / "webordinary" / MARKER).unlink(missing_ok=True)


def hand_over(checkout: Path, identity: JobIdentity) -> int:
    """Give the job's group every file of a checkout that was not made for it; returns how many changed.

    Once per checkout and group (a marker in the repository). Never follows a link; a file with other
    hard links is left alone (it is someone else's file too)."""
    marker = git_dir_for(checkout) / "webordinary" / MARKER
    if marker.is_file() and marker.read_text().strip() == str(identity.gid):
        return 0
    changed = 0
    for folder, dirs, files in os.walk(checkout):
        for name in (*dirs, *files):
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode) or (not stat.S_ISDIR(info.st_mode) and info.st_nlink > 1):
                continue
            mode, wanted = stat.S_IMODE(info.st_mode), _shared_mode(info)
            if info.st_gid != identity.gid:
                os.chown(path, -1, identity.gid, follow_symlinks=False)
                changed += 1
            if mode != wanted:
                os.chmod(path, wanted)
    shared_folder(checkout, identity)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(identity.gid))
    if changed:
        log.info("handed the checkout over to its job identity", extra={"files": changed, "gid": identity.gid})
    return changed
