"""`bin/redeploy`: publish a workspace checkout's current build folder by hand, with the worker's own code.

Same planner, same uploads, same order as the deploy step (steps.deploy_hash); `--dry-run` only lists
the bucket and prints the plan.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from steps.base import StepError
from steps.bucket import deploy_hash
from steps.bucket.content_types import CachePolicy
from steps.bucket.plan import Plan
from supervisor.common.logs import setup_logging
from supervisor.contract.config import Config, ConfigError, load_config

PROG = "redeploy"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """A wrong argument: one line on stderr, exit code 2."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Redeploy a workspace checkout's current build folder (BUILD_DIR, default dist/) to its "
        "preview bucket, uploading only files whose content changed and deleting stale objects last. "
        "Does not build. AWS credentials, AWS_REGION and AWS_ENDPOINT_URL come from the environment.",
    )
    p.add_argument("checkout", type=Path, help="the site checkout, e.g. {WORKSPACE_PATH}/{clientId}/{userId}/{repo}")
    p.add_argument("--bucket", help="target bucket (default: S3_BUCKET with the client id substituted)")
    p.add_argument("--client-id", help="client id for the S3_BUCKET template (default: read from the checkout path)")
    p.add_argument("--dry-run", action="store_true", help="print the plan (upload/skip/delete and why), change nothing")
    p.add_argument("--force", action="store_true", help="upload every file, e.g. after a Cache-Control change")
    return p


def resolve_bucket(args: argparse.Namespace, config: Config, checkout: Path) -> str:
    if args.bucket:
        return str(args.bucket)
    client_id = args.client_id or client_id_from_path(checkout, Path(config.workspace_path))
    if not client_id:
        raise UsageError(
            f"cannot tell the client id of {checkout}: it is not {config.workspace_path}/<clientId>/<userId>/<repo>; "
            "pass --client-id or --bucket"
        )
    return config.bucket_for(client_id)


def client_id_from_path(checkout: Path, workspace: Path) -> str | None:
    try:
        parts = checkout.resolve().relative_to(workspace.resolve()).parts
    except ValueError:
        return None
    return parts[0] if len(parts) == 3 else None


def print_plan(plan: Plan, build_dir: Path, bucket: str) -> None:
    print(
        f"plan for {build_dir} -> s3://{bucket}: {len(plan.uploads)} to upload ({plan.bytes_to_send} bytes), "
        f"{len(plan.skips)} unchanged, {len(plan.deletes)} to delete"
    )
    for action in plan.actions():
        print(f"{action.verb:<7} {action.key}  ({action.reason})")


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(require_input_queue=False)
    except ConfigError as error:
        raise UsageError(f"configuration error: {error}") from None
    checkout = args.checkout.expanduser()
    if not checkout.is_dir():
        raise UsageError(f"no such checkout: {checkout}")
    bucket = resolve_bucket(args, config, checkout)
    build_dir = checkout / config.build_dir
    client = deploy_hash.make_client(config)
    if args.dry_run:
        plan = deploy_hash.plan_deploy(build_dir, bucket, client, force=args.force, within=checkout)
        print_plan(plan, build_dir, bucket)
        return EXIT_OK
    policy = CachePolicy.from_config(config)
    # No part of BUILD_DIR below the checkout may be a link, as in the worker's deploy.
    report = deploy_hash.deploy_build(build_dir, bucket, client, policy, force=args.force, within=checkout)
    print(
        f"deployed {build_dir} to s3://{bucket}: {report.uploaded} uploaded, {report.skipped} unchanged, "
        f"{report.deleted} deleted, {report.bytes_sent} bytes sent"
    )
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging("text", PROG, level=logging.WARNING)  # the deploy's own warnings; the summary is printed
    try:
        return run(args)
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except StepError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted: nothing deleted; run it again to finish the deploy", file=sys.stderr)
        return EXIT_INTERRUPTED
