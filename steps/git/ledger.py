"""What a checkout remembers between commands, in `webordinary/` of its repository (beside the checkout,
out of the job's reach: steps/git/layout.py; never committed, never pushed).

- `running.json`: the command in progress. Still there when the next command starts means that command
  died (worker or supervisor killed): its leftovers belong to it and are committed as WIP on its branch.
- `pending-pushes.json`: branches whose commits could not reach the remote; pushed before anything else.
- `operation.json`: a git operation of ours that must not be left half done (a stash), for the repair.

Read as untrusted all the same (a repository adopted from an older layout was writable by the job): a
pending push only ever names a branch a command may work on (a `thread-…` branch, or one a task message may
request: supervisor.contract.command.is_command_branch), and the running command must be a whole, valid one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from steps.git.layout import git_dir_for
from supervisor.common.files import write_atomic
from supervisor.contract.attachments import check_attachments, check_context
from supervisor.contract.branches import is_command_branch, is_thread_branch
from supervisor.contract.command import MESSAGE_SHAPES, SHAPE_TASK, Command
from supervisor.contract.invalid import InvalidMessage

log = logging.getLogger("steps.git.ledger")
COMMAND_FIELDS = frozenset(field.name for field in dataclasses.fields(Command))
# Fields added later, with defaults: a record written before them lacks them and still loads.
OPTIONAL_COMMAND_FIELDS = frozenset(
    field.name
    for field in dataclasses.fields(Command)
    if field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING
)
REQUIRED_COMMAND_FIELDS = COMMAND_FIELDS - OPTIONAL_COMMAND_FIELDS


def is_session_branch(name: object) -> bool:
    """The only branches the worker ever records for a later push: those a command may work on (a chat
    session's `thread-…`, or a branch a task message requested; never a default branch, a tag or a conflict
    branch). The contract's one rule: supervisor.contract.command.is_command_branch."""
    return is_command_branch(name)


def command_from_record(value: object) -> Command | None:
    """The recorded command, or None when the record is not a whole command of ours."""
    if not isinstance(value, dict) or not REQUIRED_COMMAND_FIELDS <= set(value) <= COMMAND_FIELDS:
        return None
    if not all(isinstance(value[name], str) for name in REQUIRED_COMMAND_FIELDS - {"timestamp"}):
        return None
    if value["timestamp"] is not None and not isinstance(value["timestamp"], str):
        return None
    shape = value.get("message_shape", Command.message_shape)
    if not isinstance(shape, str) or shape not in MESSAGE_SHAPES:
        return None
    # Only a task message may name its branch; any other command works on its thread's branch.
    if not (is_command_branch(value["branch"]) if shape == SHAPE_TASK else is_thread_branch(value["branch"])):
        return None
    try:
        attachments = check_attachments(value.get("attachments"))
        context = check_context(value.get("context"))
    except InvalidMessage:
        return None
    return Command(**{**value, "attachments": attachments, "context": context})


class Ledger:
    def __init__(self, checkout: Path):
        self.folder = git_dir_for(checkout) / "webordinary"

    def _read(self, name: str, default: Any) -> Any:
        try:
            return json.loads((self.folder / name).read_text())
        except (OSError, ValueError):
            return default

    def _write(self, name: str, value: Any) -> None:
        write_atomic(self.folder / name, json.dumps(value))

    def _remove(self, name: str) -> None:
        (self.folder / name).unlink(missing_ok=True)

    # Where origin was last seen to point ---------------------------------------------------------

    def origin_seen(self) -> dict[str, Any]:
        """{"url", "config"}: origin's URL and the identity of the repository's config file when it was read."""
        seen = self._read("origin.json", {})
        return seen if isinstance(seen, dict) else {}

    def record_origin(self, url: str, config_identity: list[int]) -> None:
        """A cache: when it cannot be written (a full disk), git is asked again next time, nothing more."""
        with contextlib.suppress(OSError):
            self._write("origin.json", {"url": url, "config": config_identity})

    # The command in progress --------------------------------------------------------------------

    def begin_command(self, command: dict[str, str]) -> None:
        self._write("running.json", command)

    def end_command(self) -> None:
        self._remove("running.json")

    def unfinished_command(self) -> Command | None:
        value = self._read("running.json", None)
        command = command_from_record(value)
        if value is not None and command is None:
            log.warning("ignored a running-command record that is not a valid command")
        return command

    # Branches waiting to be pushed --------------------------------------------------------------

    def pending_pushes(self) -> list[str]:
        value = self._read("pending-pushes.json", [])
        names = value if isinstance(value, list) else []
        refused = [name for name in names if not is_session_branch(name)]
        if refused or not isinstance(value, list):
            log.warning("ignored pending pushes that name no session branch", extra={"refused": refused[:5]})
        return [name for name in names if is_session_branch(name)]

    def add_pending(self, branch: str) -> None:
        if not is_session_branch(branch):
            raise ValueError(f"not a session branch: {branch!r}")
        pending = self.pending_pushes()
        if branch not in pending:
            self._write("pending-pushes.json", [*pending, branch])

    def remove_pending(self, branch: str) -> None:
        pending = self.pending_pushes()
        if branch in pending:
            self._write("pending-pushes.json", [b for b in pending if b != branch])

    # Our own multi-step git operations ----------------------------------------------------------

    def begin_operation(self, operation: dict[str, str]) -> None:
        self._write("operation.json", operation)

    def end_operation(self) -> None:
        self._remove("operation.json")

    def unfinished_operation(self) -> dict[str, str] | None:
        value = self._read("operation.json", None)
        return value if isinstance(value, dict) else None
