"""Step 2: the AI agent (Claude Code CLI) edits the checkout.

Runs `claude -p <instruction> --output-format stream-json --verbose …` (steps/claude/command_line.py)
in the checkout, continuing the chat thread's conversation when it has one. Tool uses become
progress events as they happen; the final result gives the summary, the cost and the tool calls the
permissions refused. Whatever the agent left running is ended before the commit.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from steps.base import StepContext, StepError, StepResult, ok, skipped
from steps.claude.command_line import agent_argv
from steps.claude.environment import AgentCredentialsError, agent_environment
from steps.claude.memory import AgentState
from steps.claude.stream import AgentStream, ToolUse
from steps.processes import shell
from supervisor.common import proctree
from supervisor.contract.codes import ErrorCode

log = logging.getLogger("steps.agent")
# A finished `claude -p` has been seen to hang after printing its result (it waits for background
# tasks); give it this long to exit, then end its tree.
LINGER_AFTER_RESULT_SECONDS = 10.0
MAX_ERROR_CHARS = 2000


@dataclass
class AgentRun:
    """One CLI run: what it printed, and how it ended."""

    stream: AgentStream
    session_id: str
    resumed: bool
    exit_code: int = 0
    stderr_tail: str = ""

    @property
    def resume_failed(self) -> bool:
        # A resume that cannot find or read its transcript exits before the session starts.
        return self.resumed and self.exit_code != 0 and not self.stream.started


def already_done(ctx: StepContext) -> str | None:
    """The commit of this command when a previous delivery got that far (CONTRACT §3)."""
    # A WIP commit holds an interrupted run's partial edits: the agent did not finish, so it runs again.
    found = ctx.git.commits_with_trailer("Command-Id", ctx.command.command_id, skip_subject_prefix="WIP:")
    return found[0] if found else None


def _run_cli(ctx: StepContext, state: AgentState, env: dict[str, str], resume: str | None) -> AgentRun:
    session_id = resume or str(uuid.uuid4())
    branch, command_id = ctx.command.branch, ctx.command.command_id

    def on_tool(use: ToolUse) -> None:
        ctx.on_progress("agent", "tool", {"tool": use.tool, "target": use.target})

    # Remembered as soon as the session exists, so an interrupted or killed run is resumed next time.
    stream = AgentStream(ctx.checkout, on_tool, lambda sid: state.remember(branch, sid, command_id))
    run = AgentRun(stream, session_id, resumed=resume is not None)
    argv = agent_argv(ctx.config.agent, ctx.command.instruction, session_id=session_id, resume=run.resumed)
    try:
        shell.run(
            argv,
            cwd=ctx.checkout,
            env=env,
            timeout=ctx.config.agent.timeout_seconds,
            log_stdout=False,
            on_line=stream.feed,
            linger=LINGER_AFTER_RESULT_SECONDS,
        )
    except shell.CommandFailed as error:
        run.exit_code = error.exit_code
        run.stderr_tail = error.tail[-1] if error.tail else ""
    return run


def _report(run: AgentRun) -> dict[str, Any]:
    result = run.stream.result or {}
    return {
        "sessionId": run.stream.session_id or run.session_id,
        "resumed": run.resumed,
        "numTurns": result.get("num_turns"),
        "costUsd": result.get("total_cost_usd"),
        "permissionDenials": run.stream.denials(),
    }


def _failure_reason(run: AgentRun) -> str | None:
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


def _end_leftovers(ctx: StepContext) -> None:
    """End what the agent left running (`npm run dev &`), so nothing of it touches the commit or build."""
    left = proctree.end_descendants()
    if left:
        log.warning("ended processes the agent left running", extra={"processes": left})
        ctx.warnings.append(f"the agent left {len(left)} process(es) running ({', '.join(left)}); they were ended")


def _refused(denials: list[dict[str, str]]) -> str:
    return "; ".join(f"{d['tool']} {d['target']}".strip() for d in denials)


def run(ctx: StepContext) -> StepResult:
    started = time.monotonic()
    previous = already_done(ctx)
    if previous:
        ctx.agent_skipped_reason = "redelivered"
        ctx.commit = previous
        ctx.files_changed = ctx.git.files_in(previous)
        ctx.agent_summary = "This instruction was already carried out; finishing the remaining steps."
        return skipped(started, "already committed", commit=previous)

    state = AgentState.for_command(ctx.config.workspace_path, ctx.command)
    state.prepare()
    try:
        env = agent_environment(ctx.config.agent, state, ctx.command)
    except AgentCredentialsError as error:
        raise StepError(ErrorCode.AGENT_FAILED, str(error)) from None
    remembered = state.session_of(ctx.command.branch)
    try:
        outcome = _run_cli(ctx, state, env, remembered)
        if outcome.resume_failed:
            log.warning(
                "could not resume the thread's conversation; starting a new one", extra={"reason": outcome.stderr_tail}
            )
            ctx.warnings.append(
                f"the chat's earlier conversation could not be resumed ({outcome.stderr_tail or 'no transcript'}); "
                "the agent started a new one"
            )
            outcome = _run_cli(ctx, state, env, None)
    except shell.CommandTimedOut:
        _end_leftovers(ctx)
        raise StepError(
            ErrorCode.AGENT_TIMEOUT, f"the agent did not finish within {ctx.config.agent.timeout_seconds:g} s"
        ) from None
    # Not on an interrupt: then the supervisor ends the whole tree, and one ladder is enough.
    _end_leftovers(ctx)

    report = ctx.agent_report = _report(outcome)
    denials = report["permissionDenials"]
    if denials:
        ctx.warnings.append(f"the agent was not allowed to: {_refused(denials)}"[:MAX_ERROR_CHARS])
    # The CLI's session id under its own name: `sessionId` in a log line is the chat's (CONTRACT §2).
    summary = {"agentSessionId": report["sessionId"], "resumed": report["resumed"], "numTurns": report["numTurns"]}
    log.info("agent finished", extra={**summary, "costUsd": report["costUsd"], "denials": len(denials)})
    reason = _failure_reason(outcome)
    if reason:
        raise StepError(ErrorCode.AGENT_FAILED, reason[:MAX_ERROR_CHARS])
    ctx.agent_summary = str(outcome.stream.result.get("result") or "") if outcome.stream.result else ""
    if denials and not ctx.git.is_dirty():
        raise StepError(
            ErrorCode.AGENT_FAILED,
            f"the agent changed nothing; it was not allowed to: {_refused(denials)}"[:MAX_ERROR_CHARS],
        )
    return ok(started, agentSessionId=report["sessionId"], turns=report["numTurns"], costUsd=report["costUsd"])
