"""BUILD_MODE=warm through a real supervisor, the real Astro demo site and every containment layer the
host has: the second build reuses the server, the bucket holds what a cold build of the same commit
makes, the server is stopped between builds, an interrupt mid-build ends it, and nothing of it
outlives the supervisor."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from helpers import SupervisorProcess, bucket_keys, git, send

from supervisor.common import proc_scan

pytestmark = pytest.mark.e2e
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the build's own identity needs root (CI runs as root)")


def build_uid(env: dict[str, str]) -> int:
    """The warm server's uid: the workspace's job uid, one JOB_UID_RANGE above."""
    ids = json.loads(Path(env["WORKSPACE_PATH"], ".supervisor", "job-ids.json").read_text())
    first, last = (int(part) for part in env["JOB_UID_RANGE"].split("-"))
    return ids["acme/u1/site"] + (last - first + 1)


def running(uid: int) -> dict[int, str]:
    """pid → status of the uid's processes (zombies are gone already)."""
    found = {}
    for pid in proc_scan.pids_of_uid(uid):
        with contextlib.suppress(psutil.Error):
            status = psutil.Process(pid).status()
            if status != psutil.STATUS_ZOMBIE:
                found[pid] = status
    return found


def warm_builds(supervisor: SupervisorProcess) -> list[dict]:
    return [line for line in supervisor.log_lines() if line.get("event") == "built warm"]


def cold_build(site_remote: Path, branch: str, installed_site: Path, tmp_path: Path) -> dict[str, bytes]:
    """What `npm run build` makes of the branch, as the cold path would: the reference."""
    site = tmp_path / "cold"
    git(tmp_path, "clone", "--quiet", "--branch", branch, str(site_remote), str(site))
    subprocess.run(["cp", "-al", str(installed_site / "node_modules"), str(site / "node_modules")], check=True)
    env = {**os.environ, "NODE_ENV": "production", "ASTRO_TELEMETRY_DISABLED": "1"}
    subprocess.run(["npm", "run", "build"], cwd=site, env=env, check=True, capture_output=True)
    dist = site / "dist"
    return {str(path.relative_to(dist)): path.read_bytes() for path in dist.rglob("*") if path.is_file()}


@needs_root
def test_warm_builds_match_cold_ones_stay_stopped_between_and_end_with_an_interrupt(
    supervisor_env, prewarm, make_bucket, site_remote, installed_site, sqs, queues, watcher, s3, tmp_path
):
    prewarm()
    bucket = make_bucket("acme")
    env = {**supervisor_env, "BUILD_MODE": "warm", "SANDBOX": "auto", "DEPLOY_STRATEGY": "hash"}
    supervisor = SupervisorProcess(env, tmp_path / "supervisor.log")
    try:
        send(sqs, queues, "c1", "Make the header blue", thread="chat-a")
        assert watcher.response("c1")["success"], supervisor.log_path.read_text()[-3000:]
        send(sqs, queues, "c2", "Add a banner", thread="chat-a")
        assert watcher.response("c2")["success"]
        built = warm_builds(supervisor)
        assert [line["serverStarted"] for line in built] == [True, False], built
        assert built[1]["commandId"] == "c2" and built[1]["step"] == "build"

        uid = build_uid(env)
        between = running(uid)
        assert between and set(between.values()) == {psutil.STATUS_STOPPED}, between
        assert bucket_keys(s3, bucket) == cold_build(site_remote, "thread-chat-a", installed_site, tmp_path)

        # An interrupt mid-build: the worker's connection closes, the manager ends the server.
        send(sqs, queues, "c3", "Add a slow page\n@fake slow-build 60", thread="chat-a")
        deadline = time.monotonic() + 60
        while psutil.STATUS_STOPPED in running(uid).values() or not running(uid):
            assert time.monotonic() < deadline, "the slow build never started"
            time.sleep(0.05)
        time.sleep(1)  # well into the slow page
        send(sqs, queues, "c4", "Make the footer green", thread="chat-b")
        interrupted, after = watcher.response("c3"), watcher.response("c4")
        assert interrupted["interrupted"] is True, interrupted
        assert after["success"], after["error"]
        assert [line["serverStarted"] for line in warm_builds(supervisor)] == [True, False, True]
        ended = [line for line in supervisor.log_lines() if line.get("event", "").startswith("warm server ended")]
        assert "abandoned" in ended[0]["event"], ended
    finally:
        assert supervisor.stop() == 0, supervisor.log_path.read_text()[-3000:]
    assert running(uid) == {}  # nothing of the server outlives the supervisor
