"""The agent's state beside the workspace: the CLI's own folder and each chat thread's conversation.

`{WORKSPACE_PATH}/.agent/{clientId}/{userId}/{repo}/` holds
- `claude/`: CLAUDE_CONFIG_DIR, where the CLI keeps transcripts (so `--resume` finds them);
- `tmp/`: CLAUDE_CODE_TMPDIR;
- `threads/{branch}.json`: the Claude session id of the thread's last command.
It is outside every checkout (client ids cannot start with "."), so it is never committed or
deployed, and it lives as long as the workspace volume does: a restart keeps every chat's memory.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from supervisor.common.files import write_atomic
from supervisor.contract.command import Command


@dataclass(frozen=True)
class AgentState:
    root: Path

    @classmethod
    def for_command(cls, workspace_path: str, command: Command) -> AgentState:
        return cls(Path(workspace_path, ".agent", command.client_id, command.user_id, command.repo_name))

    @property
    def config_dir(self) -> Path:
        return self.root / "claude"

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    def prepare(self) -> None:
        for folder in (self.config_dir, self.tmp_dir, self.root / "threads"):
            folder.mkdir(parents=True, exist_ok=True)

    def _thread_file(self, branch: str) -> Path:
        # Branch names are `thread-…` made of [A-Za-z0-9._-]: a safe file name.
        return self.root / "threads" / f"{branch}.json"

    def session_of(self, branch: str) -> str | None:
        """The session id of the thread's last command, or None for a new thread (or an unreadable record)."""
        try:
            record = json.loads(self._thread_file(branch).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        session = record.get("sessionId") if isinstance(record, dict) else None
        return session if isinstance(session, str) and session else None

    def remember(self, branch: str, session_id: str, command_id: str) -> None:
        record = {"sessionId": session_id, "commandId": command_id, "updatedAt": time.time()}
        write_atomic(self._thread_file(branch), json.dumps(record))
