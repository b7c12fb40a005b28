"""The seed's deploy: `aws s3 sync {BUILD_DIR} s3://{bucket} --delete` (DEPLOY_STRATEGY=aws-cli)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from steps.base import StepContext
from steps.bucket.report import DeployReport
from steps.processes import shell

SYNC_TIMEOUT_SECONDS = 1800


def aws_env(ctx: StepContext) -> dict[str, str]:
    """The deploy needs AWS credentials but never the git token."""
    env = shell.scrubbed_env(keep=shell.AWS_CREDENTIAL_VARIABLES, AWS_PAGER="")
    env["AWS_DEFAULT_REGION"] = ctx.config.aws_region
    if ctx.config.aws_endpoint_url:
        env["AWS_ENDPOINT_URL"] = ctx.config.aws_endpoint_url
    return env


def aws_executable() -> str:
    """The aws CLI of our own environment first (a venv need not be on PATH), else PATH's."""
    here = Path(sys.executable).parent
    return shutil.which("aws", path=os.pathsep.join([str(here), os.environ.get("PATH", os.defpath)])) or "aws"


def deploy(ctx: StepContext, bucket: str) -> DeployReport:
    source = ctx.build_folder
    argv = [
        aws_executable(),
        "s3",
        "sync",
        str(source),
        f"s3://{bucket}",
        "--delete",
        "--no-progress",
        # The build is written by code the agent may have changed: a link out of it (another site's
        # checkout, a host file) must not be published. The CLI follows links unless told not to.
        "--no-follow-symlinks",
        "--region",
        ctx.config.aws_region,
    ]
    if ctx.config.aws_endpoint_url:
        argv += ["--endpoint-url", ctx.config.aws_endpoint_url]
    result = shell.run(argv, cwd=ctx.checkout, env=aws_env(ctx), timeout=SYNC_TIMEOUT_SECONDS)
    lines = result.stdout.splitlines()
    return DeployReport(
        strategy="aws-cli",
        uploaded=sum(1 for line in lines if line.startswith("upload:")),
        deleted=sum(1 for line in lines if line.startswith("delete:")),
    )
