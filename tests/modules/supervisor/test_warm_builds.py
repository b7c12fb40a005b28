"""The supervisor's side of BUILD_MODE=warm (supervisor/warm_builds.py): its variables, and the manager
process it starts, starts again when it dies, and ends."""

from __future__ import annotations

import os
import signal
import time

import pytest

from steps.warm.client import SOCKET_VARIABLE
from supervisor.contract.config import ConfigError, load_config
from supervisor.warm_builds import RESTART_SECONDS, WarmBuilds


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("BUILD_MODE", "hot", "one of cold, warm"),
        ("BUILD_WARM_IDLE_SECONDS", "0", "at least 1"),
        ("BUILD_WARM_MEMORY_MIB", "10", "at least 64"),
        ("BUILD_WARM_MEMORY_MIB", "lots", "whole number"),
    ],
)
def test_a_bad_warm_setting_stops_start_up_with_its_name(name, value, why):
    with pytest.raises(ConfigError, match=f"^{name} must be .*{why}"):
        load_config({name: value}, require_input_queue=False)


def test_cold_by_default_and_then_no_manager(monkeypatch):
    monkeypatch.delenv(SOCKET_VARIABLE, raising=False)
    config = load_config({}, require_input_queue=False)
    assert config.build_mode == "cold"
    builds = WarmBuilds(config)
    assert builds.process is None and builds.pids() == set() and SOCKET_VARIABLE not in os.environ


def wait_for(predicate, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_the_manager_listens_is_started_again_when_it_dies_and_ends_with_the_supervisor(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKSPACE_PATH", str(tmp_path))
    config = load_config({"WORKSPACE_PATH": str(tmp_path), "BUILD_MODE": "warm"}, require_input_queue=False)
    builds = WarmBuilds(config)
    try:
        assert os.environ[SOCKET_VARIABLE] == str(builds.socket)  # what workers started from now on see
        assert oct(builds.folder.stat().st_mode & 0o777) == "0o700"
        assert wait_for(builds.socket.exists), "the manager never listened"
        first = builds.process.pid
        assert builds.pids() == {first}

        os.kill(first, signal.SIGKILL)
        assert wait_for(lambda: builds.process.poll() is not None)
        builds.check(now=1.0)  # within RESTART_SECONDS of the first start: not yet
        assert builds.pids() == set()
        builds.check(now=1.0 + RESTART_SECONDS)
        assert builds.pids() and builds.process.pid != first
    finally:
        builds.close()
    assert builds.process.poll() is not None  # ended
    assert not builds.folder.exists() and SOCKET_VARIABLE not in os.environ
