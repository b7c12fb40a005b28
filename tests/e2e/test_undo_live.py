"""`/undo` from a message to a live page (issue 20): real workers, git and deploys; the agent never runs for
it. The build is tests/quick_build.mjs (the pages' text into dist/): the subject is what goes live, not Astro."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from fake_agent_marker import marker
from helpers import (
    QUICK_BUILD,
    ROOT,
    WORKER_HARNESS,
    agent_prompts,
    agent_runs,
    bucket_keys,
    git_out,
    message,
    run_worker,
)

from supervisor.contract.command import parse_command

pytestmark = pytest.mark.e2e


def finish_interrupted(body: dict, env: dict[str, str]) -> dict:
    """What the supervisor does after ending an interrupted command's tree: a worker in "interrupted" mode."""
    command = parse_command(json.dumps(body), env["REPO_URL"])
    steps = [{"name": "workspace", "status": "ok", "durationMs": 1}, {"name": "agent", "status": "interrupted"}]
    job = {"mode": "interrupted", "command": command.to_dict(), "steps": steps, "reason": "a newer message"}
    completed = subprocess.run(
        [sys.executable, "-c", WORKER_HARNESS], input=json.dumps(job), capture_output=True, text=True, env=env, cwd=ROOT
    )
    results = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
    return next(line["response"] for line in results if line.get("event") == "result")


def test_undo_takes_back_the_last_command_then_the_one_before_and_the_page_follows(
    base_env, prewarm, s3, site_remote, make_bucket, agent_log, workspace_root
):
    checkout = prewarm()
    bucket = make_bucket("acme")
    base_env = {**base_env, "BUILD_COMMAND": QUICK_BUILD}

    def page() -> str:
        return bucket_keys(s3, bucket)["index.html"].decode()

    first, second = "Make the header blue", "Add a banner"
    assert run_worker(message(instruction=first, commandId="c1"), base_env)["success"]
    assert run_worker(message(instruction=second, commandId="c2"), base_env)["success"]
    assert marker(second) in page()

    undo = run_worker(message(instruction="/undo", commandId="u1"), base_env)
    assert undo["success"], undo["error"]
    assert undo["undone"]["commandId"] == "c2" and undo["undone"]["files"] == undo["filesChanged"]
    assert sorted(undo["filesChanged"]) == ["notes/instructions.txt", "src/pages/index.astro"]
    assert [s["status"] for s in undo["steps"]] == ["ok"] * 6
    assert "agent" not in undo  # no model ran: no cost to report
    assert marker(second) not in page() and marker(first) in page()
    assert git_out(site_remote, "log", "-1", "--format=%s", "thread-chat-1") == "Undo command c2"

    # The action form of the task shape, and no instruction at all.
    again = run_worker(
        {"messageId": "u2", "action": "undo", "threadId": "chat-1", "projectId": "acme", "userId": "u1"}, base_env
    )
    assert again["success"] and again["undone"]["commandId"] == "c1", again["error"]
    assert marker(first) not in page()

    # An interrupted command's WIP commit is taken back like any other.
    (checkout / "src" / "pages" / "index.astro").write_text(
        (checkout / "src" / "pages" / "index.astro").read_text().replace("</Base>", "<p>half-done</p>\n</Base>")
    )
    wip = finish_interrupted(message(instruction="Rewrite the intro", commandId="c3"), base_env)
    assert wip["interrupted"] and wip["commit"], wip
    assert git_out(site_remote, "log", "-1", "--format=%s", "thread-chat-1") == "WIP: Rewrite the intro"
    wip_undo = run_worker(message(instruction=" /undo\n", commandId="u3"), base_env)
    assert wip_undo["success"] and wip_undo["undone"]["commandId"] == "c3", wip_undo["error"]
    assert "half-done" not in (checkout / "src" / "pages" / "index.astro").read_text()

    # Nothing left to take back: one clear error, nothing built, deployed or pushed, nothing changed.
    head = git_out(site_remote, "rev-parse", "thread-chat-1")
    live = page()
    nothing = run_worker(message(instruction="/undo", commandId="u4"), base_env)
    assert nothing["success"] is False and nothing["errorCode"] == "NOTHING_TO_UNDO", nothing
    assert "nothing to undo" in nothing["error"]
    assert [s["status"] for s in nothing["steps"]] == ["ok", "failed", "skipped", "skipped", "skipped", "skipped"]
    assert git_out(site_remote, "rev-parse", "thread-chat-1") == head and page() == live
    assert agent_runs(agent_log, "/undo") == 0 and agent_runs(agent_log, first) == 1

    # The thread's agent is told what was taken back since it last ran (its conversation remembers making
    # those changes), once: in the next prompt after the instruction, not in the one after.
    assert run_worker(message(instruction="Make the footer green", commandId="c5"), base_env)["success"]
    told = agent_prompts(agent_log)[-1]
    assert told.startswith("Make the footer green\n\n") and "/undo to take back 3 changes of yours" in told
    for subject in ('"Add a banner"', '"Make the header blue"', '"Rewrite the intro"'):  # WIP: prefix dropped
        assert subject in told, told
    assert "notes/instructions.txt" in told
    assert run_worker(message(instruction="Make the footer red", commandId="c6"), base_env)["success"]
    assert agent_prompts(agent_log)[-1] == "Make the footer red"
    assert "used /undo" not in git_out(site_remote, "log", "-1", "--format=%B", "thread-chat-1")  # the prompt only
