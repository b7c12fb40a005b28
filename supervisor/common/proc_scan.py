"""Cheap first passes over /proc: which processes run as a uid, which work in a folder.

psutil builds an object per process and reads several files for each; the workspace step asks these
two questions of every process on every command, and the answer is almost always "none". A plain read
of one /proc file per process narrows it first; psutil then looks at the few found (and checks that
each is still the same process before anything is signalled: supervisor/common/proctree.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator


def _pids() -> Iterator[int]:
    with os.scandir("/proc") as entries:
        for entry in entries:
            if entry.name.isdigit():
                yield int(entry.name)


def pids_of_uid(uid: int) -> list[int]:
    """Processes whose real, effective or saved uid is `uid` (the `Uid:` line of /proc/PID/status)."""
    found = []
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/status", "rb", buffering=0) as status:
                text = status.read(4096)
            start = text.index(b"\nUid:") + 5
            if uid in [int(value) for value in text[start : text.index(b"\n", start)].split()[:3]]:
                found.append(pid)
        except (OSError, ValueError):
            continue  # gone meanwhile, not ours to read, or no Uid line
    return found


def pids_working_in(folder: str) -> list[int]:
    """Processes whose working folder is `folder` or below it."""
    found = []
    for pid in _pids():
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if cwd == folder or cwd.startswith(folder + os.sep):
            found.append(pid)
    return found
