from __future__ import annotations

import json

import pytest
from helpers import message

from supervisor.contract.command import parse_command
from supervisor.contract.config import ConfigError, load_config


def test_defaults_match_the_contract():
    config = load_config({"INPUT_QUEUE_URL": "https://sqs.us-west-2.amazonaws.com/1/in", "LOG_FORMAT": "json"})
    assert config.workspace_path == "/workspace"
    assert config.bucket_for("acme") == "edit.acme.webordinary.com"
    command = parse_command(json.dumps(message()), "https://git.example.invalid/site.git")
    assert config.preview_url_for(command) == "https://edit.acme.webordinary.com"
    assert config.preview_mode == "shared" and config.deploy_prefix_for(command) == ""
    assert config.agent.command == ("claude",) and config.agent.timeout_seconds == 900
    assert config.build_command == ("npm", "run", "build") and config.build_dir == "dist"
    assert config.deploy_strategy == "hash" and config.git_push_enabled is True
    assert (config.max_workers, config.interrupt_grace_seconds, config.shutdown_grace_seconds) == (2, 5, 25)
    assert config.progress_events is False and config.aws_region == "us-west-2"
    assert (config.git_user_name, config.git_user_email) == ("Webordinary Editor", "editor@webordinary.invalid")


def test_token_never_shows_in_repr():
    config = load_config({"INPUT_QUEUE_URL": "http://x/q", "GITHUB_TOKEN": "ghp_secret"})
    assert config.github_token == "ghp_secret" and "ghp_secret" not in repr(config)


def test_agent_command_is_split_like_a_shell_would_without_running_one():
    config = load_config({"INPUT_QUEUE_URL": "http://x/q", "AGENT_COMMAND": "'/opt/my agent/claude' --model opus"})
    assert config.agent.command == ("/opt/my agent/claude", "--model", "opus")


@pytest.mark.parametrize("value", ["nan", "inf", "1e999"])
def test_non_finite_numbers_are_refused(value):
    with pytest.raises(ConfigError, match="INTERRUPT_GRACE_SECONDS"):
        load_config({"INPUT_QUEUE_URL": "http://x/q", "INTERRUPT_GRACE_SECONDS": value})


@pytest.mark.parametrize("value", ["not a url", "https://git.example/{clientId}/..", "ext::sh -c touch% /tmp/x"])
def test_a_repo_url_that_cannot_make_a_remote_stops_start_up(value):
    with pytest.raises(ConfigError, match="REPO_URL"):
        load_config({"INPUT_QUEUE_URL": "http://x/q", "REPO_URL": value})


def test_visibility_above_what_sqs_allows_stops_start_up():
    with pytest.raises(ConfigError, match="VISIBILITY_TIMEOUT_SECONDS"):
        load_config({"INPUT_QUEUE_URL": "http://x/q", "VISIBILITY_TIMEOUT_SECONDS": "43201"})


def test_lease_settings_are_checked_at_start_up():
    base = {"INPUT_QUEUE_URL": "http://x/q"}
    assert load_config(base).lease_table is None  # unset: one container
    config = load_config({**base, "LEASE_TABLE": "edit-leases", "LEASE_SECONDS": "12.5"})
    assert (config.lease_table, config.lease_seconds) == ("edit-leases", 12.5)
    with pytest.raises(ConfigError, match="LEASE_TABLE must be a DynamoDB table name"):
        load_config({**base, "LEASE_TABLE": "no spaces/allowed"})
    with pytest.raises(ConfigError, match="LEASE_SECONDS must be at least 5"):
        load_config({**base, "LEASE_TABLE": "edit-leases", "LEASE_SECONDS": "4"})


def test_receive_wait_seconds_is_a_long_poll_sqs_allows():
    queue = {"INPUT_QUEUE_URL": "http://sqs.test/q"}
    assert load_config(queue).receive_wait_seconds == 5
    assert load_config({**queue, "RECEIVE_WAIT_SECONDS": "20"}).receive_wait_seconds == 20
    for bad in ("0", "21", "1.5", "soon"):
        with pytest.raises(ConfigError, match="RECEIVE_WAIT_SECONDS"):
            load_config({**queue, "RECEIVE_WAIT_SECONDS": bad})


def test_a_repo_url_inside_the_workspaces_stops_start_up(tmp_path):
    (tmp_path / "workspace").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "workspace")
    for value in (f"{tmp_path}/workspace/{{clientId}}/u1/.site.git", f"file://{tmp_path}/link/x.git"):
        with pytest.raises(ConfigError, match="REPO_URL: it names a folder inside WORKSPACE_PATH"):
            load_config({"INPUT_QUEUE_URL": "http://x/q", "WORKSPACE_PATH": f"{tmp_path}/workspace", "REPO_URL": value})
    beside = load_config(
        {
            "INPUT_QUEUE_URL": "http://x/q",
            "WORKSPACE_PATH": f"{tmp_path}/workspace",
            "REPO_URL": f"{tmp_path}/workspace2/site.git",
        }
    )
    assert beside.repo_url == f"{tmp_path}/workspace2/site.git"  # a neighbour whose name starts the same is fine
