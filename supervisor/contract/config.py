"""Configuration from the environment (CONTRACT §4), validated once at start-up.

A bad value raises ConfigError naming the variable; the entry points turn it into one line on
stderr and exit code 2 (no traceback).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from supervisor.contract import env_values as ev
from supervisor.contract.agent_config import AgentConfig, load_agent_config
from supervisor.contract.attachments_config import AttachmentsConfig, load_attachments_config
from supervisor.contract.command import Command, InvalidMessage
from supervisor.contract.env_values import ConfigError
from supervisor.contract.previews import (
    DEFAULT_THREAD_PREVIEW_URL,
    PREVIEW_MODES,
    SHARED,
    THREAD,
    thread_prefix,
    thread_preview_url,
)
from supervisor.contract.remotes import check_repo_url, repo_url_for, repository_inside_workspaces

__all__ = ["Config", "ConfigError", "load_config", "load_config_or_exit"]

DEPLOY_STRATEGIES = ("hash", "aws-cli")
SANDBOX_SETTINGS = ("auto", "required", "off")
BUILD_MODES = ("cold", "warm")
DOMAIN = re.compile(r"(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]{0,252})(:\d{1,5})?")
LOG_FORMATS = ("json", "text")
SQS_MAX_VISIBILITY_SECONDS = 43200
# A stop waits for the receive in flight, so that what it brings is handed back at once: a short long
# poll keeps that wait short (an idle container then makes 12 receives a minute instead of 3).
LONG_POLL_SECONDS = 5
MAX_LONG_POLL_SECONDS = 20  # SQS's longest
# A lease is trusted until 2 s (workspace_leases.SAFETY_SECONDS) before it runs out: it must last longer.
MIN_LEASE_SECONDS = 5


@dataclass(frozen=True)
class Config:
    input_queue_url: str | None
    output_queue_url: str | None
    dlq_url: str | None
    workspace_path: str
    repo_url: str | None
    s3_bucket: str
    preview_url: str
    aws_region: str
    aws_endpoint_url: str | None
    build_command: tuple[str, ...]
    build_dir: str
    build_timeout_seconds: float
    deploy_strategy: str
    git_push_enabled: bool
    git_user_name: str
    git_user_email: str
    max_workers: int
    interrupt_grace_seconds: float
    shutdown_grace_seconds: float
    receive_wait_seconds: int  # the input queue's long poll; a stop waits for the one in flight
    visibility_timeout_seconds: int
    idle_exit_seconds: float | None
    push_retry_seconds: float
    progress_events: bool
    log_format: str
    deploy_cache_control_immutable: str
    deploy_cache_control_default: str
    # Kept out of repr() so a logged or printed Config never shows the token.
    github_token: str | None = None
    agent: AgentConfig = field(default_factory=AgentConfig)
    # Several containers on one queue (supervisor/sharing/claims.py); None: a single container.
    lease_table: str | None = None
    lease_seconds: float = 20.0
    # The kernel sandbox for jobs (steps/job): auto (where the host allows it), required, or off.
    sandbox: str = "auto"
    sandbox_allowed_domains: tuple[str, ...] = ()
    # The uids (and gids) jobs run as, one per workspace (steps/job/identity.py): first, last.
    job_uid_range: tuple[int, int] = (200_000, 1_199_999)
    # Step Functions task tokens (supervisor/task_tokens.py): seconds between heartbeats.
    task_heartbeat_seconds: float = 30.0
    # A standard queue of interrupts ({type: "interrupt", ...}) polled beside a FIFO input (issue 19).
    interrupt_queue_url: str | None = None
    # Where attachments may come from and what they may be (steps/attachments, issue 20).
    attachments: AttachmentsConfig = field(default_factory=AttachmentsConfig)
    # A preview per chat thread (supervisor/contract/previews.py): "shared" (one site a client) or "thread".
    preview_mode: str = SHARED
    thread_preview_url: str = DEFAULT_THREAD_PREVIEW_URL
    # "warm": Astro builds in a long-lived server per workspace (steps/warm); "cold": `BUILD_COMMAND` each time.
    build_mode: str = "cold"
    warm_idle_seconds: float = 600.0  # a warm server unused this long is ended
    warm_memory_mib: int = 1536  # a warm server bigger than this after a build is ended

    def __repr__(self) -> str:
        fields = asdict(self)
        fields["github_token"] = "***" if self.github_token else None
        return f"Config({fields})"

    def bucket_for(self, client_id: str) -> str:
        return self.s3_bucket.replace("{clientId}", client_id)

    def preview_url_for(self, command: Command) -> str:
        """The response's previewUrl: the client's shared site, or in thread mode the command's thread's."""
        if self.preview_mode == THREAD:
            return thread_preview_url(self.thread_preview_url, command.client_id, command.thread_id)
        return self.preview_url.replace("{clientId}", command.client_id)

    def deploy_prefix_for(self, command: Command) -> str:
        """Where in its client's bucket the command's build goes: "" (the shared site) or `threads/{label}/`."""
        return thread_prefix(command.thread_id) if self.preview_mode == THREAD else ""


def _receive_wait(env: Mapping[str, str]) -> int:
    """RECEIVE_WAIT_SECONDS: 1 to 20 (SQS's longest long poll)."""
    seconds = int(ev.number(env, "RECEIVE_WAIT_SECONDS", LONG_POLL_SECONDS, minimum=1, integer=True))
    if seconds > MAX_LONG_POLL_SECONDS:
        raise ConfigError(f"RECEIVE_WAIT_SECONDS must be at most {MAX_LONG_POLL_SECONDS}, got {seconds}")
    return seconds


def _visibility(env: Mapping[str, str]) -> int:
    seconds = ev.number(env, "VISIBILITY_TIMEOUT_SECONDS", 120, minimum=4, integer=True)
    if seconds > SQS_MAX_VISIBILITY_SECONDS:  # SQS refuses every receive that asks for more
        raise ConfigError(f"VISIBILITY_TIMEOUT_SECONDS must be at most {SQS_MAX_VISIBILITY_SECONDS}, got {seconds}")
    return seconds


def _repo_url(env: Mapping[str, str], workspace_path: str) -> str | None:
    """REPO_URL must make a valid remote for any client, or every message without repoUrl would fail."""
    template = ev.text(env, "REPO_URL", None)
    if template is not None:
        example = repo_url_for(template, "client")
        try:
            check_repo_url(example)
            refused = repository_inside_workspaces(example, workspace_path)
            if refused:
                raise InvalidMessage(refused)
        except InvalidMessage as error:
            reason = error.reason.replace("repoUrl", "it")
            raise ConfigError(f"REPO_URL: {reason}, got {template!r}") from None
    return template


def _thread_preview_url(env: Mapping[str, str]) -> str:
    """THREAD_PREVIEW_URL: an http(s) URL template naming {threadId} (else every thread would share one URL)."""
    template = ev.template(env, "THREAD_PREVIEW_URL", DEFAULT_THREAD_PREVIEW_URL)
    sample = urlsplit(template.replace("{clientId}", "client").replace("{threadId}", "thread"))
    if sample.scheme not in ("http", "https") or not sample.hostname:
        raise ConfigError(f"THREAD_PREVIEW_URL must be an http(s) URL template, got {template!r}")
    if "{threadId}" not in template:
        raise ConfigError(f"THREAD_PREVIEW_URL must contain {{threadId}}, got {template!r}")
    return template


def _idle_exit(env: Mapping[str, str]) -> float | None:
    """IDLE_EXIT_SECONDS: unset, empty or 0 means never (the default)."""
    seconds = ev.number(env, "IDLE_EXIT_SECONDS", 0, minimum=0, integer=False)
    return seconds or None


def _lease_table(env: Mapping[str, str]) -> str | None:
    """LEASE_TABLE: a DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -)."""
    name = ev.text(env, "LEASE_TABLE", None)
    if name is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{3,255}", name):
        raise ConfigError(f"LEASE_TABLE must be a DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -), got {name!r}")
    return name


def _domains(env: Mapping[str, str]) -> tuple[str, ...]:
    """SANDBOX_ALLOWED_DOMAINS: comma-separated host, *.host or host:port entries."""
    raw = ev.text(env, "SANDBOX_ALLOWED_DOMAINS", None) or ""
    entries = tuple(part.strip() for part in raw.split(",") if part.strip())
    for entry in entries:
        if not DOMAIN.fullmatch(entry):
            raise ConfigError(f"SANDBOX_ALLOWED_DOMAINS: {entry!r} is not a host, *.host or host:port")
    return entries


def _uid_range(env: Mapping[str, str]) -> tuple[int, int]:
    """JOB_UID_RANGE: FIRST-LAST, above the host's own users (1000) and below 2^31, at least 100 ids."""
    raw = ev.text(env, "JOB_UID_RANGE", None)
    if raw is None:
        return (200_000, 1_199_999)
    match = re.fullmatch(r"(\d+)-(\d+)", raw)
    first, last = (int(match[1]), int(match[2])) if match else (0, 0)
    if not match or first < 1000 or last >= 2**31 - 1 or last - first < 99:
        raise ConfigError(
            f"JOB_UID_RANGE must be FIRST-LAST with 1000 <= FIRST, LAST < 2^31 - 1, 100 ids at least, got {raw!r}"
        )
    return (first, last)


def _default_log_format() -> str:
    return "text" if sys.stderr.isatty() else "json"


def load_config(env: Mapping[str, str] | None = None, *, require_input_queue: bool = True) -> Config:
    """Read and validate every variable; raise ConfigError on the first bad one."""
    env = os.environ if env is None else env
    workspace_path = os.path.abspath(ev.required_text(env, "WORKSPACE_PATH", "/workspace"))
    return Config(
        input_queue_url=ev.url(env, "INPUT_QUEUE_URL", required=require_input_queue),
        output_queue_url=ev.url(env, "OUTPUT_QUEUE_URL"),
        dlq_url=ev.url(env, "DLQ_URL"),
        workspace_path=workspace_path,
        repo_url=_repo_url(env, workspace_path),
        s3_bucket=ev.template(env, "S3_BUCKET", "edit.{clientId}.webordinary.com"),
        preview_url=ev.template(env, "PREVIEW_URL", "https://edit.{clientId}.webordinary.com"),
        aws_region=ev.template(env, "AWS_REGION", "us-west-2"),
        aws_endpoint_url=ev.url(env, "AWS_ENDPOINT_URL"),
        build_command=ev.command(env, "BUILD_COMMAND", "npm run build"),
        build_dir=ev.relative_dir(env, "BUILD_DIR", "dist"),
        build_timeout_seconds=ev.number(env, "BUILD_TIMEOUT_SECONDS", 600, minimum=1, integer=False),
        deploy_strategy=ev.choice(env, "DEPLOY_STRATEGY", "hash", DEPLOY_STRATEGIES),
        git_push_enabled=ev.flag(env, "GIT_PUSH_ENABLED", True),
        git_user_name=ev.required_text(env, "GIT_USER_NAME", "Webordinary Editor"),
        git_user_email=ev.required_text(env, "GIT_USER_EMAIL", "editor@webordinary.invalid"),
        max_workers=ev.number(env, "MAX_WORKERS", 2, minimum=1, integer=True),
        interrupt_grace_seconds=ev.number(env, "INTERRUPT_GRACE_SECONDS", 5, minimum=0, integer=False),
        shutdown_grace_seconds=ev.number(env, "SHUTDOWN_GRACE_SECONDS", 25, minimum=0, integer=False),
        receive_wait_seconds=_receive_wait(env),
        visibility_timeout_seconds=_visibility(env),
        idle_exit_seconds=_idle_exit(env),
        push_retry_seconds=ev.number(env, "PUSH_RETRY_SECONDS", 60, minimum=0, integer=False),
        progress_events=ev.flag(env, "PROGRESS_EVENTS", False),
        log_format=ev.choice(env, "LOG_FORMAT", _default_log_format(), LOG_FORMATS),
        deploy_cache_control_immutable=ev.header_value(
            env, "DEPLOY_CACHE_CONTROL_IMMUTABLE", "public, max-age=31536000, immutable"
        ),
        deploy_cache_control_default=ev.header_value(
            env, "DEPLOY_CACHE_CONTROL_DEFAULT", "public, max-age=0, must-revalidate"
        ),
        github_token=ev.secret(env, "GITHUB_TOKEN"),
        agent=load_agent_config(env),
        lease_table=_lease_table(env),
        lease_seconds=ev.number(env, "LEASE_SECONDS", 20, minimum=MIN_LEASE_SECONDS, integer=False),
        sandbox=ev.choice(env, "SANDBOX", "auto", SANDBOX_SETTINGS),
        sandbox_allowed_domains=_domains(env),
        job_uid_range=_uid_range(env),
        task_heartbeat_seconds=ev.number(env, "TASK_HEARTBEAT_SECONDS", 30, minimum=1, integer=False),
        interrupt_queue_url=ev.url(env, "INTERRUPT_QUEUE_URL"),
        attachments=load_attachments_config(env),
        preview_mode=ev.choice(env, "PREVIEW_MODE", SHARED, PREVIEW_MODES),
        thread_preview_url=_thread_preview_url(env),
        build_mode=ev.choice(env, "BUILD_MODE", "cold", BUILD_MODES),
        warm_idle_seconds=ev.number(env, "BUILD_WARM_IDLE_SECONDS", 600, minimum=1, integer=False),
        warm_memory_mib=ev.number(env, "BUILD_WARM_MEMORY_MIB", 1536, minimum=64, integer=True),
    )


def load_config_or_exit(require_input_queue: bool = True) -> Config:
    """Entry-point helper: one clear line and exit code 2 on a bad value."""
    try:
        return load_config(require_input_queue=require_input_queue)
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
