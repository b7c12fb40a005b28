"""At most one worker in a checkout, even across a supervisor restart (an orphaned worker still holds it)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

LOCK_WAIT_SECONDS = 60.0


class WorkspaceBusy(RuntimeError):
    pass


def lock_path(checkout: Path) -> Path:
    # Beside the checkout, not in it: never committed, never seen by the agent.
    return checkout.parent / f".{checkout.name}.lock"


@contextlib.contextmanager
def workspace_lock(checkout: Path, wait: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
    path = lock_path(checkout)
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_CLOEXEC: the commands we start must not inherit (and so outlive us holding) the lock.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise WorkspaceBusy(f"another worker still holds {path} after {wait:g} s") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)
