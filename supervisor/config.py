"""Configuration from the environment (CONTRACT §4), validated once at start-up.

A bad value raises ConfigError naming the variable; the entry points turn it into one line on
stderr and exit code 2 (no traceback).
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


class ConfigError(ValueError):
    """A configuration variable is missing or malformed; the message names it."""


TRUE_WORDS = {"true", "1", "yes", "on"}
FALSE_WORDS = {"false", "0", "no", "off"}
DEPLOY_STRATEGIES = ("hash", "aws-cli")
LOG_FORMATS = ("json", "text")


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
    agent_command: tuple[str, ...]
    agent_timeout_seconds: float
    build_command: tuple[str, ...]
    build_dir: str
    deploy_strategy: str
    git_push_enabled: bool
    git_user_name: str
    git_user_email: str
    max_workers: int
    interrupt_grace_seconds: float
    shutdown_grace_seconds: float
    visibility_timeout_seconds: int
    push_retry_seconds: float
    progress_events: bool
    log_format: str
    deploy_cache_control_immutable: str
    deploy_cache_control_default: str
    # Kept out of repr() so a logged or printed Config never shows the token.
    github_token: str | None = None

    def __repr__(self) -> str:
        fields = asdict(self)
        fields["github_token"] = "***" if self.github_token else None
        return f"Config({fields})"

    def bucket_for(self, client_id: str) -> str:
        return self.s3_bucket.replace("{clientId}", client_id)

    def preview_url_for(self, client_id: str) -> str:
        return self.preview_url.replace("{clientId}", client_id)

    def repo_url_for(self, client_id: str) -> str | None:
        return self.repo_url.replace("{clientId}", client_id) if self.repo_url else None


def _text(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    value = env.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def _required_text(env: Mapping[str, str], name: str, default: str) -> str:
    value = _text(env, name, default)
    assert value is not None  # default is a str
    return value


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float, integer: bool) -> Any:
    raw = _text(env, name, None)
    if raw is None:
        return int(default) if integer else float(default)
    try:
        value: float = int(raw) if integer else float(raw)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"{name} must be {kind}, got {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")) or value < minimum:  # NaN/inf check
        raise ConfigError(f"{name} must be at least {minimum:g}, got {raw!r}")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _text(env, name, None)
    if raw is None:
        return default
    if raw.lower() in TRUE_WORDS:
        return True
    if raw.lower() in FALSE_WORDS:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = _required_text(env, name, default).lower()
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _command(env: Mapping[str, str], name: str, default: str) -> tuple[str, ...]:
    raw = _required_text(env, name, default)
    try:
        words = tuple(shlex.split(raw))
    except ValueError as error:
        raise ConfigError(f"{name} is not a valid command line ({error}): {raw!r}") from None
    if not words:
        raise ConfigError(f"{name} must name a command")
    return words


def _url(env: Mapping[str, str], name: str, *, required: bool = False) -> str | None:
    raw = _text(env, name, None)
    if raw is None:
        if required:
            raise ConfigError(f"{name} is required")
        return None
    if not raw.startswith(("http://", "https://")):
        raise ConfigError(f"{name} must be an http(s) URL, got {raw!r}")
    return raw


def _template(env: Mapping[str, str], name: str, default: str) -> str:
    raw = _required_text(env, name, default)
    if any(ch.isspace() for ch in raw):
        raise ConfigError(f"{name} must not contain white space, got {raw!r}")
    return raw


def _relative_dir(env: Mapping[str, str], name: str, default: str) -> str:
    raw = _required_text(env, name, default)
    parts = raw.replace("\\", "/").split("/")
    if raw.startswith("/") or ".." in parts or raw in (".", ""):
        raise ConfigError(f"{name} must be a folder inside the checkout, got {raw!r}")
    return raw


def _header_value(env: Mapping[str, str], name: str, default: str) -> str:
    raw = _required_text(env, name, default)
    # It becomes an HTTP header: a control character would corrupt or split the request.
    if not all(" " <= ch <= "~" for ch in raw):
        raise ConfigError(f"{name} must be printable ASCII (a Cache-Control value), got {raw!r}")
    return raw


def _default_log_format() -> str:
    return "text" if sys.stderr.isatty() else "json"


def load_config(env: Mapping[str, str] | None = None, *, require_input_queue: bool = True) -> Config:
    """Read and validate every variable; raise ConfigError on the first bad one."""
    env = os.environ if env is None else env
    return Config(
        input_queue_url=_url(env, "INPUT_QUEUE_URL", required=require_input_queue),
        output_queue_url=_url(env, "OUTPUT_QUEUE_URL"),
        dlq_url=_url(env, "DLQ_URL"),
        workspace_path=os.path.abspath(_required_text(env, "WORKSPACE_PATH", "/workspace")),
        repo_url=_text(env, "REPO_URL", None),
        s3_bucket=_template(env, "S3_BUCKET", "edit.{clientId}.webordinary.com"),
        preview_url=_template(env, "PREVIEW_URL", "https://edit.{clientId}.webordinary.com"),
        aws_region=_template(env, "AWS_REGION", "us-west-2"),
        aws_endpoint_url=_url(env, "AWS_ENDPOINT_URL"),
        agent_command=_command(env, "AGENT_COMMAND", "claude"),
        agent_timeout_seconds=_number(env, "AGENT_TIMEOUT_SECONDS", 900, minimum=1, integer=False),
        build_command=_command(env, "BUILD_COMMAND", "npm run build"),
        build_dir=_relative_dir(env, "BUILD_DIR", "dist"),
        deploy_strategy=_choice(env, "DEPLOY_STRATEGY", "hash", DEPLOY_STRATEGIES),
        git_push_enabled=_flag(env, "GIT_PUSH_ENABLED", True),
        git_user_name=_required_text(env, "GIT_USER_NAME", "Webordinary Editor"),
        git_user_email=_required_text(env, "GIT_USER_EMAIL", "editor@webordinary.invalid"),
        max_workers=_number(env, "MAX_WORKERS", 2, minimum=1, integer=True),
        interrupt_grace_seconds=_number(env, "INTERRUPT_GRACE_SECONDS", 5, minimum=0, integer=False),
        shutdown_grace_seconds=_number(env, "SHUTDOWN_GRACE_SECONDS", 25, minimum=0, integer=False),
        visibility_timeout_seconds=_number(env, "VISIBILITY_TIMEOUT_SECONDS", 120, minimum=4, integer=True),
        push_retry_seconds=_number(env, "PUSH_RETRY_SECONDS", 60, minimum=0, integer=False),
        progress_events=_flag(env, "PROGRESS_EVENTS", False),
        log_format=_choice(env, "LOG_FORMAT", _default_log_format(), LOG_FORMATS),
        deploy_cache_control_immutable=_header_value(
            env, "DEPLOY_CACHE_CONTROL_IMMUTABLE", "public, max-age=31536000, immutable"
        ),
        deploy_cache_control_default=_header_value(
            env, "DEPLOY_CACHE_CONTROL_DEFAULT", "public, max-age=0, must-revalidate"
        ),
        github_token=_text(env, "GITHUB_TOKEN", None),
    )


def load_config_or_exit(require_input_queue: bool = True) -> Config:
    """Entry-point helper: one clear line and exit code 2 on a bad value."""
    try:
        return load_config(require_input_queue=require_input_queue)
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
