"""What the agent is told of an undo: its conversation (resumed per thread) still remembers the change it
made, so the thread's next prompt says which changes `/undo` took back and that their files are back as
they were before them.

An undo's commit step notes what it took back in the thread's agent state (memory.py, `sessions/`: ours,
never lent to the job); the next agent run of the thread carries the note after the instruction, and the
note is forgotten once a run has started with it. Like the attachments' note, only the prompt the CLI gets
carries it: the command's instruction stays as the sender wrote it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

FILES_NAMED = 10  # per change; the agent can look at the rest itself


@dataclass(frozen=True)
class UndoneChange:
    """A command an undo took back: its id, its commit's subject (from its instruction) and the files."""

    command_id: str
    subject: str
    files: tuple[str, ...]

    def to_record(self) -> dict[str, Any]:
        return {"commandId": self.command_id, "subject": self.subject, "files": list(self.files)}

    @classmethod
    def from_record(cls, value: object) -> UndoneChange | None:
        if not isinstance(value, dict):
            return None
        command_id, subject, files = value.get("commandId"), value.get("subject"), value.get("files")
        if not isinstance(command_id, str) or not isinstance(subject, str) or not isinstance(files, list):
            return None
        return cls(command_id, subject, tuple(str(path) for path in files))


def with_undo_note(instruction: str, undone: Sequence[UndoneChange]) -> str:
    if not undone:
        return instruction
    what = "a change" if len(undone) == 1 else f"{len(undone)} changes"
    lines = [
        "",
        "",
        f"Since your last turn in this conversation, the person used /undo to take back {what} of yours. "
        "Their files are back as they were before, so do not assume those changes are still in the site:",
    ]
    for change in undone:
        named = ", ".join(change.files[:FILES_NAMED]) + (" …" if len(change.files) > FILES_NAMED else "")
        lines.append(f"- {json.dumps(change.subject, ensure_ascii=False)} ({named})")
    return instruction.rstrip("\n") + "\n".join(lines)
