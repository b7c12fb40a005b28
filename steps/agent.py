"""Step 2: the AI agent (Claude Code CLI) edits the checkout.

Runs `claude -p <instruction> --output-format stream-json --verbose …` (steps/claude/command_line.py)
in the checkout, continuing the chat thread's conversation when it has one. Tool uses become
progress events as they happen; the final result gives the summary, the cost and the tool calls the
permissions refused. Whatever the agent left running is ended before the commit.
"""

from __future__ import annotations

import logging
import time

from steps import undo
from steps.attachments.prepare import place_attachments
from steps.base import StepContext, StepError, StepResult, ok, skipped
from steps.claude.environment import AgentCredentialsError, agent_environment
from steps.claude.invocation import agent_report, failure_reason, refused, run_cli
from steps.claude.memory import AgentState
from supervisor.common import proctree
from supervisor.contract.actions import ACTION_UNDO
from supervisor.contract.codes import ErrorCode

log = logging.getLogger(__name__)
MAX_ERROR_CHARS = 2000


def already_done(ctx: StepContext) -> str | None:
    """The commit of this command when a previous delivery got that far (CONTRACT §3)."""
    # A WIP commit holds an interrupted run's partial edits: the agent did not finish, so it runs again.
    found = ctx.git.commits_with_trailer("Command-Id", ctx.command.command_id, skip_subject_prefix="WIP:")
    return found[0] if found else None


def _end_leftovers(ctx: StepContext) -> None:
    """End what the agent left running (`npm run dev &`), so nothing of it touches the commit or build."""
    left = ctx.jobs.end_leftovers() + proctree.end_descendants()
    if left:
        log.warning("ended processes the agent left running", extra={"processes": left})
        ctx.warnings.append(f"the agent left {len(left)} process(es) running ({', '.join(left)}); they were ended")


def run(ctx: StepContext) -> StepResult:
    started = time.monotonic()
    previous = already_done(ctx)
    if previous:
        ctx.agent_skipped_reason = "redelivered"
        ctx.commit = previous
        ctx.files_changed = ctx.git.files_in(previous)
        ctx.agent_summary = "This instruction was already carried out; finishing the remaining steps."
        return skipped(started, "already committed", commit=previous)
    if ctx.command.action == ACTION_UNDO:
        return undo.run(ctx)  # in place of the agent: a revert of the thread's last command
    ctx.attachments = place_attachments(ctx)  # fetched and checked before the agent runs; refused: StepError

    state = AgentState.for_command(ctx.config.workspace_path, ctx.command)
    state.prepare()
    try:
        env = agent_environment(ctx.config.agent, state, ctx.command)
    except AgentCredentialsError as error:
        raise StepError(ErrorCode.AGENT_FAILED, str(error)) from None
    remembered = state.session_of(ctx.command.branch)
    undone = state.undone_since_last_run(ctx.command.branch)  # told in the prompt (steps/claude/undo_note.py)
    with state.lent_to(ctx.jobs.identity):
        outcome = run_cli(ctx, state, env, remembered, undone)
        if outcome.resume_failed:
            log.warning(
                "could not resume the thread's conversation; starting a new one", extra={"reason": outcome.stderr_tail}
            )
            ctx.warnings.append(
                f"the chat's earlier conversation could not be resumed ({outcome.stderr_tail or 'no transcript'}); "
                "the agent started a new one"
            )
            outcome = run_cli(ctx, state, env, None, undone)
    if undone and outcome.stream.started:  # the conversation has the note now
        state.forget_undone(ctx.command.branch)
    # Not on an interrupt: then the supervisor ends the whole tree, and one ladder is enough.
    _end_leftovers(ctx)

    report = ctx.agent_report = agent_report(outcome)
    denials = report["permissionDenials"]
    if denials:
        ctx.warnings.append(f"the agent was not allowed to: {refused(denials)}"[:MAX_ERROR_CHARS])
    # The CLI's session id under its own name: `sessionId` in a log line is the chat's (CONTRACT §2).
    summary = {"agentSessionId": report["sessionId"], "resumed": report["resumed"], "numTurns": report["numTurns"]}
    log.info("agent finished", extra={**summary, "costUsd": report["costUsd"], "denials": len(denials)})
    if outcome.timed_out:
        raise StepError(
            ErrorCode.AGENT_TIMEOUT, f"the agent did not finish within {ctx.config.agent.timeout_seconds:g} s"
        )
    reason = failure_reason(outcome)
    if reason:
        raise StepError(ErrorCode.AGENT_FAILED, reason[:MAX_ERROR_CHARS])
    ctx.agent_summary = str(outcome.stream.result.get("result") or "") if outcome.stream.result else ""
    if denials and not ctx.git.is_dirty():
        raise StepError(
            ErrorCode.AGENT_FAILED,
            f"the agent changed nothing; it was not allowed to: {refused(denials)}"[:MAX_ERROR_CHARS],
        )
    return ok(started, agentSessionId=report["sessionId"], turns=report["numTurns"], costUsd=report["costUsd"])
