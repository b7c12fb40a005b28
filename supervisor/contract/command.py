"""Input messages (CONTRACT §1): parse both upstream shapes into one validated Command."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

MAX_INSTRUCTION_BYTES = 64 * 1024
MAX_ID_LENGTH = 128
SLUG_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
SAFE_REF_COMPONENT = re.compile(r"^[A-Za-z0-9._-]+$")
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A lone surrogate (JSON's "\ud800") is no text: it cannot be written as UTF-8 to git, a process or SQS.
LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Schemes git may use for a site remote; "ext::" and friends can run commands, so they are refused.
REMOTE_URL = re.compile(r"^((https?|ssh|git|file)://\S+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:\S+|/\S+)$")
REPO_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


class InvalidMessage(ValueError):
    """The message breaks a rule of CONTRACT §1. command_id is set when it could be read."""

    def __init__(self, reason: str, command_id: str | None = None, session_id: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.command_id = command_id
        self.session_id = session_id


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


def _git_accepts_ref(ref: str) -> bool:
    result = subprocess.run(["git", "check-ref-format", f"refs/heads/{ref}"], capture_output=True, check=False)
    return result.returncode == 0


def branch_for_thread(thread_id: str) -> str:
    """`thread-{id}`, or a slug plus a hash when the id is not a safe ref component."""
    name = thread_id if thread_id.startswith("thread-") else f"thread-{thread_id}"
    if SAFE_REF_COMPONENT.fullmatch(thread_id) and _git_accepts_ref(name):
        return name
    slug = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", thread_id.lower())).strip("-")[:60].strip("-")
    if slug.startswith("thread-"):
        slug = slug[len("thread-") :]
    digest = hashlib.sha256(thread_id.encode()).hexdigest()[:8]
    return f"thread-{slug}-{digest}" if slug else f"thread-{digest}"


def repo_name_from_url(url: str) -> str:
    """The last path part of a git URL without `.git`: the checkout's folder name."""
    tail = re.split(r"[/:]", url.rstrip("/"))[-1]
    name = tail[:-4] if tail.endswith(".git") else tail
    if not REPO_NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"cannot take a folder name from repository URL {url!r}")
    return name


def check_repo_url(url: str, command_id: str | None = None) -> str:
    if len(url) > 2048 or not REMOTE_URL.fullmatch(url) or CONTROL_CHARS.search(url) or LONE_SURROGATE.search(url):
        raise InvalidMessage("repoUrl must be an https, ssh, git or file URL (or an absolute path)", command_id)
    try:
        repo_name_from_url(url)
    except ValueError as error:
        raise InvalidMessage(str(error), command_id) from None
    return url


def repo_url_for(template: str, client_id: str) -> str:
    """REPO_URL with {clientId} substituted."""
    return template.replace("{clientId}", client_id)


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
    return _readable_id(body.get("commandId")), session


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

    command_id = _id_field(body, "commandId", _readable_id(body.get("commandId")))

    message_type = body.get("type")
    if message_type is not None and message_type != "work":
        raise InvalidMessage(f'type must be "work" when present, got {str(message_type)[:40]!r}', command_id)

    instruction = body.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        raise InvalidMessage("instruction must be a non-empty string", command_id)
    if LONE_SURROGATE.search(instruction):
        raise InvalidMessage("instruction is not valid Unicode (a lone surrogate)", command_id)
    if len(instruction.encode()) > MAX_INSTRUCTION_BYTES:
        raise InvalidMessage("instruction is larger than 64 KiB", command_id)
    if "\x00" in instruction:
        raise InvalidMessage("instruction contains a NUL character", command_id)

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

    return Command(
        instruction=instruction,
        command_id=command_id,
        thread_id=thread_id,
        client_id=client_id,
        user_id=user_id,
        session_id=session_id,
        branch=branch_for_thread(thread_id),
        repo_url=repo_url,
        repo_name=repo_name_from_url(repo_url),
        timestamp=timestamp,
    )
