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
from fake_agent_marker import marker
from helpers import (
    QUICK_BUILD,
    REGION,
    ROOT,
    SupervisorProcess,
    agent_runs,
    commits_for,
    git_out,
    inbox_urls,
    prewarm_checkout,
    send,
    wait_until_settled,
)

from supervisor.sharing.lease_table import create_table

pytestmark = pytest.mark.e2e
LEASE_SECONDS = 5
CLIENTS = ("acme", "beta", "gamma", "delta")


@pytest.fixture
def dynamodb(aws_env):
    return boto3.client("dynamodb", region_name=REGION, endpoint_url=aws_env["AWS_ENDPOINT_URL"])


@pytest.fixture
def lease_table(dynamodb) -> str:
    name = f"leases-{uuid.uuid4().hex[:8]}"
    create_table(dynamodb, name)
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
        process.signal_stop()
    for process in started:
        process.stop()


def overlaps(spans_file: Path, killed: dict[int, float] | None = None) -> list[str]:
    """Pairs of agent runs that were in one checkout at the same time. An agent killed -9 records no end:
    `killed` gives the time the test killed it (and saw it gone); any other without one never ended."""
    runs: dict[int, dict] = defaultdict(dict)
    for line in spans_file.read_text().splitlines():
        record = json.loads(line)
        runs[record["pid"]].update(record)
    by_checkout: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for pid, run in runs.items():
        by_checkout[run["cwd"]].append((run["start"], run.get("end", (killed or {}).get(pid, float("inf")))))
    found = []
    for checkout, spans in by_checkout.items():
        spans.sort()
        found += [f"{checkout}: {a} {b}" for a, b in itertools.pairwise(spans) if b[0] < a[1]]
    return found


def logged(supervisor: SupervisorProcess, command_id: str, event: str) -> bool:
    return any(line.get("commandId") == command_id and line.get("event") == event for line in supervisor.log_lines())


def owner_of(supervisor: SupervisorProcess, command_id: str) -> bool:
    return logged(supervisor, command_id, "worker started")


def sharing_of(supervisor: SupervisorProcess) -> dict:
    """Its `sharing the queue` line: its owner id in the lease table and its inbox."""
    return next(line for line in supervisor.log_lines() if line.get("event") == "sharing the queue")


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.fixture
def deploys(s3, bucket_prefix, env):
    """Every version of acme's deployed home page (its bucket versioned now): one per deploy that wrote it."""
    bucket = f"{bucket_prefix}-acme"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    def home_pages() -> list[str]:
        listed = s3.list_object_versions(Bucket=bucket, Prefix="index.html").get("Versions", [])
        return [
            s3.get_object(Bucket=bucket, Key="index.html", VersionId=v["VersionId"])["Body"].read().decode()
            for v in listed
            if v["Key"] == "index.html"
        ]

    return home_pages


@pytest.fixture
def lease_of(dynamodb, lease_table):
    """A workspace's lease item (keyed `workspace` = client/user/repo), as plain values."""

    def read(workspace: str) -> dict:
        reply = dynamodb.get_item(TableName=lease_table, Key={"workspace": {"S": workspace}}, ConsistentRead=True)
        assert "Item" in reply, f"no lease item for {workspace}"
        return {key: next(iter(value.values())) for key, value in reply["Item"].items()}

    return read


def test_a_burst_over_four_workspaces_never_shares_a_checkout_and_each_command_is_answered_once(
    containers, sqs, queues, watcher, spans, site_remote, agent_log, workspace_root
):
    supervisors = containers(3)
    instructions = {}
    for round_ in range(3):
        for client in CLIENTS:
            command_id = f"{client}-{round_}"
            instructions[command_id] = f"Note {command_id}\n@fake sleep 0.5"
            send(sqs, queues, command_id, instructions[command_id], thread=f"t{round_}", client=client)
    for command_id in instructions:
        watcher.response(command_id, timeout=150)
    # No message left in the input queue or any inbox, no run in any container: no answer can follow.
    wait_until_settled(sqs, queues, supervisors, workspace_root)
    assert {sharing_of(s)["inbox"] for s in supervisors} <= set(inbox_urls(sqs, queues["input"]))  # all looked at
    answered = Counter(r["commandId"] for r in watcher.responses())
    assert answered == Counter(list(instructions)), answered
    assert overlaps(spans) == []
    ran_on = {i for i, s in enumerate(supervisors) for c in instructions if owner_of(s, c)}
    assert len(ran_on) >= 2, "the work was not shared"
    responses = {r["commandId"]: r for r in watcher.responses()}
    assert any(r["success"] for r in responses.values()), watcher.summary()
    for command_id, instruction in instructions.items():
        response, runs = responses[command_id], agent_runs(agent_log, instruction)
        whole = [commit for commit, subject in commits_for(site_remote, command_id) if not subject.startswith("WIP:")]
        assert runs <= 1, (command_id, runs)  # no container died: no command ran twice
        assert len(whole) <= 1, (command_id, whole)
        if response["success"]:  # its agent ran once; its one commit is on the remote, on its branch
            assert runs == 1 and whole == [response["commit"]], (command_id, runs, whole, response)
            assert response["branch"] in git_out(site_remote, "branch", "--contains", response["commit"]).split()
        else:  # the workspace's next command interrupted it, or four clients' pushes to one branch collided
            # (a rebase that conflicted, or a push rejected more often than it may rebase)
            assert response["errorCode"] in ("INTERRUPTED", "GIT_CONFLICT", "PUSH_FAILED"), response["error"]
            assert response["interrupted"] is (response["errorCode"] == "INTERRUPTED"), response


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
    containers, sqs, queues, watcher, site_remote, spans, agent_log, workspace_root, deploys, lease_of
):
    supervisors = containers(3)
    slow, footer = "Write a slow page\n@fake sleep 30", "Add a footer"
    send(sqs, queues, "slow", slow)
    wait_until(lambda: agent_runs(agent_log, slow) == 1, 60, "the agent of 'slow' never started")
    time.sleep(0.5)  # it has made its edit in the checkout
    (owner,) = [s for s in supervisors if owner_of(s, "slow")]
    sharing = sharing_of(owner)
    before = lease_of("acme/u1/site")  # held while it runs there
    assert before["owner"] == sharing["owner"], before
    # The owner's container dies: its supervisor and every process in it (worker, spare, agent), at once.
    tree = [psutil.Process(owner.process.pid), *psutil.Process(owner.process.pid).children(recursive=True)]
    killed = time.time()
    for process in tree:
        process.kill()
    owner.process.wait(10)
    assert psutil.wait_procs(tree, timeout=10)[1] == []
    dead_by = time.time()
    # "slow" comes back (its message on the input queue): a survivor takes the workspace over and runs it again.
    wait_until(lambda: agent_runs(agent_log, slow) == 2, 60, "'slow' did not run again")
    (new_owner,) = [s for s in supervisors if s is not owner and owner_of(s, "slow")]
    after = lease_of("acme/u1/site")  # the lease moved: the new owner's, with a higher fence
    assert after["owner"] == sharing_of(new_owner)["owner"] and int(after["fence"]) > int(before["fence"]), after
    time.sleep(0.5)  # the fake agent has made its edit: the interrupt has something to commit
    # A command forwarded to the dead owner by a container that read the lease before the takeover: only the
    # dead inbox has it (or, once that is swept, the input queue, as our failed forwards do). It reaches the
    # new owner after "slow" runs there, so it is the newer: it interrupts.
    body = {
        "instruction": footer,
        "commandId": "forwarded",
        "chatThreadId": "chat-b",
        "clientId": "acme",
        "userId": "u1",
    }
    try:
        sqs.send_message(QueueUrl=sharing["inbox"], MessageBody=json.dumps(body))
    except sqs.exceptions.QueueDoesNotExist:  # the survivor adopted and swept the empty inbox already: a
        sqs.send_message(QueueUrl=queues["input"], MessageBody=json.dumps(body))  # failed forward goes here
    old, newer = watcher.response("slow", timeout=90), watcher.response("forwarded", timeout=90)
    wait_until_settled(sqs, queues, supervisors, workspace_root)  # no message, run or answer left anywhere
    assert Counter(r["commandId"] for r in watcher.responses()) == Counter(["slow", "forwarded"])
    assert old["success"] is False and old["interrupted"] is True and old["errorCode"] == "INTERRUPTED", old
    assert newer["success"] is True, newer
    taken = [  # the takeover: the fence the new owner held
        line
        for line in new_owner.log_lines()
        if line.get("event") == "workspace lease taken" and int(line.get("fence", 0)) == int(after["fence"])
    ]
    assert taken, "the new owner never logged its takeover"
    took = datetime.fromisoformat(taken[0]["time"]).timestamp() - killed
    # The survivor must watch an unchanged lease for LEASE_SECONDS, after one keeper round (a quarter).
    assert took < LEASE_SECONDS * 1.25 + 3, took
    assert overlaps(spans, killed={process.pid: dead_by for process in tree}) == []
    # The agent of "slow" ran twice (on the dead owner, then on the new one), that of "forwarded" once.
    assert (agent_runs(agent_log, slow), agent_runs(agent_log, footer)) == (2, 1)
    # On the remote, alone on its branch, "slow" has two WIP commits and no whole one: the dead agent's edits
    # (the new owner found them in the checkout) and, on top, the new owner's interrupted ones. "forwarded"
    # has its one commit, alone on its branch.
    slow_commits = commits_for(site_remote, "slow")
    assert [subject for _, subject in slow_commits] == ["WIP: Write a slow page"] * 2, slow_commits
    assert slow_commits[0][0] == old["commit"]
    branch = git_out(site_remote, "log", "--format=%H", "main..thread-chat-a").split()
    assert branch == [commit for commit, _ in slow_commits]
    assert commits_for(site_remote, "forwarded") == [(newer["commit"], footer)]
    assert git_out(site_remote, "log", "--format=%H", "main..thread-chat-b").split() == [newer["commit"]]
    # One deploy in all, that of "forwarded": neither run of "slow" got that far.
    (page,) = deploys()
    assert marker(footer) in page and marker(slow) not in page
    # "forwarded" ran where the workspace was, on the new owner, whichever survivor read the dead inbox.
    assert [s for s in supervisors if owner_of(s, "forwarded")] == [new_owner]


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


def test_a_paused_owner_wakes_up_after_a_takeover_and_writes_nothing(
    env, sqs, queues, watcher, tmp_path, site_remote, agent_log, workspace_root, deploys, lease_of
):
    """SIGSTOP of a whole container (supervisor and worker) for longer than its lease: another takes the
    workspace over; once resumed, the old worker commits, deploys and pushes nothing, and both commands are
    answered once, by the new owner."""
    long, red = "Write a long page\n@fake sleep 6", "Make the header red"
    first = SupervisorProcess(env, tmp_path / "a.log")
    second = None
    try:
        send(sqs, queues, "long", long)
        wait_until(lambda: agent_runs(agent_log, long) == 1, 60, "the agent of 'long' never started")
        time.sleep(0.5)  # it has made its edit in the checkout
        second = SupervisorProcess(env, tmp_path / "b.log")
        before = lease_of("acme/u1/site")  # held by the first while it runs there
        assert before["owner"] == sharing_of(first)["owner"], before
        paused = [first.process.pid, *(p.pid for p in psutil.Process(first.process.pid).children(recursive=True))]
        for pid in paused:
            os.kill(pid, signal.SIGSTOP)
        # The lease runs out while the container is frozen: "long" comes back to the second container, which
        # takes the workspace over and runs it (its worker waits for the checkout's lock, the frozen worker's).
        wait_until(lambda: logged(second, "long", "command received"), 60, "the second container never took 'long'")
        after = lease_of("acme/u1/site")  # the second's now, with a higher fence: the frozen worker's is stale
        assert after["owner"] == sharing_of(second)["owner"] and int(after["fence"]) > int(before["fence"]), after
        # A newer command for the workspace, on another branch: it interrupts "long" on the new owner.
        send(sqs, queues, "newer", red, thread="chat-b")
        wait_until(lambda: logged(second, "long", "interrupting"), 30, "'newer' did not interrupt 'long'")
        for pid in paused:
            os.kill(pid, signal.SIGCONT)
        newer = watcher.response("newer", timeout=90)
        old = watcher.response("long", timeout=90)
        wait_until_settled(sqs, queues, [first, second], workspace_root)  # nothing left to run or answer
    finally:
        for process in (first, second):
            if process is not None:
                process.signal_stop()
        for process in (first, second):
            if process is not None:
                process.stop()
    assert Counter(r["commandId"] for r in watcher.responses()) == Counter(["long", "newer"])
    assert old["success"] is False and old["interrupted"] is True and old["errorCode"] == "INTERRUPTED", old
    assert newer["success"] is True, newer
    a_lines = first.log_lines()
    assert "workspace lease lost" in [line.get("event") for line in a_lines], first.log_path.read_text()[-3000:]
    # The frozen worker, woken up, was ended by its supervisor or saw the fence move. (The old container may
    # later take the workspace again, legitimately, with new workers.)
    frozen = [line for line in a_lines if line.get("process") == "worker" and line.get("pid") in paused]
    assert frozen and not [line for line in frozen if line.get("step") in ("commit", "deploy", "push")], frozen
    ended = [line["event"] for line in frozen if line["event"].startswith(("worker stopped", "stopping without"))]
    assert ended, frozen
    # By state: the agent of "long" ran once, the frozen one (the new owner's run was interrupted before its
    # agent); on the remote, "long" has only the new owner's WIP commit of the frozen agent's edits, alone on
    # its branch, and "newer" its one commit; the one deploy is that of "newer".
    assert (agent_runs(agent_log, long), agent_runs(agent_log, red)) == (1, 1)
    assert commits_for(site_remote, "long") == [(old["commit"], "WIP: Write a long page")]
    assert git_out(site_remote, "log", "--format=%H", "main..thread-chat-a").split() == [old["commit"]]
    assert commits_for(site_remote, "newer") == [(newer["commit"], red)]
    assert git_out(site_remote, "log", "--format=%H", "main..thread-chat-b").split() == [newer["commit"]]
    (page,) = deploys()
    assert marker(red) in page and marker(long) not in page


def test_a_command_sent_before_one_another_container_ran_is_superseded_not_run_after_it(
    env, sqs, queues, watcher, tmp_path, site_remote, agent_log, lease_of
):
    """ "old" is sent, then "new"; "new" runs on one container, which exits cleanly (its lease released);
    "old" reaches the next container only then. It must be answered as superseded, never run after "new"
    (before, the next container knew nothing of "new" and ran it)."""
    send(sqs, queues, "old", "Write the old page")
    # The test holds "old" (as a slow receive, a put-back copy or a forward would), so it arrives last.
    (held,) = sqs.receive_message(QueueUrl=queues["input"], VisibilityTimeout=600)["Messages"]
    time.sleep(0.01)  # SentTimestamp is in milliseconds
    send(sqs, queues, "new", "Write the new page")
    first = SupervisorProcess(env, tmp_path / "first.log")
    try:
        assert watcher.response("new", timeout=120)["success"] is True
    finally:
        assert first.stop() == 0
    recorded = lease_of("acme/u1/site")
    assert "owner" not in recorded and recorded["newestCommand"] == "new", recorded  # released, and kept
    second = SupervisorProcess(env, tmp_path / "second.log")
    try:
        sqs.change_message_visibility(
            QueueUrl=queues["input"], ReceiptHandle=held["ReceiptHandle"], VisibilityTimeout=0
        )
        response = watcher.response("old", timeout=60)
    finally:
        second.stop()
    assert response["errorCode"] == "INTERRUPTED" and "(new), sent after it" in response["error"], response
    assert agent_runs(agent_log, "Write the old page") == 0 and not owner_of(second, "old")
