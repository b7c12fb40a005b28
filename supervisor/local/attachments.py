"""Files attached in the local run (`bin/run-local --attach PATH`): stored in the local attachments bucket
(ATTACHMENTS_BUCKET), as a chat backend stores what a person sent, and named in the message by their key.
The worker fetches, checks and places them as it would in production (steps/attachments)."""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def attach_problem(path: Path) -> str | None:
    """Why `path` cannot be attached (it is the person's own file: a link to one is fine), if it cannot."""
    if not path.exists():
        return f"--attach {path}: no such file"
    if not path.is_file():
        return f"--attach {path}: not a regular file"
    try:
        with path.open("rb"):
            pass
    except OSError as error:
        return f"--attach {path}: cannot be read ({error.strerror or error})"
    return None


def upload_attachments(s3: Any, bucket: str, command_id: str, paths: Sequence[Path]) -> list[dict[str, str]]:
    """Store each file under `local/{commandId}/{n}` (a key nothing in the file's name can shape) and
    return the message's `attachments`: the key, the name it was sent as, and the type its name suggests
    (informational: the worker goes by the bytes)."""
    attachments = []
    for index, path in enumerate(paths, 1):
        key = f"local/{command_id}/{index}"
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        s3.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": content_type})
        attachments.append({"key": key, "name": path.name, "contentType": content_type})
    return attachments
