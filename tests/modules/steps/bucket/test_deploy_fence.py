"""Issue 18, defect 7: a write to shared state is fenced when it happens, not once before the step. A
container that lost its workspace during the deploy's uploads deletes nothing of what the new owner
deployed, and a push retried after the lease moved is never made. Moto's server for S3 and DynamoDB."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from bucket_helpers import bucket_bodies, context, site, write_build
from git_harness import harness_config

from steps import deploy
from steps.bucket import deploy_hash
from steps.fence import Fence, LeaseLost
from steps.git.ledger import Ledger
from steps.git.remote import Pusher
from steps.processes.shell import CommandFailed, CommandResult
from supervisor.contract.config import load_config
from supervisor.sharing.lease_table import create_table

WORKSPACE = "acme/u1/site"


@pytest.fixture
def leases(aws_env: dict[str, str]) -> tuple[Any, str]:
    client = boto3.client("dynamodb", region_name=aws_env["AWS_REGION"], endpoint_url=aws_env["AWS_ENDPOINT_URL"])
    table = f"leases-{uuid.uuid4().hex[:8]}"
    create_table(client, table)
    return client, table


def hold(client: Any, table: str, owner: str, fence: int) -> None:
    item = {"workspace": {"S": WORKSPACE}, "owner": {"S": owner}, "fence": {"N": str(fence)}, "beat": {"N": "0"}}
    client.put_item(TableName=table, Item=item)


def test_a_takeover_during_the_uploads_stops_the_deletions(aws_env, s3, bucket, leases, tmp_path, monkeypatch):
    client, table = leases
    config = load_config(
        {**aws_env, "WORKSPACE_PATH": str(tmp_path / "ws"), "S3_BUCKET": bucket}, require_input_queue=False
    )
    checkout = write_build(tmp_path / "site" / "dist", site("v1", ["", "about"])).parent
    hold(client, table, "a", 7)
    ctx = replace(context(config, checkout), fence=Fence(client, table, WORKSPACE, "a", 7))
    s3.put_object(Bucket=bucket, Key="new-owners-page/index.html", Body=b"deployed by b")  # not in a's build
    real_upload = deploy_hash.upload_all

    def uploads_then_taken_over(*args: Any, **kwargs: Any) -> int:
        sent = real_upload(*args, **kwargs)
        hold(client, table, "b", 8)  # b took the workspace over while a was uploading
        return sent

    monkeypatch.setattr(deploy_hash, "upload_all", uploads_then_taken_over)
    with pytest.raises(LeaseLost, match="moved to b"):
        deploy.run(ctx)
    assert bucket_bodies(s3, bucket)["new-owners-page/index.html"] == b"deployed by b"  # not deleted by a


class RejectedOnceGit:
    """git whose first push is rejected as non-fast-forward; records every push."""

    def __init__(self) -> None:
        self.pushes = 0

    def run(self, *args: str, **_: object) -> CommandResult:
        if args[0] == "push":
            self.pushes += 1
            if self.pushes == 1:
                raise CommandFailed(["git", *args], 1, ["fatal: unable to access 'x': Could not resolve host"])
        return CommandResult(0, "", "", 0.0)


def test_a_push_retried_after_the_lease_moved_is_never_made(leases, tmp_path: Path):
    client, table = leases
    hold(client, table, "a", 7)
    fence = Fence(client, table, WORKSPACE, "a", 7)
    git = RejectedOnceGit()

    def taken_over_while_waiting(_delay: float) -> None:
        hold(client, table, "b", 8)

    def fenced() -> None:
        fence.check("pushing")

    config = harness_config(tmp_path, PUSH_RETRY_SECONDS="60")
    pusher = Pusher(git, config, Ledger(tmp_path), sleep=taken_over_while_waiting, before_push=fenced)  # type: ignore[arg-type]
    with pytest.raises(LeaseLost):
        pusher.push("thread-t1")
    assert git.pushes == 1  # the retry, due after the takeover, was not made
