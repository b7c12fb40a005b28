"""The agent CLI's pieces (steps/claude/): command line, output stream, memory per thread, environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from steps.claude.command_line import agent_argv
from steps.claude.environment import AgentCredentialsError, agent_environment, role_session_seconds
from steps.claude.memory import AgentState
from steps.claude.stream import AgentStream, describe
from steps.processes import shell
from supervisor.contract.agent_config import DEFAULT_ALLOWED_TOOLS, AgentConfig, load_agent_config
from supervisor.contract.command import parse_command
from supervisor.contract.env_values import ConfigError

COMMAND = parse_command(
    json.dumps({"instruction": "Do it", "commandId": "c-1", "chatThreadId": "t1", "clientId": "acme", "userId": "u1"}),
    "/srv/site.git",
)
ROLE = "arn:aws:iam::123456789012:role/webordinary-agent-bedrock"


def after(argv: list[str], option: str) -> str:
    return argv[argv.index(option) + 1]


# The command line --------------------------------------------------------------------------------


def test_the_command_line_names_every_choice_we_make():
    argv = agent_argv(AgentConfig(), "Make it blue", session_id="s-1", resume=False)
    assert argv[:3] == ["claude", "-p", "Make it blue"]
    assert after(argv, "--output-format") == "stream-json" and "--verbose" in argv
    assert after(argv, "--session-id") == "s-1" and "--resume" not in argv
    assert after(argv, "--permission-mode") == "acceptEdits"
    assert after(argv, "--setting-sources") == "" and "--strict-mcp-config" in argv
    allowed = argv[argv.index("--allowedTools") + 1 : argv.index("--disallowedTools")]
    assert tuple(allowed) == DEFAULT_ALLOWED_TOOLS
    assert "--model" not in argv and "--max-turns" not in argv and "--max-budget-usd" not in argv


def test_limits_model_resume_and_a_leading_dash():
    agent = AgentConfig(model="claude-sonnet-4-5", max_turns=30, max_budget_usd=0.5, settings_file="/etc/a.json")
    argv = agent_argv(agent, "--help me", session_id="s-2", resume=True)
    assert argv[2] == " --help me" and after(argv, "--resume") == "s-2" and "--session-id" not in argv
    assert after(argv, "--model") == "claude-sonnet-4-5" and after(argv, "--max-turns") == "30"
    assert after(argv, "--max-budget-usd") == "0.5" and after(argv, "--settings") == "/etc/a.json"


# The stream --------------------------------------------------------------------------------------


def test_targets_are_paths_in_the_checkout_or_a_commands_first_words():
    checkout = Path("/w/acme/u1/site")
    assert describe("Edit", {"file_path": "/w/acme/u1/site/src/a.astro"}, checkout) == "src/a.astro"
    assert describe("Write", {"file_path": "/etc/passwd"}, checkout) == "/etc/passwd"
    assert (
        describe("Bash", {"command": "npm run build -- --verbose --x a b c"}, checkout)
        == "npm run build -- --verbose --x …"
    )
    assert describe("Task", "not a dict", checkout) == ""


def test_the_stream_names_the_session_reports_tools_and_ends_on_the_result():
    uses, sessions = [], []
    stream = AgentStream(Path("/c"), uses.append, sessions.append)
    tool = {"type": "tool_use", "name": "Read", "input": {"file_path": "/c/src/x.astro"}}
    lines = [
        "npm warn something",
        json.dumps({"type": "system", "subtype": "init", "session_id": "abc"}),
        json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": "hi"}, tool]}}),
        "{not json",
    ]
    assert [stream.feed(line) for line in lines] == [False] * 4
    denial = {"tool_name": "Bash", "tool_input": {"command": "git push origin main"}}
    assert stream.feed(json.dumps({"type": "result", "subtype": "success", "permission_denials": [denial]}))
    assert sessions == ["abc"] and stream.started and [(u.tool, u.target) for u in uses] == [("Read", "src/x.astro")]
    assert stream.denials() == [{"tool": "Bash", "target": "git push origin main"}]


# Memory ------------------------------------------------------------------------------------------


def test_each_thread_remembers_its_own_session_outside_the_checkout(tmp_path):
    state = AgentState.for_command(str(tmp_path), COMMAND)
    assert state.root == tmp_path / ".agent" / "acme" / "u1" / "site"
    state.prepare()
    assert state.session_of("thread-t1") is None
    state.remember("thread-t1", "session-1", "c-1")
    state.remember("thread-t2", "session-2", "c-2")
    assert (state.session_of("thread-t1"), state.session_of("thread-t2")) == ("session-1", "session-2")
    (state.root / "sessions" / "thread-t1.json").write_text("{broken")
    assert state.session_of("thread-t1") is None  # a new conversation, not an error


def test_each_thread_has_its_own_cli_folder_and_keeps_the_conversation_of_the_shared_one(tmp_path):
    """Threads no longer share one CLAUDE_CONFIG_DIR (a job could read the other threads' transcripts):
    an older record and transcript of the shared folder carry over on the thread's first use."""
    root = tmp_path / ".agent" / "acme" / "u1" / "site"
    (root / "threads").mkdir(parents=True)
    (root / "threads" / "thread-t1.json").write_text(json.dumps({"sessionId": "s-old"}))
    old = root / "claude" / "projects" / "-workspace-acme-u1-site" / "s-old.jsonl"
    old.parent.mkdir(parents=True)
    old.write_text('{"type": "user"}\n')
    state = AgentState.for_command(str(tmp_path), COMMAND)
    other = AgentState(root, "thread-t2")
    assert state.config_dir != other.config_dir and state.config_dir.parent == root / "threads" / COMMAND.branch
    state.prepare()
    assert state.session_of(COMMAND.branch) == "s-old"
    carried = state.config_dir / "projects" / "-workspace-acme-u1-site" / "s-old.jsonl"
    assert carried.read_text() == old.read_text()


# The environment ---------------------------------------------------------------------------------


def test_the_api_key_reaches_the_agent_and_nothing_else(tmp_path, monkeypatch):
    for name, value in {"ANTHROPIC_API_KEY": "sk-ant", "GITHUB_TOKEN": "ghp", "AWS_SECRET_ACCESS_KEY": "aws"}.items():
        monkeypatch.setenv(name, value)
    state = AgentState(tmp_path, "thread-t1")
    env = agent_environment(AgentConfig(), state, COMMAND)
    assert env["ANTHROPIC_API_KEY"] == "sk-ant" and "GITHUB_TOKEN" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert env["CLAUDE_CONFIG_DIR"] == str(state.config_dir) and env["CLAUDE_CODE_TMPDIR"] == str(state.tmp_dir)
    assert "ANTHROPIC_API_KEY" not in shell.scrubbed_env()  # npm, the build, git, the deploy


def test_the_model_key_may_come_from_a_file_read_at_each_run(tmp_path, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    key_file = tmp_path / "key"
    key_file.write_text("sk-from-file\n")
    agent = load_agent_config({"ANTHROPIC_API_KEY_FILE": str(key_file)})
    assert "sk-from-file" not in repr(agent)  # only its path is kept
    assert agent_environment(agent, AgentState(tmp_path, "thread-t1"), COMMAND)["ANTHROPIC_API_KEY"] == "sk-from-file"
    key_file.write_text("sk-rotated")
    assert agent_environment(agent, AgentState(tmp_path, "thread-t1"), COMMAND)["ANTHROPIC_API_KEY"] == "sk-rotated"
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY and ANTHROPIC_API_KEY_FILE are both set"):
        load_agent_config({"ANTHROPIC_API_KEY_FILE": str(key_file), "ANTHROPIC_API_KEY": "x"})
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY_FILE: cannot read"):
        load_agent_config({"ANTHROPIC_API_KEY_FILE": str(tmp_path / "missing")})


def test_bedrock_gets_only_the_assumed_roles_credentials(aws_env, tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant")
    agent = AgentConfig(backend="bedrock", aws_role_arn=ROLE, aws_region="eu-central-1")
    env = agent_environment(agent, AgentState(tmp_path, "thread-t1"), COMMAND)
    assert env["CLAUDE_CODE_USE_BEDROCK"] == "1" and env["AWS_REGION"] == "eu-central-1"
    assert env["AWS_ACCESS_KEY_ID"] != aws_env["AWS_ACCESS_KEY_ID"] and env["AWS_SESSION_TOKEN"]
    assert env["AWS_SECRET_ACCESS_KEY"] != aws_env["AWS_SECRET_ACCESS_KEY"] and "ANTHROPIC_API_KEY" not in env


def test_a_role_that_cannot_be_assumed_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    agent = AgentConfig(backend="bedrock", aws_role_arn=ROLE)
    with pytest.raises(AgentCredentialsError, match="could not assume AGENT_AWS_ROLE_ARN"):
        agent_environment(agent, AgentState(tmp_path, "thread-t1"), COMMAND)


def test_the_role_session_outlasts_the_agent_timeout():
    assert role_session_seconds(900) == 3600 and role_session_seconds(3600) == 3900
    assert role_session_seconds(100_000) == 43200


def test_a_requested_branch_with_a_slash_gets_one_folder_of_its_own(tmp_path):
    """A task-shape message may name `feature/x`: its agent memory is not a folder inside `feature`'s."""
    from steps.claude.memory import AgentState, file_name

    plain, nested = AgentState(tmp_path, "feature"), AgentState(tmp_path, "feature/x")
    assert plain.thread_dir != nested.thread_dir and nested.thread_dir.parent == plain.thread_dir.parent
    assert file_name("thread-t1") == "thread-t1" and file_name("feature/x") == "feature%2Fx"
    nested.prepare()
    nested.remember("feature/x", "s-1", "c1")
    assert nested.session_of("feature/x") == "s-1" and plain.session_of("feature") is None
