"""Commit messages (CONTRACT §3): a subject from the instruction, the full text, the files, trailers."""

from __future__ import annotations

import re

from supervisor.contract.command import Command

SUBJECT_LIMIT = 72
FILES_LISTED = 200
# Politeness that says nothing about the change; dropped from the front of the subject, repeatedly.
POLITE_PREFIX = re.compile(
    r"^(please|pls|plz|kindly|hey|hi|hello|ok(ay)?|so|"
    r"(can|could|would|will) you( please)?|i('d| would) like( you)? to|i want( you)? to|"
    r"(can|could) we|let's|lets)\b[\s,:!.-]*",
    re.IGNORECASE,
)


def subject_from(instruction: str, limit: int = SUBJECT_LIMIT) -> str:
    first = next((line.strip() for line in instruction.splitlines() if line.strip()), "")
    previous = None
    while previous != first:
        previous, first = first, POLITE_PREFIX.sub("", first, count=1).strip()
    first = first.rstrip("?!. ").strip() or "Apply chat instruction"
    first = first[0].upper() + first[1:]
    if len(first) <= limit:
        return first
    cut = first[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:-") + "…"


def _files_block(files: list[str]) -> str:
    shown = [f"- {path}" for path in files[:FILES_LISTED]]
    if len(files) > FILES_LISTED:
        shown.append(f"- … and {len(files) - FILES_LISTED} more")
    return "Files changed:\n" + "\n".join(shown)


def _trailers(command: Command, undoes: str | None) -> str:
    trailers = f"Session-Id: {command.session_id}\nCommand-Id: {command.command_id}\nUser-Id: {command.user_id}"
    return trailers + (f"\nUndoes-Command-Id: {undoes}" if undoes else "")


def commit_message(command: Command, files: list[str], *, wip: bool = False, undoes: str | None = None) -> str:
    """`undoes`: the command an undo takes back (steps/undo.py reads the trailer to find the one before)."""
    if undoes:
        subject = subject_from(f"Undo command {undoes}", SUBJECT_LIMIT - (5 if wip else 0))
    else:
        subject = subject_from(command.instruction, SUBJECT_LIMIT - (5 if wip else 0))
    if wip:
        subject = f"WIP: {subject}"
    instruction = command.instruction.strip("\n")
    return f"{subject}\n\n{instruction}\n\n{_files_block(files)}\n\n{_trailers(command, undoes)}\n"
