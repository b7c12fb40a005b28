"""The failure policy of CONTRACT §3, each case on a real worker, real git, real build and aws CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import psutil
import pytest
from helpers import QUICK_BUILD, bucket_keys, git, git_out, message, run_worker

pytestmark = pytest.mark.e2e


@pytest.fixture
def bucket(s3, make_bucket):
    name = make_bucket("acme")
    s3.put_object(Bucket=name, Key="index.html", Body=b"<p>the live site</p>")
    return name


def statuses(response):
    return {step["name"]: step["status"] for step in response["steps"]}


def test_build_failure_skips_deploy_but_pushes_the_commit(base_env, prewarm, s3, bucket, site_remote):
    prewarm()
    before = bucket_keys(s3, bucket)
    response = run_worker(message(instruction="Add a page\n@fake break-build"), base_env)
    assert statuses(response) == {
        "workspace": "ok",
        "agent": "ok",
        "commit": "ok",
        "build": "failed",
        "deploy": "skipped",
        "push": "ok",
    }
    assert response["success"] is False and response["errorCode"] == "BUILD_FAILED"
    assert response["buildSuccess"] is False and response["deploySuccess"] is False and response["pushSuccess"]
    assert bucket_keys(s3, bucket) == before  # the live site is untouched
    assert git_out(site_remote, "rev-parse", "thread-chat-1") == response["commit"]
    assert "src/pages/broken.astro" in response["filesChanged"]


def test_agent_failure_still_commits_builds_and_pushes_its_edits(base_env, prewarm, s3, bucket, site_remote):
    base_env = {**base_env, "BUILD_COMMAND": QUICK_BUILD}  # the build is not the subject here
    prewarm()
    response = run_worker(message(instruction="Make the header blue\n@fake fail"), base_env)
    assert response["errorCode"] == "AGENT_FAILED" and response["success"] is False
    assert "fake failure" in response["error"]
    assert statuses(response)["agent"] == "failed"
    assert statuses(response)["commit"] == "ok" and response["pushSuccess"]
    assert git_out(site_remote, "rev-parse", "thread-chat-1") == response["commit"]
    assert "src/pages/index.astro" in response["filesChanged"]


@pytest.mark.parametrize(
    ("directive", "reason"),
    [("@fake error-result", "error_max_turns"), ("@fake garbage", "no JSON result")],
)
def test_agent_that_exits_zero_without_success_is_a_failure(base_env, prewarm, bucket, directive, reason):
    base_env = {**base_env, "BUILD_COMMAND": QUICK_BUILD}  # the build is not the subject here
    prewarm()
    response = run_worker(message(instruction=f"Do it\n{directive}\n@fake no-change"), base_env)
    assert response["errorCode"] == "AGENT_FAILED" and reason in response["error"]
    assert statuses(response)["commit"] == "skipped"


def test_agent_timeout_ends_its_whole_tree_and_keeps_its_edits(base_env, prewarm, bucket, site_remote, tmp_path):
    base_env = {**base_env, "BUILD_COMMAND": QUICK_BUILD}  # the build is not the subject here
    prewarm()
    pidfile = tmp_path / "grandchild.pid"
    env = {**base_env, "AGENT_TIMEOUT_SECONDS": "3"}
    instruction = f"Make the header blue\n@fake grandchild {pidfile}\n@fake ignore-sigint\n@fake sleep 120"
    started = time.monotonic()
    response = run_worker(message(instruction=instruction), env)
    assert time.monotonic() - started < 60
    assert response["errorCode"] == "AGENT_TIMEOUT" and statuses(response)["agent"] == "failed"
    assert response["agent"]["sessionId"] and response["agent"]["costUsd"] is None  # killed before its result
    grandchild = int(pidfile.read_text())
    assert not psutil.pid_exists(grandchild) or psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE
    assert git_out(site_remote, "rev-parse", "thread-chat-1") == response["commit"]


def test_agent_that_hangs_after_its_result_counts_as_done(base_env, prewarm, bucket):
    base_env = {**base_env, "BUILD_COMMAND": QUICK_BUILD}  # the build is not the subject here
    prewarm()
    response = run_worker(message(instruction="Make the header blue\n@fake hang-after-result"), base_env)
    assert response["success"] is True, response["error"]
    assert "lingered" in response["_log"]


def test_nothing_changed_means_no_commit_but_build_and_deploy_run(base_env, prewarm, s3, bucket, site_remote):
    checkout = prewarm()
    base = git_out(checkout, "rev-parse", "HEAD")
    response = run_worker(message(instruction="Just look around\n@fake no-change"), base_env)
    assert response["success"] is True
    assert statuses(response) == {
        "workspace": "ok",
        "agent": "ok",
        "commit": "skipped",
        "build": "ok",
        "deploy": "ok",
        "push": "ok",
    }
    assert response["commit"] is None and response["filesChanged"] == []
    assert b"Amelia Stamps" in bucket_keys(s3, bucket)["index.html"]
    assert git_out(site_remote, "rev-parse", "thread-chat-1") == base  # the branch exists, unchanged


def test_agent_environment_has_no_credentials(base_env, prewarm, bucket, agent_log):
    base_env = {**base_env, "BUILD_COMMAND": QUICK_BUILD}  # the build is not the subject here
    prewarm()
    env = {**base_env, "GITHUB_TOKEN": "ghp_canary_never_seen", "AWS_SESSION_TOKEN": "aws-canary"}
    run_worker(message(instruction="@fake no-change"), env)
    seen = agent_log.read_text()
    assert "ghp_canary_never_seen" not in seen and "aws-canary" not in seen and "testing" not in seen


def test_push_disabled_skips_the_push(base_env, prewarm, bucket, site_remote):
    base_env = {**base_env, "BUILD_COMMAND": QUICK_BUILD}  # the build is not the subject here
    prewarm()
    response = run_worker(message(), {**base_env, "GIT_PUSH_ENABLED": "false"})
    assert statuses(response)["push"] == "skipped" and response["pushSuccess"] is False
    assert response["success"] is True
    assert "thread-chat-1" not in git_out(site_remote, "branch", "--list")


def test_rejected_push_is_a_push_failure_and_the_commit_stays_local(base_env, prewarm, bucket, site_remote):
    base_env = {**base_env, "BUILD_COMMAND": QUICK_BUILD}  # the build is not the subject here
    checkout = prewarm()
    hook = site_remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'remote: pushes are closed today' >&2\nexit 1\n")
    hook.chmod(0o755)
    response = run_worker(message(), base_env)
    assert response["errorCode"] == "PUSH_FAILED" and response["pushSuccess"] is False
    assert response["buildSuccess"] and response["deploySuccess"]
    assert git_out(checkout, "rev-parse", "thread-chat-1") == response["commit"]
    assert "thread-chat-1" not in git_out(site_remote, "branch", "--list")


def change_remote(remote, tmp_path, edit) -> None:
    """Commit `edit(checkout)` to the remote's main branch, as the site's owner would."""
    work = tmp_path / "owner"
    git(tmp_path, "clone", "--quiet", str(remote), str(work))
    edit(work)
    git(work, "commit", "--quiet", "-am", "Owner's change")
    git(work, "push", "--quiet", "origin", "main")


def test_a_lockfile_npm_ci_rejects_still_runs_the_agent_and_fails_the_build(
    base_env, prewarm, bucket, site_remote, tmp_path
):
    change_remote(site_remote, tmp_path, lambda work: (work / "package-lock.json").write_text("{ not json"))
    prewarm()
    response = run_worker(message(instruction="Make the header blue"), {**base_env, "BUILD_COMMAND": QUICK_BUILD})
    assert statuses(response) == {
        "workspace": "ok",
        "agent": "ok",
        "commit": "ok",
        "build": "failed",
        "deploy": "skipped",
        "push": "ok",
    }
    assert response["errorCode"] == "BUILD_FAILED" and "installing dependencies failed: npm:" in response["error"]
    assert "complete log" not in response["error"]
    assert git_out(site_remote, "rev-parse", "thread-chat-1") == response["commit"]  # the edit is kept


def test_an_out_of_sync_lockfile_builds_like_npm_install_and_stays_as_committed(
    base_env, prewarm, bucket, site_remote, tmp_path, installed_site
):
    def add_dependency(work):
        manifest = json.loads((work / "package.json").read_text())
        manifest["dependencies"]["is-number"] = "7.0.0"
        (work / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")

    change_remote(site_remote, tmp_path, add_dependency)
    committed_lock = git_out(site_remote, "show", "main:package-lock.json")
    checkout = prewarm()
    # npm writes into node_modules here: a copy of its own, not links shared with other tests, and no
    # install stamp (as on a checkout never installed).
    shutil.rmtree(checkout / "node_modules")
    subprocess.run(["cp", "-a", str(installed_site / "node_modules"), str(checkout / "node_modules")], check=True)
    (checkout / "node_modules" / ".webordinary-install.sha256").unlink()
    response = run_worker(message(instruction="Make the header blue"), {**base_env, "BUILD_COMMAND": QUICK_BUILD})
    npm_lines = [line[:300] for line in response["_log"].splitlines() if '"command": "npm"' in line]
    assert response["success"] is True, "\n".join(npm_lines[-30:])
    assert any("out of sync" in warning for warning in response["warnings"])
    assert (checkout / "node_modules" / "is-number" / "package.json").is_file()
    assert (checkout / "package-lock.json").read_text().strip() == committed_lock.strip()
    assert git_out(checkout, "status", "--porcelain") == ""


def test_a_build_that_never_ends_is_ended_and_fails_the_command(base_env, prewarm, bucket, site_remote, tmp_path):
    prewarm()
    hang = tmp_path / "hang.mjs"
    hang.write_text("setInterval(() => {}, 1000);\n")
    env = {**base_env, "BUILD_COMMAND": f"node {hang} build-that-hangs", "BUILD_TIMEOUT_SECONDS": "3"}
    response = run_worker(message(instruction="Make the header blue"), env)
    assert response["errorCode"] == "BUILD_FAILED" and "did not finish within 3 s" in response["error"]
    assert statuses(response)["push"] == "ok"  # the edit is still pushed
    assert not [p for p in psutil.process_iter(["cmdline"]) if "build-that-hangs" in " ".join(p.info["cmdline"] or [])]
