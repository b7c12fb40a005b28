"""Deaths and stops with real signals: a worker or the supervisor killed -9, SIGTERM mid-build, a burst."""

from __future__ import annotations

import json
import os
import random
import signal
import time

import psutil
import pytest
from helpers import (
    QUICK_BUILD,
    SupervisorProcess,
    agent_runs,
    commits_for,
    git_out,
    processes_in,
    queue_depth,
    send,
    still_alive,
    wait_until_settled,
)

from supervisor.status import read_status, status_path

pytestmark = pytest.mark.e2e


@pytest.fixture
def env(supervisor_env, make_bucket):
    make_bucket("acme")
    return {**supervisor_env, "PROGRESS_EVENTS": "true", "INTERRUPT_GRACE_SECONDS": "1"}


@pytest.fixture
def supervisors(tmp_path):
    started: list[SupervisorProcess] = []

    def launch(environment: dict[str, str]) -> SupervisorProcess:
        process = SupervisorProcess(environment, tmp_path / f"supervisor-{len(started)}.log")
        started.append(process)
        return process

    yield launch
    for process in started:
        process.stop()


def worker_pid(workspace_root, command_id: str, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = read_status(status_path(workspace_root))
        except (OSError, ValueError):
            status = {"workers": []}
        for worker in status["workers"]:
            if worker["commandId"] == command_id and worker["workerPid"]:
                return int(worker["workerPid"])
        time.sleep(0.05)
    raise AssertionError(f"no worker for {command_id} in the status file")


def queue_counts(sqs, url: str) -> tuple[int, int]:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_a_worker_killed_by_signal_9_is_reported_and_its_message_redelivered(
    env, prewarm, sqs, queues, watcher, supervisors, workspace_root, tmp_path, site_remote, agent_log
):
    checkout = prewarm()
    supervisor = supervisors({**env, "BUILD_COMMAND": QUICK_BUILD})
    grandchild = tmp_path / "grandchild.pid"
    instruction = f"Make it so\n@fake grandchild {grandchild}\n@fake sleep 4"
    send(sqs, queues, "cmd-1", instruction)
    watcher.progress("cmd-1", "agent")
    pid = worker_pid(workspace_root, "cmd-1")
    while not grandchild.exists():
        time.sleep(0.05)
    tree = processes_in(checkout)
    os.kill(pid, signal.SIGKILL)

    retrying = watcher.wait_for(lambda b: b.get("status") == "retrying", 30, "the retrying progress event")
    assert retrying["commandId"] == "cmd-1" and "signal 9" in retrying["reason"]
    # Left for redelivery, run again, and answered once: no WORKER_DIED before the last try.
    done = watcher.wait_for(lambda b: b["type"] == "response" and b["success"], 90, "the retried command")
    assert done["commandId"] == "cmd-1"
    # The orphaned agent and its grandchild were ended: by the supervisor when the worker died, or, when the
    # agent was itself exiting as the supervisor looked (its child not yet re-parented to it), by its stray
    # sweep a few ticks later or the retry's worker, which ends every process of the job's uid first.
    assert still_alive(tree) == []
    wait_until_settled(sqs, queues, [supervisor], workspace_root)  # no message or run left: no answer can follow
    assert [b["commandId"] for b in watcher.responses()] == ["cmd-1"]
    # Its agent ran twice. On the remote: the dead run's edits, which the retry found in the checkout and
    # committed as WIP, then the one whole commit of the command.
    assert agent_runs(agent_log, instruction) == 2
    pushed = commits_for(site_remote, "cmd-1")
    assert [subject for _, subject in pushed] == ["Make it so", "WIP: Make it so"] and pushed[0][0] == done["commit"]


def test_supervisor_killed_by_signal_9_mid_build_resumes_without_a_second_agent_run(
    env, prewarm, sqs, queues, watcher, supervisors, site_remote, agent_log, workspace_root
):
    checkout = prewarm()
    environment = {**env, "VISIBILITY_TIMEOUT_SECONDS": "6"}
    first = supervisors(environment)
    send(sqs, queues, "cmd-1", "Add a slow page\n@fake slow-build 6")
    watcher.progress("cmd-1", "build")
    time.sleep(1)
    tree = processes_in(checkout)
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    deadline = time.monotonic() + 15
    while still_alive(tree) and time.monotonic() < deadline:  # the worker follows its parent (PDEATHSIG)
        time.sleep(0.1)
    assert still_alive(tree) == []

    second = supervisors(environment)
    response = watcher.response("cmd-1", timeout=120)
    assert response["success"] is True, response["error"]
    wait_until_settled(sqs, queues, [second], workspace_root)  # no message or run left: no later run either
    assert [b["commandId"] for b in watcher.responses()] == ["cmd-1"]
    assert agent_runs(agent_log, "Add a slow page\n@fake slow-build 6") == 1  # the agent ran once
    # One commit of the command on the remote, the branch's head.
    assert commits_for(site_remote, "cmd-1") == [(response["commit"], "Add a slow page")]
    assert git_out(site_remote, "rev-parse", "thread-chat-a") == response["commit"]


def test_supervisor_killed_by_signal_9_mid_agent_leaves_no_process_of_the_agent(
    env, prewarm, sqs, queues, watcher, supervisors, agent_log
):
    """The agent runs as the job's uid in a session of its own: when the supervisor dies, its worker
    (PDEATHSIG) must end it on the way out, since no ladder of the supervisor's will."""
    checkout = prewarm()
    first = supervisors(env)
    send(sqs, queues, "cmd-1", "Think for long\n@fake sleep 30")
    watcher.progress("cmd-1", "agent")
    deadline = time.monotonic() + 20
    while agent_runs(agent_log, "Think for long\n@fake sleep 30") < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    tree = processes_in(checkout)
    assert tree, "the agent is not running in the checkout"
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    deadline = time.monotonic() + 15
    while still_alive(tree) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = still_alive(tree)
    assert left == [], [psutil.Process(pid).cmdline()[:3] for pid in left]


def test_sigterm_during_a_build_exits_in_grace_and_returns_the_message(
    env, prewarm, sqs, queues, watcher, supervisors, site_remote
):
    checkout = prewarm()
    supervisor = supervisors({**env, "SHUTDOWN_GRACE_SECONDS": "6"})
    send(sqs, queues, "cmd-1", "Add a slow page\n@fake slow-build 60")
    watcher.progress("cmd-1", "build")
    time.sleep(0.5)
    tree = processes_in(checkout)
    started = time.monotonic()
    supervisor.process.send_signal(signal.SIGTERM)
    code = supervisor.process.wait(30)
    assert code == 0 and time.monotonic() - started < 6 + 1.5
    assert still_alive(tree) == []
    assert queue_counts(sqs, queues["input"]) == (1, 0)  # visible again at once for the next consumer
    assert not [b for b in watcher.bodies if b["type"] == "response"]  # unfinished: no final answer
    # Nothing committed was lost: the agent's commit is on the remote.
    assert git_out(site_remote, "log", "-1", "--format=%s", "thread-chat-a") == "Add a slow page"


def test_a_second_signal_stops_at_once_with_no_survivors(env, prewarm, sqs, queues, watcher, supervisors):
    checkout = prewarm()
    supervisor = supervisors({**env, "SHUTDOWN_GRACE_SECONDS": "60", "BUILD_COMMAND": QUICK_BUILD})
    send(sqs, queues, "cmd-1", "Slow agent\n@fake ignore-sigint\n@fake sleep 120")
    watcher.progress("cmd-1", "agent")
    time.sleep(0.5)
    tree = processes_in(checkout)
    started = time.monotonic()
    supervisor.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    supervisor.process.send_signal(signal.SIGINT)
    code = supervisor.process.wait(30)
    assert code == 4 and time.monotonic() - started < 10
    assert still_alive(tree) == []
    assert queue_counts(sqs, queues["input"]) == (1, 0)


def test_a_burst_of_valid_and_invalid_messages_gets_exactly_one_answer_each(
    env, prewarm, sqs, queues, watcher, supervisors, make_bucket, workspace_root, site_remote, agent_log
):
    clients = ("acme", "globex", "initech")
    for client in clients:
        prewarm(client)
        if client != "acme":
            make_bucket(client)
    supervisor = supervisors({**env, "BUILD_COMMAND": QUICK_BUILD, "PROGRESS_EVENTS": "false"})
    rng = random.Random(7)
    valid: dict[str, str] = {}  # command id → instruction
    invalid: list[str] = []
    for index in range(50):
        client = clients[index % 3]
        command_id = f"burst-{index:02d}"
        if rng.random() < 0.2:
            invalid.append(command_id)
            body = {"commandId": command_id, "instruction": "", "chatThreadId": "t", "clientId": client, "userId": "u1"}
        else:
            valid[command_id] = f"Change {index}\n@fake write burst/{index}.txt {index}"
            body = {
                "commandId": command_id,
                "instruction": valid[command_id],
                "chatThreadId": f"chat-{client}",
                "clientId": client,
                "userId": "u1",
            }
        sqs.send_message(QueueUrl=queues["input"], MessageBody=json.dumps(body))

    expected = len(valid) + len(invalid)
    deadline = time.monotonic() + 240
    while len(watcher.responses()) < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    wait_until_settled(sqs, queues, [supervisor], workspace_root)  # no message or run left: no answer can follow
    answers = [r["commandId"] for r in watcher.responses()]
    assert sorted(answers) == sorted([*valid, *invalid]), watcher.summary()
    by_id = {r["commandId"]: r for r in watcher.responses()}
    for command_id in invalid:  # answered, then dead-lettered once
        assert (by_id[command_id]["success"], by_id[command_id]["errorCode"]) == (False, "INVALID_MESSAGE")
    assert queue_depth(sqs, queues["dlq"]) == len(invalid)
    # Each valid one finished, or a newer command of its workspace interrupted it (or superseded it before it
    # started); nothing else can happen to it here. The agent ran at most once per command (nothing died),
    # and once with exactly one commit on the remote, on the client's branch, for one that finished.
    for command_id, instruction in valid.items():
        response, runs = by_id[command_id], agent_runs(agent_log, instruction)
        whole = [commit for commit, subject in commits_for(site_remote, command_id) if not subject.startswith("WIP:")]
        if response["success"]:
            assert (response["errorCode"], response["interrupted"]) == (None, False), response
            assert runs == 1 and whole == [response["commit"]], (command_id, runs, whole, response["commit"])
            assert response["branch"] in git_out(site_remote, "branch", "--contains", response["commit"]).split()
        else:
            assert (response["errorCode"], response["interrupted"]) == ("INTERRUPTED", True), response["error"]
            assert runs <= 1 and len(whole) <= 1, (command_id, runs, whole)
    # The newest command of each workspace always completes.
    for client in clients:
        last = [c for c in valid if int(c.split("-")[1]) % 3 == clients.index(client)][-1]
        assert by_id[last]["success"] is True, by_id[last]["error"]
