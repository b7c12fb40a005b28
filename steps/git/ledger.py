"""What a checkout remembers between commands, in `.git/webordinary/` (never committed, never pushed).

- `running.json`: the command in progress. Still there when the next command starts means that command
  died (worker or supervisor killed): its leftovers belong to it and are committed as WIP on its branch.
- `pending-pushes.json`: branches whose commits could not reach the remote; pushed before anything else.
- `operation.json`: a git operation of ours that must not be left half done (a stash), for the repair.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from supervisor.common.files import write_atomic


class Ledger:
    def __init__(self, checkout: Path):
        self.folder = checkout / ".git" / "webordinary"

    def _read(self, name: str, default: Any) -> Any:
        try:
            return json.loads((self.folder / name).read_text())
        except (OSError, ValueError):
            return default

    def _write(self, name: str, value: Any) -> None:
        write_atomic(self.folder / name, json.dumps(value))

    def _remove(self, name: str) -> None:
        (self.folder / name).unlink(missing_ok=True)

    # The command in progress --------------------------------------------------------------------

    def begin_command(self, command: dict[str, str]) -> None:
        self._write("running.json", command)

    def end_command(self) -> None:
        self._remove("running.json")

    def unfinished_command(self) -> dict[str, str] | None:
        value = self._read("running.json", None)
        return value if isinstance(value, dict) else None

    # Branches waiting to be pushed --------------------------------------------------------------

    def pending_pushes(self) -> list[str]:
        value = self._read("pending-pushes.json", [])
        return [b for b in value if isinstance(b, str)] if isinstance(value, list) else []

    def add_pending(self, branch: str) -> None:
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
