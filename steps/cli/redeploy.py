"""`bin/redeploy`: publish a workspace checkout's current build folder by hand, with the worker's own code.

Same planner, same uploads, same order as the deploy step (steps.deploy_hash); `--dry-run` only lists
the bucket and prints the plan. With `--thread ID` (required when PREVIEW_MODE=thread, unless
`--shared`) the build goes to that thread's preview, `threads/{label}/`, as the worker's deploy would.
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
from steps.bucket.digests import DigestCache, cache_folder_for
from steps.bucket.plan import Plan
from steps.bucket.site import site_url
from supervisor.common.logs import setup_logging
from supervisor.contract.config import Config, ConfigError, load_config
from supervisor.contract.invalid import CONTROL_CHARS, LONE_SURROGATE, MAX_ID_LENGTH
from supervisor.contract.previews import THREAD, thread_prefix

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
    where = p.add_mutually_exclusive_group()
    where.add_argument("--thread", metavar="ID", help="the chat thread whose preview (threads/{label}/) to redeploy")
    where.add_argument("--shared", action="store_true", help="the shared site, also when PREVIEW_MODE=thread")
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


def resolve_prefix(args: argparse.Namespace, config: Config) -> str:
    """ "" for the shared site, `threads/{label}/` for --thread; PREVIEW_MODE=thread needs one of the two."""
    if args.thread is not None:
        thread = args.thread
        if not thread or len(thread) > MAX_ID_LENGTH or CONTROL_CHARS.search(thread) or LONE_SURROGATE.search(thread):
            raise UsageError(f"--thread must be a chat thread id (1 to {MAX_ID_LENGTH} characters, no control ones)")
        return thread_prefix(args.thread)
    if config.preview_mode == THREAD and not args.shared:
        raise UsageError("PREVIEW_MODE is thread: name the thread whose preview to redeploy (--thread ID), or --shared")
    return ""


def client_id_from_path(checkout: Path, workspace: Path) -> str | None:
    try:
        parts = checkout.resolve().relative_to(workspace.resolve()).parts
    except ValueError:
        return None
    return parts[0] if len(parts) == 3 else None


def print_plan(plan: Plan, build_dir: Path, site: str) -> None:
    print(
        f"plan for {build_dir} -> {site}: {len(plan.uploads)} to upload ({plan.bytes_to_send} bytes), "
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
    prefix = resolve_prefix(args, config)
    build_dir = checkout / config.build_dir
    client = deploy_hash.make_client(config)
    digests = DigestCache.load(cache_folder_for(checkout))  # the worker's cache, when the checkout is ours
    if args.dry_run:
        plan = deploy_hash.plan_deploy(
            build_dir, bucket, client, prefix=prefix, force=args.force, within=checkout, digests=digests
        )
        print_plan(plan, build_dir, site_url(bucket, prefix))
        return EXIT_OK
    policy = CachePolicy.from_config(config)
    # No part of BUILD_DIR below the checkout may be a link, as in the worker's deploy.
    report = deploy_hash.deploy_build(
        build_dir, bucket, client, policy, prefix=prefix, force=args.force, within=checkout, digests=digests
    )
    print(
        f"deployed {build_dir} to {site_url(bucket, prefix)}: {report.uploaded} uploaded, {report.skipped} unchanged, "
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
