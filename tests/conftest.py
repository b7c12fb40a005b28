"""Real parts for the tests: moto's server on loopback, bare git remotes, an installed Astro site."""

from __future__ import annotations

import logging
import os
import random
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from helpers import DEMO_SITE, FAKE_CLAUDE, REGION, ROOT, OutputWatcher, git, prewarm_checkout
from scripted_api import ScriptedAPI

from steps.processes.deps import ensure_dependencies
from supervisor.local.stack import job_python


def _pass_through(folder: Path) -> None:
    """o+x on `folder` and its parents that we own: a job uid may pass through, never list."""
    for path in (folder, *folder.parents):
        info = path.stat()
        if info.st_uid == os.geteuid() and not info.st_mode & 0o001:
            path.chmod(info.st_mode & 0o7777 | 0o011)


@pytest.fixture(autouse=True)
def jobs_reach_the_test_folders(request: pytest.FixtureRequest) -> None:
    """Workers run as root here, so the agent, npm and the build run as job uids (steps/job): they must pass
    through the test's temporary folders to reach a workspace (pytest makes those 0700), and the fake agent
    writes its records (pid files, FAKE_CLAUDE_LOG) into the test's folder, sticky like /tmp."""
    if "tmp_path" in request.fixturenames:
        tmp_path = request.getfixturevalue("tmp_path")
        _pass_through(tmp_path)
        tmp_path.chmod(0o1777)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    # In this process, not one of its own (supervisor/local/moto_process.py): several tests end every
    # descendant of the test process (the orphan and stray clean-ups), and would end moto with them.
    from moto.server import ThreadedMotoServer  # imported here: a unit test run should not pay for it

    from supervisor.local.moto_speed import speed_up_moto_sqs

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    speed_up_moto_sqs()  # moto's SQS is quadratic in queue depth (see the module)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def aws_env(moto_endpoint: str) -> dict[str, str]:
    """What every process talking to the fake AWS needs; applied to this process too."""
    values = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
    }
    os.environ.update(values)
    return values


@pytest.fixture
def s3(aws_env: dict[str, str]) -> Any:
    return boto3.client("s3", region_name=REGION, endpoint_url=aws_env["AWS_ENDPOINT_URL"])


@pytest.fixture
def sqs(aws_env: dict[str, str]) -> Any:
    return boto3.client("sqs", region_name=REGION, endpoint_url=aws_env["AWS_ENDPOINT_URL"])


@pytest.fixture(scope="session")
def npm_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One npm cache for every job of the session, as root's own was before jobs had a uid (and a HOME) of
    their own: filled by the installed site's `npm ci`, then open to every job uid, so a test whose worker
    installs the demo site reads it instead of downloading it again. (In production each job identity
    keeps its own cache in its home: a cache shared between clients could be poisoned.)"""
    return tmp_path_factory.mktemp("npm-cache")


@pytest.fixture(scope="session")
def installed_site(tmp_path_factory: pytest.TempPathFactory, npm_cache: Path) -> Path:
    """The demo site with its dependencies installed once per test session, by the worker's own install
    code, so its stamp tells the worker a pre-warmed checkout needs no `npm ci`."""
    target = tmp_path_factory.mktemp("installed") / "site"
    _pass_through(target.parent)  # its node_modules is hard-linked into checkouts that jobs build
    shutil.copytree(DEMO_SITE, target, ignore=shutil.ignore_patterns("node_modules", "dist", ".astro"))
    os.environ["NPM_CONFIG_CACHE"] = str(npm_cache)
    try:
        assert ensure_dependencies(target) == "installed"
    finally:
        del os.environ["NPM_CONFIG_CACHE"]
    # Open to every job uid, files they add included: a default ACL overrides their umask (007).
    subprocess.run(["chmod", "-R", "a+rwX", str(npm_cache)], check=True)
    subprocess.run(["setfacl", "-R", "-d", "-m", "u::rwx,g::rwx,o::rwx", str(npm_cache)], check=True)
    _pass_through(npm_cache)
    return target


@pytest.fixture
def site_remote(tmp_path: Path) -> Path:
    """A bare repository holding the demo site on `main`: the site's remote."""
    source = tmp_path / "seed"
    shutil.copytree(DEMO_SITE, source, ignore=shutil.ignore_patterns("node_modules", "dist", ".astro"))
    git(source, "init", "--quiet", "--initial-branch=main")
    git(source, "add", "--all")
    git(source, "commit", "--quiet", "-m", "Initial site")
    remote = tmp_path / "remotes" / "site.git"
    remote.parent.mkdir()
    git(tmp_path, "clone", "--quiet", "--bare", str(source), str(remote))
    shutil.rmtree(source)
    return remote


@pytest.fixture
def workspace_root(tmp_path: Path) -> Path:
    root = tmp_path / "workspace"
    root.mkdir()
    return root


@pytest.fixture
def prewarm(workspace_root: Path, site_remote: Path, installed_site: Path):
    def make(client: str = "acme", user: str = "u1") -> Path:
        return prewarm_checkout(workspace_root, site_remote, installed_site, client, user)

    return make


CLAUDE_BIN = ROOT / ".venv" / "claude-code" / "node_modules" / ".bin"


@pytest.fixture(scope="session")
def claude_cli() -> Path:
    """The real Claude Code CLI at the pinned version (bin/install-claude; a no-op once installed)."""
    subprocess.run([str(ROOT / "bin" / "install-claude")], check=True)
    return CLAUDE_BIN / "claude"


@pytest.fixture
def scripted_api() -> Iterator[ScriptedAPI]:
    """A scripted Messages API on 127.0.0.1 for the real CLI (tests/scripted_api.py)."""
    api = ScriptedAPI().start()
    yield api
    api.stop()


@pytest.fixture
def real_agent_env(base_env: dict[str, str], claude_cli: Path, scripted_api: ScriptedAPI) -> dict[str, str]:
    """base_env with no agent configuration at all: `claude` on PATH is the real CLI, talking to the
    scripted API with a dummy key."""
    env = {k: v for k, v in base_env.items() if not k.startswith(("AGENT_", "ANTHROPIC_", "CLAUDE_"))}
    env.update(
        {
            "PATH": f"{claude_cli.parent}{os.pathsep}{env.get('PATH', '')}",
            "ANTHROPIC_BASE_URL": scripted_api.base_url,
            "ANTHROPIC_API_KEY": "sk-ant-test-dummy-key",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }
    )
    return env


@pytest.fixture
def agent_log(tmp_path: Path) -> Path:
    return tmp_path / "agent-runs.jsonl"


@pytest.fixture
def bucket_prefix() -> str:
    """Buckets live as long as the session's moto server: each test gets names of its own."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_bucket(s3: Any, bucket_prefix: str):
    """Create (and return the name of) the preview bucket of a client, as S3_BUCKET names it."""

    def make(client: str = "acme") -> str:
        name = f"{bucket_prefix}-{client}"
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
        return name

    return make


@pytest.fixture
def base_env(
    aws_env: dict[str, str],
    workspace_root: Path,
    site_remote: Path,
    agent_log: Path,
    bucket_prefix: str,
    installed_site: Path,
    npm_cache: Path,
) -> dict[str, str]:
    """Environment for a supervisor or worker under test: everything local, nothing real."""
    first_uid = 300_000 + random.randrange(100_000) * 2000  # the uids above the range: warm build servers'
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "OUTPUT_", "DLQ_"))}
    env.update(aws_env)
    env.update(
        {
            "WORKSPACE_PATH": str(workspace_root),
            "REPO_URL": str(site_remote),
            "S3_BUCKET": bucket_prefix + "-{clientId}",
            "PREVIEW_URL": "http://preview.test/{clientId}",
            "AGENT_COMMAND": f"{job_python()} {FAKE_CLAUDE}",
            "AGENT_TIMEOUT_SECONDS": "60",
            "DEPLOY_STRATEGY": "aws-cli",
            "LOG_FORMAT": "json",
            "FAKE_CLAUDE_LOG": str(agent_log),
            "PYTHONPATH": str(ROOT),
            "NPM_CONFIG_CACHE": str(npm_cache),
            # The kernel sandbox has a PID namespace and a /tmp of its own: the pids and files the fake agent
            # records for a test would be its own. Its tests (tests/e2e/test_containment.py) turn it on.
            "SANDBOX": "off",
            # Tests run side by side in one kernel with workspaces of the same names: each its own uids, so
            # ending one test's job processes (by uid) never touches another's.
            "JOB_UID_RANGE": f"{first_uid}-{first_uid + 999}",
        }
    )
    return env


@pytest.fixture
def supervisor_env(base_env: dict[str, str], queues: dict[str, str]) -> dict[str, str]:
    """base_env plus the three queues and a short shutdown grace: for `python -m supervisor` under test."""
    return {
        **base_env,
        "INPUT_QUEUE_URL": queues["input"],
        "OUTPUT_QUEUE_URL": queues["output"],
        "DLQ_URL": queues["dlq"],
        "SHUTDOWN_GRACE_SECONDS": "3",
        # A stop waits for the receive in flight (up to the grace): a short one keeps each test's stop short.
        "RECEIVE_WAIT_SECONDS": "1",
    }


@pytest.fixture
def watcher(sqs: Any, queues: dict[str, str]) -> Iterator[OutputWatcher]:
    """Everything the output queue receives during the test, read on a thread."""
    watching = OutputWatcher(sqs, queues["output"])
    yield watching
    watching.stop()


@pytest.fixture
def queues(sqs: Any) -> dict[str, str]:
    """Fresh input, output and dead-letter queues for one test."""
    suffix = uuid.uuid4().hex[:8]
    return {
        name: sqs.create_queue(QueueName=f"{name}-{suffix}", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
        for name in ("input", "output", "dlq")
    }
