"""Reading the CLI's `--output-format stream-json --verbose` output, one JSON event per line.

`system/init` names the session; each `assistant` message's tool_use blocks are what the agent is
doing (progress); the last line, `type: result`, is the outcome with cost, turns and refusals.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("steps.agent")
COMMAND_WORDS = 6
TARGET_CHARS = 120


@dataclass(frozen=True)
class ToolUse:
    tool: str
    target: str


def describe(tool: str, tool_input: Any, checkout: Path) -> str:
    """What a tool use is aimed at: a path relative to the checkout, or a command's first words."""
    if not isinstance(tool_input, dict):
        return ""
    for key in ("file_path", "notebook_path", "path"):
        value = tool_input.get(key)
        if isinstance(value, str) and value:
            path = Path(value)
            if path.is_absolute() and path.is_relative_to(checkout):
                return str(path.relative_to(checkout)) or "."
            return value[:TARGET_CHARS]
    command = tool_input.get("command")
    if isinstance(command, str):
        words = command.split()
        text = " ".join(words[:COMMAND_WORDS]) + (" …" if len(words) > COMMAND_WORDS else "")
        return text[:TARGET_CHARS]
    for key in ("pattern", "url", "description"):
        value = tool_input.get(key)
        if isinstance(value, str):
            return value[:TARGET_CHARS]
    return ""


@dataclass
class AgentStream:
    """Feed it stdout lines; it calls back on the session start and on each tool use."""

    checkout: Path
    on_tool: Callable[[ToolUse], None] = lambda _use: None
    on_session: Callable[[str], None] = lambda _session: None
    session_id: str | None = None
    result: dict[str, Any] | None = None
    tool_uses: list[ToolUse] = field(default_factory=list)

    @property
    def started(self) -> bool:
        """The CLI got as far as starting its session (a failed --resume never does)."""
        return self.session_id is not None

    def feed(self, line: str) -> bool:
        """Take one stdout line; True once the final result has arrived (the CLI may then linger)."""
        event = _json_object(line)
        if event is None:
            return False
        kind = event.get("type")
        if kind == "system" and event.get("subtype") == "init" and isinstance(event.get("session_id"), str):
            self.session_id = event["session_id"]
            self.on_session(self.session_id)
        elif kind == "assistant":
            for block in _content(event):
                if block.get("type") == "tool_use":
                    use = ToolUse(
                        str(block.get("name", "?")), describe(str(block.get("name")), block.get("input"), self.checkout)
                    )
                    self.tool_uses.append(use)
                    log.info("agent uses %s %s", use.tool, use.target, extra={"tool": use.tool, "target": use.target})
                    self.on_tool(use)
        elif kind == "result":
            self.result = event
            return True
        return False

    def denials(self) -> list[dict[str, str]]:
        """The tool calls the permissions refused, as {"tool", "target"}."""
        found = (self.result or {}).get("permission_denials") or []
        return [
            {
                "tool": str(item.get("tool_name", "?")),
                "target": describe(str(item.get("tool_name")), item.get("tool_input"), self.checkout),
            }
            for item in found
            if isinstance(item, dict)
        ]


def _json_object(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _content(event: dict[str, Any]) -> list[dict[str, Any]]:
    message = event.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    return [block for block in content if isinstance(block, dict)] if isinstance(content, list) else []
