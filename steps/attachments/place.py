"""Placing the fetched files in the checkout: `public/uploads/{folder}/{name}`, all at once or not at all,
never through a link.

The checkout is the job's too: `public` or `public/uploads` may be a link or a file an earlier command
planted. Each folder on the way is opened from its parent's descriptor with O_NOFOLLOW, so a link or a
file where a folder belongs refuses the placement before anything is written. The files are written in a
staging folder of the worker's, beside the repository (out of the job's reach, same disk), and that folder
is renamed into place in one step; a folder (or anything else) already there under the command's name, from
an interrupted delivery or planted, is moved aside and removed, never entered. On any failure what was
made is removed. What lands gets the checkout's group, folders 2770 and files 0660: the job may use them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from steps.attachments.names import UPLOADS

FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
SHARED_FOLDER = 0o2770
SHARED_FILE = 0o660


class PlacementRefused(Exception):
    """The checkout has something in the way (a link, a file where a folder belongs); nothing was placed."""


@contextmanager
def staging_folder(staging_root: Path) -> Iterator[Path]:
    """A new, empty folder of the worker's to download into; removed on the way out unless it was placed.

    What a killed worker left in `staging_root` is cleared first (the workspace lock makes us its only user)."""
    staging_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if staging_root.is_symlink() or not staging_root.is_dir():
        raise PlacementRefused(f"the staging folder {staging_root} is not a folder")
    for leftover in staging_root.iterdir():
        _remove(leftover)
    folder = staging_root / os.urandom(8).hex()
    folder.mkdir(mode=0o700)
    try:
        yield folder
    finally:
        if folder.exists():
            shutil.rmtree(folder)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def place(checkout: Path, staged: Path, folder: str) -> None:
    """Move the staged folder (its files already named) to `checkout/public/uploads/{folder}`."""
    made: list[tuple[int, str]] = []  # folders this call created, as (parent descriptor, name)
    opened: list[int] = []
    try:
        root = _open_folder(os.open(checkout, FOLDER_FLAGS), opened)
        group = os.fstat(root).st_gid
        parent, shown = root, ""
        for part in UPLOADS:
            shown = f"{shown}/{part}" if shown else part
            parent = _enter(parent, part, shown, group, made, opened)
        _share_staged(staged, group)
        staged_parent = _open_folder(os.open(staged.parent, FOLDER_FLAGS), opened)
        _swap_in(staged_parent, staged.name, parent, folder)
    except BaseException:
        for parent_fd, name in reversed(made):
            with contextlib.suppress(OSError):
                os.rmdir(name, dir_fd=parent_fd)
        raise
    finally:
        for fd in opened:
            os.close(fd)


def _open_folder(fd: int, opened: list[int]) -> int:
    opened.append(fd)
    return fd


def _enter(parent: int, name: str, shown: str, group: int, made: list[tuple[int, str]], opened: list[int]) -> int:
    """Open `name` under `parent` as a folder, making it when missing; PlacementRefused for a link or a file."""
    try:
        return _open_folder(os.open(name, FOLDER_FLAGS, dir_fd=parent), opened)
    except FileNotFoundError:
        pass
    except OSError as error:
        if error.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        is_link = stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
        raise PlacementRefused(
            f"{shown} in the checkout is {'a symbolic link' if is_link else 'not a folder'}"
        ) from None
    os.mkdir(name, 0o770, dir_fd=parent)
    made.append((parent, name))
    fd = _open_folder(os.open(name, FOLDER_FLAGS, dir_fd=parent), opened)
    _share(fd, group, SHARED_FOLDER)
    return fd


def _share(fd: int, group: int, mode: int) -> None:
    """The checkout's group (the job's, when jobs have an identity) and `mode`. A worker that is not root
    runs its jobs as itself: a group it may not hand out changes nothing for them."""
    if os.fstat(fd).st_gid != group:
        try:
            os.fchown(fd, -1, group)
        except PermissionError:
            if os.geteuid() == 0:
                raise
    os.fchmod(fd, mode)


def _share_staged(staged: Path, group: int) -> None:
    """The staged folder and its regular files (the only kind we wrote there) open to the checkout's group."""
    fd = os.open(staged, FOLDER_FLAGS)
    try:
        for name in os.listdir(fd):
            file_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            try:
                if not stat.S_ISREG(os.fstat(file_fd).st_mode):
                    raise PlacementRefused(f"the staged {name} is not a regular file")
                _share(file_fd, group, SHARED_FILE)
            finally:
                os.close(file_fd)
        _share(fd, group, SHARED_FOLDER)
    finally:
        os.close(fd)


def _swap_in(staged_parent: int, staged_name: str, uploads: int, folder: str) -> None:
    """Rename the staged folder to uploads/folder; whatever was there is moved aside first, then removed."""
    aside = None
    try:
        os.stat(folder, dir_fd=uploads, follow_symlinks=False)
        aside = f".{folder}.{os.urandom(4).hex()}.replaced"
        os.rename(folder, aside, src_dir_fd=uploads, dst_dir_fd=uploads)
    except FileNotFoundError:
        pass
    try:
        os.rename(staged_name, folder, src_dir_fd=staged_parent, dst_dir_fd=uploads)
    except BaseException:
        if aside is not None:
            with contextlib.suppress(OSError):
                os.rename(aside, folder, src_dir_fd=uploads, dst_dir_fd=uploads)
        raise
    if aside is not None:
        _remove_at(uploads, aside)


def _remove_at(parent: int, name: str) -> None:
    """Remove `name` under `parent` without following a link (rmtree works from descriptors here)."""
    if stat.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
        shutil.rmtree(name, dir_fd=parent)
    else:
        os.unlink(name, dir_fd=parent)
