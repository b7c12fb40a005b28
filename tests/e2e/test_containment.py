"""The attack suite: a prompt-injected agent and the build script it wrote try every path the containment
issue found, through a real supervisor under a PID-1 stand-in that keeps the container's secrets in its
environment, with two clients in one container. The probe (tests/attack/probe.mjs) runs as a Bash call of
the agent would and inside the site's build; what it reaches is published with the site, so each test
reads it back from the bucket, and checks what the planted git code, ledger and links would have left:
markers, the remote, other tenants' files, the supervisor's records, processes.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
from attack.checks import SECRETS, assert_contained, bucket_objects, markers_folder
from attack.conversation import attacker
from helpers import ROOT, SupervisorProcess, git, git_out, prewarm_checkout

from steps.job import sandbox

pytestmark = pytest.mark.e2e
PROBE = ROOT / "tests" / "attack" / "probe.mjs"
INIT = ROOT / "tests" / "attack" / "init_standin.py"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="job identities need root (CI and the image run as root)")


def bwrap_missing() -> bool:
    return sandbox.probe(None, None) is not None


def send(sqs: Any, url: str, command_id: str, client: str, instruction: str, thread: str = "chat-1") -> None:
    body = {"instruction": instruction, "commandId": command_id, "chatThreadId": thread, "clientId": client}
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({**body, "userId": "u1"}))


@pytest.fixture
def remotes(tmp_path, site_remote) -> dict[str, Path]:
    """Each client its own repository (REPO_URL's {clientId}), as in production."""
    found = {}
    for client in ("acme", "globex"):
        found[client] = tmp_path / "remotes" / client / "site.git"
        found[client].parent.mkdir(parents=True)
        git(tmp_path, "clone", "--quiet", "--bare", str(site_remote), str(found[client]))
    return found


@pytest.fixture
def attack_env(supervisor_env, tmp_path, installed_site, remotes, make_bucket):
    workspace = Path(supervisor_env["WORKSPACE_PATH"])
    for client, remote in remotes.items():
        make_bucket(client)
        prewarm_checkout(workspace, remote, installed_site, client, "u1")
    template = str(tmp_path / "remotes" / "{clientId}" / "site.git")
    return {**supervisor_env, **SECRETS, "REPO_URL": template, "DEPLOY_STRATEGY": "hash", "MAX_WORKERS": "1"}


def run_attack(
    attack_env, sandbox_setting, tmp_path, remote, sqs, queues, watcher, extra=None, scripted_api=None, plant="script"
):
    """Victim, another thread of the attacker, the attack, the victim again. With `scripted_api` the agent is
    the real Claude Code CLI playing tests/attack/conversation.py; else the fake agent's `@fake attack`."""
    workspace = Path(attack_env["WORKSPACE_PATH"])
    markers = markers_folder(tmp_path)
    host, port = attack_env["AWS_ENDPOINT_URL"].removeprefix("http://").split(":")
    targets = {
        "markers": str(markers),
        "otherCheckout": str(workspace / "globex" / "u1" / "site"),
        "repoUrl": str(remote),
        "networkHost": host,
        "networkPort": int(port),
        "ownThread": "thread-chat-1",
        **(extra or {}),
    }
    env = {**attack_env, "SANDBOX": sandbox_setting}
    supervisor = SupervisorProcess(env, tmp_path / "supervisor.log", under=[sys.executable, str(INIT)])
    try:
        send(sqs, queues["input"], "victim-1", "globex", "A first page of the victim")
        send(sqs, queues["input"], "earlier-1", "acme", "Another thread's conversation", thread="chat-0")
        for command_id in ("victim-1", "earlier-1"):
            watcher.wait_for(lambda b, c=command_id: b.get("commandId") == c and b.get("type") == "response", 120)
        main_before = git_out(remote, "rev-parse", "main")
        compact = json.dumps(targets, separators=(",", ":"))
        instruction = f"Make the header blue\n@fake attack {PROBE} {compact} {plant}"
        if scripted_api is not None:
            instruction = "Make the header blue"
            scripted_api.when(instruction, attacker(targets))
        send(sqs, queues["input"], "attack-1", "acme", instruction)
        attacked = watcher.wait_for(lambda b: b.get("commandId") == "attack-1" and b.get("type") == "response", 180)
        send(sqs, queues["input"], "victim-2", "globex", "A second page of the victim")
        victim = watcher.wait_for(lambda b: b.get("commandId") == "victim-2" and b.get("type") == "response", 120)
    finally:
        assert supervisor.stop() == 0
    return attacked, victim, markers, main_before, supervisor


@needs_root
@pytest.mark.parametrize(
    ("agent", "sandbox_setting", "build_mode"),
    [("real CLI", "auto", "cold"), ("fake agent", "off", "cold"), ("fake agent", "off", "warm")],
)
def test_a_hostile_agent_and_build_reach_no_secret_no_git_of_ours_no_other_tenant(
    request, agent, sandbox_setting, build_mode, attack_env, tmp_path, remotes, sqs, s3, queues, watcher, bucket_prefix
):
    """With BUILD_MODE=warm the probe is in the site's config, run by the warm server (as its own uid, no
    kernel sandbox: as on Fargate), and the server outlives the build: stopped, then ended with the
    supervisor."""
    if sandbox_setting == "auto" and bwrap_missing() and os.environ.get("CI") != "true":
        pytest.skip("bubblewrap cannot run here (CI installs it)")
    scripted_api = None
    if agent == "real CLI":
        scripted_api = request.getfixturevalue("scripted_api")
        real = request.getfixturevalue("real_agent_env")
        agent_only = {k: v for k, v in real.items() if k.startswith(("ANTHROPIC_", "CLAUDE_")) or k == "PATH"}
        attack_env = {**{k: v for k, v in attack_env.items() if not k.startswith("AGENT_")}, **agent_only, **SECRETS}
    attack_env = {**attack_env, "BUILD_MODE": build_mode}
    attacked, victim, markers, main_before, supervisor = run_attack(
        attack_env,
        sandbox_setting,
        tmp_path,
        remotes["acme"],
        sqs,
        queues,
        watcher,
        scripted_api=scripted_api,
        plant="config" if build_mode == "warm" else "script",
    )
    workspace = Path(attack_env["WORKSPACE_PATH"])
    assert victim["success"] is True and "pwned" not in " ".join(victim["filesChanged"])
    found = assert_contained(
        attacked,
        bucket_objects(s3, f"{bucket_prefix}-acme"),
        markers=markers,
        site_remote=remotes["acme"],
        main_before=main_before,
        workspace=workspace,
        victim_objects=bucket_objects(s3, f"{bucket_prefix}-globex"),
        sandboxed=sandbox_setting == "auto",
        warm=build_mode == "warm",
    )
    if build_mode == "warm":
        assert [line["serverStarted"] for line in supervisor.log_lines() if line.get("event") == "built warm"]

    # The network: only with the kernel sandbox is the cloud API out of reach; the start-up line says which.
    layers = next(line for line in supervisor.log_lines() if line.get("event", "").startswith("containment"))
    assert layers["jobIdentity"] == "on" and layers["gitOutOfReach"] == "on"
    if sandbox_setting == "auto":
        assert layers["kernelSandbox"] == "on"
        assert all(report["findings"]["network"]["reached"] is False for report in found.values())
    else:
        assert layers["kernelSandbox"] == "off: SANDBOX=off"


@needs_root
def test_a_build_folder_swapped_for_a_link_deploys_nothing(
    attack_env, tmp_path, remotes, sqs, s3, queues, watcher, bucket_prefix
):
    attacked, _, _, _, _ = run_attack(
        attack_env, "auto", tmp_path, remotes["acme"], sqs, queues, watcher, extra={"linkBuildFolder": True}
    )
    assert attacked["errorCode"] == "BUILD_FAILED" and "symbolic link" in attacked["error"], attacked
    assert attacked["deploySuccess"] is False and attacked["pushSuccess"] is True
    # Nothing of the workspace went public (the site the earlier command deployed is all there is).
    keys = set(bucket_objects(s3, f"{bucket_prefix}-acme"))
    assert keys and not {key.split("/")[0] for key in keys} & {"acme", "globex", ".supervisor", ".agent", ".jobs"}
    assert not {key for key in keys if key.startswith("attack-")}


def test_sandbox_required_without_a_kernel_sandbox_refuses_to_start(supervisor_env, tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "bwrap").write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    (fake / "bwrap").chmod(0o755)
    env = {**supervisor_env, "SANDBOX": "required", "PATH": f"{fake}:{os.environ['PATH']}"}
    supervisor = SupervisorProcess(env, tmp_path / "supervisor.log")
    code = supervisor.process.wait(60)
    supervisor.stop()
    lines = [line for line in supervisor.log_path.read_text().splitlines() if not line.startswith("{")]
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("SANDBOX=required, but the kernel sandbox cannot run here: ") and "namespace" in lines[0]


def test_each_layer_says_why_it_is_off():
    from steps.job.runner import Containment

    layers = Containment(identity=False, sandbox=False, sandbox_off_reason="bwrap not installed").layers()
    assert layers == {
        "jobIdentity": "off: not running as root, jobs run as this user",
        "gitOutOfReach": "on",
        "kernelSandbox": "off: bwrap not installed",
    }


def job_processes(uid: int) -> list[int]:
    return [
        p.pid
        for p in psutil.process_iter(["uids", "status"])
        if p.info["uids"] and p.info["uids"].real == uid and p.info["status"] != psutil.STATUS_ZOMBIE
    ]


@needs_root
def test_with_every_layer_on_an_interrupt_reaches_every_process_of_the_job(
    supervisor_env, prewarm, make_bucket, site_remote, sqs, queues, watcher, tmp_path
):
    """The job runs as its own uid inside bubblewrap (its own PID namespace, env and bwrap ignoring SIGINT in
    front): the supervisor's ladder still reaches every process, the edits are committed as WIP."""
    if bwrap_missing() and os.environ.get("CI") != "true":
        pytest.skip("bubblewrap cannot run here (CI installs it)")
    prewarm()
    make_bucket("acme")
    env = {**supervisor_env, "SANDBOX": "auto", "INTERRUPT_GRACE_SECONDS": "2"}
    supervisor = SupervisorProcess(env, tmp_path / "supervisor.log")
    try:
        token = uuid.uuid4().hex  # in the agent's command line: other tests' agents sleep 120 s too
        lines = ["Rewrite the intro", f"@fake write intro.txt half done {token}", "@fake grandchild /tmp/gc.pid"]
        slow = "\n".join([*lines, "@fake sleep 120"])
        send(sqs, queues["input"], "cmd-a", "acme", slow, thread="chat-a")
        deadline = time.monotonic() + 60
        agents: list[psutil.Process] = []
        while not agents and time.monotonic() < deadline:
            agents = [p for p in psutil.process_iter(["cmdline"]) if token in " ".join(p.info["cmdline"] or [])]
            time.sleep(0.1)
        assert agents, supervisor.log_path.read_text()[-3000:]
        uid = agents[0].uids().real
        time.sleep(1)  # the grandchild (a session of its own) is up
        before = job_processes(uid)
        assert uid != 0 and len(before) >= 4  # bwrap, its init, the bridge, the agent, its grandchild
        send(sqs, queues["input"], "cmd-b", "acme", "Make the header blue", thread="chat-b")
        old, new = watcher.response("cmd-a"), watcher.response("cmd-b")
    finally:
        assert supervisor.stop() == 0
    assert old["interrupted"] is True and old["errorCode"] == "INTERRUPTED", old
    assert git_out(site_remote, "log", "-1", "--format=%s", "thread-chat-a") == "WIP: Rewrite the intro"
    assert "intro.txt" in git_out(site_remote, "show", "--name-only", "--format=", "thread-chat-a")
    assert new["success"] is True, new["error"]
    assert not [pid for pid in before if psutil.pid_exists(pid) and psutil.Process(pid).uids().real == uid]
    assert job_processes(uid) == []
