"""The order of the steps and the failure policy between them (CONTRACT §3).

workspace → agent → commit → build → deploy → push. A failed workspace stops everything; an agent
failure still commits, builds and pushes what it changed; a failed build skips the deploy but the
commits are still pushed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from steps import agent, build, commit, deploy, push, workspace
from steps.base import Step, StepContext, StepError, StepResult, elapsed_ms
from steps.fence import LeaseLost
from steps.git.ledger import Ledger
from steps.processes import shell
from supervisor.common.logs import log_context
from supervisor.contract.codes import STEP_NAMES, ErrorCode
from supervisor.contract.responses import final_response

log = logging.getLogger("steps.pipeline")

RUNNERS: dict[str, Step] = {
    "workspace": workspace.run,
    "agent": agent.run,
    "commit": commit.run,
    "build": build.run,
    "deploy": deploy.run,
    "push": push.run,
}
STEPS: tuple[tuple[str, Step], ...] = tuple((name, RUNNERS[name]) for name in STEP_NAMES)  # the contract's order
# A failure of these leaves nothing sensible for the later steps to do.
STOPS_PIPELINE = frozenset({"workspace"})

# (step, "started" | "finished" | "failed", the result once there is one)
Reporter = Callable[[str, str, StepResult | None], None]


def run_step(name: str, step: Step, ctx: StepContext, report: Reporter) -> StepResult:
    started = time.monotonic()
    with log_context(step=name):
        report(name, "started", None)
        try:
            result = step(ctx)
        except StepError as error:
            result = StepResult(
                "failed", elapsed_ms(started), error.details, str(error), error.error_code, error.ends_command
            )
        except LeaseLost:
            raise  # not a step's failure: the worker stops without a response (steps/worker.py)
        except Exception as error:
            shell.raise_pending_stop()  # a step cut short by our own stop, held back: no crash of its own
            log.exception("step crashed")
            result = StepResult("failed", elapsed_ms(started), {}, f"{name}: {error}", ErrorCode.INTERNAL)
        level = logging.WARNING if result.status == "failed" else logging.INFO
        log.log(
            level,
            "step %s",
            result.status,
            extra={
                "durationMs": result.duration_ms,
                **result.details,
                **({"error": result.error} if result.error else {}),
            },
        )
        report(name, "failed" if result.status == "failed" else "finished", result)
    return result


def run_pipeline(ctx: StepContext, report: Reporter) -> dict[str, Any]:
    """Run every step under the policy and return the final response body."""
    started = time.monotonic()
    results: dict[str, StepResult] = {}
    for name, step in STEPS:
        if any(results.get(stop) and results[stop].status == "failed" for stop in STOPS_PIPELINE):
            results[name] = StepResult("skipped", 0, {"reason": "workspace unavailable"})
            continue
        ended = next((earlier for earlier, result in results.items() if result.ends_command), None)
        if ended:
            results[name] = StepResult("skipped", 0, {"reason": f"{ended} failed before changing anything"})
            continue
        if name == "build":  # made while the build runs in its own process: the GIL is free then
            deploy.prepare(ctx)
        results[name] = run_step(name, step, ctx, report)

    if ctx.checkout.is_dir():
        Ledger(ctx.checkout).end_command()  # finished here: not a command that died
    first_failure = next((r for r in results.values() if r.status == "failed"), None)
    return final_response(
        ctx.command,
        preview_url=ctx.config.preview_url_for(ctx.command),
        summary=ctx.agent_summary,
        files_changed=ctx.files_changed,
        commit=ctx.commit,
        steps=[{"name": n, "status": r.status, "durationMs": r.duration_ms} for n, r in results.items()],
        duration_ms=elapsed_ms(started),
        build_success=results["build"].status == "ok",
        deploy_success=results["deploy"].status == "ok",
        push_success=results["push"].status == "ok",
        error=first_failure.error if first_failure else None,
        error_code=first_failure.error_code if first_failure else None,
        extra={
            **({"deploy": results["deploy"].details} if results["deploy"].status == "ok" else {}),
            **({"warnings": ctx.warnings} if ctx.warnings else {}),
            **({"agent": ctx.agent_report} if ctx.agent_report is not None else {}),
            **({"attachments": ctx.attachments} if ctx.attachments else {}),
            **({"undone": ctx.taken_back.as_details(ctx.files_changed)} if ctx.taken_back else {}),
        },
    )
