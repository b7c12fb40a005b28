"""Writing small state files so that a crash leaves the old or the new content, never half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

PRIVATE_MODE = 0o700


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename it into place (atomic on one file system).

    The temporary file is made by mkstemp (O_EXCL, random name): a link planted beside `path` is never
    followed or written through, and a failed write leaves no temporary file behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise


def private_folder(path: Path) -> Path:
    """`path` as a folder only its owner may enter (made if missing, tightened if it exists).

    The supervisor's records hold every client's responses, and the jobs run as other uids. A link in
    its place is refused (OSError), never followed. A folder we cannot open or chmod is not ours (another
    uid's on a shared volume) and is left as it is.
    """
    path.mkdir(mode=PRIVATE_MODE, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except PermissionError:
        return path
    try:
        os.fchmod(fd, PRIVATE_MODE)
    except PermissionError:
        pass
    finally:
        os.close(fd)
    return path
