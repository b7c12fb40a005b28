"""Step 5: publish the build to the preview bucket, only after a complete, successful build."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from steps.base import StepContext, StepError, StepResult, ok, skipped
from steps.bucket import deploy_awscli
from steps.bucket.report import DeployReport
from steps.bucket.site import site_url
from steps.processes import shell
from supervisor.contract.codes import ErrorCode
from supervisor.contract.config import Config

Strategy = Callable[[StepContext, str, str], DeployReport]  # (ctx, bucket, prefix)


def _strategy(name: str) -> Strategy:
    if name == "aws-cli":
        return deploy_awscli.deploy
    from steps.bucket import deploy_hash  # boto3 is imported only when this strategy runs

    return deploy_hash.deploy


def unusable_strategy(config: Config) -> str | None:
    """Why DEPLOY_STRATEGY cannot work here, checked at start rather than failing every command's deploy."""
    if config.deploy_strategy == "aws-cli" and not Path(deploy_awscli.aws_executable()).is_absolute():
        return (
            "DEPLOY_STRATEGY=aws-cli, but no aws CLI is installed here (the image has it only when built with "
            "--build-arg PYTHON_EXTRAS=awscli); use DEPLOY_STRATEGY=hash or install the aws CLI"
        )
    return None


def prepare(ctx: StepContext) -> None:
    """Called as the build starts: the hash deploy's S3 client is made meanwhile, on a thread of its own
    (botocore loads its models: tens of ms the deploy would otherwise wait for). Not earlier: that is Python
    work, and beside the workspace step's it would slow that step by as much (the GIL)."""
    if ctx.config.deploy_strategy != "aws-cli":
        from steps.bucket import deploy_hash

        deploy_hash.make_client_early(ctx.config)


def run(ctx: StepContext) -> StepResult:
    started = time.monotonic()
    if not ctx.build_ok:
        return skipped(started, "no successful build")
    bucket = ctx.config.bucket_for(ctx.command.client_id)
    # "" for the shared site; `threads/{label}/` for the thread's own preview (PREVIEW_MODE=thread).
    prefix = ctx.config.deploy_prefix_for(ctx.command)
    ctx.check_lease("deploying")
    try:
        report = _strategy(ctx.config.deploy_strategy)(ctx, bucket, prefix)
    except (shell.CommandFailed, shell.CommandTimedOut) as error:
        raise StepError(ErrorCode.DEPLOY_FAILED, f"deploy to {site_url(bucket, prefix)}: {error}") from None
    where = {"prefix": prefix} if prefix else {}
    return ok(started, bucket=bucket, **where, **report.as_details())
