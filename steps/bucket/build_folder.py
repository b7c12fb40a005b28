"""Reading the build folder the job wrote: only its regular files, never through a link.

The build ran code the agent may have written, as a uid that could write anything in the build folder:
a link (`dist -> ../../..`, `leak -> /etc/…`), a FIFO, a device. Only regular files are published, each
reached from the build folder's descriptor one name at a time with O_NOFOLLOW, so no link is ever
followed, not even one pointing inside the build. O_NONBLOCK: a FIFO never hangs an open.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from s3transfer.utils import OSUtils

from steps.base import StepError
from steps.bucket.digests import DigestCache
from steps.bucket.plan import LocalFile
from supervisor.contract.codes import ErrorCode

log = logging.getLogger("steps.deploy")
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
FOLDER_FLAGS = FILE_FLAGS | os.O_DIRECTORY


@dataclass(frozen=True)
class BuiltFile(LocalFile):
    """A built file as hashed: the upload reads only this very file, unchanged (see `identity`)."""

    identity: tuple[int, ...]


def identity(info: os.stat_result) -> tuple[int, ...]:
    """Device and inode say which file; a freed inode can be reused at once, so size and both times say
    it is still the one that was hashed (root reading it changes neither)."""
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


@dataclass
class Scan:
    files: dict[str, BuiltFile] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)  # keys of what was not deployed, with why


@contextmanager
def open_build_folder(build_dir: Path, within: Path | None = None) -> Iterator[int]:
    """A descriptor of the build folder; StepError (before any request) unless it is a real folder."""
    base = within if within is not None else build_dir.parent
    try:
        parts = build_dir.relative_to(base).parts
        base_fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (ValueError, OSError):
        raise StepError(ErrorCode.DEPLOY_FAILED, f"build folder {build_dir} is missing: nothing deployed") from None
    try:
        root = open_below(base_fd, parts, FOLDER_FLAGS)
    except OSError as error:
        raise StepError(ErrorCode.DEPLOY_FAILED, folder_problem(base, parts, error)) from None
    finally:
        os.close(base_fd)
    try:
        yield root
    finally:
        os.close(root)


def folder_problem(base: Path, parts: tuple[str, ...], error: OSError) -> str:
    """Why base/parts could not be opened as a folder, in words (a failed build never reaches the bucket)."""
    folder = base.joinpath(*parts)
    path = base
    for part in parts:
        path = path / part
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            return f"build folder {folder} is missing: nothing deployed"
        except OSError:
            break
        if stat.S_ISLNK(mode):
            what = "is a symbolic link, not a folder" if path == folder else f"is under a symbolic link ({path})"
            return f"build folder {folder} {what}: nothing deployed"
        if not stat.S_ISDIR(mode):
            return f"build folder {folder}: {path} is not a folder: nothing deployed"
    return f"build folder {folder} cannot be read ({error.strerror}): nothing deployed"


def open_below(folder: int, parts: Sequence[str], flags: int) -> int:
    """Open folder/parts[0]/…/parts[-1] one name at a time, never following a link (ELOOP/ENOTDIR)."""
    if not parts:
        return os.dup(folder)
    opened: list[int] = []
    try:
        for part in parts[:-1]:
            folder = os.open(part, FOLDER_FLAGS, dir_fd=folder)
            opened.append(folder)
        return os.open(parts[-1], flags, dir_fd=folder)
    finally:
        for fd in opened:
            os.close(fd)


def scan_build(root: int, build_dir: Path, reserved: str | None = None, digests: DigestCache | None = None) -> Scan:
    """Every regular file of the build, hashed, by its key in the site; StepError when there is none.

    Folders are read from an explicit stack, so a hostile depth cannot exhaust Python's recursion.
    `reserved` is a top folder of the bucket the build may not publish into (`threads/`, the thread
    previews, when the shared site is deployed): refused like a link, with one warning.
    `digests` finds the MD5 of content seen before without computing it (steps/bucket/digests.py).
    """
    scan = Scan()
    digests = digests if digests is not None else DigestCache(None)
    pending: list[tuple[str, ...]] = [()]
    try:
        while pending:
            parts = pending.pop()
            folder = open_below(root, parts, FOLDER_FLAGS)
            try:
                for name in sorted(os.listdir(folder)):
                    scan_entry(folder, (*parts, name), build_dir, scan, pending, reserved, digests)
            finally:
                os.close(folder)
    except OSError as error:
        raise StepError(ErrorCode.DEPLOY_FAILED, f"reading the build: {error}") from None
    if not scan.files:
        refused = f" ({len(scan.refused)} refused)" if scan.refused else ""
        raise StepError(ErrorCode.DEPLOY_FAILED, f"build folder {build_dir} is empty{refused}: nothing deployed")
    return scan


def scan_entry(
    folder: int,
    parts: tuple[str, ...],
    build_dir: Path,
    scan: Scan,
    pending: list[tuple[str, ...]],
    reserved: str | None = None,
    digests: DigestCache | None = None,
) -> None:
    """Queue a folder, hash a regular file, refuse anything else (one warning each)."""
    key = "/".join(parts)
    mode = os.stat(parts[-1], dir_fd=folder, follow_symlinks=False).st_mode
    problem = key_problem(parts) or reserved_problem(key, mode, reserved) or kind_problem(mode)
    if problem is None and stat.S_ISDIR(mode):
        pending.append(parts)
        return
    if problem is None:
        built = read_built_file(folder, parts[-1], key, build_dir, digests)
        if isinstance(built, BuiltFile):
            scan.files[key] = built
            return
        problem = built
    shown = os.fsencode(key).decode("utf-8", "backslashreplace")  # a name's bytes that are not UTF-8, escaped
    log.warning("not deploying %s/%s: %s", build_dir, shown, problem, extra={"key": shown})
    scan.refused.append(f"{shown}: {problem}")


def key_problem(parts: tuple[str, ...]) -> str | None:
    """Why these names cannot make a key inside the bucket's site, if they cannot."""
    if any(part in ("", ".", "..") or "/" in part for part in parts):
        return "its path leaves the build folder"
    try:
        "/".join(parts).encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not valid UTF-8"
    return None


def reserved_problem(key: str, mode: int, reserved: str | None) -> str | None:
    """Why this entry may not be published: it is, or is inside, the reserved folder."""
    if reserved is None or not (key.startswith(reserved) or (stat.S_ISDIR(mode) and f"{key}/" == reserved)):
        return None
    return f"the bucket's {reserved} folder holds the thread previews: the shared site is not deployed into it"


def kind_problem(mode: int) -> str | None:
    if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
        return None
    kinds = {stat.S_ISLNK: "a symbolic link", stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket"}
    kinds |= {stat.S_ISCHR: "a device", stat.S_ISBLK: "a device"}
    kind = next((name for test, name in kinds.items() if test(mode)), "not a regular file")
    return f"{kind}, only regular files are published"


def read_built_file(
    folder: int, name: str, key: str, build_dir: Path, digests: DigestCache | None = None
) -> BuiltFile | str:
    """Hash the file through the very descriptor whose fstat says it is regular; else why not."""
    fd = os.open(name, FILE_FLAGS, dir_fd=folder)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # swapped after the listing said it was one
            return "not a regular file when opened, only regular files are published"
        digest = (digests if digests is not None else DigestCache(None)).md5(fd, key, identity(info))
    finally:
        os.close(fd)
    return BuiltFile(key, build_dir / key, info.st_size, digest, identity(info))


class BuildReader(OSUtils):
    """How s3transfer reads what it uploads: lazily, as its own would, but each file by its key under
    the build folder's descriptor, never through a link, and only while it is the file that was hashed,
    unchanged: what goes up is what the plan compared."""

    def __init__(self, root: int, files: Mapping[str, LocalFile]):
        self._root = root
        self._files = files

    def open(self, filename: str, mode: str) -> BinaryIO:
        if mode != "rb":
            raise ValueError(f"the build is only read, not opened with {mode!r}")
        file = self._files.get(filename)
        if not isinstance(file, BuiltFile):
            raise OSError(errno.ENOENT, "not a file of the scanned build", filename)
        fd = open_below(self._root, filename.split("/"), FILE_FLAGS)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or identity(info) != file.identity:
                raise OSError(errno.ESTALE, "no longer the file that was hashed", str(file.path))
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

    def get_file_size(self, filename: str) -> int:
        with self.open(filename, "rb") as stream:
            return os.fstat(stream.fileno()).st_size
