"""bin/redeploy (steps/cli/redeploy.py), from a shell."""

from __future__ import annotations

import os
import shlex
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from bucket_helpers import (
    REGION,
    bucket_bodies,
    new_bucket,
    shell,
    site,
    snapshot,
    write_build,
)

# ---------------------------------------------------------------- bin/redeploy, from a shell


@pytest.fixture
def operator(aws_env: dict[str, str], tmp_path: Path, s3: Any) -> dict[str, Any]:
    """A workspace checkout with a build, its client's bucket, and the operator's environment."""
    client_id = f"c{uuid.uuid4().hex[:10]}"
    checkout = tmp_path / "workspace" / client_id / "u1" / "site"
    files = site("v1", ["", "about"])
    write_build(checkout / "dist", files)
    bucket = f"edit-{client_id}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(aws_env, WORKSPACE_PATH=str(tmp_path / "workspace"), S3_BUCKET="edit-{clientId}")
    return {"checkout": checkout, "bucket": bucket, "env": env, "files": files}


def test_redeploy_help(operator):
    done = shell("bin/redeploy --help", operator["env"])
    assert done.returncode == 0
    assert "--dry-run" in done.stdout and "--bucket" in done.stdout and "checkout" in done.stdout


def test_redeploy_dry_run_prints_the_plan_and_changes_nothing(operator, s3):
    bucket = operator["bucket"]
    s3.put_object(Bucket=bucket, Key="old/index.html", Body=b"stale")
    s3.put_object(Bucket=bucket, Key="robots.txt", Body=operator["files"]["robots.txt"])
    before = snapshot(s3, bucket)
    done = shell(f"bin/redeploy {shlex.quote(str(operator['checkout']))} --dry-run", operator["env"])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"plan for {operator['checkout'] / 'dist'} -> s3://{bucket}:")
    assert "upload  about/index.html  (new)" in lines
    assert "skip    robots.txt  (unchanged (md5 matches ETag))" in lines
    assert lines[-1] == "delete  old/index.html  (not in the build)"
    assert len(lines) == 1 + len(operator["files"]) + 1
    assert snapshot(s3, bucket) == before


def test_redeploy_publishes_the_build_and_a_rerun_uploads_nothing(operator, s3):
    command = f"bin/redeploy {shlex.quote(str(operator['checkout']))}"
    done = shell(command, operator["env"])
    assert done.returncode == 0, done.stderr
    assert f"{len(operator['files'])} uploaded" in done.stdout
    assert bucket_bodies(s3, operator["bucket"]) == operator["files"]
    again = shell(command, operator["env"])
    assert again.returncode == 0, again.stderr
    assert "0 uploaded" in again.stdout and f"{len(operator['files'])} unchanged" in again.stdout


def test_redeploy_bucket_option_wins_over_the_template(operator, s3):
    other = new_bucket(s3)
    done = shell(f"bin/redeploy {shlex.quote(str(operator['checkout']))} --bucket {other}", operator["env"])
    assert done.returncode == 0, done.stderr
    assert bucket_bodies(s3, other) == operator["files"]
    assert bucket_bodies(s3, operator["bucket"]) == {}


@pytest.mark.parametrize(
    ("arguments", "message_part"),
    [
        ("/no/such/checkout", "no such checkout: /no/such/checkout"),
        ("{tmp}", "cannot tell the client id"),
        ("{checkout} --bucket missing-bucket-zz9", "NoSuchBucket"),
    ],
)
def test_redeploy_errors_are_one_clear_line(operator, tmp_path, arguments, message_part):
    arguments = arguments.format(tmp=shlex.quote(str(tmp_path)), checkout=shlex.quote(str(operator["checkout"])))
    done = shell(f"bin/redeploy {arguments}", operator["env"])
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("redeploy: error: ") and message_part in done.stderr


def test_redeploy_without_a_build_folder_fails_clearly(operator, s3):
    shutil.rmtree(operator["checkout"] / "dist")
    done = shell(f"bin/redeploy {shlex.quote(str(operator['checkout']))}", operator["env"])
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        == f"redeploy: error: build folder {operator['checkout'] / 'dist'} is missing: nothing deployed"
    )
    assert bucket_bodies(s3, operator["bucket"]) == {}
