"""What the agent is told about the attachments: a short note after the instruction, naming each placed
file by its path in the checkout and on the site, so it can look at it (Read) and use it.

Only the prompt the CLI gets carries it: the command's instruction (the commit message, the ledger, the
thread's memory of instructions) stays as the sender wrote it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def with_attachment_note(instruction: str, placed: Sequence[dict[str, Any]]) -> str:
    if not placed:
        return instruction
    lines = [
        "",
        "",
        f"The person attached {len(placed)} file(s) to this instruction. They are already in the site, "
        "placed by the editor (use the Read tool to look at them):",
    ]
    for item in placed:
        sent = f"; sent as {json.dumps(item['sentAs'], ensure_ascii=False)}" if item.get("sentAs") else ""
        lines.append(
            f"- {item['path']} (on the site: {item['sitePath']}; {item['contentType']}, {item['bytes']} bytes{sent})"
        )
    return instruction.rstrip("\n") + "\n".join(lines)
