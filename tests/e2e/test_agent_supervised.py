"""The real Claude Code CLI under the real supervisor: SQS in and out, real Astro builds, real signals.

The agent has no configuration at all beyond what the container sets (real_agent_env plus the
Dockerfile's ENV lines), so these tests are what a new user gets.
"""

from __future__ import annotations

import re
import time

import psutil
import pytest
from helpers import ROOT, OutputWatcher, SupervisorProcess, bucket_keys, git_out, processes_in, send
from scripted_api import Slow, Text, ToolCall, steps

pytestmark = pytest.mark.e2e


def dockerfile_agent_env() -> dict[str, str]:
    """The agent variables the image sets (ENV lines of the Dockerfile): the container's defaults."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    pairs = re.findall(r"(?m)^ENV\s+(.*)$", text)
    found = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', " ".join(pairs)))
    return {k: v.strip('"') for k, v in found.items() if k.startswith(("AGENT_", "CLAUDE_"))}


@pytest.fixture
def supervised(real_agent_env, queues, sqs, tmp_path, make_bucket):
    """Start supervisors with the real CLI and PROGRESS_EVENTS on; one output watcher for all."""
    make_bucket("acme")
    env = {
        **real_agent_env,
        **dockerfile_agent_env(),
        "INPUT_QUEUE_URL": queues["input"],
        "OUTPUT_QUEUE_URL": queues["output"],
        "DLQ_URL": queues["dlq"],
        "SHUTDOWN_GRACE_SECONDS": "3",
        "PROGRESS_EVENTS": "true",
        "INTERRUPT_GRACE_SECONDS": "2",
    }
    started: list[SupervisorProcess] = []
    watcher = OutputWatcher(sqs, queues["output"])

    def launch(**overrides: str) -> SupervisorProcess:
        process = SupervisorProcess({**env, **overrides}, tmp_path / f"supervisor-{len(started)}.log")
        started.append(process)
        return process

    yield launch, watcher
    for process in started:
        process.stop()
    watcher.stop()


def test_a_title_change_goes_live_and_the_next_command_after_a_restart_remembers_it(
    supervised, prewarm, sqs, queues, s3, bucket_prefix, site_remote, scripted_api
):
    launch, watcher = supervised
    prewarm()
    # A stopped supervisor's last long poll may still take a message (moto, like SQS, answers it to
    # nobody); a short lease brings such a message back quickly.
    supervisor = launch(VISIBILITY_TIMEOUT_SECONDS="6")
    send(sqs, queues, "cmd-title", "Change the title to Stamps by Amelia", thread="chat-a")
    first = watcher.response("cmd-title")
    assert first["success"] is True, first["error"]
    assert first["buildSuccess"] and first["deploySuccess"] and first["pushSuccess"]
    live = bucket_keys(s3, f"{bucket_prefix}-acme")["index.html"].decode()
    assert "<h1>Stamps by Amelia</h1>" in live  # built by Astro, deployed to the preview bucket
    assert git_out(site_remote, "rev-parse", "thread-chat-a") == first["commit"]
    assert first["agent"]["costUsd"] > 0

    # Each tool use of the agent reached the chat as it happened, with its target in the checkout.
    tools = [b for b in watcher.bodies if b["type"] == "progress" and b["status"] == "tool"]
    assert [(b["tool"], b["target"]) for b in tools][:1] == [("Read", "src/layouts/Base.astro")]
    assert all(b["step"] == "agent" and b["commandId"] == "cmd-title" for b in tools)
    assert tools[0]["_received"] < first["_received"]  # live, not with the response
    assert supervisor.stop() == 0

    # A new supervisor (a restarted container): the thread's conversation goes on.
    launch(VISIBILITY_TIMEOUT_SECONDS="6")
    send(sqs, queues, "cmd-page", "Add a page called contact", thread="chat-a")
    second = watcher.response("cmd-page")
    assert second["success"] is True, second["error"]
    assert second["agent"]["resumed"] is True and second["agent"]["sessionId"] == first["agent"]["sessionId"]
    assert (
        "Change the title to Stamps by Amelia"
        in scripted_api.conversations("Add a page called contact")[0].user_texts()
    )
    assert "contact/index.html" in bucket_keys(s3, f"{bucket_prefix}-acme")


def test_a_busy_agent_sends_at_most_one_tool_event_a_second(supervised, prewarm, sqs, queues, scripted_api):
    launch, watcher = supervised
    prewarm()
    launch(BUILD_COMMAND="true")
    look = [ToolCall("Bash", {"command": f"ls src # look {n}", "description": "look"}) for n in range(12)]
    scripted_api.when("Look around", steps(*look, Text("Looked.")))
    send(sqs, queues, "cmd-busy", "Look around", thread="chat-b")
    response = watcher.response("cmd-busy")
    tools = [b for b in watcher.bodies if b["type"] == "progress" and b["status"] == "tool"]
    agent_seconds = next(s["durationMs"] for s in response["steps"] if s["name"] == "agent") / 1000
    # At most one a second: the first at once, then one per second of the agent's run at most.
    assert 1 <= len(tools) <= agent_seconds + 1 and len(tools) < 12, (len(tools), agent_seconds)


def test_an_interrupt_during_a_bash_call_leaves_nothing_running_and_commits_on_the_right_branch(
    supervised, prewarm, sqs, queues, site_remote, scripted_api
):
    launch, watcher = supervised
    checkout = prewarm()
    launch()

    def respond(conversation):
        if conversation.step == 0:
            return ToolCall(
                "Write", {"file_path": conversation.path("src/pages/draft.astro"), "content": "<p>draft</p>\n"}
            )
        if conversation.step == 1:  # a long build the agent runs itself, in its own shell session
            return ToolCall(
                "Bash", {"command": 'node -e "setTimeout(() => {}, 120000)" agent-long-build', "description": "build"}
            )
        return Text("Done.")

    scripted_api.when("Draft a page", respond)
    scripted_api.when("Make the header", lambda _c: Slow(0.2, Text("Nothing to do.")))
    send(sqs, queues, "cmd-long", "Draft a page", thread="chat-long")
    deadline = time.monotonic() + 60
    # The node process itself (its shell's command line names it too, a moment earlier).
    while not [
        p
        for p in psutil.process_iter(["cmdline"])
        if (p.info["cmdline"] or [""])[0] == "node" and "agent-long-build" in p.info["cmdline"]
    ]:
        assert time.monotonic() < deadline, "the agent's Bash call never started"
        time.sleep(0.1)
    tree = processes_in(checkout)
    assert len(tree) >= 3  # the CLI, its shell, node

    send(sqs, queues, "cmd-next", "Make the header red", thread="chat-next")
    old = watcher.response("cmd-long")
    assert old["interrupted"] is True and old["errorCode"] == "INTERRUPTED"
    assert [s["status"] for s in old["steps"] if s["name"] == "agent"] == ["interrupted"]
    # The edit made before the interrupt is a WIP commit on the interrupted command's own branch.
    assert git_out(site_remote, "log", "-1", "--format=%s", "thread-chat-long").startswith("WIP:")
    assert "src/pages/draft.astro" in git_out(site_remote, "show", "--name-only", "--format=", "thread-chat-long")
    watcher.response("cmd-next")
    alive = [p.pid for p in psutil.process_iter(["cmdline"]) if "agent-long-build" in " ".join(p.info["cmdline"] or [])]
    assert alive == [] and not [pid for pid in tree if psutil.pid_exists(pid) and pid in processes_in(checkout)]

    # The interrupted thread's next command continues the interrupted conversation.
    send(sqs, queues, "cmd-resume", "Change the title to Resumed", thread="chat-long")
    resumed = watcher.response("cmd-resume")
    assert resumed["success"] is True and resumed["agent"]["resumed"] is True
    assert "Draft a page" in scripted_api.conversations("Change the title to Resumed")[0].user_texts()
