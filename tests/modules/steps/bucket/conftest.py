"""Fixtures of the deploy tests: a fresh bucket on moto's server and a configuration for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bucket_helpers import new_bucket

from supervisor.contract.config import Config, load_config


@pytest.fixture
def bucket(s3: Any) -> str:
    return new_bucket(s3)


@pytest.fixture
def config(aws_env: dict[str, str], tmp_path: Path) -> Config:
    return load_config({**aws_env, "WORKSPACE_PATH": str(tmp_path / "workspace")}, require_input_queue=False)
