"""The content-hash deploy (steps/bucket/deploy_hash.py) against moto's server: counts, failures,
links, multipart, an interrupt, a real Astro rebuild."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from bucket_helpers import (
    POLICY,
    MiB,
    broken_references,
    bucket_bodies,
    client_with_calls,
    context,
    md5,
    site,
    snapshot,
    write_build,
)
from helpers import ROOT

from steps import deploy
from steps.base import StepError
from steps.bucket import deploy_hash
from supervisor.contract.config import Config, load_config

# ---------------------------------------------------------------- deploys against moto


@pytest.fixture
def config_for_bucket(aws_env: dict[str, str], tmp_path: Path, bucket: str) -> Config:
    """deploy.run names the bucket from S3_BUCKET; point the template at this test's bucket."""
    env = {**aws_env, "WORKSPACE_PATH": str(tmp_path / "workspace"), "S3_BUCKET": bucket}
    return load_config(env, require_input_queue=False)


def test_second_deploy_of_an_unchanged_build_uploads_nothing(config_for_bucket, s3, bucket, tmp_path):
    files = site("v1", ["", "about", "blog/one", "blog/café au lait+more"])  # keys the listing must decode
    checkout = write_build(tmp_path / "site" / "dist", files).parent
    first = deploy.run(context(config_for_bucket, checkout))
    assert first.status == "ok", first
    assert first.details == {
        "bucket": bucket,
        "strategy": "hash",
        "uploaded": len(files),
        "skipped": 0,
        "deleted": 0,
        "bytesSent": sum(map(len, files.values())),
    }
    write_build(checkout / "dist", files)  # rebuilt: same content, fresh mtimes
    client, calls = client_with_calls(config_for_bucket)
    report = deploy_hash.deploy_build(checkout / "dist", bucket, client, POLICY)
    assert (report.uploaded, report.skipped, report.deleted, report.bytes_sent) == (0, len(files), 0, 0)
    assert calls.names() == ["ListObjectsV2"]
    assert bucket_bodies(s3, bucket) == files


def test_deploy_step_reports_counts_and_logs_one_line(config_for_bucket, s3, bucket, tmp_path, caplog):
    files = site("v1", ["", "about"])
    checkout = write_build(tmp_path / "site" / "dist", files).parent
    caplog.set_level("INFO", logger="steps.deploy")
    result = deploy.run(context(config_for_bucket, checkout))
    assert result.status == "ok", result
    assert result.details["bucket"] == bucket
    assert result.details["uploaded"] == len(files)
    lines = [r for r in caplog.records if r.name == "steps.deploy"]
    assert len(lines) == 1
    assert (lines[0].uploaded, lines[0].skipped, lines[0].deleted) == (len(files), 0, 0)
    assert lines[0].bytesSent == sum(map(len, files.values()))


def test_a_one_page_change_uploads_only_that_page(config, s3, bucket, tmp_path):
    files = site("v1", ["", "about", "blog/one"])
    deploy_hash.deploy_build(write_build(tmp_path / "dist", files), bucket, deploy_hash.make_client(config), POLICY)
    files["about/index.html"] = files["about/index.html"].replace(b"about v1", b"about us, rewritten")
    client, calls = client_with_calls(config)
    report = deploy_hash.deploy_build(write_build(tmp_path / "dist", files), bucket, client, POLICY)
    assert (report.uploaded, report.skipped, report.deleted) == (1, len(files) - 1, 0)
    assert report.bytes_sent == len(files["about/index.html"])
    assert calls.put_keys() == ["about/index.html"]
    assert bucket_bodies(s3, bucket) == files


def test_a_removed_page_is_deleted_after_the_uploads(config, s3, bucket, tmp_path):
    deploy_hash.deploy_build(
        write_build(tmp_path / "dist", site("v1", ["", "about", "blog/one"])),
        bucket,
        deploy_hash.make_client(config),
        POLICY,
    )
    files = site("v2", ["", "about"])  # blog/one removed, css and chunks renamed
    client, calls = client_with_calls(config)
    report = deploy_hash.deploy_build(write_build(tmp_path / "dist", files), bucket, client, POLICY)
    assert bucket_bodies(s3, bucket) == files
    stale = {"blog/one/index.html", *(k for k in site("v1", []) if k not in files)}
    assert report.deleted == len(stale) == 1 + 4  # the page, the v1 css and three v1 chunks
    puts = calls.put_keys()
    first_page = min(i for i, key in enumerate(puts) if key.endswith(".html"))
    assert all(not key.endswith(".html") for key in puts[:first_page])
    assert all(key.endswith(".html") for key in puts[first_page:])
    assert calls.names()[-1] == "DeleteObjects"
    assert "PutObject" not in calls.names()[calls.names().index("DeleteObjects") :]


@pytest.mark.parametrize("build_state", ["missing", "empty"])
def test_failed_build_leaves_the_bucket_byte_for_byte_unchanged(config, s3, bucket, tmp_path, build_state):
    checkout = tmp_path / "site"
    deploy_hash.deploy_build(
        write_build(checkout / "dist", site("v1", ["", "about"])), bucket, deploy_hash.make_client(config), POLICY
    )
    before = snapshot(s3, bucket)
    shutil.rmtree(checkout / "dist")
    if build_state == "empty":
        (checkout / "dist" / "sub").mkdir(parents=True)  # folders but no file
    with pytest.raises(StepError) as failure:
        deploy_hash.deploy(context(config, checkout), bucket)
    assert failure.value.error_code == "DEPLOY_FAILED"
    assert "nothing deployed" in str(failure.value)
    # The step itself never even tries when the build step did not succeed.
    ctx = context(config, checkout)
    ctx.build_ok = False
    assert deploy.run(ctx).status == "skipped"
    assert snapshot(s3, bucket) == before


def test_s3_errors_become_one_line_deploy_failed(config, tmp_path):
    build = write_build(tmp_path / "dist", {"index.html": b"<p>"})
    with pytest.raises(StepError) as failure:
        deploy_hash.deploy_build(build, f"missing-{uuid.uuid4().hex[:8]}", deploy_hash.make_client(config), POLICY)
    assert failure.value.error_code == "DEPLOY_FAILED"
    assert "NoSuchBucket" in str(failure.value) and "\n" not in str(failure.value)


@pytest.mark.parametrize("strategy", ["hash", "aws-cli"])
def test_a_link_out_of_the_build_is_not_published(aws_env, s3, bucket, tmp_path, strategy):
    secret = tmp_path / "secret.txt"
    secret.write_text("host file")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "other-site.html").write_text("another tenant")
    checkout = tmp_path / "site"
    build = write_build(checkout / "dist", {"index.html": b"<p>"})
    (build / "leak.txt").symlink_to(secret)
    (build / "tenant").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    env = {**aws_env, "WORKSPACE_PATH": str(tmp_path), "DEPLOY_STRATEGY": strategy, "S3_BUCKET": bucket}
    deploy.run(context(load_config(env, require_input_queue=False), checkout))
    assert set(bucket_bodies(s3, bucket)) == {"index.html"}


def test_an_unchanged_multipart_file_is_not_uploaded_again(config, s3, bucket, tmp_path, monkeypatch):
    monkeypatch.setattr(deploy_hash, "MULTIPART_THRESHOLD", 5 * MiB)  # S3's smallest part size
    monkeypatch.setattr(deploy_hash, "MULTIPART_CHUNKSIZE", 5 * MiB)
    big = os.urandom(6 * MiB)
    files = {"media/video.webp": big, "index.html": b"<p>"}
    deploy_hash.deploy_build(write_build(tmp_path / "dist", files), bucket, deploy_hash.make_client(config), POLICY)
    head = s3.head_object(Bucket=bucket, Key="media/video.webp")
    assert head["ETag"].strip('"').endswith("-2")  # really multipart: the ETag is not the MD5
    assert head["Metadata"] == {"md5": md5(big)}

    client, calls = client_with_calls(config)
    report = deploy_hash.deploy_build(write_build(tmp_path / "dist", files), bucket, client, POLICY)
    assert (report.uploaded, report.skipped, report.bytes_sent) == (0, 2, 0)
    assert calls.ops == [("ListObjectsV2", None), ("HeadObject", "media/video.webp")]

    files["media/video.webp"] = bytes(reversed(big))  # same size, other content
    report = deploy_hash.deploy_build(
        write_build(tmp_path / "dist", files), bucket, deploy_hash.make_client(config), POLICY
    )
    assert (report.uploaded, report.bytes_sent) == (1, 6 * MiB)
    assert bucket_bodies(s3, bucket) == files


# ---------------------------------------------------------------- interrupt (a real process, a real SIGINT)

# Runs the deploy in its own process. Test-only slowdown: each PutObject waits before it is sent, and
# two upload threads, so the SIGINT surely lands while uploads remain.
INTERRUPTIBLE_DEPLOY = """
import sys, time
from pathlib import Path
from steps.bucket import deploy_hash
from steps.bucket.content_types import CachePolicy
from supervisor.contract.config import load_config

deploy_hash.UPLOAD_CONCURRENCY = 2
config = load_config(require_input_queue=False)
POLICY = CachePolicy.from_config(config)
client = deploy_hash.make_client(config)
client.meta.events.register("before-send.s3.PutObject", lambda **_: time.sleep(0.3))
try:
    report = deploy_hash.deploy_build(Path(sys.argv[1]), sys.argv[2], client, POLICY)
except KeyboardInterrupt:
    print("KeyboardInterrupt re-raised", flush=True)
    sys.exit(130)
print("completed", report.uploaded, flush=True)
"""


def changed_keys(s3: Any, bucket: str, before: dict[str, str]) -> set[str]:
    listing = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"] for o in listing if before.get(o["Key"]) != o["ETag"]}


@pytest.mark.parametrize("interrupt_after", ["first asset", "first page"])
def test_an_interrupted_deploy_deletes_nothing_and_never_breaks_a_page(
    config, s3, bucket, tmp_path, aws_env, interrupt_after
):
    old = site("v1", ["", "about", *(f"blog/{i}" for i in range(12))], chunks=8)
    deploy_hash.deploy_build(write_build(tmp_path / "dist", old), bucket, deploy_hash.make_client(config), POLICY)
    new = site("v2", ["", "about", *(f"blog/{i}" for i in range(10))], chunks=8)
    build = write_build(tmp_path / "dist", new)
    before = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    wanted = (lambda key: key.endswith(".html")) if interrupt_after == "first page" else (lambda key: True)

    env = {**os.environ, **aws_env, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTIBLE_DEPLOY, str(build), bucket],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(wanted(k) for k in changed_keys(s3, bucket, before)):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no upload landed"
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "KeyboardInterrupt re-raised" in out
    assert "nothing deleted" in err

    bodies = bucket_bodies(s3, bucket)
    assert set(old) <= set(bodies), "an interrupted deploy deleted something"
    assert set(new) - set(bodies) or any(bodies[k] != new[k] for k in new), "the deploy was not interrupted midway"
    assert broken_references(bodies) == []

    unfinished = {key for key in new if bodies.get(key) != new[key]}
    client, calls = client_with_calls(config)
    report = deploy_hash.deploy_build(build, bucket, client, POLICY)  # running it again completes the deploy
    assert bucket_bodies(s3, bucket) == new
    assert sorted(calls.put_keys()) == sorted(unfinished)  # only what the interrupted run had not done
    assert report.uploaded == len(unfinished)
    assert report.deleted == len(set(old) - set(new))


# ---------------------------------------------------------------- a real Astro build


@pytest.mark.e2e
def test_real_astro_rebuild_uploads_exactly_what_the_build_changed(installed_site, config, s3, bucket, tmp_path):
    checkout = tmp_path / "site"
    shutil.copytree(installed_site, checkout, ignore=shutil.ignore_patterns("node_modules", "dist", ".astro"))
    subprocess.run(["cp", "-al", str(installed_site / "node_modules"), str(checkout / "node_modules")], check=True)

    def build() -> dict[str, str]:
        subprocess.run(["npm", "run", "build"], cwd=checkout, check=True, capture_output=True, timeout=300)
        dist = checkout / "dist"
        return {p.relative_to(dist).as_posix(): md5(p.read_bytes()) for p in dist.rglob("*") if p.is_file()}

    first = build()
    deploy_hash.deploy(context(config, checkout), bucket)
    about = checkout / "src" / "pages" / "about.astro"
    about.write_text(about.read_text().replace("</Base>", "<p>Now open on Sundays.</p>\n</Base>"))
    second = build()
    changed = {key for key, digest in second.items() if first.get(key) != digest}
    assert "about/index.html" in changed and len(changed) < len(second)

    client, calls = client_with_calls(config)
    report = deploy_hash.deploy_build(checkout / "dist", bucket, client, POLICY)
    assert sorted(calls.put_keys()) == sorted(changed)
    assert (report.uploaded, report.skipped) == (len(changed), len(second) - len(changed))
    assert {key: md5(body) for key, body in bucket_bodies(s3, bucket).items()} == second
