"""`bin/previews`: list a client's thread previews, or prune those nobody has deployed to for a while.

A thread preview is the folder `threads/{label}/` of the client's bucket (PREVIEW_MODE=thread,
supervisor/contract/previews.py). `list` shows each with its object count, size and newest object;
`prune --older-than DAYS` deletes every object of the previews whose newest object is older than that.
Nothing outside `threads/` is ever listed or deleted: the shared site stays as it is. A pruned thread
that gets a new command is deployed whole again (the hash deploy uploads what its folder lacks).
AWS credentials, AWS_REGION and AWS_ENDPOINT_URL come from the environment, S3_BUCKET names the bucket.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from steps.bucket import deploy_hash
from supervisor.contract.command import SLUG_ID
from supervisor.contract.config import ConfigError, load_config
from supervisor.contract.previews import THREADS_PREFIX

PROG = "previews"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
SECONDS_A_DAY = 86400
LONG_AGO = datetime.min.replace(tzinfo=UTC)  # older than any object


class UsageError(Exception):
    """A wrong argument: one line on stderr, exit code 2."""


@dataclass
class Preview:
    """One thread's folder as listed: its keys, their total size, the newest LastModified."""

    prefix: str
    keys: list[str] = field(default_factory=list)
    size: int = 0
    newest: datetime = LONG_AGO

    def age_days(self, now: datetime) -> float:
        return (now - self.newest).total_seconds() / SECONDS_A_DAY


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("action", choices=("list", "prune"))
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--client", metavar="ID", help="the client id; its bucket is S3_BUCKET with it substituted")
    where.add_argument("--bucket", help="the bucket itself")
    p.add_argument("--older-than", metavar="DAYS", type=days, help="prune: previews whose newest object is older")
    p.add_argument("--dry-run", action="store_true", help="prune: print what would go, delete nothing")
    return p


def days(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of days, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of days, 0 or more, got {raw!r}")
    return value


def thread_previews(client: Any, bucket: str) -> list[Preview]:
    """Every `threads/{label}/` folder of the bucket (a key straight under threads/ belongs to none)."""
    found: dict[str, Preview] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=THREADS_PREFIX):
        for item in page.get("Contents", []):
            label, slash, _ = item["Key"].removeprefix(THREADS_PREFIX).partition("/")
            if not slash:
                continue
            preview = found.setdefault(label, Preview(f"{THREADS_PREFIX}{label}/"))
            preview.keys.append(item["Key"])
            preview.size += item["Size"]
            preview.newest = max(preview.newest, item["LastModified"])
    return [found[label] for label in sorted(found)]


def describe(preview: Preview, now: datetime) -> str:
    newest = preview.newest.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"{preview.prefix}  {len(preview.keys)} objects  {preview.size} bytes  "
        f"newest {newest} ({preview.age_days(now):.1f} days ago)"
    )


def delete_keys(client: Any, bucket: str, keys: list[str]) -> None:
    """DeleteObjects in batches; every key is under threads/ (checked again here, whatever listed it)."""
    if any(not key.startswith(THREADS_PREFIX) for key in keys):
        raise RuntimeError("refusing to delete outside threads/")
    for start in range(0, len(keys), deploy_hash.DELETE_BATCH):
        batch = [{"Key": key} for key in keys[start : start + deploy_hash.DELETE_BATCH]]
        errors = client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True}).get("Errors", [])
        if errors:
            first = errors[0]
            raise DeleteFailed(f"{len(errors)} objects not deleted, first {first.get('Key')}: {first.get('Code')}")


class DeleteFailed(Exception):
    """S3 kept some objects of a preview being pruned: one line on stderr, exit code 1."""


def prune(client: Any, bucket: str, older_than: float, dry_run: bool, now: datetime) -> list[str]:
    lines = []
    previews = thread_previews(client, bucket)
    cutoff = now - timedelta(days=older_than)
    old = [p for p in previews if p.newest < cutoff]
    for preview in old:
        if not dry_run:
            delete_keys(client, bucket, preview.keys)
        lines.append(f"{'would prune' if dry_run else 'pruned'} {describe(preview, now)}")
    lines.append(f"kept {len(previews) - len(old)} of {len(previews)} thread previews in s3://{bucket}")
    return lines


def run(args: argparse.Namespace) -> int:
    if args.action == "prune" and args.older_than is None:
        raise UsageError("prune needs --older-than DAYS")
    if args.action == "list" and (args.older_than is not None or args.dry_run):
        raise UsageError("--older-than and --dry-run go with prune")
    if args.client is not None and not SLUG_ID.fullmatch(args.client):
        raise UsageError(f"--client must be a client id ([a-z0-9] with inner hyphens, 1-63), got {args.client!r}")
    try:
        config = load_config(require_input_queue=False)
    except ConfigError as error:
        raise UsageError(f"configuration error: {error}") from None
    bucket = args.bucket or config.bucket_for(args.client)
    client = deploy_hash.make_client(config, full_responses=True)  # LastModified: a datetime
    try:
        if args.action == "list":
            now = datetime.now(UTC)
            previews = thread_previews(client, bucket)
            lines = [f"s3://{bucket}: {len(previews)} thread previews", *(describe(p, now) for p in previews)]
        else:
            lines = prune(client, bucket, args.older_than, args.dry_run, datetime.now(UTC))
    except (DeleteFailed, BotoCoreError, ClientError) as error:
        reason = " ".join(str(error).split())  # some botocore messages span lines
        print(f"{PROG}: error: s3://{bucket}: {reason}"[:500], file=sys.stderr)
        return EXIT_FAILED
    print("\n".join(lines))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return run(args)
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
