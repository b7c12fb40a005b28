"""What a message may ask for in place of an instruction for the agent: today only `/undo`.

`"action": "undo"`, or an instruction that is exactly UNDO_INSTRUCTION (whitespace around it aside), takes
back the thread's last command (steps/undo.py). An undo needs no instruction; one that says anything
else, or carries attachments, is refused rather than guessed at.
"""

from __future__ import annotations

from typing import Any

from supervisor.contract.invalid import InvalidMessage

ACTION_UNDO = "undo"
ACTIONS = frozenset({ACTION_UNDO})
UNDO_INSTRUCTION = "/undo"


def read_action(body: dict[str, Any], command_id: str) -> str | None:
    """The message's `action`, checked: None when absent."""
    action = body.get("action")
    if action is not None and (not isinstance(action, str) or action not in ACTIONS):
        raise InvalidMessage(f'action must be "undo" when present, got {str(action)[:40]!r}', command_id)
    return action


def is_undo_instruction(instruction: str) -> bool:
    return instruction.strip() == UNDO_INSTRUCTION


def check_undo(action: str | None, instruction: str | None, attachments: object, command_id: str) -> str | None:
    """The action a message with this `action` field and instruction asks for (None: the agent's work)."""
    undo = action == ACTION_UNDO or (instruction is not None and is_undo_instruction(instruction))
    if not undo:
        return None
    if instruction is not None and not is_undo_instruction(instruction):
        raise InvalidMessage('an "undo" action takes no instruction (or exactly "/undo")', command_id)
    if attachments:
        raise InvalidMessage("an undo takes no attachments", command_id)
    return ACTION_UNDO
