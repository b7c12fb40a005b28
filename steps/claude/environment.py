"""The agent's environment: its own model credentials and nothing else of ours.

Never the git token, never the deploy's AWS credentials. With Bedrock and AGENT_AWS_ROLE_ARN, the
worker assumes that role (with its own credentials) and hands the agent only the temporary ones.
"""

from __future__ import annotations

import math
import re

import boto3

from steps.claude.memory import AgentState
from steps.processes import shell
from supervisor.contract.agent_config import AgentConfig
from supervisor.contract.command import Command
from supervisor.contract.env_values import ConfigError, read_secret_file

# Model credentials; shell.SECRET_VARIABLES keeps them from every other command.
AGENT_CREDENTIALS = frozenset({"ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"})
BEDROCK_CREDENTIALS = frozenset({"AWS_BEARER_TOKEN_BEDROCK"})
# STS grants up to the role's maximum session: one hour unless the role raises it (12 h at most).
DEFAULT_ROLE_MAX_SECONDS, STS_MAX_SECONDS = 3600, 43200


class AgentCredentialsError(RuntimeError):
    """The agent's role could not be assumed."""


def agent_environment(agent: AgentConfig, state: AgentState, command: Command) -> dict[str, str]:
    keep = BEDROCK_CREDENTIALS if agent.backend == "bedrock" else AGENT_CREDENTIALS
    env = shell.scrubbed_env(keep=keep)
    for name, path in agent.credential_files:  # read now, so a rotated secret is used at the next command
        if name in keep:
            try:
                env[name] = read_secret_file(f"{name}_FILE", path)
            except ConfigError as error:
                raise AgentCredentialsError(str(error)) from None
    env.setdefault("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")  # no telemetry or update checks
    env["DISABLE_AUTOUPDATER"] = "1"  # the version is pinned by the image
    env["CLAUDE_CONFIG_DIR"] = str(state.config_dir)
    env["CLAUDE_CODE_TMPDIR"] = str(state.tmp_dir)
    if agent.backend == "bedrock":
        env["CLAUDE_CODE_USE_BEDROCK"] = "1"
        env["AWS_REGION"] = agent.aws_region
        env.pop("AWS_DEFAULT_REGION", None)
        if agent.aws_role_arn:
            env.update(assume_agent_role(agent, command))
    else:
        env.pop("CLAUDE_CODE_USE_BEDROCK", None)
    return env


def role_session_seconds(agent_timeout: float) -> int:
    """Long enough for the agent's whole run; above an hour only when the timeout needs it."""
    wanted = math.ceil(agent_timeout) + 300
    return DEFAULT_ROLE_MAX_SECONDS if wanted <= DEFAULT_ROLE_MAX_SECONDS else min(STS_MAX_SECONDS, wanted)


def assume_agent_role(agent: AgentConfig, command: Command) -> dict[str, str]:
    """Temporary credentials of AGENT_AWS_ROLE_ARN, as environment variables for the agent."""
    assert agent.aws_role_arn is not None
    name = re.sub(r"[^\w+=,.@-]", "-", f"webordinary-agent-{command.command_id}")[:64]
    try:
        reply = boto3.client("sts", region_name=agent.aws_region).assume_role(
            RoleArn=agent.aws_role_arn,
            RoleSessionName=name,
            DurationSeconds=role_session_seconds(agent.timeout_seconds),
        )
    except Exception as error:  # botocore's errors: no credentials, access denied, endpoint down
        raise AgentCredentialsError(f"could not assume AGENT_AWS_ROLE_ARN: {error}") from None
    credentials = reply["Credentials"]
    return {
        "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
        "AWS_SESSION_TOKEN": credentials["SessionToken"],
    }
