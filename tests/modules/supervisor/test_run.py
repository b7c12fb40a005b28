"""A run's own bookkeeping (supervisor/run.py): coalescing of tool progress."""

from __future__ import annotations

import json

from supervisor.contract.command import parse_command
from supervisor.run import Run

COMMAND = parse_command(
    json.dumps({"instruction": "Do it", "commandId": "c-1", "chatThreadId": "t1", "clientId": "acme", "userId": "u1"}),
    "/srv/site.git",
)
ROLE = "arn:aws:iam::123456789012:role/webordinary-agent-bedrock"


# Coalescing --------------------------------------------------------------------------------------


def test_tool_progress_is_coalesced_to_one_event_a_second():
    run = Run(COMMAND, message=None)  # type: ignore[arg-type]
    run.queue_progress({"n": 1})
    assert run.due_progress(100.0) == {"n": 1}
    run.queue_progress({"n": 2})
    run.queue_progress({"n": 3})
    assert run.due_progress(100.5) is None  # within the second: held, the newest kept
    assert run.due_progress(101.0) == {"n": 3} and run.due_progress(105.0) is None
    run.queue_progress({"n": 4})
    run.on_step_event({"step": "agent", "status": "finished", "outcome": "ok", "durationMs": 5})
    assert run.due_progress(110.0) is None  # the step ended: its tool events are old news
