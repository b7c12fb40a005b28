"""The CLI's command line: what we pass and why (README, "The agent")."""

from __future__ import annotations

from supervisor.contract.agent_config import AgentConfig


def agent_argv(agent: AgentConfig, instruction: str, *, session_id: str, resume: bool) -> list[str]:
    # A leading "-" would be read as an option by the agent's argument parser; a leading space keeps
    # the instruction a plain argument and means nothing to the model.
    prompt = f" {instruction}" if instruction.startswith("-") else instruction
    argv = [
        *agent.command,
        "-p",
        prompt,
        # One JSON event per line as it happens: tool uses become progress, the last line is the result.
        "--output-format",
        "stream-json",
        "--verbose",
        # The thread's conversation: continued when it has one, else started under an id we chose.
        *(("--resume", session_id) if resume else ("--session-id", session_id)),
        "--permission-mode",
        agent.permission_mode,
        # Only our settings: a site repository's .claude/settings.json or .mcp.json could otherwise
        # grant the agent whatever it likes, or start programs of its own.
        "--setting-sources",
        "",
        "--strict-mcp-config",
    ]
    if agent.settings_file:
        argv += ["--settings", agent.settings_file]
    if agent.model:
        argv += ["--model", agent.model]
    if agent.max_turns:
        argv += ["--max-turns", str(agent.max_turns)]
    if agent.max_budget_usd:
        argv += ["--max-budget-usd", f"{agent.max_budget_usd:g}"]
    # Variadic options last, so they cannot swallow anything after them.
    if agent.allowed_tools:
        argv += ["--allowedTools", *agent.allowed_tools]
    if agent.disallowed_tools:
        argv += ["--disallowedTools", *agent.disallowed_tools]
    return argv
