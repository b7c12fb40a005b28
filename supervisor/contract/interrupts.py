"""Interrupt messages (issue 19): `{type: "interrupt", projectId | clientId, userId, repo?, reason?}`, the
anchor's way to stop the running command of a workspace when its input queue is FIFO (a FIFO queue holds
the next message of a group until the running one is deleted, so a newer command cannot interrupt).
Read from INTERRUPT_QUEUE_URL (a standard queue), and from any queue we read."""

from __future__ import annotations

import json
from dataclasses import dataclass

from supervisor.contract.command import CONTROL_CHARS, InvalidMessage, _slug_field
from supervisor.contract.remotes import repo_name_from_url, repo_url_for

MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class Interrupt:
    client_id: str
    user_id: str
    repo_name: str | None  # None: every workspace of that client's user
    reason: str

    def matches(self, workspace: tuple[str, str, str]) -> bool:
        client, user, repo = workspace
        return (client, user) == (self.client_id, self.user_id) and self.repo_name in (None, repo)

    @property
    def workspace_name(self) -> str | None:
        """`client/user/repo` (a lease's key), when the repository is known."""
        return f"{self.client_id}/{self.user_id}/{self.repo_name}" if self.repo_name else None


def parse_interrupt(raw: str | bytes, default_repo_url: str | None = None) -> Interrupt | None:
    """The interrupt a body asks for; None when it is no interrupt message (a command, or not JSON);
    InvalidMessage when it is one with a bad field."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(body, dict) or body.get("type") != "interrupt":
        return None
    client_field = "projectId" if body.get("projectId") is not None else "clientId"
    client_id = _slug_field(body, client_field, body.get(client_field), None)
    user_id = _slug_field(body, "userId", body.get("userId"), None)
    repo = body.get("repo")
    if repo is None and default_repo_url:
        repo = repo_url_for(default_repo_url, client_id)
    repo_name = None
    if repo is not None:
        if not isinstance(repo, str) or CONTROL_CHARS.search(repo):
            raise InvalidMessage("repo must be a repository name or URL")
        try:
            repo_name = repo_name_from_url(repo)
        except ValueError as error:
            raise InvalidMessage(str(error)) from None
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise InvalidMessage("reason must be a string")
    text = CONTROL_CHARS.sub(" ", reason or "").strip()[:MAX_REASON_CHARS]
    return Interrupt(client_id, user_id, repo_name, text or "an interrupt message asked for it")
