"""A worker that no longer holds its workspace's lease writes nothing (steps/fence.py): a real worker process,
the lease table on moto's server, real git. The container it belongs to was paused past its lease (SIGSTOP)
or cut off, and another took the workspace over."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid

import boto3
import pytest
from helpers import QUICK_BUILD, REGION, ROOT, WORKER_HARNESS, git_out, message

from supervisor.contract.command import parse_command
from supervisor.contract.exit_codes import WorkerExit
from supervisor.sharing.lease_table import create_table

pytestmark = pytest.mark.e2e
WORKSPACE = "acme/u1/site"


@pytest.fixture
def dynamodb(aws_env):
    return boto3.client("dynamodb", region_name=REGION, endpoint_url=aws_env["AWS_ENDPOINT_URL"])


@pytest.fixture
def table(dynamodb) -> str:
    name = f"leases-{uuid.uuid4().hex[:8]}"
    create_table(dynamodb, name)
    return name


def hold(dynamodb, table: str, owner: str, fence: int) -> None:
    dynamodb.put_item(
        TableName=table,
        Item={"workspace": {"S": WORKSPACE}, "owner": {"S": owner}, "fence": {"N": str(fence)}, "beat": {"N": "0"}},
    )


def lease(table: str, owner: str, fence: int) -> dict:
    return {"table": table, "workspace": WORKSPACE, "owner": owner, "fence": fence}


def run_worker(body: dict, env: dict, lease: dict, *, during=None) -> tuple[int, str, str]:
    """A real worker given this lease; `during` runs on a thread meanwhile. (exit code, stdout, stderr)"""
    command = parse_command(json.dumps(body), env.get("REPO_URL"))
    job = {"mode": "run", "command": command.to_dict(), "fence": lease, "warnings": ["moved from another disk"]}
    helper = threading.Thread(target=during or (lambda: None))
    helper.start()
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER_HARNESS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    stdout, stderr = worker.communicate(json.dumps(job), timeout=120)
    helper.join()
    return worker.returncode, stdout, stderr


@pytest.fixture
def env(base_env, make_bucket, table, spans_file):
    make_bucket("acme")
    return {**base_env, "LEASE_TABLE": table, "BUILD_COMMAND": QUICK_BUILD, "FAKE_CLAUDE_SPANS": str(spans_file)}


@pytest.fixture
def spans_file(tmp_path):
    return tmp_path / "spans.jsonl"


def results(stdout: str) -> list[dict]:
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [line["response"] for line in lines if line.get("event") == "result"]


def test_a_worker_whose_lease_moved_before_it_started_touches_nothing(env, dynamodb, table, workspace_root):
    hold(dynamodb, table, "other-container", 2)
    code, stdout, stderr = run_worker(
        message(), env, {"table": table, "workspace": WORKSPACE, "owner": "us", "fence": 1}
    )
    assert code == WorkerExit.LEASE_LOST, stderr[-2000:]
    assert results(stdout) == []  # no response: the new owner answers the command
    assert "moved to other-container (fence 2) before touching the checkout" in stderr
    assert not (workspace_root / "acme" / "u1" / "site").exists()


def test_a_worker_that_loses_its_lease_mid_run_neither_commits_nor_deploys_nor_pushes(
    env, dynamodb, table, workspace_root, site_remote, spans_file, s3, bucket_prefix
):
    hold(dynamodb, table, "us", 1)
    body = message(instruction="Write a page\n@fake write src/pages/late.astro <p>late</p>\n@fake sleep 2")

    def take_over_during_the_agent() -> None:  # what another container does once our lease ran out
        deadline = time.monotonic() + 60
        while not (spans_file.exists() and spans_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        hold(dynamodb, table, "other-container", 2)

    code, stdout, stderr = run_worker(body, env, lease(table, "us", 1), during=take_over_during_the_agent)
    assert code == WorkerExit.LEASE_LOST, stderr[-2000:]
    assert results(stdout) == [] and "before committing" in stderr
    checkout = workspace_root / "acme" / "u1" / "site"
    assert (checkout / "src/pages/late.astro").exists()  # the edit stays for the next worker here
    assert "src/pages/late.astro" in git_out(checkout, "status", "--porcelain")  # not committed
    assert git_out(site_remote, "branch", "--list", "thread-chat-a").strip() == ""  # nothing pushed
    assert s3.list_objects_v2(Bucket=f"{bucket_prefix}-acme").get("KeyCount", 0) == 0  # nothing deployed


def test_a_worker_holding_its_lease_runs_through_and_says_what_the_supervisor_warned_of(env, dynamodb, table):
    hold(dynamodb, table, "us", 3)
    code, stdout, stderr = run_worker(
        message(), env, {"table": table, "workspace": WORKSPACE, "owner": "us", "fence": 3}
    )
    assert code == 0, stderr[-2000:]
    (response,) = results(stdout)
    assert response["success"] is True and response["warnings"] == ["moved from another disk"]
    item = dynamodb.get_item(TableName=table, Key={"workspace": {"S": WORKSPACE}}, ConsistentRead=True)["Item"]
    assert "pending" not in item  # everything pushed: nothing to report to a next owner on another disk
