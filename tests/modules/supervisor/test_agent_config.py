"""The agent's configuration (supervisor/contract/agent_config.py): defaults, rules, limits, backends."""

from __future__ import annotations

import json

import pytest

from supervisor.contract.agent_config import DEFAULT_ALLOWED_TOOLS, load_agent_config, split_rules
from supervisor.contract.command import parse_command
from supervisor.contract.config import ConfigError

COMMAND = parse_command(
    json.dumps({"instruction": "Do it", "commandId": "c-1", "chatThreadId": "t1", "clientId": "acme", "userId": "u1"}),
    "/srv/site.git",
)
ROLE = "arn:aws:iam::123456789012:role/webordinary-agent-bedrock"


# Configuration -----------------------------------------------------------------------------------


def test_defaults_let_the_agent_edit_and_run_site_commands_but_not_publish():
    agent = load_agent_config({})
    assert agent.command == ("claude",) and agent.permission_mode == "acceptEdits" and agent.backend == "anthropic"
    assert "Bash(npm run *)" in agent.allowed_tools and "Bash(npm install *)" in agent.allowed_tools
    assert "Bash(git push *)" in agent.disallowed_tools and "Bash(git reset *)" in agent.disallowed_tools
    assert (agent.model, agent.max_turns, agent.max_budget_usd) == (None, None, None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Edit,Bash(npm run build)", ("Edit", "Bash(npm run build)")),
        ("+Bash(make *)", (*DEFAULT_ALLOWED_TOOLS, "Bash(make *)")),
        ("none", ()),
        ("Bash(echo a,b), Read", ("Bash(echo a,b)", "Read")),
    ],
)
def test_allowed_tools_replace_extend_or_clear_the_defaults(raw, expected):
    assert load_agent_config({"AGENT_ALLOWED_TOOLS": raw}).allowed_tools == expected


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"AGENT_ALLOWED_TOOLS": "Bash(npm run *"}, "AGENT_ALLOWED_TOOLS"),
        ({"AGENT_DISALLOWED_TOOLS": "rm -rf"}, "AGENT_DISALLOWED_TOOLS"),
        ({"AGENT_PERMISSION_MODE": "yolo"}, "AGENT_PERMISSION_MODE"),
        ({"AGENT_MAX_TURNS": "0"}, "AGENT_MAX_TURNS"),
        ({"AGENT_MAX_TURNS": "two"}, "AGENT_MAX_TURNS"),
        ({"AGENT_MAX_BUDGET_USD": "-1"}, "AGENT_MAX_BUDGET_USD"),
        ({"AGENT_SETTINGS_FILE": "/nonexistent/settings.json"}, "AGENT_SETTINGS_FILE"),
        ({"CLAUDE_CODE_USE_BEDROCK": "1"}, "AGENT_AWS_ROLE_ARN"),
        ({"AGENT_AWS_ROLE_ARN": ROLE}, "CLAUDE_CODE_USE_BEDROCK"),
        ({"CLAUDE_CODE_USE_BEDROCK": "1", "AGENT_AWS_ROLE_ARN": "my-role"}, "AGENT_AWS_ROLE_ARN"),
    ],
)
def test_bad_agent_settings_stop_start_up_naming_the_variable(env, names):
    with pytest.raises(ConfigError, match=names):
        load_agent_config(env)


def test_permission_mode_is_matched_without_case_and_rules_split_outside_parentheses():
    assert load_agent_config({"AGENT_PERMISSION_MODE": "ACCEPTEDITS"}).permission_mode == "acceptEdits"
    assert split_rules("A(x, y),B, ,C") == ["A(x, y)", "B", "C"]
