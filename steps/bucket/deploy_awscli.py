"""The seed's deploy: `aws s3 sync {BUILD_DIR} s3://{bucket} --delete` (DEPLOY_STRATEGY=aws-cli).

A thread's preview syncs into its folder (`s3://{bucket}/threads/{label}/`), which bounds `--delete`
to it. The shared site syncs with `--exclude 'threads/*'`: the CLI then neither uploads the build's own
threads/ folder nor deletes the thread previews (it still lists them: only the hash strategy does not).
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import sys
from pathlib import Path

from steps.base import StepContext, StepError
from steps.bucket.report import DeployReport
from steps.bucket.site import check_prefix, reserved_folder, site_url
from steps.processes import shell
from supervisor.contract.codes import ErrorCode

log = logging.getLogger("steps.deploy")
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


def real_build_folder(checkout: Path, build_dir: str) -> Path:
    """checkout/build_dir, each part below the checkout checked to be a real folder (lstat).

    The build runs code the agent may have written: a `dist -> ../../..` link must not hand the CLI the
    workspace (--no-follow-symlinks covers only what is inside the folder it is given). No process of the
    job is alive by now, so nothing can swap a part between this check and the sync.
    """
    folder = checkout / build_dir
    path = checkout
    for part in Path(build_dir).parts:
        path = path / part
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            raise StepError(ErrorCode.DEPLOY_FAILED, f"build folder {folder} is missing: nothing deployed") from None
        if stat.S_ISLNK(mode):
            what = "is a symbolic link, not a folder" if path == folder else f"is under a symbolic link ({path})"
            raise StepError(ErrorCode.DEPLOY_FAILED, f"build folder {folder} {what}: nothing deployed")
        if not stat.S_ISDIR(mode):
            raise StepError(ErrorCode.DEPLOY_FAILED, f"build folder {folder}: {path} is not a folder: nothing deployed")
    return path


def deploy(ctx: StepContext, bucket: str, prefix: str = "") -> DeployReport:
    source = real_build_folder(ctx.checkout, ctx.config.build_dir)
    reserved = reserved_folder(check_prefix(prefix))
    argv = [
        aws_executable(),
        "s3",
        "sync",
        str(source),
        site_url(bucket, prefix),
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
    refused = 0
    if reserved:
        argv += ["--exclude", f"{reserved}*"]  # matched on both sides: not uploaded, not deleted
        if os.path.lexists(source / reserved):
            refused = 1
            log.warning(
                "not deploying %s/%s: the thread previews' folder; the shared site leaves it alone", source, reserved
            )
    result = shell.run(argv, cwd=ctx.checkout, env=aws_env(ctx), timeout=SYNC_TIMEOUT_SECONDS)
    lines = result.stdout.splitlines()
    return DeployReport(
        strategy="aws-cli",
        uploaded=sum(1 for line in lines if line.startswith("upload:")),
        deleted=sum(1 for line in lines if line.startswith("delete:")),
        refused=refused,
    )
