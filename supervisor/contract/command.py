"""Input messages (CONTRACT §1): parse every upstream shape into one validated Command.

Shapes (docs/CONTRACT.md):
- "command": ours and the anchor's first two, keyed by `commandId` (`chatThreadId`/`threadId`,
  `clientId`/`projectId` are aliases within it);
- "task": the anchor's newest (sent by a Step Functions state machine), keyed by `messageId`, with the
  instruction in `instruction`, `text` or `content`, an optional `branch` and `context` (`attachments`: any shape).
`taskToken` may come with any shape; it is never kept on the Command (the supervisor reads it from the body).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from supervisor.contract.actions import ACTION_UNDO, UNDO_INSTRUCTION, check_undo, read_action
from supervisor.contract.attachments import check_attachments, check_context
from supervisor.contract.branches import branch_for_thread, branch_refusal
from supervisor.contract.invalid import CONTROL_CHARS, LONE_SURROGATE, MAX_ID_LENGTH, InvalidMessage
from supervisor.contract.remotes import check_repo_url, repo_name_from_url, repo_url_for

MAX_INSTRUCTION_BYTES = 64 * 1024
SLUG_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

# Which shape a message came in (Command.message_shape).
SHAPE_COMMAND = "command"
SHAPE_TASK = "task"
MESSAGE_SHAPES = frozenset({SHAPE_COMMAND, SHAPE_TASK})
# The task shape's instruction may come under any one of these names.
INSTRUCTION_FIELDS = ("instruction", "text", "content")


@dataclass(frozen=True)
class Command:
    instruction: str
    command_id: str
    thread_id: str
    client_id: str
    user_id: str
    session_id: str
    branch: str
    repo_url: str
    repo_name: str
    timestamp: str | None
    # Added for the task shape; the defaults let records and job dicts written before them load unchanged.
    message_shape: str = SHAPE_COMMAND  # "command" or "task": which shape the message came in
    attachments: tuple[dict[str, str], ...] = field(default=(), hash=False)  # any shape; steps/attachments
    context: dict[str, Any] | None = field(default=None, hash=False)  # task shape only; not used yet
    action: str | None = None  # ACTION_UNDO, or None: the agent carries out the instruction

    def __post_init__(self) -> None:
        # A job dict or ledger record read back from JSON gives a list: keep one type, so a round trip is equal.
        if not isinstance(self.attachments, tuple):
            object.__setattr__(self, "attachments", tuple(self.attachments))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def workspace_key(self) -> tuple[str, str, str]:
        """Commands sharing this key share one checkout (CONTRACT §3)."""
        return (self.client_id, self.user_id, self.repo_name)


def _id_field(body: dict[str, Any], name: str, command_id: str | None) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidMessage(f"{name} must be a non-empty string", command_id)
    if len(value) > MAX_ID_LENGTH:
        raise InvalidMessage(f"{name} is longer than {MAX_ID_LENGTH} characters", command_id)
    if CONTROL_CHARS.search(value) or LONE_SURROGATE.search(value):
        raise InvalidMessage(f"{name} contains control characters or is not valid Unicode", command_id)
    return value


def _slug_field(body: dict[str, Any], name: str, value: Any, command_id: str | None) -> str:
    if not isinstance(value, str) or not SLUG_ID.fullmatch(value):
        raise InvalidMessage(
            f"{name} must match [a-z0-9] with inner hyphens, 1-63 characters, got {str(value)[:80]!r}",
            command_id,
        )
    return value


def check_branch(name: object, command_id: str | None = None) -> str:
    """A requested branch, or InvalidMessage saying why not (branch_refusal)."""
    refusal = branch_refusal(name)
    if refusal is not None:
        raise InvalidMessage(refusal, command_id)
    return name  # type: ignore[return-value]  # branch_refusal proved it a str


def body_shape(body: object) -> str:
    """ "task" for a body keyed by `messageId` (no `commandId`), else "command"; `commandId` wins when both."""
    if isinstance(body, dict) and body.get("commandId") is None and body.get("messageId") is not None:
        return SHAPE_TASK
    return SHAPE_COMMAND


def read_message_shape(raw: str | bytes) -> str:
    """Best effort for a message that may be invalid: its shape, "command" when it cannot be read."""
    try:
        return body_shape(json.loads(raw))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return SHAPE_COMMAND


def _timestamp(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidMessage("timestamp must be a number of milliseconds or an ISO-8601 string")
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidMessage("timestamp is not an ISO-8601 string") from None
        return value
    raise InvalidMessage("timestamp must be a number of milliseconds or an ISO-8601 string")


def _readable_id(value: Any) -> str | None:
    """An id fit to go into a response (whatever else is wrong with the message)."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LENGTH:
        return None
    return None if CONTROL_CHARS.search(value) or LONE_SURROGATE.search(value) else value


def read_ids(raw: str | bytes) -> tuple[str | None, str | None]:
    """Best effort for a message that may be invalid: (commandId, sessionId) where they can be read."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None, None
    if not isinstance(body, dict):
        return None, None
    session = next(
        (v for v in map(_readable_id, (body.get(k) for k in ("sessionId", "chatThreadId", "threadId"))) if v),
        None,
    )
    id_field = "messageId" if body_shape(body) == SHAPE_TASK else "commandId"
    return _readable_id(body.get(id_field)), session


def _check_instruction(name: str, instruction: str, command_id: str) -> str:
    if LONE_SURROGATE.search(instruction):
        raise InvalidMessage(f"{name} is not valid Unicode (a lone surrogate)", command_id)
    if len(instruction.encode()) > MAX_INSTRUCTION_BYTES:
        raise InvalidMessage(f"{name} is larger than 64 KiB", command_id)
    if "\x00" in instruction:
        raise InvalidMessage(f"{name} contains a NUL character", command_id)
    return instruction


def _instruction(body: dict[str, Any], shape: str, command_id: str) -> str:
    """Ours: `instruction`. The task shape: exactly one of `instruction`, `text`, `content` non-empty."""
    if shape != SHAPE_TASK:
        instruction = body.get("instruction")
        if not isinstance(instruction, str) or not instruction.strip():
            raise InvalidMessage("instruction must be a non-empty string", command_id)
        return _check_instruction("instruction", instruction, command_id)
    given = [name for name in INSTRUCTION_FIELDS if body.get(name) is not None]
    for name in given:
        if not isinstance(body[name], str):
            raise InvalidMessage(f"{name} must be a string", command_id)
    filled = [name for name in given if body[name].strip()]
    if len(filled) > 1:
        raise InvalidMessage(
            f"only one of instruction, text, content may be given, got {' and '.join(filled)}", command_id
        )
    if not filled:
        raise InvalidMessage("instruction (or text, or content) must be a non-empty string", command_id)
    return _check_instruction(filled[0], body[filled[0]], command_id)


def _action(body: dict[str, Any], shape: str, command_id: str) -> tuple[str | None, str]:
    """(action, instruction); an undo needs no instruction (supervisor/contract/actions.py)."""
    action = read_action(body, command_id)
    blank = ("", None)  # a whitespace-only instruction beside "action": "undo" is no instruction
    given = [name for name in INSTRUCTION_FIELDS if (v := body.get(name)) not in blank and str(v).strip()]
    instruction = _instruction(body, shape, command_id) if given or action is None else None
    action = check_undo(action, instruction, body.get("attachments"), command_id)
    return action, UNDO_INSTRUCTION if action == ACTION_UNDO else str(instruction)


def parse_command(raw: str | bytes, default_repo_url: str | None = None) -> Command:
    """Validate an SQS body; raise InvalidMessage with the reason (and commandId when readable)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidMessage("body is not valid UTF-8 JSON") from None
    except RecursionError:  # nested deeper than the parser goes
        raise InvalidMessage("body is nested too deeply") from None
    if not isinstance(body, dict):
        raise InvalidMessage("body must be a JSON object")

    shape = body_shape(body)
    if shape == SHAPE_TASK:
        command_id = _id_field(body, "messageId", _readable_id(body.get("messageId")))
    elif "commandId" not in body:
        raise InvalidMessage("commandId (or messageId) must be a non-empty string")
    else:
        command_id = _id_field(body, "commandId", _readable_id(body.get("commandId")))

    message_type = body.get("type")
    if message_type is not None and message_type != "work":
        raise InvalidMessage(f'type must be "work" when present, got {str(message_type)[:40]!r}', command_id)

    action, instruction = _action(body, shape, command_id)

    thread_field = "chatThreadId" if body.get("chatThreadId") is not None else "threadId"
    thread_id = _id_field(body, thread_field, command_id)
    session_id = _id_field(body, "sessionId", command_id) if body.get("sessionId") is not None else thread_id

    # projectId is the later name for clientId and wins when both are given.
    client_field = "projectId" if body.get("projectId") is not None else "clientId"
    client_id = _slug_field(body, client_field, body.get(client_field), command_id)
    user_id = _slug_field(body, "userId", body.get("userId"), command_id)

    repo_url = body.get("repoUrl")
    if repo_url is not None:
        if not isinstance(repo_url, str):
            raise InvalidMessage("repoUrl must be a string", command_id)
        repo_url = check_repo_url(repo_url, command_id)
    elif default_repo_url:
        repo_url = check_repo_url(repo_url_for(default_repo_url, client_id), command_id)
    else:
        raise InvalidMessage("repoUrl is missing and REPO_URL is not set", command_id)

    try:
        timestamp = _timestamp(body.get("timestamp"))
    except InvalidMessage as error:
        raise InvalidMessage(error.reason, command_id) from None

    # branch and context belong to the task shape; in ours they are unknown fields, ignored.
    branch = branch_for_thread(thread_id)
    context: dict[str, Any] | None = None
    if shape == SHAPE_TASK:
        if body.get("branch") is not None:
            branch = check_branch(body["branch"], command_id)
        context = check_context(body.get("context"), command_id)

    return Command(
        instruction=instruction,
        command_id=command_id,
        thread_id=thread_id,
        client_id=client_id,
        user_id=user_id,
        session_id=session_id,
        branch=branch,
        repo_url=repo_url,
        repo_name=repo_name_from_url(repo_url),
        timestamp=timestamp,
        message_shape=shape,
        attachments=check_attachments(body.get("attachments"), command_id),  # every shape (issue 20)
        context=context,
        action=action,
    )
