"""DEPLOY_STRATEGY=aws-cli without an aws CLI is refused at start (the default image has none)."""

from __future__ import annotations

from steps import deploy
from steps.bucket import deploy_awscli
from supervisor.contract.config import load_config


def test_aws_cli_without_the_cli_is_one_clear_error(monkeypatch):
    config = load_config({"DEPLOY_STRATEGY": "aws-cli", "LOG_FORMAT": "text"}, require_input_queue=False)
    assert deploy.unusable_strategy(config) is None  # the test environment has the CLI
    monkeypatch.setattr(deploy_awscli.shutil, "which", lambda *_args, **_kwargs: None)
    assert "no aws CLI is installed here" in str(deploy.unusable_strategy(config))
    hash_config = load_config({"DEPLOY_STRATEGY": "hash", "LOG_FORMAT": "text"}, require_input_queue=False)
    assert deploy.unusable_strategy(hash_config) is None
