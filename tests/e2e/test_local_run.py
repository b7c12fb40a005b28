"""README command 1 keeps working: the local run completes one instruction with the scripted agent."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil
import pytest
from helpers import ROOT, git_out

pytestmark = pytest.mark.e2e


def run_local(state: object, *options: str) -> subprocess.CompletedProcess[str]:
    """`bin/run-local --once` on a state folder of its own, on a clean environment (no AWS, no agent)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AGENT_", "INPUT_", "OUTPUT_", "MOTO_"))}
    env["LOCAL_RUN_TEST_MARK"] = str(state)  # inherited by everything the run starts
    completed = subprocess.run(
        [sys.executable, "-m", "supervisor.local", "--once", *options, "--state", str(state), "Make the header green"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return completed


def test_local_run_completes_one_instruction_and_leaves_nothing_running(tmp_path):
    before = {p.pid for p in psutil.process_iter()}
    completed = run_local(tmp_path)
    out = completed.stdout
    assert "SCRIPTED DEMO AGENT" in out
    assert '"success": true' in out and "GET → 200" in out
    assert "src/styles/site.css" in out
    css = git_out(tmp_path / "remotes" / "demo-site.git", "show", "thread-local-demo:src/styles/site.css")
    assert "--header-color: #15803d;" in css
    assert _ours_still_running(before, tmp_path) == []


def _ours_still_running(before: set[int], state: object) -> list[psutil.Process]:
    """New processes of this run (they inherit its mark): other tests may run supervisors of their own
    at the same time (pytest -n)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if p.pid in before:
            continue
        try:
            if p.environ().get("LOCAL_RUN_TEST_MARK") == str(state):
                found.append(p)
        except psutil.Error:
            continue
    return found


def test_local_run_drives_an_instruction_through_a_local_state_machine(tmp_path):
    """`bin/run-local --step-functions`: the orchestrated path (task token, heartbeats, callback) on moto."""
    before = {p.pid for p in psutil.process_iter()}
    completed = run_local(tmp_path, "--step-functions")
    assert "state machine:" in completed.stdout and "execution SUCCEEDED" in completed.stdout
    assert '"messageId"' in completed.stdout and '"siteUrl"' in completed.stdout  # the anchor's names too
    css = git_out(tmp_path / "remotes" / "demo-site.git", "show", "thread-local-demo:src/styles/site.css")
    assert "--header-color: #15803d;" in css
    assert _ours_still_running(before, tmp_path) == []
