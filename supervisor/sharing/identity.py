"""Who a container is among several sharing one queue: its owner id, and the id of the volume it works on."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import time
import uuid
from pathlib import Path

from supervisor.common.files import private_folder


def container_id() -> str:
    """Unique to this process's life: a restarted container is a new owner with a new inbox."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def storage_id(workspace_path: str) -> str:
    """The id of WORKSPACE_PATH's volume: shared by every container mounting the same volume (EFS)."""
    path = Path(workspace_path) / ".supervisor" / "storage-id"
    private_folder(path.parent)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)  # the first container names it
        with os.fdopen(fd, "w") as out:
            out.write(uuid.uuid4().hex)
    for _ in range(50):  # another container may be between creating and writing it
        if text := path.read_text().strip():
            return text
        time.sleep(0.02)
    raise RuntimeError(f"{path} stays empty")
