"""Everything the system needs, on this machine: moto's server (SQS, S3), queues, buckets, a git remote.

Used by the local run (`bin/run-local`) and the benchmarks; the tests build the same from fixtures.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from supervisor.local.moto_process import moto_server

ROOT = Path(__file__).resolve().parents[2]
DEMO_SITE = ROOT / "examples" / "demo-site"
REGION = "us-west-2"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
BUCKET_TEMPLATE = "edit.{clientId}.webordinary.com"
# Where the local run stores the files a person attaches (ATTACHMENTS_BUCKET), as a chat backend would.
ATTACHMENTS_BUCKET_TEMPLATE = "attachments.{clientId}.webordinary.com"


def job_python() -> str:
    """A Python that a job uid can start, for the agent stand-ins (Python scripts). As root, workers run the
    agent as a job identity (steps/job), and this interpreter may live where only root can reach it
    (a pyenv under /root): the system's own comes first when there is one."""
    system = Path("/usr/bin/python3")
    return str(system) if system.exists() else sys.executable


def demo_remote(state: Path) -> Path:
    """A bare repository seeded from examples/demo-site (kept between runs, so a chat continues)."""
    remote = state / "remotes" / "demo-site.git"
    if remote.exists():
        return remote
    seed = state / "seed"
    shutil.rmtree(seed, ignore_errors=True)
    shutil.copytree(DEMO_SITE, seed, ignore=shutil.ignore_patterns("node_modules", "dist", ".astro"))
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Demo",
        "GIT_AUTHOR_EMAIL": "demo@example.invalid",
        "GIT_COMMITTER_NAME": "Demo",
        "GIT_COMMITTER_EMAIL": "demo@example.invalid",
    }
    for argv in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "Demo site"]):
        subprocess.run(argv, cwd=seed, env=env, check=True)
    remote.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(seed), str(remote)], check=True)
    shutil.rmtree(seed)
    return remote


@dataclass
class LocalStack:
    state: Path
    endpoint: str
    sqs: Any
    s3: Any
    queues: dict[str, str]
    remote: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def create_bucket(self, client_id: str, template: str = BUCKET_TEMPLATE) -> str:
        """The client's edit bucket (or the bucket `template` names for it), created once."""
        name = template.replace("{clientId}", client_id)
        with contextlib.suppress(self.s3.exceptions.BucketAlreadyOwnedByYou):
            self.s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
        return name

    def supervisor_env(self, **overrides: str) -> dict[str, str]:
        return {
            **os.environ,
            **CREDENTIALS,
            "INPUT_QUEUE_URL": self.queues["input"],
            "OUTPUT_QUEUE_URL": self.queues["output"],
            "DLQ_URL": self.queues["dlq"],
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
            "WORKSPACE_PATH": str(self.state / "workspace"),
            "REPO_URL": str(self.remote),
            "S3_BUCKET": BUCKET_TEMPLATE,
            **overrides,
        }

    def start_supervisor(self, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
        with log_path.open("ab") as log:
            process = subprocess.Popen([sys.executable, "-m", "supervisor"], cwd=ROOT, env=env, stdout=log, stderr=log)
        self.processes.append(process)
        return process


@contextlib.contextmanager
def local_stack(state: Path) -> Iterator[LocalStack]:
    """Start moto on a free loopback port with input/output/dead-letter queues; stop everything after."""
    state.mkdir(parents=True, exist_ok=True)
    with moto_server() as endpoint:
        yield from _stack_on(state, endpoint)


def _stack_on(state: Path, endpoint: str) -> Iterator[LocalStack]:
    os.environ.update(CREDENTIALS)
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=endpoint)
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    queues = {name: sqs.create_queue(QueueName=f"edit-{name}")["QueueUrl"] for name in ("input", "output", "dlq")}
    stack = LocalStack(state, endpoint, sqs, s3, queues, demo_remote(state))
    try:
        yield stack
    finally:
        for process in stack.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
