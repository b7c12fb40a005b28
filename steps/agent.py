"""Step 2: the AI agent edits the checkout (`claude -p <instruction> --output-format json`)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from steps import shell
from steps.base import StepContext, StepError, StepResult, ok, skipped

log = logging.getLogger("steps.agent")
# A finished `claude -p` has been seen to hang after printing its result; give it this long to exit.
LINGER_AFTER_RESULT_SECONDS = 10.0


def agent_argv(agent_command: tuple[str, ...], instruction: str) -> list[str]:
    # A leading "-" would be read as an option by the agent's argument parser; a leading space keeps
    # the instruction a plain argument and means nothing to the model.
    prompt = f" {instruction}" if instruction.startswith("-") else instruction
    return [*agent_command, "-p", prompt, "--output-format", "json"]


def _parse_result(stdout: str) -> dict[str, Any] | None:
    """The Claude Code JSON result: the last line of stdout that is a JSON object."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    try:
        value = json.loads(stdout)  # pretty-printed over several lines
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _is_result_line(line: str) -> bool:
    if not line.startswith("{"):
        return False
    try:
        value = json.loads(line)
    except ValueError:
        return False
    return isinstance(value, dict) and value.get("type") == "result"


def already_done(ctx: StepContext) -> str | None:
    """The commit of this command when a previous delivery got that far (CONTRACT §3)."""
    # A WIP commit holds an interrupted run's partial edits: the agent did not finish, so it runs again.
    found = ctx.git.commits_with_trailer("Command-Id", ctx.command.command_id, skip_subject_prefix="WIP:")
    return found[0] if found else None


def run(ctx: StepContext) -> StepResult:
    started = time.monotonic()
    previous = already_done(ctx)
    if previous:
        ctx.agent_skipped_reason = "redelivered"
        ctx.commit = previous
        ctx.files_changed = ctx.git.files_in(previous)
        ctx.agent_summary = "This instruction was already carried out; finishing the remaining steps."
        return skipped(started, "already committed", commit=previous)

    argv = agent_argv(ctx.config.agent_command, ctx.command.instruction)
    try:
        result = shell.run(
            argv,
            cwd=ctx.checkout,
            env=shell.scrubbed_env(),
            timeout=ctx.config.agent_timeout_seconds,
            on_line=_is_result_line,
            linger=LINGER_AFTER_RESULT_SECONDS,
        )
    except shell.CommandTimedOut:
        raise StepError(
            "AGENT_TIMEOUT", f"the agent did not finish within {ctx.config.agent_timeout_seconds:g} s"
        ) from None
    except shell.CommandFailed as error:
        parsed = _parse_result("\n".join(error.tail))
        reason = (parsed or {}).get("result") or (error.tail[-1] if error.tail else "")
        raise StepError("AGENT_FAILED", f"the agent exited with {error.exit_code}: {reason}"[:2000]) from None

    parsed = _parse_result(result.stdout)
    if parsed is None:
        raise StepError("AGENT_FAILED", "the agent printed no JSON result")
    summary = str(parsed.get("result") or "")
    if parsed.get("is_error") or parsed.get("subtype", "success") != "success":
        raise StepError("AGENT_FAILED", f"the agent reported an error ({parsed.get('subtype')}): {summary}"[:2000])
    ctx.agent_summary = summary
    return ok(
        started,
        agentSessionId=parsed.get("session_id"),
        turns=parsed.get("num_turns"),
        costUsd=parsed.get("total_cost_usd"),
    )
