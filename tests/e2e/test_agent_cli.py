"""The agent step with the real Claude Code CLI, run by a real worker against the scripted Messages API.

No agent configuration at all (real_agent_env): `claude` on PATH, our default flags and permissions.
"""

from __future__ import annotations

import json
import shutil
import time

import psutil
import pytest
from helpers import QUICK_BUILD, git_out, message, run_worker
from scripted_api import ApiError, Text, ToolCall, edit_file, steps

pytestmark = pytest.mark.e2e


@pytest.fixture
def env(real_agent_env, make_bucket):
    make_bucket("acme")
    return {**real_agent_env, "BUILD_COMMAND": QUICK_BUILD}  # the build is not the subject here


def statuses(response):
    return {step["name"]: step["status"] for step in response["steps"]}


def test_an_edit_and_a_new_page_land_by_default(env, prewarm, site_remote, scripted_api):
    prewarm()
    first = run_worker(message(instruction="Change the title to Stamps & Co", commandId="c1"), env)
    assert first["success"] is True, first["error"]
    assert first["filesChanged"] == ["src/layouts/Base.astro"]
    assert "<h1>Stamps & Co</h1>" in git_out(site_remote, "show", "thread-chat-1:src/layouts/Base.astro")
    # The CLI's summary is the response's, and the agent object says what it cost.
    assert "Changed src/layouts/Base.astro" in first["summary"]
    agent = first["agent"]
    assert agent["costUsd"] > 0 and agent["numTurns"] == 3 and agent["permissionDenials"] == []
    assert agent["resumed"] is False and len(agent["sessionId"]) == 36

    second = run_worker(message(instruction="Add a page called contact", commandId="c2"), env)
    assert second["success"] is True, second["error"]
    assert second["filesChanged"] == ["src/pages/contact.astro"]
    assert "<h2>Contact</h2>" in git_out(site_remote, "show", "thread-chat-1:src/pages/contact.astro")
    # The agent's state is outside the checkout: nothing of it was committed.
    files = git_out(site_remote, "ls-tree", "-r", "--name-only", "thread-chat-1").splitlines()
    assert not [f for f in files if f.startswith(".claude") or "projects/" in f]


def test_two_commands_of_a_thread_share_a_conversation_and_threads_do_not(env, prewarm, scripted_api):
    prewarm()
    one = run_worker(message(instruction="Change the title to First", commandId="a1", chatThreadId="A"), env)
    two = run_worker(message(instruction="Add a page called later", commandId="a2", chatThreadId="A"), env)
    other = run_worker(message(instruction="Add a page called elsewhere", commandId="b1", chatThreadId="B"), env)
    assert one["success"] and two["success"] and other["success"]
    assert two["agent"]["resumed"] is True and two["agent"]["sessionId"] == one["agent"]["sessionId"]
    assert other["agent"]["resumed"] is False and other["agent"]["sessionId"] != one["agent"]["sessionId"]
    # What the model was sent: the thread's second command carries the first instruction; the other thread does not.
    later = scripted_api.conversations("Add a page called later")[0]
    assert "Change the title to First" in later.user_texts()
    elsewhere = scripted_api.conversations("Add a page called elsewhere")[0]
    assert elsewhere.user_texts() == ["Add a page called elsewhere"]


def test_a_conversation_that_cannot_be_resumed_starts_afresh_with_a_warning(env, prewarm, workspace_root):
    prewarm()
    one = run_worker(message(instruction="Change the title to First", commandId="r1"), env)
    transcripts = list((workspace_root / ".agent").rglob(f"{one['agent']['sessionId']}.jsonl"))
    assert transcripts, "the CLI keeps its transcripts under WORKSPACE_PATH/.agent"
    for transcript in transcripts:
        transcript.unlink()
    two = run_worker(message(instruction="Add a page called again", commandId="r2"), env)
    assert two["success"] is True, two["error"]
    assert two["agent"]["resumed"] is False and two["agent"]["sessionId"] != one["agent"]["sessionId"]
    assert any("could not be resumed (No conversation found" in warning for warning in two["warnings"])


def test_an_api_error_fails_the_agent_quickly(env, prewarm, scripted_api):
    prewarm()
    scripted_api.when("Change", lambda _conversation: ApiError(500, "the model is down"))
    started = time.monotonic()
    response = run_worker(message(instruction="Change the title to Never"), env)
    assert time.monotonic() - started < 60
    assert response["errorCode"] == "AGENT_FAILED" and "the model is down" in response["error"]
    assert statuses(response)["agent"] == "failed" and response["filesChanged"] == []


def test_a_refused_tool_with_no_change_fails_the_command(env, prewarm, scripted_api, site_remote):
    prewarm()
    push = ToolCall("Bash", {"command": "git push origin HEAD --force", "description": "publish"})
    scripted_api.when("Publish", steps(push, Text("I pushed it.")))
    response = run_worker(message(instruction="Publish the site"), env)
    assert response["success"] is False and response["errorCode"] == "AGENT_FAILED"
    assert "not allowed" in response["error"] and "git push origin HEAD --force" in response["error"]
    assert response["agent"]["permissionDenials"] == [{"tool": "Bash", "target": "git push origin HEAD --force"}]


def test_a_refused_tool_beside_an_edit_is_a_warning(env, prewarm, scripted_api, site_remote):
    prewarm()

    def respond(conversation):
        if conversation.step < 2:
            return edit_file(conversation, "src/layouts/Base.astro", "<h1>Amelia Stamps</h1>", "<h1>Edited</h1>")
        if conversation.step == 2:
            return ToolCall("Write", {"file_path": "/etc/webordinary-test.txt", "content": "outside"})
        return Text("Edited the title; could not write outside the site.")

    scripted_api.when("Edit and wander", respond)
    response = run_worker(message(instruction="Edit and wander"), env)
    assert response["success"] is True and response["filesChanged"] == ["src/layouts/Base.astro"]
    assert any("not allowed" in w and "/etc/webordinary-test.txt" in w for w in response["warnings"])
    assert response["agent"]["permissionDenials"] == [{"tool": "Write", "target": "/etc/webordinary-test.txt"}]


LINGERER = "setTimeout(() => {}, 300000)"  # a stand-in for `npm run dev` that keeps running
DETACH = (
    "node -e \"require('child_process').spawn(process.execPath, ['-e', '" + LINGERER + "', 'agent-lingerer'],"
    " {detached: true, stdio: 'ignore'}).unref()\""
)
# A build that first records whether the agent's background process is alive, then builds.
CHECKING_BUILD = """
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
const alive = readdirSync("/proc").filter((p) => /^[0-9]+$/.test(p)).some((p) => {
  try { return readFileSync(`/proc/${p}/cmdline`, "utf8").includes("agent-lingerer"); } catch { return false; }
});
writeFileSync(process.argv[2], String(alive));
await import(process.argv[3]);
"""


def test_a_process_the_agent_leaves_running_is_gone_before_the_build(env, prewarm, scripted_api, tmp_path):
    prewarm()
    seen, script = tmp_path / "lingerer-alive-at-build", tmp_path / "checking-build.mjs"
    script.write_text(CHECKING_BUILD)
    scripted_api.when(
        "Start the dev server", steps(ToolCall("Bash", {"command": DETACH, "description": "dev"}), Text("Started."))
    )
    env = {**env, "BUILD_COMMAND": f"node {script} {seen} {QUICK_BUILD.split()[-1]}"}
    response = run_worker(message(instruction="Start the dev server"), env)
    assert seen.read_text() == "false", "the build ran while the agent's process was alive"
    assert any("left 1 process" in warning for warning in response["warnings"])
    assert not [p for p in psutil.process_iter(["cmdline"]) if "agent-lingerer" in " ".join(p.info["cmdline"] or [])]


def test_the_api_key_reaches_the_agent_only(env, prewarm, scripted_api, workspace_root):
    prewarm()
    secret = env["ANTHROPIC_API_KEY"]
    leak = ToolCall(
        "Bash", {"command": "node -e \"console.log(process.env.GITHUB_TOKEN || 'no-token')\"", "description": "x"}
    )
    scripted_api.when("Show", steps(leak, Text("done")))
    response = run_worker(message(instruction="Show the environment"), {**env, "GITHUB_TOKEN": "ghp_secret_token"})
    assert response["success"] is True
    conversation = scripted_api.conversations("Show")[-1]
    assert conversation.tool_results()[0]["content"].strip() == "no-token"
    assert secret not in response["_log"] and "ghp_secret_token" not in response["_log"]
    assert secret not in json.dumps({k: v for k, v in response.items() if k != "_log"})


def test_the_agent_state_folder_is_per_workspace_and_outside_the_checkout(env, prewarm, workspace_root):
    checkout = prewarm()
    response = run_worker(message(instruction="Change the title to Here"), env)
    state = workspace_root / ".agent" / "acme" / "u1" / "site"
    record = json.loads((state / "sessions" / "thread-chat-1.json").read_text())
    assert record["sessionId"] == response["agent"]["sessionId"]
    assert (state / "threads" / "thread-chat-1" / "claude" / "projects").is_dir()
    assert not (checkout / ".claude").exists()
    shutil.rmtree(state)  # a lost state folder is a new conversation, not an error
    again = run_worker(message(instruction="Change the title to There", commandId="cmd-2"), env)
    assert again["success"] is True and again["agent"]["resumed"] is False


def test_with_bedrock_the_agent_holds_only_the_assumed_roles_credentials(base_env, prewarm, make_bucket, agent_log):
    """Through a real worker (the fake agent records its environment): STS on moto's server."""
    make_bucket("acme")
    prewarm()
    env = {
        **base_env,
        "BUILD_COMMAND": QUICK_BUILD,
        "CLAUDE_CODE_USE_BEDROCK": "1",
        "AGENT_AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/webordinary-agent-bedrock",
        "AGENT_AWS_REGION": "us-east-1",
        "GITHUB_TOKEN": "ghp_never_for_the_agent",
        "ANTHROPIC_API_KEY": "sk-ant-not-for-bedrock",
    }
    response = run_worker(message(instruction="Make the header blue"), env)
    assert response["success"] is True, response["error"]
    seen = json.loads(agent_log.read_text().splitlines()[-1])["env"]
    assert seen["CLAUDE_CODE_USE_BEDROCK"] == "1" and seen["AWS_REGION"] == "us-east-1"
    assert seen["AWS_ACCESS_KEY_ID"] not in ("", base_env["AWS_ACCESS_KEY_ID"]) and seen["AWS_SESSION_TOKEN"]
    assert seen["AWS_SECRET_ACCESS_KEY"] != base_env["AWS_SECRET_ACCESS_KEY"]
    leaked = {"GITHUB_TOKEN", "WEBORDINARY_GIT_TOKEN", "GIT_ASKPASS", "ANTHROPIC_API_KEY", "AWS_PROFILE"} & set(seen)
    assert not leaked and not [k for k in seen if k.startswith("AWS_CONTAINER_")]


def test_a_turn_limit_stops_the_agent_and_keeps_what_it_did(env, prewarm, scripted_api, site_remote):
    prewarm()

    def respond(conversation):
        if conversation.step < 2:
            return edit_file(conversation, "src/layouts/Base.astro", "<h1>Amelia Stamps</h1>", "<h1>Half done</h1>")
        return ToolCall("Bash", {"command": f"ls src # again {conversation.step}", "description": "look"})

    scripted_api.when("Keep going", respond)
    response = run_worker(message(instruction="Keep going"), {**env, "AGENT_MAX_TURNS": "3"})
    assert response["errorCode"] == "AGENT_FAILED" and "max_turns" in response["error"]
    assert response["commit"] and "<h1>Half done</h1>" in git_out(
        site_remote, "show", "thread-chat-1:src/layouts/Base.astro"
    )
    assert response["agent"]["numTurns"] >= 3 and response["agent"]["costUsd"] > 0
