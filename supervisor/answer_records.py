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

The folder sits on the volume the jobs write to, so every record is read as hostile: never through a
link, and a record counts only for the command it names.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from supervisor.common.files import private_folder, write_atomic

log = logging.getLogger("supervisor.answer_records")
KEEP_SECONDS = 14 * 24 * 3600  # SQS keeps a message 14 days at most
PRUNE_EVERY_SECONDS = 3600
MAX_RECORD_BYTES = 1024 * 1024  # a response fits in one SQS message (256 KiB); anything larger is not ours
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


# Errors that mean "no record of ours here": none at all, or a link or a path part that is no folder.
NOT_A_RECORD = (errno.ENOENT, errno.ELOOP, errno.ENOTDIR)


def read_record(path: Path) -> tuple[bytes, os.stat_result] | None:
    """The content and owner of a regular file at `path`; None for a link, a FIFO, anything else or
    nothing. Any other error (EIO on a network volume) is raised: "not answered" is not a guess to make."""
    try:
        fd = os.open(path, READ_FLAGS)
    except OSError as error:
        if error.errno in NOT_A_RECORD:
            return None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_RECORD_BYTES:
            return None
        return os.read(fd, MAX_RECORD_BYTES + 1), info
    finally:
        os.close(fd)


def names_command(content: bytes, command_id: str) -> bool:
    """Whether a record is a JSON object whose commandId is this command's."""
    try:
        value = json.loads(content)
    except ValueError:
        return False
    return isinstance(value, dict) and value.get("commandId") == command_id


class AnsweredCommands:
    def __init__(self, workspace_path: str, clock: Callable[[], float] = time.time):
        self.folder = Path(workspace_path, ".supervisor", "answered")
        self._warned: set[str] = set()  # commands whose stored response named another command
        self._clock = clock
        self._last_prune = clock()  # the supervisor prunes at start-up
        self._pruning: threading.Thread | None = None

    def _path(self, command_id: str) -> Path:
        digest = hashlib.sha256(command_id.encode("utf-8", "surrogatepass")).hexdigest()
        return self.folder / digest[:40]

    def _make_folder(self) -> None:
        # Only we may read or plant responses: they hold every client's summaries.
        private_folder(self.folder.parent)
        private_folder(self.folder)

    def intend(self, command_id: str, response: dict[str, Any]) -> None:
        """The final response about to be sent."""
        try:
            self._make_folder()
            write_atomic(self._path(command_id).with_suffix(".sending"), json.dumps(response))
        except (OSError, TypeError, ValueError):
            pass  # at worst a redelivery is answered anew, as before this record existed

    def record(self, command_id: str) -> None:
        """Its response is out. The marker names the command, so it answers that command only."""
        try:
            self._make_folder()
            write_atomic(self._path(command_id), json.dumps({"commandId": command_id}))
            self._path(command_id).with_suffix(".sending").unlink(missing_ok=True)
        except OSError:
            pass  # at worst a redelivery is answered again, as before this record existed
        self.prune_now_and_then()

    def prune_now_and_then(self) -> threading.Thread | None:
        """Every PRUNE_EVERY_SECONDS, on a thread of its own (a scan of a network volume must not hold up
        the caller): a supervisor that runs for weeks must not keep every answer it ever gave."""
        now = self._clock()
        if now - self._last_prune < PRUNE_EVERY_SECONDS or (self._pruning is not None and self._pruning.is_alive()):
            return None
        self._last_prune = now
        self._pruning = threading.Thread(target=self.prune, name="prune-answered", daemon=True)
        self._pruning.start()
        return self._pruning

    def answered(self, command_id: str) -> bool:
        found = read_record(self._path(command_id))
        if found is None:
            return False
        content, info = found
        if not content.strip():
            # Markers written by earlier versions were empty files. Kept valid for the redeliveries
            # still under way when they were written, but only when created by our own uid: a job
            # runs as another uid and cannot make a file owned by us.
            return info.st_uid == os.geteuid()
        return names_command(content, command_id)

    def maybe_sent(self, command_id: str) -> dict[str, Any] | None:
        """The response that was being sent when its supervisor stopped, if any; only one written for
        this very command (a record naming another would answer this command with its result)."""
        path = self._path(command_id).with_suffix(".sending")
        found = read_record(path)
        if found is None:
            if os.path.lexists(path):
                self._ignore(command_id, "not a regular file")
            return None
        try:
            value = json.loads(found[0])
        except ValueError:
            value = None
        if isinstance(value, dict) and value.get("commandId") == command_id:
            return value
        self._ignore(command_id, "not a response to this command")
        return None

    def _ignore(self, command_id: str, why: str) -> None:
        """One warning per command: a redelivery every 30 s would otherwise repeat it."""
        if command_id not in self._warned:
            self._warned.add(command_id)
            log.warning("ignoring the stored response: %s", why, extra={"commandId": command_id})

    def count_death(self, command_id: str) -> int:
        """One more worker died running this command; returns how many have (1 when unreadable)."""
        path = self._path(command_id).with_suffix(".deaths")
        try:
            found = read_record(path)
            deaths = int(found[0] or 0) + 1 if found else 1
            self._make_folder()
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
                if entry.lstat().st_mtime < cutoff:  # a link's own age: its target is never looked at
                    os.unlink(entry)
                    removed += 1
            except OSError:
                continue
        return removed
