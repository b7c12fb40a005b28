"""A preview per thread in one bucket (PREVIEW_MODE=thread): each thread's site is its folder
`threads/{label}/`, the shared site is the rest; neither deploy lists, replaces or deletes the other's
objects, with the hash strategy, the aws-cli one and bin/redeploy; bin/previews lists and prunes the
thread folders and nothing else. Against moto's server."""

from __future__ import annotations

import os
import shlex
import uuid
from pathlib import Path
from typing import Any

import pytest
from bucket_helpers import POLICY, bucket_bodies, context, shell, site, snapshot, write_build
from helpers import REGION, backdate_objects

from steps.base import StepError
from steps.bucket import deploy_awscli, deploy_hash
from steps.bucket.site import AFTER_THREADS, check_prefix, list_site
from supervisor.contract.previews import thread_prefix

A, B = thread_prefix("chat-a"), thread_prefix("Chat B")


def under(bodies: dict[str, bytes], prefix: str) -> dict[str, bytes]:
    """The objects of one site, by key relative to it."""
    return {key.removeprefix(prefix): body for key, body in bodies.items() if key.startswith(prefix)}


def shared(bodies: dict[str, bytes]) -> dict[str, bytes]:
    return {key: body for key, body in bodies.items() if not key.startswith("threads/")}


class Listings:
    """The parameters of every ListObjectsV2 call a client makes (which part of the bucket it read)."""

    def __init__(self, client: Any):
        self.calls: list[dict[str, Any]] = []
        client.meta.events.register("before-parameter-build.s3.ListObjectsV2", self._record)

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        self.calls.append({k: v for k, v in params.items() if k in ("Prefix", "StartAfter")})


def test_two_threads_and_the_shared_site_share_a_bucket_and_never_touch_each_other(config, s3, bucket, tmp_path):
    client = deploy_hash.make_client(config)
    shared_files = site("shared", ["", "about", "zoo"])  # "zoo/…" sorts after threads/: read by the second range
    deploy_hash.deploy_build(write_build(tmp_path / "shared", shared_files), bucket, client, POLICY)
    a_files, b_files = site("a1", ["", "about"]), site("b1", ["", "blog/one"])
    first = deploy_hash.deploy_build(write_build(tmp_path / "a", a_files), bucket, client, POLICY, prefix=A)
    deploy_hash.deploy_build(write_build(tmp_path / "b", b_files), bucket, client, POLICY, prefix=B)
    assert (first.uploaded, first.deleted) == (len(a_files), 0)  # the shared site's objects are not A's
    bodies = bucket_bodies(s3, bucket)
    assert (under(bodies, A), under(bodies, B), shared(bodies)) == (a_files, b_files, shared_files)

    # A changes one page and drops another: only A's folder is listed, written and cleaned.
    a_next = site("a1", [""])
    a_next["index.html"] = a_next["index.html"].replace(b"a1", b"a2, rewritten")
    listings = Listings(client)
    before_b = {k: v for k, v in snapshot(s3, bucket).items() if not k.startswith(A)}
    report = deploy_hash.deploy_build(write_build(tmp_path / "a", a_next), bucket, client, POLICY, prefix=A)
    assert (report.uploaded, report.skipped, report.deleted) == (1, len(a_next) - 1, 1)  # about/ gone from A only
    assert listings.calls == [{"Prefix": A}]
    after = snapshot(s3, bucket)
    assert {k: v for k, v in after.items() if not k.startswith(A)} == before_b  # B and the shared site: untouched
    assert under(bucket_bodies(s3, bucket), A) == a_next

    # The shared site drops a page: deleted there, and the threads' objects are never listed or deleted.
    shared_next = {k: v for k, v in shared_files.items() if not k.startswith("zoo/")}
    listings.calls.clear()
    before_threads = {k: v for k, v in snapshot(s3, bucket).items() if k.startswith("threads/")}
    report = deploy_hash.deploy_build(write_build(tmp_path / "shared", shared_next), bucket, client, POLICY)
    assert (report.uploaded, report.deleted) == (0, 1)
    assert listings.calls == [{}, {"StartAfter": AFTER_THREADS}]  # up to threads/, then after its last key
    assert {k: v for k, v in snapshot(s3, bucket).items() if k.startswith("threads/")} == before_threads
    assert shared(bucket_bodies(s3, bucket)) == shared_next


def test_a_shared_build_may_not_publish_into_the_threads_folder(config, s3, bucket, tmp_path, caplog):
    client = deploy_hash.make_client(config)
    deploy_hash.deploy_build(write_build(tmp_path / "a", {"index.html": b"A"}), bucket, client, POLICY, prefix=A)
    files = {"index.html": b"shared", f"{A}index.html": b"an impostor", "threads/loose.txt": b"x"}
    caplog.set_level("WARNING", logger="steps.deploy")
    report = deploy_hash.deploy_build(write_build(tmp_path / "shared", files), bucket, client, POLICY)
    assert (report.uploaded, report.refused) == (1, 1)  # the folder is refused once, as a link would be
    assert "thread previews" in caplog.text
    assert bucket_bodies(s3, bucket) == {"index.html": b"shared", f"{A}index.html": b"A"}
    # A thread's own build may hold a threads/ folder: it stays inside the thread's folder.
    report = deploy_hash.deploy_build(write_build(tmp_path / "a", files), bucket, client, POLICY, prefix=A)
    assert (report.uploaded, report.refused) == (3, 0)
    assert under(bucket_bodies(s3, bucket), A) == files
    # A build holding only the threads/ folder is an empty build for the shared site: nothing deployed.
    with pytest.raises(StepError, match=r"is empty \(1 refused\): nothing deployed"):
        deploy_hash.deploy_build(write_build(tmp_path / "only", {"threads/x/index.html": b"x"}), bucket, client, POLICY)


@pytest.mark.parametrize("prefix", ["threads/", "threads/a", "threads/A/", "threads/a/b/", "other/a/", "threads/a--b/"])
def test_a_prefix_is_the_shared_site_or_one_thread_folder(config, bucket, prefix):
    with pytest.raises(ValueError, match="not a site of the bucket"):
        check_prefix(prefix)
    with pytest.raises(ValueError):
        list_site(deploy_hash.make_client(config), bucket, prefix)
    assert check_prefix("") == "" and check_prefix(A) == A


def test_the_aws_cli_strategy_follows_the_same_rules(config, s3, bucket, tmp_path):
    s3.put_object(Bucket=bucket, Key=f"{B}index.html", Body=b"B")
    s3.put_object(Bucket=bucket, Key="stale.html", Body=b"old")
    checkout = tmp_path / "site"
    write_build(checkout / "dist", {"index.html": b"shared", "threads/x/index.html": b"an impostor"})
    report = deploy_awscli.deploy(context(config, checkout), bucket)
    assert (report.uploaded, report.deleted, report.refused) == (1, 1, 1)
    assert bucket_bodies(s3, bucket) == {"index.html": b"shared", f"{B}index.html": b"B"}
    s3.put_object(Bucket=bucket, Key=f"{A}stale.html", Body=b"old")
    write_build(checkout / "dist", {"index.html": b"A", "about/index.html": b"A about"})
    report = deploy_awscli.deploy(context(config, checkout), bucket, A)
    assert (report.uploaded, report.deleted, report.refused) == (2, 1, 0)  # --delete bounded by the folder
    bodies = bucket_bodies(s3, bucket)
    assert under(bodies, A) == {"index.html": b"A", "about/index.html": b"A about"}
    assert bodies["index.html"] == b"shared" and bodies[f"{B}index.html"] == b"B"


# ---------------------------------------------------------------- bin/redeploy --thread, bin/previews


@pytest.fixture
def operator(aws_env: dict[str, str], tmp_path: Path, s3: Any) -> dict[str, Any]:
    client_id = f"c{uuid.uuid4().hex[:10]}"
    checkout = tmp_path / "workspace" / client_id / "u1" / "site"
    bucket = f"edit-{client_id}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PREVIEW_MODE")}
    env.update(aws_env, WORKSPACE_PATH=str(tmp_path / "workspace"), S3_BUCKET="edit-{clientId}")
    return {"checkout": checkout, "bucket": bucket, "client": client_id, "env": env}


def test_redeploy_puts_a_thread_build_in_its_folder(operator, s3):
    files = site("v1", ["", "about"])
    write_build(operator["checkout"] / "dist", files)
    s3.put_object(Bucket=operator["bucket"], Key="index.html", Body=b"shared")
    checkout = shlex.quote(str(operator["checkout"]))
    thread_mode = {**operator["env"], "PREVIEW_MODE": "thread"}
    refused = shell(f"bin/redeploy {checkout}", thread_mode)
    assert refused.returncode == 2 and refused.stderr.strip().endswith("(--thread ID), or --shared")
    done = shell(f"bin/redeploy {checkout} --thread 'Chat B'", thread_mode)
    assert done.returncode == 0, done.stderr
    assert f"to s3://{operator['bucket']}/{B}: {len(files)} uploaded" in done.stdout
    bodies = bucket_bodies(s3, operator["bucket"])
    assert under(bodies, B) == files and shared(bodies) == {"index.html": b"shared"}
    bad = shell(f"bin/redeploy {checkout} --thread ''", operator["env"])
    assert bad.returncode == 2 and bad.stderr.startswith("redeploy: error: --thread must be a chat thread id")


def test_previews_lists_and_prunes_thread_folders_only(operator, s3):
    bucket, client = operator["bucket"], operator["client"]
    for key in (
        "index.html",
        "threads",
        "threads/loose.txt",
        f"{A}index.html",
        f"{A}about/index.html",
        f"{B}index.html",
    ):
        s3.put_object(Bucket=bucket, Key=key, Body=b"12345")
    assert backdate_objects(bucket, "", 40) == 6  # everything is old, the shared site included
    s3.put_object(Bucket=bucket, Key=f"{B}about/index.html", Body=b"new")  # B was deployed to just now
    listed = shell(f"bin/previews list --client {client}", operator["env"])
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == f"s3://{bucket}: 2 thread previews"
    assert lines[1].startswith(f"{A}  2 objects  10 bytes  newest ") and lines[1].endswith("(40.0 days ago)")
    assert lines[2].startswith(f"{B}  2 objects  8 bytes  newest ") and lines[2].endswith("(0.0 days ago)")
    before = bucket_bodies(s3, bucket)
    dry = shell(f"bin/previews prune --bucket {bucket} --older-than 30 --dry-run", operator["env"])
    assert dry.returncode == 0 and dry.stdout.startswith(f"would prune {A}  2 objects")
    assert bucket_bodies(s3, bucket) == before
    pruned = shell(f"bin/previews prune --client {client} --older-than 30", operator["env"])
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.splitlines()[-1] == f"kept 1 of 2 thread previews in s3://{bucket}"
    assert bucket_bodies(s3, bucket) == {k: v for k, v in before.items() if not k.startswith(A)}


@pytest.mark.parametrize(
    ("arguments", "message_part"),
    [
        ("list --client acme --older-than 3", "--older-than and --dry-run go with prune"),
        ("prune --client acme", "prune needs --older-than DAYS"),
        ("prune --client acme --older-than soon", "must be a number of days"),
        ("prune --client acme --older-than nan", "must be a number of days, 0 or more"),
        ("list --client Acme_1", "--client must be a client id"),
        ("list --bucket missing-bucket-zz9", "NoSuchBucket"),
        ("list", "one of the arguments --client --bucket is required"),
    ],
)
def test_previews_errors_are_one_clear_line(operator, arguments, message_part):
    done = shell(f"bin/previews {arguments}", operator["env"])
    assert done.returncode in (1, 2) and "Traceback" not in done.stderr
    assert message_part in done.stderr.strip().splitlines()[-1], done.stderr
