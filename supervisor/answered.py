"""Commands already answered, so a redelivery never gets a second, different final response.

A response is sent before its message is deleted; when the delete fails (or the supervisor dies in
between), SQS hands the message out again. Its commandId (the idempotency key, CONTRACT §1) is found
here and the message is only deleted. Kept in `{WORKSPACE_PATH}/.supervisor/answered/`, so every
supervisor sharing the volume sees it, for longer than SQS keeps a message.

The response itself is written down before it is sent (`intend`). A supervisor killed while sending
cannot know whether SQS took it; the redelivery then sends that same response again, byte for byte,
rather than running the command again and answering differently.

Also counted here: how many workers died running a command (a supervisor's own death is not the
command's fault, so SQS's receive count alone would give up on it too early).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from supervisor.common.files import write_atomic

KEEP_SECONDS = 14 * 24 * 3600  # SQS keeps a message 14 days at most


class AnsweredCommands:
    def __init__(self, workspace_path: str):
        self.folder = Path(workspace_path, ".supervisor", "answered")

    def _path(self, command_id: str) -> Path:
        digest = hashlib.sha256(command_id.encode("utf-8", "surrogatepass")).hexdigest()
        return self.folder / digest[:40]

    def intend(self, command_id: str, response: dict[str, Any]) -> None:
        """The final response about to be sent."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomic(self._path(command_id).with_suffix(".sending"), json.dumps(response))
        except (OSError, TypeError, ValueError):
            pass  # at worst a redelivery is answered anew, as before this record existed

    def record(self, command_id: str) -> None:
        """Its response is out."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._path(command_id).touch()
            self._path(command_id).with_suffix(".sending").unlink(missing_ok=True)
        except OSError:
            pass  # at worst a redelivery is answered again, as before this record existed

    def answered(self, command_id: str) -> bool:
        return self._path(command_id).exists()

    def maybe_sent(self, command_id: str) -> dict[str, Any] | None:
        """The response that was being sent when its supervisor stopped, if any."""
        try:
            value = json.loads(self._path(command_id).with_suffix(".sending").read_text())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def count_death(self, command_id: str) -> int:
        """One more worker died running this command; returns how many have (1 when unreadable)."""
        path = self._path(command_id).with_suffix(".deaths")
        try:
            deaths = int(path.read_text() or 0) + 1 if path.exists() else 1
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomic(path, str(deaths))
        except (OSError, ValueError):
            return 1
        return deaths

    def prune(self, now: float | None = None) -> int:
        """Forget answers older than any message SQS could still hand out; returns how many."""
        cutoff = (now or time.time()) - KEEP_SECONDS
        removed = 0
        for entry in self.folder.glob("*") if self.folder.is_dir() else []:
            try:
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry)
                    removed += 1
            except OSError:
                continue
        return removed
