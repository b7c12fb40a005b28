"""The image end to end (bin/test-image runs this with WEBORDINARY_IMAGE set; skipped otherwise).

The container runs with `--network host` against the local stack on the host: moto's server, a bare
git remote (bind-mounted at its own path), the real Claude Code CLI inside the image talking to the
tests' scripted Messages API. No agent configuration beyond the image's own.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from attack.checks import SECRETS, assert_contained, bucket_objects, markers_folder
from attack.conversation import attacker
from helpers import OutputWatcher, bucket_keys, git, git_out
from scripted_api import Text, ToolCall, steps

IMAGE = os.environ.get("WEBORDINARY_IMAGE", "")
IMAGE_AWSCLI = os.environ.get("WEBORDINARY_IMAGE_AWSCLI", "")  # built with PYTHON_EXTRAS=awscli
FIGURES = os.environ.get("WEBORDINARY_IMAGE_FIGURES", "")
ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.image, pytest.mark.skipif(not IMAGE, reason="bin/test-image runs this (WEBORDINARY_IMAGE)")]


def docker(*args: str, check: bool = True, timeout: float = 120, stderr: bool = False) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if stderr:  # `docker logs` replays the container's stderr (our JSON log lines) on stderr
        return done.stdout + done.stderr
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:2])} failed: {done.stderr[-2000:]}")
    return done.stdout.strip()


def wait_until(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def start_container(
    supervisor_env: dict[str, str], scripted_api: Any, site_remote: Path, workspace_root: Path, **extra: Any
) -> str:
    """The image, detached, on the host network against the local stack; `extra`: more variables, and
    `volumes` (host paths mounted at the same path)."""
    name = f"webordinary-test-{uuid.uuid4().hex[:8]}"
    volumes = [str(site_remote), *extra.pop("volumes", [])]
    env = {
        **{k: v for k, v in supervisor_env.items() if k.startswith(("INPUT_", "OUTPUT_", "DLQ_", "AWS_"))},
        "REPO_URL": str(site_remote),
        "S3_BUCKET": supervisor_env["S3_BUCKET"],
        "PREVIEW_URL": supervisor_env["PREVIEW_URL"],
        "PROGRESS_EVENTS": "true",
        "ANTHROPIC_BASE_URL": scripted_api.base_url,
        "ANTHROPIC_API_KEY": "sk-ant-test-dummy-key",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        **extra,
    }
    flags = [f"--env={k}={v}" for k, v in env.items()] + [f"--volume={v}:{v}" for v in volumes]
    docker(
        "run",
        "--detach",
        "--name",
        name,
        "--network",
        "host",
        "--stop-timeout",
        "30",
        "--health-interval",
        "2s",
        "--health-start-period",
        "0s",
        "--volume",
        f"{workspace_root}:/workspace",
        *flags,
        IMAGE,
    )
    return name


def container_processes(container: str) -> list[tuple[int, int]]:
    """(pid, real uid) of every live process in the container, zombies left out (procps is in the image)."""
    listed = docker("exec", container, "ps", "-eo", "pid=,ruid=,stat=")
    return [(int(pid), int(uid)) for pid, uid, stat in (line.split() for line in listed.splitlines()) if stat[0] != "Z"]


def first_receive_seconds(sqs: Any, queue_url: str, since: float, timeout: float = 60) -> float:
    """Seconds from `since` until the message waiting in the queue is taken: the supervisor's first
    receive, as the queue sees it (nothing else receives from it)."""
    while time.monotonic() - since < timeout:
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
        if attributes["Attributes"]["ApproximateNumberOfMessages"] == "0":
            return round(time.monotonic() - since, 2)
        time.sleep(0.05)
    raise AssertionError("the supervisor never received the waiting message")


def write_figures(**figures: Any) -> None:
    if FIGURES:
        path = Path(FIGURES)
        known = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps({**known, **figures}))


def shell_facts(image: str, script: str) -> dict[str, str]:
    """`name=value` lines printed by `script` run with sh in a throwaway container of `image`."""
    out = docker("run", "--rm", "--network", "host", "--entrypoint", "sh", image, "-c", script)
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_the_image_serves_both_message_shapes_stops_cleanly_and_keeps_interrupted_work(
    supervisor_env, scripted_api, site_remote, workspace_root, make_bucket, sqs, queues, s3, bucket_prefix, tmp_path
):
    make_bucket("acme")
    first = {
        "instruction": "Change the title to From The Image",
        "commandId": "img-1",
        "chatThreadId": "chat-img",
        "clientId": "acme",
        "userId": "u1",
    }
    # The first command waits in the queue before the container starts: its receive ends the start time.
    sqs.send_message(QueueUrl=queues["input"], MessageBody=json.dumps(first))
    started = time.monotonic()
    container = start_container(supervisor_env, scripted_api, site_remote, workspace_root)
    watcher = OutputWatcher(sqs, queues["output"])
    try:
        write_figures(startSeconds=first_receive_seconds(sqs, queues["input"], started))
        # tini is PID 1, and the health check turns healthy while the supervisor's loop runs.
        assert docker("exec", container, "ps", "-o", "comm=", "-p", "1") == "tini"
        wait_until(lambda: docker("inspect", "-f", "{{.State.Health.Status}}", container) == "healthy", 90, "healthy")

        second = {
            "instruction": "Add a page called contact",
            "commandId": "img-2",
            "threadId": "chat-img",
            "projectId": "acme",
            "userId": "u1",
            "repoUrl": str(site_remote),
            "type": "work",
        }
        one = watcher.response("img-1", timeout=600)  # the first command installs the site's dependencies
        sqs.send_message(QueueUrl=queues["input"], MessageBody=json.dumps(second))
        two = watcher.response("img-2", timeout=300)
        for response in (one, two):
            assert response["success"] is True, response["error"]
        assert git_out(site_remote, "rev-parse", "thread-chat-img") == two["commit"]
        live = bucket_keys(s3, f"{bucket_prefix}-acme")
        assert "<h1>From The Image</h1>" in live["index.html"].decode() and "contact/index.html" in live

        # docker stop during a build: exit 0 within the stop timeout, the work pushed, the message back.
        slow = "---\nawait new Promise((resolve) => setTimeout(resolve, 120000));\n---\n<p>slow</p>\n"
        write = lambda c: ToolCall("Write", {"file_path": c.path("src/pages/slow.astro"), "content": slow})  # noqa: E731
        scripted_api.when("Add a slow page", steps(write, Text("Added.")))
        body = {**first, "instruction": "Add a slow page", "commandId": "img-3", "chatThreadId": "chat-slow"}
        sqs.send_message(QueueUrl=queues["input"], MessageBody=json.dumps(body))
        watcher.progress("img-3", "build", "started", timeout=300)
        time.sleep(2)
        started = time.monotonic()
        docker("stop", "--time", "30", container, timeout=60)
        stop_seconds = time.monotonic() - started
        exit_code = int(docker("inspect", "-f", "{{.State.ExitCode}}", container))
    finally:
        watcher.stop()
        (tmp_path / "container.log").write_text(docker("logs", container, check=False, stderr=True))
        docker("rm", "--force", container, check=False)
    assert exit_code == 0 and stop_seconds < 30
    pushed = git_out(site_remote, "log", "-1", "--format=%B", "thread-chat-slow")
    assert "Command-Id: img-3" in pushed and "src/pages/slow.astro" in pushed
    back = sqs.receive_message(QueueUrl=queues["input"], WaitTimeSeconds=5, MaxNumberOfMessages=10)
    assert [json.loads(m["Body"])["commandId"] for m in back.get("Messages", [])] == ["img-3"]
    write_figures(stopSeconds=round(stop_seconds, 1), stopExitCode=exit_code)


def test_through_the_image_a_hostile_agent_and_build_reach_no_secret_no_git_of_ours_no_other_tenant(
    supervisor_env, scripted_api, site_remote, workspace_root, make_bucket, sqs, s3, queues, bucket_prefix, tmp_path
):
    """The attack suite's probe (tests/attack) played by the real CLI in the image: tini is PID 1 with the
    container's secrets, everything runs as root but the jobs, and Docker's seccomp leaves no kernel sandbox."""
    remotes = {}
    for client in ("acme", "globex"):
        make_bucket(client)
        remotes[client] = tmp_path / "remotes" / client / "site.git"
        remotes[client].parent.mkdir(parents=True)
        git(tmp_path, "clone", "--quiet", "--bare", str(site_remote), str(remotes[client]))
    markers = markers_folder(tmp_path)
    host, port = supervisor_env["AWS_ENDPOINT_URL"].removeprefix("http://").split(":")
    targets = {
        "markers": str(markers),
        "otherCheckout": "/workspace/globex/u1/site",
        "repoUrl": str(remotes["acme"]),
        "networkHost": host,
        "networkPort": int(port),
        "ownThread": "thread-chat-1",
    }
    name = start_container(
        {**supervisor_env, "AWS_SECRET_ACCESS_KEY": SECRETS["AWS_SECRET_ACCESS_KEY"]},
        scripted_api,
        site_remote,
        workspace_root,
        volumes=[str(tmp_path / "remotes"), str(markers)],
        REPO_URL=str(tmp_path / "remotes" / "{clientId}" / "site.git"),
        MAX_WORKERS="1",
        **{k: v for k, v in SECRETS.items() if k != "AWS_SECRET_ACCESS_KEY"},
    )
    watcher = OutputWatcher(sqs, queues["output"])
    try:
        for command_id, client, thread, instruction in (
            ("victim-1", "globex", "chat-1", "Change the title to Victim"),
            ("earlier-1", "acme", "chat-0", "Change the title to Earlier"),
        ):
            body = {"instruction": instruction, "commandId": command_id, "chatThreadId": thread, "clientId": client}
            sqs.send_message(QueueUrl=queues["input"], MessageBody=json.dumps({**body, "userId": "u1"}))
            watcher.response(command_id, timeout=600)
        main_before = git_out(remotes["acme"], "rev-parse", "main")
        scripted_api.when("Make the header blue", attacker(targets))
        body = {"instruction": "Make the header blue", "commandId": "attack-1", "chatThreadId": "chat-1"}
        sqs.send_message(QueueUrl=queues["input"], MessageBody=json.dumps({**body, "clientId": "acme", "userId": "u1"}))
        attacked = watcher.response("attack-1", timeout=300)
        processes = container_processes(name)  # before it is removed, by the container's own PID numbers
        logs = docker("logs", name, check=False, stderr=True)
    finally:
        watcher.stop()
        (tmp_path / "container.log").write_text(docker("logs", name, check=False, stderr=True))
        docker("rm", "--force", name, check=False)
    assert_contained(
        attacked,
        bucket_objects(s3, f"{bucket_prefix}-acme"),
        markers=markers,
        site_remote=remotes["acme"],
        main_before=main_before,
        workspace=workspace_root,
        victim_objects=bucket_objects(s3, f"{bucket_prefix}-globex"),
        sandboxed=False,
        processes=processes,
    )
    layers = next(json.loads(line) for line in logs.splitlines() if '"containment: ' in line)
    assert layers["jobIdentity"] == "on" and layers["kernelSandbox"].startswith("off: ")


def test_the_image_holds_what_the_service_runs_and_nothing_it_was_built_with():
    pinned = re.search(r'claude-code-version = "([^"]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    facts = shell_facts(
        IMAGE,
        """
        for tool in node npm git tini ps bwrap claude python aws pip pip3 gcc cc make yarn corepack strip; do
          echo "$tool=$(command -v $tool || echo absent)"
        done
        echo "claudeVersion=$(claude --version)"
        echo "imports=$(python -c 'import boto3, psutil, sh, watchfiles; print("ok")' 2>&1)"
        echo "venvPip=$(ls /opt/venv/lib/python3.11/site-packages | grep -ciE '^(pip|setuptools|wheel)([-_.]|$)')"
        echo "compiled=$(ls /app/supervisor/__pycache__ | grep -c '^loop\\.cpython-311\\.pyc$')"
        echo "aptLists=$(find /var/lib/apt/lists -type f | wc -l)"
        echo "debs=$(find /var/cache/apt -name '*.deb' -o -name '*.bin' | wc -l)"
        echo "npmCache=$(find /root/.npm /root/.cache -mindepth 1 2>/dev/null | wc -l)"
        echo "claudeCopies=$(find / -xdev -type f -size +100M -name 'claude*' | wc -l)"
        echo "perl=$(dpkg-query -W -f='${db:Status-Status}' perl 2>/dev/null | grep -cx installed)"
        echo "gitUnlinked=$(find /usr/lib/git-core -type f -exec ldd {} + 2>/dev/null | grep -c 'not found')"
        echo "gitHttps=$(git remote-https 2>&1 | grep -c 'usage: git remote-curl')"
        echo "gitListed=$(grep -x 'Version: .*' /var/lib/dpkg/status.d/git | cut -d' ' -f2)"
        echo "gitVersion=$(git --version | cut -d' ' -f3)"
        echo "aptCheck=$(apt-get check -qq >/dev/null 2>&1; echo $?)"
        echo "botocore=$(cd /opt/venv/lib/python3.*/site-packages/botocore/data && ls -d */ | tr -d / | sort | xargs)"
        """,
    )
    listed = (line.strip() for line in (ROOT / "deploy/botocore-services.txt").read_text().splitlines())
    kept = sorted(line for line in listed if line and not line.startswith("#"))
    for tool in ("node", "npm", "git", "tini", "ps", "bwrap", "claude", "python"):
        assert facts[tool] != "absent", f"{tool} is missing from the image"
    for tool in ("aws", "pip", "pip3", "gcc", "cc", "make", "yarn", "corepack", "strip"):
        assert facts[tool] == "absent", f"{tool} is in the image: {facts[tool]}"
    assert facts["claudeVersion"].split()[0] == pinned
    assert facts["imports"] == "ok"
    assert facts["venvPip"] == "0", "pip, setuptools or wheel is in the venv"
    assert facts["compiled"] == "1", "the code is not compiled in the image"
    assert facts["aptLists"] == facts["debs"] == facts["npmCache"] == "0"
    assert facts["claudeCopies"] == "1", "the CLI's native binary is in the image more than once"
    # git without Debian's Perl: every program of git's links, and HTTPS remotes still work.
    assert facts["perl"] == "0", "Debian's perl package is in the image"
    assert facts["gitUnlinked"] == "0", "a program of git's misses a library"
    assert facts["gitHttps"] == "1", "git's HTTPS helper is missing"
    # Debian's version, e.g. 1:2.39.5-0+deb12u2 for git 2.39.5: scanners read it from status.d.
    assert re.fullmatch(rf"(\d+:)?{re.escape(facts['gitVersion'])}-\S+", facts["gitListed"]), facts
    assert facts["aptCheck"] == "0", "apt-get check: dpkg's database has unmet dependencies"
    assert facts["botocore"] == " ".join(kept), "botocore keeps other models than deploy/botocore-services.txt"


@pytest.mark.skipif(not IMAGE_AWSCLI, reason="bin/test-image builds the awscli variant (WEBORDINARY_IMAGE_AWSCLI)")
def test_the_awscli_variant_adds_the_aws_cli_for_the_aws_cli_strategy():
    facts = shell_facts(IMAGE_AWSCLI, 'echo "aws=$(aws --version 2>&1)"; echo "where=$(command -v aws)"')
    assert facts["aws"].startswith("aws-cli/"), facts["aws"]
    assert facts["where"] == "/opt/venv/bin/aws"
