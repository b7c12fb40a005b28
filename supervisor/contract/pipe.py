"""Worker → supervisor events: one JSON object per line on a dedicated pipe.

The worker never talks to SQS; it reports step progress and its final response here.
"""

from __future__ import annotations

import json
import os
from typing import Any

EVENT_FD_VARIABLE = "WEBORDINARY_EVENT_FD"
PARENT_PID_VARIABLE = "WEBORDINARY_SUPERVISOR_PID"


class EventWriter:
    def __init__(self, fd: int | None):
        self._fd = fd

    @classmethod
    def from_environment(cls) -> EventWriter:
        raw = os.environ.get(EVENT_FD_VARIABLE)
        return cls(int(raw) if raw and raw.isdigit() else None)

    def send(self, event: dict[str, Any]) -> None:
        if self._fd is None:
            return
        data = (json.dumps(event, ensure_ascii=False) + "\n").encode()
        view = memoryview(data)
        while view:  # a large response may not fit in one write to the pipe
            written = os.write(self._fd, view)
            view = view[written:]

    def step(self, step: str, status: str, result: Any = None) -> None:
        """Progress of a step; once it ended, its outcome (ok/skipped/failed) and duration too."""
        event: dict[str, Any] = {"event": "step", "step": step, "status": status}
        if result is not None:
            event.update(outcome=result.status, durationMs=result.duration_ms)
        self.send(event)

    def progress(self, step: str, status: str, fields: dict[str, Any]) -> None:
        """Progress within a step (the agent's tool uses); the supervisor decides what reaches the chat."""
        self.send({"event": "progress", "step": step, "status": status, **fields})

    def result(self, response: dict[str, Any]) -> None:
        self.send({"event": "result", "response": response})


def parse_event(line: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and "event" in event else None
