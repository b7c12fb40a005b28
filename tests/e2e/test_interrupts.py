"""Interrupts with real processes and real signals: nothing of the old tree survives, nothing is lost.

Each test runs the real supervisor against moto's SQS and S3, a bare remote, real npm/astro/aws.
"""

from __future__ import annotations

import time

import psutil
import pytest
from fake_agent_marker import marker
from helpers import (
    QUICK_BUILD,
    OutputWatcher,
    SupervisorProcess,
    drain,
    git_out,
    processes_in,
    processes_with,
    send,
    still_alive,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def start(supervisor_env, queues, sqs, tmp_path, make_bucket):
    """Start a supervisor (PROGRESS_EVENTS on, short grace) and an output watcher; stop both at the end."""
    started: list[tuple[SupervisorProcess, OutputWatcher]] = []
    make_bucket("acme")

    def launch(**overrides: str) -> tuple[SupervisorProcess, OutputWatcher]:
        env = {**supervisor_env, "PROGRESS_EVENTS": "true", "INTERRUPT_GRACE_SECONDS": "1", **overrides}
        process = SupervisorProcess(env, tmp_path / f"supervisor-{len(started)}.log")
        watcher = started[0][1] if started else OutputWatcher(sqs, queues["output"])
        started.append((process, watcher))
        return process, watcher

    yield launch
    for process, _ in started:
        process.stop()
    if started:
        started[0][1].stop()


def statuses(response):
    return {step["name"]: step["status"] for step in response["steps"]}


def test_interrupt_during_the_agent_ends_every_process_and_commits_the_edits(
    start, prewarm, sqs, queues, site_remote, tmp_path
):
    checkout = prewarm()
    supervisor, watcher = start()
    pidfile, agent_pid = tmp_path / "grandchild.pid", tmp_path / "agent.pid"
    slow = "\n".join(
        [
            "Rewrite the intro",
            f"@fake pidfile {agent_pid}",
            f"@fake grandchild {pidfile}",
            "@fake ignore-sigint",
            "@fake sleep 120",
        ]
    )
    send(sqs, queues, "cmd-a", slow, thread="chat-a")
    deadline = time.monotonic() + 60
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    tree = processes_in(checkout)  # agent, its grandchild (own session) and anything else in the checkout
    grandchild = int(pidfile.read_text())
    assert grandchild in tree and int(agent_pid.read_text()) in tree
    started_before = {child.pid for child in psutil.Process(supervisor.process.pid).children()}

    send(sqs, queues, "cmd-b", "Make the header blue", thread="chat-b")
    old = watcher.response("cmd-a")
    new = watcher.response("cmd-b")

    assert old["interrupted"] is True and old["errorCode"] == "INTERRUPTED" and old["success"] is False
    assert statuses(old) == {
        "workspace": "ok",
        "agent": "interrupted",
        "commit": "skipped",
        "build": "skipped",
        "deploy": "skipped",
        "push": "skipped",
    }
    assert still_alive(tree) == [] and not psutil.pid_exists(grandchild)
    # The agent's command line holds its instruction, this test's own paths in it (other tests sleep too).
    assert processes_with(marker(slow)) == [] and processes_with(str(agent_pid)) == []
    # The interrupted edits are a WIP commit on its own branch, on the remote.
    assert old["commit"] == git_out(site_remote, "rev-parse", "thread-chat-a") and old["pushSuccess"]
    assert git_out(site_remote, "log", "-1", "--format=%s", "thread-chat-a") == "WIP: Rewrite the intro"
    assert "Command-Id: cmd-a" in git_out(site_remote, "log", "-1", "--format=%B", "thread-chat-a")
    # The new command started on a clean tree: none of the old command's edits on its branch.
    assert new["success"] is True, new["error"]
    home = git_out(site_remote, "show", "thread-chat-b:src/pages/index.astro")
    assert marker(slow) not in home and marker("Make the header blue") in home
    assert "Rewrite the intro" not in git_out(site_remote, "show", "thread-chat-b:notes/instructions.txt")
    # Both workers the interrupt took in a row (committing cmd-a's edits, then cmd-b's) were started before
    # cmd-b arrived: neither waited for an interpreter to start and import (issue 21, interrupt latency).
    lines = [line for line in supervisor.log_lines() if line.get("event") == "worker started"]
    workers = {(line["commandId"], line["mode"]): line["pid"] for line in lines}
    assert {workers["cmd-a", "interrupted"], workers["cmd-b", "run"]} <= started_before, (workers, started_before)


def test_interrupt_during_the_build_ends_npm_node_and_astro(start, prewarm, sqs, queues, site_remote):
    checkout = prewarm()
    _, watcher = start()
    send(sqs, queues, "cmd-a", "Add a slow page\n@fake slow-build 120", thread="chat-a")
    watcher.progress("cmd-a", "build", "started")
    deadline = time.monotonic() + 30
    while not any("astro" in " ".join(p.cmdline()) for p in map(psutil.Process, processes_in(checkout))):
        assert time.monotonic() < deadline, "astro build never started"
        time.sleep(0.05)
    tree = processes_in(checkout)
    names = {psutil.Process(pid).name() for pid in tree}
    assert {"npm run build", "node"} & names or len(tree) >= 2, names

    send(sqs, queues, "cmd-b", "@fake no-change", thread="chat-b")
    old = watcher.response("cmd-a")
    assert old["interrupted"] is True and statuses(old)["build"] == "interrupted"
    assert statuses(old)["commit"] == "ok" and old["buildSuccess"] is False and old["deploySuccess"] is False
    assert still_alive(tree) == []
    # The agent's commit (no WIP needed: the build leaves no edits) is pushed to its own branch.
    assert git_out(site_remote, "log", "-1", "--format=%s", "thread-chat-a") == "Add a slow page"
    new = watcher.response("cmd-b")
    assert new["success"] is True, new["error"]
    assert "slow.astro" not in git_out(site_remote, "ls-tree", "-r", "--name-only", "thread-chat-b")


def test_interrupt_during_the_aws_sync(start, prewarm, sqs, queues, site_remote):
    checkout = prewarm()
    _, watcher = start(DEPLOY_STRATEGY="aws-cli")
    send(sqs, queues, "cmd-a", "Add downloads\n@fake many-files public/bulk 3000", thread="chat-a")
    watcher.progress("cmd-a", "deploy", "started")
    deadline = time.monotonic() + 30
    while not any("aws" in " ".join(psutil.Process(p).cmdline()) for p in processes_in(checkout)):
        assert time.monotonic() < deadline, "aws s3 sync never started"
        time.sleep(0.02)
    tree = processes_in(checkout)

    send(sqs, queues, "cmd-b", "@fake no-change", thread="chat-b")
    old = watcher.response("cmd-a")
    assert old["interrupted"] is True and statuses(old)["deploy"] == "interrupted"
    assert statuses(old)["build"] == "ok" and old["deploySuccess"] is False
    # Its sync names this checkout's build folder (another test's sync may run on the other test process).
    assert still_alive(tree) == [] and processes_with(str(checkout.resolve() / "dist")) == []
    assert git_out(site_remote, "log", "-1", "--format=%s", "thread-chat-a") == "Add downloads"
    assert watcher.response("cmd-b")["success"] is True


def test_a_b_a_keeps_each_sessions_edits_on_its_own_branch(start, prewarm, sqs, queues, site_remote, tmp_path):
    prewarm()
    _, watcher = start(BUILD_COMMAND=QUICK_BUILD)
    first_a = f"Edit for A one\n@fake write a-one.txt from A\n@fake pidfile {tmp_path / 'a1'}\n@fake sleep 60"
    only_b = f"Edit for B\n@fake write b.txt from B\n@fake pidfile {tmp_path / 'b'}\n@fake sleep 60"
    send(sqs, queues, "a1", first_a, thread="chat-a")
    watcher.progress("a1", "agent")
    wait_for_file(tmp_path / "a1")
    send(sqs, queues, "b", only_b, thread="chat-b")
    watcher.progress("b", "agent")
    wait_for_file(tmp_path / "b")
    send(sqs, queues, "a2", "Edit for A two\n@fake write a-two.txt from A again", thread="chat-a")

    for command_id in ("a1", "b"):
        assert watcher.response(command_id)["interrupted"] is True
    assert watcher.response("a2")["success"] is True

    files_a = set(git_out(site_remote, "ls-tree", "-r", "--name-only", "thread-chat-a").split())
    files_b = set(git_out(site_remote, "ls-tree", "-r", "--name-only", "thread-chat-b").split())
    assert {"a-one.txt", "a-two.txt"} <= files_a and "b.txt" not in files_a
    assert "b.txt" in files_b and not {"a-one.txt", "a-two.txt"} & files_b
    subjects = git_out(site_remote, "log", "--format=%s", "thread-chat-a").splitlines()
    assert subjects[:2] == ["Edit for A two", "WIP: Edit for A one"]
    assert git_out(site_remote, "log", "-1", "--format=%s", "thread-chat-b") == "WIP: Edit for B"


def test_two_workspaces_run_side_by_side(start, prewarm, sqs, queues, make_bucket):
    prewarm("acme")
    prewarm("globex")
    make_bucket("globex")
    _, watcher = start(MAX_WORKERS="2", BUILD_COMMAND=QUICK_BUILD)
    # Both clients' sites share the test remote: one thread each, so their branches differ.
    send(sqs, queues, "acme-1", "Acme change\n@fake sleep 3", client="acme", thread="chat-acme")
    send(sqs, queues, "globex-1", "Globex change\n@fake sleep 3", client="globex", thread="chat-globex")
    acme, globex = watcher.response("acme-1"), watcher.response("globex-1")
    assert acme["success"] and globex["success"], (acme["error"], globex["error"])
    # Both agents were running at once: each started before the other finished.
    acme_started, globex_started = watcher.progress("acme-1", "agent"), watcher.progress("globex-1", "agent")
    acme_done = watcher.progress("acme-1", "agent", "finished")
    globex_done = watcher.progress("globex-1", "agent", "finished")
    assert acme_started["_received"] < globex_done["_received"] and globex_started["_received"] < acme_done["_received"]


def test_extra_commands_wait_for_a_free_worker(start, prewarm, sqs, queues, make_bucket):
    for client in ("acme", "globex"):
        prewarm(client)
    make_bucket("globex")
    _, watcher = start(MAX_WORKERS="1", BUILD_COMMAND=QUICK_BUILD)
    send(sqs, queues, "acme-1", "Acme change\n@fake sleep 2", client="acme", thread="chat-acme")
    send(sqs, queues, "globex-1", "Globex change", client="globex", thread="chat-globex")
    assert watcher.response("acme-1")["success"] and watcher.response("globex-1")["success"]
    assert watcher.progress("globex-1", "workspace")["_received"] >= watcher.response("acme-1")["_received"] - 0.5


def wait_for_file(path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_message_is_deleted_only_after_its_response(start, prewarm, sqs, queues):
    prewarm()
    _, watcher = start(BUILD_COMMAND=QUICK_BUILD)
    send(sqs, queues, "cmd-1", "@fake no-change\n@fake sleep 2")
    watcher.progress("cmd-1", "agent")
    in_flight = sqs.get_queue_attributes(QueueUrl=queues["input"], AttributeNames=["All"])["Attributes"]
    assert in_flight["ApproximateNumberOfMessagesNotVisible"] == "1"
    watcher.response("cmd-1")
    time.sleep(0.5)
    after = sqs.get_queue_attributes(QueueUrl=queues["input"], AttributeNames=["All"])["Attributes"]
    assert after["ApproximateNumberOfMessagesNotVisible"] == "0" and after["ApproximateNumberOfMessages"] == "0"
    assert drain(sqs, queues["dlq"], expect=1, timeout=1) == []
