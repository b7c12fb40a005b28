"""One run of the CLI: started with our command line and environment, its stream read as it comes,
and what it amounted to (the response's `agent` object, or why it failed)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from steps.attachments.note import with_attachment_note
from steps.base import StepContext
from steps.claude.command_line import agent_argv
from steps.claude.memory import AgentState
from steps.claude.stream import AgentStream, ToolUse
from steps.claude.undo_note import UndoneChange, with_undo_note
from steps.job.runner import model_endpoints
from steps.processes import shell

# A finished `claude -p` has been seen to hang after printing its result (it waits for background
# tasks); give it this long to exit, then end its tree.
LINGER_AFTER_RESULT_SECONDS = 10.0


@dataclass
class AgentRun:
    """One CLI run: what it printed, and how it ended."""

    stream: AgentStream
    session_id: str
    resumed: bool
    exit_code: int = 0
    stderr_tail: str = ""  # the CLI's last line on stderr (its reason when it fails before a result)
    timed_out: bool = False

    @property
    def resume_failed(self) -> bool:
        # A resume that cannot find or read its transcript exits before the session starts.
        return self.resumed and self.exit_code != 0 and not self.stream.started


def run_cli(
    ctx: StepContext,
    state: AgentState,
    env: dict[str, str],
    resume: str | None,
    undone: Sequence[UndoneChange] = (),
) -> AgentRun:
    session_id = resume or str(uuid.uuid4())
    branch, command_id = ctx.command.branch, ctx.command.command_id

    def on_tool(use: ToolUse) -> None:
        ctx.on_progress("agent", "tool", {"tool": use.tool, "target": use.target})

    # Remembered as soon as the session exists, so an interrupted or killed run is resumed next time.
    stream = AgentStream(ctx.checkout, on_tool, lambda sid: state.remember(branch, sid, command_id))
    run = AgentRun(stream, session_id, resumed=resume is not None)
    # Undos and attachments are named in the prompt only; the command's instruction stays the sender's.
    prompt = with_attachment_note(with_undo_note(ctx.command.instruction, undone), ctx.attachments)
    argv = agent_argv(ctx.config.agent, prompt, session_id=session_id, resume=run.resumed)
    try:
        ctx.jobs.run(
            argv,
            env=env,
            network=model_endpoints(env),
            writable=[state.thread_dir],
            end_leftovers=False,  # the agent step ends them, and says so (steps/agent.py)
            timeout=ctx.config.agent.timeout_seconds,
            log_stdout=False,
            on_line=stream.feed,
            linger=LINGER_AFTER_RESULT_SECONDS,
        )
    except shell.CommandFailed as error:
        run.exit_code = error.exit_code
        # Not the mixed tail: its last line is usually the JSON result from stdout.
        lines = [line.strip() for line in error.stderr.splitlines() if line.strip()]
        run.stderr_tail = lines[-1][:500] if lines else (error.tail[-1] if error.tail else "")
    except shell.CommandTimedOut:
        run.timed_out = True  # the tree is ended; what it streamed until then still counts (cost, session)
    return run


def agent_report(run: AgentRun) -> dict[str, Any]:
    result = run.stream.result or {}
    return {
        "sessionId": run.stream.session_id or run.session_id,
        "resumed": run.resumed,
        "numTurns": result.get("num_turns"),
        "costUsd": result.get("total_cost_usd"),
        "permissionDenials": run.stream.denials(),
    }


def failure_reason(run: AgentRun) -> str | None:
    """Why the run failed, or None when it succeeded."""
    result = run.stream.result
    if result is None:
        if run.exit_code:
            return f"the agent exited with {run.exit_code}: {run.stderr_tail}"
        return "the agent printed no JSON result"
    if result.get("is_error") or result.get("subtype", "success") != "success" or run.exit_code:
        errors = result.get("errors") if isinstance(result.get("errors"), list) else []
        detail = result.get("result") or "; ".join(map(str, errors)) or run.stderr_tail
        return f"the agent reported an error ({result.get('subtype')}): {detail}"
    return None


def refused(denials: list[dict[str, str]]) -> str:
    return "; ".join(f"{d['tool']} {d['target']}".strip() for d in denials)
