"""Several containers on one queue (LEASE_TABLE): three real supervisors on moto's SQS and DynamoDB, one shared
workspace root (the EFS layout), real workers and git, the fake agent and the quick build."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import boto3
import psutil
import pytest
from helpers import QUICK_BUILD, REGION, ROOT, SupervisorProcess, git_out, prewarm_checkout, send

from supervisor.sharing.lease_table import create_table

pytestmark = pytest.mark.e2e
LEASE_SECONDS = 5
CLIENTS = ("acme", "beta", "gamma", "delta")


@pytest.fixture
def lease_table(aws_env) -> str:
    name = f"leases-{uuid.uuid4().hex[:8]}"
    create_table(boto3.client("dynamodb", region_name=REGION, endpoint_url=aws_env["AWS_ENDPOINT_URL"]), name)
    return name


@pytest.fixture
def spans(tmp_path) -> Path:
    return tmp_path / "agent-spans.jsonl"


@pytest.fixture
def env(supervisor_env, make_bucket, lease_table, spans):
    for client in CLIENTS:
        make_bucket(client)
    return {
        **supervisor_env,
        "LEASE_TABLE": lease_table,
        "LEASE_SECONDS": str(LEASE_SECONDS),
        "MAX_WORKERS": "1",
        "VISIBILITY_TIMEOUT_SECONDS": "6",
        "INTERRUPT_GRACE_SECONDS": "1",
        "BUILD_COMMAND": QUICK_BUILD,
        "PROGRESS_EVENTS": "true",
        "FAKE_CLAUDE_SPANS": str(spans),
    }


@pytest.fixture
def containers(tmp_path, env):
    started: list[SupervisorProcess] = []

    def launch(count: int) -> list[SupervisorProcess]:
        for _ in range(count):
            started.append(SupervisorProcess(env, tmp_path / f"supervisor-{len(started)}.log"))
        return started[-count:]

    yield launch
    for process in started:  # all at once: each stop waits out a long poll
        if process.process.poll() is None:
            process.process.send_signal(signal.SIGTERM)
    for process in started:
        process.stop()


def overlaps(spans_file: Path) -> list[str]:
    """Pairs of agent runs that were in one checkout at the same time."""
    runs: dict[int, dict] = defaultdict(dict)
    for line in spans_file.read_text().splitlines():
        record = json.loads(line)
        runs[record["pid"]].update(record)
    by_checkout: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for run in runs.values():
        by_checkout[run["cwd"]].append((run["start"], run.get("end", float("inf"))))
    found = []
    for checkout, spans in by_checkout.items():
        spans.sort()
        found += [f"{checkout}: {a} {b}" for a, b in itertools.pairwise(spans) if b[0] < a[1]]
    return found


def owner_of(supervisor: SupervisorProcess, command_id: str) -> bool:
    return any(
        line.get("commandId") == command_id and line.get("event") == "worker started" for line in supervisor.log_lines()
    )


def test_a_burst_over_four_workspaces_never_shares_a_checkout_and_each_command_is_answered_once(
    containers, sqs, queues, watcher, spans, site_remote
):
    supervisors = containers(3)
    sent = []
    for round_ in range(3):
        for client in CLIENTS:
            command_id = f"{client}-{round_}"
            send(sqs, queues, command_id, f"Note {command_id}\n@fake sleep 0.5", thread=f"t{round_}", client=client)
            sent.append(command_id)
    for command_id in sent:
        watcher.response(command_id, timeout=150)
    time.sleep(2)  # room for a second answer, were there one
    answered = Counter(r["commandId"] for r in watcher.responses())
    assert answered == Counter(sent), answered
    assert overlaps(spans) == []
    ran_on = {i for i, s in enumerate(supervisors) for c in sent if owner_of(s, c)}
    assert len(ran_on) >= 2, "the work was not shared"
    finished = [r for r in watcher.responses() if r["success"]]
    assert finished, watcher.summary()
    for response in finished:  # what a success says it pushed is on the remote, on its branch
        assert git_out(site_remote, "branch", "--contains", response["commit"]).strip() != ""


def test_an_interrupt_reaches_the_owner_whichever_container_receives_it(
    containers, sqs, queues, watcher, site_remote, env
):
    supervisors = containers(3)
    send(sqs, queues, "cmd-0", "Write page 0\n@fake sleep 30")
    watcher.progress("cmd-0", "agent")
    time.sleep(0.5)  # the fake agent has made its edit: the interrupt has something to commit
    (owner,) = [s for s in supervisors if owner_of(s, "cmd-0")]
    # SQS hands each newer command to any of the three (the other two are idle): send newer ones until
    # one landed elsewhere and was forwarded, each interrupting the one before on the owner.
    for round_ in range(1, 9):
        sent = time.monotonic()
        send(sqs, queues, f"cmd-{round_}", f"Write page {round_}\n@fake sleep 30")
        interrupted = watcher.response(f"cmd-{round_ - 1}", timeout=60)
        assert interrupted["interrupted"] is True and interrupted["errorCode"] == "INTERRUPTED"
        assert interrupted["_received"] - sent < 10  # not the 30 s the agent would take
        watcher.progress(f"cmd-{round_}", "agent")
        time.sleep(0.5)
        assert owner_of(owner, f"cmd-{round_}")  # the owner ran it, wherever it landed
        if any(line.get("event") == "forwarded to the owner" for s in supervisors for line in s.log_lines()):
            break
    else:
        pytest.fail("eight newer commands all landed on the owner itself")
    subjects = git_out(site_remote, "log", "--format=%s", "thread-chat-a").splitlines()
    assert len([s for s in subjects if s.startswith("WIP:")]) == round_, subjects  # each interrupted one
    # bin/status shows the leases of every container next to this host's workers.
    shown = subprocess.run([str(ROOT / "bin" / "status")], env=env, capture_output=True, text=True, timeout=30)
    owner_id = next(line["owner"] for line in owner.log_lines() if line.get("event") == "sharing the queue")
    assert shown.returncode == 0, shown.stderr
    assert f"acme/u1/site  owner={owner_id}" in shown.stdout and "inbox=0 waiting" in shown.stdout, shown.stdout


def test_kill_9_of_an_owner_hands_its_workspace_and_forwarded_commands_to_another(
    containers, sqs, queues, watcher, site_remote, spans
):
    supervisors = containers(3)
    send(sqs, queues, "slow", "Write a slow page\n@fake sleep 4")
    watcher.progress("slow", "agent")
    (owner,) = [s for s in supervisors if owner_of(s, "slow")]
    owner_inbox = next(line["inbox"] for line in owner.log_lines() if line.get("event") == "sharing the queue")
    # A command forwarded to the owner just before it dies: only its inbox has it.
    sqs.send_message(
        QueueUrl=owner_inbox,
        MessageBody=json.dumps(
            {
                "instruction": "Add a footer",
                "commandId": "forwarded",
                "chatThreadId": "chat-b",
                "clientId": "acme",
                "userId": "u1",
            }
        ),
    )
    owner.process.send_signal(signal.SIGSTOP)  # no more receives: the forwarded command stays in the inbox
    time.sleep(0.5)
    killed = time.time()
    owner.process.send_signal(signal.SIGKILL)
    owner.process.wait(10)
    # Both come back: "slow" (its message on the input queue) and "forwarded" (from the dead inbox,
    # adopted). Whichever arrives second interrupts the other, as in one container: both are answered.
    slow, newer = watcher.response("slow", timeout=90), watcher.response("forwarded", timeout=90)
    assert {slow["success"] or slow["interrupted"], newer["success"] or newer["interrupted"]} == {True}, (slow, newer)
    taken = [
        line
        for s in supervisors
        if s is not owner
        for line in s.log_lines()
        if line.get("event") == "workspace lease taken" and line.get("fence", 0) > 1
    ]
    assert taken, "no survivor took the workspace over"
    took = datetime.fromisoformat(taken[0]["time"]).timestamp() - killed
    # The survivor must watch an unchanged lease for LEASE_SECONDS, after one keeper round (a quarter).
    assert took < LEASE_SECONDS * 1.25 + 3, took
    assert overlaps(spans) == []
    time.sleep(2)
    assert Counter(r["commandId"] for r in watcher.responses()) == Counter(["slow", "forwarded"])
    for response in (slow, newer):  # what each says it committed (WIP or whole) reached the remote's branch
        if response["commit"]:
            assert git_out(site_remote, "branch", "--contains", response["commit"]).strip() == response["branch"]


def test_a_lease_table_that_cannot_be_used_stops_the_supervisor_with_one_clear_line(env, tmp_path):
    broken = SupervisorProcess({**env, "LEASE_TABLE": "no-such-table"}, tmp_path / "broken.log")
    code = broken.process.wait(30)
    broken.stop()  # closes the log
    assert code == 2
    text = broken.log_path.read_text()
    assert "cannot share the queue: LEASE_TABLE no-such-table: ResourceNotFoundException" in text
    assert "Traceback" not in text and "exception" not in text


def test_on_per_container_disks_a_takeover_starts_from_the_remote_and_says_what_stayed_behind(
    env, sqs, queues, watcher, tmp_path, site_remote, installed_site
):
    """Two containers, two disks: the one that takes a dead owner's workspace works from the remote and
    its response warns that the other disk may still hold unpushed work and the agent's memory."""
    disks = [tmp_path / "disk-a", tmp_path / "disk-b"]
    for disk in disks:
        prewarm_checkout(disk, site_remote, installed_site, "acme", "u1")
    first = SupervisorProcess({**env, "WORKSPACE_PATH": str(disks[0])}, tmp_path / "a.log")
    try:
        send(sqs, queues, "slow", "Write a slow page\n@fake sleep 5")
        watcher.progress("slow", "agent")
        second = SupervisorProcess({**env, "WORKSPACE_PATH": str(disks[1])}, tmp_path / "b.log")
        first.process.kill()
        first.process.wait(10)
        response = watcher.response("slow", timeout=90)
    finally:
        first.stop()
    second.stop()
    assert response["success"] is True, response
    (warning,) = [w for w in response.get("warnings", []) if "another disk" in w]
    assert "not pushed (none recorded)" in warning and "agent's memory" in warning
    assert response["commit"] in git_out(site_remote, "rev-parse", "thread-chat-a")
    assert (disks[1] / "acme" / "u1" / ".site.git").is_dir()  # the survivor's own checkout did the work


def test_a_paused_owner_wakes_up_after_a_takeover_and_writes_nothing(env, sqs, queues, watcher, tmp_path, site_remote):
    """SIGSTOP of a whole container (supervisor and worker) for longer than its lease: another takes the
    workspace over; once resumed, the old worker commits and pushes nothing, and both commands are answered."""
    first = SupervisorProcess(env, tmp_path / "a.log")
    second = None
    try:
        send(sqs, queues, "long", "Write a long page\n@fake sleep 6")
        watcher.progress("long", "agent")
        second = SupervisorProcess(env, tmp_path / "b.log")
        paused = [first.process.pid, *(p.pid for p in psutil.Process(first.process.pid).children(recursive=True))]
        for pid in paused:
            os.kill(pid, signal.SIGSTOP)
        time.sleep(LEASE_SECONDS + 3)  # the lease runs out while the container is frozen
        send(sqs, queues, "newer", "Make the header red")
        deadline = time.monotonic() + 30
        while not any(line.get("event") == "workspace lease taken" for line in second.log_lines()):
            assert time.monotonic() < deadline, "the second container never took the workspace"
            time.sleep(0.2)
        for pid in paused:
            os.kill(pid, signal.SIGCONT)
        newer = watcher.response("newer", timeout=90)
        long = watcher.response("long", timeout=90)
    finally:
        for process in (first, second):
            if process is not None:
                process.process.send_signal(signal.SIGTERM)
        for process in (first, second):
            if process is not None:
                process.stop()
    a_lines = first.log_lines()
    assert "workspace lease lost" in [line.get("event") for line in a_lines], first.log_path.read_text()[-3000:]
    # The frozen worker, woken up, was ended by its supervisor or saw the fence move: no commit, deploy or
    # push of its own. (The old container may later take the workspace again, legitimately, with new workers.)
    frozen = [line for line in a_lines if line.get("process") == "worker" and line.get("pid") in paused]
    assert frozen and not [line for line in frozen if line.get("step") in ("commit", "deploy", "push")], frozen
    ended = [line["event"] for line in frozen if line["event"].startswith(("worker stopped", "stopping without"))]
    assert ended, frozen
    assert newer["success"] or newer["interrupted"]
    assert long["success"] or long["interrupted"]  # answered once, by the new owner
    time.sleep(1)
    assert Counter(r["commandId"] for r in watcher.responses()) == Counter(["long", "newer"])
