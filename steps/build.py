"""Step 4: build the site (`BUILD_COMMAND`, production mode, no telemetry)."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from steps.base import StepContext, StepError, StepResult, ok
from steps.job.untrusted import is_regular
from steps.processes import deps, shell
from steps.warm import client as warm
from steps.warm.site import why_not_warm
from supervisor.contract.codes import ErrorCode

log = logging.getLogger("steps.build")


def _npm_reason(error: shell.CommandFailed) -> str:
    """npm's own first error line (its last lines only point at a log file), else the failure."""
    for line in error.stderr.splitlines():
        text = line.removeprefix("npm error").removeprefix("npm ERR!").strip()
        if line.startswith(("npm error", "npm ERR!")) and text and not text.startswith("code "):
            return f"npm: {text}"[:500]
    return str(error)


def _link_in(checkout: Path, build_dir: str) -> Path | None:
    """The first part of checkout/build_dir, below the checkout, that is a symbolic link (never followed)."""
    path = checkout
    for part in Path(build_dir).parts:
        path = path / part
        if path.is_symlink():
            return path
    return None


def _remove_old_output(checkout: Path, build_dir: str) -> None:
    """A stale folder from an earlier build must never pass for this build's output. A link or file
    in its place (the agent may have made one) is removed, not followed: rmtree would leave it there."""
    output = checkout / build_dir
    link = _link_in(checkout, build_dir)
    if link is not None and link != output:  # removing under it would remove outside the checkout
        raise StepError(ErrorCode.BUILD_FAILED, f"build folder {build_dir}/ is under a symbolic link ({link})")
    if link is not None or (output.exists() and not output.is_dir()):
        output.unlink()
    else:
        shutil.rmtree(output, ignore_errors=True)


def _check_output(checkout: Path, build_dir: str) -> None:
    """The build's output must be a real, non-empty folder: the deploy publishes what is under it."""
    link = _link_in(checkout, build_dir)
    if link == checkout / build_dir:
        raise StepError(ErrorCode.BUILD_FAILED, f"build folder {build_dir}/ is a symbolic link, not a folder")
    if link is not None:
        raise StepError(ErrorCode.BUILD_FAILED, f"build folder {build_dir}/ is under a symbolic link ({link})")
    output = checkout / build_dir
    if not output.is_dir() or not _regular_files(output):
        raise StepError(ErrorCode.BUILD_FAILED, f"build finished but {build_dir}/ is missing or holds no file")


def _regular_files(output: Path) -> int:
    """Regular files under `output`, no link followed (links alone must not pass for a build: the aws-cli
    deploy would skip them and then delete the whole site with --delete)."""
    return sum(1 for folder, _, names in os.walk(output) for name in names if is_regular(Path(folder, name)))


def run(ctx: StepContext) -> StepResult:
    started = time.monotonic()
    output = ctx.build_folder
    try:
        try:
            installed = deps.ensure_dependencies(ctx.checkout, ctx.jobs)  # the agent may have changed the lockfile
        except shell.CommandFailed as error:
            raise StepError(ErrorCode.BUILD_FAILED, f"installing dependencies failed: {_npm_reason(error)}") from None
        if installed == deps.INSTALLED_OUT_OF_SYNC and deps.OUT_OF_SYNC_WARNING not in ctx.warnings:
            ctx.warnings.append(deps.OUT_OF_SYNC_WARNING)
        _remove_old_output(ctx.checkout, ctx.config.build_dir)
        # The build runs code the agent may have written: it gets no credentials.
        env = shell.scrubbed_env(NODE_ENV="production", ASTRO_TELEMETRY_DISABLED="1")
        building = time.monotonic()
        mode = "warm" if ctx.config.build_mode == "warm" and _built_warm(ctx) else "cold"
        if mode == "cold":
            # What a failed warm build left of BUILD_TIMEOUT_SECONDS: the limit is the step's, not each try's.
            timeout = ctx.config.build_timeout_seconds - (time.monotonic() - building)
            if timeout <= 0:
                raise warm.WarmTimedOut(f"did not finish within {ctx.config.build_timeout_seconds:g} s")
            # The build needs no registry (dependencies are installed): in the sandbox, only SANDBOX_ALLOWED_DOMAINS.
            try:
                ctx.jobs.run(list(ctx.config.build_command), env=env, npm=False, timeout=timeout)
            except shell.CommandTimedOut as error:  # said with the limit the operator set
                raise shell.CommandTimedOut(error.argv, ctx.config.build_timeout_seconds, error.tail) from None
    except (shell.CommandFailed, shell.CommandTimedOut, warm.WarmTimedOut) as error:
        raise StepError(ErrorCode.BUILD_FAILED, f"build: {error}") from None
    _check_output(ctx.checkout, ctx.config.build_dir)
    files = _regular_files(output)
    ctx.build_ok = True
    return ok(started, files=files, dependencies=installed, mode=mode)


def _built_warm(ctx: StepContext) -> bool:
    """Build in the workspace's warm server (steps/warm); False: it could not, build cold."""
    context = {"commandId": ctx.command.command_id, "sessionId": ctx.command.session_id}
    reason = why_not_warm(ctx.checkout, ctx.config.build_command)
    if reason is None:
        try:
            done = warm.build(ctx.checkout, ctx.config.build_timeout_seconds, context)
        except warm.WarmUnavailable as error:
            reason = str(error)
        else:
            log.info("built warm", extra={**context, "step": "build", "serverStarted": done.server_started})
            return True
    _remove_old_output(ctx.checkout, ctx.config.build_dir)  # whatever a failed warm build left
    log.info("building cold: %s", reason[:300], extra={**context, "step": "build"})
    return False
