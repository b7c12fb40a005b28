"""Reading and writing where the job writes too (the checkout), without following what it planted.

A link the job left where we expect a file would make our root worker read or overwrite a file of its
choosing; a FIFO would hang us. These open only regular files and never follow a link, in the last
path part or (for writes) in the folder.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class NotARegularFile(OSError):
    pass


def read_regular(path: Path) -> bytes:
    """The bytes of a regular file; NotARegularFile for a link, a FIFO, a device or a folder."""
    try:
        fd = os.open(path, READ_FLAGS)
    except OSError as error:
        if error.errno == errno.ELOOP:  # the last part is a symbolic link
            raise NotARegularFile(f"{path} is a symbolic link") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotARegularFile(f"{path} is not a regular file")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def write_inside(folder: Path, name: str, data: bytes) -> None:
    """Write `folder/name` by a new file renamed into place, refusing a folder that is a link."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    temporary = f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        out = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o660, dir_fd=fd)
        try:
            view = memoryview(data)
            while view:  # a large lockfile may take more than one write
                view = view[os.write(out, view) :]
        finally:
            os.close(out)
        os.replace(temporary, name, src_dir_fd=fd, dst_dir_fd=fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=fd)
        raise
    finally:
        os.close(fd)
