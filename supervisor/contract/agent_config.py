"""How the agent (Claude Code CLI) is run: its command, permissions, limits and model backend.

The permission defaults let the agent do a site editor's work without anybody to answer a prompt:
read, create and edit files inside the checkout (`acceptEdits`; the CLI itself refuses paths outside
the working directory and git's own files), and run what a site needs (npm scripts and installs,
node, file housekeeping). Anything that would publish or rewrite history is denied, even when a
broader allow rule would match it. README's "The agent" section has the threat model.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from supervisor.contract import env_values as ev
from supervisor.contract.env_values import ConfigError

PERMISSION_MODES = ("acceptEdits", "auto", "bypassPermissions", "dontAsk", "manual", "plan")

# Read-only shell commands inside the checkout (ls, cat, grep, git status …) are allowed by the CLI
# itself; these add the commands that change something a site build needs.
DEFAULT_ALLOWED_TOOLS = (
    "Bash(npm run *)",
    "Bash(npm install *)",
    "Bash(npm install)",
    "Bash(npm ci)",
    "Bash(npm ls *)",
    "Bash(npx astro *)",
    "Bash(node *)",
    "Bash(mkdir *)",
    "Bash(cp *)",
    "Bash(mv *)",
    "Bash(rm *)",
    "Bash(touch *)",
)
# Git's history and remotes are the worker's job: the agent only edits files. The network tools and
# the CLI's own schedulers and worktrees have no place in a one-shot site edit.
DEFAULT_DISALLOWED_TOOLS = (
    "Bash(git push *)",
    "Bash(git push)",
    "Bash(git commit *)",
    "Bash(git reset *)",
    "Bash(git rebase *)",
    "Bash(git checkout *)",
    "Bash(git switch *)",
    "Bash(git branch *)",
    "Bash(git merge *)",
    "Bash(git cherry-pick *)",
    "Bash(git tag *)",
    "Bash(git remote *)",
    "Bash(git config *)",
    "Bash(git stash *)",
    "Bash(git update-ref *)",
    "Bash(git filter-branch *)",
    "Bash(git clean *)",
    # Other processes' environments and the kernel's view of the machine: the job identity and the sandbox
    # are the boundary; this says no before either has to.
    "Read(//proc/**)",
    "Read(//sys/**)",
    "Bash(curl *)",
    "Bash(wget *)",
    "Bash(ssh *)",
    "Bash(scp *)",
    "Bash(aws *)",
    "Bash(sudo *)",
    "WebFetch",
    "EnterWorktree",
    "CronCreate",
    "ScheduleWakeup",
)
# A tool name, optionally with a pattern in parentheses: Edit, Bash(npm run *), mcp__server__tool.
TOOL_RULE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*(\([^()]+\))?")
ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")


@dataclass(frozen=True)
class AgentConfig:
    command: tuple[str, ...] = ("claude",)
    timeout_seconds: float = 900.0
    permission_mode: str = "acceptEdits"
    allowed_tools: tuple[str, ...] = DEFAULT_ALLOWED_TOOLS
    disallowed_tools: tuple[str, ...] = DEFAULT_DISALLOWED_TOOLS
    settings_file: str | None = None
    model: str | None = None
    max_turns: int | None = None
    max_budget_usd: float | None = None
    # "anthropic" (ANTHROPIC_API_KEY) or "bedrock" (CLAUDE_CODE_USE_BEDROCK=1, credentials from a role)
    backend: str = "anthropic"
    aws_role_arn: str | None = None
    aws_region: str = "us-west-2"
    # Model credentials kept in files (ANTHROPIC_API_KEY_FILE…): variable → path, read for each agent run.
    credential_files: tuple[tuple[str, str], ...] = ()


def split_rules(raw: str) -> list[str]:
    """Split a comma-separated rule list at the commas outside parentheses."""
    rules, depth, current = [], 0, ""
    for char in raw:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            rules.append(current.strip())
            current = ""
        else:
            current += char
    rules.append(current.strip())
    return [rule for rule in rules if rule]


def tool_rules(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """Unset: the default. "none": no rules. "+A,B": the default plus A and B. "A,B": exactly A and B."""
    raw = ev.text(env, name, None)
    if raw is None:
        return default
    if raw.lower() == "none":
        return ()
    extend = raw.startswith("+")
    rules = split_rules(raw[1:] if extend else raw)
    for rule in rules:
        if not TOOL_RULE.fullmatch(rule):
            raise ConfigError(f"{name}: {rule!r} is not a tool rule like Edit or Bash(npm run *)")
    return (*default, *rules) if extend else tuple(rules)


def _optional_number(env: Mapping[str, str], name: str, *, integer: bool, minimum: float) -> float | None:
    if ev.text(env, name, None) is None:
        return None
    value = ev.number(env, name, 0, minimum=minimum, integer=integer)
    if value <= 0:
        raise ConfigError(f"{name} must be more than 0, got {value!r}")
    return value


def _permission_mode(env: Mapping[str, str]) -> str:
    raw = ev.required_text(env, "AGENT_PERMISSION_MODE", "acceptEdits")
    canonical = {mode.lower(): mode for mode in PERMISSION_MODES}.get(raw.lower())
    if canonical is None:
        raise ConfigError(f"AGENT_PERMISSION_MODE must be one of {', '.join(PERMISSION_MODES)}, got {raw!r}")
    return canonical


def _backend(env: Mapping[str, str]) -> tuple[str, str | None]:
    bedrock = ev.flag(env, "CLAUDE_CODE_USE_BEDROCK", False)
    role = ev.text(env, "AGENT_AWS_ROLE_ARN", None)
    if role is not None and not ROLE_ARN.fullmatch(role):
        raise ConfigError(f"AGENT_AWS_ROLE_ARN must be an IAM role ARN, got {role!r}")
    if role is not None and not bedrock:
        raise ConfigError("AGENT_AWS_ROLE_ARN is only used with CLAUDE_CODE_USE_BEDROCK=1")
    bearer = ev.text(env, "AWS_BEARER_TOKEN_BEDROCK", None) or ev.text(env, "AWS_BEARER_TOKEN_BEDROCK_FILE", None)
    if bedrock and role is None and not bearer:
        # The agent never gets the deploy's AWS credentials: it needs a role of its own (or a Bedrock key).
        raise ConfigError("CLAUDE_CODE_USE_BEDROCK=1 needs AGENT_AWS_ROLE_ARN (or AWS_BEARER_TOKEN_BEDROCK)")
    return ("bedrock" if bedrock else "anthropic"), role


def _settings_file(env: Mapping[str, str]) -> str | None:
    path = ev.text(env, "AGENT_SETTINGS_FILE", None)
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            settings = json.load(handle)
    except (OSError, ValueError) as error:
        raise ConfigError(f"AGENT_SETTINGS_FILE must be a readable JSON file: {error}") from None
    if not isinstance(settings, dict):
        raise ConfigError(f"AGENT_SETTINGS_FILE must hold a JSON object, got {type(settings).__name__}")
    return os.path.abspath(path)


# The model credentials that may come from a file (NAME_FILE) instead of the environment.
CREDENTIALS_FROM_FILES = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "AWS_BEARER_TOKEN_BEDROCK",
)


def _credential_files(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    files = []
    for name in CREDENTIALS_FROM_FILES:
        ev.secret(env, name)  # both set, or a file that cannot be read: stop at start-up, not at the first command
        path = ev.text(env, f"{name}_FILE", None)
        if path is not None:
            files.append((name, os.path.abspath(path)))
    return tuple(files)


def load_agent_config(env: Mapping[str, str]) -> AgentConfig:
    backend, role = _backend(env)
    return AgentConfig(
        command=ev.command(env, "AGENT_COMMAND", "claude"),
        timeout_seconds=ev.number(env, "AGENT_TIMEOUT_SECONDS", 900, minimum=1, integer=False),
        permission_mode=_permission_mode(env),
        allowed_tools=tool_rules(env, "AGENT_ALLOWED_TOOLS", DEFAULT_ALLOWED_TOOLS),
        disallowed_tools=tool_rules(env, "AGENT_DISALLOWED_TOOLS", DEFAULT_DISALLOWED_TOOLS),
        settings_file=_settings_file(env),
        model=ev.text(env, "AGENT_MODEL", None),
        max_turns=_optional_number(env, "AGENT_MAX_TURNS", integer=True, minimum=1),
        max_budget_usd=_optional_number(env, "AGENT_MAX_BUDGET_USD", integer=False, minimum=0),
        backend=backend,
        aws_role_arn=role,
        aws_region=ev.template(env, "AGENT_AWS_REGION", ev.template(env, "AWS_REGION", "us-west-2")),
        credential_files=_credential_files(env),
    )
